//! `Child`: a spawned process, its async pipes, its end, and the signals sent to it.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::process::{ExitStatus, Output};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_lite::AsyncReadExt;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::pipe::{ChildStderr, ChildStdin, ChildStdout};
use super::watcher::ChildExit;

/// A child process spawned by [`Command`](super::Command).
///
/// Its end is watched by the policy's child watcher from the start, so a `Child`
/// dropped without being awaited is still reaped in the background (and killed first,
/// if [`kill_on_drop`](super::Command::kill_on_drop) was asked for): no zombie is left.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use polyloop::process::{Command, Stdio};
///
/// polyloop::block_on(async {
///     let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
///     let mut stdin = child.stdin.take().unwrap();
///     stdin.write_all(b"hello").await?;
///     drop(stdin);
///     let mut out = String::new();
///     child.stdout.take().unwrap().read_to_string(&mut out).await?;
///     assert_eq!(out, "hello");
///     assert!(child.wait().await?.success());
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Child {
    pid: u32,
    /// The child's stdin, if it was piped.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    exit: ChildExit,
    status: Option<ExitStatus>,
    /// Signals go through it, so a recycled pid is never hit. Shared with the
    /// watcher that waits on it, if it is a pidfd watcher.
    pidfd: Option<PidFd>,
    kill_on_drop: bool,
}

impl Child {
    pub(crate) fn new(
        child: &mut std::process::Child,
        exit: ChildExit,
        pidfd: Option<Arc<OwnedFd>>,
        kill_on_drop: bool,
    ) -> Child {
        Child {
            pid: child.id(),
            stdin: None,
            stdout: None,
            stderr: None,
            exit,
            status: None,
            pidfd: pidfd.map(PidFd),
            kill_on_drop,
        }
    }

    pub(crate) fn set_pipes(&mut self, child: &mut std::process::Child) -> io::Result<()> {
        if child.stdin.is_some() || child.stdout.is_some() || child.stderr.is_some() {
            crate::fork::check_reactor()?;
        }
        self.stdin = child.stdin.take().map(ChildStdin::new).transpose()?;
        self.stdout = child.stdout.take().map(ChildStdout::new).transpose()?;
        self.stderr = child.stderr.take().map(ChildStderr::new).transpose()?;
        Ok(())
    }

    /// The child's process id, or `None` once its exit status has been collected
    /// (by [`wait`](Child::wait), [`try_wait`](Child::try_wait) or
    /// [`wait_with_output`](Child::wait_with_output)): the child is reaped by then, and
    /// the kernel may have given its pid to another process.
    pub fn id(&self) -> Option<u32> {
        if self.status.is_some() { None } else { Some(self.pid) }
    }

