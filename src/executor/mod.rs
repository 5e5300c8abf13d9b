//! The executors: [`Executor`] for `Send` tasks run by any number of threads, and
//! [`LocalExecutor`] for `!Send` tasks on one thread.
//!
//! Both are plain task queues: they run tasks while some thread drives their `run`
//! future. An [`EventLoop`](crate::EventLoop) owns one and drives it together with the
//! I/O reactor.

mod active;
mod home;
pub(crate) mod iteration;
mod lone;
pub(crate) mod report;
mod state;
mod sync;
mod task;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use async_task::{Builder, WithInfo};

use report::Reporter;
pub(crate) use state::PushMark;
use state::{Runner, Sleeper, State, Watched};
use sync::Arc;
pub use task::Task;

/// How many tasks a runner runs before it polls the future it was given again.
const BATCH: u32 = 64;
/// How many batches in a row a runner runs before it lets the reactor look for I/O.
const BATCHES_PER_REACTOR_TICK: u32 = 16;
/// How often an idle runner that watches the LIFO slots of busy runners looks at them.
/// A task that was in the same slot at two looks in a row, while its runner started
/// nothing, is taken: a task waits at most about two periods behind a busy task.
#[cfg(not(loom))]
const WATCH_PERIOD: std::time::Duration = std::time::Duration::from_micros(500);

/// An executor of `Send` futures; any number of threads may run it at once.
///
/// Each thread in [`Executor::run`] keeps a local queue for the tasks it wakes itself,
/// takes work from a shared injector queue, and steals from the other threads when
/// it runs dry. Idle threads sleep until there is work.
///
/// Order, as asyncio's `call_soon` gives it: spawned tasks start in the order they
/// were spawned, and a task that yields, or that awaited a task which just finished,
/// goes to the back of the line. One exception keeps messages fast: a task woken by a
/// task that goes on running (a message handed over a channel) runs next on that
/// thread, at most three times in a row. With several threads, each keeps this order
/// for its own tasks.
///
/// Dropping the executor drops every task that has not finished.
///
/// A panic in a task resumes in whoever awaits it; the panic of a task that nobody
/// awaits (detached, or its `Task` dropped after it finished) is reported on stderr.
/// A panic while a task's future is dropped (when it is cancelled, or the executor
/// drops it) is caught and reported on stderr, as is one while dropping the output of
/// a task that nobody awaits; the executor goes on.
///
/// # Examples
///
/// ```
/// use polyloop::Executor;
///
/// let ex = Executor::new();
/// let task = ex.spawn(async { 1 + 2 });
/// assert_eq!(futures_lite::future::block_on(ex.run(task)), 3);
/// ```
pub struct Executor<'a> {
    state: Arc<State>,
    _marker: PhantomData<std::cell::UnsafeCell<&'a ()>>,
}

// SAFETY: futures spawned on an `Executor` are `Send`, and the state is made of
// thread-safe queues and locks; the marker only ties the executor to `'a`.
unsafe impl Send for Executor<'_> {}
// SAFETY: as above; every method takes `&self` and synchronizes through `State`.
unsafe impl Sync for Executor<'_> {}

