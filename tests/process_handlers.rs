//! Handlers given to `add_child_handler` may do anything a program does: add another
//! handler, block on async work, panic. None of it may stall the watcher or the
//! reactor.
//!
//! Its own process (`harness = false`): the SIGCHLD action is process-wide and the
//! fast watcher reaps with `waitpid(-1)`. Each case fails through a watchdog, never
//! by hanging.

// The children are reaped by the watchers under test, never by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::process::Command;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use polyloop::process::{ChildWatcher, MultiLoopChildWatcher, PidfdChildWatcher};

const WATCHDOG: Duration = Duration::from_secs(30);

fn sh(script: &str) -> std::process::Child {
    Command::new("sh").args(["-c", script]).spawn().unwrap()
}

/// A supervisor restarting a child from the handler of the one that ended: the
/// rescan that called the handler must not hold its lock.
fn multiloop_handler_adding_a_handler_does_not_deadlock() {
    let w = Arc::new(MultiLoopChildWatcher::new().unwrap());
    let (tx, rx) = mpsc::channel();
    let first = sh("exit 1");
    let w2 = w.clone();
    w.add_child_handler(
        first.id(),
        Box::new(move |_, rc| {
            assert_eq!(rc, 1);
            let second = sh("exit 2");
            w2.add_child_handler(second.id(), Box::new(move |_, rc| tx.send(rc).unwrap()));
        }),
    );
    assert_eq!(rx.recv_timeout(WATCHDOG), Ok(2));
    w.close();
}

/// Without a loop, a handler used to run inside the reactor's wake-up, with the
/// reactor's lock held: blocking on a timer there stalled the reactor for good.
fn handler_without_a_loop_may_block_on_async_work() {
    for w in [
        Arc::new(PidfdChildWatcher::new()) as Arc<dyn ChildWatcher>,
        Arc::new(MultiLoopChildWatcher::new().unwrap()),
    ] {
        let (tx, rx) = mpsc::channel();
        let child = sh("exit 3");
        w.add_child_handler(
            child.id(),
            Box::new(move |_, rc| {
                polyloop::block_on(polyloop::sleep(Duration::from_millis(10)));
                tx.send(rc).unwrap();
            }),
        );
        assert_eq!(rx.recv_timeout(WATCHDOG), Ok(3), "{} watcher", w.name());
        w.close();
    }
}

/// A handler that panicked used to unwind through the SIGCHLD reader, which was then
/// never re-armed: no later child was reported, and all of them stayed zombies.
fn a_panicking_handler_does_not_stop_later_reports() {
    for w in [
        Arc::new(MultiLoopChildWatcher::new().unwrap()) as Arc<dyn ChildWatcher>,
        Arc::new(PidfdChildWatcher::new()),
    ] {
        let (tx, rx) = mpsc::channel();
        let first = sh("exit 1");
        let tx1 = tx.clone();
        w.add_child_handler(
            first.id(),
            Box::new(move |_, _| {
                tx1.send(0).unwrap();
                panic!("a handler with a bug");
            }),
        );
        assert_eq!(rx.recv_timeout(WATCHDOG), Ok(0), "{} watcher", w.name());
        let second = sh("exit 5");
        let status = polyloop::block_on(polyloop::timeout(WATCHDOG, w.watch(second.id())))
            .expect("the second child is reported")
            .unwrap();
        assert_eq!(status.code(), Some(5));
        let third = sh("exit 6");
        w.add_child_handler(third.id(), Box::new(move |_, rc| tx.send(rc).unwrap()));
        assert_eq!(rx.recv_timeout(WATCHDOG), Ok(6), "{} watcher", w.name());
        w.close();
    }
}

const CASES: &[common::Case] = &[
    (
        "multiloop_handler_adding_a_handler_does_not_deadlock",
        multiloop_handler_adding_a_handler_does_not_deadlock,
    ),
    (
        "handler_without_a_loop_may_block_on_async_work",
        handler_without_a_loop_may_block_on_async_work,
    ),
    (
        "a_panicking_handler_does_not_stop_later_reports",
        a_panicking_handler_does_not_stop_later_reports,
    ),
];

fn main() {
    common::run_cases(CASES);
}
