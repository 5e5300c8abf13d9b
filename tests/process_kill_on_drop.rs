//! `kill_on_drop`: dropping the `Child` kills the child, and only the child (tokio
//! `tests/process_kill_on_drop.rs`).

mod common;

use std::time::Duration;

use futures_lite::{AsyncBufReadExt, AsyncReadExt};
use polyloop::process::{Command, Stdio};

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(Duration::from_secs(30), fut)).expect("watchdog fired")
}

/// tokio slept two seconds for its grandchild to start and print; here the grandchild
/// waits until the killed shell is gone, and the shell says when the grandchild runs.
#[test]
fn kill_on_drop() {
    run(async {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "
           # Start another child that won't get killed: it waits for this shell to go.
           (while kill -0 $$ 2>/dev/null; do sleep 0.01; done; echo child ran) &
           echo started
           # Await our death (read is built in: no child of ours holds stdout)
           read never
           echo hello from beyond the grave
        ",
        ]);
        let mut child =
            cmd.kill_on_drop(true).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = futures_lite::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).await.unwrap();
        assert_eq!(line, "started\n");
        // SIGKILL first, then stdin closes: the shell never reads that end-of-file.
        drop(child);

        let mut msg = String::new();
        out.read_to_string(&mut msg).await.unwrap();
        assert_eq!("child ran\n", msg);
    });
}

#[test]
fn without_kill_on_drop_a_dropped_child_runs_on() {
    run(async {
        let mut child = Command::new("sh")
            .args(["-c", "read x; echo ran to the end"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        drop(child);
        drop(stdin);
        let mut msg = String::new();
        stdout.read_to_string(&mut msg).await.unwrap();
        assert_eq!(msg, "ran to the end\n");
    });
}
