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
use std::panic::Location;
use std::ptr;
use std::sync::PoisonError;
use std::task::Waker;

use super::sync::{Arc, AtomicU64, Mutex, MutexGuard, Ordering, RwLock, executor_thread_local};

use async_task::Runnable;
use concurrent_queue::{ConcurrentQueue, PushError};
use event_listener::Event;

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
    /// The runner that is being polled on this thread: its state and its local queue.
    static RUNNER: Cell<(*const State, *const ConcurrentQueue<Runnable>)> =
        Cell::new((ptr::null(), ptr::null()));
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
        // A runner that wakes one of its own tasks keeps it in its local queue.
        let runnable = RUNNER
            .try_with(|cell| {
                let (state, local) = cell.get();
                if ptr::eq(state, self) {
                    // SAFETY: `RUNNER` holds a pointer to the local queue of the runner
                    // being polled on this thread; `RunnerGuard` resets it before that
                    // runner (and so its `Arc` of the queue) can be dropped.
                    match unsafe { &*local }.push(runnable) {
                        Ok(()) => None,
                        Err(PushError::Full(r) | PushError::Closed(r)) => Some(r),
                    }
                } else {
                    Some(runnable)
                }
            })
            .unwrap_or_else(|_| None);
        if let Some(runnable) = runnable {
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

    /// Registers a new task; `make` gets the key it will have in the active set.
    pub(crate) fn active(&self) -> MutexGuard<'_, Slab> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many tasks have not finished yet.
    pub(crate) fn active_len(&self) -> usize {
        self.active().len
    }

    /// Where each task that has not finished yet was spawned.
    pub(crate) fn active_locations(&self) -> Vec<&'static Location<'static>> {
        self.active()
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Occupied(_, loc) => Some(*loc),
                Entry::Vacant(_) => None,
            })
            .collect()
    }

    /// Cancels every task that has not finished: wakes each one so that its runnable is
    /// queued, then drops every queued runnable, which drops the futures.
    pub(crate) fn cancel_all(&self) {
        let wakers: Vec<Waker> = {
            let mut active = self.active();
            let entries = std::mem::take(&mut active.entries);
            active.len = 0;
            active.next = 0;
            entries
                .into_iter()
                .filter_map(|e| match e {
                    Entry::Occupied(w, _) => Some(w),
                    Entry::Vacant(_) => None,
                })
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
        // Dropping a runnable drops its future; the future's guard then finds its slab
        // entry gone, which `Slab::remove` tolerates.
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

/// One slot of the active set: the task's waker and where it was spawned.
pub(crate) enum Entry {
    Occupied(Waker, &'static Location<'static>),
    Vacant(usize),
}

/// A minimal slab of the wakers of live tasks (freed slots are reused, keys are stable).
#[derive(Default)]
pub(crate) struct Slab {
    entries: Vec<Entry>,
    next: usize,
    len: usize,
}

impl Slab {
    /// The key the next `insert` will use.
    pub(crate) fn vacant_key(&self) -> usize {
        self.next
    }

    pub(crate) fn insert(&mut self, waker: Waker, loc: &'static Location<'static>) -> usize {
        let key = self.next;
        if key == self.entries.len() {
            self.entries.push(Entry::Occupied(waker, loc));
            self.next = key + 1;
        } else {
            match std::mem::replace(&mut self.entries[key], Entry::Occupied(waker, loc)) {
                Entry::Vacant(next) => self.next = next,
                Entry::Occupied(..) => unreachable!("the free list points at an occupied slot"),
            }
        }
        self.len += 1;
        key
    }

    /// Frees `key`; does nothing if the slab was emptied in between (by `cancel_all`).
    pub(crate) fn remove(&mut self, key: usize) {
        if let Some(entry @ Entry::Occupied(..)) = self.entries.get_mut(key) {
            *entry = Entry::Vacant(self.next);
            self.next = key;
            self.len -= 1;
        }
    }
}

/// One thread's participation in running an executor.
pub(crate) struct Runner {
    state: Arc<State>,
    local: Arc<ConcurrentQueue<Runnable>>,
    thread: u64,
    ticks: u32,
}

impl Runner {
    pub(crate) fn new(state: &Arc<State>) -> Runner {
        let local = Arc::new(ConcurrentQueue::bounded(LOCAL_CAPACITY));
        state.locals.write().unwrap_or_else(PoisonError::into_inner).push(local.clone());
        Runner { state: state.clone(), local, thread: thread_id(), ticks: 0 }
    }

    /// Makes wake-ups on this thread go to this runner's local queue until the guard drops.
    pub(crate) fn enter(&self) -> RunnerGuard {
        let prev =
            RUNNER.with(|cell| cell.replace((Arc::as_ptr(&self.state), Arc::as_ptr(&self.local))));
        RunnerGuard { prev }
    }

    /// Finds the next runnable: local, home, global, then stolen from another runner.
    pub(crate) fn find(&mut self) -> Option<Runnable> {
        self.ticks = self.ticks.wrapping_add(1);
        // Now and then look at the shared queues first, so that a pair of tasks waking
        // each other through the local queue cannot starve everyone else.
        if self.ticks % 61 == 0 {
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
        let start = self.ticks as usize % n;
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
    prev: (*const State, *const ConcurrentQueue<Runnable>),
}

impl Drop for RunnerGuard {
    fn drop(&mut self) {
        let _ = RUNNER.try_with(|cell| cell.set(self.prev));
    }
}
