//! The fast watcher: statuses it keeps, and handlers called from its reaping.
//!
//! Its own process (`harness = false`): `waitpid(-1)` reaps every child of the
//! process. Each case fails through a watchdog, never by hanging.

// The children are reaped by the watchers under test, never by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::io;
use std::process::{Child, Command};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use polyloop::EventLoop;
use polyloop::process::{ChildWatchError, ChildWatcher, FastChildWatcher, PidfdChildWatcher};

const WATCHDOG: Duration = Duration::from_secs(30);

fn sh(script: &str) -> Child {
    Command::new("sh").args(["-c", script]).spawn().unwrap()
}

fn run<T>(lp: &EventLoop, fut: impl std::future::Future<Output = T>) -> T {
    lp.run_until_complete(polyloop::timeout(WATCHDOG, fut)).unwrap().expect("watchdog fired")
}

/// Waits, on `lp`, until `pid` has been reaped.
fn until_reaped(lp: &EventLoop, pid: u32) {
    run(lp, common::until_reaped(pid));
}

fn not_child(err: &io::Error) -> bool {
    matches!(ChildWatchError::from_io(err), Some(ChildWatchError::NotChild { .. }))
}

/// The docs say the kept statuses are dropped on close: they are shared by all fast
/// watchers, and went on living after the last one was closed.
fn kept_statuses_are_dropped_when_the_last_fast_watcher_closes() {
    let lp = polyloop::new_event_loop().unwrap();
    let w = FastChildWatcher::new().unwrap();
    w.attach_loop(Some(&lp));
    let other = sh("exit 9"); // not watched: reaped anyway, its status kept
    let mine = sh("sleep 0.1");
    run(&lp, w.watch(mine.id())).unwrap();
    until_reaped(&lp, other.id());
    // While a fast watcher is open, another one may claim the kept status.
    let w2 = FastChildWatcher::new().unwrap();
    w2.attach_loop(Some(&lp));
    w.close();
    let other2 = sh("exit 8");
    let mine2 = sh("sleep 0.1");
    run(&lp, w2.watch(mine2.id())).unwrap();
    until_reaped(&lp, other2.id());
    assert_eq!(run(&lp, w2.watch(other.id())).unwrap().code(), Some(9));
    w2.close();
    drop((w, w2));
    // Every fast watcher closed: a new one knows nothing of `other2`.
    let w3 = FastChildWatcher::new().unwrap();
    w3.attach_loop(Some(&lp));
    let err = run(&lp, w3.watch(other2.id())).unwrap_err();
    assert!(not_child(&err), "{err}");
    w3.close();
}

/// One fast watcher reaps another's child while holding the lock all fast watchers
/// share; the handler, or the waker of the child's end, then watched a new child on
/// a fast watcher, which takes that lock.
fn handler_watching_a_child_from_a_fast_reap_does_not_deadlock() {
    let w1 = FastChildWatcher::new().unwrap();
    let w2 = Arc::new(FastChildWatcher::new().unwrap());
    let (tx, rx) = mpsc::channel();
    let child = sh("exit 1");
    let w2b = w2.clone();
    w2.add_child_handler(
        child.id(),
        Box::new(move |_, rc| {
            let next = sh("exit 2");
            let exit = w2b.watch(next.id());
            tx.send((rc, exit)).unwrap();
        }),
    );
    let lp = polyloop::new_event_loop().unwrap();
    w1.attach_loop(Some(&lp));
    let (rc, exit) = run(&lp, async {
        loop {
            if let Ok(got) = rx.try_recv() {
                break got;
            }
            polyloop::sleep(Duration::from_millis(2)).await;
        }
    });
    assert_eq!(rc, 1);
    // The second child is reaped by w1's rescans, and handed to w2.
    assert_eq!(run(&lp, exit).unwrap().code(), Some(2));
    w1.close();
    w2.close();
}

/// Threads of the blocking pool, where spawner jobs run (nothing else here uses it).
fn spawner_threads() -> usize {
    common::threads().iter().filter(|(_, name)| name == "polyloop-block").count()
}

/// While a fast watcher is open, a child started from `status` is started on the
/// calling thread even when a spawner thread is asked for, whichever watcher the
/// command uses: the fast watcher's `waitpid(-1)` could take a child that failed to
/// exec before std's spawn, on the spawner thread, waits for it. Once it is closed,
/// spawner threads are used again.
fn children_start_on_the_calling_thread_while_a_fast_watcher_is_open() {
    let lp = EventLoop::new().unwrap();
    let fast: Arc<dyn ChildWatcher> = Arc::new(FastChildWatcher::new().unwrap());
    fast.attach_loop(Some(&lp));
    let pidfd: Arc<dyn ChildWatcher> = Arc::new(PidfdChildWatcher::new());
    assert_eq!(spawner_threads(), 0);
    for watcher in [&fast, &pidfd] {
        for _ in 0..10 {
            let mut cmd = polyloop::process::Command::new("/nonexistent/polyloop-no-such-program");
            cmd.watcher(watcher.clone()).start_on_spawner(true);
            let err = run(&lp, cmd.status()).unwrap_err();
            let spawn = polyloop::process::SpawnError::from_io(&err).expect("a spawn error");
            assert_eq!(spawn.raw_os_error(), Some(libc::ENOENT), "{err}");
        }
    }
    // (A child that does start is the fast watcher's to reap, whoever watches it.)
    for _ in 0..10 {
        let mut cmd = polyloop::process::Command::new("sh");
        cmd.args(["-c", "exit 3"]).watcher(fast.clone()).start_on_spawner(true);
        assert_eq!(run(&lp, cmd.status()).unwrap().code(), Some(3));
    }
    assert_eq!(spawner_threads(), 0, "no spawner thread was started");

    fast.close();
    let mut cmd = polyloop::process::Command::new("sh");
    cmd.args(["-c", "exit 4"]).watcher(pidfd.clone()).start_on_spawner(true);
    assert_eq!(run(&lp, cmd.status()).unwrap().code(), Some(4));
    assert!(spawner_threads() > 0, "with no fast watcher open, a spawner thread is used");
    pidfd.close();
    fast.attach_loop(None);
    lp.close().unwrap();
}

const CASES: &[common::Case] = &[
    (
        "children_start_on_the_calling_thread_while_a_fast_watcher_is_open",
        children_start_on_the_calling_thread_while_a_fast_watcher_is_open,
    ),
    (
        "kept_statuses_are_dropped_when_the_last_fast_watcher_closes",
        kept_statuses_are_dropped_when_the_last_fast_watcher_closes,
    ),
    (
        "handler_watching_a_child_from_a_fast_reap_does_not_deadlock",
        handler_watching_a_child_from_a_fast_reap_does_not_deadlock,
    ),
];

fn main() {
    common::run_cases(CASES);
}
