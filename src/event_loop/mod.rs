//! The event loop: an executor and the I/O reactor driven together on the thread that
//! runs the loop, with asyncio's run / stop / close state machine.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::debug::{DebugEvent, DebugHook, Instrumented};
use crate::error::Error;
use crate::exception::{ExceptionContext, ExceptionHandler, ExceptionSource};
use crate::executor::iteration::IterationHooks;
use crate::executor::report::{Incident, message as panic_message};
use crate::executor::{Executor, Task};
use crate::handle::{Callbacks, Handle, Stage, TimerHandle, drop_callback, panic_context};

mod builder;
mod lifetime;
mod running;

pub use builder::LoopBuilder;
pub use lifetime::WeakEventLoop;
pub(crate) use lifetime::close_at_thread_exit;
use running::CurrentGuard;
pub use running::get_running_loop;
pub(crate) use running::{RunGuard, running_loop_id, with_running_loop};

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const CLOSED: u8 = 2;

/// An event loop: runs tasks and callbacks, and drives I/O and timers, on the thread
/// that calls [`run_until_complete`](EventLoop::run_until_complete) or
/// [`run_forever`](EventLoop::run_forever).
///
/// `EventLoop` is a cheap handle: clones are the same loop and compare equal. It is
/// `Send + Sync`, so other threads may spawn onto it, schedule callbacks and stop it.
/// Dropping the last handle closes the loop (see [`close`](EventLoop::close)); a loop
/// made for a thread without being asked for (by [`block_on`](crate::block_on), or a
/// policy's `get_event_loop` on the main thread) is closed when that thread exits.
///
/// I/O and timers from `async-io` (and so [`sleep`](crate::sleep) and
/// [`timeout`](crate::timeout)) work inside it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use polyloop::EventLoop;
///
/// let lp = EventLoop::new()?;
/// let task = lp.spawn(async { 6 * 7 });
/// let out = lp.run_until_complete(async {
///     polyloop::sleep(Duration::from_millis(1)).await;
///     task.await
/// })?;
/// assert_eq!(out, 42);
/// lp.close()?;
/// # Ok::<(), polyloop::Error>(())
/// ```
pub struct EventLoop {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    /// How many `EventLoop` handles exist; the last one to go closes the loop.
    handles: AtomicUsize,
    /// The fork generation the loop was made in: a forked child never closes it.
    fork_generation: u64,
    executor: Executor<'static>,
    phase: AtomicU8,
    /// `stop()` was called and the current (or next) run has not ended yet.
    stopping: AtomicBool,
    debug: AtomicBool,
    slow: Duration,
    hook: DebugHook,
    callbacks: Arc<Callbacks>,
    close_hooks: Mutex<Vec<CloseHook>>,
    after_close_hooks: Mutex<Vec<CloseHook>>,
    context: Option<RunnerContext>,
    /// See [`EventLoop::set_exception_handler`].
    exception_handler: RwLock<Option<Arc<ExceptionHandler>>>,
}

type CloseHook = Box<dyn FnOnce(&EventLoop) + Send + 'static>;

/// See [`LoopBuilder::runner_context`].
type RunnerContext = Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync + 'static>;

impl EventLoop {
    /// Creates a loop with the default settings (debug is on when `POLYLOOP_DEBUG=1`).
    ///
    /// Most programs get their loop from the policy instead: see
    /// [`new_event_loop`](crate::new_event_loop) and [`get_event_loop`](crate::get_event_loop).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] when `POLYLOOP_DEBUG` holds something other than `0` or `1`.
    pub fn new() -> Result<EventLoop, Error> {
        LoopBuilder::new().build()
    }

    /// A builder for a loop with other settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = polyloop::EventLoop::builder().debug(true).build()?;
    /// assert!(lp.get_debug());
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn builder() -> LoopBuilder {
        LoopBuilder::new()
    }

