//! A [polyloop] policy with one event loop for the whole process, registered as
//! `"global"`.
//!
//! asyncio's policies keep "a separate event loop per context", and the context is the
//! thread by default; this policy makes the context the process. [`GlobalPolicy`]
//! keeps one loop: `get_event_loop()` returns it from any thread (creating it on first
//! use, on any thread), and `set_event_loop()` replaces it for every thread.
//!
//! # Closed and cleared loops
//!
//! A loop that was closed can never run again, and with one loop for everyone a single
//! `close()` would otherwise break every thread for good. So `get_event_loop()` hands
//! out a closed loop never: it makes a new one, sets it, and returns that. Likewise,
//! after `set_event_loop(None)` the next `get_event_loop()` makes a new loop. This is
//! asyncio's rule that `get_event_loop()` never returns nothing, applied to the
//! process (asyncio's per-thread default would return the closed loop, or raise).
//!
//! Only one thread can run a loop at a time: while one thread runs the process loop,
//! other threads spawn onto it (`lp.spawn(...)` is `Send + Sync`) rather than run it.
//! [`polyloop::block_on`] on a second thread runs on a private loop instead.
//!
//! # Examples
//!
//! ```
//! use polyloop_global as _; // link the plug-in, so its name is registered
//!
//! polyloop::plugin::install("global")?;
//! let here = polyloop::get_event_loop()?;
//! let there = std::thread::spawn(|| polyloop::get_event_loop()).join().unwrap()?;
//! assert_eq!(here, there);
//!
//! // Work spawned from another thread runs when the loop runs.
//! let task = std::thread::spawn(move || there.spawn(async { 40 + 2 })).join().unwrap();
//! assert_eq!(here.run_until_complete(task)?, 42);
//! # polyloop::set_event_loop_policy(None);
//! # Ok::<(), polyloop::Error>(())
//! ```
//!
//! [polyloop]: https://docs.rs/polyloop
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use polyloop::{Error, EventLoop, EventLoopPolicy};

polyloop::register_policy! {
    name: "global",
    description: "one event loop for the whole process: every thread gets the same loop; \
                  a closed one is replaced on the next get",
    create: || Arc::new(GlobalPolicy::new()),
}

/// A policy whose context is the process: one current loop shared by every thread.
///
/// Each `GlobalPolicy` value keeps its own loop; installed as the process-wide policy,
/// that is the process's loop.
///
/// # Examples
///
/// ```
/// use polyloop::EventLoopPolicy;
/// use polyloop_global::GlobalPolicy;
///
/// let policy = GlobalPolicy::new();
/// let first = policy.get_event_loop()?;
/// assert_eq!(policy.get_event_loop()?, first);
///
/// first.close()?;
/// let second = policy.get_event_loop()?; // a closed loop is replaced
/// assert_ne!(second, first);
///
/// let mine = policy.new_event_loop()?;
/// policy.set_event_loop(Some(mine.clone()))?;  // for every thread
/// let seen = std::thread::scope(|s| s.spawn(|| policy.get_event_loop()).join().unwrap())?;
/// assert_eq!(seen, mine);
/// # Ok::<(), polyloop::Error>(())
/// ```
pub struct GlobalPolicy {
    current: Mutex<Option<EventLoop>>,
    factory: fn() -> Result<EventLoop, Error>,
}

impl GlobalPolicy {
    /// A policy whose loops are made by [`EventLoop::new`].
    pub fn new() -> GlobalPolicy {
        GlobalPolicy::with_factory(EventLoop::new)
    }

    /// A policy whose loops are made by `factory`: the process-wide context with
    /// another kind of loop (a thread pool's, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::{EventLoop, EventLoopPolicy};
    /// use polyloop_global::GlobalPolicy;
    ///
    /// let policy = GlobalPolicy::with_factory(|| EventLoop::builder().debug(true).build());
    /// assert!(policy.get_event_loop()?.get_debug());
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn with_factory(factory: fn() -> Result<EventLoop, Error>) -> GlobalPolicy {
        GlobalPolicy { current: Mutex::new(None), factory }
    }

    /// The process loop if one is set and open, without making one.
    pub fn current_loop(&self) -> Option<EventLoop> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|lp| !lp.is_closed()).cloned()
    }
}

impl Default for GlobalPolicy {
    fn default() -> Self {
        GlobalPolicy::new()
    }
}

impl fmt::Debug for GlobalPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("GlobalPolicy").field("current", &*current).finish()
    }
}

impl EventLoopPolicy for GlobalPolicy {
    fn name(&self) -> &str {
        "global"
    }

    /// The process loop, from any thread. When none is set, or the one set was
    /// closed, a new loop is made and set for every thread.
    ///
    /// # Errors
    ///
    /// Whatever the factory gives (by default, [`Error::InvalidEnv`] for a bad
    /// `POLYLOOP_DEBUG`).
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        // Held while making the loop, so two threads asking at once get the same one.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some(lp) if !lp.is_closed() => Ok(lp.clone()),
            _ => {
                let lp = (self.factory)()?;
                *current = Some(lp.clone());
                Ok(lp)
            }
        }
    }

    /// Replaces the process loop for every thread; `None` clears it (the next
    /// `get_event_loop()` makes a new one). The loop it replaces is not closed.
    fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error> {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = lp;
        Ok(())
    }

    /// A new loop from the factory; it is not set as the process loop.
    ///
    /// # Errors
    ///
    /// Whatever the factory gives.
    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        (self.factory)()
    }
}
