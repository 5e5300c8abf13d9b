//! `polyloop::block_on` and the other free functions work with no set-up.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use polyloop::EventLoop;

#[test]
fn block_on_works_on_a_fresh_thread() {
    let out = std::thread::spawn(|| polyloop::block_on(async { 40 + 2 })).join().unwrap();
    assert_eq!(out, 42);
}

#[test]
fn block_on_runs_inside_a_loop_that_it_sets_for_the_thread() {
    std::thread::spawn(|| {
        assert!(polyloop::get_event_loop().is_err());
        let inside = polyloop::block_on(async { polyloop::get_running_loop().unwrap() });
        // The loop it made is now this thread's loop, and is reused.
        assert_eq!(polyloop::get_event_loop().unwrap(), inside);
        let again = polyloop::block_on(async { polyloop::get_running_loop().unwrap() });
        assert_eq!(again, inside);
    })
    .join()
    .unwrap();
}

#[test]
fn block_on_replaces_a_closed_loop() {
    std::thread::spawn(|| {
        let lp = polyloop::new_event_loop().unwrap();
        polyloop::set_event_loop(Some(lp.clone())).unwrap();
        lp.close().unwrap();
        let used = polyloop::block_on(async { polyloop::get_running_loop().unwrap() });
        assert_ne!(used, lp);
        assert!(!used.is_closed());
    })
    .join()
    .unwrap();
}

#[test]
fn block_on_inside_a_running_loop_panics_with_advice() {
    let lp = EventLoop::new().unwrap();
    let msg = lp
        .run_until_complete(async {
            let err = catch_unwind(AssertUnwindSafe(|| polyloop::block_on(async {}))).unwrap_err();
            err.downcast::<String>().map(|s| *s).unwrap()
        })
        .unwrap();
    assert!(msg.contains("called from inside running event loop"), "{msg}");
    assert!(msg.contains("Await the future instead"), "{msg}");
}

#[test]
fn spawn_outside_a_loop_panics_and_try_spawn_says_why() {
    let err = polyloop::try_spawn(async {}).unwrap_err();
    assert!(err.is_no_running_loop());
    assert!(err.to_string().contains("no event loop is running on this thread"));
    let panic = catch_unwind(|| drop(polyloop::spawn(async {}))).unwrap_err();
    let msg = panic.downcast::<String>().unwrap();
    assert!(msg.contains("polyloop::spawn: no event loop is running"), "{msg}");
}

#[test]
fn spawn_local_outside_a_loop_panics() {
    let panic = catch_unwind(|| drop(polyloop::spawn_local(async {}))).unwrap_err();
    let msg = panic.downcast::<String>().unwrap();
    assert!(msg.contains("polyloop::spawn_local"), "{msg}");
}

#[test]
fn spawn_local_runs_non_send_futures_on_the_loop_thread() {
    use std::rc::Rc;
    let here = std::thread::current().id();
    let (value, thread) = polyloop::block_on(async {
        let rc = Rc::new(5);
        polyloop::spawn_local(async move { (*rc, std::thread::current().id()) }).await
    });
    assert_eq!(value, 5);
    assert_eq!(thread, here);
}

#[test]
fn spawn_local_on_a_loop_that_is_not_running_here_panics() {
    let lp = EventLoop::new().unwrap();
    let panic = catch_unwind(AssertUnwindSafe(|| drop(lp.spawn_local(async {})))).unwrap_err();
    let msg = panic.downcast::<String>().unwrap();
    assert!(msg.contains("needs event loop"), "{msg}");
}

#[test]
fn sleep_and_timeout() {
    polyloop::block_on(async {
        let start = std::time::Instant::now();
        polyloop::sleep(Duration::from_millis(5)).await;
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert_eq!(polyloop::timeout(Duration::from_secs(10), async { 1 }).await, Ok(1));
        let err = polyloop::timeout(Duration::from_millis(2), std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(err.after(), Duration::from_millis(2));
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    });
}

#[test]
fn run_with_uses_a_fresh_loop_and_closes_it() {
    let (lp, debug) = polyloop::run_with(|| EventLoop::builder().debug(true).build(), async {
        let lp = polyloop::get_running_loop().unwrap();
        let debug = lp.get_debug();
        (lp, debug)
    })
    .unwrap();
    assert!(debug);
    assert!(lp.is_closed());
    let err = polyloop::run_with(|| Err(polyloop::Error::NoRunningLoop), async {}).unwrap_err();
    assert!(err.is_no_running_loop());
}