    /// Waits for the child to end (closing its stdin first, so a child reading it does
    /// not wait forever). Later calls return the same status.
    ///
    /// # Errors
    ///
    /// What the watcher reports, e.g. a child reaped by other code (`ECHILD`).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = (&mut self.exit).await?;
        self.ended(status);
        Ok(status)
    }

    /// The exit status if the child has ended, without waiting.
    ///
    /// # Errors
    ///
    /// As [`wait`](Child::wait).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        match Pin::new(&mut self.exit).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => {
                let status = result?;
                self.ended(status);
                Ok(Some(status))
            }
            Poll::Pending => Ok(None),
        }
    }

    /// Waits for the child to end, collecting what it writes to piped stdout and stderr.
    ///
    /// # Errors
    ///
    /// A failed read, or as [`wait`](Child::wait).
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(mut s) = stdout {
                s.read_to_end(&mut buf).await?;
            }
            io::Result::Ok(buf)
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(mut s) = stderr {
                s.read_to_end(&mut buf).await?;
            }
            io::Result::Ok(buf)
        };
        let (out, err) = futures_lite::future::zip(read_out, read_err).await;
        let status = self.wait().await?;
        Ok(Output { status, stdout: out?, stderr: err? })
    }

    /// Kills the child with SIGKILL, as [`signal`](Child::signal) does. A child that has
    /// already ended is not an error here (as in std).
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent (e.g. `EPERM`, for a child that changed its user).
    pub fn kill(&mut self) -> io::Result<()> {
        match self.send(Signal::KILL) {
            Ok(()) | Err(Unsent::Ended) => Ok(()),
            Err(Unsent::Failed(e)) => Err(e),
        }
    }

    /// Sends signal `signum` (e.g. 15, SIGTERM) to the child.
    ///
    /// A child that has ended is never signalled: the kernel is asked first whether it
    /// has (without reaping it). Where the kernel has pidfds (Linux 5.3+), the signal
    /// then goes through the child's pidfd, which names this child for good: it cannot
    /// reach another process, even once this one is reaped and its pid recycled.
    /// Without pidfds it goes by pid; the watcher could reap the child between that
    /// check and the signal, and the pid would have to be recycled in that instant too
    /// for the signal to go astray. A child that ends in that instant takes the signal
    /// as a zombie, which ignores it.
    ///
    /// # Errors
    ///
    /// - `signum` is not a signal that can be sent (real-time signals, 0, and numbers
    ///   out of range are refused): [`io::ErrorKind::InvalidInput`];
    /// - the child has already ended (its status may not have been collected yet):
    ///   [`io::ErrorKind::InvalidInput`], with a message that says so;
    /// - the kernel refuses the signal (e.g. `EPERM`): its error, as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    /// use polyloop::process::Command;
    ///
    /// polyloop::block_on(async {
    ///     let mut child = Command::new("sleep").arg("30").spawn()?;
    ///     child.signal(15)?; // SIGTERM
    ///     assert_eq!(child.wait().await?.signal(), Some(15));
    ///     let err = child.signal(15).unwrap_err();
    ///     assert!(err.to_string().contains("has already ended"), "{err}");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn signal(&mut self, signum: i32) -> io::Result<()> {
        let Some(signal) = Signal::from_named_raw(signum) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot send signal {signum} to child {}: it is not a signal number this \
                     can send; give a standard signal from 1 to 31, e.g. 15 (SIGTERM)",
                    self.pid
                ),
            ));
        };
        match self.send(signal) {
            Ok(()) => Ok(()),
            Err(Unsent::Failed(e)) => Err(e),
            Err(Unsent::Ended) => {
                let status = self.status.map(|s| format!(" ({s})")).unwrap_or_default();
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "cannot send {} to child {}: it has already ended{status}",
                        signal_name(signum),
                        self.pid
                    ),
                ))
            }
        }
    }

    /// The child's pidfd, through which it is signalled and (by a pidfd watcher) reaped.
    ///
    /// It is open from the spawn until the exit status is collected: poll it for
    /// readability to learn that the child ended, or pass it to `pidfd_send_signal` or
    /// `pidfd_getfd`. Do not reap the child through it (`waitid(P_PIDFD)`): its watcher
    /// does that.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::Unsupported`] when the kernel has no pidfds (before Linux 5.3),
    /// [`io::ErrorKind::NotFound`] once the exit status has been collected (the pidfd
    /// is closed then).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::{AsFd, AsRawFd};
    /// use polyloop::process::{Command, PidfdChildWatcher};
    ///
    /// polyloop::block_on(async {
    ///     let mut child = Command::new("true").spawn()?;
    ///     if PidfdChildWatcher::is_supported() {
    ///         let fd = child.pidfd()?.as_fd();
    ///         assert!(fd.as_raw_fd() >= 0);
    ///     }
    ///     child.wait().await?;
    ///     assert!(child.pidfd().is_err(), "closed once the status is collected");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pidfd(&self) -> io::Result<&PidFd> {
        if let Some(fd) = &self.pidfd {
            return Ok(fd);
        }
        Err(if self.status.is_some() {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "child {} has no pidfd any more: it was closed when its exit status was \
                     collected",
                    self.pid
                ),
            )
        } else {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "child {} has no pidfd: this kernel has no pidfds (Linux 5.3 or later \
                     has them)",
                    self.pid
                ),
            )
        })
    }

    /// Sends `signal` unless the child has ended.
    fn send(&mut self, signal: Signal) -> Result<(), Unsent> {
        if self.status.is_some() || self.exit.is_ready() {
            return Err(Unsent::Ended);
        }
        let pid = Pid::from_raw(self.pid as i32).expect("a spawned child's pid is positive");
        let id = match &self.pidfd {
            Some(fd) => WaitId::PidFd(fd.as_fd()),
            None => WaitId::Pid(pid),
        };
        // Ended (a zombie, which would take the signal and ignore it), or reaped
        // already (ECHILD)? Asked without reaping it: that is the watcher's job.
        let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match rustix::process::waitid(id, opts) {
            Ok(None) => {}
            Ok(Some(_)) | Err(rustix::io::Errno::CHILD) => return Err(Unsent::Ended),
            Err(e) => return Err(Unsent::Failed(e.into())),
        }
        // Not reaped a moment ago, so by pid this still names the child, unless the
        // watcher reaps it right now and the pid is recycled in that instant too.
        let sent = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            None => rustix::process::kill_process(pid, signal),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::SRCH) => Err(Unsent::Ended),
            Err(e) => Err(Unsent::Failed(e.into())),
        }
    }

    fn ended(&mut self, status: ExitStatus) {
        self.status = Some(status);
        self.pidfd = None;
    }
}

