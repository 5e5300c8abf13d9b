//! `Child`: a spawned process, its async pipes, and its end.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::{ExitStatus, Output};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use async_io::Async;
use futures_lite::AsyncReadExt;
use rustix::process::Signal;

use super::watcher::ChildExit;

/// The child's stdin, an async pipe (`AsyncWrite`).
pub type ChildStdin = Async<std::process::ChildStdin>;
/// The child's stdout, an async pipe (`AsyncRead`).
pub type ChildStdout = Async<std::process::ChildStdout>;
/// The child's stderr, an async pipe (`AsyncRead`).
pub type ChildStderr = Async<std::process::ChildStderr>;

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
    pidfd: Option<Arc<OwnedFd>>,
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
            pidfd,
            kill_on_drop,
        }
    }

    pub(crate) fn set_pipes(&mut self, child: &mut std::process::Child) -> io::Result<()> {
        if child.stdin.is_some() || child.stdout.is_some() || child.stderr.is_some() {
            crate::fork::check_reactor()?;
        }
        self.stdin = child.stdin.take().map(Async::new).transpose()?;
        self.stdout = child.stdout.take().map(Async::new).transpose()?;
        self.stderr = child.stderr.take().map(Async::new).transpose()?;
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

    /// Kills the child with SIGKILL (through its pidfd where the kernel has them, so a
    /// recycled pid is never hit). A child that has already ended is not an error.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent (e.g. `EPERM`).
    pub fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() || self.exit.is_ready() {
            return Ok(());
        }
        let sent = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(&**fd, Signal::KILL),
            None => {
                let pid = rustix::process::Pid::from_raw(self.pid as i32)
                    .expect("a spawned child's pid is positive");
                rustix::process::kill_process(pid, Signal::KILL)
            }
        };
        match sent {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn ended(&mut self, status: ExitStatus) {
        self.status = Some(status);
        self.pidfd = None;
    }
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
