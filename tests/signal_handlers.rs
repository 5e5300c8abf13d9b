//! Unix signals: `EventLoop::add_signal_handler` / `remove_signal_handler` and
//! `polyloop::signal::signals`.
//!
//! One process per case (`harness = false`): signal dispositions are process-wide, and
//! the cases send signals to their own process.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::Duration;

use common::IsolatedCase;
use polyloop::EventLoop;
use polyloop::process::{ChildWatcher, Command, MultiLoopChildWatcher};
use polyloop::signal::{SIGCHLD, SIGINT, SIGKILL, SIGSTOP, SIGTERM, SIGUSR1, SIGUSR2};

const WATCHDOG: Duration = Duration::from_secs(60);

fn raise(sig: i32) {
    // SAFETY: sends a signal to this process.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

/// The handler function installed for `sig` (SIG_DFL is 0).
fn disposition(sig: i32) -> libc::sighandler_t {
    // SAFETY: reads the action of a valid signal into a zeroed struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Runs `lp` until it is stopped (by a handler), under a watchdog.
fn run_until_stopped(lp: &EventLoop, what: &str) {
    let out = lp.run_until_complete(polyloop::sleep(WATCHDOG));
    assert!(out.is_err_and(|e| e.is_stopped()), "watchdog: {what}");
}

/// Two loops on two threads each have a handler of SIGUSR1: one signal reaches both,
/// each on its own loop's thread.
fn delivery_to_two_loops_on_two_threads() {
    let ready = Arc::new(Barrier::new(3));
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (ready, tx) = (ready.clone(), tx.clone());
            std::thread::spawn(move || {
                let lp = EventLoop::new().unwrap();
                let stopper = lp.clone();
                let me = std::thread::current().id();
                lp.add_signal_handler(SIGUSR1, move || {
                    tx.send((i, std::thread::current().id() == me)).unwrap();
                    stopper.stop();
                })
                .unwrap();
                ready.wait();
                run_until_stopped(&lp, "the handler never ran");
                lp.close().unwrap();
            })
        })
        .collect();
    ready.wait();
    raise(SIGUSR1);
    let mut got: Vec<(i32, bool)> = (0..2).map(|_| rx.recv_timeout(WATCHDOG).unwrap()).collect();
    got.sort();
    assert_eq!(got, [(0, true), (1, true)], "each loop ran its handler on its own thread");
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(disposition(SIGUSR1), libc::SIG_DFL, "closing both loops restored the default");
}

/// remove_signal_handler puts back what was there: the default action, or a handler
/// installed before, which is called meanwhile too; so does closing the loop.
fn remove_restores_the_disposition() {
    let lp = EventLoop::new().unwrap();
    assert_eq!(disposition(SIGUSR2), libc::SIG_DFL);
    assert!(!lp.remove_signal_handler(SIGUSR2).unwrap(), "nothing to remove yet");
    lp.add_signal_handler(SIGUSR2, || {}).unwrap();
    assert_ne!(disposition(SIGUSR2), libc::SIG_DFL);
    assert!(lp.remove_signal_handler(SIGUSR2).unwrap());
    assert_eq!(disposition(SIGUSR2), libc::SIG_DFL);
    assert!(!lp.remove_signal_handler(SIGUSR2).unwrap());

    // A handler installed before ours: chained to while ours is in, back after.
    static EARLIER: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn earlier(_: libc::c_int) {
        EARLIER.fetch_add(1, Ordering::SeqCst);
    }
    let earlier_fn = earlier as *const () as libc::sighandler_t;
    // SAFETY: installs a handler that only touches an atomic.
    unsafe { libc::signal(SIGUSR1, earlier_fn) };
    let stopper = lp.clone();
    let ours = Arc::new(AtomicUsize::new(0));
    let o = ours.clone();
    lp.add_signal_handler(SIGUSR1, move || {
        o.fetch_add(1, Ordering::SeqCst);
        stopper.stop();
    })
    .unwrap();
    raise(SIGUSR1);
    run_until_stopped(&lp, "our handler never ran");
    assert_eq!(ours.load(Ordering::SeqCst), 1);
    assert_eq!(EARLIER.load(Ordering::SeqCst), 1, "the earlier handler was called too");
    assert!(lp.remove_signal_handler(SIGUSR1).unwrap());
    assert_eq!(disposition(SIGUSR1), earlier_fn, "the earlier handler is back");
    raise(SIGUSR1);
    assert_eq!(EARLIER.load(Ordering::SeqCst), 2);

    // Closing the loop removes its handlers.
    lp.add_signal_handler(SIGUSR2, || {}).unwrap();
    lp.add_signal_handler(SIGINT, || {}).unwrap();
    lp.close().unwrap();
    assert_eq!(disposition(SIGUSR2), libc::SIG_DFL);
    assert_eq!(disposition(SIGINT), libc::SIG_DFL);
    assert!(!lp.remove_signal_handler(SIGUSR2).unwrap());
    assert!(lp.add_signal_handler(SIGUSR2, || {}).unwrap_err().is_closed());
}

