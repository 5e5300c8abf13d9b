//! A callback whose captured values panic when dropped (one that was cancelled, never
//! ran because its loop closed, or was refused by a closed loop) is reported the way a
//! panicking callback is, and nothing else is lost: the other callbacks of its batch
//! and later ones still run, in order, and on close every callback is dropped once.
//!
//! A second panic while one unwinds would abort the process, so each body runs in a
//! child process (see `in_child`): an abort, or a hang past the watchdog, fails its test.

mod common;
mod in_child;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polyloop::{EventLoop, ExceptionContext, ExceptionSource};

/// How long a body waits for the callbacks it expects before it fails.
const WATCHDOG: Duration = Duration::from_secs(30);

const THIS_FILE: &str = "tests/loop_callback_drop_panic.rs";

/// What an exception handler is told of a callback that panicked while being dropped.
const DROP_MESSAGE: &str = "a callback that never ran panicked while being dropped";

type Seen = Arc<Mutex<Vec<ExceptionContext>>>;
type Log = Arc<Mutex<Vec<u32>>>;

/// Counts its drop, then panics with its message.
struct PanicOnDrop {
    message: &'static str,
    drops: Arc<AtomicUsize>,
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        panic!("{}", self.message);
    }
}

/// A callback that holds a `PanicOnDrop`; it must never run.
fn holding(message: &'static str, drops: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let guard = PanicOnDrop { message, drops: drops.clone() };
    move || {
        let _guard = guard;
        unreachable!("a callback that was to be dropped ran");
    }
}

/// A loop whose handler records what it is given.
fn recording_loop() -> (EventLoop, Seen) {
    let lp = EventLoop::new().unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    lp.set_exception_handler(Some(Box::new(move |_: &EventLoop, ctx: &ExceptionContext| {
        s.lock().unwrap().push(ctx.clone());
    })));
    (lp, seen)
}

fn push(log: &Log, v: u32) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    move || log.lock().unwrap().push(v)
}

/// Runs `lp` until `log` holds `n` entries, or fails at the watchdog.
fn run_until_logged(lp: &EventLoop, log: &Log, n: usize) {
    lp.run_until_complete(async {
        polyloop::timeout(WATCHDOG, async {
            while log.lock().unwrap().len() < n {
                polyloop::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("watchdog: the callbacks never ran; log so far: {:?}", log.lock().unwrap())
        })
    })
    .unwrap();
}

/// `seen` holds exactly one report per line of `lines` (in any order), each of a
/// callback dropped with a panic whose message is in `panics`.
fn assert_drop_reports(seen: &Seen, lines: &[u32], panics: &[&str]) {
    let seen = seen.lock().unwrap();
    let mut got: Vec<u32> = Vec::new();
    for ctx in seen.iter() {
        assert_eq!(ctx.source(), ExceptionSource::Callback, "{ctx}");
        assert_eq!(ctx.message(), DROP_MESSAGE, "{ctx}");
        let panic = ctx.panic_message().unwrap_or_default();
        assert!(panics.contains(&panic), "unexpected panic {panic:?} in {ctx}");
        let loc = ctx.location().expect("the callback's location");
        assert_eq!(loc.file(), THIS_FILE, "{ctx}");
        got.push(loc.line());
    }
    got.sort_unstable();
    let mut want = lines.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "reports: {:?}", seen.iter().map(|c| c.to_string()).collect::<Vec<_>>());
}

#[test]
fn a_cancelled_callback_whose_drop_panics_is_reported_and_the_rest_of_its_batch_runs() {
    in_child::run(
        "a_cancelled_callback_whose_drop_panics_is_reported_and_the_rest_of_its_batch_runs",
        || {
            let (lp, seen) = recording_loop();
            let log: Log = Arc::default();
            let drops = Arc::new(AtomicUsize::new(0));
            lp.call_soon(push(&log, 1));
            let line = line!() + 1;
            let cancelled = lp.call_soon(holding("boom: cancelled callback", &drops));
            cancelled.cancel();
            lp.call_soon(push(&log, 2));
            lp.call_soon(push(&log, 3));
            run_until_logged(&lp, &log, 3);
            assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
            // Later callbacks run too.
            lp.call_soon(push(&log, 4));
            run_until_logged(&lp, &log, 4);
            assert_eq!(*log.lock().unwrap(), [1, 2, 3, 4]);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            assert_drop_reports(&seen, &[line], &["boom: cancelled callback"]);
            lp.close().unwrap();
        },
    );
}

