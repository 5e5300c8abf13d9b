//! The shared state of an executor: its queues, the sleep/wake protocol and the set of
//! live tasks.
//!
//! Queues, from the point of view of one runner (a thread inside `run`):
//! - its own bounded *local* queue, filled by tasks that it wakes itself;
//! - the *home* queue, for `!Send` tasks that may only run on the loop's home thread;
//! - the unbounded *global* injector, filled by wake-ups from other threads;
//! - the local queues of the other runners, which it steals from when idle.
//!
//! A runner also has a LIFO slot for the task it woke last, which it runs next. The
//! slot is shared: when a task has sat in a busy runner's slot for a while, an idle
//! runner that watches the slots (see [`Runner::claim_watch`]) takes it. A runner that
//! has been the only one for a while uses plain loads and stores on its slot instead
//! of atomic swaps (see [`Runner::lone_begin`]).
//!
//! Sleep/wake: an idle runner registers an `event_listener` listener and counts itself
//! in `sleeping`, then looks at the queues once more, and only then waits. Every push
//! then looks at `sleeping` and notifies one listener if it is not zero; a fence on
//! either side (see [`State::sleep`]) makes sure that the runner's second look sees
//! the push, or the push sees the count: no wake-up is lost. With nobody asleep, a
//! push costs no lock of the listener list.

use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::panic::Location;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::PoisonError;
// The loop's stop flag, which the runner reads: std's also under loom.
use std::sync::atomic::AtomicBool as StdAtomicBool;
use std::task::{Context, Poll};

use async_task::ScheduleInfo;
use concurrent_queue::{ConcurrentQueue, PushError};
use event_listener::{Event, EventListener};

use super::active::Slab;
use super::home::{self, Home};
use super::lone;
use super::report::{self, Incident, Reporter};
use super::sync::{
    Arc, AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering,
    RwLock, executor_thread_local, fence,
};

/// A task's runnable. Its metadata is the executor's state: the schedule functions
/// ([`schedule`], [`schedule_home`]) are then zero-sized, and async-task spares them
/// the reference counting it does around a schedule function that captures anything
/// (a wake costs one atomic operation on the task instead of four).
pub(crate) type Runnable = async_task::Runnable<Arc<State>>;

/// The schedule function of a `Send` task.
pub(crate) fn schedule(runnable: Runnable, info: ScheduleInfo) {
    let state: *const State = Arc::as_ptr(runnable.metadata());
    // SAFETY: the task's metadata keeps the state alive as long as the task, which the
    // runnable keeps alive until `State::schedule` queued it (see there for after).
    unsafe { (*state).schedule(runnable, info) }
}

/// The schedule function of a `!Send` task.
pub(crate) fn schedule_home(runnable: Runnable) {
    let state: *const State = Arc::as_ptr(runnable.metadata());
    // SAFETY: as in `schedule`.
    unsafe { (*state).schedule_home(runnable) }
}

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
    /// The local queue and LIFO slot of every runner, for stealing.
    locals: RwLock<Vec<Arc<Local>>>,
    /// How many runners there are (`locals.len()`, without the lock). A runner on its
    /// own reads it at every operation on its slot and queue: on a cache line of its
    /// own, which the others' writes (sleepers, pushes, the locks) leave alone.
    runners: Padded<AtomicUsize>,
    /// Idle runners wait here.
    sleepers: Event,
    /// How many runners are registered in `sleepers` (see [`Sleeper`]).
    sleeping: AtomicUsize,
    /// Every task that has not finished yet, so that dropping the executor can drop them.
    active: Mutex<Slab>,
    /// Where incidents go (stderr until the owner sets one).
    reporter: std::sync::OnceLock<Reporter>,
    /// Set when a task may wait in the shared queues: cheaper to read than they are
    /// (see [`State::nothing_queued`]). Set by every push into them but those between
    /// several runners (which share out, steal and watch), so exact with one runner.
    queued_hint: AtomicBool,
    /// How many tasks threads that run none of this executor's tasks have queued (see
    /// [`State::push_mark`]).
    pushes: AtomicUsize,
    /// Which runner watches the others' LIFO slots: the address of its [`Local`],
    /// [`NO_WATCHER`], or [`WATCHER_WANTED`].
    watcher: AtomicUsize,
    /// Set while a runner may be on its own (see [`Runner::lone_begin`]): a runner that
    /// joins then forces a barrier on it. Only that runner clears it.
    lone: AtomicBool,
    /// Set by [`State::cancel_all`]: a task spawned from then on is dropped as soon as
    /// it is queued (see [`State::spawned`]), and a runner drops what is queued before
    /// its next batch of tasks (see [`Runner::cancelled`]). Read by every runner at
    /// every batch: on a cache line of its own, written once.
    closed: Padded<AtomicBool>,
}

/// A value alone on its cache line (two lines: adjacent-line prefetch pairs them).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// See [`State::push_mark`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct PushMark(usize, u32, usize);

/// No runner watches the LIFO slots.
const NO_WATCHER: usize = 0;
/// A task went into a LIFO slot and an idle runner was woken to watch it.
const WATCHER_WANTED: usize = usize::MAX;

/// What the other runners see of a runner: its local queue, its LIFO slot, and how many
/// tasks it has started.
pub(crate) struct Local {
    queue: ConcurrentQueue<Runnable>,
    /// The task the runner woke last, which it runs next (a `Runnable::into_raw`
    /// pointer, or null). The runner puts and takes with swaps (with plain loads and
    /// stores while it is on its own: see [`Runner::lone_begin`]); a watcher takes a task
    /// that sat here for a whole watch period with a compare-and-swap.
    slot: AtomicPtr<()>,
    /// Tasks the runner started; only the runner writes it.
    started: AtomicU64,
    /// The thread the runner is entered on ([`thread_id`]), while it is (see
    /// [`Runner::enter`]); 0 between polls of its run, whose future may move to another
    /// thread meanwhile.
    thread: AtomicU64,
    /// Set by the runner while it is on its own (see [`Runner::lone_begin`]).
    on_own: AtomicBool,
    /// Set by the runner on its own around each plain operation on its slot or its
    /// private queue.
    in_op: AtomicBool,
    /// The tasks the runner queued at the back of the line while on its own: only it
    /// touches them then, with no atomic operation. A runner that joins moves them to
    /// the global queue (see [`State::join`]); the runner does, if it sees the joiner
    /// first ([`Runner::take_private`]).
    private: UnsafeCell<VecDeque<Runnable>>,
    /// Who may touch `private`: [`PRIVATE_OPEN`], [`PRIVATE_CLAIMED`] or
    /// [`PRIVATE_MOVED`].
    private_state: AtomicU8,
}

// SAFETY: `private` is only touched by the runner that owns it while it is on its own,
// and otherwise only by whoever won it through `private_state` (see `Runner::lone_begin`
// and `State::join`); every other field is `Sync`.
unsafe impl Sync for Local {}

/// The runner on its own uses its private queue.
const PRIVATE_OPEN: u8 = 0;
/// A runner (the owner, or one that joined) is moving the private queue's tasks out.
const PRIVATE_CLAIMED: u8 = 1;
/// The private queue's tasks were moved out; the owner uses the shared queues.
const PRIVATE_MOVED: u8 = 2;

impl Local {
    /// Whether a runner that joined after this one (`fenced`: as [`State::join`] said)
    /// may take from its slot now: the barrier worked (then every operation of this
    /// runner after the join sees the joiner), or this runner is not on its own. Without
    /// the barrier, the joiner waits until this runner has seen the count itself.
    fn may_take(&self, fenced: bool) -> bool {
        // After the barrier, `State::join` waited for the operation under way, if any.
        fenced || !self.on_own.load(Ordering::Acquire)
    }

    /// Claims the private queue and hands its tasks to `place`, then marks them moved
    /// (so a drain that sees the move under way waits for it: see [`State::drain`]).
    /// `false` if somebody else claimed it first. Only once the owner does no plain
    /// operation any more (it is no longer on its own, or a joiner waited for it).
    fn claim_private(&self, place: impl FnOnce(VecDeque<Runnable>)) -> bool {
        if self
            .private_state
            .compare_exchange(PRIVATE_OPEN, PRIVATE_CLAIMED, Ordering::Acquire, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // SAFETY: the owner does no plain operation on it any more (see above), and
        // this thread won it.
        place(std::mem::take(unsafe { &mut *self.private.get() }));
        self.private_state.store(PRIVATE_MOVED, Ordering::Release);
        true
    }

    /// Queues tasks taken out of the private queue: in the local queue, where the
    /// runner looks before the global one (they were queued before anything there),
    /// and where other runners can steal them; what does not fit, in the global one.
    /// Whether there were any.
    fn requeue(&self, state: &State, tasks: VecDeque<Runnable>) -> bool {
        let any = !tasks.is_empty();
        for r in tasks {
            if let Err(PushError::Full(r) | PushError::Closed(r)) = self.queue.push(r) {
                let _ = state.global.push(r);
                state.note_queued();
            }
        }
        any
    }

    /// Takes the task in the slot, if any.
    fn take_slot(&self) -> Option<Runnable> {
        if self.slot.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let raw = NonNull::new(self.slot.swap(ptr::null_mut(), Ordering::AcqRel))?;
        // SAFETY: a non-null slot holds a pointer from `Runnable::into_raw`, and the
        // swap made this thread its only owner.
        Some(unsafe { Runnable::from_raw(raw) })
    }
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

/// The runner that is running tasks on this thread, and its executor's state.
///
/// # Safety
///
/// The runner is only used on this thread, within the task (or schedule call) during
/// which this was called: `RunnerGuard` resets `RUNNER` before that runner can move or
/// drop, and the runner is only used through shared references meanwhile.
#[inline]
unsafe fn current_runner<'a>() -> Option<(*const State, &'a Runner)> {
    let (state, runner) = RUNNER.try_with(Cell::get).ok()?;
    // SAFETY: a non-null `RUNNER` points at a live runner (forwarded to the caller).
    unsafe { runner.as_ref() }.map(|runner| (state, runner))
}

/// Notes that the task being run on this thread for the executor `state` has finished:
/// what it wakes from now until it returns goes to the back of the line.
#[inline]
pub(crate) fn task_finishing(state: *const State) {
    // SAFETY: used at once, on this thread, in the task being run.
    if let Some((running, runner)) = unsafe { current_runner() } {
        if ptr::eq(running, state) {
            runner.to_back.set(true);
        }
    }
}

/// Runs `f`, with what it wakes on this thread's runner (if any) queued at the back of
/// the line, as asyncio's `call_soon` queues a callback, rather than in the LIFO slot.
#[inline]
pub(crate) fn waking_at_back<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: used on this thread, around `f`, in the task being run.
    let Some((_, runner)) = (unsafe { current_runner() }) else { return f() };
    let before = runner.to_back.replace(true);
    let out = f();
    runner.to_back.set(before);
    out
}

