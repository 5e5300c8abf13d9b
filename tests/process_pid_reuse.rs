//! A status kept for a later handler belongs to the child that had the pid then. Once
//! that child is reaped the kernel recycles its pid: a new child under the same pid
//! must be watched, never handed the dead child's status (it would be left a zombie,
//! and `Child::kill` would think it had ended).
//!
//! Its own process (`harness = false`): the fast watcher reaps with `waitpid(-1)`.
//! The pid is recycled on purpose through `/proc/sys/kernel/ns_last_pid`, which needs
//! privileges; without them the cases say so and pass.

// The children are reaped by the watchers under test, never by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use polyloop::EventLoop;
use polyloop::process::{ChildWatcher, FastChildWatcher, MultiLoopChildWatcher};

const WATCHDOG: Duration = Duration::from_secs(30);

fn sh(script: &str) -> Child {
    Command::new("sh").args(["-c", script]).spawn().unwrap()
}

/// Spawns `script` under `pid`, if the kernel can be made to give it out.
fn spawn_with_pid(pid: u32, script: &str) -> Option<Child> {
    for _ in 0..20 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).ok()?;
        let child = sh(script);
        if child.id() == pid {
            return Some(child);
        }
        // Another process took the pid first: let ours be reaped and try again.
        let mut child = child;
        let _ = child.wait();
    }
    None
}

fn run<T>(lp: &EventLoop, fut: impl std::future::Future<Output = T>) -> T {
    lp.run_until_complete(polyloop::timeout(WATCHDOG, fut)).unwrap().expect("watchdog fired")
}

/// Waits, on `lp`, until `pid` has been reaped.
fn until_reaped(lp: &EventLoop, pid: u32) {
    run(lp, common::until_reaped(pid));
}

/// The new child under a recycled pid is reported with its own status.
fn new_child_gets_its_own_status(w: &Arc<dyn ChildWatcher>, lp: &EventLoop, old: u32) {
    let Some(new) = spawn_with_pid(old, "sleep 0.2; exit 7") else {
        println!("  (cannot recycle pid {old} here: ns_last_pid not writable; skipped)");
        return;
    };
    let status = run(lp, w.watch(new.id())).unwrap();
    assert_eq!(status.code(), Some(7), "{} watcher handed over a stale status", w.name());
}

fn multiloop_kept_status_is_stale_after_pid_reuse() {
    let w: Arc<dyn ChildWatcher> = Arc::new(MultiLoopChildWatcher::new().unwrap());
    let lp = polyloop::new_event_loop().unwrap();
    // Blocked on its stdin until the handler is removed.
    let mut child = Command::new("sh")
        .args(["-c", "read x; exit 1"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let old = child.id();
    // Watched, then its handler removed: the status is kept for a later handler.
    w.add_child_handler(old, Box::new(|_, _| {}));
    assert!(w.remove_child_handler(old));
    drop(child.stdin.take());
    until_reaped(&lp, old);
    new_child_gets_its_own_status(&w, &lp, old);
    w.close();
}

fn fast_kept_status_is_stale_after_pid_reuse() {
    let w: Arc<dyn ChildWatcher> = Arc::new(FastChildWatcher::new().unwrap());
    let lp = polyloop::new_event_loop().unwrap();
    w.attach_loop(Some(&lp));
    // Not watched: the fast watcher reaps it anyway and keeps its status.
    let old = sh("exit 1").id();
    let mine = sh("sleep 0.1");
    run(&lp, w.watch(mine.id())).unwrap();
    until_reaped(&lp, old);
    new_child_gets_its_own_status(&w, &lp, old);
    w.close();
}

const CASES: &[common::Case] = &[
    (
        "multiloop_kept_status_is_stale_after_pid_reuse",
        multiloop_kept_status_is_stale_after_pid_reuse,
    ),
    ("fast_kept_status_is_stale_after_pid_reuse", fast_kept_status_is_stale_after_pid_reuse),
];

fn main() {
    common::run_cases(CASES);
}
