//! `PidfdChildWatcher`: a pidfd per child, polled by the reactor.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};

use async_io::Async;
use rustix::process::{PidfdFlags, WaitId, WaitIdOptions};

use super::core::{self, Added, Core, Waiter};
use super::exit::from_waitid_status;
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
        let mut registration = None;
        let added = self.core.add(pid, waiter, |_| {
            registration = Some(register(&self.core, pid)?);
            Ok(())
        })?;
        if let (Added::New, Some(r)) = (added, registration) {
            r.arm();
        }
        Ok(())
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
    register(core, pid)?.arm();
    Ok(())
}

/// Opens a pidfd for `pid` and registers it; the reactor calls us once it is readable.
fn register(core: &Arc<Core>, pid: u32) -> io::Result<Readable> {
    let p = core::validate_pid(pid)?;
    let fd = match rustix::process::pidfd_open(p, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Err(core::not_child(pid)),
        Err(e) => return Err(e.into()),
    };
    let core = core.clone();
    Readable::new(fd, move |fd| on_exit(&core, pid, fd))
}

fn on_exit(core: &Core, pid: u32, fd: &Async<OwnedFd>) -> Next {
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    let status = loop {
        match rustix::process::waitid(WaitId::PidFd(fd.as_fd_ref()), opts) {
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

trait AsFdRef {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl AsFdRef for Async<OwnedFd> {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.get_ref().as_fd()
    }
}

super::core::core_watcher!(PidfdChildWatcher);
