//! `EventLoop::set_exception_handler`: panics that nobody awaits (detached tasks,
//! callbacks, child-exit handlers, drops of a task's future or output, close hooks) go
//! to the loop's handler with what happened and where; `None` restores the default (stderr); a panicking handler is reported on
//! stderr and never loops.
//!
//! One process per case (`harness = false`): some cases read this process's stderr.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::IsolatedCase;
use polyloop::process::{ChildWatcher, ThreadedChildWatcher};
use polyloop::{EventLoop, ExceptionContext, ExceptionSource};

const WATCHDOG: Duration = Duration::from_secs(60);

type Seen = Arc<Mutex<Vec<ExceptionContext>>>;

/// A loop whose handler records what it is given.
fn recording_loop() -> (EventLoop, Seen) {
    let lp = EventLoop::new().unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    lp.set_exception_handler(Some(Box::new(move |got: &EventLoop, ctx: &ExceptionContext| {
        assert_eq!(got.id(), got.clone().id());
        s.lock().unwrap().push(ctx.clone());
    })));
    (lp, seen)
}

/// Runs `lp` until `seen` holds `n` reports.
fn run_until_seen(lp: &EventLoop, seen: &Seen, n: usize) {
    lp.run_until_complete(async {
        polyloop::timeout(WATCHDOG, async {
            while seen.lock().unwrap().len() < n {
                polyloop::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("watchdog: the reports never came")
    })
    .unwrap();
}

fn a_detached_tasks_panic_reaches_the_handler_with_its_spawn_location() {
    let (lp, seen) = recording_loop();
    let line = line!() + 1;
    lp.spawn(async { panic!("detached boom") }).detach();
    run_until_seen(&lp, &seen, 1);
    let ctx = seen.lock().unwrap()[0].clone();
    assert_eq!(ctx.source(), ExceptionSource::Task);
    assert_eq!(ctx.message(), "a detached task panicked");
    assert_eq!(ctx.panic_message(), Some("detached boom"));
    let loc = ctx.location().unwrap();
    assert_eq!((loc.file(), loc.line()), ("tests/loop_exception_handler.rs", line));
    lp.close().unwrap();
}

fn a_panic_that_is_awaited_is_not_reported_and_one_dropped_unclaimed_is() {
    let (lp, seen) = recording_loop();
    let awaited = lp.spawn(async { panic!("awaited") });
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.run_until_complete(awaited).unwrap()
    }))
    .unwrap_err();
    assert_eq!(caught.downcast_ref::<&str>(), Some(&"awaited"));
    // Finished with a panic, then dropped without being awaited.
    let unclaimed = lp.spawn(async { panic!("never awaited") });
    lp.run_until_complete(async {
        while !unclaimed.is_finished() {
            polyloop::yield_now().await;
        }
    })
    .unwrap();
    assert!(seen.lock().unwrap().is_empty(), "an awaited panic is not reported");
    drop(unclaimed);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].panic_message(), Some("never awaited"));
    lp.close().unwrap();
}

fn a_callbacks_panic_reaches_the_handler_with_where_it_was_scheduled() {
    let (lp, seen) = recording_loop();
    let soon = line!() + 1;
    lp.call_soon(|| panic!("soon boom"));
    let later = line!() + 1;
    lp.call_later(Duration::from_millis(1), || panic!("later boom"));
    run_until_seen(&lp, &seen, 2);
    let seen = seen.lock().unwrap();
    for (ctx, (text, line)) in seen.iter().zip([("soon boom", soon), ("later boom", later)]) {
        assert_eq!(ctx.source(), ExceptionSource::Callback);
        assert_eq!(ctx.panic_message(), Some(text));
        let loc = ctx.location().unwrap();
        assert_eq!((loc.file(), loc.line()), ("tests/loop_exception_handler.rs", line));
        assert!(ctx.to_string().contains("(scheduled at tests/loop_exception_handler.rs:"));
    }
    drop(seen);
    lp.close().unwrap();
}

fn a_child_handlers_panic_reaches_the_handler_of_the_watchers_loop() {
    let (lp, seen) = recording_loop();
    let watcher = ThreadedChildWatcher::new();
    watcher.attach_loop(Some(&lp));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    watcher.add_child_handler(pid, Box::new(|_, _| panic!("handler boom")));
    run_until_seen(&lp, &seen, 1);
    let ctx = seen.lock().unwrap()[0].clone();
    assert_eq!(ctx.source(), ExceptionSource::ChildHandler);
    assert_eq!(ctx.message(), format!("the handler of child {pid} panicked"));
    assert_eq!(ctx.panic_message(), Some("handler boom"));
    watcher.close();
    assert!(child.try_wait().is_err(), "the watcher reaped it");
    lp.close().unwrap();
}

/// A value whose drop panics.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

fn a_panic_while_dropping_a_future_reaches_the_handler_with_its_spawn_location() {
    let (lp, seen) = recording_loop();
    let line = line!() + 1;
    let task = lp.spawn(async {
        let _guard = PanicOnDrop("future drop boom");
        std::future::pending::<()>().await
    });
    // Polled once, so that the guard lives in the future.
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(1))).unwrap();
    drop(task);
    run_until_seen(&lp, &seen, 1);
    let ctx = seen.lock().unwrap()[0].clone();
    assert_eq!(ctx.source(), ExceptionSource::Drop);
    assert_eq!(ctx.message(), "dropping a task's future panicked");
    assert_eq!(ctx.panic_message(), Some("future drop boom"));
    let loc = ctx.location().unwrap();
    assert_eq!((loc.file(), loc.line()), ("tests/loop_exception_handler.rs", line));
    assert!(ctx.to_string().contains("(spawned at tests/loop_exception_handler.rs:"));
    lp.close().unwrap();
}

