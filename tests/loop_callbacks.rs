//! `call_soon`, `call_later` and `call_at`: order, cancellation and panics.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polyloop::EventLoop;

fn log() -> Arc<Mutex<Vec<u32>>> {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Arc<Mutex<Vec<u32>>>, v: u32) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    move || log.lock().unwrap().push(v)
}

fn run_briefly(lp: &EventLoop, ms: u64) {
    let stopper = lp.clone();
    lp.call_later(Duration::from_millis(ms), move || stopper.stop());
    lp.run_forever().unwrap();
}

#[test]
fn call_soon_runs_in_fifo_order() {
    let lp = EventLoop::new().unwrap();
    let seen = log();
    for i in 0..1000 {
        lp.call_soon(push(&seen, i));
    }
    run_briefly(&lp, 5);
    assert_eq!(*seen.lock().unwrap(), (0..1000).collect::<Vec<_>>());
}

#[test]
fn call_later_runs_by_deadline_not_by_scheduling_order() {
    let lp = EventLoop::new().unwrap();
    let seen = log();
    for (ms, v) in [(30, 3), (10, 1), (20, 2), (0, 0)] {
        lp.call_later(Duration::from_millis(ms), push(&seen, v));
    }
    run_briefly(&lp, 50);
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3]);
}

#[test]
fn overdue_timers_still_run_by_deadline() {
    // All deadlines pass before the loop runs at all; they must still run by deadline.
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let base = Instant::now();
    lp.call_at(base + Duration::from_millis(3), push(&seen, 3));
    lp.call_at(base + Duration::from_millis(1), push(&seen, 1));
    lp.call_at(base + Duration::from_millis(2), push(&seen, 2));
    std::thread::sleep(Duration::from_millis(10));
    run_briefly(&lp, 1);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
}

#[test]
fn equal_deadlines_run_in_scheduling_order() {
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let when = lp.time() + Duration::from_millis(2);
    for i in 0..100 {
        lp.call_at(when, push(&seen, i));
    }
    run_briefly(&lp, 10);
    assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

#[test]
fn cancelled_handles_never_run() {
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let a = lp.call_soon(push(&seen, 1));
    lp.call_soon(push(&seen, 2));
    let b = lp.call_later(Duration::from_millis(1), push(&seen, 3));
    lp.call_later(Duration::from_millis(2), push(&seen, 4));
    a.cancel();
    b.cancel();
    assert!(a.is_cancelled() && b.is_cancelled());
    run_briefly(&lp, 10);
    assert_eq!(*seen.lock().unwrap(), [2, 4]);
}

#[test]
fn a_callback_can_cancel_a_later_one() {
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let later = lp.call_later(Duration::from_millis(5), push(&seen, 2));
    let first = push(&seen, 1);
    lp.call_soon(move || {
        first();
        later.cancel();
    });
    run_briefly(&lp, 15);
    assert_eq!(*seen.lock().unwrap(), [1]);
}

#[test]
fn callbacks_scheduled_from_another_thread_run() {
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let remote = lp.clone();
    let s = seen.clone();
    let t = std::thread::spawn(move || {
        while !remote.is_running() {
            std::thread::yield_now();
        }
        for i in 0..10 {
            remote.call_soon(push(&s, i));
        }
        let stopper = remote.clone();
        remote.call_soon(move || stopper.stop());
    });
    lp.run_forever().unwrap();
    t.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_panicking_callback_does_not_stop_the_loop() {
    let lp = EventLoop::new().unwrap();
    let seen = log();
    lp.call_soon(push(&seen, 1));
    lp.call_soon(|| panic!("callback boom"));
    lp.call_soon(push(&seen, 2));
    run_briefly(&lp, 5);
    assert_eq!(*seen.lock().unwrap(), [1, 2]);
}

#[test]
fn timer_handles_know_their_deadline() {
    let lp = EventLoop::new().unwrap();
    let before = lp.time();
    let h = lp.call_later(Duration::from_secs(10), || {});
    assert!(h.when() >= before + Duration::from_secs(10));
    assert!(!h.is_cancelled());
    h.cancel();
    // A huge delay does not overflow.
    let far = lp.call_later(Duration::MAX, || {});
    assert!(far.when() > lp.time());
    far.cancel();
}

#[test]
fn callbacks_run_on_the_loop_thread() {
    let lp = EventLoop::new().unwrap();
    let here = std::thread::current().id();
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    lp.call_soon(move || *s.lock().unwrap() = Some(std::thread::current().id()));
    run_briefly(&lp, 2);
    assert_eq!(*seen.lock().unwrap(), Some(here));
}
