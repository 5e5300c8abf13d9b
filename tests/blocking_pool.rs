//! The blocking pool: `polyloop::unblock` and `EventLoop::run_in_executor`.
//!
//! Its own process per case (`harness = false`): the pool and its bound
//! (`POLYLOOP_BLOCKING_THREADS`, read once) are process-wide, and the cases count
//! threads.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::IsolatedCase;
use polyloop::{EventLoop, ExceptionContext, ExceptionSource};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Threads of the pool alive now, from /proc.
fn pool_threads() -> usize {
    common::threads().iter().filter(|(_, name)| name == "polyloop-block").count()
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WATCHDOG, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// 1,000 closures, each blocking a little: every result comes back, and never more than
/// the bound of threads is alive; once idle, the threads end.
fn a_thousand_closures_never_use_more_threads_than_the_bound() {
    assert_eq!(polyloop::blocking::max_threads(), Ok(4));
    let running = Arc::new(AtomicUsize::new(0));
    let most_running = Arc::new(AtomicUsize::new(0));
    let most_threads = Arc::new(AtomicUsize::new(0));
    let sum = polyloop::block_on(async {
        let futures: Vec<_> = (0..1000u64)
            .map(|i| {
                let (running, most_running, most_threads) =
                    (running.clone(), most_running.clone(), most_threads.clone());
                polyloop::unblock(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most_running.fetch_max(now, Ordering::SeqCst);
                    most_threads.fetch_max(pool_threads(), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(200));
                    running.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(std::thread::current().name(), Some("polyloop-block"));
                    i * i
                })
            })
            .collect();
        let mut sum = 0;
        for f in futures {
            sum += polyloop::timeout(WATCHDOG, f).await.expect("watchdog: a closure never ran");
        }
        sum
    });
    assert_eq!(sum, (0..1000u64).map(|i| i * i).sum::<u64>());
    let (most_running, most_threads) =
        (most_running.load(Ordering::SeqCst), most_threads.load(Ordering::SeqCst));
    assert!(most_running <= 4, "{most_running} closures ran at once; the bound is 4");
    assert!(most_threads <= 4, "{most_threads} pool threads were alive; the bound is 4");
    assert!(most_running >= 1 && most_threads >= 1, "the closures ran on the pool's threads");
    wait_until("the pool's threads never ended when idle", || pool_threads() == 0);
    assert_eq!(polyloop::blocking::threads(), 0);
}

/// The default bound, with the variable unset.
fn the_default_bound_is_512() {
    assert_eq!(polyloop::blocking::max_threads(), Ok(512));
    assert_eq!(polyloop::blocking::DEFAULT_MAX_THREADS, 512);
}

/// A bad value is an error that says what is allowed, from both ways in.
fn a_bad_bound_is_a_clear_error() {
    let value = std::env::var("POLYLOOP_BLOCKING_THREADS").unwrap();
    let expected = format!(
        "POLYLOOP_BLOCKING_THREADS={value:?} is not valid; expected a whole number of \
         blocking threads from 1 to 10000"
    );
    let err = polyloop::blocking::max_threads().unwrap_err();
    assert_eq!(err.to_string(), expected);
    let lp = EventLoop::new().unwrap();
    let err = lp.run_in_executor(|| ()).unwrap_err();
    assert_eq!(err.to_string(), expected);
    let panic = catch_unwind(|| drop(polyloop::unblock(|| ()))).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert_eq!(*msg, format!("polyloop::unblock: {expected}"));
    assert_eq!(pool_threads(), 0, "nothing was queued");
    lp.close().unwrap();
}

/// A value dropped on the thread that drops it, saying which thread that was.
struct Tell(mpsc::Sender<Option<String>>);

impl Drop for Tell {
    fn drop(&mut self) {
        let _ = self.0.send(std::thread::current().name().map(String::from));
    }
}

/// With the only thread busy, a queued closure whose future is dropped is removed: it is
/// dropped at once, on the dropping thread, and never runs.
fn dropping_before_the_start_removes_the_work() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    let busy = polyloop::unblock(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv();
        "released"
    });
    started_rx.recv_timeout(WATCHDOG).expect("watchdog: the first closure never started");
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let ran = Arc::new(AtomicUsize::new(0));
    let tell = Tell(dropped_tx);
    let r = ran.clone();
    let queued = polyloop::unblock(move || {
        let _keep = &tell;
        r.fetch_add(1, Ordering::SeqCst);
    });
    drop(queued);
    let dropped_on = dropped_rx.try_recv().expect("the closure is dropped with its future");
    assert_eq!(dropped_on.as_deref(), Some("main"));
    drop(release_tx);
    assert_eq!(polyloop::block_on(busy), "released");
    // Work queued after it still runs: the removed closure did not block the queue.
    assert_eq!(polyloop::block_on(polyloop::unblock(|| 7)), 7);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a removed closure never runs");
}

