//! The shared state of an executor: its queues, the sleep/wake protocol and the set of
//! live tasks.
//!
//! Queues, from the point of view of one runner (a thread inside `run`):
//! - its own bounded *local* queue, filled by tasks that it wakes itself;
//! - the *home* queue, for `!Send` tasks that may only run on the loop's home thread;
//! - the unbounded *global* injector, filled by wake-ups from other threads;
//! - the local queues of the other runners, which it steals from when idle.
//!
//! Sleep/wake: an idle runner registers an `event_listener` listener, then looks at the
//! queues once more, and only then waits. Every push notifies one listener, so a push
//! that lands after the second look finds a registered listener: no wake-up is lost.

use std::cell::Cell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::PoisonError;
use std::task::{Context, Poll, RawWakerVTable, Waker};

use async_task::Runnable;
use concurrent_queue::{ConcurrentQueue, PushError};
use event_listener::Event;

use super::sync::{Arc, AtomicU64, Mutex, MutexGuard, Ordering, RwLock, executor_thread_local};

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
    /// `!Send` tasks, bound to the thread in `home_thread`.
    home: ConcurrentQueue<Runnable>,
    /// The id (see [`thread_id`]) of the only thread that may run `home` tasks; 0 = none yet.
    home_thread: AtomicU64,
    /// The local queue of every runner, for stealing.
    locals: RwLock<Vec<Arc<ConcurrentQueue<Runnable>>>>,
    /// Idle runners wait here.
    pub(crate) sleepers: Event,
    /// Every task that has not finished yet, so that dropping the executor can drop them.
    active: Mutex<Slab>,
}

executor_thread_local! {
    /// The runner that is running tasks on this thread, and its executor's state.
    static RUNNER: Cell<(*const State, *const Runner)> = Cell::new((ptr::null(), ptr::null()));
    /// This thread's id for the executor (0 until first asked).
    static THREAD_ID: Cell<u64> = Cell::new(0);
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
            home: ConcurrentQueue::unbounded(),
            home_thread: AtomicU64::new(0),
            locals: RwLock::new(Vec::new()),
            sleepers: Event::new(),
            active: Mutex::new(Slab::default()),
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
        self.sleepers.notify(1);
    }

    /// Queues a runnable of a `!Send` task bound to the home thread.
    pub(crate) fn schedule_home(&self, runnable: Runnable) {
        let _ = self.home.push(runnable);
        self.sleepers.notify_additional(usize::MAX);
    }

    /// Makes the calling thread the home of `!Send` tasks, unless another thread is.
    /// Returns whether the calling thread is the home thread.
    pub(crate) fn claim_home(&self) -> bool {
        let me = thread_id();
        match self.home_thread.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(owner) => owner == me,
        }
    }

    /// Creates a task with `make` and adds it to the set of live tasks. `make` wraps the
    /// task's future with the [`Registration`] it is given, so that the task leaves
    /// the set when its future is dropped, whether it was ever polled or not; the task's
    /// schedule function must hold a clone of this `Arc` (see [`Registration`]).
    pub(crate) fn register<T>(
        &self,
        loc: &'static Location<'static>,
        make: impl FnOnce(Registration) -> (Runnable, T),
    ) -> (Runnable, T) {
        let mut active = self.active();
        let (key, epoch) = (active.next_key(), active.epoch);
        let (runnable, task) = make(Registration { state: self, key, epoch });
        active.insert(TaskRef::new(&runnable.waker()), loc);
        (runnable, task)
    }

    /// The set of live tasks, locked.
    pub(crate) fn active(&self) -> MutexGuard<'_, Slab> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many tasks have not finished yet.
    pub(crate) fn active_len(&self) -> usize {
        self.active().len
    }

    /// Where each task that has not finished yet was spawned.
    pub(crate) fn active_locations(&self) -> Vec<&'static Location<'static>> {
        let active = self.active();
        active.tasks.iter().flatten().map(|(_, loc)| *loc).collect()
    }

    /// Cancels every task that has not finished: wakes each one so that its runnable is
    /// queued, then drops every queued runnable, which drops the futures.
    pub(crate) fn cancel_all(&self) {
        let wakers: Vec<Waker> = {
            let mut active = self.active();
            let tasks = std::mem::take(&mut active.tasks);
            active.free.clear();
            active.len = 0;
            // Tasks woken below may finish on other runners after new tasks reused
            // their keys: the new epoch keeps them from freeing those.
            active.epoch += 1;
            tasks
                .into_iter()
                .flatten()
                // SAFETY: the task is in the set and we hold its lock.
                .map(|(t, _)| unsafe { t.waker() })
                .collect()
        };
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
        while self.home.pop().is_ok() {}
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

/// A task in the active set: the parts of its waker, without a reference count, so
/// that freeing a slot is a plain store and never reads the (by then cold) slot.
///
/// The task's memory outlives its slot: before its first poll its `Runnable` holds it,
/// and from then on its own [`Tracked`] future holds a waker to it. Both only let go
/// after `Tracked::drop` has freed the slot, under the lock of the set.
#[derive(Clone, Copy)]
pub(crate) struct TaskRef(NonNull<()>, &'static RawWakerVTable);

// SAFETY: the state is `Sync`, and only reached through `&` while it is alive.
unsafe impl Send for Registration {}

// SAFETY: a `TaskRef` is only turned into a waker (which is `Send + Sync`) under the
// lock of the active set, while the task is alive; see `State::cancel_all`.
unsafe impl Send for TaskRef {}

impl TaskRef {
    fn new(waker: &Waker) -> TaskRef {
        // async-task wakers point at the task's header, never null.
        let data = NonNull::new(waker.data().cast_mut()).expect("a task waker has data");
        TaskRef(data, waker.vtable())
    }

    /// An owned waker of the task.
    ///
    /// # Safety
    ///
    /// The task must still be in the active set, whose lock the caller holds.
    unsafe fn waker(self) -> Waker {
        // SAFETY: the task is alive (see the type's docs); the copy owns no reference,
        // so it is never dropped, only cloned into a waker that owns one.
        let borrowed = ManuallyDrop::new(unsafe { Waker::new(self.0.as_ptr(), self.1) });
        Waker::clone(&borrowed)
    }
}

/// The live tasks of an executor, by key. Keys of finished tasks are reused.
///
/// The free keys are a stack (hot in cache), so insert and remove only write to the
/// task's slot and never read it. A slot holds the location too: one cache line per
/// task, not two.
#[derive(Default)]
pub(crate) struct Slab {
    tasks: Vec<Option<(TaskRef, &'static Location<'static>)>>,
    free: Vec<usize>,
    len: usize,
    /// Bumped by `cancel_all`; a key is only freed by a task of the same epoch.
    epoch: u64,
}

impl Slab {
    /// The key the next `insert` will use.
    fn next_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.tasks.len())
    }

    /// Adds a task and gives its key.
    pub(crate) fn insert(&mut self, task: TaskRef, loc: &'static Location<'static>) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(key) => {
                self.tasks[key] = Some((task, loc));
                key
            }
            None => {
                self.tasks.push(Some((task, loc)));
                self.tasks.len() - 1
            }
        }
    }

    /// Frees `key`; does nothing if the slab was emptied since (by `cancel_all`).
    fn remove(&mut self, key: usize, epoch: u64) {
        // The epoch tells whether the slot is still ours, so it need not be read.
        if epoch == self.epoch {
            self.tasks[key] = None;
            self.free.push(key);
            self.len -= 1;
        }
    }
}

