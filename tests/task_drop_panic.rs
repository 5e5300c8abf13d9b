//! A panic while a task's future (or its unclaimed output) is dropped is caught where
//! the drop happens and reported; the process and the loop go on.
//!
//! async-task drops futures under a guard that aborts the process on a panic, so each
//! body runs in a child process (see `in_child`): an abort fails its test.

mod common;
mod in_child;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use polyloop::{EventLoop, Executor};

/// Panics when dropped (unless the thread is already unwinding).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// A future that holds a `PanicOnDrop` and never finishes; it says when it was polled.
async fn pending_holding(guard: PanicOnDrop, polled: Arc<AtomicBool>) {
    let _guard = guard;
    polled.store(true, Ordering::SeqCst);
    std::future::pending::<()>().await
}

/// The loop still runs tasks.
fn assert_goes_on(lp: &EventLoop) {
    let out = lp.run_until_complete(async { polyloop::spawn(async { 40 + 2 }).await }).unwrap();
    assert_eq!(out, 42);
}

/// The child reported the panic with its message (and did not abort: `in_child` checked).
fn assert_reported(out: &in_child::Outcome, message: &str) {
    let reports: Vec<&str> =
        out.stderr.lines().filter(|l| l.contains("panicked while being dropped")).collect();
    assert!(
        reports.iter().any(|l| l.contains(message)),
        "no report of the panic {message:?}; stderr:\n{}",
        out.stderr
    );
}

#[test]
fn dropping_a_task_whose_future_panics_on_drop_is_reported_and_the_loop_goes_on() {
    let Some(out) = in_child::run(
        "dropping_a_task_whose_future_panics_on_drop_is_reported_and_the_loop_goes_on",
        || {
            let lp = EventLoop::new().unwrap();
            let polled = Arc::new(AtomicBool::new(false));
            let task = lp.spawn(pending_holding(PanicOnDrop("boom: dropped task"), polled.clone()));
            lp.run_until_complete(polyloop::yield_now()).unwrap();
            assert!(polled.load(Ordering::SeqCst));
            drop(task);
            assert_goes_on(&lp);
            assert_eq!(lp.pending_tasks(), 0);
            lp.close().unwrap();
        },
    ) else {
        return;
    };
    assert_reported(&out, "boom: dropped task");
}

#[test]
fn cancelling_a_task_whose_future_panics_on_drop_is_reported_and_the_loop_goes_on() {
    let Some(out) = in_child::run(
        "cancelling_a_task_whose_future_panics_on_drop_is_reported_and_the_loop_goes_on",
        || {
            let lp = EventLoop::new().unwrap();
            let polled = Arc::new(AtomicBool::new(false));
            let task =
                lp.spawn(pending_holding(PanicOnDrop("boom: cancelled task"), polled.clone()));
            let out = lp
                .run_until_complete(async move {
                    polyloop::yield_now().await;
                    task.cancel().await
                })
                .unwrap();
            assert_eq!(out, None);
            assert!(polled.load(Ordering::SeqCst));
            assert_goes_on(&lp);
            lp.close().unwrap();
        },
    ) else {
        return;
    };
    assert_reported(&out, "boom: cancelled task");
}

#[test]
fn closing_a_loop_whose_task_panics_on_drop_is_reported_and_close_finishes() {
    let Some(out) = in_child::run(
        "closing_a_loop_whose_task_panics_on_drop_is_reported_and_close_finishes",
        || {
            let lp = EventLoop::new().unwrap();
            let polled = Arc::new(AtomicBool::new(false));
            lp.spawn(pending_holding(PanicOnDrop("boom: closed loop"), polled.clone())).detach();
            // One that was never polled, too.
            lp.spawn(pending_holding(PanicOnDrop("boom: never polled"), Arc::default())).detach();
            lp.run_until_complete(polyloop::yield_now()).unwrap();
            assert!(polled.load(Ordering::SeqCst));
            lp.close().unwrap();
            assert!(lp.is_closed());
            assert_eq!(lp.pending_tasks(), 0);
            // The process goes on with other loops.
            assert_goes_on(&EventLoop::new().unwrap());
        },
    ) else {
        return;
    };
    assert_reported(&out, "boom: closed loop");
    assert_reported(&out, "boom: never polled");
}

#[test]
fn a_detached_task_whose_output_panics_on_drop_is_reported_and_the_loop_goes_on() {
    let Some(out) = in_child::run(
        "a_detached_task_whose_output_panics_on_drop_is_reported_and_the_loop_goes_on",
        || {
            let lp = EventLoop::new().unwrap();
            // Nobody claims the output: the executor drops it once the task completes.
            lp.spawn(async { PanicOnDrop("boom: unclaimed output") }).detach();
            lp.run_until_complete(async {
                for _ in 0..3 {
                    polyloop::yield_now().await;
                }
            })
            .unwrap();
            assert_eq!(lp.pending_tasks(), 0);
            assert_goes_on(&lp);
            lp.close().unwrap();
        },
    ) else {
        return;
    };
    assert_reported(&out, "boom: unclaimed output");
}

