//! `PidfdChildWatcher`: a pidfd per child, in an epoll set that the reactor polls.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use async_io::Async;
use rustix::event::{Timespec, epoll};
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions};

use super::core::{self, Core, Waiter};
use super::error::ChildWatchError;
use super::exit::{ChildExit, from_waitid_status};
use super::readable::{Next, Readable};

/// Watches each child through a pidfd (`pidfd_open`, Linux 5.3+): no threads, no
/// signals, and it leaves other code's children alone.
///
/// The pidfds go into one epoll set per watcher, which the async-io reactor polls as a
/// single fd: a watch costs one `epoll_ctl`, and children that end together are reaped
/// in one go. The set is made at the first watch and kept while the watcher lives; it
/// is closed once nothing is watched and nothing more can be (the watcher is closed or
/// dropped; children still running then are reaped first). If the reactor is running
/// the set's callback on another thread just then, the set is closed as that callback
/// returns.
///
/// When a pidfd turns readable, the child is reaped with `waitid(P_PIDFD)`, which
/// cannot hit a recycled pid. Whoever drives the reactor notices the exit: a running
/// loop, or async-io's own thread when none runs, so `watch` works with or without a
/// loop. A loop given to `attach_loop` runs the handlers; without one they run on the
/// child handler thread (see [`add_child_handler`](super::ChildWatcher::add_child_handler)).
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
    /// The epoll set of the children's pidfds; made at the first watch, and let go
    /// once nothing is watched and nothing more can be (closed, or dropped).
    set: Mutex<Option<PidfdSet>>,
}

impl PidfdChildWatcher {
    /// A new watcher, active at once.
    ///
    /// On a kernel without pidfds every watch fails with the kernel's error; see
    /// [`is_supported`](Self::is_supported).
    pub fn new() -> PidfdChildWatcher {
        PidfdChildWatcher { core: Arc::new(Core::new("pidfd")), set: Mutex::new(None) }
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
        if let Err(e) = self.core.check_inherited() {
            return Err((e, waiter));
        }
        let pidfds = match self.pidfds() {
            Ok(pidfds) => pidfds,
            Err(e) => return Err((e, waiter)),
        };
        self.core.add(pid, waiter, spawned.is_some(), |_| {
            let fd = match spawned {
                Some(fd) => fd,
                None => Arc::new(open_for(pid)?),
            };
            pidfds.insert(pid, fd)
        })?;
        Ok(())
    }

    /// The set the children's pidfds go into, made (and handed to the reactor) at the
    /// first call.
    fn pidfds(&self) -> io::Result<Arc<Pidfds>> {
        // Checked under the set's lock: a `close` that comes after the check releases
        // the set made here (it takes this lock after marking the watcher closed).
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        if self.core.is_closed() {
            return Err(ChildWatchError::Closed { watcher: self.core.name }.into());
        }
        if let Some(set) = &*set {
            return Ok(set.pidfds.clone());
        }
        let made = PidfdSet::new(self.core.clone())?;
        let pidfds = made.pidfds.clone();
        *set = Some(made);
        Ok(pidfds)
    }

    /// Once closed, the set goes with the last watched child.
    fn after_close(&self) {
        self.release_set(|_| ());
    }

    /// Lets the set go if nothing is watched and nothing more can be: it stops once
    /// the last watched child is reaped otherwise.
    fn release_set(&self, unwanted: impl Fn(&Pidfds)) {
        let set = self.set.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(set) = set {
            unwanted(&set.pidfds);
            if set.pidfds.idle_and_unwanted() {
                set.readable.stop();
            }
        }
    }
}

impl Drop for PidfdChildWatcher {
    fn drop(&mut self) {
        self.release_set(|pidfds| pidfds.orphaned.store(true, Ordering::SeqCst));
    }
}

/// The pidfds of the children being watched, in an epoll set of their own that the
/// reactor watches as one fd: a child costs one `epoll_ctl`, nothing in the reactor,
/// and children that end together are reaped in one go.
struct PidfdSet {
    pidfds: Arc<Pidfds>,
    /// The set's registration with the reactor, which calls [`Pidfds::reap_ready`].
    readable: Readable<Arc<OwnedFd>>,
}

/// What the reactor's callback needs: the set, and the pidfds by pid.
struct Pidfds {
    core: Arc<Core>,
    epoll: Arc<OwnedFd>,
    /// The pidfd of each child in the set; waited on through this, never through the
    /// pid, which is another process's once the child is reaped elsewhere.
    fds: Mutex<HashMap<u32, Arc<OwnedFd>>>,
    /// The watcher was dropped: no child will be added.
    orphaned: AtomicBool,
}

/// How many ready pidfds one `epoll_wait` takes.
const BATCH: usize = 64;

/// How a pidfd is in the set: until its next readiness, then disarmed.
const ONE_READINESS: epoll::EventFlags = epoll::EventFlags::IN.union(epoll::EventFlags::ONESHOT);

