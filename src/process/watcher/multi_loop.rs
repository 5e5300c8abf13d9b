//! `MultiLoopChildWatcher`: a SIGCHLD handler that polls every watched pid.

use std::io;
use std::sync::Arc;

use super::polling::{Engine, Mode};

/// Watches children through SIGCHLD: on each signal it polls every watched pid with
/// `waitpid(pid, WNOHANG)` (O(n) per signal), so children that other code started are
/// left alone.
///
/// The signal action is registered through signal-hook-registry: a handler installed
/// before it (by tokio, async-process, or a raw `sigaction`) keeps running, chained. One
/// action serves every signal-driven watcher in the process; when the last of them is
/// closed (and has reaped its children) the action is unregistered, and only the
/// previous handler runs again. The registry's trampoline itself stays installed:
/// putting back the raw old `sigaction` would cut off others who registered through it.
///
/// While it has children outstanding, it also rescans every second, so a lost or
/// stolen SIGCHLD delays a status, never loses it (see [the module](super)).
///
/// No loop is needed: whichever thread drives the reactor reaps. A loop given to
/// `attach_loop` runs the handlers; without one they run on the child handler thread
/// (see [`add_child_handler`](super::ChildWatcher::add_child_handler)).
///
/// # Examples
///
/// ```
/// use polyloop::process::{ChildWatcher, MultiLoopChildWatcher};
///
/// let watcher = MultiLoopChildWatcher::new()?;
/// let child = std::process::Command::new("sh").args(["-c", "exit 4"]).spawn()?;
/// let status = polyloop::block_on(watcher.watch(child.id()))?;
/// assert_eq!(status.code(), Some(4));
/// watcher.close();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct MultiLoopChildWatcher {
    engine: Arc<Engine>,
}

impl MultiLoopChildWatcher {
    /// A new watcher. Its SIGCHLD action is armed before this returns, so no child
    /// it later watches can exit unnoticed.
    ///
    /// # Errors
    ///
    /// When the self-pipe cannot be made or the signal action cannot be registered.
    pub fn new() -> io::Result<MultiLoopChildWatcher> {
        Ok(MultiLoopChildWatcher { engine: Engine::new("multiloop", Mode::MultiLoop)? })
    }
}

super::polling::engine_watcher!(MultiLoopChildWatcher, "multiloop");