#[test]
fn two_cancelled_callbacks_whose_drops_panic_in_one_batch_do_not_abort() {
    in_child::run("two_cancelled_callbacks_whose_drops_panic_in_one_batch_do_not_abort", || {
        let (lp, seen) = recording_loop();
        let log: Log = Arc::default();
        let drops = Arc::new(AtomicUsize::new(0));
        let first = line!() + 1;
        lp.call_soon(holding("boom: first", &drops)).cancel();
        lp.call_soon(push(&log, 1));
        let second = line!() + 1;
        lp.call_soon(holding("boom: second", &drops)).cancel();
        lp.call_soon(push(&log, 2));
        run_until_logged(&lp, &log, 2);
        assert_eq!(*log.lock().unwrap(), [1, 2]);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert_drop_reports(&seen, &[first, second], &["boom: first", "boom: second"]);
        lp.close().unwrap();
    });
}

#[test]
fn on_a_pool_loop_a_cancelled_callback_whose_drop_panics_costs_no_other_callback() {
    in_child::run(
        "on_a_pool_loop_a_cancelled_callback_whose_drop_panics_costs_no_other_callback",
        || {
            let lp = polyloop_threadpool::new_pool_loop(2).unwrap();
            let seen: Seen = Arc::default();
            let s = seen.clone();
            lp.set_exception_handler(Some(Box::new(
                move |_: &EventLoop, ctx: &ExceptionContext| {
                    s.lock().unwrap().push(ctx.clone());
                },
            )));
            let log: Log = Arc::default();
            let drops = Arc::new(AtomicUsize::new(0));
            let mut lines = Vec::new();
            for round in 0..10 {
                lp.call_soon(push(&log, 3 * round));
                lines.push(line!() + 1);
                lp.call_soon(holding("boom: cancelled on a pool", &drops)).cancel();
                lp.call_soon(push(&log, 3 * round + 1));
                // A task between two callbacks: they are driven as two segments.
                lp.spawn(async {}).detach();
                lp.call_soon(push(&log, 3 * round + 2));
            }
            run_until_logged(&lp, &log, 30);
            assert_eq!(*log.lock().unwrap(), (0..30).collect::<Vec<_>>());
            assert_eq!(drops.load(Ordering::SeqCst), 10);
            assert_drop_reports(&seen, &lines, &["boom: cancelled on a pool"]);
            lp.close().unwrap();
        },
    );
}

#[test]
fn a_cancelled_timer_whose_drop_panics_is_reported_and_the_loop_goes_on() {
    in_child::run("a_cancelled_timer_whose_drop_panics_is_reported_and_the_loop_goes_on", || {
        let (lp, seen) = recording_loop();
        let log: Log = Arc::default();
        let drops = Arc::new(AtomicUsize::new(0));
        lp.call_soon(push(&log, 1));
        let line = line!() + 1;
        let cancelled = lp.call_later(Duration::ZERO, holding("boom: cancelled timer", &drops));
        cancelled.cancel();
        lp.call_later(Duration::ZERO, push(&log, 2));
        lp.call_later(Duration::ZERO, push(&log, 3));
        run_until_logged(&lp, &log, 3);
        assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
        lp.call_soon(push(&log, 4));
        lp.call_later(Duration::from_millis(1), push(&log, 5));
        run_until_logged(&lp, &log, 5);
        assert_eq!(*log.lock().unwrap(), [1, 2, 3, 4, 5]);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_drop_reports(&seen, &[line], &["boom: cancelled timer"]);
        lp.close().unwrap();
    });
}

