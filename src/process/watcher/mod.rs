//! Child watchers: how a loop learns that a child process ended.
//!
//! Each watcher reaps the children it is given and reports their ends, either to a
//! callback (`add_child_handler`, as asyncio) or as a future ([`ChildWatcher::watch`]).
//! Five kinds, chosen with [`WatcherKind`] or `POLYLOOP_CHILD_WATCHER`:
//!
//! | kind | how | threads | signals | other code's children |
//! |---|---|---|---|---|
//! | [`PidfdChildWatcher`] (default on Linux 5.3+) | a pidfd per child, in the reactor | none | none | left alone |
//! | [`ThreadedChildWatcher`] (default elsewhere) | a blocking `waitpid` per child | one per child | none | left alone |
//! | [`MultiLoopChildWatcher`] | SIGCHLD, then `waitpid(pid)` for each | none | SIGCHLD | left alone |
//! | [`SafeChildWatcher`] | as multi-loop, on the attached loop | none | SIGCHLD | left alone |
//! | [`FastChildWatcher`] | SIGCHLD, then `waitpid(-1)` | none | SIGCHLD | **reaped** |
//!
//! A SIGCHLD can be lost for good: other code may replace polyloop's action with a raw
//! `sigaction`. So while they have children outstanding, the signal-driven watchers
//! (multi-loop, safe, fast) also rescan every second, on a timer of the reactor (no
//! thread, no fd; none at all while no child is outstanding): a lost signal delays a
//! status by up to a second, never loses it. The first exit found that way that no
//! signal announced is reported once per process on stderr.
//!
//! A panic in the waker of a task that awaits a [`ChildExit`] is caught and reported
//! on stderr: it costs that task its wake-up, never another child its status.

mod core;
mod error;
mod exit;
mod fast;
mod multi_loop;
pub(crate) mod pidfd;
pub(crate) mod polling;
pub(crate) mod reactor;
pub(crate) mod readable;
mod safe;
mod sigchld;
mod threaded;

use std::fmt;
use std::os::fd::OwnedFd;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

pub use error::ChildWatchError;
pub use exit::ChildExit;
pub use fast::FastChildWatcher;
pub use multi_loop::MultiLoopChildWatcher;
pub use pidfd::PidfdChildWatcher;
pub use safe::SafeChildWatcher;
pub use threaded::ThreadedChildWatcher;

use crate::{Error, EventLoop};

/// Reaps child processes and reports their ends, as asyncio's `AbstractChildWatcher`.
///
/// `returncode`, as in asyncio, is the exit code, or minus the number of the signal
/// that ended the child. A child that ends before its handler is added is still
/// reported. A pid that is not a child of this process (or was already reaped) is an
/// error ([`ChildWatchError::NotChild`]), never a hang. After `close()`, the children
/// already watched are still reaped and reported; new ones are refused with
/// [`ChildWatchError::Closed`].
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use polyloop::process::{ChildWatcher, ThreadedChildWatcher};
///
/// let watcher = ThreadedChildWatcher::new();
/// let child = std::process::Command::new("sh").args(["-c", "kill -9 $$"]).spawn()?;
/// let (tx, rx) = mpsc::channel();
/// watcher.add_child_handler(child.id(), Box::new(move |pid, code| tx.send((pid, code)).unwrap()));
/// assert_eq!(rx.recv().unwrap(), (child.id(), -9));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ChildWatcher: Send + Sync + fmt::Debug + 'static {
    /// The watcher's kind, as `POLYLOOP_CHILD_WATCHER` names it (`"pidfd"`, ...).
    fn name(&self) -> &str {
        "custom"
    }

    /// Calls `callback(pid, returncode)` once child `pid` has ended, on the attached
    /// loop or, without one, on polyloop's child handler thread (one thread, started
    /// when a handler is due and ended when none is left, that calls them one at a
    /// time; never inside the reactor, so a handler may block, even on async work). A
    /// second handler for the same pid replaces the first.
    ///
    /// A callback cannot carry an error: for a pid that cannot be watched (see
    /// [`ChildWatchError`]) it is called with returncode 255 and the reason goes to
    /// stderr, as asyncio does. Use [`watch`](ChildWatcher::watch) to get the error.
    fn add_child_handler(&self, pid: u32, callback: Box<dyn FnOnce(u32, i32) + Send + 'static>);

    /// Removes the handler of `pid`; says whether there was one. The child is still
    /// reaped, and its status kept for a later handler.
    fn remove_child_handler(&self, pid: u32) -> bool;

    /// Attaches the watcher to `lp` (or with `None`, detaches it); handlers run there.
    fn attach_loop(&self, lp: Option<&EventLoop>);

    /// Whether the watcher can take new children now. The safe and fast watchers are
    /// active only while the loop they are attached to runs (asyncio's
    /// `loop is not None and loop.is_running()`); the others while they are open.
    fn is_active(&self) -> bool;

    /// Refuses new children from now on, and frees what the watcher holds once the
    /// children it watches have been reaped.
    fn close(&self);

    /// The end of child `pid`, as a future of its exit status. It replaces any handler
    /// of `pid`, and dropping it does not stop the child from being reaped.
    ///
    /// # Errors
    ///
    /// The future resolves to an error carrying a [`ChildWatchError`]; see there.
    fn watch(&self, pid: u32) -> ChildExit;

    /// [`watch`](ChildWatcher::watch), for a child that this process has just spawned
    /// and not reaped, with a pidfd that names it (what [`Command`](super::Command)
    /// does). A watcher that waits through pidfds uses this one instead of opening its
    /// own, and need not ask the kernel whether `pid` is a child of ours; the default
    /// ignores it and calls `watch`.
    #[doc(hidden)]
    fn watch_spawned(&self, pid: u32, pidfd: Arc<OwnedFd>) -> ChildExit {
        drop(pidfd);
        self.watch(pid)
    }
}

