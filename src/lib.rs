//! polyloop: a small, fast async runtime whose event loops come from pluggable,
//! asyncio-style **policies**.
//!
//! # A first program
//!
//! [`block_on`] runs a future on this thread's loop, with no set-up:
//!
//! ```
//! let answer = polyloop::block_on(async { 6 * 7 });
//! assert_eq!(answer, 42);
//! ```
//!
//! Inside a running loop, [`spawn`] starts tasks, [`sleep`] and [`timeout`] deal with
//! time, and I/O types from `async-io` just work:
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! polyloop::block_on(async {
//!     let tasks: Vec<_> = (0..10).map(|i| polyloop::spawn(async move { i * 2 })).collect();
//!     let mut sum = 0;
//!     for t in tasks {
//!         sum += t.await;
//!     }
//!     assert_eq!(sum, 90);
//!
//!     let slow = polyloop::sleep(Duration::from_secs(60));
//!     assert!(polyloop::timeout(Duration::from_millis(5), slow).await.is_err());
//! });
//! ```
//!
//! # Loops
//!
//! An [`EventLoop`] is asyncio's loop: `run_until_complete`, `run_forever`, `stop`,
//! `close`, and callbacks with `call_soon`, `call_later` and `call_at`:
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! let lp = polyloop::new_event_loop()?;
//! let stopper = lp.clone();
//! lp.call_later(Duration::from_millis(2), move || stopper.stop());
//! lp.run_forever()?;
//! lp.close()?;
//! # Ok::<(), polyloop::Error>(())
//! ```
//!
//! # Policies
//!
//! The process-wide [`EventLoopPolicy`] decides what "the current loop" is and how new
//! loops are made. The default keeps one loop per thread. Plug-in crates register
//! more policies by name (see [`plugin`]); a program picks one at start-up:
//!
//! ```
//! polyloop::plugin::install("default")?;      // or install_from_env(): POLYLOOP_POLICY
//! let policy = polyloop::get_event_loop_policy();
//! assert_eq!(policy.name(), "default");
//! polyloop::set_event_loop_policy(None);      // back to a fresh default policy
//! # Ok::<(), polyloop::Error>(())
//! ```
//!
//! # asyncio's rules, as polyloop keeps them
//!
//! - [`get_event_loop`] returns the running loop first; else the policy's loop for this
//!   thread. The default policy makes one on the main thread only while
//!   [`set_event_loop`] was never called there: after `set_event_loop(None)` (or any
//!   call) it is [`Error::NoCurrentLoop`] naming the thread, as asyncio's `_set_called`.
//!   [`block_on`] still makes a loop there (asyncio would refuse).
//! - Callbacks run in passes: each pass runs the callbacks that were ready when it
//!   began, and what they schedule waits for the next pass. After
//!   [`stop`](EventLoop::stop), the run ends after the pass under way (for a stop made
//!   before the run, after its first pass); what that pass scheduled runs in the next run.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! let lp = polyloop::new_event_loop()?;
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let (inner, l) = (lp.clone(), log.clone());
//! lp.call_soon(move || {
//!     l.lock().unwrap().push("first");
//!     let l = l.clone();
//!     inner.call_soon(move || l.lock().unwrap().push("next pass"));
//! });
//! lp.stop();
//! lp.run_forever()?;
//! assert_eq!(*log.lock().unwrap(), ["first"]);
//! lp.stop();
//! lp.run_forever()?;
//! assert_eq!(*log.lock().unwrap(), ["first", "next pass"]);
//! # Ok::<(), polyloop::Error>(())
//! ```
//!
//! - The safe and fast child watchers are active only while the loop they are
//!   attached to runs; a spawn through one that is not fails at once with
//!   [`ChildWatchError::Inactive`](process::ChildWatchError::Inactive).
//! - In a forked child there is no current or running loop of the parent's. A new
//!   loop works there (tasks, callbacks, timers, children through a threaded watcher);
//!   if the parent had used async-io's reactor, reactor I/O fails with a clear error,
//!   and the parent's watchers refuse with
//!   [`ChildWatchError::Forked`](process::ChildWatchError::Forked). The details are in
//!   `docs/reliability.md`.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks
)]
#![deny(unsafe_op_in_unsafe_fn)]

