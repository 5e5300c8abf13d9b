//! asyncio's order on a thread pool: between threads it is not defined, but callbacks
//! still run one at a time in the order they were scheduled, `stop()` still ends a run
//! (from a callback, a task on a worker, or before the run), and `run_until_complete`
//! still returns once its future is done, however the work is shared out.

#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use polyloop::EventLoopPolicy;
use polyloop_threadpool::ThreadPoolPolicy;
use support::watchdog;

const WORKERS: usize = 2;

/// Callbacks scheduled around spawns of yielding tasks (each callback opens a segment
/// of its own): they run exactly once each, one at a time, in scheduling order.
#[test]
fn callbacks_between_tasks_run_once_each_in_order_and_stop_ends_the_run() {
    watchdog("callbacks_between_tasks", || {
        let lp = ThreadPoolPolicy::with_workers(WORKERS).new_event_loop().unwrap();
        let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
        let running = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicUsize::new(0));
        for i in 0..200 {
            let (seen, running) = (seen.clone(), running.clone());
            lp.call_soon(move || {
                assert!(!running.swap(true, Ordering::SeqCst), "two callbacks ran at once");
                seen.lock().unwrap().push(i);
                running.store(false, Ordering::SeqCst);
            });
            let steps = steps.clone();
            lp.spawn(async move {
                for _ in 0..3 {
                    steps.fetch_add(1, Ordering::SeqCst);
                    polyloop::yield_now().await;
                }
            })
            .detach();
        }
        let stopper = lp.clone();
        lp.call_soon(move || stopper.stop());
        lp.run_forever().unwrap();
        assert_eq!(*seen.lock().unwrap(), (0..200).collect::<Vec<_>>());
        // The tasks finish in later runs.
        while lp.pending_tasks() > 0 {
            lp.run_until_complete(polyloop::yield_now()).unwrap();
        }
        assert_eq!(steps.load(Ordering::SeqCst), 600);
        lp.close().unwrap();
    });
}

/// `stop()` from a task that a worker may run ends `run_forever`; so does a `stop()`
/// before it.
#[test]
fn stop_from_any_thread_or_before_the_run_ends_run_forever() {
    watchdog("stop_from_any_thread", || {
        let lp = ThreadPoolPolicy::with_workers(WORKERS).new_event_loop().unwrap();
        for round in 0..50 {
            let stopper = lp.clone();
            lp.spawn(async move {
                polyloop::yield_now().await;
                stopper.stop();
            })
            .detach();
            lp.run_forever().unwrap();
            assert!(!lp.is_running(), "round {round}");
            lp.stop();
            lp.run_forever().unwrap();
        }
        lp.close().unwrap();
    });
}

/// `run_until_complete` returns once its future is done, whether what completes it
/// runs on a worker or on the loop's thread, and a future that is ready at once
/// returns too while callbacks and tasks are queued.
#[test]
fn run_until_complete_returns_whoever_completes_its_future() {
    watchdog("run_until_complete_returns", || {
        let lp = ThreadPoolPolicy::with_workers(WORKERS).new_event_loop().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        for round in 0..200 {
            let (tx, rx) = async_channel::bounded::<usize>(1);
            lp.spawn(async move {
                polyloop::yield_now().await;
                tx.send(round).await.unwrap();
            })
            .detach();
            let c = count.clone();
            lp.call_soon(move || {
                c.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(lp.run_until_complete(async { rx.recv().await.unwrap() }).unwrap(), round);
            assert_eq!(lp.run_until_complete(async { round }).unwrap(), round);
        }
        // Every callback ran by now, or runs in this last run.
        let stopper = lp.clone();
        lp.call_soon(move || stopper.stop());
        lp.run_forever().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 200);
        lp.close().unwrap();
    });
}