    /// The loop's number, unique in the process (it appears in error messages).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Runs the loop until `future` completes, and returns its output.
    ///
    /// As in asyncio, `future` takes its turns in line with the loop's tasks and
    /// callbacks: it is first polled after the work already queued (unless nothing is
    /// queued: then at once), and when woken, at the back of the line. The run ends at
    /// the end of the iteration after the one in which it completed, as asyncio's does
    /// for a coroutine (whose done callback stops the loop in that next iteration): what
    /// `future` queued as it completed has run when this returns.
    ///
    /// # Errors
    ///
    /// - [`Error::Closed`] if the loop was closed;
    /// - [`Error::AlreadyRunning`] if this loop is running (nested, or on another
    ///   thread), or another loop is running on this thread;
    /// - [`Error::Stopped`] if [`stop`](EventLoop::stop) was called before `future`
    ///   completed (the future is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = polyloop::EventLoop::new()?;
    /// assert_eq!(lp.run_until_complete(async { 1 })?, 1);
    /// let inner = lp.clone();
    /// let nested = lp.run_until_complete(async move { inner.run_until_complete(async {}) })?;
    /// assert!(nested.unwrap_err().is_already_running());
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn run_until_complete<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        let guard = self.enter()?;
        guard.run_until_complete(future)
    }

    /// Runs the loop until [`stop`](EventLoop::stop) is called.
    ///
    /// If `stop()` was called before, the loop runs one iteration (the callbacks and
    /// task steps that are ready) and returns, as asyncio's `run_forever` does.
    ///
    /// # Errors
    ///
    /// As [`run_until_complete`](EventLoop::run_until_complete), except `Stopped`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = polyloop::EventLoop::new()?;
    /// let stopper = lp.clone();
    /// lp.call_later(Duration::from_millis(5), move || stopper.stop());
    /// lp.run_forever()?;
    /// assert!(!lp.is_running());
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn run_forever(&self) -> Result<(), Error> {
        let guard = self.enter()?;
        self.in_context(|| running::run_until_halted(self, &self.inner.stopping));
        drop(guard);
        Ok(())
    }

    /// Asks the loop to stop: `run_forever` returns at the end of the current
    /// iteration, and a `run_until_complete` whose future has not finished returns
    /// [`Error::Stopped`]. Called while the loop is not running, it makes the next run
    /// stop after one iteration.
    ///
    /// As in asyncio, an iteration runs the callbacks and task steps that were ready
    /// when it began: those that the last iteration schedules or wakes run in the next
    /// run, not in this one. (With a thread pool, the loop's own thread stops so;
    /// the workers go on running tasks.)
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        // An idle loop looks at the flag when it wakes.
        self.inner.executor.notify_all();
    }

    /// Closes the loop: runs the close hooks (a thread pool joins its threads here),
    /// drops every unfinished task and every scheduled callback (inside the
    /// [runner context](LoopBuilder::runner_context), if the loop has one), then runs
    /// the [after-close hooks](LoopBuilder::after_close). Closing a closed loop does
    /// nothing. Any thread may close a loop. Dropping the last handle closes the loop
    /// too. A task spawned from another thread as the loop closes is either refused
    /// or dropped with the others: once `close` returns, its [`Task`] has finished.
    ///
    /// `!Send` tasks ([`spawn_local`](EventLoop::spawn_local)) are only ever dropped
    /// on their home thread: closed from another thread, the loop leaves them to it.
    /// A panic while a task is dropped is caught and reported to the debug hook. A
    /// panic while a callback is dropped is caught and reported as a callback's panic
    /// is; every callback is dropped all the same.
    ///
    /// Callbacks scheduled from other threads while the loop closes are either dropped
    /// by `close()` or refused (the call panics, as on a closed loop): once `close()`
    /// returns, every callback the loop accepted has run or been dropped, with what it
    /// captured, and every later call is refused.
    ///
    /// # Errors
    ///
    /// [`Error::Running`] if the loop is running.
    ///
    /// # Panics
    ///
    /// With the panic of a close or after-close hook, once all of the work above is
    /// done (every hook ran, the tasks were dropped): the loop is closed, and a second
    /// `close()` does nothing. Panics of later hooks, or of any hook while the calling thread is
    /// already unwinding (a second panic would abort the process), are reported to the
    /// debug hook instead ([`DebugEvent::CloseHookPanicked`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = polyloop::EventLoop::new()?;
    /// lp.close()?;
    /// assert!(lp.is_closed());
    /// assert!(lp.run_until_complete(async {}).unwrap_err().is_closed());
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn close(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        match inner.phase.compare_exchange(IDLE, CLOSED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            Err(CLOSED) => return Ok(()),
            Err(_) => return Err(Error::Running { loop_id: inner.id }),
        }
        let hooks =
            std::mem::take(&mut *inner.close_hooks.lock().unwrap_or_else(PoisonError::into_inner));
        // A panicking hook does not keep the others, nor the rest of the work, from
        // being done: its panic is resumed at the end.
        let mut hook_panic = None;
        for hook in hooks {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(self))) {
                match hook_panic {
                    None => hook_panic = Some(panic),
                    Some(_) => self.report_close_hook_panic(&*panic),
                }
            }
        }
        if self.get_debug() {
            let tasks = self.pending_task_locations();
            let callbacks = inner.callbacks.pending();
            if !tasks.is_empty() || callbacks > 0 {
                (inner.hook)(&DebugEvent::ClosedWithPending {
                    loop_id: inner.id,
                    tasks: &tasks,
                    callbacks,
                });
            }
        }
        // A panic while a callback is dropped goes where a callback's panic goes: the
        // handler (none once the last handle is gone: then the default one).
        let report = self.panic_reporter();
        self.in_context(|| {
            inner.executor.cancel_all();
            inner.callbacks.clear(&report);
        });
        let after = std::mem::take(
            &mut *inner.after_close_hooks.lock().unwrap_or_else(PoisonError::into_inner),
        );
        for hook in after {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(self))) {
                match hook_panic {
                    None => hook_panic = Some(panic),
                    Some(_) => self.report_close_hook_panic(&*panic),
                }
            }
        }
        if let Some(panic) = hook_panic {
            if std::thread::panicking() {
                self.report_close_hook_panic(&*panic);
            } else {
                resume_unwind(panic);
            }
        }
        Ok(())
    }

    fn report_close_hook_panic(&self, panic: &(dyn std::any::Any + Send)) {
        if self.exception_handler().is_some() {
            let context = ExceptionContext::from_panic(
                ExceptionSource::CloseHook,
                "a close hook panicked (the loop closed all the same)",
                panic,
                None,
            );
            return crate::exception::report(Some(self), context);
        }
        let message = panic_message(panic);
        (self.inner.hook)(&DebugEvent::CloseHookPanicked { loop_id: self.inner.id, message });
    }

    /// Sends what the executor catches or leaks (see [`Incident`]) to the loop's
    /// exception handler when one is set, else to the debug hook (whether debug mode is
    /// on or not; a panic of a detached task goes to stderr). Called once, by the
    /// builder.
    pub(crate) fn report_through_hook(&self) {
        let (loop_id, hook, lp) = (self.inner.id, self.inner.hook, self.downgrade());
        self.inner.executor.set_reporter(Box::new(move |incident| {
            // A loop that is closing because its last handle went away has no handler
            // to call any more: its incidents go to the debug hook.
            if let Some(lp) = lp.upgrade().filter(|lp| lp.exception_handler().is_some()) {
                return crate::exception::report(Some(&lp), incident_context(&incident));
            }
            match incident {
                Incident::DropPanicked { spawned_at, output, payload } => {
                    let message = panic_message(payload);
                    hook(&DebugEvent::DropPanicked { loop_id, spawned_at, output, message });
                }
                Incident::LocalTasksLeaked { count } => {
                    hook(&DebugEvent::LocalTasksLeaked { loop_id, count });
                }
                Incident::TaskPanicked { .. } => {
                    crate::exception::default_exception_handler(&incident_context(&incident))
                }
            }
        }));
    }

    /// Whether the loop is running (`run_until_complete` or `run_forever` is in progress).
    pub fn is_running(&self) -> bool {
        self.inner.phase.load(Ordering::Acquire) == RUNNING
    }

    /// Whether the loop was closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.inner.phase.load(Ordering::Acquire) == CLOSED
    }

    /// Spawns a `Send` future on the loop; it runs while the loop runs. Works from any
    /// thread.
    ///
    /// # Panics
    ///
    /// If the loop is closed (see [`try_spawn`](EventLoop::try_spawn)).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = polyloop::EventLoop::new()?;
    /// let t = lp.spawn(async { "done" });
    /// assert_eq!(lp.run_until_complete(t)?, "done");
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.try_spawn_at(future, Location::caller()) {
            Ok(task) => task,
            Err(err) => panic!("{err}"),
        }
    }

    /// Spawns a `Send` future on the loop, or says why not.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the loop is closed.
    #[track_caller]
    pub fn try_spawn<F>(&self, future: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.try_spawn_at(future, Location::caller())
    }

    pub(crate) fn try_spawn_at<F>(
        &self,
        future: F,
        loc: &'static Location<'static>,
    ) -> Result<Task<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.check_open()?;
        let ex = &self.inner.executor;
        // SAFETY: the future is `Send + 'static`.
        Ok(unsafe {
            if self.get_debug() {
                ex.spawn_inner(self.instrument(future, loc), loc)
            } else {
                ex.spawn_inner(future, loc)
            }
        })
    }

    /// Spawns a `!Send` future; it runs on this thread, which must be the thread
    /// running the loop (or a worker lending itself to it), and which becomes the home
    /// of the loop's `!Send` tasks.
    ///
    /// A `!Send` task is only ever dropped on its home thread. If the loop is closed,
    /// or its last handle dropped, on another thread, its `!Send` tasks are left to the
    /// home thread, which drops them the next time it starts running a loop, or when
    /// it exits. When the home thread exits, it also drops the `!Send` tasks of loops
    /// that are still open (nothing could poll them again). A `!Send` task that would
    /// still need dropping after its home thread has exited is leaked on purpose, and
    /// reported to the debug hook ([`DebugEvent::LocalTasksLeaked`]).
    ///
    /// # Panics
    ///
    /// If the loop is closed, or this loop is not running on the calling thread, or
    /// `!Send` tasks of this loop already live on another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// let lp = polyloop::EventLoop::new()?;
    /// let lp2 = lp.clone();
    /// let out = lp.run_until_complete(async move {
    ///     let rc = Rc::new(3);
    ///     lp2.spawn_local(async move { *rc + 1 }).await
    /// })?;
    /// assert_eq!(out, 4);
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let loc = Location::caller();
        if let Err(err) = self.check_open() {
            panic!("{err}");
        }
        if !with_running_loop(|lp| lp == Some(self)) {
            panic!(
                "spawn_local needs event loop #{} to be running on this thread; call it from \
                 a task of that loop, or spawn a Send future with spawn()",
                self.inner.id
            );
        }
        let result = if self.get_debug() {
            self.inner.executor.spawn_home(self.instrument(future, loc), loc).map_err(drop)
        } else {
            self.inner.executor.spawn_home(future, loc).map_err(drop)
        };
        match result {
            Ok(task) => task,
            Err(()) => panic!(
                "event loop #{} already runs !Send tasks on another thread; !Send tasks of a \
                 loop all live on one thread",
                self.inner.id
            ),
        }
    }

    /// Schedules `callback` to run on the loop as soon as possible. Callbacks run in
    /// the order they were scheduled, one at a time. A panicking callback is reported
    /// to the loop's [exception handler](EventLoop::set_exception_handler) (by default,
    /// on stderr) and the loop goes on; so is a panic while a callback that never runs
    /// (cancelled, refused, or left when the loop closes) is dropped.
    ///
    /// As asyncio's `call_soon`, it queues the callback in line with the tasks: it runs
    /// after the tasks queued (spawned, yielded, woken to the back) before it was
    /// scheduled, and before those queued after, on a loop run by one thread. What it
    /// wakes goes to the back of the line.
    ///
    /// # Panics
    ///
    /// If the loop is closed, also when it closes on another thread during this call
    /// (`callback` is dropped first: a panic of its drop is reported, not raised). A
    /// call that returns has scheduled the callback, and the loop's `close()` drops it
    /// if it has not run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let lp = polyloop::EventLoop::new()?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// for i in 0..3 {
    ///     let seen = seen.clone();
    ///     lp.call_soon(move || seen.lock().unwrap().push(i));
    /// }
    /// lp.run_until_complete(polyloop::sleep(std::time::Duration::from_millis(1)))?;
    /// assert_eq!(*seen.lock().unwrap(), [0, 1, 2]);
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    #[track_caller]
    pub fn call_soon<F: FnOnce() + Send + 'static>(&self, callback: F) -> Handle {
        match self.try_call_soon_at(callback, Location::caller()) {
            Ok(handle) => handle,
            Err(err) => panic!("{err}"),
        }
    }

    /// Schedules `callback` to run after `delay`. Callbacks run by deadline; equal
    /// deadlines run in the order they were scheduled.
    ///
    /// As in asyncio, a timed callback runs in the first iteration of the loop that
    /// begins once its deadline has passed, behind the callbacks and task steps that
    /// were ready when that iteration began (so `call_later(Duration::ZERO, ..)` runs
    /// after the callbacks already scheduled with `call_soon`). Iterations are those
    /// of the loop's own run (`run_forever`, `run_until_complete`): while the loop is
    /// not running, a due callback waits for it, even on a loop whose workers run its
    /// tasks (see [`EventLoop::run_worker`]).
    ///
    /// # Panics
    ///
    /// If the loop is closed, also when it closes on another thread during this call
    /// (`callback` is dropped first: a panic of its drop is reported, not raised). A
    /// call that returns has scheduled the callback, and the loop's `close()` drops it
    /// if it has not run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = polyloop::EventLoop::new()?;
    /// let stopper = lp.clone();
    /// let h = lp.call_later(Duration::from_millis(1), move || stopper.stop());
    /// lp.run_forever()?;
    /// assert!(!h.is_cancelled());
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    #[track_caller]
    pub fn call_later<F: FnOnce() + Send + 'static>(
        &self,
        delay: Duration,
        callback: F,
    ) -> TimerHandle {
        let when = Instant::now().checked_add(delay).unwrap_or_else(far_future);
        self.call_at(when, callback)
    }

    /// Schedules `callback` to run at `when` (a time from [`EventLoop::time`]), in the
    /// order [`call_later`](EventLoop::call_later) describes. A `when` in the past is
    /// due at once.
    ///
    /// # Panics
    ///
    /// If the loop is closed, also when it closes on another thread during this call
    /// (`callback` is dropped first: a panic of its drop is reported, not raised). A
    /// call that returns has scheduled the callback, and the loop's `close()` drops it
    /// if it has not run.
    #[track_caller]
    pub fn call_at<F: FnOnce() + Send + 'static>(&self, when: Instant, callback: F) -> TimerHandle {
        let loc = Location::caller();
        let callback = match self.accept_callback(callback, loc) {
            Ok(callback) => callback,
            Err(err) => panic!("{err}"),
        };
        match self.inner.callbacks.push_timed(when, self.instrument_callback(callback), loc) {
            Ok(handle) => handle,
            Err(callback) => panic!("{}", self.refuse(callback, loc)),
        }
    }

    /// The loop's clock (monotonic).
    pub fn time(&self) -> Instant {
        Instant::now()
    }

    /// Turns debug mode on or off: slow task polls and callbacks are reported, and
    /// `close()` reports what was still pending. Applies to tasks spawned afterwards.
    pub fn set_debug(&self, on: bool) {
        self.inner.debug.store(on, Ordering::Relaxed);
    }

    /// Whether debug mode is on.
    pub fn get_debug(&self) -> bool {
        self.inner.debug.load(Ordering::Relaxed)
    }

    /// How long a task poll or a callback may take before debug mode reports it.
    pub fn slow_callback_duration(&self) -> Duration {
        self.inner.slow
    }

    /// How many spawned tasks have not finished yet.
    pub fn pending_tasks(&self) -> usize {
        self.pending_task_locations().len()
    }

    /// Where each unfinished task was spawned.
    pub fn pending_task_locations(&self) -> Vec<&'static Location<'static>> {
        let mut locs = self.inner.executor.locations();
        // The loop's own tasks (callback drivers, the turn of a run's future) are not the
        // user's.
        locs.retain(|l| !std::ptr::eq(*l, driver_location()));
        locs
    }

    /// How many scheduled callbacks have not run and were not cancelled.
    pub fn pending_callbacks(&self) -> usize {
        self.inner.callbacks.pending()
    }

    /// Runs this loop's `Send` tasks on the calling thread until `until` completes.
    ///
    /// This is how a thread pool lends threads to a loop: each worker calls
    /// `run_worker` with a shutdown signal. The handle it is called on keeps the loop
    /// open while the worker runs; a pool whose workers should not keep it open calls
    /// [`WeakEventLoop::run_worker`] instead. Inside, [`get_running_loop`] returns this
    /// loop, so `spawn` works from tasks on the workers. Workers help whether or not
    /// the loop itself is running, with tasks and `call_soon` callbacks; timed
    /// callbacks (`call_later`, `call_at`) join the line as an iteration of the loop's
    /// own run begins, as asyncio's do, so they wait for that run. The worker runs
    /// inside the loop's
    /// [runner context](LoopBuilder::runner_context), as the loop's own thread does.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the loop is closed, [`Error::AlreadyRunning`] if a loop is
    /// already running on this thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = polyloop::EventLoop::new()?;
    /// let task = lp.spawn(async { std::thread::current().id() });
    /// let worker = lp.clone();
    /// let id = std::thread::spawn(move || worker.run_worker(task)).join().unwrap()?;
    /// assert_ne!(id, std::thread::current().id());
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn run_worker<T>(&self, until: impl Future<Output = T>) -> Result<T, Error> {
        self.check_open()?;
        if let Some(other) = with_running_loop(|lp| lp.map(EventLoop::id)) {
            return Err(Error::AlreadyRunning { loop_id: other });
        }
        let _current = CurrentGuard::set(self);
        Ok(self.in_context(|| crate::fork::block_on(self.inner.executor.run(until))))
    }

    /// Runs `f` inside the loop's [runner context](LoopBuilder::runner_context), or
    /// just runs it when the loop has none.
    #[inline]
    pub(crate) fn in_context<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.inner.context {
            None => f(),
            Some(context) => self.in_context_slow(context, f),
        }
    }

    #[inline(never)]
    fn in_context_slow<R>(&self, context: &RunnerContext, f: impl FnOnce() -> R) -> R {
        let mut f = Some(f);
        let mut out = None;
        context(&mut || {
            if let Some(f) = f.take() {
                out = Some(f());
            }
        });
        match out {
            Some(out) => out,
            None => panic!(
                "the runner context of event loop #{} returned without calling the function \
                 it was given; a runner context must call it exactly once",
                self.inner.id
            ),
        }
    }

    /// Adds a hook run by `close()`, before the tasks are dropped.
    pub fn on_close(&self, hook: impl FnOnce(&EventLoop) + Send + 'static) {
        self.inner.close_hooks.lock().unwrap_or_else(PoisonError::into_inner).push(Box::new(hook));
    }

    /// `call_soon` with the location to report a panic with, or the error of a closed
    /// loop.
    pub(crate) fn try_call_soon_at<F: FnOnce() + Send + 'static>(
        &self,
        callback: F,
        loc: &'static Location<'static>,
    ) -> Result<Handle, Error> {
        let callback = self.accept_callback(callback, loc)?;
        self.push_ready(callback, loc)
    }

    /// Gives `callback` back if the loop is open; else refuses it (see
    /// [`refuse`](EventLoop::refuse)).
    ///
    /// A first look only: `close()` may begin right after it. The pushes decide, under
    /// the queues' lock, in order with the clearing of the queues by `close()` (see
    /// [`Callbacks::clear`]): a callback is either in the queues before they are
    /// cleared, and dropped by `close()`, or refused there.
    fn accept_callback<F>(&self, callback: F, loc: &'static Location<'static>) -> Result<F, Error> {
        match self.check_open() {
            Ok(()) => Ok(callback),
            Err(_) => Err(self.refuse(callback, loc)),
        }
    }

    /// Drops `callback`, refused by a closed loop (a panic of its drop is reported, as
    /// any callback's), and says why. Dropped here, not as the refusal unwinds: a panic
    /// then would abort the process.
    fn refuse<F>(&self, callback: F, loc: &'static Location<'static>) -> Error {
        drop_callback(callback, loc, &|panic, loc, stage| {
            self.report_callback_panic(panic, loc, stage)
        });
        Error::Closed { loop_id: self.inner.id }
    }

    /// Schedules a ready callback (see [`Callbacks`] for the order), or refuses it if
    /// the loop's `close()` has cleared the queues meanwhile.
    fn push_ready<F: FnOnce() + Send + 'static>(
        &self,
        callback: F,
        loc: &'static Location<'static>,
    ) -> Result<Handle, Error> {
        let callback = self.instrument_callback(callback);
        let ex = &self.inner.executor;
        self.inner
            .callbacks
            .push_ready(callback, loc, || ex.push_mark(), || self.spawn_segment_driver())
            .map_err(|callback| self.refuse(callback, loc))
    }

    /// Spawns one more driver of callback segments (see [`Callbacks`]).
    fn spawn_segment_driver(&self) {
        let driver = self.inner.callbacks.clone().drive_segments(self.panic_reporter());
        // Under the callbacks' lock: `spawn_own`, which runs no task's `Drop`. The
        // driver holds no value of the user's; one that a close raced stays queued
        // until the loop's memory goes.
        // SAFETY: the future is `Send + 'static`.
        unsafe { self.inner.executor.spawn_own(driver, driver_location()) }.detach();
    }

    /// What reports the panic of a callback (as it ran, or as it was dropped), and
    /// where it was scheduled.
    fn panic_reporter(
        &self,
    ) -> impl Fn(&(dyn std::any::Any + Send), &'static Location<'static>, Stage) + Send + 'static
    {
        let lp = self.downgrade();
        move |panic: &(dyn std::any::Any + Send), loc, stage| {
            crate::exception::report(lp.upgrade().as_ref(), panic_context(panic, loc, stage));
        }
    }

    /// Reports the panic of a callback (as it ran, or as it was dropped) to this loop's
    /// handler, with where the callback was scheduled.
    fn report_callback_panic(
        &self,
        panic: &(dyn std::any::Any + Send),
        loc: &'static Location<'static>,
        stage: Stage,
    ) {
        crate::exception::report(Some(self), panic_context(panic, loc, stage));
    }

    /// The loop's exception handler, if one is set.
    pub(crate) fn exception_handler(&self) -> Option<Arc<ExceptionHandler>> {
        self.inner.exception_handler.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn set_exception_handler_arc(&self, handler: Option<Arc<ExceptionHandler>>) {
        let old = std::mem::replace(
            &mut *self.inner.exception_handler.write().unwrap_or_else(PoisonError::into_inner),
            handler,
        );
        drop(old);
    }

    /// Claims the loop for a run on this thread.
    pub(crate) fn enter(&self) -> Result<RunGuard<'_>, Error> {
        let fork_generation = crate::fork::generation();
        if let Some(other) = running_loop_id(fork_generation) {
            return Err(Error::AlreadyRunning { loop_id: other });
        }
        self.claim(fork_generation)
    }

    /// [`enter`](EventLoop::enter) for a caller that has seen that no loop runs on
    /// this thread in the fork generation `fork_generation`, the current one.
    #[inline]
    pub(crate) fn claim(&self, fork_generation: u64) -> Result<RunGuard<'_>, Error> {
        let inner = &*self.inner;
        match inner.phase.compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            Err(CLOSED) => return Err(Error::Closed { loop_id: inner.id }),
            Err(_) => return Err(Error::AlreadyRunning { loop_id: inner.id }),
        }
        Ok(RunGuard { _current: CurrentGuard::set_at(self, fork_generation), lp: self })
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.is_closed() { Err(Error::Closed { loop_id: self.inner.id }) } else { Ok(()) }
    }

    fn instrument<F: Future>(&self, future: F, loc: &'static Location<'static>) -> Instrumented<F> {
        Instrumented::new(future, loc, self.inner.id, self.inner.slow, self.inner.hook)
    }

    fn instrument_callback<F: FnOnce() + Send + 'static>(
        &self,
        callback: F,
    ) -> Box<dyn FnOnce() + Send> {
        if !self.get_debug() {
            return Box::new(callback);
        }
        let (id, slow, hook) = (self.inner.id, self.inner.slow, self.inner.hook);
        Box::new(move || {
            let start = Instant::now();
            callback();
            let elapsed = start.elapsed();
            if elapsed >= slow {
                hook(&DebugEvent::SlowCallback { loop_id: id, elapsed });
            }
        })
    }
}

