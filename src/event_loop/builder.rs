//! `LoopBuilder`: the settings of a new loop.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{CloseHook, EventLoop, IDLE, Inner, RunnerContext};
use crate::debug::DebugHook;
use crate::error::Error;
use crate::executor::Executor;
use crate::handle::Callbacks;

/// Settings for a new [`EventLoop`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let lp = polyloop::EventLoop::builder()
///     .debug(true)
///     .slow_callback_duration(Duration::from_millis(50))
///     .build()?;
/// assert_eq!(lp.slow_callback_duration(), Duration::from_millis(50));
/// # Ok::<(), polyloop::Error>(())
/// ```
pub struct LoopBuilder {
    debug: Option<bool>,
    slow: Duration,
    hook: DebugHook,
    close_hooks: Vec<CloseHook>,
    after_close_hooks: Vec<CloseHook>,
    context: Option<RunnerContext>,
}

impl LoopBuilder {
    /// The default settings: debug from `POLYLOOP_DEBUG`, slow threshold 100 ms,
    /// reports on stderr.
    pub fn new() -> LoopBuilder {
        LoopBuilder {
            debug: None,
            slow: Duration::from_millis(100),
            hook: crate::debug::stderr_hook,
            close_hooks: Vec::new(),
            after_close_hooks: Vec::new(),
            context: None,
        }
    }

    /// Turns debug mode on or off (overrides `POLYLOOP_DEBUG`).
    pub fn debug(mut self, on: bool) -> Self {
        self.debug = Some(on);
        self
    }

    /// How long a task poll or callback may take before debug mode reports it.
    pub fn slow_callback_duration(mut self, d: Duration) -> Self {
        self.slow = d;
        self
    }

    /// Where debug reports go (stderr by default).
    pub fn debug_hook(mut self, hook: DebugHook) -> Self {
        self.hook = hook;
        self
    }

    /// A hook run by `close()` before the tasks are dropped (see [`EventLoop::on_close`]).
    pub fn on_close(mut self, hook: impl FnOnce(&EventLoop) + Send + 'static) -> Self {
        self.close_hooks.push(Box::new(hook));
        self
    }

    /// A hook run by `close()` after the loop's tasks and callbacks were dropped: the
    /// place to shut down what those tasks used (a runtime whose I/O they held, say).
    /// Hooks run in the order they were added.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let (before, after) = (order.clone(), order.clone());
    /// let lp = polyloop::EventLoop::builder()
    ///     .on_close(move |lp| before.lock().unwrap().push(("before", lp.pending_tasks())))
    ///     .after_close(move |lp| after.lock().unwrap().push(("after", lp.pending_tasks())))
    ///     .build()?;
    /// lp.spawn(std::future::pending::<()>()).detach();
    /// lp.close()?;
    /// assert_eq!(*order.lock().unwrap(), [("before", 1), ("after", 0)]);
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn after_close(mut self, hook: impl FnOnce(&EventLoop) + Send + 'static) -> Self {
        self.after_close_hooks.push(Box::new(hook));
        self
    }

    /// A context that every thread enters while it polls this loop's tasks.
    ///
    /// `context` is called with a function that does the work: run it once, inside
    /// whatever the tasks need (a thread-local set, a runtime entered, a span opened),
    /// and return. The loop calls it around each run on its own thread
    /// ([`run_until_complete`](EventLoop::run_until_complete),
    /// [`run_forever`](EventLoop::run_forever), [`block_on`](crate::block_on)), around
    /// each [`run_worker`](EventLoop::run_worker) of a thread lent to it, and around
    /// `close()` dropping the unfinished tasks, whose destructors may need the context
    /// too. It is entered once per run, not per poll, so it costs nothing per task.
    ///
    /// Given several times, the contexts nest: the first one given is the outermost.
    ///
    /// # Panics
    ///
    /// A run panics if `context` returns without calling the function it was given:
    /// the loop cannot run its tasks then.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// thread_local!(static TENANT: Cell<u32> = const { Cell::new(0) });
    ///
    /// let lp = polyloop::EventLoop::builder()
    ///     .runner_context(|run| {
    ///         TENANT.set(7);
    ///         run();
    ///         TENANT.set(0);
    ///     })
    ///     .build()?;
    /// let task = lp.spawn(async { TENANT.get() });
    /// assert_eq!(lp.run_until_complete(task)?, 7);
    /// assert_eq!(TENANT.get(), 0);
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn runner_context(
        mut self,
        context: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static,
    ) -> Self {
        self.context = Some(match self.context.take() {
            None => std::sync::Arc::new(context),
            Some(outer) => std::sync::Arc::new(move |run: &mut dyn FnMut()| {
                outer(&mut || context(&mut *run));
            }),
        });
        self
    }

    /// Creates the loop.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] when debug was not set and `POLYLOOP_DEBUG` holds
    /// something other than `0`, `1`, `true` or `false`.
    pub fn build(self) -> Result<EventLoop, Error> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let debug = match self.debug {
            Some(on) => on,
            None => crate::settings::debug()?,
        };
        let lp = EventLoop {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                handles: AtomicUsize::new(1),
                fork_generation: crate::fork::generation(),
                executor: Executor::new(),
                phase: AtomicU8::new(IDLE),
                stopping: AtomicBool::new(false),
                debug: AtomicBool::new(debug),
                slow: self.slow,
                hook: self.hook,
                callbacks: Arc::new(Callbacks::new()),
                close_hooks: Mutex::new(self.close_hooks),
                after_close_hooks: Mutex::new(self.after_close_hooks),
                context: self.context,
                exception_handler: std::sync::RwLock::new(None),
            }),
        };
        lp.report_through_hook();
        Ok(lp)
    }
}

impl Default for LoopBuilder {
    fn default() -> Self {
        LoopBuilder::new()
    }
}

impl fmt::Debug for LoopBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopBuilder")
            .field("debug", &self.debug)
            .field("slow_callback_duration", &self.slow)
            .field("close_hooks", &self.close_hooks.len())
            .field("after_close_hooks", &self.after_close_hooks.len())
            .field("runner_context", &self.context.is_some())
            .finish()
    }
}
