//! A [polyloop] policy whose loops run in debug mode, as asyncio's debug mode does,
//! registered as `"debug"`. Reports go to [`tracing`] as warnings.
//!
//! Every loop made by [`DebugPolicy`] reports
//!
//! - each task poll and each callback that takes longer than a threshold (100 ms by
//!   default; `POLYLOOP_SLOW_MS`, or [`DebugPolicy::with_slow_threshold`]), with the
//!   place the task was spawned;
//! - when it is closed with work left over: how many tasks were still unfinished,
//!   where each was spawned, and how many scheduled callbacks never ran.
//!
//! The events have target `polyloop_debug`, level `WARN`, a message that reads on its
//! own, and fields `loop_id`, `elapsed_ms`, `spawned_at`, `pending_tasks` and
//! `callbacks_never_run` where they apply. Any `tracing` subscriber shows them
//! (`tracing-subscriber`'s `fmt`, for one).
//!
//! The context is the thread, as with the default policy.
//!
//! Debug mode without this plug-in: `POLYLOOP_DEBUG=1` turns it on for the loops of
//! any policy (reports then go to stderr), and [`tracing_hook`] sends any loop's
//! reports to `tracing`.
//!
//! # Examples
//!
//! ```
//! use polyloop_debug as _; // link the plug-in, so its name is registered
//!
//! polyloop::plugin::install("debug")?;   // or POLYLOOP_POLICY=debug
//! let lp = polyloop::new_event_loop()?;
//! assert!(lp.get_debug());
//! lp.run_until_complete(async {
//!     // A poll that blocks the loop for 150 ms: reported as a warning.
//!     polyloop::spawn(async { std::thread::sleep(std::time::Duration::from_millis(150)) }).await
//! })?;
//! lp.spawn(std::future::pending::<()>()).detach();
//! lp.close()?; // reports the unfinished task and where it was spawned
//! # polyloop::set_event_loop_policy(None);
//! # Ok::<(), polyloop::Error>(())
//! ```
//!
//! [polyloop]: https://docs.rs/polyloop
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use polyloop::{DebugEvent, DefaultEventLoopPolicy, Error, EventLoop, EventLoopPolicy};

polyloop::register_policy! {
    name: "debug",
    description: "loops in debug mode: tracing warnings for task polls and callbacks slower \
                  than POLYLOOP_SLOW_MS (default 100), and for work left when a loop closes",
    create: || Arc::new(DebugPolicy::new()),
}

/// The slow threshold when neither `POLYLOOP_SLOW_MS` nor
/// [`DebugPolicy::with_slow_threshold`] says otherwise (asyncio's, too).
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_millis(100);

/// A policy whose loops run in debug mode and report through `tracing`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use polyloop::EventLoopPolicy;
/// use polyloop_debug::DebugPolicy;
///
/// let policy = DebugPolicy::with_slow_threshold(Duration::from_millis(20));
/// let lp = policy.new_event_loop()?;
/// assert!(lp.get_debug());
/// assert_eq!(lp.slow_callback_duration(), Duration::from_millis(20));
/// lp.close()?;
/// # Ok::<(), polyloop::Error>(())
/// ```
pub struct DebugPolicy {
    /// The per-thread current loops.
    context: DefaultEventLoopPolicy,
    slow: Option<Duration>,
}

impl DebugPolicy {
    /// A policy whose loops report what takes longer than `POLYLOOP_SLOW_MS`
    /// milliseconds, else [`DEFAULT_SLOW_THRESHOLD`]. The variable is read each time a
    /// loop is made.
    pub fn new() -> DebugPolicy {
        DebugPolicy { context: DefaultEventLoopPolicy::new(), slow: None }
    }

    /// A policy whose loops report what takes longer than `slow`
    /// (`POLYLOOP_SLOW_MS` is not read). `Duration::ZERO` reports every poll and callback.
    pub fn with_slow_threshold(slow: Duration) -> DebugPolicy {
        DebugPolicy { context: DefaultEventLoopPolicy::new(), slow: Some(slow) }
    }