impl<'a> Executor<'a> {
    /// Creates an empty executor.
    pub fn new() -> Executor<'a> {
        Executor { state: Arc::new(State::new()), _marker: PhantomData }
    }

    /// Spawns a future onto this executor. It runs when a thread runs the executor.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = polyloop::Executor::new();
    /// let task = ex.spawn(async { "hello" });
    /// assert_eq!(futures_lite::future::block_on(ex.run(task)), "hello");
    /// ```
    #[track_caller]
    pub fn spawn<T: Send + 'a>(&self, future: impl Future<Output = T> + Send + 'a) -> Task<T> {
        // SAFETY: the future is `Send` and outlives `'a`; the executor (bound to `'a`)
        // drops every unfinished task when it is dropped, and the schedule function is
        // `Send + Sync + 'static`.
        unsafe { self.spawn_inner(future, Location::caller()) }
    }

    /// Spawns with a given spawn location (kept for debug reports).
    ///
    /// # Safety
    ///
    /// If `future` is not `Send`, the runnable must only be run and dropped on the
    /// thread that spawned it; `future` must not outlive the data it borrows, which
    /// holds while `'a` does and the executor drops all tasks on drop.
    pub(crate) unsafe fn spawn_inner<T: 'a>(
        &self,
        future: impl Future<Output = T> + 'a,
        loc: &'static Location<'static>,
    ) -> Task<T> {
        // SAFETY: forwarded to the caller (see the `# Safety` section).
        let task = unsafe { self.spawn_own(future, loc) };
        self.state.spawned();
        task
    }

    /// [`Executor::spawn_inner`] without its look at a cancellation that raced it: for
    /// polyloop's own tasks that hold nothing of the user's, spawned under a lock of
    /// polyloop's (a driver of callbacks, under the callbacks' lock). An executor
    /// cancelled meanwhile leaves such a task queued until it is dropped; draining it
    /// there would drop other tasks, and so run their `Drop`s, under that lock.
    ///
    /// # Safety
    ///
    /// As for [`Executor::spawn_inner`].
    pub(crate) unsafe fn spawn_own<T: 'a>(
        &self,
        future: impl Future<Output = T> + 'a,
        loc: &'static Location<'static>,
    ) -> Task<T> {
        let (runnable, task) = self.state.register(loc, false, |tracked| {
            // SAFETY: forwarded to the caller (see the `# Safety` section).
            unsafe {
                Builder::new()
                    .propagate_panic(true)
                    .metadata(self.state.clone())
                    .spawn_unchecked(|_| tracked.wrap(future), WithInfo(state::schedule))
            }
        });
        // Not `runnable.schedule()`: a new task goes to the back of the line, where the
        // schedule function would put it in the LIFO slot if a running task spawned it.
        self.state.schedule_spawned(runnable);
        Task::new(task)
    }

    /// Spawns a `!Send` future bound to the calling thread, which becomes the
    /// executor's home thread: only that thread polls it or drops it (see `home.rs`).
    ///
    /// Returns the future back if another thread is (or was) the home thread.
    pub(crate) fn spawn_home<F>(
        &self,
        future: F,
        loc: &'static Location<'static>,
    ) -> Result<Task<F::Output>, F>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if !home::claim(&self.state) {
            return Err(future);
        }
        let (runnable, task) = self.state.register(loc, true, |tracked| {
            // SAFETY: the future is `'static`. It is `!Send`: its runnable only ever
            // goes to the home queue, which only this thread pops, to run it or drop it
            // (other threads leave it there, or leak it once this thread is gone: see
            // `home.rs`); `OnHome` leaks the future rather than drop it elsewhere.
            // The schedule function is `Send + Sync + 'static`.
            unsafe {
                Builder::new().propagate_panic(true).metadata(self.state.clone()).spawn_unchecked(
                    |_| tracked.wrap(home::OnHome::new(future)),
                    state::schedule_home,
                )
            }
        });
        // As in `spawn_inner`: the schedule function, called directly.
        self.state.schedule_home(runnable);
        self.state.spawned();
        Ok(Task::new(task))
    }

    /// Runs tasks on the calling thread until `future` completes, and returns its output.
    ///
    /// Many threads may run the same executor at once; each one helps with all tasks.
    /// The returned future does the work when polled: drive it with a `block_on`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::Executor;
    ///
    /// let ex = Executor::new();
    /// let t = ex.spawn(async { 7 });
    /// let out = futures_lite::future::block_on(ex.run(async { t.await * 6 }));
    /// assert_eq!(out, 42);
    /// ```
    pub async fn run<T>(&self, future: impl Future<Output = T>) -> T {
        run(&self.state, future).await
    }

    /// Whether every spawned task has finished (or was dropped): an idle task that
    /// waits for something still counts.
    pub fn is_empty(&self) -> bool {
        self.state.active_len() == 0
    }

    /// How many tasks have been spawned and not finished yet.
    pub fn len(&self) -> usize {
        self.state.active_len()
    }

    /// See `State::push_mark`.
    pub(crate) fn push_mark(&self) -> PushMark {
        self.state.push_mark()
    }

    /// Whether no task is queued in the shared queues (where a thread that runs no
    /// task of this executor queues them).
    #[inline]
    pub(crate) fn nothing_queued(&self) -> bool {
        self.state.nothing_queued()
    }

    /// Wakes every idle runner: a run may have to end.
    pub(crate) fn notify_all(&self) {
        self.state.notify_all()
    }

    /// Where each unfinished task was spawned (for debug reports).
    pub(crate) fn locations(&self) -> Vec<&'static Location<'static>> {
        self.state.active_locations()
    }

    /// Drops every unfinished task (`!Send` ones only on their home thread).
    pub(crate) fn cancel_all(&self) {
        self.state.cancel_all()
    }

    /// Drops every unfinished task now, as dropping the executor does (for the model
    /// checks, which race it against runners).
    #[cfg(loom)]
    pub fn cancel_all_now(&self) {
        self.state.cancel_all()
    }

    /// Sends the executor's incidents (panics caught while dropping tasks, leaked
    /// `!Send` tasks) to `reporter` instead of stderr. Only the first call counts.
    pub(crate) fn set_reporter(&self, reporter: Reporter) {
        self.state.set_reporter(reporter)
    }
}

