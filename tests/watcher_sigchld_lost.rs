//! The SIGCHLD-driven watchers (multi-loop, safe, fast) when their signal is lost: a
//! raw `sigaction(SIGCHLD)` installed after polyloop's replaces its action, and no
//! SIGCHLD reaches the watchers any more. While children are outstanding they also
//! rescan on a slow fallback timer, so a status comes late but comes; the first exit
//! found that way is reported once on stderr. With no child outstanding, no timer.
//!
//! Its own process (`harness = false`): the signal disposition is process-wide, and
//! stderr is captured around the cases.

// The children are reaped by the watchers under test, never by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use polyloop::process::watcher::{__sigchld_fallback_armed, sigchld_action_registered};
use polyloop::process::{ChildWatcher, FastChildWatcher, MultiLoopChildWatcher, SafeChildWatcher};

const WATCHDOG: Duration = Duration::from_secs(60);

extern "C" fn thief(_: libc::c_int) {}

/// A raw SIGCHLD handler that replaces whatever was there, put back on drop.
struct Stolen(libc::sigaction);

impl Stolen {
    fn install() -> Stolen {
        // SAFETY: zeroed sigactions are valid values to fill in; the handler does
        // nothing (async-signal-safe); the old action is kept to be put back.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = thief as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, &mut old), 0);
            Stolen(old)
        }
    }
}

impl Drop for Stolen {
    fn drop(&mut self) {
        // SAFETY: puts back the action read by `install`.
        unsafe { libc::sigaction(libc::SIGCHLD, &self.0, std::ptr::null_mut()) };
    }
}

/// Children that end together once the returned write end is dropped.
fn gated_children(n: usize) -> (Vec<Child>, std::os::fd::OwnedFd) {
    let (gate, open_all) = common::pipe();
    let children = (0..n)
        .map(|i| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("read x; exit {i}"))
                .stdin(Stdio::from(gate.try_clone().unwrap()))
                .spawn()
                .unwrap()
        })
        .collect();
    (children, open_all)
}

/// Waits (under the watchdog) until the fallback timer is gone.
fn until_no_fallback_timer() {
    let start = Instant::now();
    while __sigchld_fallback_armed() {
        assert!(start.elapsed() < WATCHDOG, "the fallback timer outlived the last child");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Twenty children end while SIGCHLD is stolen: every status still arrives, through
/// handlers and through futures, and afterwards no timer is left.
fn statuses_arrive_without_sigchld(make: fn() -> Arc<dyn ChildWatcher>) {
    let w = make();
    let lp = polyloop::new_event_loop().unwrap();
    w.attach_loop(Some(&lp));
    assert!(!__sigchld_fallback_armed(), "a timer with no child outstanding");
    let stolen = Stolen::install();
    let (children, open_all) = gated_children(20);
    let (tx, rx) = std::sync::mpsc::channel();
    let exits: Vec<_> = children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                Some(w.watch(c.id()))
            } else {
                let tx = tx.clone();
                w.add_child_handler(
                    c.id(),
                    Box::new(move |pid, code| tx.send((pid, code)).unwrap()),
                );
                None
            }
        })
        .collect();
    drop(open_all);
    let outcome = lp.run_until_complete(polyloop::timeout(WATCHDOG, async {
        for (i, exit) in exits.into_iter().enumerate() {
            if let Some(exit) = exit {
                assert_eq!(exit.await.unwrap().code(), Some(i as i32));
            }
        }
        let mut got = Vec::new();
        while got.len() < 10 {
            match rx.try_recv() {
                Ok(call) => got.push(call),
                Err(_) => polyloop::sleep(Duration::from_millis(5)).await,
            }
        }
        got
    }));
    drop(stolen);
    let mut got = outcome.unwrap().unwrap_or_else(|_| panic!("{}: statuses lost", w.name()));
    got.sort();
    let mut want: Vec<(u32, i32)> =
        children.iter().enumerate().skip(1).step_by(2).map(|(i, c)| (c.id(), i as i32)).collect();
    want.sort();
    assert_eq!(got, want);
    until_no_fallback_timer();
    w.close();
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(1))).unwrap();
    w.attach_loop(None);
    lp.close().unwrap();
    assert!(!sigchld_action_registered());
}

fn multiloop() -> Arc<dyn ChildWatcher> {
    Arc::new(MultiLoopChildWatcher::new().unwrap())
}

fn safe() -> Arc<dyn ChildWatcher> {
    Arc::new(SafeChildWatcher::new().unwrap())
}

fn fast() -> Arc<dyn ChildWatcher> {
    Arc::new(FastChildWatcher::new().unwrap())
}

/// Runs `f` with stderr going to a file; returns what was written there.
fn capture_stderr(f: impl FnOnce()) -> String {
    let path = std::env::temp_dir().join(format!("polyloop-lost-{}.txt", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    // SAFETY: dup/dup2 on fd 2 and on a file we own; fd 2 is put back below.
    let saved = unsafe { libc::dup(2) };
    assert!(saved >= 0);
    // SAFETY: as above.
    unsafe { libc::dup2(file.as_raw_fd(), 2) };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: puts back the stderr saved above and closes the copy.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    drop(file);
    let mut text = String::new();
    std::fs::File::open(&path).unwrap().read_to_string(&mut text).unwrap();
    let _ = std::fs::remove_file(&path);
    eprint!("{text}");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    text
}

const REPORT: &str = "found a child's exit that no SIGCHLD announced";

/// How many times the report was seen on stderr, over the cases.
static REPORTS: AtomicUsize = AtomicUsize::new(0);

/// A case, with stderr captured and the reports in it counted.
fn counted(make: fn() -> Arc<dyn ChildWatcher>) {
    let text = capture_stderr(|| statuses_arrive_without_sigchld(make));
    REPORTS.fetch_add(text.matches(REPORT).count(), Ordering::SeqCst);
}

fn main() {
    common::run_cases(&[
        ("multiloop_statuses_arrive_when_sigchld_is_stolen", || counted(multiloop)),
        ("safe_statuses_arrive_when_sigchld_is_stolen", || counted(safe)),
        ("fast_statuses_arrive_when_sigchld_is_stolen", || counted(fast)),
        ("an_exit_no_signal_announced_is_reported_once", || {
            assert_eq!(REPORTS.load(Ordering::SeqCst), 1, "reported once per process");
        }),
    ]);
}
