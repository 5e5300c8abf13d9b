//! `SafeChildWatcher`: as multi-loop, but driven by an event loop.

use std::io;
use std::sync::Arc;

use super::polling::{Engine, Mode};

/// As [`MultiLoopChildWatcher`](super::MultiLoopChildWatcher) (SIGCHLD, then
/// `waitpid(pid, WNOHANG)` for each watched pid), but the rescans and the handlers run
/// on the attached event loop, and only while it runs: the main thread's loop, as
/// asyncio's `SafeChildWatcher`.
///
/// It is active only while the loop it is attached to runs, as asyncio's `is_active()`
/// (`loop is not None and loop.is_running()`). [`Command::spawn`] attaches it to the
/// loop running on the main thread; elsewhere, while the attached loop does not run,
/// spawning fails at once with
/// [`ChildWatchError::Inactive`](super::ChildWatchError::Inactive) rather than accept
/// a child whose status would wait for a loop that may never run again. Children it
/// already watches that end while the loop is idle or detached are reported once it
/// runs (or a loop is attached) again.
///
/// A child whose end nobody awaits any more (its [`ChildExit`](super::ChildExit) or
/// [`Child`](crate::process::Child) was dropped before it ended) is reaped without the
/// loop, so no zombie is left when the loop stops: at the drop if the child had ended,
/// else when its SIGCHLD comes in. The fast watcher does the same.
///
/// While it has children outstanding, it also rescans every second (on the attached
/// loop), so a lost or stolen SIGCHLD delays a status, never loses it (see
/// [the module](super)).
///
/// [`Command::spawn`]: crate::process::Command::spawn
///
/// # Examples
///
/// ```
/// use polyloop::process::{ChildWatcher, SafeChildWatcher};
///
/// let watcher = SafeChildWatcher::new()?;
/// assert!(!watcher.is_active());
/// let lp = polyloop::new_event_loop()?;
/// watcher.attach_loop(Some(&lp));
/// assert!(!watcher.is_active()); // attached, but the loop does not run
/// assert!(lp.run_until_complete(async { watcher.is_active() })?);
/// let child = std::process::Command::new("true").spawn()?;
/// let status = lp.run_until_complete(watcher.watch(child.id()))??;
/// assert!(status.success());
/// watcher.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SafeChildWatcher {
    engine: Arc<Engine>,
}

impl SafeChildWatcher {
    /// A new watcher. Its SIGCHLD action is armed before this returns, so no child
    /// it later watches can exit unnoticed.
    ///
    /// # Errors
    ///
    /// When the self-pipe cannot be made or the signal action cannot be registered.
    pub fn new() -> io::Result<SafeChildWatcher> {
        Ok(SafeChildWatcher { engine: Engine::new("safe", Mode::Safe)? })
    }
}

super::polling::engine_watcher!(SafeChildWatcher, "safe");
