//! A [polyloop] policy whose loops run `Send` tasks on a pool of worker threads,
//! registered as `"threadpool"`.
//!
//! Each loop made by [`ThreadPoolPolicy`] starts `N` worker threads that lend
//! themselves to it with [`WeakEventLoop::run_worker`]; together with the thread that runs
//! the loop they share its tasks, and an idle thread steals from a busy one. `N` is
//! [`PolicyOptions::workers`](polyloop::plugin::PolicyOptions::workers), else
//! `POLYLOOP_WORKERS`, else one fewer than the available cores (at least 1): while the
//! loop runs, as many threads run tasks as there are cores ([`default_workers`]). At
//! most [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS). Closing the loop stops its
//! workers and joins them; so does dropping its last handle, since the workers do not
//! hold one. A loop made for a thread without being asked for (by
//! `polyloop::block_on`) is closed when that thread exits.
//!
//! The context is the thread, as with the default policy: each thread has its own
//! current loop, and only the main thread gets one made for it on demand.
//!
//! # Selecting it by name
//!
//! A plug-in is found only when the binary links it, so name the crate once:
//!
//! ```
//! use polyloop_threadpool as _;
//!
//! let policy = polyloop::plugin::install("threadpool")?;   // or POLYLOOP_POLICY=threadpool
//! assert_eq!(policy.name(), "threadpool");
//! let lp = polyloop::new_event_loop()?;
//! let squares = lp.run_until_complete(async {
//!     let tasks: Vec<_> = (0..100u64).map(|i| polyloop::spawn(async move { i * i })).collect();
//!     let mut sum = 0;
//!     for t in tasks {
//!         sum += t.await;
//!     }
//!     sum
//! })?;
//! assert_eq!(squares, 328_350);
//! lp.close()?; // stops and joins the workers
//! # Ok::<(), polyloop::Error>(())
//! ```
//!
//! # Using it directly
//!
//! ```
//! use polyloop::EventLoopPolicy;
//! use polyloop_threadpool::ThreadPoolPolicy;
//!
//! let lp = ThreadPoolPolicy::with_workers(2).new_event_loop()?;
//! let on = lp.run_until_complete(async {
//!     polyloop::spawn(async { std::thread::current().name().map(String::from) }).await
//! })?;
//! // Whichever thread ran it: the loop's own, or one of the two workers.
//! println!("ran on {on:?}");
//! lp.close()?;
//! # Ok::<(), polyloop::Error>(())
//! ```
//!
//! [polyloop]: https://docs.rs/polyloop
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

use std::fmt;
use std::sync::Arc;
use std::thread;

#[cfg(doc)]
use polyloop::WeakEventLoop;
use polyloop::{DefaultEventLoopPolicy, Error, EventLoop, EventLoopPolicy};

polyloop::register_policy! {
    name: "threadpool",
    description: "loops run Send tasks on N worker threads plus the loop's thread \
                  (N = POLYLOOP_WORKERS, default cores - 1); per-thread context",
    create: || Arc::new(ThreadPoolPolicy::new()),
}

/// A policy whose loops run `Send` tasks on a pool of worker threads.
///
/// The number of workers is fixed per policy with [`ThreadPoolPolicy::with_workers`],
/// or read each time a loop is made ([`ThreadPoolPolicy::new`]).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use polyloop_threadpool::ThreadPoolPolicy;
///
/// polyloop::set_event_loop_policy(Some(Arc::new(ThreadPoolPolicy::with_workers(3))));
/// let lp = polyloop::new_event_loop()?;
/// assert_eq!(lp.run_until_complete(async { polyloop::spawn(async { 7 }).await })?, 7);
/// lp.close()?;
/// polyloop::set_event_loop_policy(None);
/// # Ok::<(), polyloop::Error>(())
/// ```
pub struct ThreadPoolPolicy {
    /// The per-thread current loops.
    context: DefaultEventLoopPolicy,
    workers: Option<usize>,
}

impl ThreadPoolPolicy {
    /// A policy whose loops get `PolicyOptions::workers` worker threads each, else
    /// `POLYLOOP_WORKERS` (both read by [`polyloop::plugin::workers()`]), else
    /// [`default_workers()`]: one fewer than the available cores.
    /// The setting is read each time a loop is made.
    pub fn new() -> ThreadPoolPolicy {
        ThreadPoolPolicy { context: DefaultEventLoopPolicy::new(), workers: None }
    }

