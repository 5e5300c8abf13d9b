//! Runs a test's body in a child process of its own (the same test binary, asked for
//! that one test), so that a body that aborts the process fails its test with the
//! child's signal and output instead of killing the whole test binary.
//!
//! ```ignore
//! #[test]
//! fn a_case() {
//!     let Some(out) = in_child::run("a_case", || { /* the body */ }) else { return };
//!     assert!(out.stderr.contains("..."));
//! }
//! ```

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The variable that tells a child process which test body to run.
const CASE_VAR: &str = "POLYLOOP_TEST_IN_CHILD";

/// How long a child may take before it is killed and its test fails.
const WATCHDOG: Duration = Duration::from_secs(60);

/// What a child process left behind.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) status: ExitStatus,
    pub(crate) stderr: String,
}

/// Runs `body` in a child process and checks that the child succeeded.
///
/// In the child (where `test` is the test being run), runs `body` and gives `None`:
/// the test then returns, and a panic in `body` fails the child. In the parent, starts
/// the child and gives its outcome, after checking that it exited with 0 (not killed
/// by a signal such as SIGABRT, not failed) within the watchdog.
pub(crate) fn run(test: &str, body: impl FnOnce()) -> Option<Outcome> {
    if std::env::var(CASE_VAR).as_deref() == Ok(test) {
        body();
        return None;
    }
    let out = spawn(test);
    assert!(
        out.status.success(),
        "the test body of `{test}` failed in its child process ({}); its stderr:\n{}",
        describe(out.status),
        out.stderr
    );
    Some(out)
}

fn spawn(test: &str) -> Outcome {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, test)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the test binary again");
    let mut pipe = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = reader.join().unwrap_or_default();
            panic!(
                "`{test}` did not finish within {WATCHDOG:?} in its child; its stderr:\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = reader.join().unwrap_or_default();
    Outcome { status, stderr }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (_, Some(6)) => "killed by SIGABRT: the process aborted".to_string(),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), _) => format!("exit code {code}"),
        _ => format!("{status}"),
    }
}