/// The kinds of child watcher, by the names `POLYLOOP_CHILD_WATCHER` takes.
///
/// # Examples
///
/// ```
/// use polyloop::process::WatcherKind;
///
/// assert_eq!("multiloop".parse::<WatcherKind>()?, WatcherKind::MultiLoop);
/// let err = "signal".parse::<WatcherKind>().unwrap_err();
/// assert!(err.to_string().contains("pidfd, threaded, multiloop, safe, fast"));
/// # Ok::<(), polyloop::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatcherKind {
    /// [`PidfdChildWatcher`].
    Pidfd,
    /// [`ThreadedChildWatcher`].
    Threaded,
    /// [`MultiLoopChildWatcher`].
    MultiLoop,
    /// [`SafeChildWatcher`].
    Safe,
    /// [`FastChildWatcher`].
    Fast,
}

/// The environment variable that picks the child watcher.
pub const CHILD_WATCHER_ENV: &str = "POLYLOOP_CHILD_WATCHER";

impl WatcherKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [WatcherKind; 5] = [
        WatcherKind::Pidfd,
        WatcherKind::Threaded,
        WatcherKind::MultiLoop,
        WatcherKind::Safe,
        WatcherKind::Fast,
    ];

    /// The name, as `POLYLOOP_CHILD_WATCHER` takes it.
    pub fn name(self) -> &'static str {
        match self {
            WatcherKind::Pidfd => "pidfd",
            WatcherKind::Threaded => "threaded",
            WatcherKind::MultiLoop => "multiloop",
            WatcherKind::Safe => "safe",
            WatcherKind::Fast => "fast",
        }
    }

    /// The default: pidfd where the kernel has it, else threaded.
    pub fn default_kind() -> WatcherKind {
        // A forked child that lost the reactor cannot watch pidfds: threads it is.
        if pidfd::is_supported() && !crate::fork::reactor_lost() {
            WatcherKind::Pidfd
        } else {
            WatcherKind::Threaded
        }
    }

    /// The kind `POLYLOOP_CHILD_WATCHER` names, or the default when it is unset or empty.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] for any other value; the message lists the allowed ones.
    pub fn from_env() -> Result<WatcherKind, Error> {
        match std::env::var(CHILD_WATCHER_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(WatcherKind::default_kind()),
            Ok(v) if v.is_empty() => Ok(WatcherKind::default_kind()),
            Ok(v) => v.parse(),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(invalid_kind(v.to_string_lossy().into_owned()))
            }
        }
    }

    /// Creates a watcher of this kind.
    ///
    /// # Errors
    ///
    /// [`Error::ChildWatcherUnavailable`] when it cannot be made (a pidfd watcher on a
    /// kernel without pidfds, a failed signal registration).
    pub fn create(self) -> Result<Arc<dyn ChildWatcher>, Error> {
        let unavailable =
            |reason: String| Error::ChildWatcherUnavailable { kind: self.name(), reason };
        Ok(match self {
            WatcherKind::Pidfd if !pidfd::is_supported() => {
                return Err(unavailable(
                    "this kernel has no pidfd_open (Linux 5.3+); use threaded instead".into(),
                ));
            }
            WatcherKind::Pidfd => Arc::new(PidfdChildWatcher::new()),
            WatcherKind::Threaded => Arc::new(ThreadedChildWatcher::new()),
            WatcherKind::MultiLoop => {
                Arc::new(MultiLoopChildWatcher::new().map_err(|e| unavailable(e.to_string()))?)
            }
            WatcherKind::Safe => {
                Arc::new(SafeChildWatcher::new().map_err(|e| unavailable(e.to_string()))?)
            }
            WatcherKind::Fast => {
                Arc::new(FastChildWatcher::new().map_err(|e| unavailable(e.to_string()))?)
            }
        })
    }
}

