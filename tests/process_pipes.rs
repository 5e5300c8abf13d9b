//! The child's pipes: async reads and writes that wake when they should, and ends that
//! become another child's stdio, so that `a | b | c` can be written.

mod common;

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use polyloop::process::{ChildStdin, Command, Stdio};

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(Duration::from_secs(30), fut)).expect("watchdog fired")
}

/// async-process `tests/std.rs` `test_into_inner`: `cat Cargo.toml | grep async`.
#[test]
fn test_into_inner() {
    run(async {
        let mut ls_child = Command::new("cat").arg("Cargo.toml").stdout(Stdio::piped()).spawn()?;

        let stdio: Stdio = ls_child.stdout.take().unwrap().into_stdio()?;

        let mut echo_child =
            Command::new("grep").arg("async").stdin(stdio).stdout(Stdio::piped()).spawn()?;

        let mut buf = vec![];
        let mut stdout = echo_child.stdout.take().unwrap();

        stdout.read_to_end(&mut buf).await?;
        let found = String::from_utf8(buf).unwrap();
        assert!(found.lines().count() > 0 && found.lines().all(|l| l.contains("async")), "{found}");
        assert!(ls_child.wait().await?.success());
        assert!(echo_child.wait().await?.success());
        std::io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn three_children_piped_together() {
    run(async {
        // printf 'b\na\nc\n' | sort | tr a-z A-Z
        let mut printf =
            Command::new("printf").arg("b\\na\\nc\\n").stdout(Stdio::piped()).spawn()?;
        let mut sort = Command::new("sort")
            .stdin(printf.stdout.take().unwrap().into_stdio()?)
            .stdout(Stdio::piped())
            .spawn()?;
        // tokio's spelling: TryFrom<ChildStdout> for Stdio.
        let sorted: Stdio = sort.stdout.take().unwrap().try_into()?;
        let tr =
            Command::new("tr").args(["a-z", "A-Z"]).stdin(sorted).stdout(Stdio::piped()).spawn()?;
        let out = tr.wait_with_output().await?;
        assert_eq!(out.stdout, b"A\nB\nC\n");
        assert!(out.status.success());
        assert!(printf.wait().await?.success());
        assert!(sort.wait().await?.success());
        std::io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn ends_handed_on_are_in_blocking_mode() {
    run(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        for fd in [stdout.into_owned_fd().unwrap(), stderr.into_owned_fd().unwrap()] {
            let flags = rustix::fs::fcntl_getfl(&fd).unwrap();
            assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK), "{flags:?}");
        }
        let stdin = stdin.into_owned_fd().unwrap();
        assert!(!rustix::fs::fcntl_getfl(&stdin).unwrap().contains(rustix::fs::OFlags::NONBLOCK));
        drop(stdin);
        assert!(child.wait().await.unwrap().success());
    });
}

/// async-process `tests/std.rs` `stdin_works`.
#[test]
fn stdin_works() {
    run(async {
        let mut p = Command::new("/bin/sh")
            .arg("-c")
            .arg("read line; echo $line")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin.as_mut().unwrap().write("foobar".as_bytes()).await.unwrap();
        drop(p.stdin.take());
        let mut out = String::new();
        p.stdout.as_mut().unwrap().read_to_string(&mut out).await.unwrap();
        assert!(p.wait().await.unwrap().success());
        assert_eq!(out, "foobar\n");
    });
}

/// tokio `tests/process_issue_2174.rs`: a writer blocked on the full stdin pipe of a
/// child is woken, with an error, when the child is killed. (tokio waited a second for
/// the pipe to fill; here the writer fills it until a write is pending.)
#[test]
fn issue_2174() {
    run(async {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = [0u8; 8192];
        poll_fn(|cx| {
            loop {
                match Pin::new(&mut input).poll_write(cx, &data) {
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => panic!("writing stdin failed before the kill: {e}"),
                    Poll::Pending => return Poll::Ready(()),
                }
            }
        })
        .await;
        let writer = polyloop::spawn(async move {
            loop {
                input.write_all(&data).await?;
            }
            #[allow(unreachable_code)]
            std::io::Result::Ok(())
        });

        // Kill the child process.
        child.kill().unwrap();
        let err = writer.await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
        child.wait().await.unwrap();
    });
}

/// tokio `tests/process_issue_8042.rs`: reads `first`, sees that the next read is
/// pending while the child waits for us, lets it go on, and reads `second`.
async fn read_chunks<R: AsyncRead + Unpin>(
    reader: &mut R,
    stdin: &mut ChildStdin,
    first: &[u8],
    second: &[u8],
) {
    let mut buf = vec![0; first.len()];
    reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, first);

    // The child waits for our acknowledgement, so this read must return Pending.
    poll_fn(|cx| {
        let mut bytes = [0; 1];
        assert!(Pin::new(&mut *reader).poll_read(cx, &mut bytes).is_pending());
        Poll::Ready(())
    })
    .await;

    stdin.write_all(b"continue\n").await.unwrap();
    buf.resize(second.len(), 0);
    reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, second);

    // Keep the child alive until we have received the second chunk. Otherwise,
    // a hangup event could wake the reader even if readable interest was not rearmed.
    stdin.write_all(b"exit\n").await.unwrap();
    assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
}

#[test]
fn child_stdout_receives_second_chunk_before_exit() {
    run(async {
        let mut child = Command::new("sh")
            .args(["-c", "printf 'chunk1\\n'; read gate; printf 'chunk2\\n'; read gate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        read_chunks(&mut stdout, &mut stdin, b"chunk1\n", b"chunk2\n").await;
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn child_stderr_receives_second_chunk_before_exit() {
    run(async {
        let mut child = Command::new("sh")
            .args(["-c", "printf 'err1\\n' >&2; read gate; printf 'err2\\n' >&2; read gate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        read_chunks(&mut stderr, &mut stdin, b"err1\n", b"err2\n").await;
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn child_stdin_rearms_after_pipe_is_full() {
    let (gate, child_gate) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut gate = async_io::Async::new(gate).unwrap();
    run(async {
        let mut child = Command::new("sh")
            .args(["-c", "read gate <&2; wc -c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::os::fd::OwnedFd::from(child_gate)))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut written = 0;

        // The child waits on a separate socket while we fill its stdin pipe.
        poll_fn(|cx| {
            loop {
                match Pin::new(&mut stdin).poll_write(cx, &[b'x'; 8192]) {
                    Poll::Ready(Ok(n)) => {
                        assert!(n > 0);
                        written += n;
                    }
                    Poll::Ready(Err(err)) => panic!("writing stdin failed: {err}"),
                    Poll::Pending if written == 0 => return Poll::Pending,
                    Poll::Pending => return Poll::Ready(()),
                }
            }
        })
        .await;

        gate.write_all(b"continue\n").await.unwrap();
        stdin.write_all(b"x").await.unwrap();
        drop(stdin);

        let mut output = String::new();
        stdout.read_to_string(&mut output).await.unwrap();
        assert_eq!(output.trim().parse::<usize>().unwrap(), written + 1);
        assert!(child.wait().await.unwrap().success());
    });
}
