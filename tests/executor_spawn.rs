//! The executor runs every spawned task exactly once, from any number of threads.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use polyloop::{EventLoop, Executor, LocalExecutor};

/// Fails the test instead of hanging when `fut` does not finish in time.
fn watchdog<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(async {
        polyloop::timeout(Duration::from_secs(60), fut).await.expect("watchdog: test hung")
    })
}

#[test]
fn hundred_thousand_tasks_from_two_threads_all_complete() {
    let lp = EventLoop::new().unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let lp = lp.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                (0..50_000)
                    .map(|_| {
                        let done = done.clone();
                        lp.spawn(async move {
                            done.fetch_add(1, Ordering::Relaxed);
                        })
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let tasks: Vec<_> = spawners.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert_eq!(tasks.len(), 100_000);
    lp.run_until_complete(async {
        for t in tasks {
            t.await;
        }
    })
    .unwrap();
    assert_eq!(done.load(Ordering::Relaxed), 100_000);
    assert_eq!(lp.pending_tasks(), 0);
    lp.close().unwrap();
}

#[test]
fn executor_run_by_several_threads_runs_each_task_once() {
    let ex = Arc::new(Executor::new());
    let count = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..10_000)
        .map(|_| {
            let count = count.clone();
            ex.spawn(async move {
                polyloop::yield_now().await;
                count.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let stop_rx = Arc::new(std::sync::Mutex::new(stop_rx));
    let helpers: Vec<_> = (0..3)
        .map(|_| {
            let ex = ex.clone();
            let stop_rx = stop_rx.clone();
            std::thread::spawn(move || {
                futures_lite::future::block_on(ex.run(async {
                    // Help until told to stop.
                    loop {
                        if stop_rx.lock().unwrap().try_recv().is_ok() {
                            break;
                        }
                        async_io::Timer::after(Duration::from_millis(1)).await;
                    }
                }))
            })
        })
        .collect();
    futures_lite::future::block_on(ex.run(async {
        for t in tasks {
            t.await;
        }
    }));
    for _ in 0..3 {
        stop_tx.send(()).unwrap();
    }
    for h in helpers {
        h.join().unwrap();
    }
    assert_eq!(count.load(Ordering::Relaxed), 10_000);
    assert!(ex.is_empty());
}

#[test]
fn spawn_from_another_thread_wakes_an_idle_loop() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.clone();
    let out = lp
        .run_until_complete(async move {
            let handle = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                remote.spawn(async { 99 })
            });
            // The loop is idle (parked in the reactor) until the other thread spawns.
            let task = loop {
                if handle.is_finished() {
                    break handle.join().unwrap();
                }
                polyloop::sleep(Duration::from_millis(1)).await;
            };
            task.await
        })
        .unwrap();
    assert_eq!(out, 99);
}

#[test]
fn local_executor_runs_non_send_tasks() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let ex = LocalExecutor::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let log = log.clone();
            ex.spawn(async move { log.borrow_mut().push(i) })
        })
        .collect();
    futures_lite::future::block_on(ex.run(async {
        for t in tasks {
            t.await;
        }
    }));
    let mut seen = log.borrow().clone();
    seen.sort();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    assert!(ex.is_empty());
}

#[test]
fn executor_borrows_non_static_data() {
    let data = String::from("abc");
    let ex = Executor::new();
    let t = ex.spawn(async { data.len() });
    assert_eq!(futures_lite::future::block_on(ex.run(t)), 3);
}

#[test]
fn dropping_the_executor_drops_unfinished_tasks() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let ex = Executor::new();
    for _ in 0..10 {
        let flag = Flag(dropped.clone());
        ex.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await
        })
        .detach();
    }
    // Let them start and park.
    futures_lite::future::block_on(ex.run(polyloop::yield_now()));
    assert_eq!(ex.len(), 10);
    drop(ex);
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
}

/// Wakers woken from another thread while the executor is being dropped: every task's
/// future is dropped once, and nothing is touched after it is freed (the executor's
/// state lives as long as its tasks; a wake from outside keeps it alive while it
/// queues the task). Run under valgrind too (see docs/reliability.md).
#[test]
fn waking_from_another_thread_while_the_executor_drops() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    const TASKS: usize = 8;
    for _ in 0..200 {
        let dropped = Arc::new(AtomicUsize::new(0));
        let wakers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ex = Executor::new();
        for _ in 0..TASKS {
            let (flag, wakers) = (Flag(dropped.clone()), wakers.clone());
            ex.spawn(async move {
                let _flag = flag;
                std::future::poll_fn(|cx| {
                    wakers.lock().unwrap().push(cx.waker().clone());
                    std::task::Poll::<()>::Pending
                })
                .await
            })
            .detach();
        }
        // Let them start and park, leaving their wakers behind.
        futures_lite::future::block_on(ex.run(polyloop::yield_now()));
        assert_eq!(wakers.lock().unwrap().len(), TASKS);
        let waking = std::thread::spawn(move || {
            let wakers = std::mem::take(&mut *wakers.lock().unwrap());
            for w in wakers {
                w.wake();
            }
        });
        drop(ex);
        waking.join().unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), TASKS);
    }
}

#[test]
fn tasks_waking_each_other_in_a_long_chain_all_finish() {
    let n = 10_000;
    let out = watchdog(async move {
        let (first_tx, mut rx) = async_channel_pair();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (tx, next_rx) = async_channel_pair();
            let prev = rx;
            tasks.push(polyloop::spawn(async move {
                let v: u64 = prev.recv().await.unwrap();
                tx.send(v + 1).await.unwrap();
            }));
            rx = next_rx;
        }
        first_tx.send(0).await.unwrap();
        let v = rx.recv().await.unwrap();
        for t in tasks {
            t.await;
        }
        v
    });
    assert_eq!(out, n);
}

fn async_channel_pair() -> (async_channel::Sender<u64>, async_channel::Receiver<u64>) {
    async_channel::bounded(1)
}