impl Default for Executor<'_> {
    fn default() -> Self {
        Executor::new()
    }
}

impl Drop for Executor<'_> {
    fn drop(&mut self) {
        self.state.cancel_all();
    }
}

impl fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor").field("tasks", &self.len()).finish()
    }
}

/// An executor of `!Send` futures, run by the thread that owns it.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use polyloop::LocalExecutor;
///
/// let ex = LocalExecutor::new();
/// let shared = Rc::new(5);
/// let s = shared.clone();
/// let task = ex.spawn(async move { *s * 2 });
/// assert_eq!(futures_lite::future::block_on(ex.run(task)), 10);
/// ```
pub struct LocalExecutor<'a> {
    inner: Executor<'a>,
    _marker: PhantomData<Rc<()>>,
}

impl<'a> LocalExecutor<'a> {
    /// Creates an empty local executor.
    pub fn new() -> LocalExecutor<'a> {
        LocalExecutor { inner: Executor::new(), _marker: PhantomData }
    }

    /// Spawns a `!Send` future; it runs when this thread runs the executor.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = polyloop::LocalExecutor::new();
    /// let cell = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let c = cell.clone();
    /// futures_lite::future::block_on(ex.run(ex.spawn(async move { c.set(1) })));
    /// assert_eq!(cell.get(), 1);
    /// ```
    #[track_caller]
    pub fn spawn<T: 'a>(&self, future: impl Future<Output = T> + 'a) -> Task<T> {
        // SAFETY: `LocalExecutor` is `!Send` and `!Sync`, so its runnables are only run
        // by `run` on this thread; unfinished tasks are dropped with the executor, here.
        unsafe { self.inner.spawn_inner(future, Location::caller()) }
    }

    /// Runs tasks until `future` completes, and returns its output.
    pub async fn run<T>(&self, future: impl Future<Output = T>) -> T {
        self.inner.run(future).await
    }

    /// How many tasks have been spawned and not finished yet.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether every spawned task has finished.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl Default for LocalExecutor<'_> {
    fn default() -> Self {
        LocalExecutor::new()
    }
}

impl fmt::Debug for LocalExecutor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalExecutor").field("tasks", &self.len()).finish()
    }
}