#[test]
fn two_cancelled_timers_whose_drops_panic_in_one_iteration_do_not_abort() {
    in_child::run("two_cancelled_timers_whose_drops_panic_in_one_iteration_do_not_abort", || {
        let (lp, seen) = recording_loop();
        let log: Log = Arc::default();
        let drops = Arc::new(AtomicUsize::new(0));
        let now = lp.time();
        let first = line!() + 1;
        lp.call_at(now, holding("boom: first timer", &drops)).cancel();
        let second = line!() + 1;
        lp.call_at(now, holding("boom: second timer", &drops)).cancel();
        lp.call_at(now, push(&log, 1));
        run_until_logged(&lp, &log, 1);
        lp.call_later(Duration::from_millis(1), push(&log, 2));
        run_until_logged(&lp, &log, 2);
        assert_eq!(*log.lock().unwrap(), [1, 2]);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert_drop_reports(&seen, &[first, second], &["boom: first timer", "boom: second timer"]);
        lp.close().unwrap();
    });
}

#[test]
fn closing_a_loop_drops_every_callback_once_and_reports_each_panic() {
    in_child::run("closing_a_loop_drops_every_callback_once_and_reports_each_panic", || {
        let (lp, seen) = recording_loop();
        let drops = Arc::new(AtomicUsize::new(0));
        let far = Duration::from_secs(3600);
        let mut lines = Vec::new();
        lines.push(line!() + 1);
        lp.call_soon(holding("boom: ready", &drops));
        lines.push(line!() + 1);
        lp.call_soon(holding("boom: ready", &drops)).cancel();
        lines.push(line!() + 1);
        lp.call_soon(holding("boom: ready", &drops));
        lines.push(line!() + 1);
        lp.call_later(far, holding("boom: timer", &drops));
        lines.push(line!() + 1);
        lp.call_later(far, holding("boom: timer", &drops)).cancel();
        lines.push(line!() + 1);
        lp.call_at(lp.time() + far, holding("boom: timer", &drops));
        // One that does not panic is dropped too.
        let quiet = Arc::new(());
        let q = quiet.clone();
        lp.call_soon(move || drop(q));

        lp.close().unwrap();
        assert!(lp.is_closed());
        assert_eq!(drops.load(Ordering::SeqCst), lines.len(), "each callback dropped once");
        assert_eq!(Arc::strong_count(&quiet), 1, "the quiet callback was dropped");
        assert_drop_reports(&seen, &lines, &["boom: ready", "boom: timer"]);
        assert_eq!(lp.pending_callbacks(), 0);
        lp.close().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), lines.len());
    });
}

#[test]
fn dropping_the_last_handle_drops_every_callback_once_and_reports_each_panic() {
    let Some(out) = in_child::run(
        "dropping_the_last_handle_drops_every_callback_once_and_reports_each_panic",
        || {
            let lp = EventLoop::new().unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            lp.call_soon(holding("boom: last handle, ready", &drops));
            lp.call_soon(holding("boom: last handle, ready", &drops)).cancel();
            lp.call_later(Duration::from_secs(3600), holding("boom: last handle, timer", &drops));
            drop(lp);
            assert_eq!(drops.load(Ordering::SeqCst), 3, "each callback dropped once");
        },
    ) else {
        return;
    };
    // With no handle left, there is no handler to call: the default one prints a line.
    let reports: Vec<&str> = out.stderr.lines().filter(|l| l.contains(DROP_MESSAGE)).collect();
    assert_eq!(reports.len(), 3, "one report per callback; stderr:\n{}", out.stderr);
    for report in reports {
        assert!(report.contains("boom: last handle") && report.contains(THIS_FILE), "{report}");
    }
}

#[test]
fn a_callback_refused_by_a_closed_loop_is_dropped_once_and_its_panic_reported() {
    in_child::run(
        "a_callback_refused_by_a_closed_loop_is_dropped_once_and_its_panic_reported",
        || {
            let (lp, seen) = recording_loop();
            lp.close().unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            let soon = line!() + 2;
            let refused = catch_unwind(AssertUnwindSafe(|| {
                lp.call_soon(holding("boom: refused", &drops));
            }))
            .unwrap_err();
            let later = line!() + 2;
            let refused_timer = catch_unwind(AssertUnwindSafe(|| {
                lp.call_at(Instant::now(), holding("boom: refused", &drops));
            }))
            .unwrap_err();
            for panic in [refused, refused_timer] {
                let text = panic.downcast_ref::<String>().expect("the closed loop's message");
                assert!(text.contains("closed"), "{text}");
            }
            assert_eq!(drops.load(Ordering::SeqCst), 2, "each callback dropped once");
            assert_drop_reports(&seen, &[soon, later], &["boom: refused"]);
        },
    );
}