impl PidfdSet {
    fn new(core: Arc<Core>) -> io::Result<PidfdSet> {
        super::reactor::start()?;
        let epoll = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC)?);
        let pidfds = Arc::new(Pidfds {
            core,
            epoll: epoll.clone(),
            fds: Mutex::new(HashMap::new()),
            orphaned: AtomicBool::new(false),
        });
        // An epoll fd is readable while one of its fds is ready; nothing reads it.
        crate::fork::check_reactor()?;
        let source = Async::new_nonblocking(epoll)?;
        let p = pidfds.clone();
        let readable = Readable::new(source, move |_| p.reap_ready());
        readable.arm();
        Ok(PidfdSet { pidfds, readable })
    }
}

impl Pidfds {
    fn lock_fds(&self) -> MutexGuard<'_, HashMap<u32, Arc<OwnedFd>>> {
        self.fds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts the pidfd of `pid` in the set, for one readiness.
    fn insert(&self, pid: u32, fd: Arc<OwnedFd>) -> io::Result<()> {
        self.lock_fds().insert(pid, fd.clone());
        let added = epoll::add(&self.epoll, &fd, data(pid), ONE_READINESS);
        if let Err(e) = added {
            self.lock_fds().remove(&pid);
            return Err(e.into());
        }
        Ok(())
    }

    /// Reaps every child whose pidfd is ready. A reaped child's pidfd leaves the set
    /// when it is closed (by us and by its `Child`); until then its one-shot entry
    /// stays disarmed.
    fn reap_ready(&self) -> Next {
        let mut events = [MaybeUninit::<epoll::Event>::uninit(); BATCH];
        let mut reaped = 0;
        loop {
            let now = Timespec { tv_sec: 0, tv_nsec: 0 };
            let ready = match epoll::wait(&self.epoll, &mut events, Some(&now)) {
                Ok((ready, _)) => ready,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    eprintln!("polyloop: pidfd child watcher: cannot read its epoll set: {e}");
                    break;
                }
            };
            let n = ready.len();
            for event in ready.iter() {
                self.reap(event.data.u64() as u32);
            }
            reaped += n;
            if n < BATCH {
                break;
            }
        }
        // Closed or dropped while idle is for `release_set`; here, after the last reap.
        if reaped > 0 && self.idle_and_unwanted() { Next::Stop } else { Next::Again }
    }

    fn reap(&self, pid: u32) {
        let Some(fd) = self.lock_fds().get(&pid).cloned() else { return };
        let status = match reap(&fd, pid) {
            Some(status) => status,
            // Readable, yet not exited: a spurious wake-up; wait for the next one.
            None => match epoll::modify(&self.epoll, &*fd, data(pid), ONE_READINESS) {
                Ok(()) => return,
                Err(e) => Err(e.into()),
            },
        };
        self.lock_fds().remove(&pid);
        // Our handles on the pidfd go before the waiter is told: one that counts its
        // fds once the child is awaited (and its `Child` dropped) finds it closed.
        drop(fd);
        self.core.complete(pid, status);
    }

    /// Nothing watched, and nothing more to come.
    fn idle_and_unwanted(&self) -> bool {
        let state = self.core.lock();
        state.watched.is_empty() && (state.closed || self.orphaned.load(Ordering::SeqCst))
    }
}

/// What the set tells of a pidfd when it is ready: its child's pid.
fn data(pid: u32) -> epoll::EventData {
    epoll::EventData::new_u64(pid.into())
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
    super::reactor::start()?;
    // No read or write ever goes through it (readiness only, then a `WNOHANG` reap),
    // so it need not be switched to non-blocking mode.
    crate::fork::check_reactor()?;
    let source = Async::new_nonblocking(fd)?;
    let core = core.clone();
    Ok(Readable::new(source, move |fd| on_exit(&core, pid, fd)))
}

fn on_exit(core: &Core, pid: u32, fd: &Async<Arc<OwnedFd>>) -> Next {
    match reap(fd.get_ref(), pid) {
        Some(status) => {
            core.complete(pid, status);
            Next::Stop
        }
        // Readable, yet not exited: a spurious wake-up.
        None => Next::Again,
    }
}

/// Reaps the child behind `fd` if it has exited: `None` if it has not.
fn reap(fd: &OwnedFd, pid: u32) -> Option<io::Result<ExitStatus>> {
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    loop {
        return match rustix::process::waitid(WaitId::PidFd(fd.as_fd()), opts) {
            Ok(Some(status)) => Some(Ok(from_waitid_status(&status))),
            Ok(None) => None,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::CHILD) => Some(Err(core::not_child(pid))),
            Err(e) => Some(Err(e.into())),
        };
    }
}

super::core::core_watcher!(PidfdChildWatcher {
    fn watch_spawned(&self, pid: u32, pidfd: Arc<OwnedFd>) -> ChildExit {
        core::watch_with(pid, |pid, w| self.add_with(pid, w, Some(pidfd)))
    }
});
