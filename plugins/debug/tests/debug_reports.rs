//! The debug policy's reports: slow task polls and callbacks, and work left over when
//! a loop closes, as `tracing` warnings with the spawn location of each task.

mod capture;
// The helpers are shared with the other plug-in crates and the root tests.
#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use std::panic::Location;
use std::thread;
use std::time::Duration;

use capture::{Capture, Captured};
use polyloop::EventLoopPolicy;
use polyloop_debug::{DEFAULT_SLOW_THRESHOLD, DebugPolicy};
use support::watchdog;
use tracing::Level;

/// A threshold no poll in these tests comes near: nothing is reported.
const NEVER: Duration = Duration::from_secs(3600);
/// The threshold for the slow cases, and how long they block: sleeping is guaranteed
/// to take at least that long, so the report does not depend on the machine's speed.
const SLOW: Duration = Duration::from_millis(5);
const BLOCK: Duration = Duration::from_millis(20);

fn only_warning(events: &[Captured]) -> &Captured {
    assert_eq!(events.len(), 1, "expected one report, got {events:#?}");
    let event = &events[0];
    assert_eq!(event.level, Level::WARN);
    assert_eq!(event.target, "polyloop_debug");
    event
}

#[test]
fn registered_by_name_and_makes_debug_loops() {
    let plugin = polyloop::plugin::find("debug").unwrap();
    assert!(plugin.description.contains("debug mode"), "{}", plugin.description);
    let policy = (plugin.create)();
    assert_eq!(policy.name(), "debug");
    let lp = DebugPolicy::with_slow_threshold(NEVER).new_event_loop().unwrap();
    assert!(lp.get_debug());
    assert_eq!(lp.slow_callback_duration(), NEVER);
    lp.close().unwrap();
}

#[test]
fn a_slow_poll_is_reported_with_where_the_task_was_spawned() {
    let (spawned_at, events) = watchdog("slow_poll", || {
        Capture::run(|| {
            let lp = DebugPolicy::with_slow_threshold(SLOW).new_event_loop().unwrap();
            let spawned_at = Location::caller();
            let task = lp.spawn(async { thread::sleep(BLOCK) }); // the line after `spawned_at`
            lp.run_until_complete(task).unwrap();
            lp.close().unwrap();
            (spawned_at, lp.id())
        })
    });
    let (spawned_at, loop_id) = spawned_at;
    let event = only_warning(&events);
    let place = format!("{}:{}:", spawned_at.file(), spawned_at.line() + 1);
    assert!(event.message().contains("a poll of the task spawned at"), "{event:?}");
    assert!(event.message().contains(&place), "{place} not in {event:?}");
    assert!(event.field("spawned_at").starts_with(&place), "{event:?}");
    assert_eq!(event.field("loop_id"), loop_id.to_string());
    let ms: f64 = event.field("elapsed_ms").parse().unwrap();
    assert!(ms >= BLOCK.as_secs_f64() * 1e3, "{event:?}");
}

#[test]
fn a_slow_callback_is_reported() {
    let (loop_id, events) = watchdog("slow_callback", || {
        Capture::run(|| {
            let lp = DebugPolicy::with_slow_threshold(SLOW).new_event_loop().unwrap();
            let stopper = lp.clone();
            lp.call_soon(|| thread::sleep(BLOCK));
            lp.call_soon(move || stopper.stop());
            lp.run_forever().unwrap();
            lp.close().unwrap();
            lp.id()
        })
    });
    let event = only_warning(&events);
    let expected = format!("event loop #{loop_id}: a callback took ");
    assert!(event.message().starts_with(&expected), "{event:?}");
    let ms: f64 = event.field("elapsed_ms").parse().unwrap();
    assert!(ms >= BLOCK.as_secs_f64() * 1e3, "{event:?}");
    assert_eq!(event.field("loop_id"), loop_id.to_string());
}

#[test]
fn fast_work_is_not_reported() {
    let ((), events) = watchdog("fast_work", || {
        Capture::run(|| {
            let lp = DebugPolicy::with_slow_threshold(NEVER).new_event_loop().unwrap();
            let stopper = lp.clone();
            lp.call_soon(|| {});
            lp.run_until_complete(async {
                let tasks: Vec<_> = (0..100).map(|i| polyloop::spawn(async move { i })).collect();
                for t in tasks {
                    t.await;
                }
            })
            .unwrap();
            lp.call_soon(move || stopper.stop());
            lp.run_forever().unwrap();
            lp.close().unwrap();
        })
    });
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn close_reports_unfinished_tasks_and_callbacks_never_run() {
    let (places, events) = watchdog("close_report", || {
        Capture::run(|| {
            let lp = DebugPolicy::with_slow_threshold(NEVER).new_event_loop().unwrap();
            let first = Location::caller();
            lp.spawn(std::future::pending::<()>()).detach(); // line of `first` + 1
            let second = Location::caller();
            lp.spawn(std::future::pending::<()>()).detach(); // line of `second` + 1
            let done = lp.spawn(async {});
            lp.run_until_complete(done).unwrap();
            // Scheduled after the last run: never run.
            lp.call_soon(|| unreachable!());
            lp.call_later(NEVER, || unreachable!());
            lp.call_soon(|| unreachable!()).cancel(); // cancelled: not counted
            lp.close().unwrap();
            (vec![first, second], lp.id())
        })
    });
    let (places, loop_id) = places;
    let event = only_warning(&events);
    let msg = event.message();
    assert!(
        msg.starts_with(&format!(
            "event loop #{loop_id} closed with 2 unfinished task(s) and 2 callback(s) never run"
        )),
        "{msg}"
    );
    for place in places {
        let place = format!("task spawned at {}:{}:", place.file(), place.line() + 1);
        assert!(msg.contains(&place), "{place:?} not in {msg}");
    }
    assert_eq!(event.field("pending_tasks"), "2");
    assert_eq!(event.field("callbacks_never_run"), "2");
    assert_eq!(event.field("loop_id"), loop_id.to_string());
}

#[test]
fn a_clean_close_reports_nothing() {
    let ((), events) = Capture::run(|| {
        let lp = DebugPolicy::with_slow_threshold(NEVER).new_event_loop().unwrap();
        lp.run_until_complete(async { polyloop::spawn(async {}).await }).unwrap();
        lp.close().unwrap();
    });
    assert!(events.is_empty(), "{events:#?}");
}

#[test]
fn tracing_hook_works_on_any_loop() {
    let ((), events) = Capture::run(|| {
        let lp = polyloop::EventLoop::builder()
            .debug(true)
            .slow_callback_duration(NEVER)
            .debug_hook(polyloop_debug::tracing_hook)
            .build()
            .unwrap();
        lp.spawn(std::future::pending::<()>()).detach();
        lp.close().unwrap();
    });
    assert!(only_warning(&events).message().contains("1 unfinished task(s)"));
}

#[test]
fn context_is_per_thread() {
    let policy = std::sync::Arc::new(DebugPolicy::with_slow_threshold(NEVER));
    assert!(policy.get_event_loop().unwrap_err().is_no_current_loop());
    let lp = policy.new_event_loop().unwrap();
    policy.set_event_loop(Some(lp.clone())).unwrap();
    assert_eq!(policy.get_event_loop().unwrap(), lp);
    let p = policy.clone();
    assert!(thread::spawn(move || p.get_event_loop()).join().unwrap().is_err());
    policy.set_event_loop(None).unwrap();
    lp.close().unwrap();
}

#[test]
fn the_default_threshold_is_asyncios() {
    assert_eq!(DEFAULT_SLOW_THRESHOLD, Duration::from_millis(100));
}
