//! The environment: `POLYLOOP_SLOW_MS` sets the debug policy's threshold (a bad value
//! is a clear error), and `POLYLOOP_DEBUG=1` turns debug mode on for loops of any
//! policy. Each case runs in a child process with the variable set.

// The helpers are shared with the other plug-in crates and the root tests.
#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use std::time::Duration;

use polyloop::EventLoopPolicy;
use polyloop_debug::DebugPolicy;
use support::{is_child, run_child};

#[test]
fn slow_threshold_from_env() {
    run_child("child_slow_threshold", &[("POLYLOOP_SLOW_MS", "250"), ("EXPECT_MS", "250")]);
    run_child("child_slow_threshold", &[("POLYLOOP_SLOW_MS", " 0 "), ("EXPECT_MS", "0")]);
    run_child("child_slow_threshold", &[("EXPECT_MS", "100")]);
}

#[test]
#[ignore = "run by slow_threshold_from_env in a child process"]
fn child_slow_threshold() {
    if !is_child() {
        return;
    }
    let expected = Duration::from_millis(std::env::var("EXPECT_MS").unwrap().parse().unwrap());
    let policy = DebugPolicy::new();
    assert_eq!(policy.slow_threshold().unwrap(), expected);
    let lp = policy.new_event_loop().unwrap();
    assert!(lp.get_debug());
    assert_eq!(lp.slow_callback_duration(), expected);
    lp.close().unwrap();
    // A threshold of its own wins over the variable.
    let own = DebugPolicy::with_slow_threshold(Duration::from_millis(7));
    assert_eq!(own.slow_threshold().unwrap(), Duration::from_millis(7));
}

#[test]
fn bad_slow_threshold_is_a_clear_error() {
    for value in ["abc", "-5", "1.5", "", "100ms"] {
        run_child("child_bad_slow_threshold", &[("POLYLOOP_SLOW_MS", value)]);
    }
}

#[test]
#[ignore = "run by bad_slow_threshold_is_a_clear_error in a child process"]
fn child_bad_slow_threshold() {
    if !is_child() {
        return;
    }
    let value = std::env::var("POLYLOOP_SLOW_MS").unwrap();
    let err = DebugPolicy::new().new_event_loop().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "POLYLOOP_SLOW_MS={value:?} is not valid; expected a whole number of milliseconds, \
             e.g. 100"
        )
    );
}

#[test]
fn polyloop_debug_turns_debug_on_for_the_default_policy() {
    let out = run_child("child_polyloop_debug", &[("POLYLOOP_DEBUG", "1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The default policy's loops report on stderr.
    assert!(stderr.contains("polyloop debug: event loop #"), "{stderr}");
    assert!(
        stderr.contains("closed with 1 unfinished task(s) and 0 callback(s) never run"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("task spawned at {}:", file!())), "{stderr}");
}

#[test]
#[ignore = "run by polyloop_debug_turns_debug_on_for_the_default_policy in a child process"]
fn child_polyloop_debug() {
    if !is_child() {
        return;
    }
    let lp = polyloop::new_event_loop().unwrap();
    assert!(lp.get_debug(), "POLYLOOP_DEBUG=1 makes every new loop a debug loop");
    lp.spawn(std::future::pending::<()>()).detach();
    lp.close().unwrap();
}
