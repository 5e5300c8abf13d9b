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
    use std::sync::Mutex;
    use std::task::{Poll, Waker};
    use std::time::{Duration, Instant};

    /// How long the busy task keeps its runner before it gives up: a watchdog, not a
    /// measure (the woken task normally runs within about a millisecond).
    const WATCHDOG: Duration = Duration::from_secs(30);

    let ex = Arc::new(polyloop::Executor::new());
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    // Three runner threads: one becomes busy, two stay idle.
    let runners: Vec<_> = (0..3)
        .map(|_| {
            let (ex, stop) = (ex.clone(), stop_rx.clone());
            std::thread::spawn(move || {
                futures_lite::future::block_on(ex.run(async move { stop.recv().await.ok() }))
            })
        })
        .collect();

    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let woken_ran = Arc::new(AtomicBool::new(false));
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
    let (w, ran) = (waker.clone(), woken_ran.clone());
    let busy = ex.spawn(async move {
        let waker = loop {
            if let Some(waker) = w.lock().unwrap().take() {
                break waker;
            }
            polyloop::yield_now().await;
        };
        waker.wake();
        let start = Instant::now();
        while !ran.load(Ordering::SeqCst) && start.elapsed() < WATCHDOG {
            std::hint::spin_loop();
        }
        ran.load(Ordering::SeqCst)
    });
    let ran_while_busy = futures_lite::future::block_on(busy);
    futures_lite::future::block_on(woken);
    stop_tx.close();
    for r in runners {
        r.join().unwrap();
    }
    assert!(
        ran_while_busy,
        "the woken task sat in the busy runner's LIFO slot for {WATCHDOG:?} while two \
         runners were idle"
    );
}