/// The loop's timers in the iterations of its runs (see [`Callbacks`]).
impl IterationHooks for EventLoop {
    #[inline]
    fn begin_iteration(&self) {
        let ex = &self.inner.executor;
        self.inner.callbacks.begin_iteration(
            || ex.push_mark(),
            || self.spawn_segment_driver(),
            &|panic, loc, stage| self.report_callback_panic(panic, loc, stage),
        );
    }

    fn armed(&self) -> &AtomicBool {
        self.inner.callbacks.armed()
    }

    fn due(&self) -> bool {
        self.inner.callbacks.any_due()
    }

    fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.callbacks.poll_idle(cx)
    }
}

/// What an exception handler is told of an executor's incident.
fn incident_context(incident: &Incident<'_>) -> ExceptionContext {
    match *incident {
        Incident::TaskPanicked { spawned_at, payload } => ExceptionContext::from_panic(
            ExceptionSource::Task,
            "a detached task panicked",
            payload,
            Some(spawned_at),
        ),
        Incident::DropPanicked { spawned_at, output, payload } => ExceptionContext::from_panic(
            ExceptionSource::Drop,
            if output {
                "dropping the output of a task panicked"
            } else {
                "dropping a task's future panicked"
            },
            payload,
            Some(spawned_at),
        ),
        Incident::LocalTasksLeaked { count } => ExceptionContext::new(
            ExceptionSource::Leak,
            format!(
                "leaked {count} !Send task(s) whose home thread has exited (they can only be \
                 dropped on that thread)"
            ),
        ),
    }
}

