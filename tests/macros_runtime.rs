//! `#[polyloop::policy_test]` end to end: every test below runs on a fresh loop
//! made by the macro, with each of its arguments.

mod common;

use std::sync::Mutex;

#[polyloop::policy_test]
async fn plain() {
    assert_eq!(polyloop::spawn(async { 1 + 1 }).await, 2);
}

#[polyloop::policy_test]
async fn returns_ok() -> Result<(), std::io::Error> {
    let n: u8 = "7".parse().map_err(std::io::Error::other)?;
    assert_eq!(n, 7);
    Ok(())
}

#[polyloop::policy_test]
#[should_panic(expected = "boom from the body")]
async fn panic_in_body_fails_the_test() {
    panic!("boom from the body");
}

/// Doc comments and other attributes are kept.
#[polyloop::policy_test]
#[ignore = "checks only that `#[ignore]` survives the expansion"]
async fn ignored() {
    unreachable!("an ignored test must not run");
}

#[polyloop::policy_test(policy = "default")]
async fn named_policy() {
    assert!(polyloop::get_running_loop().is_some());
}

#[polyloop::policy_test(debug = true)]
async fn debug_loop() {
    let lp = polyloop::get_running_loop().expect("a running loop");
    assert!(lp.get_debug());
}

#[polyloop::policy_test(workers = 2)]
async fn two_workers() {
    assert_eq!(polyloop::spawn(async { 40 + 2 }).await, 42);
}

#[polyloop::policy_test(policy = "default", workers = 1, debug = false, crate = "polyloop")]
async fn every_argument() {
    assert!(polyloop::get_running_loop().is_some());
}

#[polyloop::policy_test]
async fn body_sees_a_running_loop() {
    let lp = polyloop::get_running_loop().expect("the body runs inside a loop");
    assert!(lp.is_running());
    assert!(!lp.is_closed());
}

// Tests run in parallel, so two tests can only check that they did not share
// a loop; `loops_are_closed_after_the_body` checks the closing, sequentially.
static SEEN: Mutex<Vec<polyloop::EventLoop>> = Mutex::new(Vec::new());

fn check_fresh_loop() {
    let lp = polyloop::get_running_loop().expect("a running loop");
    assert!(lp.is_running());
    assert!(!lp.is_closed());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    assert!(!seen.contains(&lp), "two tests shared one loop");
    seen.push(lp);
}

#[polyloop::policy_test]
async fn fresh_loop_a() {
    check_fresh_loop();
}

#[polyloop::policy_test]
async fn fresh_loop_b() {
    check_fresh_loop();
}

/// `#[policy_main]` on a function not named `main` makes a blocking function.
#[polyloop::policy_main]
async fn running_loop() -> polyloop::EventLoop {
    polyloop::get_running_loop().expect("a running loop")
}

#[test]
fn loops_are_closed_after_the_body() {
    let first = running_loop();
    let second = running_loop();
    assert!(first != second, "each run gets a fresh loop");
    assert!(first.is_closed() && second.is_closed());
}
