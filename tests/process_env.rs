//! The child's environment: set, cleared, and read at spawn time (async-process
//! `tests/std.rs`, from std's own suite).
//!
//! Its own process (`harness = false`): `test_capture_env_at_spawn` changes this
//! process's environment, which no other thread may read meanwhile; it runs first,
//! before any thread is started.

mod common;

use std::env;
use std::time::Duration;

use polyloop::process::Command;

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(Duration::from_secs(30), fut)).expect("watchdog fired")
}

fn env_cmd() -> Command {
    Command::new("env")
}

fn test_capture_env_at_spawn() {
    let mut cmd = env_cmd();
    cmd.env("RUN_TEST_NEW_ENV1", "123");

    // This variable will not be present if the environment has already
    // been captured above.
    // SAFETY: no other thread exists yet (no loop, reactor or watcher has started).
    unsafe { env::set_var("RUN_TEST_NEW_ENV2", "456") };
    let result = run(cmd.output()).unwrap();

    let output = String::from_utf8_lossy(&result.stdout).to_string();

    assert!(
        output.contains("RUN_TEST_NEW_ENV1=123"),
        "didn't find RUN_TEST_NEW_ENV1 inside of:\n\n{output}"
    );
    assert!(
        output.contains("RUN_TEST_NEW_ENV2=456"),
        "didn't find RUN_TEST_NEW_ENV2 inside of:\n\n{output}"
    );
}

fn test_override_env() {
    // In some build environments (such as chrooted Nix builds), `env` can
    // only be found in the explicitly-provided PATH env variable, not in
    // default places such as /bin or /usr/bin. So we need to pass through
    // PATH to our sub-process.
    let mut cmd = env_cmd();
    cmd.env_clear().env("RUN_TEST_NEW_ENV", "123");
    if let Some(p) = env::var_os("PATH") {
        cmd.env("PATH", p);
    }
    let result = run(cmd.output()).unwrap();
    let output = String::from_utf8_lossy(&result.stdout).to_string();

    assert!(
        output.contains("RUN_TEST_NEW_ENV=123"),
        "didn't find RUN_TEST_NEW_ENV inside of:\n\n{output}"
    );
    assert!(!output.contains("RUN_TEST_NEW_ENV2"), "env_clear kept this process's variables");
}

fn test_add_to_env() {
    let result = run(env_cmd().env("RUN_TEST_NEW_ENV", "123").output()).unwrap();
    let output = String::from_utf8_lossy(&result.stdout).to_string();

    assert!(
        output.contains("RUN_TEST_NEW_ENV=123"),
        "didn't find RUN_TEST_NEW_ENV inside of:\n\n{output}"
    );
}

fn env_remove_hides_a_variable_of_this_process() {
    let result = run(env_cmd().env_remove("RUN_TEST_NEW_ENV2").output()).unwrap();
    let output = String::from_utf8_lossy(&result.stdout).to_string();
    assert!(!output.contains("RUN_TEST_NEW_ENV2"), "{output}");
}

const CASES: &[common::Case] = &[
    ("test_capture_env_at_spawn", test_capture_env_at_spawn),
    ("test_override_env", test_override_env),
    ("test_add_to_env", test_add_to_env),
    ("env_remove_hides_a_variable_of_this_process", env_remove_hides_a_variable_of_this_process),
];

fn main() {
    common::run_cases(CASES);
}
