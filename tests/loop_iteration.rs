//! asyncio's iteration rule: each pass of the loop runs only the callbacks that were
//! ready when it began; what they schedule waits for the next pass. So after `stop()`,
//! a callback scheduled during the last pass runs in the next run, not in this one; and
//! a callback that schedules itself forever takes one slot per pass, so timers, I/O
//! and tasks go on.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polyloop::EventLoop;

/// Generous: a loop that starves its timers fails the test here instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(30);

type Log = Arc<Mutex<Vec<&'static str>>>;

fn entry(log: &Log, what: &'static str) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    move || log.lock().unwrap().push(what)
}

/// Schedules "first", which schedules "scheduled-during-pass".
fn first_then_another(lp: &EventLoop, log: &Log) {
    let (inner, log2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        log2.lock().unwrap().push("first");
        inner.call_soon(entry(&log2, "scheduled-during-pass"));
    });
}

#[test]
fn stop_before_run_forever_runs_one_pass_only() {
    let lp = EventLoop::new().unwrap();
    let log = Log::default();
    first_then_another(&lp, &log);
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(*log.lock().unwrap(), ["first"]);

    // The callback scheduled during that pass runs in the next run.
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(*log.lock().unwrap(), ["first", "scheduled-during-pass"]);
    lp.close().unwrap();
}

#[test]
fn call_soon_stop_ends_the_run_after_its_pass() {
    let lp = EventLoop::new().unwrap();
    let log = Log::default();
    // One pass: "a", stop, "b" (all ready when it begins); "a" schedules another.
    let (inner, log2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        log2.lock().unwrap().push("a");
        inner.call_soon(entry(&log2, "scheduled-during-pass"));
    });
    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop());
    lp.call_soon(entry(&log, "b"));
    lp.run_forever().unwrap();
    assert_eq!(*log.lock().unwrap(), ["a", "b"]);

    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop());
    lp.run_forever().unwrap();
    assert_eq!(*log.lock().unwrap(), ["a", "b", "scheduled-during-pass"]);
    lp.close().unwrap();
}

#[test]
fn stop_inside_run_until_complete_leaves_later_callbacks_for_the_next_run() {
    let lp = EventLoop::new().unwrap();
    let log = Log::default();
    let (inner, log2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        log2.lock().unwrap().push("first");
        inner.call_soon(entry(&log2, "scheduled-during-pass"));
        inner.stop();
    });
    let err = lp.run_until_complete(std::future::pending::<()>()).unwrap_err();
    assert!(err.is_stopped(), "{err}");
    assert_eq!(*log.lock().unwrap(), ["first"]);
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(1))).unwrap();
    assert_eq!(*log.lock().unwrap(), ["first", "scheduled-during-pass"]);
    lp.close().unwrap();
}

/// A callback that schedules itself again, for as long as `done` is false.
fn forever(lp: EventLoop, done: Arc<AtomicBool>, passes: Arc<AtomicU64>) {
    if done.load(Ordering::SeqCst) {
        return;
    }
    passes.fetch_add(1, Ordering::Relaxed);
    let again = lp.clone();
    lp.call_soon(move || forever(again, done, passes));
}

#[test]
fn a_callback_that_reschedules_itself_forever_starves_no_timer_io_or_task() {
    let lp = EventLoop::new().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    {
        let (lp2, done, passes) = (lp.clone(), done.clone(), passes.clone());
        lp.call_soon(move || forever(lp2, done, passes));
    }
    let (mut writer, reader) = UnixStream::pair().unwrap();
    let reader = async_io::Async::new(reader).unwrap();
    let fired = Arc::new(AtomicBool::new(false));
    let fired2 = fired.clone();
    lp.call_later(Duration::from_millis(20), move || fired2.store(true, Ordering::SeqCst));
    let writer_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        writer.write_all(b"x").unwrap();
    });
    let task = lp.spawn(async { polyloop::sleep(Duration::from_millis(10)).await });
    let out = lp.run_until_complete(polyloop::timeout(WATCHDOG, async {
        // I/O: a readable socket is seen.
        let mut byte = [0u8; 1];
        reader.read_with(|mut r| r.read(&mut byte)).await.unwrap();
        // A task on a timer finishes.
        task.await;
        // A timed callback runs.
        while !fired.load(Ordering::SeqCst) {
            polyloop::sleep(Duration::from_millis(1)).await;
        }
        byte[0]
    }));
    done.store(true, Ordering::SeqCst);
    writer_thread.join().unwrap();
    assert_eq!(out.unwrap().expect("timers, I/O and tasks were starved"), b'x');
    assert!(passes.load(Ordering::Relaxed) > 0);
    lp.close().unwrap();
}