fn a_panic_while_dropping_an_unclaimed_output_reaches_the_handler() {
    let (lp, seen) = recording_loop();
    let line = line!() + 1;
    lp.spawn(async { PanicOnDrop("output drop boom") }).detach();
    run_until_seen(&lp, &seen, 1);
    let ctx = seen.lock().unwrap()[0].clone();
    assert_eq!(ctx.source(), ExceptionSource::Drop);
    assert_eq!(ctx.message(), "dropping the output of a task panicked");
    assert_eq!(ctx.panic_message(), Some("output drop boom"));
    let loc = ctx.location().unwrap();
    assert_eq!((loc.file(), loc.line()), ("tests/loop_exception_handler.rs", line));
    lp.close().unwrap();
}

fn a_close_hooks_panic_that_close_does_not_resume_reaches_the_handler() {
    let (lp, seen) = recording_loop();
    lp.on_close(|_| panic!("first hook"));
    lp.on_close(|_| panic!("second hook"));
    let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.close()));
    assert_eq!(resumed.unwrap_err().downcast_ref::<&str>(), Some(&"first hook"));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].source(), ExceptionSource::CloseHook);
    assert_eq!(seen[0].panic_message(), Some("second hook"));
}

fn none_restores_the_default() {
    let (lp, seen) = recording_loop();
    assert!(lp.get_exception_handler().is_some());
    lp.set_exception_handler(None);
    assert!(lp.get_exception_handler().is_none());
    lp.call_soon(|| panic!("to stderr"));
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(5))).unwrap();
    assert!(seen.lock().unwrap().is_empty());
    lp.close().unwrap();
}

/// Run in a process of its own by the case below, which reads its stderr.
fn handler_that_panics() {
    let lp = EventLoop::new().unwrap();
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    lp.set_exception_handler(Some(Box::new(move |_: &EventLoop, ctx: &ExceptionContext| {
        *c.lock().unwrap() += 1;
        panic!("the handler itself fails on {:?}", ctx.panic_message());
    })));
    lp.call_soon(|| panic!("first"));
    lp.spawn(async { panic!("second") }).detach();
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(5))).unwrap();
    assert_eq!(*calls.lock().unwrap(), 2, "once per report: no report of its own panic");
    println!("the loop went on");
    lp.close().unwrap();
}

fn none_default_and_panicking_handler_print_on_stderr() {
    let exe = std::env::current_exe().unwrap();
    let run = |case: &str| {
        let out =
            std::process::Command::new(&exe).env("POLYLOOP_TEST_CASE", case).output().unwrap();
        assert!(out.status.success(), "{case}: {out:?}");
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (_, err) = run("none_restores_the_default");
    assert!(
        err.contains("polyloop: a callback panicked (the loop goes on): to stderr (scheduled at "),
        "{err}"
    );
    let (out, err) = run("handler_that_panics");
    assert!(out.contains("the loop went on"), "{out}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("polyloop: the exception handler of event loop #"))
        .collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains(
        "panicked (the handler itself fails on Some(\"first\")) while handling: a callback \
         panicked (the loop goes on): first"
    ));
    assert!(lines[1].contains("while handling: a detached task panicked: second (spawned at "));
}

fn main() {
    let cases: &[IsolatedCase] = &[
        (
            "a_detached_tasks_panic_reaches_the_handler_with_its_spawn_location",
            a_detached_tasks_panic_reaches_the_handler_with_its_spawn_location,
            &[],
        ),
        (
            "a_panic_that_is_awaited_is_not_reported_and_one_dropped_unclaimed_is",
            a_panic_that_is_awaited_is_not_reported_and_one_dropped_unclaimed_is,
            &[],
        ),
        (
            "a_callbacks_panic_reaches_the_handler_with_where_it_was_scheduled",
            a_callbacks_panic_reaches_the_handler_with_where_it_was_scheduled,
            &[],
        ),
        (
            "a_child_handlers_panic_reaches_the_handler_of_the_watchers_loop",
            a_child_handlers_panic_reaches_the_handler_of_the_watchers_loop,
            &[],
        ),
        (
            "a_panic_while_dropping_a_future_reaches_the_handler_with_its_spawn_location",
            a_panic_while_dropping_a_future_reaches_the_handler_with_its_spawn_location,
            &[],
        ),
        (
            "a_panic_while_dropping_an_unclaimed_output_reaches_the_handler",
            a_panic_while_dropping_an_unclaimed_output_reaches_the_handler,
            &[],
        ),
        (
            "a_close_hooks_panic_that_close_does_not_resume_reaches_the_handler",
            a_close_hooks_panic_that_close_does_not_resume_reaches_the_handler,
            &[],
        ),
        ("none_restores_the_default", none_restores_the_default, &[]),
        ("handler_that_panics", handler_that_panics, &[]),
        (
            "none_default_and_panicking_handler_print_on_stderr",
            none_default_and_panicking_handler_print_on_stderr,
            &[],
        ),
    ];
    common::run_cases_isolated(cases);
}
