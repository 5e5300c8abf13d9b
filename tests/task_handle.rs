//! `Task<T>`: awaiting, dropping (cancels), `detach`, `cancel`, and panics.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use polyloop::EventLoop;

#[test]
fn dropping_a_task_cancels_it() {
    let lp = EventLoop::new().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let task = lp.spawn(async move {
        polyloop::sleep(Duration::from_millis(5)).await;
        r.store(true, Ordering::SeqCst);
    });
    drop(task);
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(30))).unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(lp.pending_tasks(), 0);
}

#[test]
fn a_detached_task_runs_to_completion() {
    let lp = EventLoop::new().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    lp.spawn(async move {
        polyloop::sleep(Duration::from_millis(2)).await;
        r.store(true, Ordering::SeqCst);
    })
    .detach();
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(30))).unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn cancel_gives_the_output_only_if_finished() {
    let lp = EventLoop::new().unwrap();
    lp.run_until_complete(async {
        let pending = polyloop::spawn(std::future::pending::<u8>());
        assert_eq!(pending.cancel().await, None);
        let done = polyloop::spawn(async { 7u8 });
        while !done.is_finished() {
            polyloop::yield_now().await;
        }
        assert_eq!(done.cancel().await, Some(7));
    })
    .unwrap();
}

#[test]
fn a_panic_resumes_in_the_awaiter_and_the_loop_goes_on() {
    let lp = EventLoop::new().unwrap();
    let others = Arc::new(AtomicUsize::new(0));
    let o = others.clone();
    let result = lp
        .run_until_complete(async move {
            let bystanders: Vec<_> = (0..10)
                .map(|_| {
                    let o = o.clone();
                    polyloop::spawn(async move {
                        polyloop::yield_now().await;
                        o.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            let bad = polyloop::spawn(async { panic!("boom in a task") });
            let caught = futures_lite::FutureExt::catch_unwind(AssertUnwindSafe(bad)).await;
            for b in bystanders {
                b.await;
            }
            caught
        })
        .unwrap();
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in a task"));
    assert_eq!(others.load(Ordering::SeqCst), 10);
    // The loop is still usable.
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

#[test]
fn a_panic_in_a_detached_task_does_not_stop_the_loop() {
    let lp = EventLoop::new().unwrap();
    lp.spawn(async { panic!("detached boom") }).detach();
    let out = lp
        .run_until_complete(async {
            polyloop::yield_now().await;
            polyloop::spawn(async { "still running" }).await
        })
        .unwrap();
    assert_eq!(out, "still running");
}

#[test]
fn a_panic_in_the_main_future_propagates_and_leaves_the_loop_reusable() {
    let lp = EventLoop::new().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        lp.run_until_complete(async { panic!("main boom") }).unwrap();
    }));
    assert!(r.is_err());
    assert!(!lp.is_running());
    assert!(polyloop::get_running_loop().is_none());
    assert_eq!(lp.run_until_complete(async { 2 }).unwrap(), 2);
}
