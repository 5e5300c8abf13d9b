//! A panicking `on_close` hook does not stop `close()` half-way: the other hooks run,
//! the tasks are dropped, a pool's workers are joined, and the hook's panic is
//! resumed after all that. A second `close()` has nothing left to do.

mod common;
mod in_child;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use polyloop::EventLoop;

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn spawn_pending(lp: &EventLoop, dropped: &Arc<AtomicBool>) {
    let flag = SetOnDrop(dropped.clone());
    lp.spawn(async move {
        let _flag = flag;
        std::future::pending::<()>().await
    })
    .detach();
}

#[test]
fn a_panicking_close_hook_still_lets_close_drop_the_tasks_and_run_the_other_hooks() {
    let lp = EventLoop::new().unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    spawn_pending(&lp, &dropped);
    lp.run_until_complete(polyloop::yield_now()).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    lp.on_close(|_| panic!("boom in a close hook"));
    lp.on_close(move |_| {
        r.fetch_add(1, Ordering::SeqCst);
    });

    let panic = catch_unwind(AssertUnwindSafe(|| lp.close())).unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom in a close hook"));
    assert!(lp.is_closed());
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the hook after the panicking one ran");
    assert!(dropped.load(Ordering::SeqCst), "close() dropped the task before the panic resumed");
    assert_eq!(lp.pending_tasks(), 0);

    // Nothing is left for a second close.
    lp.close().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_close_hook_on_a_pool_loop_still_joins_the_workers() {
    let lp = polyloop_threadpool::new_pool_loop(2).unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    spawn_pending(&lp, &dropped);
    let worker_alive = Arc::new(AtomicBool::new(false));
    let alive = worker_alive.clone();
    // A task parked on a worker: its thread ends only when the pool is shut down.
    let on_worker = lp.spawn(async move {
        alive.store(true, Ordering::SeqCst);
    });
    lp.run_until_complete(on_worker).unwrap();
    assert!(worker_alive.load(Ordering::SeqCst));
    lp.on_close(|_| panic!("boom in a pool's close hook"));

    let panic = catch_unwind(AssertUnwindSafe(|| lp.close())).unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom in a pool's close hook"));
    assert!(dropped.load(Ordering::SeqCst));
    lp.close().unwrap();
    // The exit-time check of this binary (tests/common) fails it if a worker remains.
}

#[test]
fn a_close_hook_panicking_while_the_thread_unwinds_is_reported_not_resumed() {
    // Resuming a second panic while one unwinds would abort: run it in a child.
    let Some(out) = in_child::run(
        "a_close_hook_panicking_while_the_thread_unwinds_is_reported_not_resumed",
        || {
            let lp = EventLoop::new().unwrap();
            let dropped = Arc::new(AtomicBool::new(false));
            spawn_pending(&lp, &dropped);
            lp.on_close(|_| panic!("boom while unwinding"));
            let guard = CloseOnDrop(lp.clone());
            // The guard closes the loop while a panic unwinds through it.
            let panic = catch_unwind(AssertUnwindSafe(move || {
                let _guard = guard;
                panic!("the first panic");
            }))
            .unwrap_err();
            assert_eq!(panic.downcast_ref::<&str>(), Some(&"the first panic"));
            assert!(lp.is_closed());
            assert!(dropped.load(Ordering::SeqCst));
        },
    ) else {
        return;
    };
    assert!(
        out.stderr.lines().any(|l| l.contains("close hook") && l.contains("boom while unwinding")),
        "the hook's panic was not reported; stderr:\n{}",
        out.stderr
    );
}

/// Closes its loop when dropped, as a scope guard does.
struct CloseOnDrop(EventLoop);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let _ = self.0.close();
    }
}

#[test]
fn a_panicking_close_hook_still_lets_the_after_close_hooks_run() {
    let after_ran = Arc::new(AtomicBool::new(false));
    let a = after_ran.clone();
    let lp = EventLoop::builder()
        .on_close(|_| panic!("boom before"))
        .after_close(move |lp| a.store(lp.pending_tasks() == 0, Ordering::SeqCst))
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    spawn_pending(&lp, &dropped);
    let panic = catch_unwind(AssertUnwindSafe(|| lp.close())).unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom before"));
    assert!(after_ran.load(Ordering::SeqCst), "the after-close hook ran, after the tasks went");
    assert!(dropped.load(Ordering::SeqCst));
}
