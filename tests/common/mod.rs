//! Resource checks shared by the test files: when a test binary exits, no child
//! process of it may remain (alive or zombie), no thread but the main one and the
//! reactor's may remain, and no file descriptor may be open that was not open at start
//! (beyond the reactor's own and the process-wide pidfd watcher's). A binary that
//! leaks prints what it leaked and exits 1.
//!
//! Including this module (`mod common;`) is all a test file does: the check is
//! registered before `main` runs, through `.init_array`, and runs from `atexit`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

static BASELINE: OnceLock<BTreeSet<i32>> = OnceLock::new();

#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER: extern "C" fn() = register;

extern "C" fn register() {
    let _ = BASELINE.set(open_fds().into_iter().map(|(fd, _)| fd).collect());
    // SAFETY: `check` is an `extern "C" fn()` that lives for the whole program.
    unsafe { libc::atexit(check) };
}

extern "C" fn check() {
    // Threads of finished tests may still be on their way out: give them a moment.
    let mut report = leaks();
    for _ in 0..200 {
        if report.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
        report = leaks();
    }
    eprintln!("\nresource check failed at exit:\n{}", report.join("\n"));
    // SAFETY: ends the process at once; nothing else runs after an atexit failure.
    unsafe { libc::_exit(1) };
}

/// What is left behind right now, one line per leak.
pub(crate) fn leaks() -> Vec<String> {
    let mut report = Vec::new();
    for (pid, state) in children() {
        let what = if state == 'Z' { "zombie" } else { "live" };
        report.push(format!("a {what} child process {pid} remains"));
    }
    let me = std::process::id();
    for (tid, name) in threads() {
        if tid != me && name != "async-io" {
            report.push(format!("thread {tid} ({name}) is still running"));
        }
    }
    let baseline = BASELINE.get().cloned().unwrap_or_default();
    // The process-wide reactor keeps one epoll, one eventfd and one timerfd; the
    // process-wide pidfd child watcher keeps one epoll of its children's pidfds.
    let mut allowed: Vec<&str> = vec![
        "anon_inode:[eventpoll]",
        "anon_inode:[eventpoll]",
        "anon_inode:[eventfd]",
        "anon_inode:[timerfd]",
    ];
    for (fd, target) in open_fds() {
        if baseline.contains(&fd) {
            continue;
        }
        if let Some(i) = allowed.iter().position(|kind| *kind == target) {
            allowed.swap_remove(i);
            continue;
        }
        report.push(format!("fd {fd} ({target}) is still open"));
    }
    report
}

/// Child processes of this process, alive or zombie: (pid, state letter).
pub(crate) fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else { continue };
        // "pid (comm) S ppid ...": the name may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(me) {
            out.push((pid, state));
        }
    }
    out
}

/// The threads of this process: (tid, name).
pub(crate) fn threads() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            out.push((tid, name.trim().to_string()));
        }
    }
    out
}

/// Open file descriptors and what they point at (the handle used to list them is left
/// out).
pub(crate) fn open_fds() -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return out };
    let entries: Vec<_> = dir.flatten().collect();
    for e in entries {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(target) = std::fs::read_link(e.path()) {
            let target = target.to_string_lossy().into_owned();
            // The directory handle of this very listing.
            if target == format!("/proc/{}/fd", std::process::id()) {
                continue;
            }
            out.push((fd, target));
        }
    }
    out
}

/// One case of a test binary that runs without the harness: its name and body.
pub(crate) type Case = (&'static str, fn());

/// A child that exits with `code` once its stdin is closed.
pub(crate) fn gated(code: i32) -> std::process::Child {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("read x; exit {code}"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs the cases of a harness-less test binary one after another, in this process,
/// printing a line per case as the harness does; exits 1 if any case panicked.
pub(crate) fn run_cases(cases: &[Case]) {
    println!("\nrunning {} tests", cases.len());
    let mut failed = Vec::new();
    for (name, case) in cases {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures: {failed:?}");
        std::process::exit(1);
    }
    println!("\ntest result: ok. {} passed", cases.len());
}

/// Waits until `pid` is gone from /proc: reaped, not a zombie. Callers put it under a
/// watchdog (`polyloop::timeout`).
pub(crate) async fn until_reaped(pid: u32) {
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        polyloop::sleep(Duration::from_millis(2)).await;
    }
}

/// A pipe, both ends close-on-exec: (read end, write end). (`std::io::pipe` is newer
/// than the crate's minimum Rust.)
pub(crate) fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2 failed");
    // SAFETY: both fds were just made by pipe2 and are owned by nobody else.
    unsafe {
        (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

/// One case of a test binary whose cases each run in a process of their own: its name,
/// its body, and the environment variables that process gets.
pub(crate) type IsolatedCase = (&'static str, fn(), &'static [(&'static str, &'static str)]);

/// Runs each case in a fresh process of this test binary (for process-wide state:
/// signal dispositions, environment read once, thread counts), printing a line per case
/// as the harness does; exits 1 if any case failed. Call it first thing in `main`.
pub(crate) fn run_cases_isolated(cases: &[IsolatedCase]) {
    const CASE_VAR: &str = "POLYLOOP_TEST_CASE";
    if let Ok(name) = std::env::var(CASE_VAR) {
        let (_, case, _) = cases.iter().find(|c| c.0 == name).expect("a known case");
        case();
        return;
    }
    println!("\nrunning {} tests", cases.len());
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut failed = Vec::new();
    for (name, _, env) in cases {
        let out = std::process::Command::new(&exe)
            .env(CASE_VAR, name)
            .envs(env.iter().copied())
            .output()
            .expect("the test binary starts again");
        let ok = out.status.success();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            println!(
                "---- {name} ({}) stdout:\n{}\n---- stderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures: {failed:?}");
        std::process::exit(1);
    }
    println!("\ntest result: ok. {} passed", cases.len());
}
