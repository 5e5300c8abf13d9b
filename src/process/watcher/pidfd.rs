//! `PidfdChildWatcher`: a pidfd per child, polled by the reactor.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, OnceLock};

use async_io::Async;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions};

use super::core::{self, Added, Core, Waiter};
use super::exit::{ChildExit, from_waitid_status};
use super::readable::{Next, Readable};

/// Watches each child through a pidfd (`pidfd_open`, Linux 5.3+) registered with the
/// async-io reactor: no threads, no signals, and it leaves other code's children alone.
///
/// When a pidfd turns readable, the child is reaped with `waitid(P_PIDFD)`, which cannot
/// hit a recycled pid. Whoever drives the reactor notices the exit: a running loop, or
/// async-io's own thread when none runs, so `watch` works with or without a loop. A loop
/// given to `attach_loop` runs the handlers; without one they run on the child
/// handler thread (see [`add_child_handler`](super::ChildWatcher::add_child_handler)).
///
/// It is the default where the kernel has pidfds ([`is_supported`](Self::is_supported)).
///
/// # Examples
///
/// ```
/// use polyloop::process::{ChildWatcher, PidfdChildWatcher};
///
/// if PidfdChildWatcher::is_supported() {
///     let watcher = PidfdChildWatcher::new();
///     let child = std::process::Command::new("sh").args(["-c", "exit 3"]).spawn()?;
///     let status = polyloop::block_on(watcher.watch(child.id()))?;
///     assert_eq!(status.code(), Some(3));
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PidfdChildWatcher {
    core: Arc<Core>,
}

impl PidfdChildWatcher {
    /// A new watcher, active at once.
    ///
    /// On a kernel without pidfds every watch fails with the kernel's error; see
    /// [`is_supported`](Self::is_supported).
    pub fn new() -> PidfdChildWatcher {
        PidfdChildWatcher { core: Arc::new(Core::new("pidfd")) }
    }

    /// Whether this kernel has pidfds (probed once with `pidfd_open(getpid())`).
    pub fn is_supported() -> bool {
        is_supported()
    }

    fn add(&self, pid: u32, waiter: Waiter) -> Result<(), (io::Error, Waiter)> {
        self.add_with(pid, waiter, None)
    }

    /// Records `waiter` for `pid` and watches the child through `spawned`, a pidfd of a
    /// child this process has just spawned (no second pidfd, and no asking the kernel
    /// whether it is ours), else through a pidfd opened here.
    fn add_with(
        &self,
        pid: u32,
        waiter: Waiter,
        spawned: Option<Arc<OwnedFd>>,
    ) -> Result<(), (io::Error, Waiter)> {
        let spawned_here = spawned.is_some();
        let mut registration = None;
        let added = self.core.add(pid, waiter, spawned_here, |_| {
            let fd = match spawned {
                Some(fd) => fd,
                None => Arc::new(open_for(pid)?),
            };
            registration = Some(register(&self.core, pid, fd)?);
            Ok(())
        })?;
        if let (Added::New, Some(r)) = (added, registration) {
            r.arm();
        }
        Ok(())
    }
}

/// Opens a pidfd for `pid`. Blocking mode is fine for the reactor: nothing is ever
/// read from it (readiness only, then a `WNOHANG` reap; see [`register`]).
pub(crate) fn open(pid: Pid) -> rustix::io::Result<OwnedFd> {
    rustix::process::pidfd_open(pid, PidfdFlags::empty())
}

/// `open` for a pid being watched: a pid that names no process is not our child.
fn open_for(pid: u32) -> io::Result<OwnedFd> {
    match open(core::validate_pid(pid)?) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::SRCH) => Err(core::not_child(pid)),
        Err(e) => Err(e.into()),
    }
}

/// Whether `pidfd_open` works here; probed once.
pub(crate) fn is_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        rustix::process::pidfd_open(rustix::process::getpid(), PidfdFlags::empty()).is_ok()
    })
}

/// Watches `pid` (already recorded in `core`) through a pidfd, from now on.
pub(crate) fn watch_pid(core: &Arc<Core>, pid: u32) -> io::Result<()> {
    register(core, pid, Arc::new(open_for(pid)?))?.arm();
    Ok(())
}

/// Registers the pidfd of `pid`; the reactor calls us once it is readable. The fd may
/// be shared with the `Child`, which signals through it: it is closed once both are
/// done with it, and it is deregistered first.
fn register(core: &Arc<Core>, pid: u32, fd: Arc<OwnedFd>) -> io::Result<Readable<Arc<OwnedFd>>> {
    // No read or write ever goes through it (readiness only, then a `WNOHANG` reap),
    // so it need not be switched to non-blocking mode.
    let source = Async::new_nonblocking(fd)?;
    let core = core.clone();
    Ok(Readable::new(source, move |fd| on_exit(&core, pid, fd)))
}

fn on_exit(core: &Core, pid: u32, fd: &Async<Arc<OwnedFd>>) -> Next {
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    let status = loop {
        match rustix::process::waitid(WaitId::PidFd(fd.as_fd()), opts) {
            Ok(Some(status)) => break Ok(from_waitid_status(&status)),
            // Readable, yet not exited: a spurious wake-up.
            Ok(None) => return Next::Again,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::CHILD) => break Err(core::not_child(pid)),
            Err(e) => break Err(e.into()),
        }
    };
    core.complete(pid, status);
    Next::Stop
}

super::core::core_watcher!(PidfdChildWatcher {
    fn watch_spawned(&self, pid: u32, pidfd: Arc<OwnedFd>) -> ChildExit {
        core::watch_with(pid, |pid, w| self.add_with(pid, w, Some(pidfd)))
    }
});
