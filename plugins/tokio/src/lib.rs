//! A [polyloop] policy whose loops run their tasks inside a tokio runtime's context,
//! registered as `"tokio"`: `tokio::time`, `tokio::net`, `tokio::sync`, `tokio::spawn`
//! and the crates built on them (hyper-util, reqwest, tonic, ...) work in polyloop
//! tasks.
//!
//! Each loop made by [`TokioPolicy`] owns a multi-threaded tokio runtime with its I/O
//! and time drivers. Every thread that polls the loop's tasks (the thread that runs
//! the loop, and each worker thread lent to it) does so inside that runtime's context,
//! through the loop's [runner context](polyloop::LoopBuilder::runner_context). The
//! context is entered once per run, not per poll. tokio's own threads (one by default)
//! drive its drivers and run what `tokio::spawn` started.
//!
//! The context is the thread, as with the default policy: each thread has its own
//! current loop, and only the main thread gets one made for it on demand. By default a
//! loop has no worker threads, like the default policy's; ask for some with
//! [`TokioPolicy::with_workers`], `#[policy_main(workers = N)]` or `POLYLOOP_WORKERS`,
//! and they share the loop's `Send` tasks as the `threadpool` policy's workers do.
//!
//! # Closing
//!
//! `close()` shuts things down in this order:
//!
//! 1. the loop's worker threads are told to stop and are joined, so no thread polls
//!    its tasks any more;
//! 2. the loop's unfinished tasks and callbacks are dropped, still inside the
//!    runtime's context (their tokio sockets and timers deregister from a live
//!    runtime);
//! 3. the tokio runtime is shut down with
//!    [`shutdown_timeout`](tokio::runtime::Runtime::shutdown_timeout): tokio's tasks
//!    are dropped, and its threads (workers and blocking pool) are joined, waiting at
//!    most [`TokioLoopBuilder::shutdown_timeout`] (10 s by default) for blocking tasks
//!    that are still busy.
//!
//! After that no thread or file descriptor of the loop remains, unless a blocking task
//! outlived the timeout. (`close()` called from a task that tokio runs cannot wait for
//! its own thread: it shuts the runtime down in the background instead, and tokio's
//! threads end on their own soon after.)
//!
//! Dropping the last handle of a loop closes it in the same way: its worker threads
//! hold no handle of it (they lend themselves through a
//! [`WeakEventLoop`](polyloop::WeakEventLoop)), so a loop that nobody holds any more
//! does not keep its workers, tasks or runtime.
//!
//! # Worker counts and thread limits
//!
//! A loop has at most [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS) worker threads:
//! a larger count is [`Error::TooManyWorkers`] (or [`Error::InvalidEnv`] from
//! `POLYLOOP_WORKERS`), and no thread starts. When the system refuses a thread the
//! loop needs (a limit such as `ulimit -u`), making the loop is [`Error::ThreadStart`],
//! and the threads already started for it are stopped and joined first.
//!
//! # Child processes
//!
//! `tokio::process` and polyloop's [`process`](polyloop::process) can run children in
//! the same process. On Linux 5.3 and later, tokio waits for each child through a
//! pidfd of its own and reaps it by its pid. On older kernels, and for children whose
//! `Child` was dropped before they ended, it listens for SIGCHLD (through
//! `signal-hook-registry`, as polyloop's SIGCHLD watchers do, so the handlers chain
//! rather than replace each other) and then tries `waitpid` on each of its own
//! children by pid. It never reaps a child it did not start. polyloop's pidfd, threaded, multi-loop and safe watchers also
//! reap by pid, so neither side takes the other's exit statuses.
//!
//! The exception is polyloop's [`FastChildWatcher`](polyloop::process::FastChildWatcher),
//! which reaps with `waitpid(-1)`: it would take the statuses of tokio's children, whose
//! `wait()` then fails with "No child processes". Do not use the fast watcher in a
//! program that also starts children with `tokio::process` (or `std::process`).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use polyloop_tokio as _; // link the plug-in, so "tokio" is registered
//!
//! polyloop::plugin::install("tokio")?; // or POLYLOOP_POLICY=tokio
//! let lp = polyloop::new_event_loop()?;
//! let out = lp.run_until_complete(async {
//!     tokio::time::sleep(Duration::from_millis(1)).await;
//!     tokio::spawn(async { 6 * 7 }).await.unwrap()
//! })?;
//! assert_eq!(out, 42);
//! lp.close()?; // polyloop's tasks, then tokio's; tokio's threads are joined
//! # polyloop::set_event_loop_policy(None);
//! # Ok::<(), polyloop::Error>(())
//! ```
//!
//! [polyloop]: https://docs.rs/polyloop
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use polyloop::{DefaultEventLoopPolicy, Error, EventLoop, EventLoopPolicy};

polyloop::register_policy! {
    name: "tokio",
    description: "loops whose tasks run inside a tokio runtime the loop owns, so tokio crates \
                  work; per-thread context; POLYLOOP_WORKERS adds worker threads",
    create: || Arc::new(TokioPolicy::new()),
}