/// Run in a process of its own by the case below: SIGTERM's default action is back.
fn sigterm_after_remove() {
    let lp = EventLoop::new().unwrap();
    lp.add_signal_handler(SIGTERM, || {}).unwrap();
    raise(SIGTERM);
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(20))).unwrap();
    println!("survived the first SIGTERM");
    assert!(lp.remove_signal_handler(SIGTERM).unwrap());
    raise(SIGTERM);
    std::thread::sleep(WATCHDOG);
    println!("survived the second SIGTERM");
}

fn sigterm_terminates_again_after_remove() {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("POLYLOOP_TEST_CASE", "sigterm_after_remove")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("survived the first SIGTERM"), "{out:?}");
    assert!(!stdout.contains("survived the second"), "{out:?}");
    assert_eq!(out.status.signal(), Some(SIGTERM), "{out:?}");
}

/// Adding a handler for a signal that has one on this loop replaces it.
fn adding_again_replaces() {
    let lp = EventLoop::new().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    lp.add_signal_handler(SIGUSR1, move || s.lock().unwrap().push("first")).unwrap();
    let (s, stopper) = (seen.clone(), lp.clone());
    lp.add_signal_handler(SIGUSR1, move || {
        s.lock().unwrap().push("second");
        stopper.stop();
    })
    .unwrap();
    raise(SIGUSR1);
    run_until_stopped(&lp, "the handler never ran");
    assert_eq!(*seen.lock().unwrap(), ["second"]);
    assert!(lp.remove_signal_handler(SIGUSR1).unwrap());
    assert!(!lp.remove_signal_handler(SIGUSR1).unwrap(), "one handler per signal and loop");
    assert_eq!(disposition(SIGUSR1), libc::SIG_DFL);
    lp.close().unwrap();
}

/// Bad numbers get an error that says what is wrong, and change nothing.
fn bad_numbers_are_clear_errors() {
    let lp = EventLoop::new().unwrap();
    let cases = [
        (0, "cannot handle signal 0: it is not a signal number; signals are numbered 1 to 64"),
        (-2, "cannot handle signal -2: it is not a signal number; signals are numbered 1 to 64"),
        (65, "cannot handle signal 65: it is not a signal number; signals are numbered 1 to 64"),
        (
            SIGKILL,
            "cannot handle signal 9: SIGKILL cannot be caught, blocked or ignored; handle \
             SIGTERM or SIGINT instead",
        ),
        (
            SIGSTOP,
            "cannot handle signal 19: SIGSTOP cannot be caught, blocked or ignored; handle \
             SIGTERM or SIGINT instead",
        ),
        (
            libc::SIGSEGV,
            "cannot handle signal 11: it reports a fault of the thread that got it (SIGSEGV, \
             SIGBUS, SIGILL, SIGFPE), which a callback run later on a loop cannot handle",
        ),
    ];
    for (signum, message) in cases {
        let err = lp.add_signal_handler(signum, || {}).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(lp.remove_signal_handler(signum).unwrap_err().to_string(), message);
    }
    let err = polyloop::signal::signals([SIGINT, SIGKILL]).unwrap_err();
    assert!(err.to_string().contains("SIGKILL cannot be caught"), "{err}");
    assert_eq!(disposition(SIGINT), libc::SIG_DFL, "the good number was not taken either");
    lp.close().unwrap();
}

