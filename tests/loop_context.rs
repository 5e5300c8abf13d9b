//! `LoopBuilder::runner_context` and `LoopBuilder::after_close`: every thread that polls
//! a loop's tasks runs inside the loop's context, and close() drops tasks inside it
//! before the after-close hooks run.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polyloop::EventLoop;

thread_local! {
    /// Set to the loop's tag while a thread is inside the test context.
    static TAG: Cell<u32> = const { Cell::new(0) };
    /// How deep the nested contexts are on this thread, outermost first.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

fn tagged(tag: u32) -> EventLoop {
    EventLoop::builder()
        .runner_context(move |run| {
            let prev = TAG.replace(tag);
            run();
            TAG.set(prev);
        })
        .build()
        .unwrap()
}

#[test]
fn run_until_complete_polls_inside_the_context() {
    let lp = tagged(7);
    // A future that is ready at once (the loop's short path) and one that is not.
    assert_eq!(lp.run_until_complete(async { TAG.get() }).unwrap(), 7);
    let out = lp
        .run_until_complete(async {
            polyloop::sleep(Duration::from_millis(1)).await;
            polyloop::spawn(async { TAG.get() }).await
        })
        .unwrap();
    assert_eq!(out, 7);
    assert_eq!(TAG.get(), 0, "the context is left when the run ends");
    lp.close().unwrap();
}

#[test]
fn run_forever_and_callbacks_run_inside_the_context() {
    let lp = tagged(3);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    lp.spawn(async move { s1.lock().unwrap().push(TAG.get()) }).detach();
    let stopper = lp.clone();
    lp.call_soon(move || {
        s2.lock().unwrap().push(TAG.get());
        stopper.stop();
    });
    lp.run_forever().unwrap();
    assert_eq!(*seen.lock().unwrap(), [3, 3]);
    assert_eq!(TAG.get(), 0);
    lp.close().unwrap();
}

#[test]
fn a_worker_thread_runs_inside_the_context() {
    let lp = tagged(11);
    let task = lp.spawn(async { (TAG.get(), std::thread::current().id()) });
    let worker = lp.clone();
    let (tag, on) = std::thread::spawn(move || worker.run_worker(task)).join().unwrap().unwrap();
    assert_eq!(tag, 11);
    assert_ne!(on, std::thread::current().id());
    lp.close().unwrap();
}

#[test]
fn close_drops_tasks_inside_the_context_then_runs_after_close_hooks() {
    struct SeesTag(Arc<Mutex<Vec<String>>>);
    impl Drop for SeesTag {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(format!("task dropped with tag {}", TAG.get()));
        }
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let (before, after) = (log.clone(), log.clone());
    let lp = EventLoop::builder()
        .runner_context(|run| {
            let prev = TAG.replace(5);
            run();
            TAG.set(prev);
        })
        .on_close(move |_| before.lock().unwrap().push("close hook".to_string()))
        .after_close(move |lp| {
            after.lock().unwrap().push(format!("after close, {} pending", lp.pending_tasks()));
        })
        .build()
        .unwrap();
    let guard = SeesTag(log.clone());
    lp.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    })
    .detach();
    lp.close().unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["close hook", "task dropped with tag 5", "after close, 0 pending"]
    );
    // Closing again runs nothing twice.
    lp.close().unwrap();
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[test]
fn contexts_nest_first_given_outermost() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let (o1, o2) = (order.clone(), order.clone());
    let lp = EventLoop::builder()
        .runner_context(move |run| {
            o1.lock().unwrap().push(("outer", DEPTH.get()));
            DEPTH.set(DEPTH.get() + 1);
            run();
            DEPTH.set(DEPTH.get() - 1);
        })
        .runner_context(move |run| {
            o2.lock().unwrap().push(("inner", DEPTH.get()));
            DEPTH.set(DEPTH.get() + 1);
            run();
            DEPTH.set(DEPTH.get() - 1);
        })
        .build()
        .unwrap();
    assert_eq!(lp.run_until_complete(async { DEPTH.get() }).unwrap(), 2);
    assert_eq!(*order.lock().unwrap(), [("outer", 0), ("inner", 1)]);
    assert_eq!(DEPTH.get(), 0);
}

#[test]
fn a_context_that_does_not_run_the_work_is_a_clear_panic() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let lp = EventLoop::builder()
        .runner_context(move |_run| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let id = lp.id();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.run_until_complete(async { 1 }).unwrap()
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains(&format!("runner context of event loop #{id} returned without calling")),
        "{msg}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The loop is not left marked running.
    assert!(!lp.is_running());
}

#[test]
fn a_loop_without_a_context_is_unchanged() {
    let lp = EventLoop::new().unwrap();
    assert_eq!(lp.run_until_complete(async { TAG.get() }).unwrap(), 0);
    lp.close().unwrap();
}
