//! The safe watcher (and the fast one, which shares its engine) rescans on its loop:
//! a rescan lost with a loop must not stop it, and a dropped `Child` is still reaped.
//!
//! Its own process (`harness = false`): `Command::spawn` attaches these watchers to
//! the loop of the main thread only, and the SIGCHLD action is process-wide. Each case
//! fails through a watchdog, never by hanging.

// The children are reaped by the watchers under test, never by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use polyloop::process::{
    ChildWatchError, ChildWatcher, Command, FastChildWatcher, SafeChildWatcher,
};

const WATCHDOG: Duration = Duration::from_secs(30);

fn safe() -> Arc<dyn ChildWatcher> {
    Arc::new(SafeChildWatcher::new().unwrap())
}

fn fast() -> Arc<dyn ChildWatcher> {
    Arc::new(FastChildWatcher::new().unwrap())
}

/// Whether `pid` is still in /proc (alive or a zombie).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A child ends while its loop is idle: the rescan is queued on that loop, which is
/// then closed without running it. The "scan scheduled" flag stayed set for good, and
/// the watcher never scanned again, even on a new loop.
fn rescan_lost_with_its_loop_does_not_stop_scanning() {
    for w in [safe(), fast()] {
        let l1 = polyloop::new_event_loop().unwrap();
        let (first, mut stdin) = l1
            .run_until_complete(async {
                let mut c = Command::new("sh")
                    .args(["-c", "read x"])
                    .stdin(polyloop::process::Stdio::piped())
                    .watcher(w.clone())
                    .spawn()
                    .unwrap();
                let stdin = std::fs::File::from(c.stdin.take().unwrap().into_owned_fd().unwrap());
                (c, stdin)
            })
            .unwrap();
        // The child ends while l1 is idle; wait for it to be a zombie.
        let pid = first.id().unwrap();
        let signals = polyloop::process::watcher::__sigchld_deliveries();
        drop(std::io::Write::write_all(&mut stdin, b"\n"));
        drop(stdin);
        let start = std::time::Instant::now();
        while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.starts_with(" Z")))
        {
            assert!(start.elapsed() < WATCHDOG, "child {pid} never became a zombie");
            std::thread::sleep(Duration::from_millis(2));
        }
        // Its SIGCHLD reached the watcher, which queued a rescan on l1.
        while polyloop::process::watcher::__sigchld_deliveries() == signals {
            assert!(start.elapsed() < WATCHDOG, "the SIGCHLD of child {pid} never came");
            std::thread::sleep(Duration::from_millis(2));
        }
        l1.close().unwrap();
        drop(first);
        let l2 = polyloop::new_event_loop().unwrap();
        let status = l2
            .run_until_complete(async {
                let mut c = Command::new("sh").args(["-c", "exit 3"]).watcher(w.clone()).spawn()?;
                polyloop::timeout(WATCHDOG, c.wait()).await.expect("watchdog fired")
            })
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(3), "{} watcher", w.name());
        l2.run_until_complete(async {
            while exists(pid) {
                polyloop::sleep(Duration::from_millis(2)).await;
            }
        })
        .unwrap();
        w.close();
    }
}

/// Waits, off any loop, until `pid` is reaped; fails after the watchdog.
fn until_reaped_without_a_loop(pid: u32, what: &str) {
    let start = std::time::Instant::now();
    while exists(pid) {
        assert!(start.elapsed() < WATCHDOG, "{what}: dropped child {pid} was never reaped");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A `Child` dropped un-awaited inside `block_on`, which then returns: no loop runs
/// any more, and the child was left a zombie.
fn dropped_child_is_reaped_after_its_loop_stops() {
    for w in [safe(), fast()] {
        // Ends after the drop (its stdin closes with it): reaped on its SIGCHLD.
        let pid = polyloop::block_on(async {
            let mut c = Command::new("sh");
            c.args(["-c", "read x"]).stdin(polyloop::process::Stdio::piped());
            c.watcher(w.clone()).spawn().unwrap().id().unwrap()
        });
        until_reaped_without_a_loop(pid, w.name());
        // Ended before the drop, while its loop was busy: reaped at the drop.
        let pid = polyloop::block_on(async {
            let c = Command::new("true").watcher(w.clone()).spawn().unwrap();
            let pid = c.id().unwrap();
            let start = std::time::Instant::now();
            while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.starts_with(" Z")))
            {
                assert!(start.elapsed() < WATCHDOG, "child {pid} never became a zombie");
                std::thread::sleep(Duration::from_millis(2));
            }
            pid
        });
        until_reaped_without_a_loop(pid, w.name());
        w.close();
    }
}

/// The watcher is attached to the main thread's loop, which is open but not running.
/// A child spawned from another thread was accepted, and its status never came (no
/// loop ran the rescan): a hang. As asyncio's, the watcher is active only while its
/// loop runs, and the spawn fails at once with `Inactive`.
fn spawn_from_another_thread_while_the_loop_is_idle_is_refused() {
    for w in [safe(), fast()] {
        let lp = polyloop::new_event_loop().unwrap();
        w.attach_loop(Some(&lp));
        let w2 = w.clone();
        let spawned =
            std::thread::spawn(move || Command::new("true").watcher(w2).spawn().map(|c| c.id()))
                .join()
                .unwrap();
        let err = spawned.expect_err("a child whose status would never arrive was accepted");
        assert!(
            matches!(ChildWatchError::from_io(&err), Some(ChildWatchError::Inactive { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("running event loop"), "{err}");
        assert!(!w.is_active(), "{}: attached to a loop that is not running", w.name());
        // While the loop runs, the watcher is active; once the run ends, it is not.
        assert!(lp.run_until_complete(async { w.is_active() }).unwrap(), "{}", w.name());
        assert!(!w.is_active());
        w.close();
        lp.close().unwrap();
    }
}

/// A child spawned from another thread while the attached loop runs is reported.
fn spawn_from_another_thread_while_the_loop_runs_is_reported() {
    for w in [safe(), fast()] {
        let lp = polyloop::new_event_loop().unwrap();
        w.attach_loop(Some(&lp));
        let w2 = w.clone();
        let status = lp
            .run_until_complete(polyloop::timeout(WATCHDOG, async move {
                let other = std::thread::spawn(move || {
                    polyloop::block_on(async {
                        let mut c =
                            Command::new("sh").args(["-c", "exit 5"]).watcher(w2).spawn()?;
                        polyloop::timeout(WATCHDOG, c.wait()).await?
                    })
                });
                while !other.is_finished() {
                    polyloop::sleep(Duration::from_millis(2)).await;
                }
                other.join().unwrap()
            }))
            .unwrap()
            .expect("watchdog fired");
        assert_eq!(status.unwrap().code(), Some(5), "{} watcher", w.name());
        w.close();
        lp.close().unwrap();
    }
}

const CASES: &[common::Case] = &[
    (
        "spawn_from_another_thread_while_the_loop_is_idle_is_refused",
        spawn_from_another_thread_while_the_loop_is_idle_is_refused,
    ),
    (
        "spawn_from_another_thread_while_the_loop_runs_is_reported",
        spawn_from_another_thread_while_the_loop_runs_is_reported,
    ),
    (
        "rescan_lost_with_its_loop_does_not_stop_scanning",
        rescan_lost_with_its_loop_does_not_stop_scanning,
    ),
    ("dropped_child_is_reaped_after_its_loop_stops", dropped_child_is_reaped_after_its_loop_stops),
];

fn main() {
    common::run_cases(CASES);
}
