//! `ThreadedChildWatcher`: one waiting thread per child.

use std::io;
use std::sync::Arc;

use rustix::process::{Pid, WaitOptions};

use super::core::{self, Added, Core, Waiter};
use super::error::ChildWatchError;
use super::exit::from_wait_status;
use super::pidfd;

/// Waits for each child on a thread of its own (a blocking `waitpid(pid)`).
///
/// It works from any thread, with or without a loop; a loop given to `attach_loop`
/// runs the handlers, else they run on the child handler thread (see
/// [`add_child_handler`](super::ChildWatcher::add_child_handler)). The cost is one thread (with
/// a small stack) per child in flight. It is the default where pidfds are missing.
///
/// If a thread cannot be started, the child is watched through a pidfd where the kernel
/// has them; else the watch fails with [`ChildWatchError::NoThread`] and the child is
/// left unreaped, so it can still be watched again.
///
/// # Examples
///
/// ```
/// use polyloop::process::{ChildWatcher, ThreadedChildWatcher};
///
/// let watcher = ThreadedChildWatcher::new();
/// let child = std::process::Command::new("true").spawn()?;
/// let status = polyloop::block_on(watcher.watch(child.id()))?;
/// assert!(status.success());
/// watcher.close();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ThreadedChildWatcher {
    core: Arc<Core>,
}

const STACK_SIZE: usize = 64 * 1024;

impl ThreadedChildWatcher {
    /// A new watcher, active at once.
    pub fn new() -> ThreadedChildWatcher {
        ThreadedChildWatcher { core: Arc::new(Core::new("threaded")) }
    }

    fn add(&self, pid: u32, waiter: Waiter) -> Result<(), (io::Error, Waiter)> {
        if let Err(e) = self.core.check_inherited() {
            return Err((e, waiter));
        }
        let mut fallback = false;
        let added = self.core.add(pid, waiter, false, |_| {
            let core = self.core.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("polyloop-wait-{pid}"))
                .stack_size(STACK_SIZE)
                .spawn(move || wait_thread(&core, pid));
            match spawned {
                Ok(_) => Ok(()),
                Err(_) if pidfd::is_supported() => {
                    fallback = true;
                    Ok(())
                }
                Err(source) => Err(ChildWatchError::NoThread { pid, source }.into()),
            }
        })?;
        if fallback && matches!(added, Added::New) {
            if let Err(e) = pidfd::watch_pid(&self.core, pid) {
                self.core.complete(pid, Err(e));
            }
        }
        Ok(())
    }

    /// Nothing to let go of: each waiting thread ends with its child.
    fn after_close(&self) {}
}

fn wait_thread(core: &Core, pid: u32) {
    let p = Pid::from_raw(pid as i32).expect("a validated pid is positive");
    let status = loop {
        match rustix::process::waitpid(Some(p), WaitOptions::empty()) {
            Ok(Some((_, status))) => break Ok(from_wait_status(status)),
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::CHILD) => break Err(core::not_child(pid)),
            Err(e) => break Err(e.into()),
        }
    };
    core.complete(pid, status);
}

super::core::core_watcher!(ThreadedChildWatcher);
