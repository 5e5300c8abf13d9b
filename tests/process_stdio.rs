//! Stdio settings of a `Command`: kept for every spawn, as std, tokio and async-process
//! keep them; streams nobody set get each spawn method's default.

mod common;

use std::time::Duration;

use futures_lite::AsyncReadExt;
use polyloop::process::{Command, Stdio};

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(Duration::from_secs(30), fut)).expect("watchdog fired")
}

/// async-process `tests/std.rs`: the same command spawned twice, both outputs arrive.
#[test]
fn test_spawn_multiple_with_stdio() {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg("echo foo; echo bar 1>&2").stdout(Stdio::piped()).stderr(Stdio::piped());

    run(async move {
        let p1 = cmd.spawn().unwrap();
        let out1 = p1.wait_with_output().await.unwrap();
        assert_eq!(out1.stdout, b"foo\n");
        assert_eq!(out1.stderr, b"bar\n");

        let p2 = cmd.spawn().unwrap();
        let out2 = p2.wait_with_output().await.unwrap();
        assert_eq!(out2.stdout, b"foo\n");
        assert_eq!(out2.stderr, b"bar\n");
    });
}

#[test]
fn a_piped_stdin_stays_piped_for_later_spawns_and_status() {
    run(async {
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        for _ in 0..3 {
            let mut child = cmd.spawn().unwrap();
            assert!(child.stdin.is_some(), "stdin was piped for an earlier spawn only");
            assert!(child.stdout.is_none());
            assert!(child.wait().await.unwrap().success(), "wait closes stdin: cat ends");
        }
    });
}

#[test]
fn output_pipes_only_the_streams_nobody_set() {
    run(async {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2"]).stderr(Stdio::null());
        let out = cmd.output().await.unwrap();
        assert_eq!(out.stdout, b"out\n", "unset stdout is piped by output()");
        assert_eq!(out.stderr, b"", "stderr set to null stays null");
        // And a later spawn has its own default back for stdout, and null stderr still.
        let child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"");
    });
}

/// output()'s defaults are for its own spawn: a later spawn() inherits what nobody set.
/// (A stdout left piped from output() would go unread, and a child writing much to it
/// would hang.)
#[test]
fn output_defaults_do_not_outlive_their_spawn() {
    run(async {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 4"]);
        let out = cmd.output().await.unwrap();
        assert_eq!(out.status.code(), Some(4));
        let mut child = cmd.spawn().unwrap();
        assert!(child.stdin.is_none(), "stdin stayed null/piped from output()");
        assert!(child.stdout.is_none(), "stdout stayed piped from output()");
        assert!(child.stderr.is_none(), "stderr stayed piped from output()");
        assert_eq!(child.wait().await.unwrap().code(), Some(4));
        assert_eq!(cmd.status().await.unwrap().code(), Some(4));
    });
}

#[test]
fn a_std_command_s_stdio_is_kept_by_spawn() {
    run(async {
        let mut std_cmd = std::process::Command::new("echo");
        std_cmd.arg("from std").stdout(Stdio::piped());
        let mut cmd = Command::from(std_cmd);
        for _ in 0..2 {
            let mut child = cmd.spawn().unwrap();
            let mut said = String::new();
            child
                .stdout
                .take()
                .expect("std's piped stdout")
                .read_to_string(&mut said)
                .await
                .unwrap();
            assert_eq!(said, "from std\n");
            assert!(child.wait().await.unwrap().success());
        }
    });
}

#[test]
fn stdio_set_twice_keeps_the_last_setting() {
    run(async {
        let mut cmd = Command::new("echo");
        cmd.arg("hi").stdout(Stdio::null()).stdout(Stdio::piped());
        for _ in 0..2 {
            let out = cmd.spawn().unwrap().wait_with_output().await.unwrap();
            assert_eq!(out.stdout, b"hi\n");
        }
    });
}
