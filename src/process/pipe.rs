//! The child's pipes: async ends for this process, and [`Stdio`] for the next child.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};

/// Takes `end` off the reactor and puts it back in blocking mode, as a child (or sync
/// code) expects its pipes (`O_NONBLOCK` belongs to the open pipe, shared by whoever
/// holds it).
fn into_blocking<T: Into<OwnedFd>>(end: Async<T>) -> io::Result<OwnedFd> {
    let fd: OwnedFd = end.into_inner()?.into();
    rustix::io::ioctl_fionbio(&fd, false)?;
    Ok(fd)
}

/// Shared by the three pipe types: fd access, `into_stdio`, `TryFrom<_> for Stdio`.
macro_rules! pipe_end {
    ($name:ident, $std:ty, $what:literal, $example:literal) => {
        impl $name {
            pub(crate) fn new(end: $std) -> io::Result<$name> {
                Async::new(end).map($name)
            }

            #[doc = concat!("Turns this end of the child's ", $what, " into a [`Stdio`] for another")]
            /// child, so that one child's output can be another's input, as `a | b` does
            /// in a shell. The pipe goes back to blocking mode, as children expect.
            ///
            /// # Errors
            ///
            /// The pipe cannot be taken off the reactor or put back in blocking mode.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = $example]
            /// ```
            pub fn into_stdio(self) -> io::Result<Stdio> {
                into_blocking(self.0).map(Stdio::from)
            }

            #[doc = concat!("This end of the child's ", $what, " as a plain file descriptor, for")]
            /// blocking use: it is taken off the reactor and put back in blocking mode.
            ///
            /// # Errors
            ///
            /// As [`into_stdio`](Self::into_stdio).
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                into_blocking(self.0)
            }
        }

        impl TryFrom<$name> for Stdio {
            type Error = io::Error;

            /// As [`into_stdio`]($name::into_stdio) (tokio's spelling).
            fn try_from(end: $name) -> io::Result<Stdio> {
                end.into_stdio()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0.as_raw_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0.as_raw_fd()).finish()
            }
        }
    };
}

/// The child's stdin, an async pipe (`AsyncWrite`); dropping it closes the pipe, and
/// the child reads end-of-file.
pub struct ChildStdin(Async<std::process::ChildStdin>);

/// The child's stdout, an async pipe (`AsyncRead`).
pub struct ChildStdout(Async<std::process::ChildStdout>);

/// The child's stderr, an async pipe (`AsyncRead`).
pub struct ChildStderr(Async<std::process::ChildStderr>);

pipe_end!(
    ChildStdin,
    std::process::ChildStdin,
    "stdin",
    r#"use polyloop::process::{Command, Stdio};

polyloop::block_on(async {
    // printf hi | cat, made from the reading end: printf writes into cat's stdin.
    let mut cat = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let into_cat = cat.stdin.take().unwrap().into_stdio()?;
    let mut printf = Command::new("printf").arg("hi").stdout(into_cat).spawn()?;
    assert!(printf.wait().await?.success());
    let out = cat.wait_with_output().await?;
    assert_eq!(out.stdout, b"hi");
    Ok::<(), std::io::Error>(())
})?;
# Ok::<(), std::io::Error>(())"#
);

pipe_end!(
    ChildStdout,
    std::process::ChildStdout,
    "stdout",
    r#"use polyloop::process::{Command, Stdio};

polyloop::block_on(async {
    // echo hello | tr a-z A-Z
    let mut echo = Command::new("echo").arg("hello").stdout(Stdio::piped()).spawn()?;
    let piped = echo.stdout.take().unwrap().into_stdio()?;
    let out = Command::new("tr").args(["a-z", "A-Z"]).stdin(piped).output().await?;
    assert_eq!(out.stdout, b"HELLO\n");
    assert!(echo.wait().await?.success());
    Ok::<(), std::io::Error>(())
})?;
# Ok::<(), std::io::Error>(())"#
);

pipe_end!(
    ChildStderr,
    std::process::ChildStderr,
    "stderr",
    r#"use polyloop::process::{Command, Stdio};

polyloop::block_on(async {
    // What the first child says on stderr is the second one's stdin.
    let mut first =
        Command::new("sh").args(["-c", "echo oops >&2"]).stderr(Stdio::piped()).spawn()?;
    let piped = first.stderr.take().unwrap().into_stdio()?;
    let out = Command::new("wc").arg("-c").stdin(piped).output().await?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    assert!(first.wait().await?.success());
    Ok::<(), std::io::Error>(())
})?;
# Ok::<(), std::io::Error>(())"#
);

impl AsyncWrite for ChildStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl AsyncRead for ChildStdout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncRead for ChildStderr {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}
