//! polyloop's sleeps end at or after their deadline, whoever polls them and whichever
//! thread drives the reactor; a dropped sleep never wakes anyone.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Generous: these bodies take milliseconds, but the machine may be very busy.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `body` on a thread of its own and fails the test if it has not returned
/// within the watchdog (a timer that never fires hangs instead of failing).
fn with_watchdog<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(out) => out,
        Err(_) => panic!("watchdog: no answer in {WATCHDOG:?}; a timer never fired"),
    }
}

/// A deadline `ms` milliseconds from now.
fn in_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

#[test]
fn hundreds_of_sleeps_spread_over_a_window_each_end_at_or_after_their_deadline() {
    let late = with_watchdog(|| {
        polyloop::block_on(async {
            let base = Instant::now();
            let tasks: Vec<_> = (0..500u64)
                .map(|i| {
                    // Spread over 40 ms, not in the order they are started.
                    let deadline = base + Duration::from_micros((i * 7919) % 40_000);
                    polyloop::spawn(async move {
                        polyloop::sleep_until(deadline).await;
                        (Instant::now(), deadline)
                    })
                })
                .collect();
            let mut early = 0;
            for t in tasks {
                let (woke, deadline) = t.await;
                if woke < deadline {
                    early += 1;
                }
            }
            early
        })
    });
    assert_eq!(late, 0, "sleeps ended before their deadline");
}

#[test]
fn a_sleep_started_after_a_longer_one_ends_first() {
    let order = with_watchdog(|| {
        polyloop::block_on(async {
            let order = Arc::new(Mutex::new(Vec::new()));
            let o = order.clone();
            // Far away: the queue's timer is set for it first.
            let long = polyloop::spawn(async move {
                polyloop::sleep(Duration::from_secs(3600)).await;
                o.lock().unwrap().push("long");
            });
            polyloop::sleep(Duration::from_millis(1)).await;
            // An earlier deadline added later must re-set the timer.
            polyloop::sleep(Duration::from_millis(5)).await;
            order.lock().unwrap().push("short");
            drop(long);
            order.lock().unwrap().clone()
        })
    });
    assert_eq!(order, ["short"]);
}

#[test]
fn a_sleep_works_without_any_loop_under_another_executor() {
    with_watchdog(|| {
        let deadline = in_ms(5);
        // No loop on this thread: the reactor's own thread fires the timer.
        futures_lite::future::block_on(polyloop::sleep_until(deadline));
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn a_sleep_first_polled_in_a_loop_ends_on_another_thread_after_the_loop_stopped() {
    with_watchdog(|| {
        let deadline = in_ms(20);
        let mut sleep = Box::pin(polyloop::sleep_until(deadline));
        // Polled (and queued) inside a loop run that then ends.
        polyloop::block_on(async {
            assert!(futures_lite::future::poll_once(sleep.as_mut()).await.is_none());
        });
        std::thread::spawn(move || futures_lite::future::block_on(sleep)).join().unwrap();
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn sleeps_on_a_thread_pool_loop_end_whichever_thread_polls_them() {
    use polyloop::EventLoopPolicy;
    let woke = with_watchdog(|| {
        let lp = polyloop_threadpool::ThreadPoolPolicy::with_workers(2).new_event_loop().unwrap();
        let out = lp
            .run_until_complete(async {
                let tasks: Vec<_> = (0..200u64)
                    .map(|i| {
                        let deadline = in_ms(i % 20);
                        polyloop::spawn(async move {
                            polyloop::sleep_until(deadline).await;
                            Instant::now() >= deadline
                        })
                    })
                    .collect();
                let mut woke = 0;
                for t in tasks {
                    woke += usize::from(t.await);
                }
                woke
            })
            .unwrap();
        lp.close().unwrap();
        out
    });
    assert_eq!(woke, 200);
}

/// Counts its wake-ups.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_dropped_sleep_wakes_no_one() {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let deadline = in_ms(5);
    {
        let mut sleep = pin!(polyloop::sleep_until(deadline));
        assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    }
    // A later sleep on the same queue ends: the dropped one's deadline passed long
    // before it, and it was not woken.
    with_watchdog(move || futures_lite::future::block_on(polyloop::sleep_until(in_ms(30))));
    assert!(Instant::now() > deadline);
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "a dropped sleep woke its waker");
}

#[test]
fn a_sleep_polled_again_with_a_new_waker_wakes_the_new_one() {
    let first = Arc::new(Counter(AtomicUsize::new(0)));
    let second = Arc::new(Counter(AtomicUsize::new(0)));
    let mut sleep = Box::pin(polyloop::sleep_until(in_ms(5)));
    let mut poll_with =
        |c: &Arc<Counter>| sleep.as_mut().poll(&mut Context::from_waker(&Waker::from(c.clone())));
    assert!(poll_with(&first).is_pending());
    assert!(poll_with(&second).is_pending());
    // No executor: wait for the wake-up on this thread.
    let (first2, second2) = (first.clone(), second.clone());
    with_watchdog(move || {
        while second2.0.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(first2.0.load(Ordering::SeqCst), 0, "the replaced waker was woken");
    });
    assert_eq!(poll_with(&second), Poll::Ready(()));
}
