//! The SIGCHLD-driven watchers (multi-loop, safe) leave a SIGCHLD handler installed
//! before them working, share one signal action however many of them are open, and
//! unregister it once the last one is closed, whatever the close order.
//!
//! Its own process (`harness = false`): the handler must be installed before any
//! watcher registers, and the signal disposition is process-wide.

// The children are reaped by the watchers under test, never by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use polyloop::process::watcher::sigchld_action_registered;
use polyloop::process::{ChildWatcher, MultiLoopChildWatcher, SafeChildWatcher};

static PREVIOUS_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn previous_handler(_: libc::c_int) {
    PREVIOUS_CALLS.fetch_add(1, Ordering::SeqCst);
}

fn install_previous_handler() {
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler only does an
    // atomic add, which is async-signal-safe; no other thread exists yet.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = previous_handler as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()), 0);
    }
}

/// Runs a child to its end under `watcher` on a fresh loop; returns its exit code.
fn run_child(watcher: &Arc<dyn ChildWatcher>, code: i32) -> i32 {
    let lp = polyloop::new_event_loop().unwrap();
    watcher.attach_loop(Some(&lp));
    let child = Command::new("sh").arg("-c").arg(format!("exit {code}")).spawn().unwrap();
    let status = lp
        .run_until_complete(polyloop::timeout(Duration::from_secs(30), watcher.watch(child.id())))
        .unwrap()
        .expect("watchdog")
        .unwrap();
    watcher.attach_loop(None);
    lp.close().unwrap();
    status.code().unwrap()
}

/// Waits (bounded by the watchdog) until the previous handler has run more than `n` times.
fn previous_ran_after(n: usize) {
    let start = std::time::Instant::now();
    while PREVIOUS_CALLS.load(Ordering::SeqCst) <= n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the previous SIGCHLD handler never ran"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn main() {
    install_previous_handler();
    let mut checks = 0;

    // Two multi-loop watchers and a safe one share the one action.
    let a: Arc<dyn ChildWatcher> = Arc::new(MultiLoopChildWatcher::new().unwrap());
    let b: Arc<dyn ChildWatcher> = Arc::new(MultiLoopChildWatcher::new().unwrap());
    let s: Arc<dyn ChildWatcher> = Arc::new(SafeChildWatcher::new().unwrap());
    assert!(sigchld_action_registered());
    let before = PREVIOUS_CALLS.load(Ordering::SeqCst);
    assert_eq!(run_child(&a, 3), 3);
    assert_eq!(run_child(&s, 4), 4);
    previous_ran_after(before);
    println!("test previous_handler_chained_while_watchers_run ... ok");
    checks += 1;

    // Closing one leaves the others working.
    a.close();
    assert!(sigchld_action_registered());
    assert_eq!(run_child(&b, 5), 5);
    s.close();
    assert!(sigchld_action_registered());
    assert_eq!(run_child(&b, 6), 6);
    println!("test closing_one_watcher_leaves_the_others_working ... ok");
    checks += 1;

    // The last close unregisters the action; the previous handler still runs.
    b.close();
    assert!(!sigchld_action_registered(), "the SIGCHLD action outlived the last watcher");
    let before = PREVIOUS_CALLS.load(Ordering::SeqCst);
    let status = Command::new("sh").arg("-c").arg("exit 0").status().unwrap();
    assert!(status.success());
    previous_ran_after(before);
    println!("test previous_handler_alone_after_last_close ... ok");
    checks += 1;

    // And a new watcher registers again.
    let c: Arc<dyn ChildWatcher> = Arc::new(MultiLoopChildWatcher::new().unwrap());
    assert!(sigchld_action_registered());
    assert_eq!(run_child(&c, 7), 7);
    drop(c);
    assert!(!sigchld_action_registered(), "a dropped watcher keeps the action");
    println!("test dropped_watcher_unregisters ... ok");
    checks += 1;

    println!("\ntest result: ok. {checks} passed; 0 failed");
}