/// A stream gets the signals it asked for, alongside a loop's handler of one of them;
/// dropping it puts the default back.
fn a_stream_gets_its_signals_and_gives_them_back_when_dropped() {
    let lp = EventLoop::new().unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    lp.add_signal_handler(SIGUSR1, move || {
        h.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let got = lp
        .run_until_complete(async {
            polyloop::timeout(WATCHDOG, async {
                let mut stream = polyloop::signal::signals([SIGUSR1, SIGUSR2]).unwrap();
                raise(SIGUSR2);
                let first = stream.recv().await;
                raise(SIGUSR1);
                let second = stream.recv().await;
                [first, second]
            })
            .await
            .expect("watchdog: the stream got nothing")
        })
        .unwrap();
    assert_eq!(got, [SIGUSR2, SIGUSR1]);
    lp.run_until_complete(async {
        polyloop::timeout(WATCHDOG, async {
            while handled.load(Ordering::SeqCst) == 0 {
                polyloop::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("watchdog: the loop's handler never ran")
    })
    .unwrap();
    assert_eq!(disposition(SIGUSR2), libc::SIG_DFL, "the stream was dropped");
    assert_ne!(disposition(SIGUSR1), libc::SIG_DFL, "the loop's handler is still there");
    lp.close().unwrap();
    assert_eq!(disposition(SIGUSR1), libc::SIG_DFL);
}

/// A SIGCHLD handler sits over the multi-loop watcher's listener and passes every SIGCHLD
/// on: children are still reaped, with and after the handler.
fn a_sigchld_handler_leaves_the_child_watchers_alone() {
    let lp = EventLoop::new().unwrap();
    let watcher: Arc<dyn ChildWatcher> = Arc::new(MultiLoopChildWatcher::new().unwrap());
    watcher.attach_loop(Some(&lp));
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    lp.add_signal_handler(SIGCHLD, move || {
        s.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let run = |code: i32| {
        let w = watcher.clone();
        lp.run_until_complete(async move {
            polyloop::timeout(WATCHDOG, async move {
                let mut cmd = Command::new("sh");
                cmd.args(["-c", &format!("exit {code}")]).watcher(w);
                cmd.status().await.unwrap().code()
            })
            .await
            .expect("watchdog: the child was never reaped")
        })
        .unwrap()
    };
    assert_eq!(run(3), Some(3));
    lp.run_until_complete(async {
        polyloop::timeout(WATCHDOG, async {
            while seen.load(Ordering::SeqCst) == 0 {
                polyloop::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("watchdog: the SIGCHLD handler never ran")
    })
    .unwrap();
    assert!(lp.remove_signal_handler(SIGCHLD).unwrap());
    assert_eq!(run(4), Some(4), "the watcher works after the handler is gone");
    watcher.close();
    lp.close().unwrap();
}

fn main() {
    let cases: &[IsolatedCase] = &[
        ("delivery_to_two_loops_on_two_threads", delivery_to_two_loops_on_two_threads, &[]),
        ("remove_restores_the_disposition", remove_restores_the_disposition, &[]),
        ("sigterm_terminates_again_after_remove", sigterm_terminates_again_after_remove, &[]),
        ("adding_again_replaces", adding_again_replaces, &[]),
        ("bad_numbers_are_clear_errors", bad_numbers_are_clear_errors, &[]),
        (
            "a_stream_gets_its_signals_and_gives_them_back_when_dropped",
            a_stream_gets_its_signals_and_gives_them_back_when_dropped,
            &[],
        ),
        (
            "a_sigchld_handler_leaves_the_child_watchers_alone",
            a_sigchld_handler_leaves_the_child_watchers_alone,
            &[],
        ),
    ];
    if std::env::var("POLYLOOP_TEST_CASE").as_deref() == Ok("sigterm_after_remove") {
        return sigterm_after_remove();
    }
    common::run_cases_isolated(cases);
}
