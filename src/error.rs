//! The error type shared by loops, policies and the plug-in registry.

use std::fmt;

/// What went wrong when a loop, a policy or the plug-in registry refused an operation.
///
/// Every message says what was wrong and what would be right.
///
/// # Examples
///
/// ```
/// let lp = polyloop::EventLoop::new().unwrap();
/// lp.close().unwrap();
/// let err = lp.run_until_complete(async {}).unwrap_err();
/// assert!(err.is_closed());
/// assert!(err.to_string().contains("is closed"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The loop was closed; it cannot run or take new work.
    Closed {
        /// The loop's number, as in its `Debug` output.
        loop_id: u64,
    },
    /// The loop is already running (a nested run, or a run from a second thread).
    AlreadyRunning {
        /// The loop's number.
        loop_id: u64,
    },
    /// The operation needs the loop to be stopped, and it is running (e.g. `close()`).
    Running {
        /// The loop's number.
        loop_id: u64,
    },
    /// `stop()` was called before the future given to `run_until_complete` finished.
    Stopped {
        /// The loop's number.
        loop_id: u64,
    },
    /// This thread has no current event loop, and the policy does not create one here.
    NoCurrentLoop {
        /// The thread's name (or its id when it has none).
        thread: String,
    },
    /// An operation needs a running loop on this thread and there is none.
    NoRunningLoop,
    /// No registered plug-in has this policy name.
    UnknownPolicy {
        /// The name that was asked for.
        name: String,
        /// Every registered name, sorted.
        available: Vec<String>,
    },
    /// Two linked plug-ins registered the same policy name.
    DuplicatePolicy {
        /// The name both registered.
        name: String,
        /// Where each registration came from (`module_path!()` of the registering code).
        origins: Vec<String>,
    },
    /// A policy name that is empty or has characters outside `[a-z0-9-_.]`.
    InvalidPolicyName {
        /// The name as given.
        name: String,
    },
    /// An environment variable holds a value that is not allowed.
    InvalidEnv {
        /// The variable, e.g. `POLYLOOP_WORKERS`.
        var: &'static str,
        /// What it holds.
        value: String,
        /// What would be allowed, in words.
        expected: String,
    },
    /// A pool was asked for more worker threads than
    /// [`MAX_WORKERS`](crate::plugin::MAX_WORKERS) (in code: `with_workers`,
    /// `new_pool_loop`, [`PolicyOptions`](crate::plugin::PolicyOptions)).
    TooManyWorkers {
        /// How many were asked for.
        requested: usize,
        /// The most a pool may have.
        max: usize,
    },
    /// A thread that a loop needs could not be started (the system refused: a limit on
    /// threads or processes, or memory). The threads already started for it were
    /// stopped and joined.
    ThreadStart {
        /// Which thread, e.g. `"worker thread 2 of 8 for event loop #5"`.
        what: String,
        /// The kind of the system's error.
        kind: std::io::ErrorKind,
        /// The system's error, in words.
        reason: String,
    },
    /// A signal cannot be handled: not a signal number, one that cannot be caught, or
    /// the system refused.
    Signal {
        /// The number that was given.
        signum: i32,
        /// Why not, and what would be right.
        reason: String,
    },
    /// A child watcher of this kind cannot be made here.
    ChildWatcherUnavailable {
        /// The kind, e.g. `"pidfd"`.
        kind: &'static str,
        /// Why not, and what to use instead.
        reason: String,
    },
}

impl Error {
    /// Whether this is [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed { .. })
    }

    /// Whether this is [`Error::AlreadyRunning`].
    pub fn is_already_running(&self) -> bool {
        matches!(self, Error::AlreadyRunning { .. })
    }

    /// Whether this is [`Error::Running`].
    pub fn is_running(&self) -> bool {
        matches!(self, Error::Running { .. })
    }

    /// Whether this is [`Error::Stopped`].
    pub fn is_stopped(&self) -> bool {
        matches!(self, Error::Stopped { .. })
    }

    /// Whether this is [`Error::NoCurrentLoop`].
    pub fn is_no_current_loop(&self) -> bool {
        matches!(self, Error::NoCurrentLoop { .. })
    }

    /// Whether this is [`Error::NoRunningLoop`].
    pub fn is_no_running_loop(&self) -> bool {
        matches!(self, Error::NoRunningLoop)
    }

    /// Whether this is [`Error::ThreadStart`]: the system refused to start a thread.
    pub fn is_thread_start(&self) -> bool {
        matches!(self, Error::ThreadStart { .. })
    }

    /// Whether this is [`Error::UnknownPolicy`].
    pub fn is_unknown_policy(&self) -> bool {
        matches!(self, Error::UnknownPolicy { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed { loop_id } => {
                write!(f, "event loop #{loop_id} is closed; create a new one with new_event_loop()")
            }
            Error::AlreadyRunning { loop_id } => write!(
                f,
                "event loop #{loop_id} is already running; a loop cannot be run while it runs \
                 (await the future, or spawn it with spawn(), instead of running the loop again)"
            ),
            Error::Running { loop_id } => write!(
                f,
                "event loop #{loop_id} is running; call stop() and wait for run_forever() to \
                 return before closing it"
            ),
            Error::Stopped { loop_id } => write!(
                f,
                "event loop #{loop_id} stopped before the future completed; stop() ends \
                 run_forever(), let run_until_complete() finish on its own"
            ),
            Error::NoCurrentLoop { thread } => write!(
                f,
                "there is no current event loop in thread '{thread}'; create one with \
                 new_event_loop() and set_event_loop(), or use polyloop::block_on"
            ),
            Error::NoRunningLoop => write!(
                f,
                "no event loop is running on this thread; call this from inside a task, or use \
                 polyloop::block_on / EventLoop::spawn"
            ),
            Error::UnknownPolicy { name, available } => write!(
                f,
                "no event loop policy is registered as {name:?}; registered: {}. A plug-in crate \
                 is only found when the binary links it: name it in code, e.g. \
                 `use polyloop_threadpool as _;`",
                if available.is_empty() { "none".to_string() } else { available.join(", ") }
            ),
            Error::DuplicatePolicy { name, origins } => write!(
                f,
                "event loop policy {name:?} is registered more than once, by {}; give each \
                 plug-in its own name",
                origins.join(" and ")
            ),
            Error::InvalidPolicyName { name } => write!(
                f,
                "invalid event loop policy name {name:?}: a name is non-empty and uses only \
                 a-z, 0-9, '-', '_' and '.'"
            ),
            Error::InvalidEnv { var, value, expected } => {
                write!(f, "{var}={value:?} is not valid; expected {expected}")
            }
            Error::TooManyWorkers { requested, max } => write!(
                f,
                "a pool of {requested} worker threads was asked for; at most {max} are allowed \
                 (polyloop::plugin::MAX_WORKERS)"
            ),
            Error::ThreadStart { what, reason, .. } => write!(
                f,
                "could not start {what}: {reason}; the threads already started for it were \
                 stopped. Ask for fewer threads (POLYLOOP_WORKERS), or raise the limit on \
                 threads (ulimit -u)"
            ),
            Error::Signal { signum, reason } => {
                write!(f, "cannot handle signal {signum}: {reason}")
            }
            Error::ChildWatcherUnavailable { kind, reason } => {
                write!(f, "the {kind} child watcher cannot be created: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        std::io::Error::other(err)
    }
}
