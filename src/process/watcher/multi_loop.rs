//! `MultiLoopChildWatcher`: a SIGCHLD handler that polls every watched pid.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::ChildWatcher;
use super::exit::ChildExit;
use super::polling::{Engine, Mode};
use crate::EventLoop;

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
/// No loop is needed: whichever thread drives the reactor reaps. A loop given to
/// `attach_loop` runs the handlers; without one they run on the child handler thread
/// (see [`add_child_handler`](ChildWatcher::add_child_handler)).
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

impl ChildWatcher for MultiLoopChildWatcher {
    fn name(&self) -> &str {
        "multiloop"
    }

    fn add_child_handler(&self, pid: u32, callback: Box<dyn FnOnce(u32, i32) + Send + 'static>) {
        self.engine.add_child_handler(pid, callback);
    }

    fn remove_child_handler(&self, pid: u32) -> bool {
        self.engine.core.remove(pid)
    }

    fn attach_loop(&self, lp: Option<&EventLoop>) {
        self.engine.attach_loop(lp);
    }

    fn is_active(&self) -> bool {
        self.engine.is_active()
    }

    fn close(&self) {
        self.engine.close();
    }

    fn watch(&self, pid: u32) -> ChildExit {
        self.engine.watch(pid)
    }
}

impl Drop for MultiLoopChildWatcher {
    fn drop(&mut self) {
        // Children already watched are still reaped; then the subscription goes.
        self.engine.close();
    }
}

impl fmt::Debug for MultiLoopChildWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.engine.core.lock();
        f.debug_struct("MultiLoopChildWatcher")
            .field("watched", &state.watched.len())
            .field("attached", &state.lp.is_some())
            .field("closed", &state.closed)
            .finish()
    }
}
