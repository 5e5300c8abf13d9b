//! Stress: many tasks from many threads onto threadpool loops, long wake chains, and spawn storms while the
//! loop is stopped and closed. Nothing is lost, nothing runs twice, nothing hangs.
//!
//! Each test runs under a watchdog that fails it (instead of hanging) if it does not
//! finish; the limit is generous and is not a performance check.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use polyloop::EventLoop;

fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(Ok(out)) => out,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("watchdog: {what} did not finish"),
    }
}

/// A loop of the threadpool policy with `n` worker threads; the returned function
/// closes it, which joins the workers.
fn pool(n: usize) -> (EventLoop, impl FnOnce()) {
    let lp = polyloop_threadpool::new_pool_loop(n).unwrap();
    let closer = lp.clone();
    (lp, move || closer.close().unwrap())
}

#[test]
fn a_million_tasks_from_four_threads_each_complete_exactly_once() {
    watchdog("1M tasks", || {
        const PER_THREAD: usize = 250_000;
        let (lp, stop_pool) = pool(2);
        let hits: Arc<Vec<AtomicUsize>> =
            Arc::new((0..4 * PER_THREAD).map(|_| AtomicUsize::new(0)).collect());
        let spawners: Vec<_> = (0..4)
            .map(|s| {
                let lp = lp.clone();
                let hits = hits.clone();
                std::thread::spawn(move || {
                    let tasks: Vec<_> = (0..PER_THREAD)
                        .map(|i| {
                            let hits = hits.clone();
                            lp.spawn(async move {
                                hits[s * PER_THREAD + i].fetch_add(1, Ordering::Relaxed);
                            })
                        })
                        .collect();
                    tasks
                })
            })
            .collect();
        let tasks: Vec<_> = spawners.into_iter().flat_map(|h| h.join().unwrap()).collect();
        lp.run_until_complete(async {
            for t in tasks {
                t.await;
            }
        })
        .unwrap();
        stop_pool();
        assert!(lp.is_closed());
        let wrong: Vec<_> = hits
            .iter()
            .enumerate()
            .filter(|(_, h)| h.load(Ordering::Relaxed) != 1)
            .map(|(i, h)| (i, h.load(Ordering::Relaxed)))
            .take(5)
            .collect();
        assert!(wrong.is_empty(), "tasks that did not run exactly once: {wrong:?}");
    });
}

#[test]
fn tasks_spawning_tasks_across_a_pool_all_finish() {
    watchdog("fan-out", || {
        let (lp, stop_pool) = pool(2);
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        lp.run_until_complete(async move {
            let mut outer = Vec::new();
            for _ in 0..100 {
                let c = c.clone();
                outer.push(polyloop::spawn(async move {
                    let inner: Vec<_> = (0..1000)
                        .map(|_| {
                            let c = c.clone();
                            polyloop::spawn(async move {
                                polyloop::yield_now().await;
                                c.fetch_add(1, Ordering::Relaxed);
                            })
                        })
                        .collect();
                    for t in inner {
                        t.await;
                    }
                }));
            }
            for t in outer {
                t.await;
            }
        })
        .unwrap();
        stop_pool();
        assert!(lp.is_closed());
        assert_eq!(count.load(Ordering::Relaxed), 100_000);
    });
}

#[test]
fn a_long_ping_pong_chain_across_threads_finishes() {
    watchdog("ping-pong", || {
        let (lp, stop_pool) = pool(1);
        let rounds = lp
            .run_until_complete(async {
                let (to_b, from_a) = async_channel::bounded::<u32>(1);
                let (to_a, from_b) = async_channel::bounded::<u32>(1);
                let b = polyloop::spawn(async move {
                    while let Ok(v) = from_a.recv().await {
                        if to_a.send(v + 1).await.is_err() {
                            break;
                        }
                    }
                });
                let mut v = 0;
                for _ in 0..50_000 {
                    to_b.send(v).await.unwrap();
                    v = from_b.recv().await.unwrap();
                }
                drop(to_b);
                b.await;
                v
            })
            .unwrap();
        stop_pool();
        assert!(lp.is_closed());
        assert_eq!(rounds, 50_000);
    });
}

/// Counts how many times futures of one storm were dropped (finished or cancelled).
struct Drops(Arc<AtomicUsize>);

impl Drop for Drops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn spawn_storms_while_the_loop_is_stopped_and_closed_lose_nothing() {
    watchdog("spawn storm", || {
        for _round in 0..20 {
            let lp = EventLoop::new().unwrap();
            let spawned = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicUsize::new(0));
            let storms: Vec<_> = (0..4)
                .map(|_| {
                    let lp = lp.clone();
                    let spawned = spawned.clone();
                    let dropped = dropped.clone();
                    std::thread::spawn(move || {
                        loop {
                            let guard = Drops(dropped.clone());
                            match lp.try_spawn(async move {
                                let _guard = guard;
                                polyloop::yield_now().await;
                            }) {
                                Ok(task) => {
                                    spawned.fetch_add(1, Ordering::SeqCst);
                                    task.detach();
                                }
                                // Refused work is dropped right here, also counted.
                                Err(e) => {
                                    assert!(e.is_closed(), "{e}");
                                    break;
                                }
                            }
                        }
                    })
                })
                .collect();
            let stopper = lp.clone();
            lp.call_later(Duration::from_millis(5), move || stopper.stop());
            lp.run_forever().unwrap();
            lp.close().unwrap();
            for s in storms {
                s.join().unwrap();
            }
            drop(lp);
            // Each accepted future was dropped once (run to the end, or cancelled by
            // close); each refused one was dropped by try_spawn: spawned + 4 refusals.
            assert_eq!(dropped.load(Ordering::SeqCst), spawned.load(Ordering::SeqCst) + 4);
        }
    });
}

#[test]
fn stop_from_many_threads_while_running_ends_the_run_once() {
    watchdog("stop storm", || {
        let lp = EventLoop::new().unwrap();
        for _ in 0..50 {
            let finished = Arc::new(AtomicBool::new(false));
            let stoppers: Vec<_> = (0..4)
                .map(|_| {
                    let lp = lp.clone();
                    let finished = finished.clone();
                    std::thread::spawn(move || {
                        // A stopper that only arrives after the run ended has nothing to stop.
                        while !finished.load(Ordering::SeqCst) {
                            if lp.is_running() {
                                lp.stop();
                                break;
                            }
                            std::thread::yield_now();
                        }
                    })
                })
                .collect();
            lp.run_forever().unwrap();
            finished.store(true, Ordering::SeqCst);
            for s in stoppers {
                s.join().unwrap();
            }
        }
        lp.close().unwrap();
    });
}