    /// A policy whose loops get exactly `workers` worker threads each (besides the
    /// thread that runs the loop). Above [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS),
    /// its `new_event_loop` is [`Error::TooManyWorkers`].
    ///
    /// # Panics
    ///
    /// If `workers` is 0: a pool needs at least one thread (the default policy makes
    /// loops with no workers).
    pub fn with_workers(workers: usize) -> ThreadPoolPolicy {
        assert!(
            workers >= 1,
            "ThreadPoolPolicy::with_workers(0): a pool needs at least 1 worker thread; \
             use DefaultEventLoopPolicy for loops without workers"
        );
        ThreadPoolPolicy { context: DefaultEventLoopPolicy::new(), workers: Some(workers) }
    }

    /// How many worker threads the next loop gets.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] if the count comes from `POLYLOOP_WORKERS` and that is not
    /// a whole number from 1 to [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS);
    /// [`Error::TooManyWorkers`] for a count above it given in code.
    pub fn workers(&self) -> Result<usize, Error> {
        match self.workers {
            Some(n) => polyloop::plugin::check_workers(n),
            None if polyloop::plugin::options().workers.is_none()
                && std::env::var_os("POLYLOOP_WORKERS").is_none() =>
            {
                Ok(default_workers())
            }
            None => polyloop::plugin::workers(),
        }
    }
}

/// Worker threads when no count is given: one fewer than the available cores (at least
/// one), so that with the thread that runs the loop, as many threads run tasks as there
/// are cores, as with tokio's default `worker_threads`. One more thread than cores
/// only adds switching between them (see BENCHMARKS.md, "Threads that run tasks").
pub fn default_workers() -> usize {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).max(1)
}

impl Default for ThreadPoolPolicy {
    fn default() -> Self {
        ThreadPoolPolicy::new()
    }
}

impl fmt::Debug for ThreadPoolPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolPolicy").field("workers", &self.workers).finish()
    }
}

impl EventLoopPolicy for ThreadPoolPolicy {
    fn name(&self) -> &str {
        "threadpool"
    }

    /// The loop set on this thread; on the main thread with none set, a new pool loop
    /// (set as current).
    ///
    /// # Errors
    ///
    /// [`Error::NoCurrentLoop`] on another thread with no loop set; whatever
    /// [`new_event_loop`](ThreadPoolPolicy::new_event_loop) gives.
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        // asyncio's per-thread rule, with this policy's kind of loop.
        self.context.get_event_loop_with(|| self.new_event_loop())
    }

    fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error> {
        self.context.set_event_loop(lp)
    }

    /// A new loop with its own worker threads (see [`new_pool_loop`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] for a bad `POLYLOOP_WORKERS` or `POLYLOOP_DEBUG`;
    /// [`Error::TooManyWorkers`] and [`Error::ThreadStart`] as [`new_pool_loop`].
    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        new_pool_loop(self.workers()?)
    }

    /// `true`: the current loops live in a [`DefaultEventLoopPolicy`]'s context.
    fn thread_loops_cacheable(&self) -> bool {
        true
    }
}

/// Makes a loop whose `Send` tasks run on `workers` new threads as well as on the
/// thread that runs it. Closing the loop stops the workers and joins them. The workers
/// hold no handle of the loop ([`EventLoop::downgrade`]): dropping the last handle
/// closes the loop, so its workers stop and its unfinished tasks are dropped then too
/// (joined on the thread that dropped it, unless that is one of the workers).
///
/// The workers run tasks whether or not the loop itself is running, as soon as they
/// are spawned. `!Send` tasks ([`EventLoop::spawn_local`]) stay on the loop's thread.
///
/// Debug mode follows `POLYLOOP_DEBUG` (or `PolicyOptions::debug`), as for any loop.
///
/// # Errors
///
/// - [`Error::TooManyWorkers`] above [`MAX_WORKERS`](polyloop::plugin::MAX_WORKERS);
/// - [`Error::ThreadStart`] if the system refuses to start a worker (a limit on
///   threads, such as `ulimit -u`): the workers already started are stopped and
///   joined first;
/// - [`Error::InvalidEnv`] for a bad `POLYLOOP_DEBUG`.
///
/// # Panics
///
/// If `workers` is 0.
///
/// # Examples
///
/// ```
/// let lp = polyloop_threadpool::new_pool_loop(2)?;
/// let out = polyloop::run_with(|| Ok(lp.clone()), async { 1 + 1 })?; // run_with closes it
/// assert_eq!(out, 2);
/// assert!(lp.is_closed());
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn new_pool_loop(workers: usize) -> Result<EventLoop, Error> {
    assert!(workers >= 1, "new_pool_loop(0): a pool needs at least 1 worker thread");
    polyloop::plugin::check_workers(workers)?;
    let lp = EventLoop::builder().build()?;
    let id = lp.id();
    if let Err(err) =
        polyloop::plugin::start_workers(&lp, workers, |i| format!("threadpool-{id}-{i}"))
    {
        // The workers that started are stopped and joined already.
        let _ = lp.close();
        return Err(err);
    }
    Ok(lp)
}
