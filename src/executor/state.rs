//! The shared state of an executor: its queues, the sleep/wake protocol and the set of
//! live tasks.
//!
//! Queues, from the point of view of one runner (a thread inside `run`):
//! - its own bounded *local* queue, filled by tasks that it wakes itself;
//! - the *home* queue, for `!Send` tasks that may only run on the loop's home thread;
//! - the unbounded *global* injector, filled by wake-ups from other threads;
//! - the local queues of the other runners, which it steals from when idle.
//!
//! Sleep/wake: an idle runner registers an `event_listener` listener and counts itself
//! in `sleeping`, then looks at the queues once more, and only then waits. Every push
//! then looks at `sleeping` and notifies one listener if it is not zero; a fence on
//! either side (see [`State::sleep`]) makes sure that the runner's second look sees
//! the push, or the push sees the count: no wake-up is lost. With nobody asleep, a
//! push costs no lock of the listener list.

use std::cell::Cell;
use std::panic::Location;
use std::pin::Pin;
use std::ptr;
use std::sync::PoisonError;
use std::task::{Context, Poll};

use async_task::Runnable;
use concurrent_queue::{ConcurrentQueue, PushError};
use event_listener::{Event, EventListener};

use super::active::Slab;
use super::home::{self, Home};
use super::report::{self, Incident, Reporter};
use super::sync::{
    Arc, AtomicUsize, Mutex, MutexGuard, Ordering, RwLock, executor_thread_local, fence,
};

/// How many runnables a runner's local queue holds before it spills into the global one.
#[cfg(not(loom))]
const LOCAL_CAPACITY: usize = 256;
/// Small under loom, so that spilling and stealing are explored too.
#[cfg(loom)]
const LOCAL_CAPACITY: usize = 2;

/// The state shared by an executor, its runners and the wakers of its tasks.
pub(crate) struct State {
    /// Wake-ups from threads that are not runners of this executor.
    global: ConcurrentQueue<Runnable>,
    /// `!Send` tasks, bound to their home thread.
    pub(crate) home: Home,
    /// The local queue of every runner, for stealing.
    locals: RwLock<Vec<Arc<ConcurrentQueue<Runnable>>>>,
    /// How many runners there are (`locals.len()`, without the lock).
    runners: AtomicUsize,
    /// Idle runners wait here.
    sleepers: Event,
    /// How many runners are registered in `sleepers` (see [`Sleeper`]).
    sleeping: AtomicUsize,
    /// Every task that has not finished yet, so that dropping the executor can drop them.
    active: Mutex<Slab>,
    /// Where incidents go (stderr until the owner sets one).
    reporter: std::sync::OnceLock<Reporter>,
}

executor_thread_local! {
    /// The runner that is running tasks on this thread, and its executor's state.
    static RUNNER: Cell<(*const State, *const Runner)> = Cell::new((ptr::null(), ptr::null()));
    /// This thread's id for the executor (0 until first asked).
    static THREAD_ID: Cell<u64> = Cell::new(0);
}

/// The state of the executor whose runner is running tasks on this thread, or null.
pub(crate) fn running_state() -> *const State {
    RUNNER.try_with(Cell::get).map_or(ptr::null(), |(state, _)| state)
}