/// A policy whose loops run their tasks inside a tokio runtime that each loop owns.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use polyloop_tokio::TokioPolicy;
///
/// polyloop::set_event_loop_policy(Some(Arc::new(TokioPolicy::with_workers(2))));
/// let lp = polyloop::new_event_loop()?;
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// let out = lp.run_until_complete(async move {
///     polyloop::spawn(async move { tx.send(5).unwrap() }).detach();
///     rx.await.unwrap()
/// })?;
/// assert_eq!(out, 5);
/// lp.close()?;
/// polyloop::set_event_loop_policy(None);
/// # Ok::<(), polyloop::Error>(())
/// ```
pub struct TokioPolicy {
    /// The per-thread current loops.
    context: DefaultEventLoopPolicy,
    /// The loop settings; `workers: None` means read them when a loop is made.
    builder: TokioLoopBuilder,
}

impl TokioPolicy {
    /// A policy whose loops get [`PolicyOptions::workers`] worker threads, else
    /// `POLYLOOP_WORKERS`, else none (the loop's own thread runs its tasks, as with the
    /// default policy). The setting is read each time a loop is made.
    ///
    /// [`PolicyOptions::workers`]: polyloop::plugin::PolicyOptions::workers
    pub fn new() -> TokioPolicy {
        TokioPolicy::with_builder(TokioLoopBuilder::new())
    }

    /// A policy whose loops get exactly `workers` worker threads each, besides the
    /// thread that runs the loop (0: none). Above
    /// [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS), its `new_event_loop` is
    /// [`Error::TooManyWorkers`].
    pub fn with_workers(workers: usize) -> TokioPolicy {
        TokioPolicy::with_builder(TokioLoopBuilder::new().workers(workers))
    }

    /// A policy whose loops are made from `builder`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use polyloop::EventLoopPolicy;
    /// use polyloop_tokio::{TokioLoopBuilder, TokioPolicy};
    ///
    /// let builder = TokioLoopBuilder::new().tokio_threads(2).shutdown_timeout(Duration::from_secs(1));
    /// let lp = TokioPolicy::with_builder(builder).new_event_loop()?;
    /// lp.close()?;
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn with_builder(builder: TokioLoopBuilder) -> TokioPolicy {
        TokioPolicy { context: DefaultEventLoopPolicy::new(), builder }
    }

    /// How many worker threads the next loop gets.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] if the count comes from `POLYLOOP_WORKERS` and that is not
    /// a whole number from 1 to [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS);
    /// [`Error::TooManyWorkers`] for a count above it given in code or in
    /// [`PolicyOptions::workers`](polyloop::plugin::PolicyOptions::workers).
    pub fn workers(&self) -> Result<usize, Error> {
        self.builder.resolved_workers()
    }
}

impl Default for TokioPolicy {
    fn default() -> Self {
        TokioPolicy::new()
    }
}

impl fmt::Debug for TokioPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioPolicy").field("builder", &self.builder).finish()
    }
}

impl EventLoopPolicy for TokioPolicy {
    fn name(&self) -> &str {
        "tokio"
    }

    /// The loop set on this thread; on the main thread with none set, a new tokio
    /// loop (set as current).
    ///
    /// # Errors
    ///
    /// [`Error::NoCurrentLoop`] on another thread with no loop set; whatever
    /// [`new_event_loop`](TokioPolicy::new_event_loop) gives.
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        self.context.get_event_loop_with(|| self.new_event_loop())
    }

    fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error> {
        self.context.set_event_loop(lp)
    }

    /// A new loop with its own tokio runtime (see [`TokioLoopBuilder::build`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] for a bad `POLYLOOP_WORKERS` or `POLYLOOP_DEBUG`;
    /// [`Error::TooManyWorkers`] and [`Error::ThreadStart`] as
    /// [`TokioLoopBuilder::build`].
    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        self.builder.build()
    }
}

/// Settings for a loop whose tasks run inside a tokio runtime it owns.
///
/// # Examples
///
/// ```
/// let lp = polyloop_tokio::TokioLoopBuilder::new().workers(1).build()?;
/// let out = lp.run_until_complete(async {
///     let (tx, mut rx) = tokio::sync::mpsc::channel(1);
///     tokio::spawn(async move { tx.send("from tokio").await.unwrap() });
///     rx.recv().await
/// })?;
/// assert_eq!(out, Some("from tokio"));
/// lp.close()?;
/// # Ok::<(), polyloop::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokioLoopBuilder {
    workers: Option<usize>,
    tokio_threads: usize,
    shutdown_timeout: Duration,
}

impl TokioLoopBuilder {
    /// The default settings: workers from the policy options or `POLYLOOP_WORKERS`
    /// (else none), one tokio thread, a 10 s shutdown timeout.
    pub fn new() -> TokioLoopBuilder {
        TokioLoopBuilder {
            workers: None,
            tokio_threads: 1,
            shutdown_timeout: Duration::from_secs(10),
        }
    }

