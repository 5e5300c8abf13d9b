//! Runs every example, each in a child process of this test binary (the examples set
//! the process-wide policy, so they must not share a process), and checks what it
//! printed.
//!
//! The examples are compiled in as modules, so this needs no second `cargo` run and
//! can never run a stale build. `harness = false`: `main` below is the test runner.

#[path = "../examples/custom_policy.rs"]
mod custom_policy;
#[path = "../examples/policies.rs"]
mod policies;
#[path = "../examples/tour.rs"]
mod tour;

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Set in a child process to the example it runs.
const RUN: &str = "POLYLOOP_RUN_EXAMPLE";
/// Only a hang trips it.
const WATCHDOG: Duration = Duration::from_secs(120);

/// An example, how to run it, and lines its output must contain.
struct Example {
    name: &'static str,
    main: fn() -> Result<(), polyloop::Error>,
    prints: &'static [&'static str],
}

const EXAMPLES: &[Example] = &[
    Example {
        name: "tour",
        main: tour::main,
        prints: &["block_on gave 42", "registered policies:"],
    },
    Example {
        name: "policies",
        main: policies::main,
        prints: &[
            "registered policies:",
            "  threadpool  loops run Send tasks",
            "debug       1000 tasks summed to 499500",
            "default     1000 tasks summed to 499500",
            "global      1000 tasks summed to 499500",
            "threadpool  1000 tasks summed to 499500",
            "back to the \"default\" policy",
        ],
    },
    Example {
        name: "custom_policy",
        main: custom_policy::main,
        prints: &[
            "found \"logging\"",
            "registered in examples_run::custom_policy",
            "a loop of the policy computed 42",
            "run_with works too",
            "log: loop 1 (#",
            "log: loop 2 (#",
        ],
    },
];

fn main() {
    if let Ok(name) = std::env::var(RUN) {
        let example = EXAMPLES.iter().find(|e| e.name == name).expect("a known example");
        if let Err(err) = (example.main)() {
            eprintln!("example {name} failed: {err}");
            std::process::exit(1);
        }
        return;
    }
    let mut failed = 0;
    for Example { name, prints, .. } in EXAMPLES {
        match run_child(name, prints) {
            Ok(()) => println!("test example {name} ... ok"),
            Err(why) => {
                println!("test example {name} ... FAILED\n{why}");
                failed += 1;
            }
        }
    }
    println!("\nexamples: {} passed, {failed} failed", EXAMPLES.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

fn run_child(name: &str, expected: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    for var in ["POLYLOOP_POLICY", "POLYLOOP_WORKERS", "POLYLOOP_DEBUG", "POLYLOOP_SLOW_MS"] {
        cmd.env_remove(var);
    }
    let child = cmd
        .env(RUN, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start the child process: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(WATCHDOG) {
        Ok(out) => out.map_err(|e| format!("waiting for the child: {e}"))?,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            return Err(format!("hung for {WATCHDOG:?}"));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status));
    }
    match expected.iter().find(|line| !stdout.contains(**line)) {
        Some(missing) => Err(format!("{missing:?} is not in the output:\n{stdout}")),
        None => Ok(()),
    }
}
