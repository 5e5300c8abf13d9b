//! Helpers for the plug-in tests (the root crate's and each plug-in crate's, which
//! include this file by path): a watchdog, child test processes, thread counts.
#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a test may take before the watchdog calls it hung. Only a hang trips it.
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs `f` on its own thread and fails the test if it has not finished within
/// [`WATCHDOG`], instead of hanging the suite. A panic in `f` is passed on.
pub fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(out) => {
            handle.join().expect("the watched thread panicked after sending");
            out
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the watched thread ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung for {WATCHDOG:?}"),
    }
}

/// Waits until `cond` holds, failing the test if it still does not after [`WATCHDOG`].
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < WATCHDOG,
            "{what}: still not true after {WATCHDOG:?}; threads: {:?}",
            thread_names()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The number of threads in this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").expect("/proc/self/task").count()
}

/// Starts the threads that live as long as the process (async-io's reactor thread),
/// so that counting threads afterwards counts only what a test starts.
pub fn start_process_threads() {
    polyloop::block_on(polyloop::sleep(Duration::from_millis(1)));
    // A new thread names itself once it runs: wait for that, so no name is stale.
    eventually("async-io's thread to start", || thread_names().iter().any(|n| n == "async-io"));
}

/// The names of the threads in this process (for failure messages).
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

/// The environment variable that marks a child test process.
pub const CHILD: &str = "POLYLOOP_TEST_CHILD";

/// Whether this process is a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the ignored test `test` of this test binary in a child process with `envs`
/// set (and the polyloop variables not in `envs` unset), under the watchdog.
pub fn run_child(test: &str, envs: &[(&str, &str)]) -> Output {
    run_child_with(test, envs, |_| {})
}

/// [`run_child`], with `configure` applied to the command first (to run the child as
/// another user, for instance).
pub fn run_child_with(
    test: &str,
    envs: &[(&str, &str)],
    configure: impl FnOnce(&mut Command),
) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    configure(&mut cmd);
    cmd.args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"]);
    for var in ["POLYLOOP_POLICY", "POLYLOOP_WORKERS", "POLYLOOP_DEBUG", "POLYLOOP_SLOW_MS"] {
        cmd.env_remove(var);
    }
    cmd.env(CHILD, "1").envs(envs.iter().copied());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn the child test process");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(out) => {
            let out = out.expect("wait for the child test process");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("1 passed"),
                "child test {test} did not run and pass:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("child test {test}: hung for {WATCHDOG:?}");
        }
    }
}