    /// Worker threads that run the loop's `Send` tasks besides the loop's own thread
    /// (0: none). [`build`](TokioLoopBuilder::build) refuses more than
    /// [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// tokio's own worker threads: they drive tokio's I/O and timers and run the tasks
    /// that `tokio::spawn` starts.
    ///
    /// # Panics
    ///
    /// If `threads` is 0: a tokio runtime with its drivers needs at least one thread.
    pub fn tokio_threads(mut self, threads: usize) -> Self {
        assert!(
            threads >= 1,
            "TokioLoopBuilder::tokio_threads(0): the runtime needs at least 1 thread to drive \
             its I/O and timers"
        );
        self.tokio_threads = threads;
        self
    }

    /// How long `close()` waits for tokio's blocking tasks (`spawn_blocking`) to end
    /// before it leaves them behind.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    fn resolved_workers(&self) -> Result<usize, Error> {
        if let Some(n) = self.workers {
            return polyloop::plugin::check_workers(n);
        }
        if let Some(n) = polyloop::plugin::options().workers {
            return polyloop::plugin::check_workers(n);
        }
        // An unset POLYLOOP_WORKERS means no workers here, not one per core.
        match std::env::var_os("POLYLOOP_WORKERS") {
            None => Ok(0),
            Some(_) => polyloop::plugin::workers(),
        }
    }

    /// Makes the loop: a tokio runtime, a polyloop loop whose runner context is that
    /// runtime's, and the worker threads. See the [crate docs](crate#closing) for
    /// what `close()` does.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidEnv`] for a bad `POLYLOOP_WORKERS` or `POLYLOOP_DEBUG`;
    /// - [`Error::TooManyWorkers`] for more than
    ///   [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS) workers: no thread starts;
    /// - [`Error::ThreadStart`] if the system refuses to start a worker thread or one of
    ///   tokio's threads (a limit on threads, such as `ulimit -u`): the threads already
    ///   started for the loop are stopped and joined first.
    ///
    /// # Panics
    ///
    /// If the system refuses to make the runtime's epoll or other drivers; the message
    /// says which.
    pub fn build(&self) -> Result<EventLoop, Error> {
        let workers = self.resolved_workers()?;
        let runtime = self.start_runtime()?;
        // The context holds the handle only until close(): a handle keeps the runtime's
        // drivers (and their fds) alive, and the loop itself may live on after close.
        let handle = Arc::new(Mutex::new(Some(runtime.handle().clone())));
        let context_handle = handle.clone();
        let runtime = Mutex::new(Some(runtime));
        let timeout = self.shutdown_timeout;
        let lp = EventLoop::builder()
            .runner_context(move |run| {
                let current = context_handle.lock().unwrap_or_else(PoisonError::into_inner).clone();
                match current {
                    Some(handle) => {
                        let _entered = handle.enter();
                        run();
                    }
                    None => run(),
                }
            })
            // 1: no thread polls the loop's tasks any more (the close hook of the
            // workers, added below).
            // 2 happens in between: close() drops the tasks inside the runtime context.
            // 3: then tokio's tasks and threads.
            .after_close(move |_| {
                handle.lock().unwrap_or_else(PoisonError::into_inner).take();
                let rt = runtime.lock().unwrap_or_else(PoisonError::into_inner).take();
                match rt {
                    // A tokio thread cannot wait for the runtime it belongs to.
                    Some(rt) if ON_TOKIO_THREAD.get() => rt.shutdown_background(),
                    Some(rt) => rt.shutdown_timeout(timeout),
                    None => {}
                }
            })
            .build()?;
        let id = lp.id();
        let named = |i| format!("polyloop-tokio-{id}-{i}");
        if let Err(err) = polyloop::plugin::start_workers(&lp, workers, named) {
            // The workers that started are joined; this stops tokio's threads too.
            let _ = lp.close();
            return Err(err);
        }
        Ok(lp)
    }

    /// The loop's tokio runtime, with its threads started.
    fn start_runtime(&self) -> Result<tokio::runtime::Runtime, Error> {
        let build = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.tokio_threads)
                .thread_name("polyloop-tokio")
                .on_thread_start(|| ON_TOKIO_THREAD.set(true))
                .enable_all()
                .build()
        };
        // tokio panics ("OS can't spawn worker thread") when the system refuses its
        // first thread, and offers no way to be told instead; what it had made is
        // dropped by then.
        match std::panic::catch_unwind(build) {
            Ok(Ok(runtime)) => Ok(runtime),
            Ok(Err(err)) => panic!("polyloop-tokio: could not start a tokio runtime: {err}"),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                match message {
                    Some(reason) if reason.contains("can't spawn") => Err(Error::ThreadStart {
                        what: "a thread of the tokio runtime for a new event loop".into(),
                        kind: std::io::ErrorKind::Other,
                        reason: format!("tokio: {reason}"),
                    }),
                    // Not a thread the system refused: not ours to turn into an error.
                    _ => std::panic::resume_unwind(panic),
                }
            }
        }
    }
}

impl Default for TokioLoopBuilder {
    fn default() -> Self {
        TokioLoopBuilder::new()
    }
}

thread_local! {
    /// Whether this thread is one of the threads of a runtime made here.
    static ON_TOKIO_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