mod block_on;
pub mod blocking;
mod debug;
mod error;
mod event_loop;
mod exception;
mod executor;
mod fork;
mod handle;
pub mod plugin;
mod policy;
pub mod process;
mod settings;
#[cfg(unix)]
pub mod signal;
mod workers;

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::{Duration, Instant};

pub use block_on::block_on;
pub use blocking::{Unblock, unblock};
pub use debug::{DebugEvent, DebugHook, stderr_hook};
pub use error::Error;
pub use event_loop::{EventLoop, LoopBuilder, WeakEventLoop, get_running_loop};
pub use exception::{
    ExceptionContext, ExceptionHandler, ExceptionSource, default_exception_handler,
};
pub use executor::{Executor, LocalExecutor, Task};
pub use handle::{Handle, TimerHandle};
pub use policy::{
    DefaultEventLoopPolicy, EventLoopPolicy, get_child_watcher, get_event_loop,
    get_event_loop_policy, is_main_thread, new_event_loop, set_child_watcher, set_event_loop,
    set_event_loop_policy,
};
/// Runs `async fn main` on a loop of the chosen policy: `#[policy_main]`,
/// `#[policy_main(policy = "threadpool", workers = 4, debug = true)]`.
///
/// The policy is the argument, else `POLYLOOP_POLICY`, else `"default"`; it is
/// installed process-wide, a fresh loop runs the body, and the loop is closed after.
pub use polyloop_macros::policy_main;
/// Runs an `async fn` test on a fresh loop of the chosen policy (the process-wide
/// policy is left alone, since tests run in parallel).
pub use polyloop_macros::policy_test;

/// Runs `future` on a fresh loop made by `factory`, then closes the loop, as
/// asyncio's `run(main, loop_factory=...)`. It bypasses the policy and the registry.
///
/// # Errors
///
/// The factory's error, or the loop's (see [`EventLoop::run_until_complete`]).
///
/// # Examples
///
/// ```
/// let out = polyloop::run_with(|| polyloop::EventLoop::builder().debug(true).build(), async {
///     polyloop::get_running_loop().unwrap().get_debug()
/// })?;
/// assert!(out);
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn run_with<F: Future>(
    factory: impl FnOnce() -> Result<EventLoop, Error>,
    future: F,
) -> Result<F::Output, Error> {
    let lp = factory()?;
    let out = lp.run_until_complete(future);
    lp.close()?;
    out
}

/// Spawns a `Send` future on the loop running on this thread.
///
/// # Panics
///
/// Outside a running loop (see [`try_spawn`]), or if the loop is closed.
///
/// # Examples
///
/// ```
/// let n = polyloop::block_on(async { polyloop::spawn(async { 2 + 2 }).await });
/// assert_eq!(n, 4);
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match try_spawn_at(future, Location::caller()) {
        Ok(task) => task,
        Err(err) => panic!("polyloop::spawn: {err}"),
    }
}

/// Spawns a `Send` future on the loop running on this thread, or says why not.
///
/// # Errors
///
/// [`Error::NoRunningLoop`] outside a running loop, [`Error::Closed`] if it is closed.
///
/// # Examples
///
/// ```
/// assert!(polyloop::try_spawn(async {}).unwrap_err().is_no_running_loop());
/// ```
#[track_caller]
pub fn try_spawn<F>(future: F) -> Result<Task<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    try_spawn_at(future, Location::caller())
}

fn try_spawn_at<F>(future: F, loc: &'static Location<'static>) -> Result<Task<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    event_loop::with_running_loop(|lp| match lp {
        Some(lp) => lp.try_spawn_at(future, loc),
        None => Err(Error::NoRunningLoop),
    })
}

/// Spawns a `!Send` future on the loop running on this thread; it runs on this thread.
///
/// # Panics
///
/// Outside a running loop, or on a worker thread of a loop whose `!Send` tasks live on
/// another thread.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
///
/// let n = polyloop::block_on(async {
///     let rc = Rc::new(20);
///     polyloop::spawn_local(async move { *rc + 1 }).await
/// });
/// assert_eq!(n, 21);
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match get_running_loop() {
        Some(lp) => lp.spawn_local(future),
        None => panic!("polyloop::spawn_local: {}", Error::NoRunningLoop),
    }
}

/// Waits for `duration` (a timer of the reactor; no thread is blocked).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// polyloop::block_on(polyloop::sleep(Duration::from_millis(10)));
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
pub async fn sleep(duration: Duration) {
    match Instant::now().checked_add(duration) {
        Some(deadline) => fork::sleep_until(deadline).await,
        // Beyond what an `Instant` can hold: never.
        None => std::future::pending().await,
    }
}

