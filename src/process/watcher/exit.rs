//! `ChildExit`, the future of one child's end, and the sender a watcher completes it with.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use super::error::ChildWatchError;

/// The end of one child: a future that resolves to its exit status.
///
/// Made by [`ChildWatcher::watch`](super::ChildWatcher::watch). Dropping it does not
/// stop the watcher: the child is still reaped when it exits.
///
/// # Errors
///
/// The future resolves to an error carrying a [`ChildWatchError`] when the pid is not
/// a child of this process (or was already reaped), is not a valid pid, the watcher
/// was closed, or the handler was replaced before the child exited.
///
/// # Examples
///
/// ```
/// use polyloop::process::{ChildWatcher, PidfdChildWatcher};
///
/// let watcher = polyloop::process::default_watcher()?;
/// let child = std::process::Command::new("sh").args(["-c", "exit 7"]).spawn()?;
/// let status = polyloop::block_on(watcher.watch(child.id()))?;
/// assert_eq!(status.code(), Some(7));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ChildExit {
    pid: u32,
    slot: Arc<Slot>,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    result: Option<io::Result<ExitStatus>>,
    waker: Option<Waker>,
    taken: bool,
    /// The `ChildExit` was dropped before its result came: nobody wants it.
    abandoned: bool,
    /// Called when the `ChildExit` is abandoned (the watcher reaps orphans).
    on_abandon: Option<Box<dyn FnOnce() + Send>>,
}

impl ChildExit {
    /// A pending `ChildExit` for `pid`, and the sender that completes it.
    pub(crate) fn pair(pid: u32) -> (ChildExit, ExitSender) {
        let slot = Arc::new(Slot::default());
        (ChildExit { pid, slot: slot.clone() }, ExitSender { pid, slot: Some(slot) })
    }

    /// A `ChildExit` that is already complete with `result`.
    #[allow(dead_code)]
    pub(crate) fn ready(pid: u32, result: io::Result<ExitStatus>) -> ChildExit {
        let (exit, sender) = ChildExit::pair(pid);
        sender.send(result);
        exit
    }

    /// Takes the error this resolved with, if it has (a watch that failed at once).
    pub(crate) fn take_error(&self) -> Option<io::Error> {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(state.result, Some(Err(_))) {
            return None;
        }
        state.taken = true;
        state.result.take().and_then(Result::err)
    }

    /// Calls `f` if this is dropped before its result came (at once, if it was).
    pub(crate) fn on_abandon(&self, f: impl FnOnce() + Send + 'static) {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.result.is_none() && !state.taken {
            state.on_abandon = Some(Box::new(f));
        }
    }

    /// The pid of the child.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the result is in (and not yet taken by an `.await`).
    pub fn is_ready(&self) -> bool {
        self.slot.state.lock().unwrap_or_else(PoisonError::into_inner).result.is_some()
    }
}

impl Future for ChildExit {
    type Output = io::Result<ExitStatus>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(result) = state.result.take() {
            state.taken = true;
            return Poll::Ready(result);
        }
        if state.taken {
            return Poll::Ready(Err(io::Error::other(format!(
                "the exit status of pid {} was already taken: a ChildExit resolves once",
                self.pid
            ))));
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for ChildExit {
    fn drop(&mut self) {
        let hook = {
            let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.result.is_some() || state.taken {
                None
            } else {
                state.abandoned = true;
                state.on_abandon.take()
            }
        };
        if let Some(hook) = hook {
            hook();
        }
    }
}

impl fmt::Debug for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildExit")
            .field("pid", &self.pid)
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// Completes a [`ChildExit`]. Dropped unsent (the handler was replaced or removed), it
/// completes it with [`ChildWatchError::HandlerGone`], so no `ChildExit` ever hangs.
pub(crate) struct ExitSender {
    pid: u32,
    slot: Option<Arc<Slot>>,
}

impl ExitSender {
    pub(crate) fn send(mut self, result: io::Result<ExitStatus>) {
        if let Some(slot) = self.slot.take() {
            complete(&slot, self.pid, result);
        }
    }
}

impl ExitSender {
    /// Whether its `ChildExit` was dropped before the result came.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.slot
            .as_ref()
            .is_none_or(|slot| slot.state.lock().unwrap_or_else(PoisonError::into_inner).abandoned)
    }
}

impl Drop for ExitSender {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            complete(&slot, self.pid, Err(ChildWatchError::HandlerGone { pid: self.pid }.into()));
        }
    }
}

/// Puts the result in and wakes the task awaiting it.
///
/// The waker is not ours: it may panic. Its panic stays here (reported on stderr), so
/// it costs only its own task a wake-up, never the watcher the statuses of the other
/// children it reaps in the same go (nor an abort, when this runs in a drop).
fn complete(slot: &Slot, pid: u32, result: io::Result<ExitStatus>) {
    let waker = {
        let mut state = slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.result = Some(result);
        state.waker.take()
    };
    if let Some(w) = waker {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake())) {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".into());
            eprintln!(
                "polyloop: waking the task that awaits the exit of pid {pid} panicked: {what}; \
                 its status is kept for its next poll"
            );
        }
    }
}

/// asyncio's `returncode`: the exit code, or minus the signal that ended the child.
pub(crate) fn returncode(status: &ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => -sig,
        (None, None) => 255,
    }
}

/// A wait status from `waitpid` as an `ExitStatus`.
pub(crate) fn from_wait_status(status: rustix::process::WaitStatus) -> ExitStatus {
    ExitStatus::from_raw(status.as_raw())
}

/// A `waitid` status as an `ExitStatus` (encoded as `waitpid` would have).
pub(crate) fn from_waitid_status(status: &rustix::process::WaitIdStatus) -> ExitStatus {
    let raw = if let Some(code) = status.exit_status() {
        (code & 0xff) << 8
    } else {
        let sig = status.terminating_signal().unwrap_or(0) & 0x7f;
        if status.dumped() { sig | 0x80 } else { sig }
    };
    ExitStatus::from_raw(raw)
}
