//! `Child::kill`, `Child::signal` and `Child::pidfd`: signals reach the child they were
//! meant for, never a process that took its pid, and an ended child is a clear error.

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use polyloop::process::{Command, PidfdChildWatcher, Stdio};

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(Duration::from_secs(30), fut)).expect("watchdog fired")
}

/// async-process `tests/std.rs`.
#[test]
fn signal_reported_right() {
    run(async {
        let mut p =
            Command::new("/bin/sh").arg("-c").arg("read a").stdin(Stdio::piped()).spawn().unwrap();
        p.kill().unwrap();
        match p.wait().await.unwrap().signal() {
            Some(9) => {}
            result => panic!("not terminated by signal 9 (instead, {result:?})"),
        }
    });
}

/// tokio `tests/process_kill_after_wait.rs` (tokio's `start_kill` is our `kill`).
#[test]
fn kill_after_wait() {
    run(async {
        let mut cmd = Command::new("sh");
        cmd.arg("-c");
        let mut child = cmd.arg("exit 2").spawn().unwrap();
        child.kill().unwrap();
        child.wait().await.unwrap();
        // Kill after `wait` is fine.
        child.kill().unwrap();
        child.kill().unwrap();
    });
}

#[test]
fn sigterm_ends_the_child_and_a_handled_signal_does_not() {
    run(async {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.signal(libc::SIGTERM).unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGTERM));

        // A shell that traps SIGUSR1, says so, and then exits 0 when its stdin closes.
        let mut child = Command::new("sh")
            .args(["-c", "trap 'echo got usr1' USR1; echo ready; while read x; do :; done"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = futures_lite::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        futures_lite::AsyncBufReadExt::read_line(&mut out, &mut line).await.unwrap();
        assert_eq!(line, "ready\n");
        child.signal(libc::SIGUSR1).unwrap();
        line.clear();
        futures_lite::AsyncBufReadExt::read_line(&mut out, &mut line).await.unwrap();
        assert_eq!(line, "got usr1\n");
        assert!(child.wait().await.unwrap().success(), "wait closes stdin: the loop ends");
    });
}

#[test]
fn a_signal_to_an_ended_child_is_a_clear_error() {
    run(async {
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let pid = child.id().unwrap();
        // Ended (a zombie, or reaped by its watcher), its status not yet collected.
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit(')').next().is_some_and(|r| r.starts_with(" Z")))
        {
            polyloop::sleep(Duration::from_millis(2)).await;
        }
        let err = child.signal(libc::SIGTERM).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(msg.contains("SIGTERM") && msg.contains(&format!("child {pid}")), "{msg}");
        assert!(msg.contains("has already ended"), "{msg}");
        // And once collected, with the status it ended with.
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
        let err = child.signal(libc::SIGKILL).unwrap_err();
        assert!(err.to_string().contains("has already ended (exit status: 3)"), "{err}");
        child.kill().expect("kill of an ended child is not an error, as in std");
    });
}

#[test]
fn a_signal_number_that_cannot_be_sent_is_a_clear_error() {
    run(async {
        let mut child = Command::new("sleep").arg("30").kill_on_drop(true).spawn().unwrap();
        for bad in [0, -1, 65, 1000] {
            let err = child.signal(bad).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            let msg = err.to_string();
            assert!(msg.contains(&format!("signal {bad}")), "{msg}");
            assert!(msg.contains("15 (SIGTERM)"), "says what would be right: {msg}");
        }
        assert!(child.try_wait().unwrap().is_none(), "no signal was sent");
    });
}

#[test]
fn the_pidfd_names_the_child_until_its_status_is_collected() {
    if !PidfdChildWatcher::is_supported() {
        return;
    }
    run(async {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let fd = child.pidfd().unwrap().as_fd().try_clone_to_owned().unwrap();
        // /proc shows which process a pidfd refers to.
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
        let pid = child.id().unwrap();
        assert!(info.lines().any(|l| l == format!("Pid:\t{pid}")), "{info}");
        rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::TERM).unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGTERM));
        let err = child.pidfd().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(err.to_string().contains("closed when its exit status was collected"), "{err}");
    });
}