/// Waits until `deadline` (at once if it has passed), as tokio's `sleep_until`.
///
/// Cheaper than `sleep(deadline - now)` when the deadline is known: it reads no clock
/// of its own.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let deadline = Instant::now() + Duration::from_millis(10);
/// polyloop::block_on(polyloop::sleep_until(deadline));
/// assert!(Instant::now() >= deadline);
///
/// // A deadline in the past is no error: the sleep ends at once.
/// polyloop::block_on(polyloop::sleep_until(deadline - Duration::from_millis(5)));
/// ```
pub async fn sleep_until(deadline: Instant) {
    fork::sleep_until(deadline).await;
}

/// Gives the other tasks a turn, then resumes.
pub async fn yield_now() {
    futures_lite::future::yield_now().await
}

/// Awaits `future`, but gives up after `duration` with [`TimedOut`] (the future is
/// dropped).
///
/// # Errors
///
/// [`TimedOut`] if the future did not complete in time.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// polyloop::block_on(async {
///     assert_eq!(polyloop::timeout(Duration::from_secs(5), async { 1 }).await, Ok(1));
///     let never = std::future::pending::<()>();
///     let err = polyloop::timeout(Duration::from_millis(1), never).await.unwrap_err();
///     assert_eq!(err.to_string(), "timed out after 1ms");
/// });
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, TimedOut> {
    use futures_lite::FutureExt;
    async { Ok(future.await) }
        .or(async {
            sleep(duration).await;
            Err(TimedOut { after: duration })
        })
        .await
}

/// The error of [`timeout`]: the future did not complete in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    after: Duration,
}

impl TimedOut {
    /// The time limit that passed.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.after)
    }
}

impl std::error::Error for TimedOut {}

impl From<TimedOut> for std::io::Error {
    fn from(err: TimedOut) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, err)
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// What the attribute macros and `register_policy!` expand to. Not public API.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;

    pub use crate::plugin::is_valid_policy_name;
    pub use inventory;

    use crate::plugin::{self, PolicyOptions};

    /// The arguments of `#[policy_main]` / `#[policy_test]`.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct MainConfig {
        pub policy: Option<&'static str>,
        pub workers: Option<usize>,
        pub debug: Option<bool>,
    }

    /// `#[policy_main]`: install the policy, run `fut` on a fresh loop, close it.
    pub fn policy_main<F: Future>(config: MainConfig, fut: F) -> F::Output {
        plugin::set_options(PolicyOptions { workers: config.workers, debug: config.debug });
        let policy = match config.policy {
            Some(name) => plugin::install(name),
            None => plugin::install_from_env(),
        }
        .unwrap_or_else(|e| panic!("#[policy_main]: {e}"));
        run_fresh(&*policy, fut, "#[policy_main]")
    }

    /// `#[policy_test]`: run `fut` on a fresh loop of the policy, close it. The
    /// process-wide policy is left alone (tests run in parallel).
    pub fn policy_test<F: Future>(config: MainConfig, fut: F) -> F::Output {
        let name = match config.policy {
            Some(name) => name.to_string(),
            None => plugin::policy_name_from_env(),
        };
        let plugin = plugin::find(&name).unwrap_or_else(|e| panic!("#[policy_test]: {e}"));
        // Options for this test's thread only: tests run in parallel.
        let options = PolicyOptions { workers: config.workers, debug: config.debug };
        plugin::with_options(options, || {
            let policy = (plugin.create)();
            run_fresh(&*policy, fut, "#[policy_test]")
        })
    }

    fn run_fresh<F: Future>(policy: &dyn crate::EventLoopPolicy, fut: F, what: &str) -> F::Output {
        let lp = policy.new_event_loop().unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Some(debug) = plugin::options().debug {
            lp.set_debug(debug);
        }
        let _ = policy.set_event_loop(Some(lp.clone()));
        // Close the loop also when the body panics (a #[should_panic] test).
        struct Close<'a>(crate::EventLoop, &'a dyn crate::EventLoopPolicy);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                let _ = self.1.set_event_loop(None);
                let _ = self.0.close();
            }
        }
        let _close = Close(lp.clone(), policy);
        lp.run_until_complete(fut).unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}
