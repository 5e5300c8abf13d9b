//! `close()` called by a task running on one of the loop's own workers neither
//! deadlocks (a worker cannot join itself) nor leaves a thread behind.
//!
//! Alone in its test binary, so that the thread count is this test's alone.

// The helpers are shared with the other plug-in crates and the root tests.
#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use std::sync::mpsc;

use polyloop::EventLoopPolicy;
use polyloop_threadpool::ThreadPoolPolicy;
use support::{WATCHDOG, eventually, start_process_threads, thread_count, watchdog};

#[test]
fn close_from_a_worker_thread() {
    watchdog("close_from_a_worker_thread", || {
        start_process_threads();
        let before = thread_count();
        let lp = ThreadPoolPolicy::with_workers(2).new_event_loop().unwrap();
        assert_eq!(thread_count(), before + 2);

        // The loop is not running: only the workers run this task.
        let (tx, rx) = mpsc::channel();
        let closer = lp.clone();
        lp.spawn(async move {
            let name = std::thread::current().name().map(String::from);
            let _ = tx.send((name, closer.close()));
        })
        .detach();

        let (ran_on, closed) = rx.recv_timeout(WATCHDOG).expect("close() from a worker hung");
        closed.expect("close() from a worker");
        let ran_on = ran_on.unwrap_or_default();
        assert!(ran_on.starts_with("threadpool-"), "the task ran on {ran_on:?}, not a worker");
        assert!(lp.is_closed());

        // The other worker was joined by close(); the closing one ends on its own once
        // its task returns.
        eventually("the closing worker to end", || thread_count() == before);
    });
}
