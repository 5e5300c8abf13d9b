//! What a child watcher reports when it cannot watch a pid.

use std::fmt;
use std::io;

/// Why a child watcher refused a pid, or could not report its exit.
///
/// It travels inside an [`io::Error`]; get it back with
/// [`ChildWatchError::from_io`]. Every message says what was wrong and what would be right.
///
/// # Examples
///
/// ```
/// use polyloop::process::{ChildWatchError, ChildWatcher, ThreadedChildWatcher};
///
/// let watcher = ThreadedChildWatcher::new();
/// let err = polyloop::block_on(watcher.watch(0)).unwrap_err();
/// assert!(matches!(ChildWatchError::from_io(&err), Some(ChildWatchError::InvalidPid { pid: 0, .. })));
/// assert!(err.to_string().contains("pid 0"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ChildWatchError {
    /// The pid is 0, or out of the range of process ids (a negative number cast to `u32`).
    InvalidPid {
        /// The pid as given.
        pid: u32,
        /// The largest pid of this system.
        max: u32,
    },
    /// The pid is not a child of this process, or it was already reaped (`ECHILD`).
    NotChild {
        /// The pid as given.
        pid: u32,
    },
    /// The watcher was closed; it takes no new children.
    Closed {
        /// The watcher's name, e.g. `"pidfd"`.
        watcher: &'static str,
    },
    /// The watcher is not active: closed, or it needs a running event loop and the one
    /// it is attached to (if any) is not running.
    Inactive {
        /// The watcher's name, e.g. `"safe"`.
        watcher: String,
    },
    /// The watcher was made before this process was forked: its children, threads and
    /// reactor registrations stayed with the parent, so it watches nothing here.
    Forked {
        /// The watcher's name, e.g. `"safe"`.
        watcher: &'static str,
    },
    /// The handler was replaced by another one, or removed, before the child exited.
    HandlerGone {
        /// The child's pid.
        pid: u32,
    },
    /// No thread could be started to wait for the child (the child was not reaped, and
    /// may be watched again).
    NoThread {
        /// The child's pid.
        pid: u32,
        /// Why the thread could not start.
        source: io::Error,
    },
}

impl ChildWatchError {
    /// The `ChildWatchError` inside `err`, if it carries one.
    pub fn from_io(err: &io::Error) -> Option<&ChildWatchError> {
        err.get_ref()?.downcast_ref::<ChildWatchError>()
    }

    /// Whether this is [`ChildWatchError::NotChild`] (`ECHILD`).
    pub fn is_not_child(&self) -> bool {
        matches!(self, ChildWatchError::NotChild { .. })
    }

    fn kind(&self) -> io::ErrorKind {
        match self {
            ChildWatchError::InvalidPid { .. } => io::ErrorKind::InvalidInput,
            ChildWatchError::NotChild { .. } => io::ErrorKind::NotFound,
            ChildWatchError::Closed { .. }
            | ChildWatchError::Inactive { .. }
            | ChildWatchError::Forked { .. } => io::ErrorKind::NotConnected,
            ChildWatchError::HandlerGone { .. } => io::ErrorKind::Interrupted,
            ChildWatchError::NoThread { source, .. } => source.kind(),
        }
    }
}

impl fmt::Display for ChildWatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildWatchError::InvalidPid { pid: 0, .. } => write!(
                f,
                "pid 0 is not a child process (to waitpid it means \"any child in my process \
                 group\"); pass the id of a child this process spawned, e.g. Child::id()"
            ),
            ChildWatchError::InvalidPid { pid, max } => write!(
                f,
                "pid {pid} is out of range (as a signed number it is {}); a child pid is between \
                 1 and {max}",
                *pid as i32
            ),
            ChildWatchError::NotChild { pid } => write!(
                f,
                "pid {pid} is not a child of this process, or it was already reaped (ECHILD); \
                 only a child this process spawned and has not waited for can be watched"
            ),
            ChildWatchError::Closed { watcher } => write!(
                f,
                "the {watcher} child watcher is closed and takes no new children; create a new \
                 watcher, or install one with polyloop::set_child_watcher"
            ),
            ChildWatchError::Inactive { watcher } => write!(
                f,
                "the {watcher} child watcher is not active (closed, not attached to a running \
                 event loop, or made before this process was forked), so no child can be spawned through it; spawn from a loop running \
                 on the main thread, spawn while the loop it is attached to runs, or install a \
                 watcher that needs no loop (pidfd, threaded)"
            ),
            ChildWatchError::Forked { watcher } => write!(
                f,
                "the {watcher} child watcher was made before this process was forked; its \
                 children, threads and reactor registrations stayed with the parent, so it \
                 watches nothing here. Make a new watcher in this process (a \
                 ThreadedChildWatcher works in a forked child), or set one with \
                 polyloop::set_child_watcher"
            ),
            ChildWatchError::HandlerGone { pid } => write!(
                f,
                "the handler for pid {pid} was replaced or removed before the child exited (the \
                 child is still reaped); watch each pid through one handler"
            ),
            ChildWatchError::NoThread { pid, source } => write!(
                f,
                "could not start a thread to wait for pid {pid}: {source}; the child was not \
                 reaped and can be watched again, e.g. with PidfdChildWatcher"
            ),
        }
    }
}

impl std::error::Error for ChildWatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChildWatchError::NoThread { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ChildWatchError> for io::Error {
    fn from(err: ChildWatchError) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}