/// The runner loop behind `Executor::run`.
///
/// It polls `future`, then runs tasks in batches, polling `future` again after each
/// batch. It only returns `Pending` (which lets the surrounding `block_on` park or poll
/// the reactor) when there is nothing to run, or after a long streak of work so that I/O
/// and timers are not starved. Parking only when idle is what keeps a ping-pong between
/// two tasks free of system calls.
async fn run<T>(state: &Arc<State>, future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut runner: Option<Runner> = None;
    let mut drive = Drive::default();
    std::future::poll_fn(move |cx| {
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            // The runner is made on first need, so a ready future costs no queue.
            let runner = runner.get_or_insert_with(|| Runner::new(state));
            let _enter = runner.enter();
            let ran = drive.batch(state, runner);
            if ran > 0 {
                if drive.busy(cx) {
                    return Poll::Pending;
                }
                continue;
            }
            if drive.idle(state, runner, cx).is_pending() {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// What a runner's run keeps between polls: the streak of batches it ran, and its
/// registration as an idle runner and watch over the others' LIFO slots.
#[derive(Default)]
struct Drive<'a> {
    listener: Option<Sleeper<'a>>,
    /// The runner was woken from its sleep.
    woken: bool,
    /// Batches run in a row since the reactor last had a look.
    streak: u32,
    watch: Watch,
}

impl<'a> Drive<'a> {
    /// Runs up to a batch of tasks; returns how many ran.
    #[inline]
    fn batch(&mut self, state: &State, runner: &Runner) -> u32 {
        if runner.cancelled() {
            return 0;
        }
        let mut ran = 0;
        while ran < BATCH {
            let Some(runnable) = runner.find() else { break };
            if self.woken {
                // This runner was asleep and found work: wake another one in case
                // there is more.
                self.woken = false;
                state.notify_one();
            }
            self.listener = None;
            self.watch.stop(runner);
            run_one(runnable);
            runner.ran();
            ran += 1;
        }
        ran
    }

    /// After a batch that ran tasks: whether the run returns `Pending` now (woken
    /// again at once), after a long streak of batches, so that the reactor looks for
    /// I/O and timers.
    #[inline]
    fn busy(&mut self, cx: &mut Context<'_>) -> bool {
        self.streak += 1;
        if self.streak < BATCHES_PER_REACTOR_TICK {
            return false;
        }
        self.streak = 0;
        cx.waker().wake_by_ref();
        true
    }

    /// After a batch that found nothing: registers as idle (then the runner looks at
    /// the queues once more before it sleeps), or sleeps (`Pending`) until it is woken
    /// or its watch took a task (`Ready`: look again).
    fn idle(&mut self, state: &'a State, runner: &Runner, cx: &mut Context<'_>) -> Poll<()> {
        self.streak = 0;
        match self.listener.as_mut() {
            None => {
                runner.before_idle();
                self.listener = Some(state.sleep());
            }
            Some(l) => match l.poll(cx) {
                Poll::Ready(()) => {
                    self.listener = None;
                    self.woken = true;
                }
                // Nothing to run: keep an eye on the busy runners' LIFO slots, if it
                // is this runner's turn to.
                Poll::Pending => match self.watch.poll(runner, cx) {
                    Poll::Ready(()) => self.listener = None,
                    Poll::Pending => return Poll::Pending,
                },
            },
        }
        Poll::Ready(())
    }
}

/// An idle runner's watch over the other runners' LIFO slots (see
/// [`Runner::claim_watch`] and [`Runner::watch`]): a task that went into a runner's
/// slot is stuck there while that runner's current task keeps it busy.
#[derive(Default)]
struct Watch {
    /// Set while this runner watches: the next look.
    #[cfg(not(loom))]
    timer: Option<async_io::Timer>,
    /// What the last look saw.
    seen: Vec<(usize, usize, u64)>,
}

impl Watch {
    /// Watches while it is this runner's turn; ready when it took a task into the
    /// runner's queue.
    #[cfg(not(loom))]
    fn poll(&mut self, runner: &Runner, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let Some(timer) = self.timer.as_mut() else {
                if !runner.claim_watch() {
                    return Poll::Pending;
                }
                self.seen.clear();
                // The first look only notes what is there.
                let _ = runner.watch(&mut self.seen);
                self.timer = Some(async_io::Timer::after(WATCH_PERIOD));
                continue;
            };
            if std::pin::Pin::new(&mut *timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            match runner.watch(&mut self.seen) {
                Watched::Took => {
                    self.stop(runner);
                    return Poll::Ready(());
                }
                Watched::Occupied => timer.set_after(WATCH_PERIOD),
                Watched::Empty => {
                    // Given up; `claim_watch` looks at the slots once more, after.
                    runner.release_watch();
                    self.timer = None;
                }
            }
        }
    }

    /// Under loom there are no timers: nobody watches.
    #[cfg(loom)]
    fn poll(&mut self, _runner: &Runner, _cx: &mut Context<'_>) -> Poll<()> {
        let _ = (&self.seen, Watched::Took);
        Poll::Pending
    }

    /// Stops watching (the runner found work).
    #[inline]
    fn stop(&mut self, runner: &Runner) {
        #[cfg(not(loom))]
        if self.timer.is_some() {
            self.timer = None;
            runner.release_watch();
        }
        #[cfg(loom)]
        let _ = runner;
    }
}

/// Runs `f`, with the tasks it wakes on this thread's runner queued at the back of the
/// line rather than in the runner's LIFO slot (see `State::schedule`).
#[inline]
pub(crate) fn waking_at_back<R>(f: impl FnOnce() -> R) -> R {
    state::waking_at_back(f)
}

fn run_one(runnable: state::Runnable) {
    runnable.run();
}

fn _ensure_send_and_sync() {
    fn is_send<T: Send>(_: T) {}
    fn is_sync<T: Sync>(_: T) {}
    is_send(Executor::new());
    is_sync(Executor::new());
    is_send(Executor::new().spawn(async {}));
    is_send(Executor::new().run(async {}));
}
