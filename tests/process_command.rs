//! `polyloop::process`: Command and Child through the default (pidfd) watcher, which
//! leaves other tests' children alone, so these run in parallel.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use polyloop::process::{ChildWatchError, ChildWatcher, Command, SafeChildWatcher, Stdio};

const WATCHDOG: Duration = Duration::from_secs(30);

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(WATCHDOG, fut)).expect("watchdog fired")
}

#[test]
fn status_and_output() {
    run(async {
        let status = Command::new("sh").args(["-c", "exit 3"]).status().await.unwrap();
        assert_eq!(status.code(), Some(3));
        let out = Command::new("sh").args(["-c", "echo out; echo err >&2"]).output().await.unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    });
}

#[test]
fn async_pipes_both_ways() {
    run(async {
        let mut child =
            Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        stdin.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        stdout.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        drop(stdin);
        assert!(child.wait().await.unwrap().success());
        assert!(child.wait().await.unwrap().success(), "a second wait() is the same");
    });
}

#[test]
fn try_wait_and_kill() {
    run(async {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(child.try_wait().unwrap().is_none());
        assert!(child.id().is_some(), "a running child has its pid");
        child.kill().unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9));
        assert_eq!(child.id(), None, "a reaped child's pid may be someone else's");
        assert_eq!(child.try_wait().unwrap(), Some(status));
        child.kill().expect("killing an ended child is not an error");
    });
}

#[test]
fn dropped_child_is_reaped_in_the_background() {
    run(async {
        let child = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
        let pid = child.id().unwrap();
        drop(child);
        common::until_reaped(pid).await;
    });
}

#[test]
fn kill_on_drop_kills_then_reaps() {
    run(async {
        let child = Command::new("sleep").arg("30").kill_on_drop(true).spawn().unwrap();
        let pid = child.id().unwrap();
        drop(child);
        common::until_reaped(pid).await;
    });
}

#[test]
fn inactive_watcher_is_a_clear_error() {
    // A safe watcher with no loop, from a thread that is not the main thread.
    let safe: Arc<dyn ChildWatcher> = Arc::new(SafeChildWatcher::new().unwrap());
    let err = std::thread::spawn(move || {
        polyloop::block_on(async { Command::new("true").watcher(safe).spawn().unwrap_err() })
    })
    .join()
    .unwrap();
    assert!(matches!(ChildWatchError::from_io(&err), Some(ChildWatchError::Inactive { .. })));
    assert!(err.to_string().contains("the safe child watcher is not active"), "{err}");
}

#[test]
fn closed_watcher_is_a_clear_error() {
    let w: Arc<dyn ChildWatcher> = Arc::new(polyloop::process::PidfdChildWatcher::new());
    w.close();
    let err = Command::new("true").watcher(w).spawn().unwrap_err();
    assert!(err.to_string().contains("the pidfd child watcher is not active (closed"), "{err}");
}

#[test]
fn many_children_at_once() {
    run(async {
        let children: Vec<_> = (0..50)
            .map(|i| Command::new("sh").arg("-c").arg(format!("exit {i}")).spawn().unwrap())
            .collect();
        for (i, mut c) in children.into_iter().enumerate() {
            assert_eq!(c.wait().await.unwrap().code(), Some(i as i32));
        }
    });
}

#[test]
fn many_status_calls_at_once_each_get_their_own_child() {
    run(async {
        let mut commands: Vec<Command> = (0..64)
            .map(|i| {
                let mut c = Command::new("sh");
                // Half on spawner threads, half on this one.
                c.arg("-c").arg(format!("exit {i}")).start_on_spawner(i % 2 == 0);
                c
            })
            .collect();
        let mut pending: Vec<_> = commands.iter_mut().map(|c| Box::pin(c.status())).collect();
        // One poll each starts every spawn before any is awaited to its end.
        let mut statuses = vec![None; pending.len()];
        for (i, s) in pending.iter_mut().enumerate() {
            statuses[i] = futures_lite::future::poll_once(s).await.map(|s| s.unwrap().code());
        }
        for (i, s) in pending.into_iter().enumerate() {
            if statuses[i].is_none() {
                statuses[i] = Some(s.await.unwrap().code());
            }
        }
        let statuses: Vec<_> = statuses.into_iter().map(Option::unwrap).collect();
        assert_eq!(statuses, (0..64).map(Some).collect::<Vec<_>>());
    });
}

#[test]
fn a_dropped_status_leaves_the_command_ready_to_run_again() {
    run(async {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 7"]).start_on_spawner(true);
        for _ in 0..20 {
            // Dropped after one poll: the child may not have started, may be starting,
            // or may be running; either way the command is back, and no zombie stays.
            // (On a loaded machine it may even have ended by that poll.)
            let mut status = Box::pin(cmd.status());
            if let Some(done) = futures_lite::future::poll_once(&mut status).await {
                assert_eq!(done.unwrap().code(), Some(7));
            }
        }
        assert_eq!(cmd.status().await.unwrap().code(), Some(7));
        assert_eq!(cmd.output().await.unwrap().status.code(), Some(7));
    });
}

#[test]
fn a_program_that_cannot_start_is_std_s_error_and_the_command_stays_usable() {
    /// std's error, kept inside ours.
    fn os_error(err: &std::io::Error) -> Option<i32> {
        polyloop::process::SpawnError::from_io(err)?.raw_os_error()
    }
    run(async {
        let mut cmd = Command::new("/nonexistent/polyloop-no-such-program");
        for on_spawner in [false, true] {
            cmd.start_on_spawner(on_spawner);
            let err = cmd.status().await.unwrap_err();
            assert_eq!(os_error(&err), Some(libc::ENOENT), "{err}");
            let err = cmd.output().await.unwrap_err();
            assert_eq!(os_error(&err), Some(libc::ENOENT), "{err}");
        }
        let err = cmd.spawn().unwrap_err();
        assert_eq!(os_error(&err), Some(libc::ENOENT), "{err}");
        // The command lent to a spawner came back, not a stand-in that fails the same.
        assert!(format!("{cmd:?}").contains("polyloop-no-such-program"), "{cmd:?}");
    });
}
