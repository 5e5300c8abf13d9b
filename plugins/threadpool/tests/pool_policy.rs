//! The threadpool policy: registration, the per-thread context, work spread over the
//! workers, the worker count, its bad values and its bound, and a worker that cannot start.

// The helpers are shared with the other plug-in crates and the root tests.
#[path = "../../../tests/plugin_support/mod.rs"]
mod support;
#[path = "../../../tests/plugin_support/thread_limit.rs"]
mod thread_limit;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use polyloop::EventLoopPolicy;
use polyloop_threadpool::{ThreadPoolPolicy, new_pool_loop};
use support::{is_child, run_child, run_child_with, start_process_threads, thread_count, watchdog};

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
             threads from 1 to 1024 (polyloop::plugin::MAX_WORKERS)"
        )
    );
    assert_eq!(thread_count(), before, "no thread is started for a refused loop");
}

// Issue 11, item 8: huge worker counts aborted the process (an allocation of 24 TB for
// 10^12 workers, "capacity overflow" for usize::MAX, thread exhaustion for 20,000); a
// thread that could not start was a panic. Each case runs in a child process, so that
// the old abort could not take the test binary down with it.

/// The error for a worker count above the bound, given in code.
fn too_many(n: usize) -> String {
    format!(
        "a pool of {n} worker threads was asked for; at most 1024 are allowed \
         (polyloop::plugin::MAX_WORKERS)"
    )
}

#[test]
fn huge_worker_counts_from_env_are_a_clear_error() {
    for value in ["1025", "20000", "1000000000000", "18446744073709551615", "1".repeat(30).as_str()]
    {
        run_child("child_huge_workers_env", &[("POLYLOOP_WORKERS", value)]);
    }
}

#[test]
#[ignore = "run by huge_worker_counts_from_env_are_a_clear_error in a child process"]
fn child_huge_workers_env() {
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
             threads from 1 to 1024 (polyloop::plugin::MAX_WORKERS)"
        )
    );
    assert_eq!(thread_count(), before, "no thread is started for a refused loop");
}

#[test]
fn huge_worker_counts_in_code_are_a_clear_error() {
    run_child("child_huge_workers_in_code", &[]);
}

#[test]
#[ignore = "run by huge_worker_counts_in_code_are_a_clear_error in a child process"]
fn child_huge_workers_in_code() {
    if !is_child() {
        return;
    }
    start_process_threads();
    let before = thread_count();
    for n in [1025, 20_000, 1 << 40, usize::MAX] {
        let err = ThreadPoolPolicy::with_workers(n).new_event_loop().unwrap_err();
        assert_eq!(err.to_string(), too_many(n), "with_workers({n})");
        let err = new_pool_loop(n).unwrap_err();
        assert_eq!(err.to_string(), too_many(n), "new_pool_loop({n})");
        let options = polyloop::plugin::PolicyOptions { workers: Some(n), debug: None };
        let err = polyloop::plugin::with_options(options, || {
            ThreadPoolPolicy::new().new_event_loop().unwrap_err()
        });
        assert_eq!(err.to_string(), too_many(n), "PolicyOptions {{ workers: Some({n}) }}");
    }
    assert_eq!(thread_count(), before, "no thread is started for a refused loop");
}

/// Root ignores `RLIMIT_NPROC`, and tests often run as root: then the child runs as a
/// user id that no process uses, so that its own threads are all the limit counts.
#[test]
fn a_worker_that_cannot_start_is_an_error_and_the_started_ones_are_joined() {
    use std::os::unix::process::CommandExt;
    let as_root = rustix::process::geteuid().is_root();
    let uid = thread_limit::unused_uid(47_101);
    run_child_with("child_worker_cannot_start", &[], |cmd| {
        if as_root {
            cmd.uid(uid).gid(uid);
        }
    });
}

#[test]
#[ignore = "run by a_worker_that_cannot_start_is_an_error_and_the_started_ones_are_joined"]
fn child_worker_cannot_start() {
    if !is_child() {
        return;
    }
    assert!(!rustix::process::geteuid().is_root(), "root is not held to RLIMIT_NPROC");
    start_process_threads();
    let before = thread_count();
    let policy = ThreadPoolPolicy::with_workers(8);
    for (what, make) in [
        ("ThreadPoolPolicy::new_event_loop", &(|| policy.new_event_loop()) as &dyn Fn() -> _),
        ("new_pool_loop", &|| new_pool_loop(8)),
    ] {
        let err = thread_limit::with_thread_limit(2, make).expect_err(what);
        let text = err.to_string();
        assert!(
            text.starts_with("could not start worker thread 2 of 8 for event loop #"),
            "{text}"
        );
        assert!(text.contains("ulimit -u"), "the message says what to change: {text}");
        support::eventually("the 2 workers that started are joined", || thread_count() == before);
    }
    // With the limit lifted, the same policy makes loops again.
    let lp = policy.new_event_loop().unwrap();
    assert_eq!(thread_count(), before + 8);
    lp.close().unwrap();
    support::eventually("close() joins the 8 workers", || thread_count() == before);
}

#[test]
fn by_default_the_workers_and_the_loop_thread_are_one_per_core() {
    if std::env::var_os("POLYLOOP_WORKERS").is_some() {
        return; // the environment chose a count
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let expected = cores.saturating_sub(1).max(1);
    assert_eq!(polyloop_threadpool::default_workers(), expected);
    assert_eq!(ThreadPoolPolicy::new().workers().unwrap(), expected);
}