impl FromStr for WatcherKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<WatcherKind, Error> {
        WatcherKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| invalid_kind(s.to_string()))
    }
}

impl fmt::Display for WatcherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn invalid_kind(value: String) -> Error {
    Error::InvalidEnv {
        var: CHILD_WATCHER_ENV,
        value,
        expected: "one of pidfd, threaded, multiloop, safe, fast".into(),
    }
}

/// A new watcher of the default kind (pidfd where the kernel has it, else threaded).
///
/// # Errors
///
/// Never on Linux; the `io::Error` covers watchers that need set-up.
pub fn default_watcher() -> std::io::Result<Arc<dyn ChildWatcher>> {
    WatcherKind::default_kind().create().map_err(std::io::Error::from)
}

/// The process-wide watcher, and the fork generation it was set or made in.
static WATCHER: RwLock<Option<(u64, Arc<dyn ChildWatcher>)>> = RwLock::new(None);

/// The process-wide watcher behind the policies' default `get_child_watcher`: the one
/// set, else a new one of the kind `POLYLOOP_CHILD_WATCHER` names (default: pidfd,
/// else threaded), kept for later calls.
///
/// # Errors
///
/// [`Error::InvalidEnv`] for a bad `POLYLOOP_CHILD_WATCHER`;
/// [`Error::ChildWatcherUnavailable`] when the watcher cannot be made.
pub fn get_child_watcher() -> Result<Arc<dyn ChildWatcher>, Error> {
    let generation = crate::fork::generation();
    if let Some((g, w)) = WATCHER.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
        if *g == generation {
            return Ok(w.clone());
        }
    }
    let mut slot = WATCHER.write().unwrap_or_else(PoisonError::into_inner);
    if let Some((g, w)) = slot.as_ref() {
        if *g == generation {
            return Ok(w.clone());
        }
    }
    // None yet, or the parent's (a forked child makes its own, as it starts with no
    // loop of its parent's; the parent's is left alone: what it holds is the parent's).
    let w = WatcherKind::from_env()?.create()?;
    if let Some(inherited) = slot.replace((generation, w.clone())) {
        std::mem::forget(inherited);
    }
    Ok(w)
}

/// Sets the process-wide watcher; `None` makes the next [`get_child_watcher`] create a
/// fresh one. The watcher it replaces is closed (its children are still reaped).
pub fn set_child_watcher(watcher: Option<Arc<dyn ChildWatcher>>) {
    let generation = crate::fork::generation();
    let old = std::mem::replace(
        &mut *WATCHER.write().unwrap_or_else(PoisonError::into_inner),
        watcher.clone().map(|w| (generation, w)),
    );
    if let Some((_, old)) = old {
        let same = watcher.as_ref().is_some_and(|w| Arc::ptr_eq(w, &old));
        if !same {
            old.close();
        }
    }
}

/// Whether the process-wide SIGCHLD action of the signal-driven watchers is registered
/// (some multi-loop, safe or fast watcher is open or still reaping).
pub fn sigchld_action_registered() -> bool {
    sigchld::is_armed()
}

#[doc(hidden)]
pub fn __sigchld_deliveries() -> u64 {
    sigchld::deliveries()
}

#[allow(dead_code)]
fn _assert_auto_traits() {
    fn send_unpin<T: Send + Unpin>() {}
    fn send_sync<T: Send + Sync>() {}
    send_unpin::<ChildExit>();
    send_sync::<ThreadedChildWatcher>();
    send_sync::<PidfdChildWatcher>();
    send_sync::<MultiLoopChildWatcher>();
    send_sync::<SafeChildWatcher>();
    send_sync::<FastChildWatcher>();
    send_sync::<Arc<dyn ChildWatcher>>();
}

/// Whether the fallback rescan timer of the signal-driven watchers is armed (it is
/// while one of them has a child outstanding).
#[doc(hidden)]
pub fn __sigchld_fallback_armed() -> bool {
    sigchld::fallback_armed()
}
