//! `!Send` tasks (`spawn_local`) are only ever dropped on their home thread, whichever
//! thread closes their loop or lets go of it: never an abort. A thread that closes or
//! drops the loop elsewhere leaves them to the home thread, which drops them the next
//! time it runs a loop, or when it exits.
//!
//! Before, async-task's check ("local task dropped by a thread that didn't spawn it")
//! panicked under its abort guard, so each body runs in a child process (see
//! `in_child`): an abort fails its test.

mod common;
mod in_child;

use std::rc::Rc;
use std::sync::mpsc;
use std::thread::{self, ThreadId};
use std::time::Duration;

use polyloop::EventLoop;

/// A `!Send` value that tells which thread dropped it.
struct DropReport {
    _not_send: Rc<()>,
    tx: mpsc::Sender<ThreadId>,
}

impl DropReport {
    fn new(tx: &mpsc::Sender<ThreadId>) -> DropReport {
        DropReport { _not_send: Rc::new(()), tx: tx.clone() }
    }
}

impl Drop for DropReport {
    fn drop(&mut self) {
        let _ = self.tx.send(thread::current().id());
    }
}

/// Spawns a `!Send` task that never finishes on `lp`, which must be running here.
fn spawn_pending_local(lp: &EventLoop, tx: &mpsc::Sender<ThreadId>) {
    let report = DropReport::new(tx);
    lp.spawn_local(async move {
        let _report = report;
        std::future::pending::<()>().await
    })
    .detach();
}

/// Runs `lp` until two passes of its tasks are done.
fn run_a_little(lp: &EventLoop) {
    lp.run_until_complete(async {
        polyloop::yield_now().await;
        polyloop::yield_now().await;
    })
    .unwrap();
}

const WATCHDOG: Duration = Duration::from_secs(30);

#[test]
fn close_from_another_thread_leaves_local_tasks_to_their_home_thread_which_drops_them_on_exit() {
    let Some(_) = in_child::run(
        "close_from_another_thread_leaves_local_tasks_to_their_home_thread_which_drops_them_on_exit",
        || {
            let (tx, rx) = mpsc::channel();
            let (lp_tx, lp_rx) = mpsc::channel();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let home = thread::spawn(move || {
                let lp = EventLoop::new().unwrap();
                let l = lp.clone();
                lp.run_until_complete(async move {
                    spawn_pending_local(&l, &tx);
                    polyloop::yield_now().await;
                })
                .unwrap();
                lp_tx.send(lp).unwrap();
                // Wait until the loop was closed elsewhere, then exit.
                go_rx.recv().unwrap();
            });
            let lp = lp_rx.recv().unwrap();
            let closer = thread::spawn(move || lp.close().unwrap());
            closer.join().unwrap();
            // Not dropped by the closing thread: the home thread still lives.
            assert!(rx.try_recv().is_err(), "a local task was dropped off its home thread");
            let home_id = home.thread().id();
            go_tx.send(()).unwrap();
            home.join().unwrap();
            assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), home_id, "dropped by its home thread");
        },
    ) else {
        return;
    };
}

#[test]
fn close_from_another_thread_leaves_local_tasks_to_the_home_thread_s_next_run() {
    let Some(_) = in_child::run(
        "close_from_another_thread_leaves_local_tasks_to_the_home_thread_s_next_run",
        || {
            let (tx, rx) = mpsc::channel();
            let lp = EventLoop::new().unwrap();
            let l = lp.clone();
            lp.run_until_complete(async move {
                spawn_pending_local(&l, &tx);
                polyloop::yield_now().await;
            })
            .unwrap();
            let closing = lp.clone();
            thread::spawn(move || closing.close().unwrap()).join().unwrap();
            assert!(lp.is_closed());
            assert!(rx.try_recv().is_err(), "a local task was dropped off its home thread");
            // This thread runs a loop again: it drops what was left to it.
            run_a_little(&EventLoop::new().unwrap());
            assert_eq!(rx.try_recv().unwrap(), thread::current().id());
        },
    ) else {
        return;
    };
}

#[test]
fn the_last_handle_dropped_on_another_thread_leaves_local_tasks_to_their_home_thread() {
    let Some(_) = in_child::run(
        "the_last_handle_dropped_on_another_thread_leaves_local_tasks_to_their_home_thread",
        || {
            let (tx, rx) = mpsc::channel();
            let lp = EventLoop::new().unwrap();
            let l = lp.clone();
            lp.run_until_complete(async move {
                spawn_pending_local(&l, &tx);
                polyloop::yield_now().await;
            })
            .unwrap();
            // The only handle goes to another thread, which lets go of it.
            thread::spawn(move || drop(lp)).join().unwrap();
            assert!(rx.try_recv().is_err(), "a local task was dropped off its home thread");
            run_a_little(&EventLoop::new().unwrap());
            assert_eq!(rx.try_recv().unwrap(), thread::current().id());
        },
    ) else {
        return;
    };
}

#[test]
fn close_after_a_pool_worker_became_a_home_drops_its_local_tasks_on_that_worker() {
    let Some(_) = in_child::run(
        "close_after_a_pool_worker_became_a_home_drops_its_local_tasks_on_that_worker",
        || {
            let (tx, rx) = mpsc::channel();
            let (worker_tx, worker_rx) = mpsc::channel();
            let lp = polyloop_threadpool::new_pool_loop(2).unwrap();
            // The loop is not running here: a worker runs this task, and becomes the
            // home of the local one it spawns.
            lp.spawn(async move {
                let here = polyloop::get_running_loop().unwrap();
                spawn_pending_local(&here, &tx);
                worker_tx.send(thread::current().id()).unwrap();
            })
            .detach();
            let worker = worker_rx.recv_timeout(WATCHDOG).unwrap();
            assert_ne!(worker, thread::current().id());
            lp.close().unwrap();
            assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), worker, "dropped on its home worker");
        },
    ) else {
        return;
    };
}

#[test]
fn a_home_thread_that_exits_drops_its_local_tasks_and_the_loop_goes_on() {
    let Some(_) = in_child::run(
        "a_home_thread_that_exits_drops_its_local_tasks_and_the_loop_goes_on",
        || {
            let (tx, rx) = mpsc::channel();
            let lp = EventLoop::new().unwrap();
            let l = lp.clone();
            let home = thread::spawn(move || {
                let inner = l.clone();
                l.run_until_complete(async move {
                    spawn_pending_local(&inner, &tx);
                    polyloop::yield_now().await;
                })
                .unwrap();
            });
            let home_id = home.thread().id();
            home.join().unwrap();
            // Nothing could ever poll it again: its home thread dropped it on the way out.
            assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), home_id);
            assert_eq!(lp.pending_tasks(), 0);
            // The loop goes on here with Send tasks.
            let out = lp.run_until_complete(async { polyloop::spawn(async { 3 }).await }).unwrap();
            assert_eq!(out, 3);
            lp.close().unwrap();
        },
    ) else {
        return;
    };
}
