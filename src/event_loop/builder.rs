//! `LoopBuilder`: the settings of a new loop.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_listener::Event;

use super::{CloseHook, EventLoop, IDLE, Inner};
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
        Ok(EventLoop {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                executor: Executor::new(),
                phase: AtomicU8::new(IDLE),
                stopping: AtomicBool::new(false),
                stop_event: Event::new(),
                debug: AtomicBool::new(debug),
                slow: self.slow,
                hook: self.hook,
                callbacks: Arc::new(Callbacks::new()),
                driver_started: AtomicBool::new(false),
                close_hooks: Mutex::new(self.close_hooks),
            }),
        })
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
            .finish()
    }
}
