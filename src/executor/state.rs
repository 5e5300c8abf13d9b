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
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::PoisonError;
use std::task::{Context, Poll, RawWakerVTable, Waker};

use async_task::Runnable;
use concurrent_queue::{ConcurrentQueue, PushError};
use event_listener::{Event, EventListener};

use super::sync::{
    Arc, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, RwLock, executor_thread_local, fence,
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
    /// `!Send` tasks, bound to the thread in `home_thread`.
    home: ConcurrentQueue<Runnable>,
    /// The id (see [`thread_id`]) of the only thread that may run `home` tasks; 0 = none yet.
    home_thread: AtomicU64,
    /// The local queue of every runner, for stealing.
    locals: RwLock<Vec<Arc<ConcurrentQueue<Runnable>>>>,
    /// Idle runners wait here.
    sleepers: Event,
    /// How many runners are registered in `sleepers` (see [`Sleeper`]).
    sleeping: AtomicUsize,
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
            sleeping: AtomicUsize::new(0),
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
        let _ = self.home.push(runnable);
        if self.any_sleeping() {
            self.sleepers.notify_additional(usize::MAX);
        }
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
        // The slot owns this reference (see `TaskRef`): it is not dropped here.
        let waker = ManuallyDrop::new(runnable.waker());
        active.insert(TaskRef::new(&waker), loc);
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
                // SAFETY: the slot owned a reference to the task, and its key's epoch
                // is over: no `Tracked::drop` will release that reference now.
                .map(|(t, _)| unsafe { t.into_waker() })
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

/// A task in the active set: the parts of its waker.
///
/// The slot owns one reference to the task (taken by [`State::register`]), which keeps
/// the task's memory alive while it is in the set. Whoever takes the task out of the
/// set, under its lock, releases that reference: `Tracked::drop` after freeing the
/// slot, or `State::cancel_all` by waking the task. A task's [`Tracked`] future keeps
/// a copy that owns nothing, taken at its first poll, so that freeing the slot of a
/// polled task is a plain store and never reads the (by then cold) slot.
#[derive(Clone, Copy)]
pub(crate) struct TaskRef(NonNull<()>, &'static RawWakerVTable);

// SAFETY: the state is `Sync`, and only reached through `&` while it is alive.
unsafe impl Send for Registration {}

// SAFETY: a `TaskRef` stands for a waker (which is `Send + Sync`), and is only turned
// into one by whoever took the task out of the active set, while the task is alive.
unsafe impl Send for TaskRef {}

impl TaskRef {
    fn new(waker: &Waker) -> TaskRef {
        // async-task wakers point at the task's header, never null.
        let data = NonNull::new(waker.data().cast_mut()).expect("a task waker has data");
        TaskRef(data, waker.vtable())
    }

    /// The waker that owns the set's reference to the task.
    ///
    /// # Safety
    ///
    /// The caller must own the set's reference: it took the task out of the set under
    /// its lock (see the type's docs), and calls this once.
    unsafe fn into_waker(self) -> Waker {
        // SAFETY: the parts come from a waker of this task, and the reference they
        // stand for is handed over to the new waker (see above).
        unsafe { Waker::new(self.0.as_ptr(), self.1) }
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

    /// Frees `key` and gives the task, whose reference the caller must release; `known`
    /// is the task if the caller knows it, else the slot is read. Does nothing and
    /// gives `None` if the slab was emptied since (by `cancel_all`, which took the
    /// reference).
    fn remove(&mut self, key: usize, epoch: u64, known: Option<TaskRef>) -> Option<TaskRef> {
        // The epoch tells whether the slot is still ours, so it need not be read.
        if epoch != self.epoch {
            return None;
        }
        let task = match known {
            Some(task) => {
                self.tasks[key] = None;
                task
            }
            None => self.tasks[key].take().expect("a live key has a task").0,
        };
        self.free.push(key);
        self.len -= 1;
        Some(task)
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
    /// This very task, copied from the waker of its first poll; it owns no reference
    /// (the slot does, see [`TaskRef`]). It spares reading the slot on drop.
    own: Option<TaskRef>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `Tracked`,
        // and `Drop` below does not touch it; `own` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.own.is_none() {
            // async-task polls a task with a waker of that task.
            this.own = Some(TaskRef::new(cx.waker()));
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
        let owned = state.active().remove(r.key, r.epoch, self.own);
        if let Some(task) = owned {
            // SAFETY: `remove` took the task out of the set under its lock, so its
            // reference is ours to release. The task outlives it: its future is being
            // dropped by whoever holds the task (its runnable, or async-task itself).
            drop(unsafe { task.into_waker() });
        }
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
