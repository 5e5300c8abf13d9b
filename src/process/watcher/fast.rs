//! `FastChildWatcher`: reaps every child with `waitpid(-1)`.

use std::io;
use std::sync::Arc;

use super::polling::{Engine, Mode};

/// Reaps every exited child with `waitpid(-1, WNOHANG)` on each SIGCHLD: O(1) per child,
/// on the attached event loop, like [`SafeChildWatcher`](super::SafeChildWatcher).
///
/// **It reaps children that other code started.** A `std::process::Child::wait`, or
/// another runtime, then gets `ECHILD` for its own child. Use it only in a program
/// where polyloop starts every child. The statuses of children it reaps without a
/// handler are kept, and handed over when a handler for that pid is added (so a child
/// that ends before its handler is still reported). `waitpid(-1)` in one fast watcher
/// reaps the children of every other, so these statuses are shared by all the fast
/// watchers of the process: any of them hands a status over, and they are dropped
/// when the last fast watcher that is open is closed.
/// At most 4096 are kept (the oldest go first), and a kept status is dropped, not
/// handed over, once its pid names a new child of this process.
///
/// `waitpid(-1)` cannot tell that other code (a chained SIGCHLD handler, a library
/// calling `waitpid`) reaped one of its children. So when a signal's rescan reaps
/// nothing, and on the fallback rescan every second while children are outstanding
/// (which also makes up for a lost SIGCHLD; see [the module](super)), it asks the
/// kernel whether each pid it watches is still a child of ours: one that is not gets
/// [`ChildWatchError::NotChild`](super::ChildWatchError::NotChild) (`ECHILD`), within a
/// second of the next rescan of its loop, never a hang.
///
/// It is active only while the loop it is attached to runs; see `SafeChildWatcher`.
///
/// # Examples
///
/// ```
/// use polyloop::process::{ChildWatcher, FastChildWatcher};
///
/// let watcher = FastChildWatcher::new()?;
/// let lp = polyloop::new_event_loop()?;
/// watcher.attach_loop(Some(&lp));
/// let child = std::process::Command::new("true").spawn()?;
/// let status = lp.run_until_complete(watcher.watch(child.id()))??;
/// assert!(status.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FastChildWatcher {
    engine: Arc<Engine>,
}

impl FastChildWatcher {
    /// A new watcher. Its SIGCHLD action is armed before this returns, so no child
    /// it later watches can exit unnoticed.
    ///
    /// # Errors
    ///
    /// When the self-pipe cannot be made or the signal action cannot be registered.
    pub fn new() -> io::Result<FastChildWatcher> {
        Ok(FastChildWatcher { engine: Engine::new("fast", Mode::Fast)? })
    }
}

super::polling::engine_watcher!(FastChildWatcher, "fast");
