//! `Child::wait`, `try_wait`, `wait_with_output` and `id`: std's and tokio's names,
//! fused as std's are, with `id()` gone once the child is reaped. Ports of the
//! async-process (`tests/std.rs`) and tokio (`tests/process_*.rs`) cases.

mod common;

use std::time::Duration;

use futures_lite::AsyncReadExt;
use polyloop::process::{Command, Output, Stdio};

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(Duration::from_secs(30), fut)).expect("watchdog fired")
}

/// async-process `smoke`.
#[test]
fn smoke() {
    run(async {
        let p = Command::new("true").spawn();
        assert!(p.is_ok());
        let mut p = p.unwrap();
        assert!(p.wait().await.unwrap().success());
    });
}

/// tokio `tests/process_smoke.rs` `simple`.
#[test]
fn simple() {
    run(async {
        let mut cmd = Command::new("sh");
        cmd.arg("-c");
        let mut child = cmd.arg("exit 2").spawn().unwrap();

        let id = child.id().expect("missing id");
        assert!(id > 0);

        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(2));

        // test that the `.wait()` method is fused just like the stdlib
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(2));

        // Can't get id after process has exited
        assert_eq!(child.id(), None);
        drop(child.kill());
    });
}

/// async-process `exit_reported_right`.
#[test]
fn exit_reported_right() {
    run(async {
        let p = Command::new("false").spawn();
        assert!(p.is_ok());
        let mut p = p.unwrap();
        assert!(p.wait().await.unwrap().code() == Some(1));
        drop(p.wait().await);
    });
}

/// async-process `test_process_status`.
#[test]
fn test_process_status() {
    run(async {
        let mut status = Command::new("false").status().await.unwrap();
        assert!(status.code() == Some(1));

        status = Command::new("true").status().await.unwrap();
        assert!(status.success());
    });
}

/// async-process `test_finish_once`.
#[test]
fn test_finish_once() {
    run(async {
        let mut prog = Command::new("false").spawn().unwrap();
        assert!(prog.wait().await.unwrap().code() == Some(1));
    });
}

/// async-process `test_finish_twice`.
#[test]
fn test_finish_twice() {
    run(async {
        let mut prog = Command::new("false").spawn().unwrap();
        assert!(prog.wait().await.unwrap().code() == Some(1));
        assert!(prog.wait().await.unwrap().code() == Some(1));
    });
}

/// async-process `test_wait_with_output_once`.
#[test]
fn test_wait_with_output_once() {
    run(async {
        let prog = Command::new("echo").arg("hello").stdout(Stdio::piped()).spawn().unwrap();

        let Output { status, stdout, stderr } = prog.wait_with_output().await.unwrap();
        let output_str = std::str::from_utf8(&stdout).unwrap();

        assert!(status.success());
        assert_eq!(output_str.trim().to_string(), "hello");
        assert_eq!(stderr, Vec::new());
    });
}

/// async-process `child_status_preserved_with_kill_on_drop`: `wait_with_output` takes
/// the child and drops it at the end; that drop must not kill it early.
#[test]
fn child_status_preserved_with_kill_on_drop() {
    run(async {
        let p = Command::new("true").kill_on_drop(true).spawn().unwrap();
        let res = p.wait_with_output().await;
        assert!(res.unwrap().status.success());
    });
}

/// async-process `run_output` with `stdout_works` and `set_current_dir_works`.
async fn run_output(mut cmd: Command) -> String {
    let p = cmd.spawn();
    assert!(p.is_ok());
    let mut p = p.unwrap();
    assert!(p.stdout.is_some());
    let mut ret = String::new();
    p.stdout.as_mut().unwrap().read_to_string(&mut ret).await.unwrap();
    assert!(p.wait().await.unwrap().success());
    ret
}

#[test]
fn stdout_works() {
    run(async {
        let mut cmd = Command::new("echo");
        cmd.arg("foobar").stdout(Stdio::piped());
        assert_eq!(run_output(cmd).await, "foobar\n");
    });
}

#[test]
fn set_current_dir_works() {
    run(async {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg("pwd").current_dir("/").stdout(Stdio::piped());
        assert_eq!(run_output(cmd).await, "/\n");
    });
}

/// async-process `test_process_output_output`.
#[test]
fn test_process_output_output() {
    run(async {
        let Output { status, stdout, stderr } =
            Command::new("echo").arg("hello").output().await.unwrap();
        let output_str = std::str::from_utf8(&stdout).unwrap();

        assert!(status.success());
        assert_eq!(output_str.trim().to_string(), "hello");
        assert_eq!(stderr, Vec::new());
    });
}

/// async-process `test_process_output_error`.
#[test]
fn test_process_output_error() {
    run(async {
        let Output { status, stdout, stderr } =
            Command::new("mkdir").arg("./").output().await.unwrap();

        assert!(status.code() == Some(1));
        assert_eq!(stdout, Vec::new());
        assert!(!stderr.is_empty());
    });
}

/// tokio `tests/process_issue_42.rs`: batches of children that end together, in
/// parallel tasks; consuming one's readiness must not starve another.
#[test]
fn issue_42() {
    run(async {
        let join_handles: Vec<_> = (0..10usize)
            .map(|_| {
                polyloop::spawn(async {
                    let processes: Vec<_> = (0..10usize)
                        .map(|i| {
                            let mut child = Command::new("echo")
                                .arg(format!("I am spawned process #{i}"))
                                .stdin(Stdio::null())
                                .stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .kill_on_drop(true)
                                .spawn()
                                .unwrap();
                            polyloop::spawn(async move { child.wait().await })
                        })
                        .collect();
                    for p in processes {
                        assert!(p.await.unwrap().success());
                    }
                })
            })
            .collect();
        for h in join_handles {
            h.await;
        }
    });
}

/// tokio `tests/process_change_of_runtime.rs`: spawned under one loop, waited under
/// another. (tokio's second case, a spawn outside any runtime, panics there; here it
/// works, since the watcher needs no running loop.)
#[test]
fn process_spawned_and_wait_in_different_runtime() {
    let mut child = polyloop::new_event_loop()
        .unwrap()
        .run_until_complete(async {
            Command::new("true").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap()
        })
        .unwrap();
    let status = polyloop::new_event_loop()
        .unwrap()
        .run_until_complete(async move { child.wait().await.unwrap() })
        .unwrap();
    assert!(status.success());
}

#[test]
fn process_spawned_outside_a_loop_and_waited_in_one() {
    let mut child =
        Command::new("true").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    assert!(run(child.wait()).unwrap().success());
}

/// tokio `tests/process_issue_7144.rs`: with `strace -D`, the traced program is our
/// child and the tracer a grandchild; a signal to the child ends it, and `wait` sees
/// that. (Skipped where strace is missing, as in tokio.)
#[test]
fn issue_7144() {
    async fn has_strace() -> bool {
        Command::new("strace").arg("-V").output().await.is_ok()
    }

    async fn test_one() {
        if !has_strace().await {
            return;
        }
        let mut t =
            Command::new("strace").args("-o /dev/null -D sleep 5".split(' ')).spawn().unwrap();
        polyloop::sleep(Duration::from_millis(100)).await;
        // strace may have given up already (no ptrace in a container, say).
        if let Err(e) = t.signal(libc::SIGINT) {
            assert!(e.to_string().contains("has already ended"), "{e}");
        }
        t.wait().await.unwrap();
    }

    run(async {
        let tasks: Vec<_> = (0..20).map(|_| polyloop::spawn(test_one())).collect();
        for t in tasks {
            t.await;
        }
    });
}