/// A started closure whose future is dropped finishes, and its result is dropped on the
/// pool's thread.
fn dropping_after_the_start_lets_the_work_finish() {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    let (result_tx, result_rx) = mpsc::channel();
    let running = polyloop::unblock(move || {
        started_tx.send(()).unwrap();
        let _ = go_rx.recv();
        Tell(result_tx)
    });
    started_rx.recv_timeout(WATCHDOG).expect("watchdog: the closure never started");
    drop(running);
    drop(go_tx);
    let dropped_on = result_rx.recv_timeout(WATCHDOG).expect("watchdog: the result was lost");
    assert_eq!(dropped_on.as_deref(), Some("polyloop-block"));
}

/// A panic in the closure resumes in the awaiter, and the pool goes on.
fn a_panic_reaches_the_awaiter() {
    let panic = catch_unwind(AssertUnwindSafe(|| {
        polyloop::block_on(polyloop::unblock(|| -> u32 { panic!("boom in the pool") }))
    }))
    .unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom in the pool"));
    let lp = EventLoop::new().unwrap();
    let work = lp.run_in_executor(|| -> u32 { panic!("boom for the loop") }).unwrap();
    let panic = catch_unwind(AssertUnwindSafe(|| lp.run_until_complete(work))).unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom for the loop"));
    assert_eq!(polyloop::block_on(polyloop::unblock(|| 1)), 1, "the pool goes on");
    lp.close().unwrap();
}

/// A closure of `run_in_executor` that panics after its future was dropped is reported
/// to the loop's exception handler, with where it was queued; a closed loop refuses work.
fn run_in_executor_reports_to_its_loop_and_refuses_once_closed() {
    let lp = EventLoop::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    lp.set_exception_handler(Some(Box::new(move |_: &EventLoop, ctx: &ExceptionContext| {
        tx.lock().unwrap().send(ctx.clone()).unwrap();
    })));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    let line = line!() + 1;
    let work = lp.run_in_executor(move || {
        started_tx.send(()).unwrap();
        let _ = go_rx.recv();
        panic!("nobody waits for this");
    });
    started_rx.recv_timeout(WATCHDOG).expect("watchdog: the closure never started");
    drop(work);
    drop(go_tx);
    let ctx = rx.recv_timeout(WATCHDOG).expect("watchdog: the panic was not reported");
    assert_eq!(ctx.source(), ExceptionSource::Blocking);
    assert_eq!(ctx.panic_message(), Some("nobody waits for this"));
    let loc = ctx.location().expect("where the work was queued");
    assert_eq!((loc.file(), loc.line()), ("tests/blocking_pool.rs", line));
    lp.close().unwrap();
    assert!(lp.run_in_executor(|| ()).unwrap_err().is_closed());
}

fn main() {
    const FOUR: &[(&str, &str)] = &[("POLYLOOP_BLOCKING_THREADS", "4")];
    const ONE: &[(&str, &str)] = &[("POLYLOOP_BLOCKING_THREADS", "1")];
    let cases: &[IsolatedCase] = &[
        (
            "a_thousand_closures_never_use_more_threads_than_the_bound",
            a_thousand_closures_never_use_more_threads_than_the_bound,
            FOUR,
        ),
        ("the_default_bound_is_512", the_default_bound_is_512, &[]),
        ("bad_bound_zero", a_bad_bound_is_a_clear_error, &[("POLYLOOP_BLOCKING_THREADS", "0")]),
        ("bad_bound_word", a_bad_bound_is_a_clear_error, &[("POLYLOOP_BLOCKING_THREADS", "many")]),
        ("bad_bound_empty", a_bad_bound_is_a_clear_error, &[("POLYLOOP_BLOCKING_THREADS", "")]),
        (
            "bad_bound_too_large",
            a_bad_bound_is_a_clear_error,
            &[("POLYLOOP_BLOCKING_THREADS", "10001")],
        ),
        (
            "dropping_before_the_start_removes_the_work",
            dropping_before_the_start_removes_the_work,
            ONE,
        ),
        (
            "dropping_after_the_start_lets_the_work_finish",
            dropping_after_the_start_lets_the_work_finish,
            ONE,
        ),
        ("a_panic_reaches_the_awaiter", a_panic_reaches_the_awaiter, &[]),
        (
            "run_in_executor_reports_to_its_loop_and_refuses_once_closed",
            run_in_executor_reports_to_its_loop_and_refuses_once_closed,
            &[],
        ),
    ];
    common::run_cases_isolated(cases);
}