/// A small, cheap, never-zero id of the calling thread.
pub(crate) fn thread_id() -> u64 {
    THREAD_ID.with(|id| {
        if id.get() == 0 {
            // Not part of the protocol: a plain std counter, also under loom.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            id.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        }
        id.get()
    })
}

impl State {
    pub(crate) fn new() -> State {
        State {
            global: ConcurrentQueue::unbounded(),
            home: Home::new(),
            locals: RwLock::new(Vec::new()),
            runners: AtomicUsize::new(0),
            sleepers: Event::new(),
            sleeping: AtomicUsize::new(0),
            active: Mutex::new(Slab::default()),
            reporter: std::sync::OnceLock::new(),
        }
    }

    /// Sends incidents to `reporter` from now on. Only the first call counts.
    pub(crate) fn set_reporter(&self, reporter: Reporter) {
        let _ = self.reporter.set(reporter);
    }

    /// Reports an incident to the owner of the executor.
    #[cold]
    pub(crate) fn report(&self, incident: Incident<'_>) {
        match self.reporter.get() {
            // Reports are made where a panic would abort the process (inside async-task):
            // a reporter that panics is not let through.
            Some(reporter) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reporter(incident)))
                    .is_err()
                {
                    eprintln!("polyloop: an executor's reporter panicked");
                }
            }
            None => report::to_stderr(incident),
        }
    }

    /// Queues a runnable that was woken.
    pub(crate) fn schedule(&self, runnable: Runnable) {
        // A runner that wakes one of its own tasks runs it next, from a slot that only
        // it touches (no atomics, nobody to wake); the task it displaces goes to the
        // runner's local queue, where others may steal it.
        let spill = match RUNNER.try_with(Cell::get) {
            Ok((state, runner)) if ptr::eq(state, self) => {
                // SAFETY: `RUNNER` points at the runner that is running tasks on this
                // thread; `RunnerGuard` resets it before that runner can move or drop,
                // and the runner is only used through shared references meanwhile.
                let runner = unsafe { &*runner };
                match runner.next.replace(Some(runnable)) {
                    None => return,
                    Some(displaced) => match runner.local.push(displaced) {
                        Ok(()) => None,
                        Err(PushError::Full(r) | PushError::Closed(r)) => Some(r),
                    },
                }
            }
            _ => Some(runnable),
        };
        if let Some(runnable) = spill {
            // The global queue is unbounded and never closed.
            let _ = self.global.push(runnable);
        }
        self.notify_one();
    }

    /// Wakes one idle runner, if one is registered.
    pub(crate) fn notify_one(&self) {
        if self.any_sleeping() {
            self.sleepers.notify(1);
        }
    }

    /// Whether a runner may be asleep, after a push: either this sees its count, or its
    /// second look at the queues sees the push.
    fn any_sleeping(&self) -> bool {
        // Pairs with the fence in `sleep`: the push above (store) and the load of the
        // count here, against the count's increment there and its loads of the queues.
        fence(Ordering::SeqCst);
        // Acquire: a count seen here comes after the runner's listener was inserted,
        // so the notification finds it.
        self.sleeping.load(Ordering::Acquire) > 0
    }

    /// Registers the calling runner as about to sleep. It must look at the queues once
    /// more before it waits on the returned listener.
    pub(crate) fn sleep(&self) -> Sleeper<'_> {
        let listener = self.sleepers.listen();
        self.sleeping.fetch_add(1, Ordering::AcqRel);
        // Pairs with the fence in `any_sleeping`.
        fence(Ordering::SeqCst);
        Sleeper { state: self, listener }
    }

    /// Queues a runnable of a `!Send` task bound to the home thread.
    pub(crate) fn schedule_home(&self, runnable: Runnable) {
        self.home.push(runnable);
        if self.any_sleeping() {
            self.sleepers.notify_additional(usize::MAX);
        }
    }

    /// The set of live tasks, locked.
    pub(crate) fn active(&self) -> MutexGuard<'_, Slab> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many tasks have not finished yet.
    pub(crate) fn active_len(&self) -> usize {
        self.active().len()
    }

    /// Where each task that has not finished yet was spawned.
    pub(crate) fn active_locations(&self) -> Vec<&'static Location<'static>> {
        self.active().locations()
    }

    /// Cancels every task that has not finished: wakes each one so that its runnable is
    /// queued, then drops every queued runnable, which drops the futures (`!Send` ones
    /// only on their home thread: see `home.rs`).
    pub(crate) fn cancel_all(&self) {
        self.home.close();
        let wakers = self.active().take_all();
        for waker in wakers {
            waker.wake();
        }
        // Dropping a runnable drops its future; the future's guard then finds its slot
        // gone, which `Slab::remove` tolerates.
        self.drain();
    }

    /// Drops every queued runnable.
    fn drain(&self) {
        while self.global.pop().is_ok() {}
        self.home.drain(self);
        let locals = self.locals.read().unwrap_or_else(PoisonError::into_inner).clone();
        for local in locals {
            while local.pop().is_ok() {}
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.drain();
    }
}

/// One thread's participation in running an executor.
///
/// Only used through shared references (`RUNNER` points at it while it runs tasks).
pub(crate) struct Runner {
    state: Arc<State>,
    local: Arc<ConcurrentQueue<Runnable>>,
    /// The task woken last by a task of this runner: it runs next (LIFO), which keeps
    /// a message and its answer hot in cache.
    next: Cell<Option<Runnable>>,
    /// How many tasks in a row came from `next`.
    lifo_streak: Cell<u32>,
    thread: u64,
    ticks: Cell<u32>,
}

/// How many tasks in a row may come from a runner's `next` slot before the others get
/// a turn (two tasks waking each other would otherwise keep the slot forever).
const MAX_LIFO_STREAK: u32 = 3;

impl Runner {
    pub(crate) fn new(state: &Arc<State>) -> Runner {
        home::drop_left_behind();
        let local = Arc::new(ConcurrentQueue::bounded(LOCAL_CAPACITY));
        state.locals.write().unwrap_or_else(PoisonError::into_inner).push(local.clone());
        state.runners.fetch_add(1, Ordering::Relaxed);
        Runner {
            state: state.clone(),
            local,
            next: Cell::new(None),
            lifo_streak: Cell::new(0),
            thread: thread_id(),
            ticks: Cell::new(0),
        }
    }