/// A location that stands for the loop's own tasks: its callback drivers, and the
/// task that stands in line for the future of `run_until_complete`.
pub(super) fn driver_location() -> &'static Location<'static> {
    static LOC: std::sync::OnceLock<&'static Location<'static>> = std::sync::OnceLock::new();
    LOC.get_or_init(|| Location::caller())
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

impl PartialEq for EventLoop {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for EventLoop {}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("id", &self.inner.id)
            .field("running", &self.is_running())
            .field("closed", &self.is_closed())
            .field("debug", &self.get_debug())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of callback segments (each callback scheduled after a task was queued)
    /// leaves at most a few idle segment drivers behind, not one per segment.
    #[test]
    fn idle_segment_drivers_are_capped_after_a_burst() {
        let lp = EventLoop::new().unwrap();
        for _ in 0..2_000 {
            lp.spawn(async {}).detach();
            lp.call_soon(|| {});
        }
        let stopper = lp.clone();
        lp.call_soon(move || stopper.stop());
        lp.run_forever().unwrap();
        lp.run_until_complete(async {}).unwrap();
        let idle = lp.inner.callbacks.idle_drivers();
        assert!(
            idle <= crate::handle::IDLE_DRIVERS,
            "{idle} idle segment drivers kept after the burst"
        );
        lp.close().unwrap();
    }

    /// A call that saw the loop open, and pushes its callback only after `close()` has
    /// cleared the queues (a call from another thread racing `close()`), is refused,
    /// and its callback dropped at once: it is not left in the queues, holding what it
    /// captured until the loop's memory goes.
    #[test]
    fn a_callback_pushed_after_close_cleared_the_queues_is_refused_and_dropped() {
        let lp = EventLoop::new().unwrap();
        // What `close()` does last, on a loop that still looks open.
        lp.inner.callbacks.clear(&|_, _, _| unreachable!("nothing was scheduled"));
        let held = Arc::new(());
        let h = held.clone();
        let err = lp.try_call_soon_at(move || drop(h), Location::caller()).unwrap_err();
        assert!(err.is_closed(), "{err}");
        assert_eq!(Arc::strong_count(&held), 1, "the refused ready callback was kept");
        let h = held.clone();
        let panic = catch_unwind(AssertUnwindSafe(|| lp.call_at(lp.time(), move || drop(h))))
            .expect_err("a timed callback pushed after the queues were cleared was accepted");
        let message = panic_message(&*panic);
        assert!(message.contains("is closed"), "{message}");
        assert_eq!(Arc::strong_count(&held), 1, "the refused timed callback was kept");
        assert_eq!(lp.pending_callbacks(), 0);
        lp.close().unwrap();
    }

    /// A `call_soon` that saw the loop open, made after `close()` on another thread
    /// cancelled the tasks and before it cleared the callbacks, spawns a driver for its
    /// callback under the callbacks' lock: that spawn must not drop the tasks left to
    /// this thread (`!Send` ones, for their home thread), whose `Drop` may take the
    /// same lock (here through `pending_callbacks`).
    #[test]
    fn a_callback_pushed_as_the_loop_closes_drops_no_task_under_the_callbacks_lock() {
        struct Guard(EventLoop, Arc<AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = self.0.pending_callbacks();
                self.1.store(true, Ordering::SeqCst);
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        std::thread::spawn(move || {
            let lp = EventLoop::new().unwrap();
            let guard = Guard(lp.clone(), d);
            let l = lp.clone();
            lp.run_until_complete(async move {
                l.spawn_local(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                })
                .detach();
                crate::yield_now().await;
            })
            .unwrap();
            // What `close()` on another thread does first: the `!Send` task is left to
            // this, its home thread.
            let other = lp.clone();
            std::thread::spawn(move || other.inner.executor.cancel_all()).join().unwrap();
            lp.call_soon(|| {});
            tx.send("call_soon returned").unwrap();
            // The home thread drops the task as it closes the loop, outside any lock.
            lp.close().unwrap();
            tx.send("closed").unwrap();
        });
        let watchdog = Duration::from_secs(60);
        assert_eq!(
            rx.recv_timeout(watchdog),
            Ok("call_soon returned"),
            "call_soon never returned: a task was dropped under the callbacks' lock"
        );
        assert_eq!(rx.recv_timeout(watchdog), Ok("closed"));
        assert!(dropped.load(Ordering::SeqCst), "the home thread's close dropped the task");
    }
}