#[test]
fn on_a_threadpool_loop_panics_on_drop_are_reported_and_the_pool_goes_on() {
    let Some(out) = in_child::run(
        "on_a_threadpool_loop_panics_on_drop_are_reported_and_the_pool_goes_on",
        || {
            let lp = polyloop_threadpool::new_pool_loop(2).unwrap();
            // Polled by a worker, then dropped from this thread while the loop is idle:
            // a worker drops its future.
            let polled = Arc::new(AtomicBool::new(false));
            let task = lp.spawn(pending_holding(PanicOnDrop("boom: pool task"), polled.clone()));
            wait_for(&polled);
            drop(task);
            // An output nobody claims, dropped by a worker.
            lp.spawn(async { PanicOnDrop("boom: pool output") }).detach();
            assert_goes_on(&lp);
            // And one left for close().
            let polled = Arc::new(AtomicBool::new(false));
            lp.spawn(pending_holding(PanicOnDrop("boom: pool close"), polled.clone())).detach();
            wait_for(&polled);
            lp.close().unwrap();
        },
    ) else {
        return;
    };
    assert_reported(&out, "boom: pool task");
    assert_reported(&out, "boom: pool output");
    assert_reported(&out, "boom: pool close");
}

#[test]
fn a_cancelled_task_woken_and_let_go_by_a_foreign_thread_is_reported() {
    let Some(out) =
        in_child::run("a_cancelled_task_woken_and_let_go_by_a_foreign_thread_is_reported", || {
            let lp = EventLoop::new().unwrap();
            let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
            let s = slot.clone();
            let guard = PanicOnDrop("boom: foreign waker");
            let task = lp.spawn(std::future::poll_fn(move |cx| {
                let _keep = &guard;
                *s.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            }));
            lp.run_until_complete(polyloop::yield_now()).unwrap();
            let waker = slot.lock().unwrap().take().expect("the task was polled");
            drop(task);
            // Another thread holds the last outside reference, wakes the cancelled task
            // and lets go of it while the loop runs.
            let foreign = std::thread::spawn(move || waker.wake());
            lp.run_until_complete(async move {
                while !foreign.is_finished() {
                    polyloop::yield_now().await;
                }
                foreign.join().unwrap();
            })
            .unwrap();
            assert_goes_on(&lp);
            assert_eq!(lp.pending_tasks(), 0);
            lp.close().unwrap();
        })
    else {
        return;
    };
    assert_reported(&out, "boom: foreign waker");
}

#[test]
fn a_plain_executor_reports_a_panic_on_drop_and_goes_on() {
    let Some(out) = in_child::run("a_plain_executor_reports_a_panic_on_drop_and_goes_on", || {
        let ex = Executor::new();
        let task = ex.spawn(pending_holding(PanicOnDrop("boom: plain executor"), Arc::default()));
        drop(task);
        let t = ex.spawn(async { 7 });
        assert_eq!(futures_lite::future::block_on(ex.run(t)), 7);
        ex.spawn(pending_holding(PanicOnDrop("boom: executor dropped"), Arc::default())).detach();
        drop(ex);
    }) else {
        return;
    };
    assert_reported(&out, "boom: plain executor");
    assert_reported(&out, "boom: executor dropped");
}

/// Waits (under a generous watchdog) until `flag` is set.
fn wait_for(flag: &AtomicBool) {
    let start = std::time::Instant::now();
    while !flag.load(Ordering::SeqCst) {
        assert!(start.elapsed().as_secs() < 30, "the task was never polled");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn the_loop_s_debug_hook_gets_the_panic_with_the_task_s_spawn_location() {
    use polyloop::DebugEvent;
    use std::panic::Location;

    static SEEN: Mutex<Vec<(bool, String, u32)>> = Mutex::new(Vec::new());
    fn collect(event: &DebugEvent<'_>) {
        if let DebugEvent::DropPanicked { output, message, spawned_at, .. } = event {
            SEEN.lock().unwrap().push((*output, message.to_string(), spawned_at.line()));
        }
    }
    #[track_caller]
    fn here() -> u32 {
        Location::caller().line()
    }

    let Some(_) = in_child::run(
        "the_loop_s_debug_hook_gets_the_panic_with_the_task_s_spawn_location",
        || {
            // Debug mode stays off: these are reported all the same.
            let lp = EventLoop::builder().debug(false).debug_hook(collect).build().unwrap();
            let (future_line, task) =
                (here(), lp.spawn(pending_holding(PanicOnDrop("hooked future"), Arc::default())));
            let (output_line, ()) =
                (here(), lp.spawn(async { PanicOnDrop("hooked output") }).detach());
            lp.run_until_complete(polyloop::yield_now()).unwrap();
            drop(task);
            assert_goes_on(&lp);
            let seen = SEEN.lock().unwrap().clone();
            assert!(seen.contains(&(false, "hooked future".into(), future_line)), "{seen:?}");
            assert!(seen.contains(&(true, "hooked output".into(), output_line)), "{seen:?}");
        },
    ) else {
        return;
    };
}

#[test]
fn a_finished_task_dropped_or_detached_whose_output_panics_on_drop_is_reported() {
    let Some(out) = in_child::run(
        "a_finished_task_dropped_or_detached_whose_output_panics_on_drop_is_reported",
        || {
            let lp = EventLoop::new().unwrap();
            let dropped = lp.spawn(async { PanicOnDrop("boom: finished, dropped") });
            let detached = lp.spawn(async { PanicOnDrop("boom: finished, detached") });
            lp.run_until_complete(async {
                polyloop::yield_now().await;
                polyloop::yield_now().await;
            })
            .unwrap();
            assert!(dropped.is_finished() && detached.is_finished());
            // Neither panics here: nobody wanted the output.
            drop(dropped);
            detached.detach();
            assert_goes_on(&lp);
            lp.close().unwrap();
        },
    ) else {
        return;
    };
    assert_reported(&out, "boom: finished, dropped");
    assert_reported(&out, "boom: finished, detached");
}