    /// Makes wake-ups on this thread go to this runner until the guard drops.
    pub(crate) fn enter(&self) -> RunnerGuard {
        let prev = RUNNER.with(|cell| cell.replace((Arc::as_ptr(&self.state), self)));
        RunnerGuard { prev }
    }

    /// Finds the next runnable: local, home, global, then stolen from another runner.
    pub(crate) fn find(&self) -> Option<Runnable> {
        if let Some(r) = self.next.take() {
            if self.lifo_streak.get() < MAX_LIFO_STREAK {
                self.lifo_streak.set(self.lifo_streak.get() + 1);
                return Some(r);
            }
            // Its turn is over: to the back of the line.
            if let Err(PushError::Full(r) | PushError::Closed(r)) = self.local.push(r) {
                let _ = self.state.global.push(r);
            }
        }
        self.lifo_streak.set(0);
        let ticks = self.ticks.get().wrapping_add(1);
        self.ticks.set(ticks);
        // Now and then look at the shared queues first, so that a pair of tasks waking
        // each other through the local queue cannot starve everyone else.
        if ticks % 61 == 0 {
            if let Some(r) = self.pop_home().or_else(|| self.pop_global()) {
                return Some(r);
            }
        }
        // Two loads to see it empty cost less than a failed pop.
        if !self.local.is_empty() {
            if let Ok(r) = self.local.pop() {
                return Some(r);
            }
        }
        if let Some(r) = self.pop_home() {
            return Some(r);
        }
        if let Some(r) = self.pop_global() {
            return Some(r);
        }
        self.steal()
    }

    fn pop_home(&self) -> Option<Runnable> {
        self.state.home.pop_for(self.thread)
    }

    /// Takes one runnable from the global queue and moves a share of the rest locally
    /// (where the other runners only take from it when they run dry).
    fn pop_global(&self) -> Option<Runnable> {
        let first = self.state.global.pop().ok()?;
        // A runner on its own would only add a push and a pop to every task.
        if self.state.runners.load(Ordering::Relaxed) <= 1 {
            return Some(first);
        }
        let share = (self.state.global.len() / 2).min(LOCAL_CAPACITY / 2);
        for _ in 0..share {
            match self.state.global.pop() {
                Ok(r) => {
                    if let Err(PushError::Full(r) | PushError::Closed(r)) = self.local.push(r) {
                        let _ = self.state.global.push(r);
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(first)
    }

    /// Steals half of the local queue of another runner.
    fn steal(&self) -> Option<Runnable> {
        let locals = self.state.locals.read().unwrap_or_else(PoisonError::into_inner);
        let n = locals.len();
        if n <= 1 {
            return None;
        }
        let start = self.ticks.get() as usize % n;
        for i in 0..n {
            let victim = &locals[(start + i) % n];
            if Arc::ptr_eq(victim, &self.local) || victim.is_empty() {
                continue;
            }
            let first = victim.pop().ok();
            let half = victim.len().div_ceil(2);
            for _ in 0..half {
                match victim.pop() {
                    Ok(r) => {
                        if let Err(PushError::Full(r) | PushError::Closed(r)) = self.local.push(r) {
                            let _ = self.state.global.push(r);
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if first.is_some() {
                return first;
            }
        }
        None
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.state
            .locals
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|q| !Arc::ptr_eq(q, &self.local));
        self.state.runners.fetch_sub(1, Ordering::Relaxed);
        // Hand what is left to the other runners.
        let mut moved = false;
        if let Some(r) = self.next.take() {
            let _ = self.state.global.push(r);
            moved = true;
        }
        while let Ok(r) = self.local.pop() {
            let _ = self.state.global.push(r);
            moved = true;
        }
        if moved {
            self.state.notify_one();
        }
    }
}

/// Restores the previous runner of this thread when dropped.
pub(crate) struct RunnerGuard {
    prev: (*const State, *const Runner),
}

impl Drop for RunnerGuard {
    fn drop(&mut self) {
        let _ = RUNNER.try_with(|cell| cell.set(self.prev));
    }
}

/// A runner registered as asleep in [`State::sleepers`]; dropping it unregisters it.
pub(crate) struct Sleeper<'a> {
    state: &'a State,
    listener: EventListener,
}

impl Sleeper<'_> {
    /// Waits for a notification.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.listener).poll(cx)
    }
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        // Only makes pushes notify less: the runner is awake, or no longer runs.
        self.state.sleeping.fetch_sub(1, Ordering::Release);
    }
}