    /// The threshold the next loop gets.
    ///
    /// # Errors
    ///
    /// As [`slow_threshold_from_env`], when the policy has no threshold of its own.
    pub fn slow_threshold(&self) -> Result<Duration, Error> {
        match self.slow {
            Some(slow) => Ok(slow),
            None => slow_threshold_from_env(),
        }
    }
}

impl Default for DebugPolicy {
    fn default() -> Self {
        DebugPolicy::new()
    }
}

impl fmt::Debug for DebugPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebugPolicy").field("slow", &self.slow).finish()
    }
}

impl EventLoopPolicy for DebugPolicy {
    fn name(&self) -> &str {
        "debug"
    }

    /// The loop set on this thread; on the main thread with none set, a new debug
    /// loop (set as current).
    ///
    /// # Errors
    ///
    /// [`Error::NoCurrentLoop`] on another thread with no loop set; whatever
    /// [`new_event_loop`](DebugPolicy::new_event_loop) gives.
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        // asyncio's per-thread rule, with this policy's kind of loop.
        self.context.get_event_loop_with(|| self.new_event_loop())
    }

    fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error> {
        self.context.set_event_loop(lp)
    }

    /// A new debug loop (see [`new_debug_loop`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] for a bad `POLYLOOP_SLOW_MS`.
    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        new_debug_loop(self.slow_threshold()?)
    }
}

/// Makes a loop in debug mode that reports to `tracing` what takes longer than `slow`.
///
/// # Errors
///
/// None today; the `Result` leaves room for settings that can be wrong.
///
/// # Examples
///
/// ```
/// let lp = polyloop_debug::new_debug_loop(std::time::Duration::from_millis(50))?;
/// assert!(lp.get_debug());
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn new_debug_loop(slow: Duration) -> Result<EventLoop, Error> {
    EventLoop::builder().debug(true).slow_callback_duration(slow).debug_hook(tracing_hook).build()
}

/// The threshold in `POLYLOOP_SLOW_MS` (whole milliseconds), else
/// [`DEFAULT_SLOW_THRESHOLD`].
///
/// # Errors
///
/// [`Error::InvalidEnv`] if the variable is set and is not a whole number of
/// milliseconds.
pub fn slow_threshold_from_env() -> Result<Duration, Error> {
    const EXPECTED: &str = "a whole number of milliseconds, e.g. 100";
    match std::env::var("POLYLOOP_SLOW_MS") {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_SLOW_THRESHOLD),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(ms) => Ok(Duration::from_millis(ms)),
            Err(_) => Err(Error::InvalidEnv {
                var: "POLYLOOP_SLOW_MS",
                value: v,
                expected: EXPECTED.into(),
            }),
        },
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::InvalidEnv {
            var: "POLYLOOP_SLOW_MS",
            value: v.to_string_lossy().into_owned(),
            expected: EXPECTED.into(),
        }),
    }
}

/// A [`DebugHook`](polyloop::DebugHook) that turns each report into a `tracing`
/// warning (target `polyloop_debug`). Put it on any loop with
/// [`LoopBuilder::debug_hook`](polyloop::LoopBuilder::debug_hook).
///
/// # Examples
///
/// ```
/// let lp = polyloop::EventLoop::builder()
///     .debug(true)
///     .debug_hook(polyloop_debug::tracing_hook)
///     .build()?;
/// # lp.close()?;
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn tracing_hook(event: &DebugEvent<'_>) {
    match event {
        DebugEvent::SlowPoll { loop_id, spawned_at, elapsed } => tracing::warn!(
            loop_id,
            spawned_at = %spawned_at,
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "{event}",
        ),
        DebugEvent::SlowCallback { loop_id, elapsed } => {
            tracing::warn!(loop_id, elapsed_ms = elapsed.as_secs_f64() * 1e3, "{event}",)
        }
        DebugEvent::ClosedWithPending { loop_id, tasks, callbacks } => tracing::warn!(
            loop_id,
            pending_tasks = tasks.len(),
            callbacks_never_run = callbacks,
            "{event}",
        ),
        // Reports added to polyloop later still get through, as text.
        other => tracing::warn!("{other}"),
    }
}