/// Why a signal was not sent.
enum Unsent {
    /// The child has already ended.
    Ended,
    Failed(io::Error),
}

impl Drop for Child {
    fn drop(&mut self) {
        // The watcher still reaps the child; its status is just not wanted.
        if self.kill_on_drop && self.status.is_none() {
            let _ = self.kill();
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

/// A child's pidfd (Linux), from [`Child::pidfd`]: borrow it with [`AsFd`].
pub struct PidFd(Arc<OwnedFd>);

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl fmt::Debug for PidFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PidFd").field(&self.0.as_raw_fd()).finish()
    }
}

/// `SIGTERM` for 15, and so on; `signal N` for a number without a standard name.
fn signal_name(signum: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(signum).ok().and_then(|n| NAMES.get(n.wrapping_sub(1))) {
        Some(name) => format!("{name} (signal {signum})"),
        None => format!("signal {signum}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::watcher::{ChildWatcher, ThreadedChildWatcher};
    use std::os::unix::process::ExitStatusExt;

    /// A `Child` without a pidfd, as on a kernel that has none: signals go by pid.
    fn child_without_pidfd(watcher: &ThreadedChildWatcher) -> Child {
        let mut std_child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let exit = watcher.watch(std_child.id());
        Child::new(&mut std_child, exit, None, false)
    }

    #[test]
    fn without_a_pidfd_signals_go_by_pid_and_never_to_an_ended_child() {
        let watcher = ThreadedChildWatcher::new();
        let mut child = child_without_pidfd(&watcher);
        assert!(child.pidfd().unwrap_err().kind() == io::ErrorKind::Unsupported);
        child.signal(15).unwrap();
        let status = crate::block_on(child.wait()).unwrap();
        assert_eq!(status.signal(), Some(15));
        let err = child.signal(15).unwrap_err();
        assert!(err.to_string().contains("has already ended"), "{err}");
        child.kill().unwrap();

        // Ended and reaped by the watcher, its status not yet collected: the kernel
        // says it is no child of ours any more (ECHILD), and nothing is sent.
        let mut child = child_without_pidfd(&watcher);
        let pid = child.pid;
        child.kill().unwrap();
        let watchdog = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(std::time::Instant::now() < watchdog, "watchdog: child {pid} never reaped");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let err = child.signal(15).unwrap_err();
        assert!(err.to_string().contains("has already ended"), "{err}");
        assert_eq!(crate::block_on(child.wait()).unwrap().signal(), Some(9));
        watcher.close();
    }
}
