//! The threadpool policy: registration, the per-thread context, work spread over the
//! workers, the worker count and its bad values.

// The helpers are shared with the other plug-in crates and the root tests.
#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use polyloop::EventLoopPolicy;
use polyloop_threadpool::{ThreadPoolPolicy, new_pool_loop};
use support::{is_child, run_child, start_process_threads, thread_count, watchdog};

#[test]
fn registered_by_name() {
    let plugin = polyloop::plugin::find("threadpool").unwrap();
    assert!(plugin.description.contains("worker threads"), "{}", plugin.description);
    assert_eq!((plugin.create)().name(), "threadpool");
}

#[test]
fn tasks_spread_over_every_worker_and_the_loop_thread() {
    watchdog("tasks_spread", || {
        const WORKERS: usize = 3;
        let lp = ThreadPoolPolicy::with_workers(WORKERS).new_event_loop().unwrap();
        let seen: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
        let loop_thread = thread::current().id();
        let s = seen.clone();
        lp.run_until_complete(async move {
            // Every task is spawned from this one thread and keeps yielding until all
            // WORKERS + 1 threads have polled one of them: the others only get them by
            // stealing (or from the shared queue).
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let s = s.clone();
                    polyloop::spawn(async move {
                        loop {
                            let n = {
                                let mut s = s.lock().unwrap();
                                s.insert(thread::current().id());
                                s.len()
                            };
                            if n == WORKERS + 1 {
                                break;
                            }
                            polyloop::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
        })
        .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), WORKERS + 1);
        assert!(seen.contains(&loop_thread), "the loop's own thread runs tasks too");
        lp.close().unwrap();
    });
}

#[test]
fn spawn_works_from_tasks_on_workers() {
    watchdog("spawn_from_workers", || {
        let lp = new_pool_loop(2).unwrap();
        let total = lp
            .run_until_complete(async {
                let outer: Vec<_> = (0..100u64)
                    .map(|i| {
                        polyloop::spawn(async move {
                            assert!(polyloop::get_running_loop().is_some());
                            polyloop::sleep(std::time::Duration::from_millis(1)).await;
                            polyloop::spawn(async move { i * 2 }).await
                        })
                    })
                    .collect();
                let mut total = 0;
                for t in outer {
                    total += t.await;
                }
                total
            })
            .unwrap();
        assert_eq!(total, 9900);
        lp.close().unwrap();
    });
}

#[test]
fn spawn_local_stays_on_the_loop_thread() {
    watchdog("spawn_local", || {
        let lp = new_pool_loop(2).unwrap();
        let here = thread::current().id();
        let ids = lp
            .run_until_complete(async {
                let tasks: Vec<_> = (0..20)
                    .map(|_| {
                        let rc = std::rc::Rc::new(());
                        polyloop::spawn_local(async move {
                            polyloop::yield_now().await;
                            drop(rc);
                            thread::current().id()
                        })
                    })
                    .collect();
                let mut ids = Vec::new();
                for t in tasks {
                    ids.push(t.await);
                }
                ids
            })
            .unwrap();
        assert!(ids.iter().all(|id| *id == here));
        lp.close().unwrap();
    });
}

#[test]
fn context_is_per_thread() {
    let policy = Arc::new(ThreadPoolPolicy::with_workers(1));
    // Tests run off the main thread: no loop is made on demand here.
    let err = policy.get_event_loop().unwrap_err();
    assert!(err.is_no_current_loop(), "{err}");
    assert!(err.to_string().contains("no current event loop in thread"), "{err}");

    let lp = policy.new_event_loop().unwrap();
    policy.set_event_loop(Some(lp.clone())).unwrap();
    assert_eq!(policy.get_event_loop().unwrap(), lp);
    let p = policy.clone();
    let elsewhere = thread::spawn(move || p.get_event_loop()).join().unwrap();
    assert!(elsewhere.unwrap_err().is_no_current_loop());
    policy.set_event_loop(None).unwrap();
    assert!(policy.get_event_loop().unwrap_err().is_no_current_loop());
    lp.close().unwrap();
}

#[test]
#[should_panic(expected = "a pool needs at least 1 worker thread")]
fn zero_workers_is_refused() {
    let _ = ThreadPoolPolicy::with_workers(0);
}

#[test]
fn workers_from_env() {
    run_child("child_workers_from_env", &[("POLYLOOP_WORKERS", "2")]);
}

#[test]
#[ignore = "run by workers_from_env in a child process"]
fn child_workers_from_env() {
    if !is_child() {
        return;
    }
    let policy = ThreadPoolPolicy::new();
    assert_eq!(policy.workers().unwrap(), 2);
    start_process_threads();
    let before = thread_count();
    let lp = policy.new_event_loop().unwrap();
    assert_eq!(thread_count(), before + 2);
    lp.close().unwrap();
    // A joined thread can linger in /proc/self/task for a moment after it exited.
    support::eventually("close() joins both workers", || thread_count() == before);
}

#[test]
fn bad_workers_env_is_a_clear_error() {
    for value in ["0", "abc", "-1", ""] {
        run_child("child_bad_workers_env", &[("POLYLOOP_WORKERS", value)]);
    }
}

#[test]
#[ignore = "run by bad_workers_env_is_a_clear_error in a child process"]
fn child_bad_workers_env() {
    if !is_child() {
        return;
    }
    let value = std::env::var("POLYLOOP_WORKERS").unwrap();
    start_process_threads();
    let before = thread_count();
    let err = ThreadPoolPolicy::new().new_event_loop().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "POLYLOOP_WORKERS={value:?} is not valid; expected a whole number of worker \
             threads, at least 1"
        )
    );
    assert_eq!(thread_count(), before, "no thread is started for a refused loop");
}
