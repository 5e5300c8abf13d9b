//! Two tasks that wake each other run back to back (the runner's LIFO slot), but not
//! forever: other tasks still get their turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn ping_pong_pair_does_not_starve_other_tasks() {
    polyloop::block_on(async {
        let done = Arc::new(AtomicBool::new(false));
        let (a_tx, a_rx) = async_channel::bounded::<()>(1);
        let (b_tx, b_rx) = async_channel::bounded::<()>(1);
        let d = done.clone();
        let ping = polyloop::spawn(async move {
            while !d.load(Ordering::SeqCst) {
                a_tx.send(()).await.unwrap();
                b_rx.recv().await.unwrap();
            }
            drop(a_tx);
        });
        let pong = polyloop::spawn(async move {
            while a_rx.recv().await.is_ok() {
                if b_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        let d = done.clone();
        // Spawned last, so it sits behind the pair in the queues.
        polyloop::spawn(async move { d.store(true, Ordering::SeqCst) }).await;
        ping.await;
        pong.await;
    });
}

/// A task woken into a runner's LIFO slot by a task that then keeps that runner busy
/// (without awaiting) is taken by an idle runner: it runs while the busy task is still
/// busy, instead of waiting for it to return (issue 11, item 11).
#[test]
fn a_task_in_a_busy_runners_lifo_slot_is_taken_by_an_idle_runner() {
    busy_runner_with_a_task_in_its_slot(3, false, 0);
}

/// The same when the busy runner was the only one for a while before (so that it used
/// plain loads and stores on its slot), and the runners that take the task join only
/// after it went into the slot.
#[test]
fn a_task_in_the_slot_of_a_runner_that_ran_alone_is_taken_by_runners_that_join_later() {
    busy_runner_with_a_task_in_its_slot(1, true, 2);
}

/// Runs `before` runner threads (with a ping-pong of two tasks on them first, if
/// `warm_up`), wakes a task into the slot of a runner whose task then spins until the
/// woken task has run, starts `after` more runner threads, and checks that the woken
/// task ran while the other was still spinning.
fn busy_runner_with_a_task_in_its_slot(before: usize, warm_up: bool, after: usize) {
    use std::sync::Mutex;
    use std::task::{Poll, Waker};
    use std::time::{Duration, Instant};

    /// How long the busy task keeps its runner before it gives up: a watchdog, not a
    /// measure (the woken task normally runs within about a millisecond).
    const WATCHDOG: Duration = Duration::from_secs(30);

    let ex = Arc::new(polyloop::Executor::new());
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let start_runner = || start_runner(&ex, &stop_rx);
    let mut runners: Vec<_> = (0..before).map(|_| start_runner()).collect();

    if warm_up {
        // Enough round trips for a runner on its own to use plain operations.
        let (a_tx, a_rx) = async_channel::bounded::<u32>(1);
        let (b_tx, b_rx) = async_channel::bounded::<u32>(1);
        let pong = ex.spawn(async move {
            while let Ok(n) = a_rx.recv().await {
                b_tx.send(n).await.unwrap();
            }
        });
        let ping = ex.spawn(async move {
            for n in 0..5_000 {
                a_tx.send(n).await.unwrap();
                assert_eq!(b_rx.recv().await.unwrap(), n);
            }
        });
        futures_lite::future::block_on(ping);
        futures_lite::future::block_on(pong);
    }

    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let woken_ran = Arc::new(AtomicBool::new(false));
    let woke = Arc::new(AtomicBool::new(false));
    // The task to be woken: it parks once, leaving its waker behind.
    let (w, ran) = (waker.clone(), woken_ran.clone());
    let woken = ex.spawn(async move {
        let mut parked = false;
        std::future::poll_fn(|cx| {
            if parked {
                ran.store(true, Ordering::SeqCst);
                Poll::Ready(())
            } else {
                parked = true;
                *w.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    });
    // The busy task: once the other one is parked, it wakes it from its own runner (so
    // into that runner's LIFO slot), then spins without awaiting until it has run.
    let (w, ran, w_flag) = (waker.clone(), woken_ran.clone(), woke.clone());
    let busy = ex.spawn(async move {
        let waker = loop {
            if let Some(waker) = w.lock().unwrap().take() {
                break waker;
            }
            polyloop::yield_now().await;
        };
        waker.wake();
        w_flag.store(true, Ordering::SeqCst);
        let start = Instant::now();
        while !ran.load(Ordering::SeqCst) && start.elapsed() < WATCHDOG {
            std::hint::spin_loop();
        }
        ran.load(Ordering::SeqCst)
    });
    if after > 0 {
        let start = Instant::now();
        while !woke.load(Ordering::SeqCst) && start.elapsed() < WATCHDOG {
            std::thread::sleep(Duration::from_millis(1));
        }
        runners.extend((0..after).map(|_| start_runner()));
    }
    let ran_while_busy = futures_lite::future::block_on(busy);
    futures_lite::future::block_on(woken);
    stop_tx.close();
    for r in runners {
        r.join().unwrap();
    }
    assert!(
        ran_while_busy,
        "the woken task sat in the busy runner's LIFO slot for {WATCHDOG:?} while \
         {} runners were idle",
        before + after - 1
    );
}

/// Runners that join and leave over and over while two tasks wake each other (at times
/// spinning, so that the others take the woken one from the slot) lose no task and
/// run none twice: every message arrives once, in order. The runner that runs the pair
/// alone in between uses plain operations on its slot; each joiner makes it stop.
#[test]
fn runners_joining_and_leaving_around_a_ping_pong_lose_and_repeat_nothing() {
    use std::time::{Duration, Instant};

    const ROUNDS: u32 = 30_000;
    let ex = Arc::new(polyloop::Executor::new());
    let done = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let owner = start_runner(&ex, &stop_rx);
    let joiners: Vec<_> = (0..2)
        .map(|_| {
            let (ex, done) = (ex.clone(), done.clone());
            std::thread::spawn(move || {
                let mut joins = 0u32;
                while !done.load(Ordering::SeqCst) {
                    futures_lite::future::block_on(
                        ex.run(async_io::Timer::after(Duration::from_millis(2))),
                    );
                    joins += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                joins
            })
        })
        .collect();

    let (a_tx, a_rx) = async_channel::bounded::<u32>(1);
    let (b_tx, b_rx) = async_channel::bounded::<u32>(1);
    let pong = ex.spawn(async move {
        let mut expected = 0;
        while let Ok(n) = a_rx.recv().await {
            assert_eq!(n, expected, "a message was lost or repeated");
            expected += 1;
            b_tx.send(n).await.unwrap();
        }
        expected
    });
    let ping = ex.spawn(async move {
        for n in 0..ROUNDS {
            a_tx.send(n).await.unwrap();
            if n % 300 == 299 {
                // Keep this runner busy with the other task in its slot.
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(1) {
                    std::hint::spin_loop();
                }
            }
            assert_eq!(b_rx.recv().await.unwrap(), n, "an answer was lost or repeated");
        }
    });
    // A lost task would hang the pair: a watchdog fails the test instead.
    let watchdog = async {
        async_io::Timer::after(Duration::from_secs(60)).await;
        panic!("the ping-pong stalled for 60 s: a task was lost");
    };
    futures_lite::future::block_on(futures_lite::future::or(ping, watchdog));
    assert_eq!(futures_lite::future::block_on(pong), ROUNDS);
    done.store(true, Ordering::SeqCst);
    let joins: u32 = joiners.into_iter().map(|j| j.join().unwrap()).sum();
    stop_tx.close();
    owner.join().unwrap();
    assert!(joins > 0);
}

/// Tasks queued at the back of the line by a runner that was the only one (so that it
/// kept them to itself, without atomic operations) while its task then spins are run
/// by a runner that joins: they do not wait for the spinning task.
#[test]
fn tasks_queued_by_a_runner_on_its_own_are_run_by_a_runner_that_joins() {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    /// How long the busy task spins at most: a watchdog, not a measure.
    const WATCHDOG: Duration = Duration::from_secs(30);
    const TASKS: usize = 50;

    let ex = Arc::new(polyloop::Executor::new());
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let start_runner = || start_runner(&ex, &stop_rx);
    let mut runners = vec![start_runner()];
    let ran = Arc::new(AtomicUsize::new(0));
    let queued = Arc::new(AtomicBool::new(false));
    let (ex2, ran2, queued2) = (ex.clone(), ran.clone(), queued.clone());
    let busy = ex.spawn(async move {
        // Spawned by a task of the only runner: they go to the back of its line.
        for _ in 0..TASKS {
            let ran = ran2.clone();
            ex2.spawn(async move {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .detach();
        }
        queued2.store(true, Ordering::SeqCst);
        let start = Instant::now();
        while ran2.load(Ordering::SeqCst) < TASKS && start.elapsed() < WATCHDOG {
            std::hint::spin_loop();
        }
        ran2.load(Ordering::SeqCst)
    });
    let start = Instant::now();
    while !queued.load(Ordering::SeqCst) && start.elapsed() < WATCHDOG {
        std::thread::sleep(Duration::from_millis(1));
    }
    runners.push(start_runner());
    let ran_while_busy = futures_lite::future::block_on(busy);
    stop_tx.close();
    for r in runners {
        r.join().unwrap();
    }
    assert_eq!(
        ran_while_busy, TASKS,
        "the tasks queued behind a busy task waited {WATCHDOG:?} for it while a runner \
         that joined was idle"
    );
    assert_eq!(ran.load(Ordering::SeqCst), TASKS);
}

/// Starts a thread that runs `ex`'s tasks until `stop` is closed.
fn start_runner(
    ex: &Arc<polyloop::Executor<'static>>,
    stop: &async_channel::Receiver<()>,
) -> std::thread::JoinHandle<Option<()>> {
    let (ex, stop) = (ex.clone(), stop.clone());
    std::thread::spawn(move || {
        futures_lite::future::block_on(ex.run(async move { stop.recv().await.ok() }))
    })
}