/// Makes the runner on this thread (if any) find nothing at its next look at its
/// queues, once, and end its batch: an event loop's main future, whose turn has come,
/// is polled then. Only a runner that runs in iterations (see
/// [`Runner::begin_iterations`]) is told so by the loop.
pub(crate) fn interrupt_runner() {
    // SAFETY: used at once, on this thread, in the task being run.
    if let Some((_, runner)) = unsafe { current_runner() } {
        runner.interrupt();
    }
}

/// A small, cheap, never-zero id of the calling thread.
pub(crate) fn thread_id() -> u64 {
    THREAD_ID.with(|id| {
        if id.get() == 0 {
            // Not part of the protocol: a plain std counter, also under loom.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
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
            runners: Padded(AtomicUsize::new(0)),
            sleepers: Event::new(),
            sleeping: AtomicUsize::new(0),
            active: Mutex::new(Slab::default()),
            reporter: std::sync::OnceLock::new(),
            watcher: AtomicUsize::new(NO_WATCHER),
            lone: AtomicBool::new(false),
            closed: Padded(AtomicBool::new(false)),
            queued_hint: AtomicBool::new(false),
            pushes: AtomicUsize::new(0),
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
    ///
    /// A runner that wakes one of its own tasks runs it next, from its LIFO slot (no
    /// one to wake, and a message and its answer stay in cache), except in two cases
    /// where the task goes to the back of the line, as asyncio's `call_soon` would put
    /// it: the task woke itself while it ran (it yielded), or the waking task has just
    /// finished (the woken task awaited it; asyncio resumes it after the tasks queued
    /// before).
    #[inline]
    pub(crate) fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        let Some(runner) = self.own_runner() else {
            // Once queued, the task may run to its end on another thread and drop the
            // last reference to this state before `push_global` is done with it: a
            // waker keeps the task, and so the state, alive until then. (On a runner
            // of this executor, the runner holds the state.)
            let _alive = runnable.waker();
            return self.push_global(runnable);
        };
        if info.woken_while_running || runner.to_back.get() {
            self.push_back(runner, runnable);
            return;
        }
        runner.count_push();
        if let Some(displaced) = runner.put_slot(runnable) {
            self.push_back(runner, displaced);
        }
    }

    /// Queues a task that was just spawned: at the back of the line, so that tasks
    /// start in the order they were spawned (as asyncio's `create_task` does).
    #[inline]
    pub(crate) fn schedule_spawned(&self, runnable: Runnable) {
        match self.own_runner() {
            Some(runner) => self.push_back(runner, runnable),
            None => self.push_global(runnable),
        }
    }

    /// A mark of what is queued, as seen from this thread: it changes when a task is
    /// queued here (or a runner on this thread takes one), and stays the same while
    /// nothing is. Callbacks scheduled under the same mark may run together, at the
    /// place in the line of the first one. Counts, not queue lengths: a length can
    /// come back to a value it had while tasks were queued in between.
    pub(crate) fn push_mark(&self) -> PushMark {
        match self.own_runner() {
            Some(runner) => PushMark(
                Arc::as_ptr(&runner.local) as usize,
                runner.ticks.get(),
                runner.pushes.get() as usize,
            ),
            None => PushMark(0, 0, self.pushes.load(Ordering::Relaxed)),
        }
    }

    /// Whether no task waits in the shared queues, where a thread that runs no task of
    /// this executor queues them: one load. A task queued by a runner of another thread
    /// may be missed (the order between threads is not defined).
    #[inline]
    pub(crate) fn nothing_queued(&self) -> bool {
        !self.queued_hint.load(Ordering::Relaxed)
    }

    /// Looks at the shared queues again (at the end of a loop's run, its runner gone):
    /// what [`State::nothing_queued`] says from now on.
    pub(crate) fn recheck_queued(&self) {
        let queued = !self.global.is_empty() || !self.home.is_empty();
        self.queued_hint.store(queued, Ordering::Relaxed);
    }

    /// Wakes every idle runner (a run may have to end).
    pub(crate) fn notify_all(&self) {
        self.sleepers.notify_additional(usize::MAX);
    }

    /// This thread's runner, if it is running tasks of this executor.
    #[inline]
    fn own_runner(&self) -> Option<&Runner> {
        // SAFETY: the callers use it at once, on this thread, to queue a task.
        let (state, runner) = unsafe { current_runner() }?;
        ptr::eq(state, self).then_some(runner)
    }

    /// Queues a runnable from a thread that runs no task of this executor.
    fn push_global(&self, runnable: Runnable) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        // The global queue is unbounded and never closed.
        let _ = self.global.push(runnable);
        self.note_queued();
        self.notify_one();
    }

    /// Notes that a task may wait in the shared queues.
    #[inline]
    fn note_queued(&self) {
        // Only written when clear: no cache line bounces between threads that push.
        if !self.queued_hint.load(Ordering::Relaxed) {
            self.queued_hint.store(true, Ordering::Relaxed);
        }
    }

    /// Queues a runnable behind every task that is queued: in the runner's local
    /// queue while nothing waits in the shared ones (which the runner only looks at
    /// after its own), else in the global queue. So a runner's tasks run in the order
    /// they were queued, and its local queue, which only grows while the shared ones
    /// are empty, cannot keep them waiting.
    #[inline]
    fn push_back(&self, runner: &Runner, runnable: Runnable) {
        runner.count_push();
        let mut shared_empty = self.global.is_empty() && self.home.is_empty();
        let runnable = if shared_empty {
            let was_lone = runner.lone.get();
            let Some(runnable) = runner.push_private(runnable) else { return };
            if was_lone {
                // It gave up being on its own just now: its private tasks may have
                // spilled into the global queue.
                shared_empty = self.global.is_empty() && self.home.is_empty();
            }
            runnable
        } else {
            runnable
        };
        let spilled = if shared_empty {
            match runner.local.queue.push(runnable) {
                Ok(()) => None,
                Err(PushError::Full(r) | PushError::Closed(r)) => Some(r),
            }
        } else {
            Some(runnable)
        };
        if let Some(r) = spilled {
            let _ = self.global.push(r);
            self.note_queued();
        }
        runner.notify_after_push();
    }

    /// After a task went into an empty LIFO slot: if runners are idle and none watches
    /// the slots, wakes one to watch (once, until a runner takes up the watch).
    ///
    /// A runner that goes idle later looks at the slots itself: the swap into the slot
    /// and the loads here are SeqCst, as are the loads of [`Runner::claim_watch`], after
    /// the sleeper count went up (and its fence) or the watch was given up.
    #[inline]
    fn watch_slot(&self) {
        if self.sleeping.load(Ordering::SeqCst) > 0
            && self.watcher.load(Ordering::SeqCst) == NO_WATCHER
        {
            self.want_watcher();
        }
    }

    #[cold]
    fn want_watcher(&self) {
        if self
            .watcher
            .compare_exchange(NO_WATCHER, WATCHER_WANTED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            self.sleepers.notify(1);
        }
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
        // As in `schedule`: off this executor's runners, a waker keeps the state alive.
        let _alive = match self.own_runner() {
            Some(runner) => {
                runner.count_push();
                None
            }
            None => {
                self.pushes.fetch_add(1, Ordering::Relaxed);
                Some(runnable.waker())
            }
        };
        self.home.push(runnable);
        self.note_queued();
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
        // Pairs with the fence in `spawned`: a spawn that raced this either queued its
        // task before the fence below, and the drain finds it, or sees `closed`.
        self.closed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let wakers = self.active().take_all();
        for waker in wakers {
            waker.wake();
        }
        // Dropping a runnable drops its future; the future's guard then finds its slot
        // gone, which `Slab::remove` tolerates.
        self.drain();
    }

    /// Whether [`State::cancel_all`] ran: what is queued from then on is only left to
    /// be dropped.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Called after a new task was queued: if the executor was cancelled meanwhile
    /// ([`State::cancel_all`], as a loop closes), drops what is queued, this task
    /// included. A spawn racing the cancel would otherwise leave its task queued after
    /// the drain, with its future alive and its `Task` unfinished until the executor's
    /// memory goes.
    ///
    /// No fence that costs anything: the push that queued the task ended with a full
    /// one (in [`State::any_sleeping`]), or, on a runner on its own, the compiler fence
    /// here is made a full one by the barrier of the drain's [`State::join`] (as in
    /// [`Runner::lone_begin`]; without the barrier, the drain waits for that runner to
    /// give its private queue up, and then empties it). Either `cancel_all`'s fence
    /// comes first, and the load below sees `closed`, or the push's does, and the
    /// drain finds the task.
    #[inline]
    pub(crate) fn spawned(&self) {
        lone::light();
        if self.closed.load(Ordering::Relaxed) {
            self.drain();
        }
    }

    /// Drops every queued runnable. Out of line: only ever called as an executor is
    /// cancelled, from the checks on the hot paths that notice it.
    #[cold]
    #[inline(never)]
    fn drain(&self) {
        // Counted as a runner meanwhile: a runner on its own gives its private queue
        // up (to its local queue) and takes the atomic way from its next operation on.
        let fenced = self.join();
        if !fenced {
            // Idle runners on their own give it up as they go back to sleep.
            self.notify_all();
        }
        // This thread's runner (a task of its cancels the executor) gives it up now.
        if let Some(runner) = self.own_runner() {
            if runner.lone.get() {
                runner.give_up_lone();
            }
        }
        while self.global.pop().is_ok() {}
        self.home.drain(self);
        let locals = self.locals.read().unwrap_or_else(PoisonError::into_inner).clone();
        let this_thread = thread_id();
        for local in locals {
            while local.queue.pop().is_ok() {}
            // The runners of this thread (nested ones too) are in no operation now.
            while local.thread.load(Ordering::Relaxed) != this_thread && !local.may_take(fenced) {
                std::thread::yield_now();
            }
            drop(local.take_slot());
            // A runner on its own that gave its private queue up itself (as it saw the
            // join, or, without the barrier, as the wait above waited for) moves the
            // tasks into its local queue before it marks them moved.
            while local.private_state.load(Ordering::Acquire) == PRIVATE_CLAIMED {
                std::thread::yield_now();
            }
            while local.queue.pop().is_ok() {}
        }
        // And what did not fit in its local queue went to the global one.
        while self.global.pop().is_ok() {}
        self.runners.fetch_sub(1, Ordering::Release);
    }

    /// Counts one more runner. If a runner may be on its own, makes it see the count
    /// (see [`Runner::lone_begin`]): whether that worked, so that its slot may be taken
    /// from once no plain operation is under way ([`Local::may_take`]).
    ///
    /// A runner on its own is then made to give up its private queue: its tasks go to
    /// the global queue, where the joiner finds them. (One of this thread, which a task
    /// of it joined, is in no plain operation either.)
    fn join(&self) -> bool {
        // SeqCst, as the load of `lone` after it, against `Runner::go_lone`'s store of
        // `lone` and its load of the count: one of the two sees the other's store.
        let before = self.runners.fetch_add(1, Ordering::SeqCst);
        if before == 0 || !self.lone.load(Ordering::SeqCst) {
            return true;
        }
        let locals = self.locals.read().unwrap_or_else(PoisonError::into_inner).clone();
        let this_thread = thread_id();
        let on_own = || locals.iter().filter(|l| l.on_own.load(Ordering::Acquire));
        // A runner of this thread (a task of it joins) needs no barrier: a thread sees
        // its own operations in order.
        if on_own().any(|l| l.thread.load(Ordering::Relaxed) != this_thread) && !lone::heavy() {
            // It sees the count at its next operation, and moves them itself.
            return false;
        }
        for local in on_own() {
            // A plain operation under way ends soon; every later one sees the count.
            while local.in_op.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            // The owner does no plain operation any more.
            local.claim_private(|tasks| {
                local.requeue(self, tasks);
            });
        }
        true
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
    /// Its queue and LIFO slot: the slot holds the task woken last by a task of this
    /// runner, which runs next (LIFO) and so keeps a message and its answer hot in
    /// cache.
    local: Arc<Local>,
    /// How many tasks in a row came from the slot.
    lifo_streak: Cell<u32>,
    /// Set while what the task that this runner runs wakes goes to the back of the
    /// line rather than to the LIFO slot: once that task finished (what it wakes then
    /// awaited it), or inside `waking_at_back` (see [`State::schedule`]).
    to_back: Cell<bool>,
    thread: u64,
    ticks: Cell<u32>,
    /// How many tasks this runner queued (see [`State::push_mark`]).
    pushes: Cell<u32>,
    /// The tick at which the next iteration begins (see [`Runner::begin_iterations`]).
    iter_end: Cell<u32>,
    /// Set by an event loop's run: this flag (its `stop()`) ends the run at the end of
    /// an iteration. Null for other runs.
    halt: Cell<HaltFlag>,
    /// The run ends at the end of this iteration.
    halt_soon: Cell<bool>,
    /// The run ends at the end of the next iteration.
    halt_next: Cell<bool>,
    /// The run ended at an iteration's end: `find` finds nothing more.
    halted: Cell<bool>,
    /// `find` finds nothing once, for the loop's main future to be polled (see
    /// [`interrupt_runner`]); the iteration then ends one look later than it would.
    interrupted: Cell<bool>,
    resume_end: Cell<u32>,
    /// On its own: plain operations on the slot (see [`Runner::lone_begin`]).
    lone: Cell<bool>,
    /// How many tasks this runner's private queue holds, as far as it knows (a runner
    /// that joined may have moved them: see [`Local::private`]).
    private_len: Cell<usize>,
    /// Tasks queued in a row while no other runner was counted, and this one was not
    /// on its own (see [`Runner::count_alone_push`]).
    alone_pushes: Cell<u32>,
    /// Whether the runners that were on their own when this one joined saw it (see
    /// [`State::join`]).
    fenced: bool,
    /// See [`Runner::on_iteration`].
    on_begin: Cell<Option<BeginHook>>,
}

/// What an event loop's run does when an iteration begins, and the flag without which
/// it has nothing to do (see [`Runner::on_iteration`]).
#[derive(Clone, Copy)]
struct BeginHook {
    hook: NonNull<dyn Fn() + Sync>,
    armed: NonNull<StdAtomicBool>,
}

// SAFETY: it points at a `Sync` closure, only called through a shared reference, and at
// an `AtomicBool`, only read; `on_iteration` asks that both outlive the runner, wherever
// the runner moves.
unsafe impl Send for BeginHook {}

/// Calls an iteration's hook (see [`Runner::on_iteration`]). Out of line, so that the
/// runner's look at an iteration's start stays small while the hook has nothing to do.
#[cold]
#[inline(never)]
fn call_hook(hook: NonNull<dyn Fn() + Sync>) {
    // SAFETY: `on_iteration` asks that the hook outlive the runner that passes it here.
    unsafe { hook.as_ref()() }
}

/// The flag that ends an event loop's run (see [`Runner::begin_iterations`]), or null.
#[derive(Clone, Copy)]
struct HaltFlag(*const StdAtomicBool);

// SAFETY: it points at an `AtomicBool` (which is `Sync`), only read, and
// `begin_iterations` asks that it outlive the runner, wherever the runner moves.
unsafe impl Send for HaltFlag {}

/// How many tasks in a row may come from a runner's LIFO slot before the others get
/// a turn (two tasks waking each other would otherwise keep the slot forever).
const MAX_LIFO_STREAK: u32 = 3;

/// How many tasks a runner that found itself alone (another runner left) queues while
/// it is the only runner before it goes on its own again (see [`Runner::lone_begin`]): a
/// runner that joins later pays a barrier of some microseconds, which this spreads over
/// many tasks.
const ALONE_BEFORE_LONE: u32 = 256;

/// What a watcher found in the others' LIFO slots (see [`Runner::watch`]).
pub(crate) enum Watched {
    /// It took a task that had waited a whole period; it is in this runner's queue.
    Took,
    /// Some slot holds a task: look again after another period.
    Occupied,
    /// Every slot is empty.
    Empty,
}

impl Runner {
    pub(crate) fn new(state: &Arc<State>) -> Runner {
        home::drop_left_behind();
        let local = Arc::new(Local {
            queue: ConcurrentQueue::bounded(LOCAL_CAPACITY),
            slot: AtomicPtr::new(ptr::null_mut()),
            started: AtomicU64::new(0),
            thread: AtomicU64::new(0),
            on_own: AtomicBool::new(false),
            in_op: AtomicBool::new(false),
            private: UnsafeCell::new(VecDeque::new()),
            private_state: AtomicU8::new(PRIVATE_MOVED),
        });
        state.locals.write().unwrap_or_else(PoisonError::into_inner).push(local.clone());
        let fenced = state.join();
        let runner = Runner {
            state: state.clone(),
            local,
            lifo_streak: Cell::new(0),
            to_back: Cell::new(false),
            thread: thread_id(),
            ticks: Cell::new(0),
            pushes: Cell::new(0),
            iter_end: Cell::new(0),
            halt: Cell::new(HaltFlag(ptr::null())),
            halt_soon: Cell::new(false),
            halt_next: Cell::new(false),
            halted: Cell::new(false),
            interrupted: Cell::new(false),
            resume_end: Cell::new(0),
            lone: Cell::new(false),
            private_len: Cell::new(0),
            alone_pushes: Cell::new(0),
            fenced,
            on_begin: Cell::new(None),
        };
        // The first runner goes on its own at once (a runner that joins it pays a
        // barrier); one that finds itself alone later, after a while (see
        // `count_alone_push`).
        if state.runners.load(Ordering::Relaxed) == 1 {
            runner.go_lone();
        }
        runner
    }

    /// Makes `hook` run each time an iteration begins (the first one, in
    /// [`begin_iterations`](Runner::begin_iterations), included) while `armed` is set,
    /// before the runner counts the tasks that the iteration runs: an event loop
    /// queues its due timers there, behind what is ready, as asyncio's `_run_once`
    /// does (and keeps `armed` set while it has timers). Not at the look that ends a
    /// run. Once an iteration, out of the busy paths; a load while `armed` is clear.
    ///
    /// # Safety
    ///
    /// `hook` and `armed` outlive the runner.
    pub(crate) unsafe fn on_iteration(&self, hook: &(dyn Fn() + Sync), armed: &StdAtomicBool) {
        let hook = NonNull::from(hook);
        // SAFETY: only the lifetime is erased: the caller keeps `hook` alive as long as
        // the runner, which alone uses it.
        let hook = unsafe {
            std::mem::transmute::<NonNull<dyn Fn() + Sync + '_>, NonNull<dyn Fn() + Sync>>(hook)
        };
        self.on_begin.set(Some(BeginHook { hook, armed: NonNull::from(armed) }));
    }

    /// Ends an iteration that tasks waking each other from the LIFO slot stretch (see
    /// `find`), if nothing is queued: a new one begins one look later, as the loop's
    /// future gets its turn (see [`interrupt_runner`]). With tasks queued, the
    /// iteration ends in its time. An event loop calls it when something waits for an
    /// iteration to begin (a timer is due). Out of the busy paths: at most once in a
    /// streak of batches.
    #[cold]
    pub(crate) fn end_stretch(&self) {
        if self.nothing_queued() && !self.interrupted.get() {
            self.iter_end.set(self.ticks.get().wrapping_add(1));
            self.interrupt();
        }
    }

    /// Runs the hook of [`on_iteration`](Runner::on_iteration), if any and armed.
    #[inline]
    fn iteration_begins(&self) {
        if let Some(BeginHook { hook, armed }) = self.on_begin.get() {
            // SAFETY: `on_iteration` asks that both outlive the runner.
            if unsafe { armed.as_ref() }.load(Ordering::Relaxed) {
                call_hook(hook);
            }
        }
    }

    /// After this runner queued a task (not into its slot): wakes an idle runner, if
    /// one is registered.
    ///
    /// A runner on its own skips the fence and the load of the sleeper count: a runner
    /// that joins forces a barrier on this thread before it can sleep (see
    /// [`Runner::lone_begin`]), so either this load of the runner count sees it, or the
    /// push is visible to its look at the queues before it sleeps.
    #[inline]
    fn notify_after_push(&self) {
        if self.lone.get() {
            lone::light();
            if self.state.runners.load(Ordering::Acquire) == 1 {
                return;
            }
            // Not alone any more: a runner that only ever takes tasks from the global
            // queue would otherwise stay on its own until it sleeps.
            self.give_up_lone();
        } else {
            self.count_alone_push();
        }
        self.state.notify_one();
    }

    /// Puts a task this runner woke into its slot; returns the one it displaced.
    #[inline]
    fn put_slot(&self, runnable: Runnable) -> Option<Runnable> {
        let raw = runnable.into_raw().as_ptr();
        let old = if self.lone_begin() {
            let slot = &self.local.slot;
            let old = slot.load(Ordering::Relaxed);
            slot.store(raw, Ordering::Relaxed);
            self.lone_end();
            old
        } else {
            // SeqCst: ordered before the loads in `watch_slot` (see there).
            let old = self.local.slot.swap(raw, Ordering::SeqCst);
            if old.is_null() {
                self.state.watch_slot();
            }
            self.count_alone_push();
            old
        };
        // SAFETY: a non-null slot holds a pointer from `into_raw`, and this runner took
        // it out: it is its only owner (see `lone_begin` for the plain way).
        NonNull::new(old).map(|old| unsafe { Runnable::from_raw(old) })
    }

    /// Takes the task in this runner's own slot, if any.
    #[inline]
    fn take_own_slot(&self) -> Option<Runnable> {
        let slot = &self.local.slot;
        if slot.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let raw = if self.lone_begin() {
            let task = slot.load(Ordering::Relaxed);
            slot.store(ptr::null_mut(), Ordering::Relaxed);
            self.lone_end();
            task
        } else {
            slot.swap(ptr::null_mut(), Ordering::AcqRel)
        };
        // SAFETY: as in `put_slot`.
        NonNull::new(raw).map(|raw| unsafe { Runnable::from_raw(raw) })
    }

    /// Queues a task at the back of the line in the private queue, if this runner is
    /// on its own (and the shared queues are empty: the caller looked); gives it back
    /// otherwise.
    #[inline]
    fn push_private(&self, runnable: Runnable) -> Option<Runnable> {
        if !self.lone_begin() {
            return Some(runnable);
        }
        // SAFETY: on its own, inside `lone_begin`/`lone_end`: only this thread touches
        // the private queue (see `lone_begin`).
        unsafe { &mut *self.local.private.get() }.push_back(runnable);
        self.lone_end();
        self.private_len.set(self.private_len.get() + 1);
        None
    }

    /// Takes the first task of the private queue, if any.
    #[inline]
    fn pop_private(&self) -> Option<Runnable> {
        if self.private_len.get() == 0 || !self.lone_begin() {
            return None;
        }
        // SAFETY: as in `push_private`.
        let r = unsafe { &mut *self.local.private.get() }.pop_front();
        self.lone_end();
        self.private_len.set(self.private_len.get().saturating_sub(1));
        r
    }

    /// Begins a plain operation on this runner's slot or private queue: whether it is
    /// on its own and still the only runner, and so may. If so, the caller does the
    /// operation and then calls [`Runner::lone_end`]; if not, it takes the atomic way.
    ///
    /// The other runners never store into a slot; they take from one that held a task
    /// for a whole watch period (see [`Runner::watch`]), and that is what a plain take
    /// or put must not race with; a runner that joins moves the private queue's tasks
    /// to the global queue. A runner on its own has no one to race with; the moment
    /// to care about is when another joins ([`State::join`]):
    /// - here: raise `in_op`, then load the runner count (only a compiler fence in
    ///   between), do the plain operation only if the count is 1 and the private queue
    ///   was not taken over, lower `in_op`;
    /// - the joiner: raise the count, then force a full barrier on every thread of
    ///   the process (`membarrier`), and touch this slot or private queue only while
    ///   `in_op` is down ([`Local::may_take`]).
    ///
    /// The barrier runs on this thread either before its load of the count, which then
    /// sees the joiner, or after it, and then its raised `in_op` is visible to the
    /// joiner until the operation ends (its lowering releases the plain stores). A
    /// joiner that has left again lowered the count after it moved the private queue:
    /// reading the count it lowered, this sees the move.
    #[inline]
    fn lone_begin(&self) -> bool {
        if !self.lone.get() {
            return false;
        }
        let local = &*self.local;
        local.in_op.store(true, Ordering::Relaxed);
        lone::light();
        // Acquire: a runner that left took from this slot (or moved the private queue)
        // before it lowered the count.
        if self.state.runners.load(Ordering::Acquire) == 1
            && local.private_state.load(Ordering::Relaxed) == PRIVATE_OPEN
        {
            return true;
        }
        local.in_op.store(false, Ordering::Release);
        self.give_up_lone();
        false
    }

    /// Stops being on its own (another runner joined, or took the private queue over):
    /// the private queue's tasks go to the global queue first.
    #[cold]
    #[inline(never)]
    fn give_up_lone(&self) {
        let mut any = false;
        self.take_private(|tasks| any = self.local.requeue(&self.state, tasks));
        // After the move: a runner that sees this one no longer on its own finds them.
        self.leave_lone();
        if any {
            self.state.note_queued();
            self.state.notify_one();
        }
        // A task put into the slot the plain way woke no watcher.
        if !self.local.slot.load(Ordering::SeqCst).is_null() {
            self.state.watch_slot();
        }
    }

    /// Before this runner sleeps: if it is on its own but no longer alone (a runner
    /// joined, or took its private queue over), it stops being on its own now, rather
    /// than at its next operation on its slot or queue, which may be long in coming.
    pub(crate) fn before_idle(&self) {
        if self.lone.get()
            && (self.state.runners.load(Ordering::Acquire) != 1
                || self.local.private_state.load(Ordering::Acquire) != PRIVATE_OPEN)
        {
            self.give_up_lone();
        }
    }

    /// Ends a plain operation begun by [`Runner::lone_begin`].
    #[inline]
    fn lone_end(&self) {
        self.local.in_op.store(false, Ordering::Release);
    }

    /// As this runner stops being on its own: hands the tasks of its private queue to
    /// `place`, unless a runner that joined moved them already (then waits until it
    /// has). The queue is marked moved only after `place` put them somewhere, so that
    /// a drain that sees the move under way can wait for it (see [`State::drain`]).
    #[cold]
    fn take_private(&self, place: impl FnOnce(VecDeque<Runnable>)) {
        self.private_len.set(0);
        // This runner is no longer on its own: no plain operation of its own is under way.
        if self.local.claim_private(place) {
            return;
        }
        // A joiner is moving them (a few pushes): wait until it has.
        while self.local.private_state.load(Ordering::Acquire) != PRIVATE_MOVED {
            std::thread::yield_now();
        }
    }

    /// Counts a task queued while this runner is not on its own: after enough of them
    /// in a row with no other runner, it goes on its own.
    #[inline]
    fn count_alone_push(&self) {
        if self.state.runners.load(Ordering::Relaxed) != 1 {
            self.alone_pushes.set(0);
            return;
        }
        let n = self.alone_pushes.get() + 1;
        self.alone_pushes.set(n);
        if n >= ALONE_BEFORE_LONE {
            self.go_lone();
        }
    }

    /// Goes on its own, if it still is the only runner and the barrier that a joiner
    /// needs is available.
    #[cold]
    #[inline(never)]
    fn go_lone(&self) {
        // The count read as 1 before this (Relaxed) may have been lowered by a runner
        // that was on its own and left: its clearing of `lone` comes before the swap
        // below.
        fence(Ordering::Acquire);
        self.alone_pushes.set(0);
        if !lone::available() {
            return;
        }
        // Before `lone`: a joiner that sees `lone` sees these too. (Nobody else touches
        // the private queue now: a joiner that moved it counted itself before, and
        // the count is 1 again.)
        self.local.private_state.store(PRIVATE_OPEN, Ordering::Relaxed);
        self.local.on_own.store(true, Ordering::Relaxed);
        // SeqCst, as the load of the count after it (see `State::join`).
        let was = self.state.lone.swap(true, Ordering::SeqCst);
        if self.state.runners.load(Ordering::SeqCst) == 1 {
            self.lone.set(true);
            return;
        }
        self.local.on_own.store(false, Ordering::Release);
        // Nobody else can be on its own while this runner is counted; if `lone` was
        // down, nobody was before either.
        if !was {
            self.state.lone.store(false, Ordering::Release);
        }
    }

    /// Stops using plain operations (another runner joined, or this one stops).
    #[cold]
    #[inline(never)]
    fn leave_lone(&self) {
        self.lone.set(false);
        // Release: a runner that sees either flag down sees this runner's plain
        // operations, all made before.
        self.local.on_own.store(false, Ordering::Release);
        self.state.lone.store(false, Ordering::Release);
    }

    /// Makes this runner run tasks in iterations, as asyncio's loop does: an iteration
    /// runs the tasks that were queued when it began (the first, those queued now);
    /// what they queue waits for the next one. Once `halt` is set, the runner finds
    /// nothing more after the current iteration (after the next one, once
    /// [`halt_after_next`](Runner::halt_after_next) was called).
    ///
    /// Iterations are counted in the runner's looks at its queues (its ticks): one that
    /// begins with `n` tasks queued ends `n` looks later, or at the first look that
    /// finds nothing. With one runner that is exact; with several, another runner may
    /// take some of them, and an iteration then ends late, but it ends.
    ///
    /// # Safety
    ///
    /// `halt` outlives the runner.
    pub(crate) unsafe fn begin_iterations(&self, halt: *const StdAtomicBool) {
        self.halt.set(HaltFlag(halt));
        // Take in what waits in the global queue (in order: this runner's queue is
        // empty), so that the tasks queued from now on go to this runner's queue, which
        // is cheaper, rather than behind them in the global one.
        // With other runners, they share the global queue out (and the order between
        // threads is not defined). (`force_push`, which cannot displace anything here,
        // rather than one more call of `push`, which then stayed out of line in the hot
        // paths.)
        if self.state.runners.load(Ordering::Relaxed) <= 1 {
            let room = self.local.queue.capacity().unwrap_or(0);
            for r in self.state.global.try_iter().take(room) {
                let _ = self.local.queue.force_push(r);
            }
        }
        self.iteration_begins();
        if self.state.global.is_empty() && self.state.home.is_empty() {
            // (A task queued by another thread meanwhile may be missed: the order between
            // threads is not defined.)
            self.state.queued_hint.store(false, Ordering::Relaxed);
        }
        let n = self.queued_len().max(1);
        self.iter_end.set(self.ticks.get().wrapping_add(1).wrapping_add(n as u32));
    }

    /// See [`interrupt_runner`].
    fn interrupt(&self) {
        if !self.interrupted.replace(true) {
            self.resume_end.set(self.iter_end.get());
            self.iter_end.set(self.ticks.get().wrapping_add(1));
        }
    }

    /// The run ends at the end of the iteration after the current one: as asyncio's
    /// `run_until_complete` does once its future completed (the future's done callback,
    /// which stops the loop, runs in the next iteration).
    pub(crate) fn halt_after_next(&self) {
        self.halt_next.set(true);
    }

    /// Whether the run ended (see [`Runner::begin_iterations`]).
    #[inline]
    pub(crate) fn halted(&self) -> bool {
        self.halted.get()
    }

    /// How many tasks wait in this runner's queue and the shared ones.
    fn queued_len(&self) -> usize {
        // Once a runner that joined took the private queue over, its tasks are counted
        // where they went (this runner's `private_len` is only reset at its next
        // operation).
        let private = if self.local.private_state.load(Ordering::Relaxed) == PRIVATE_OPEN {
            self.private_len.get()
        } else {
            0
        };
        let local = self.local.queue.len() + private;
        if self.state.nothing_queued() {
            return local;
        }
        local + self.state.global.len() + self.state.home.len()
    }

    /// A new iteration begins at this look (`ticks`): whether the run ends here.
    #[cold]
    #[inline(never)]
    fn iteration_boundary(&self, ticks: u32) -> bool {
        if self.interrupted.replace(false) {
            // This look was not one: the iteration ends one look later.
            self.iter_end.set(self.resume_end.get().wrapping_add(1));
            return true;
        }
        // SAFETY: `begin_iterations` asks that the flag outlive the runner.
        let halt = self.halt_soon.get()
            || unsafe { self.halt.get().0.as_ref() }.is_some_and(|h| h.load(Ordering::Acquire));
        if halt {
            self.halted.set(true);
            self.iter_end.set(ticks.wrapping_add(1));
            return true;
        }
        if self.halt_next.replace(false) {
            self.halt_soon.set(true);
        }
        self.iteration_begins();
        let n = self.queued_len().max(1);
        self.iter_end.set(ticks.wrapping_add(n as u32));
        false
    }

    /// Called after each task this runner ran: what the next one wakes may use the
    /// LIFO slot again.
    #[inline]
    pub(crate) fn ran(&self) {
        self.to_back.set(false);
    }

    /// Makes wake-ups on this thread go to this runner until the guard drops.
    ///
    /// A runner does its operations only while entered: the thread noted in its
    /// [`Local`] meanwhile is the one that does them (see [`State::join`]).
    pub(crate) fn enter(&self) -> RunnerGuard {
        let thread = &self.local.thread;
        // Only the thread that polls the runner's run writes it: no read-modify-write.
        let prev_thread = thread.load(Ordering::Relaxed);
        thread.store(thread_id(), Ordering::Relaxed);
        let prev = RUNNER.with(|cell| cell.replace((Arc::as_ptr(&self.state), self)));
        RunnerGuard { prev, thread, prev_thread }
    }

    /// Finds the next runnable: LIFO slot, local, home, global, then stolen from
    /// another runner.
    pub(crate) fn find(&self) -> Option<Runnable> {
        let found = self.find_inner();
        if found.is_some() {
            // Only this runner writes it: no read-modify-write needed.
            let started = &self.local.started;
            started.store(started.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
        found
    }

    /// Whether the executor was cancelled (a loop closed on another thread while this
    /// runner runs it); if so, drops what is queued. A task queued after the
    /// cancellation's drain (woken, or put back in line as it yielded) is then dropped,
    /// not run. Looked at before each batch of tasks, not before each task: a batch
    /// under way may still run a few.
    #[inline]
    pub(crate) fn cancelled(&self) -> bool {
        // Set before the cancellation's wakes and drain: a task queued after them is
        // seen with it.
        if !self.state.is_cancelled() {
            return false;
        }
        self.state.drain();
        true
    }

    #[inline]
    fn find_inner(&self) -> Option<Runnable> {
        if let Some(r) = self.take_own_slot() {
            if self.lifo_streak.get() < MAX_LIFO_STREAK {
                self.lifo_streak.set(self.lifo_streak.get() + 1);
                return Some(r);
            }
            // Its turn is over, but with nobody in line behind it, going to the back
            // of the line would only cost a push and a pop. Two tasks that wake each
            // other this way stretch the iteration (they are the LIFO slot's one
            // difference from asyncio's order), but must not hold off the end of a run
            // or the loop's future forever: with one of those pending, this is the
            // iteration's end.
            if self.nothing_queued() {
                if self.end_pending() {
                    let ticks = self.tick();
                    if self.iteration_boundary(ticks) {
                        // The task waits first in line.
                        self.state.push_back(self, r);
                        return None;
                    }
                    // A new iteration began at this look: this task, then what was
                    // queued as it began (the due timers, say), and no more.
                    let n = self.queued_len() as u32;
                    self.iter_end.set(ticks.wrapping_add(n).wrapping_add(1));
                }
                return Some(r);
            }
            // Its turn is over: to the back of the line.
            self.state.push_back(self, r);
        }
        self.lifo_streak.set(0);
        let ticks = self.tick();
        if ticks == self.iter_end.get() && self.iteration_boundary(ticks) {
            return None;
        }
        // The local queue first: it only holds tasks queued while the shared queues
        // were empty (see `State::push_back`), so it cannot keep them waiting.
        // Two loads to see it empty cost less than a failed pop.
        if !self.local.queue.is_empty() {
            if let Ok(r) = self.local.queue.pop() {
                return Some(r);
            }
        }
        // Then the private queue: what the local queue holds was queued before this
        // runner went on its own, so before the private queue's tasks.
        if let Some(r) = self.pop_private() {
            return Some(r);
        }
        // The home queue before the global one, but now and then the other way round:
        // a `!Send` task that yields in a loop would keep the home queue busy forever.
        if ticks % 61 == 0 {
            if let Some(r) = self.pop_global() {
                return Some(r);
            }
        }
        if let Some(r) = self.pop_home() {
            return Some(r);
        }
        if let Some(r) = self.pop_global() {
            return Some(r);
        }
        self.steal_or_end(ticks)
    }

    /// Steals; if there is nothing to steal either, nothing is queued: the iteration is
    /// over, and the next look (after `ticks`) begins one. Out of line: the idle path
    /// (in `find`, it cost the busy paths about 4 instructions a task).
    ///
    /// A run that was to end with this iteration or the next ends now: the next one
    /// would be empty, and an idle runner would otherwise sleep before its next look.
    #[inline(never)]
    fn steal_or_end(&self, ticks: u32) -> Option<Runnable> {
        let stolen = self.steal();
        if stolen.is_none() {
            self.iter_end.set(ticks.wrapping_add(1));
            if self.halt_soon.get() || self.halt_next.replace(false) {
                self.halted.set(true);
            }
        }
        stolen
    }

    /// Whether the run is to end, or the loop's future to take its turn, at the end of
    /// an iteration (see [`Runner::iteration_boundary`]).
    #[inline]
    fn end_pending(&self) -> bool {
        self.interrupted.get()
            || self.halt_soon.get()
            || self.halt_next.get()
            // SAFETY: `begin_iterations` asks that the flag outlive the runner.
            || unsafe { self.halt.get().0.as_ref() }
                .is_some_and(|h| h.load(Ordering::Relaxed))
    }

    /// Counts a task queued by this runner.
    #[inline]
    fn count_push(&self) {
        self.pushes.set(self.pushes.get().wrapping_add(1));
    }

    /// Counts a look at the queues.
    #[inline]
    fn tick(&self) -> u32 {
        let ticks = self.ticks.get().wrapping_add(1);
        self.ticks.set(ticks);
        ticks
    }

    /// Whether no task waits in this runner's queue or the shared ones.
    #[inline]
    fn nothing_queued(&self) -> bool {
        self.private_len.get() == 0
            && self.local.queue.is_empty()
            && self.state.global.is_empty()
            && self.state.home.is_empty()
    }

    fn pop_home(&self) -> Option<Runnable> {
        self.state.home.pop_for(self.thread, || self.state.is_cancelled())
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
                    if let Err(PushError::Full(r) | PushError::Closed(r)) = self.local.queue.push(r)
                    {
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
            let victim = &locals[(start + i) % n].queue;
            if Arc::ptr_eq(&locals[(start + i) % n], &self.local) || victim.is_empty() {
                continue;
            }
            let first = victim.pop().ok();
            let half = victim.len().div_ceil(2);
            for _ in 0..half {
                match victim.pop() {
                    Ok(r) => {
                        if let Err(PushError::Full(r) | PushError::Closed(r)) =
                            self.local.queue.push(r)
                        {
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

    /// This runner's mark in [`State::watcher`].
    fn watch_id(&self) -> usize {
        Arc::as_ptr(&self.local) as usize
    }

    /// Called by an idle runner before it waits: whether it watches the other
    /// runners' LIFO slots now. It does if a runner was woken for that, or if no
    /// runner watches and some slot holds a task; at most one runner watches.
    pub(crate) fn claim_watch(&self) -> bool {
        let me = self.watch_id();
        let current = self.state.watcher.load(Ordering::SeqCst);
        if current == me {
            return true;
        }
        let wanted = current == WATCHER_WANTED || (current == NO_WATCHER && self.others_busy());
        wanted
            && self
                .state
                .watcher
                .compare_exchange(current, me, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
    }

    /// Gives up the watch, if this runner holds it.
    pub(crate) fn release_watch(&self) {
        let _ = self.state.watcher.compare_exchange(
            self.watch_id(),
            NO_WATCHER,
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
    }

    /// Whether another runner's LIFO slot holds a task.
    fn others_busy(&self) -> bool {
        let locals = self.state.locals.read().unwrap_or_else(PoisonError::into_inner);
        locals
            .iter()
            .any(|l| !Arc::ptr_eq(l, &self.local) && !l.slot.load(Ordering::SeqCst).is_null())
    }

    /// One look of the watcher at the others' LIFO slots. `seen` holds what the last
    /// look saw (slot and tasks started, per runner); a task still in the same slot
    /// while its runner started nothing since has waited a whole period behind a busy
    /// task: it is taken into this runner's queue.
    pub(crate) fn watch(&self, seen: &mut Vec<(usize, usize, u64)>) -> Watched {
        let locals = self.state.locals.read().unwrap_or_else(PoisonError::into_inner);
        let mut occupied = false;
        let mut now = Vec::with_capacity(locals.len());
        for l in locals.iter().filter(|l| !Arc::ptr_eq(l, &self.local)) {
            let id = Arc::as_ptr(l) as usize;
            let started = l.started.load(Ordering::Relaxed);
            let task = l.slot.load(Ordering::SeqCst);
            if task.is_null() {
                continue;
            }
            occupied = true;
            if seen.contains(&(id, task as usize, started))
                && l.may_take(self.fenced)
                && l.slot
                    .compare_exchange(task, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                // SAFETY: the slot held a pointer from `Runnable::into_raw`, and the
                // compare-and-swap took it out: this thread owns it.
                let r = unsafe { Runnable::from_raw(NonNull::new(task).expect("not null")) };
                if let Err(PushError::Full(r) | PushError::Closed(r)) = self.local.queue.push(r) {
                    let _ = self.state.global.push(r);
                }
                return Watched::Took;
            }
            now.push((id, task as usize, started));
        }
        *seen = now;
        if occupied { Watched::Occupied } else { Watched::Empty }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let mut private = VecDeque::new();
        if self.lone.get() {
            self.take_private(|tasks| private = tasks);
            self.leave_lone();
        }
        self.release_watch();
        self.state
            .locals
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|q| !Arc::ptr_eq(q, &self.local));
        // Release: a runner left on its own sees what this one took from its slot.
        let alone = self.state.runners.fetch_sub(1, Ordering::Release) == 1;
        // Hand what is left to the other runners (or the next run).
        let mut moved = false;
        let slot = self.local.take_slot();
        // The local queue only grows while the shared ones are empty (see
        // `State::push_back`), so what waits in the global queue was queued after it.
        // With no other runner to take from the global queue meanwhile, this runner's
        // tasks go in front of it, so that the next run takes them in their order.
        let later: Vec<Runnable> =
            if alone && (slot.is_some() || !self.local.queue.is_empty() || !private.is_empty()) {
                self.state.global.try_iter().collect()
            } else {
                Vec::new()
            };
        let local = std::iter::from_fn(|| self.local.queue.pop().ok());
        for r in slot.into_iter().chain(local).chain(private) {
            let _ = self.state.global.push(r);
            moved = true;
        }
        for r in later {
            let _ = self.state.global.push(r);
        }
        if moved {
            self.state.note_queued();
            self.state.notify_one();
        }
        // A drain that raced this (a loop closed on another thread as this run ended)
        // may have emptied the global queue before the pushes above: as a spawn does,
        // look at the cancellation after them (the fence pairs with `cancel_all`'s).
        fence(Ordering::SeqCst);
        self.state.spawned();
    }
}

/// Restores the previous runner of this thread when dropped.
pub(crate) struct RunnerGuard {
    prev: (*const State, *const Runner),
    /// The runner's [`Local::thread`], and what it held before.
    thread: *const AtomicU64,
    prev_thread: u64,
}

impl Drop for RunnerGuard {
    fn drop(&mut self) {
        let _ = RUNNER.try_with(|cell| cell.set(self.prev));
        // SAFETY: the guard is dropped before the runner it entered (whose `Local` an
        // `Arc` keeps), as `enter`'s callers keep it in the scope where they use the
        // runner.
        unsafe { (*self.thread).store(self.prev_thread, Ordering::Relaxed) };
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex as StdMutex;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    /// The tests of runners on their own, one at a time: a failed barrier (injected)
    /// stops every runner from going on its own until the test is over.
    static SERIAL: StdMutex<()> = StdMutex::new(());

    /// Holds `SERIAL`; forgets an injected barrier failure when dropped.
    struct Serial(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

    fn serial() -> Serial {
        Serial(SERIAL.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The tests' lock, an executor's state, and its first runner, on its own.
    fn alone() -> (Serial, Arc<State>, Runner) {
        let serial = serial();
        let state = Arc::new(State::new());
        let owner = Runner::new(&state);
        assert!(owner.lone.get(), "the first runner goes on its own");
        (serial, state, owner)
    }

    impl Drop for Serial {
        fn drop(&mut self) {
            lone::FAIL_HEAVY.set(false);
            lone::forget();
        }
    }

    /// A task of `state` that does nothing, not yet queued.
    fn task(state: &Arc<State>) -> Runnable {
        let (runnable, task) = async_task::Builder::new()
            .metadata(state.clone())
            .spawn(|_| async {}, async_task::WithInfo(schedule));
        task.detach();
        runnable
    }

    /// The address of a runnable's task, which names it.
    fn id(r: &Runnable) -> usize {
        r.waker().data() as usize
    }

    /// Puts and takes tasks through `runner`'s slot until it could go on its own;
    /// whether it did.
    fn put_and_take_alone(state: &Arc<State>, runner: &Runner) -> bool {
        for _ in 0..ALONE_BEFORE_LONE {
            assert!(runner.put_slot(task(state)).is_none());
            assert!(runner.take_own_slot().is_some());
        }
        runner.lone.get()
    }

    /// Two looks of `watcher` at the other slots, as two watch periods would make.
    fn watch_twice(watcher: &Runner) -> Watched {
        let mut seen = Vec::new();
        watcher.watch(&mut seen);
        watcher.watch(&mut seen)
    }

    #[test]
    fn the_first_runner_goes_on_its_own_where_the_barrier_is_available() {
        let _serial = serial();
        let state = Arc::new(State::new());
        let owner = Runner::new(&state);
        assert!(lone::available(), "membarrier is available on the machines we test on");
        assert!(owner.lone.get());
    }

    #[test]
    fn a_runner_on_its_own_uses_plain_operations_and_a_joiner_still_takes_from_it() {
        let (_serial, state, owner) = alone();
        assert!(owner.put_slot(task(&state)).is_none());

        // A runner joins (the barrier works) while the task waits in the slot: it sees
        // the task, and takes it after a whole watch period.
        let joiner = Runner::new(&state);
        assert!(joiner.fenced);
        assert!(matches!(watch_twice(&joiner), Watched::Took));
        assert!(joiner.local.queue.pop().is_ok());
        // The owner now finds its slot empty (the task is not run twice); its next
        // operation sees the joiner, and it takes the atomic way from then on.
        assert!(owner.take_own_slot().is_none());
        assert!(owner.put_slot(task(&state)).is_none());
        assert!(owner.take_own_slot().is_some());
        assert!(!owner.lone.get());
        assert!(!owner.local.on_own.load(Ordering::Relaxed));
        assert!(!state.lone.load(Ordering::Relaxed));

        // Alone again once the joiner left: on its own again after enough puts.
        drop(joiner);
        assert!(put_and_take_alone(&state, &owner));
    }

    #[test]
    fn a_runner_joining_one_of_its_own_thread_forces_no_barrier() {
        let (_serial, state, owner) = alone();
        // As a task of the owner running the executor again, nested: no barrier.
        let before = lone::HEAVY_CALLS.get();
        let entered = owner.enter();
        let nested = Runner::new(&state);
        assert!(nested.fenced);
        assert_eq!(lone::HEAVY_CALLS.get(), before);
        drop(nested);
        drop(entered);
        // The owner sees it and is no longer on its own; alone again, it goes on its
        // own after a while, and a runner of another thread then forces the barrier.
        assert!(owner.put_slot(task(&state)).is_none());
        assert!(!owner.lone.get());
        assert!(owner.take_own_slot().is_some());
        assert!(put_and_take_alone(&state, &owner));
        // Between polls of its run (not entered), the owner's run may be polled on
        // another thread at any time: a runner joining from this thread then forces
        // the barrier too.
        let before = lone::HEAVY_CALLS.get();
        drop(Runner::new(&state));
        assert_eq!(lone::HEAVY_CALLS.get(), before + 1);
        assert!(owner.put_slot(task(&state)).is_none());
        assert!(owner.take_own_slot().is_some());
        assert!(put_and_take_alone(&state, &owner));
        let st = state.clone();
        let calls = std::thread::spawn(move || {
            let joiner = Runner::new(&st);
            (joiner.fenced, lone::HEAVY_CALLS.get())
        })
        .join()
        .unwrap();
        assert_eq!(calls, (true, 1));
    }

    #[test]
    fn tasks_moved_out_of_a_private_queue_are_counted_once_for_the_iteration() {
        let (_serial, state, owner) = alone();
        let _entered = owner.enter();
        for _ in 0..3 {
            state.push_back(&owner, task(&state));
        }
        assert_eq!(owner.queued_len(), 3);
        // A nested run moves them to the owner's local queue before the owner looks.
        let nested = Runner::new(&state);
        assert_eq!(owner.local.queue.len(), 3);
        assert_eq!(owner.queued_len(), 3, "counted in the private queue and again");
        drop(nested);
    }

    #[test]
    fn a_joiner_moves_the_private_queue_of_a_runner_on_its_own_in_order() {
        let (_serial, state, owner) = alone();
        let _entered = owner.enter();
        let tasks: Vec<Runnable> = (0..5).map(|_| task(&state)).collect();
        let ids: Vec<usize> = tasks.iter().map(id).collect();
        for t in tasks {
            state.push_back(&owner, t);
        }
        assert_eq!(owner.private_len.get(), 5);
        assert!(owner.local.queue.is_empty() && state.global.is_empty());

        // From another thread (one of the owner's own needs no barrier).
        let st = state.clone();
        let fenced = std::thread::spawn(move || Runner::new(&st).fenced).join().unwrap();
        assert!(fenced);
        // Into the owner's local queue, where the other runners steal from.
        let moved: Vec<usize> =
            std::iter::from_fn(|| owner.local.queue.pop().ok()).map(|r| id(&r)).collect();
        assert_eq!(moved, ids, "every task, once, in the order queued");
        assert!(state.global.is_empty());
        // The owner sees it at its next operation: nothing is left to it.
        assert!(owner.pop_private().is_none());
        assert!(!owner.lone.get());
        assert_eq!(owner.private_len.get(), 0);
    }

    #[test]
    fn tasks_moved_out_of_a_private_queue_keep_their_place_before_newer_ones() {
        let (_serial, state, owner) = alone();
        let _entered = owner.enter();
        let mut order = Vec::new();
        // Two tasks queued by the runner on its own, then one from another thread,
        // then one more by the runner (behind the latter, in the global queue).
        for _ in 0..2 {
            let t = task(&state);
            order.push(id(&t));
            state.push_back(&owner, t);
        }
        let t = task(&state);
        order.push(id(&t));
        state.push_global(t);
        let t = task(&state);
        order.push(id(&t));
        state.push_back(&owner, t);
        // A runner joins and leaves before the owner looks.
        drop(Runner::new(&state));
        let found: Vec<usize> = std::iter::from_fn(|| owner.find()).map(|r| id(&r)).collect();
        assert_eq!(found, order);
    }

    #[test]
    fn without_the_barrier_a_joiner_waits_until_the_lone_runner_saw_it() {
        let (_serial, state, owner) = alone();
        let first = task(&state);
        let first_id = id(&first);
        assert!(owner.put_slot(first).is_none());
        let queued = task(&state);
        let queued_id = id(&queued);
        {
            let _entered = owner.enter();
            state.push_back(&owner, queued);
        }
        assert_eq!(owner.private_len.get(), 1);

        // A runner joins from another thread, and its barrier fails.
        let (looked_tx, looked_rx) = mpsc::channel::<Watched>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let st = state.clone();
        let joiner = std::thread::spawn(move || {
            lone::FAIL_HEAVY.set(true);
            let joiner = Runner::new(&st);
            assert!(!joiner.fenced);
            assert!(!lone::available(), "after a failed barrier nobody goes on its own");
            looked_tx.send(watch_twice(&joiner)).unwrap();
            go_rx.recv().unwrap();
            looked_tx.send(watch_twice(&joiner)).unwrap();
            // Keep the task it took alive (and so its address) until the owner looked.
            go_rx.recv().unwrap();
        });
        // The owner has not seen the joiner yet: its slot and private queue are left
        // alone.
        assert!(matches!(looked_rx.recv().unwrap(), Watched::Occupied));
        assert!(state.global.is_empty());
        // Its next operation sees it, and is atomic; its private queue goes to its
        // local queue, where the joiner can steal it.
        let taken = owner.take_own_slot().expect("the owner's task is still there");
        assert_eq!(id(&taken), first_id);
        assert!(!owner.local.on_own.load(Ordering::Relaxed));
        let moved: Vec<usize> =
            std::iter::from_fn(|| owner.local.queue.pop().ok()).map(|r| id(&r)).collect();
        assert_eq!(moved, [queued_id]);
        // From then on the joiner may take from that slot.
        assert!(owner.put_slot(taken).is_none());
        go_tx.send(()).unwrap();
        assert!(matches!(looked_rx.recv().unwrap(), Watched::Took));
        assert!(owner.take_own_slot().is_none());
        go_tx.send(()).unwrap();
        joiner.join().unwrap();
    }

    #[test]
    fn dropping_the_tasks_on_the_thread_of_a_runner_on_its_own_does_not_wait_for_it() {
        let (_serial, state, owner) = alone();
        let _entered = owner.enter();
        assert!(owner.put_slot(task(&state)).is_none());
        state.push_back(&owner, task(&state));
        // As a loop closed by a task of its own would: its tasks are dropped on the
        // thread of its runner, which is in no operation on its slot then.
        lone::FAIL_HEAVY.set(true);
        state.drain();
        lone::FAIL_HEAVY.set(false);
        assert!(owner.local.slot.load(Ordering::Relaxed).is_null());
        assert_eq!(owner.private_len.get(), 0);
        assert_eq!(state.runners.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn dropping_the_tasks_from_another_thread_after_a_failed_barrier_does_not_wait_for_an_idle_runner()
     {
        let _serial = serial();
        let state = Arc::new(State::new());
        let (idle_tx, idle_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let st = state.clone();
        let owner = std::thread::spawn(move || {
            let owner = Runner::new(&st);
            assert!(owner.lone.get());
            // Idle, as a runner asleep: its slot and private queue are empty.
            let mut sleeper = Some(st.sleep());
            idle_tx.send(()).unwrap();
            // Woken (by the drain), it goes through its idle path again.
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let start = Instant::now();
            while sleeper.as_mut().is_some_and(|s| s.poll(&mut cx).is_pending())
                && start.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(sleeper);
            owner.before_idle();
            go_rx.recv().unwrap();
        });
        idle_rx.recv().unwrap();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let st = state.clone();
        let drainer = std::thread::spawn(move || {
            lone::FAIL_HEAVY.set(true);
            st.drain();
            done_tx.send(()).unwrap();
        });
        let finished = done_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        go_tx.send(()).unwrap();
        owner.join().unwrap();
        drainer.join().unwrap();
        assert!(finished, "the drain waited 30 s for an idle runner on its own");
    }

    /// A task that a runner on its own queues after the executor was cancelled on
    /// another thread is dropped by the spawn's look at the cancellation, not left
    /// queued. (With a failed barrier, the cancel waits for the runner's next look at
    /// the queues: see the test below.)
    #[test]
    fn a_runner_spawning_after_a_cancel_elsewhere_drops_what_it_queued() {
        let (_serial, state, owner) = alone();
        let st = state.clone();
        std::thread::spawn(move || st.cancel_all()).join().unwrap();
        let _entered = owner.enter();
        state.push_back(&owner, task(&state));
        state.spawned();
        let left = owner.private_len.get()
            + std::iter::from_fn(|| owner.local.queue.pop().ok()).count()
            + std::iter::from_fn(|| state.global.pop().ok()).count();
        assert_eq!(left, 0, "a task queued after the cancel was left");
    }

    /// A runner on its own that gives its private queue up itself as a drain joins
    /// (the barrier worked, so the drain does not wait for it) must have moved the
    /// tasks where the drain looks before the drain is done with its queues.
    #[test]
    fn a_drain_racing_a_runner_giving_its_private_queue_up_leaves_nothing_queued() {
        let _serial = serial();
        for round in 0..200 {
            let state = Arc::new(State::new());
            let ready = Arc::new(std::sync::Barrier::new(2));
            let (drained_tx, drained_rx) = std::sync::mpsc::channel::<()>();
            let (st, r) = (state.clone(), ready.clone());
            let owner = std::thread::spawn(move || {
                let runner = Runner::new(&st);
                assert!(runner.lone.get());
                {
                    let _entered = runner.enter();
                    for _ in 0..1000 {
                        st.push_back(&runner, task(&st));
                    }
                }
                r.wait();
                {
                    let _entered = runner.enter();
                    let start = Instant::now();
                    while runner.lone.get() {
                        assert!(start.elapsed() < Duration::from_secs(60), "watchdog");
                        runner.before_idle();
                    }
                }
                drained_rx.recv().unwrap();
                // Its own queues as the drain left them (`Runner::drop` would move
                // them to the global queue).
                let left = std::iter::from_fn(|| runner.local.queue.pop().ok()).count()
                    + usize::from(runner.local.take_slot().is_some());
                std::mem::forget(runner);
                left
            });
            ready.wait();
            state.drain();
            drained_tx.send(()).unwrap();
            let left =
                owner.join().unwrap() + std::iter::from_fn(|| state.global.pop().ok()).count();
            assert_eq!(left, 0, "round {round}: tasks left queued after the drain");
        }
    }

    /// A runner whose run ends (`Runner::drop` hands its tasks to the global queue)
    /// as the executor is cancelled on another thread leaves nothing queued.
    #[test]
    fn a_runner_ending_as_the_executor_is_cancelled_leaves_nothing_queued() {
        let _serial = serial();
        for round in 0..2000 {
            let state = Arc::new(State::new());
            let go = Arc::new(std::sync::Barrier::new(2));
            let (st, g) = (state.clone(), go.clone());
            let owner = std::thread::spawn(move || {
                let runner = Runner::new(&st);
                {
                    let _entered = runner.enter();
                    for _ in 0..50 {
                        st.push_back(&runner, task(&st));
                    }
                }
                g.wait();
                drop(runner);
            });
            go.wait();
            state.cancel_all();
            owner.join().unwrap();
            let left = std::iter::from_fn(|| state.global.pop().ok()).count();
            assert_eq!(left, 0, "round {round}: tasks left queued after the cancel");
        }
    }

    /// A drain whose barrier failed waits for a runner on its own to give that up;
    /// the runner then moves its private tasks into its local queue, which the drain
    /// had emptied already: it must look there again, or the cancelled tasks stay
    /// queued (and the runner may run them later).
    #[test]
    fn a_drain_whose_barrier_failed_drops_the_private_tasks_moved_after_it_began() {
        let (_serial, state, owner) = alone();
        {
            let _entered = owner.enter();
            state.push_back(&owner, task(&state));
        }
        assert_eq!(owner.private_len.get(), 1);
        let st = state.clone();
        let drainer = std::thread::spawn(move || {
            lone::FAIL_HEAVY.set(true);
            st.drain();
        });
        // The drain has joined; give it a moment to empty the local queue and begin to
        // wait (if it has not yet, the test passes without showing anything).
        let start = Instant::now();
        while state.runners.load(Ordering::SeqCst) < 2 && !drainer.is_finished() {
            assert!(start.elapsed() < Duration::from_secs(60), "watchdog: the drain never joined");
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(100));
        // The runner's next look: it sees the drain and gives its private queue up.
        owner.before_idle();
        drainer.join().unwrap();
        let left = std::iter::from_fn(|| owner.local.queue.pop().ok()).count()
            + std::iter::from_fn(|| state.global.pop().ok()).count();
        assert_eq!(left, 0, "tasks left queued after the drain");
    }

    #[test]
    fn a_joiner_sees_a_task_put_the_plain_way_across_its_barrier() {
        let (_serial, state, owner) = alone();
        // A plain put under way as the runner joins: `in_op` is up and the count was
        // read as 1; the put completes a little later.
        owner.local.in_op.store(true, Ordering::Relaxed);
        let raw = task(&state).into_raw().as_ptr() as usize;
        let local = owner.local.clone();
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            local.slot.store(raw as *mut (), Ordering::Relaxed);
            local.in_op.store(false, Ordering::Release);
        });
        // The join waits for the put to end.
        let joiner = Runner::new(&state);
        assert!(joiner.fenced);
        // The joiner, going idle, sees the task and watches it.
        assert!(joiner.claim_watch(), "the joiner saw an empty slot");
        joiner.release_watch();
        finisher.join().unwrap();
        drop(owner.take_own_slot());
    }

    /// An owner thread queues and takes tasks through its slot and its queue (on its
    /// own most of the time) while this thread joins, takes from the slot whenever
    /// `may_take` allows, and leaves, over and over: every task is owned exactly once.
    fn owners_and_joiners(fail_barrier: bool) {
        let _serial = serial();
        let state = Arc::new(State::new());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Arc<Local>>();
        let (st, d) = (state.clone(), done.clone());
        let owner = std::thread::spawn(move || {
            let owner = Runner::new(&st);
            let _entered = owner.enter();
            tx.send(owner.local.clone()).unwrap();
            let (mut queued, mut got, mut lone_ops) = (Vec::new(), Vec::new(), 0u32);
            for i in 0..100_000u32 {
                lone_ops += u32::from(owner.lone.get());
                let t = task(&st);
                queued.push(id(&t));
                got.extend(owner.put_slot(t));
                if i % 3 == 0 {
                    let t = task(&st);
                    queued.push(id(&t));
                    st.push_back(&owner, t);
                }
                got.extend(owner.take_own_slot());
                if i % 5 == 0 {
                    got.extend(owner.find());
                }
            }
            got.extend(std::iter::from_fn(|| owner.find()));
            d.store(true, std::sync::atomic::Ordering::SeqCst);
            (queued, got, lone_ops)
        });
        let l = rx.recv().unwrap();
        let (mut taken, mut joins) = (Vec::new(), 0u32);
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            lone::FAIL_HEAVY.set(fail_barrier);
            let joiner = Runner::new(&state);
            lone::FAIL_HEAVY.set(false);
            joins += 1;
            let start = Instant::now();
            while start.elapsed() < Duration::from_micros(20) {
                let task = l.slot.load(Ordering::SeqCst);
                if !task.is_null()
                    && l.may_take(joiner.fenced)
                    && l.slot
                        .compare_exchange(
                            task,
                            ptr::null_mut(),
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    // SAFETY: the compare-and-swap took it out of the slot.
                    taken.push(unsafe { Runnable::from_raw(NonNull::new(task).unwrap()) });
                }
            }
            // What the join moved to the global queue.
            taken.extend(state.global.try_iter());
            drop(joiner);
            lone::forget();
            let start = Instant::now();
            while start.elapsed() < Duration::from_micros(200) {
                std::hint::spin_loop();
            }
        }
        let (queued, got, lone_ops) = owner.join().unwrap();
        taken.extend(state.global.try_iter());
        // Every task is still alive (held here, or queued): no address was reused.
        let mut seen = HashSet::new();
        let repeated = got.iter().chain(&taken).filter(|r| !seen.insert(id(r))).count();
        let lost = queued.iter().filter(|t| !seen.contains(t)).count();
        assert_eq!((repeated, lost), (0, 0), "tasks owned twice, and lost ({joins} joins)");
        assert!(lone_ops > 0 && joins > 0, "{lone_ops} operations on its own, {joins} joins");
    }

    /// The look that begins a run's last iteration in the LIFO path, with nothing
    /// queued: the slot's task it returns is that iteration's only one, and what that
    /// task queues at the back of the line waits for the next run, as in asyncio.
    #[test]
    fn the_last_iteration_begun_in_the_lifo_path_runs_only_the_slots_task() {
        let _serial = serial();
        let state = Arc::new(State::new());
        let runner = Runner::new(&state);
        let _entered = runner.enter();
        let halt = StdAtomicBool::new(false);
        // SAFETY: `halt` outlives the runner (declared before it is dropped).
        unsafe { runner.begin_iterations(&halt) };
        // The first iteration, empty.
        assert!(runner.find().is_none());
        // Two tasks waking each other from the slot, a whole streak of them.
        for _ in 0..MAX_LIFO_STREAK {
            assert!(runner.put_slot(task(&state)).is_none());
            assert!(runner.find().is_some());
        }
        // The main future completed meanwhile: the run ends after the next iteration.
        runner.halt_after_next();
        assert!(runner.put_slot(task(&state)).is_none());
        assert!(runner.find().is_some(), "the slot's task begins the last iteration");
        // It queues a task at the back of the line (it yields, say).
        state.push_back(&runner, task(&state));
        assert!(runner.find().is_none(), "a task queued in the last iteration ran in it");
        assert!(runner.halted());
    }

    #[test]
    fn runners_joining_a_runner_on_its_own_over_and_over_take_each_task_once() {
        owners_and_joiners(false);
    }

    #[test]
    fn runners_joining_without_the_barrier_over_and_over_take_each_task_once() {
        owners_and_joiners(true);
    }
}