/// A task's place in the active set, given to the future that [`State::register`]
/// creates.
///
/// It points at the state without counting: every task's schedule function holds an
/// `Arc<State>`, and async-task drops that only after the future (see `Tracked::drop`).
pub(crate) struct Registration {
    state: *const State,
    key: usize,
    epoch: u64,
}

impl Registration {
    /// Wraps the task's future so that dropping it frees this place.
    pub(crate) fn wrap<F: Future>(self, future: F) -> Tracked<F> {
        Tracked { future, registration: self, own: None }
    }
}

/// A task's future that leaves the active set when dropped, polled or not.
pub(crate) struct Tracked<F> {
    future: F,
    registration: Registration,
    /// A waker of this very task, taken at the first poll: it keeps the task's memory
    /// alive while the task is in the active set (see [`TaskRef`]). Without it,
    /// async-task frees an idle detached task that nothing can wake, without dropping
    /// its future.
    own: Option<Waker>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `Tracked`,
        // and `Drop` below does not touch it; `own` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.own.is_none() {
            // async-task polls a task with a waker of that task.
            this.own = Some(cx.waker().clone());
        }
        // SAFETY: see above.
        unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        let r = &self.registration;
        // SAFETY: the task's schedule function keeps the state alive until after its
        // future is dropped (see `Registration`).
        let state = unsafe { &*r.state };
        state.active().remove(r.key, r.epoch);
        // `own` is dropped after this, with the future: the task outlives its slot.
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
        let local = Arc::new(ConcurrentQueue::bounded(LOCAL_CAPACITY));
        state.locals.write().unwrap_or_else(PoisonError::into_inner).push(local.clone());
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
        if let Ok(r) = self.local.pop() {
            return Some(r);
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
        if self.state.home.is_empty()
            || self.state.home_thread.load(Ordering::Acquire) != self.thread
        {
            return None;
        }
        self.state.home.pop().ok()
    }

    /// Takes one runnable from the global queue and moves a share of the rest locally.
    fn pop_global(&self) -> Option<Runnable> {
        let first = self.state.global.pop().ok()?;
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
            self.state.sleepers.notify(1);
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
