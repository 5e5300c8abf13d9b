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
        assert!(child.status().await.unwrap().success());
        assert!(child.status().await.unwrap().success(), "a second status() is the same");
    });
}

#[test]
fn try_status_and_kill() {
    run(async {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(child.try_status().unwrap().is_none());
        child.kill().unwrap();
        let status = child.status().await.unwrap();
        assert_eq!(status.signal(), Some(9));
        assert_eq!(child.try_status().unwrap(), Some(status));
        child.kill().expect("killing an ended child is not an error");
    });
}

#[test]
fn dropped_child_is_reaped_in_the_background() {
    run(async {
        let child = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
        let pid = child.id();
        drop(child);
        common::until_reaped(pid).await;
    });
}

#[test]
fn kill_on_drop_kills_then_reaps() {
    run(async {
        let child = Command::new("sleep").arg("30").kill_on_drop(true).spawn().unwrap();
        let pid = child.id();
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
            assert_eq!(c.status().await.unwrap().code(), Some(i as i32));
        }
    });
}
