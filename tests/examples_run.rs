//! Every example in `examples/` is run by the test suite.

mod common;

use std::process::Command;

// Linked so that `polyloop::plugin::plugins()` here lists what the examples link.
use polyloop_debug as _;
use polyloop_global as _;
use polyloop_threadpool as _;
use polyloop_tokio as _;

/// Runs the example binary that `cargo test` built next to this test, or builds and
/// runs it with cargo when only this test target was built.
fn run_example(name: &str) -> String {
    let out = example_command(name).output().expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The command that runs example `name`.
fn example_command(name: &str) -> Command {
    let built = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples").join(name)))
        .filter(|path| path.is_file());
    let mut cmd = match built {
        Some(path) => Command::new(path),
        None => {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["run", "--quiet", "--example", name]);
            cmd
        }
    };
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn tour() {
    let out = run_example("tour");
    assert!(out.contains("block_on gave 42"), "{out}");
    assert!(out.contains("sum of their squares is 338350"), "{out}");
    let order: Vec<&str> = out.lines().filter(|l| l.starts_with("callback ran:")).collect();
    assert_eq!(
        order,
        [
            "callback ran: soon: first",
            "callback ran: soon: second",
            "callback ran: later: 10ms",
            "callback ran: later: 20ms",
            "callback ran: later: 30ms"
        ]
    );
    assert!(out.contains("restored the default: \"default\""), "{out}");
    assert!(out.contains("no event loop policy is registered as \"no-such-policy\""), "{out}");
}

#[test]
fn policies() {
    let out = run_example("policies");
    assert!(out.contains("registered policies:"), "{out}");
    assert!(out.contains("  threadpool  loops run Send tasks"), "{out}");
    assert!(out.contains("  tokio       loops whose tasks run inside a tokio runtime"), "{out}");
    for name in ["debug", "default", "global", "threadpool", "tokio"] {
        let line = format!("{name:<11} 1000 tasks summed to 499500");
        assert!(out.contains(&line), "{line:?} not in {out}");
    }
    assert!(out.contains("back to the \"default\" policy"), "{out}");
}

#[test]
fn custom_policy() {
    let out = run_example("custom_policy");
    assert!(out.contains("found \"logging\""), "{out}");
    assert!(out.contains("(registered in custom_policy)"), "{out}");
    assert!(out.contains("the process-wide policy is now \"logging\""), "{out}");
    assert!(out.contains("a loop of the policy computed 42"), "{out}");
    assert!(out.contains("run_with works too"), "{out}");
    let log: Vec<&str> = out.lines().filter(|l| l.starts_with("log: ")).collect();
    assert_eq!(log.len(), 4, "{out}");
    assert!(log[0].starts_with("log: loop 1 (#") && log[0].ends_with(") made"), "{out}");
    assert!(log[1].starts_with("log: loop 1 (#") && log[1].ends_with(") closed"), "{out}");
    assert!(log[3].starts_with("log: loop 2 (#") && log[3].ends_with(") closed"), "{out}");
}

/// `#[policy_main]` picks the policy from POLYLOOP_POLICY: every registered name works.
#[test]
fn hello_main_under_every_policy() {
    let names: Vec<&str> = polyloop::plugin::plugins().iter().map(|p| p.name).collect();
    assert_eq!(names, ["debug", "default", "global", "threadpool", "tokio"]);
    for name in names {
        let out = example_command("hello_main")
            .env("POLYLOOP_POLICY", name)
            .env_remove("POLYLOOP_WORKERS")
            .output()
            .expect("the example starts");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "hello_main under {name}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let line = format!("hello from the {name:?} policy: the squares of 1..=10 add up to 385");
        assert!(stdout.contains(&line), "{line:?} not in {stdout}");
    }
}

/// An unknown name fails the program, and the message lists the registered names.
#[test]
fn hello_main_with_an_unknown_policy_lists_the_names() {
    let out = example_command("hello_main")
        .env("POLYLOOP_POLICY", "no-such-policy")
        .output()
        .expect("the example starts");
    assert!(!out.status.success(), "an unknown policy must fail the program");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("#[policy_main]"), "{stderr}");
    assert!(stderr.contains("\"no-such-policy\""), "{stderr}");
    let names: Vec<&str> = polyloop::plugin::plugins().iter().map(|p| p.name).collect();
    assert!(stderr.contains(&names.join(", ")), "{names:?} not listed in {stderr}");
    assert!(out.stdout.is_empty(), "main did not run: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn pipeline() {
    let out = run_example("pipeline");
    let counts: Vec<&str> = out.lines().take(3).collect();
    assert_eq!(counts, ["async: 2", "loop: 1", "polyloop: 3"], "{out}");
    assert!(
        out.contains("cat: exit status: 0, sort: exit status: 0, uniq: exit status: 0"),
        "{out}"
    );
    assert!(out.contains("sleep after SIGTERM: signal: 15 (SIGTERM)"), "{out}");
}

/// The path of a built example: the one `cargo test` built next to this test, else
/// built now.
fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|d| d.parent()).unwrap().join("examples").join(name);
    if !path.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo starts");
        assert!(status.success(), "building example {name} failed");
    }
    path
}

#[test]
fn graceful_shutdown() {
    use std::io::{BufRead, BufReader, Read};
    use std::time::{Duration, Instant};

    let mut example = Command::new(example_binary("graceful_shutdown"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the example starts");
    let mut stdout = BufReader::new(example.stdout.take().unwrap());
    // Read up to the ready line (the example prints it once its handlers are in).
    let mut head = String::new();
    let mut child_pid = None;
    while !head.contains("ready: pid") {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = example.kill();
            panic!(
                "the example ended before it was ready:\n{head}{:?}",
                example.wait_with_output()
            );
        }
        if let Some(pid) = line.strip_prefix("child ").and_then(|r| r.strip_suffix(" started\n")) {
            child_pid = Some(pid.parse::<u32>().unwrap());
        }
        head.push_str(&line);
    }
    let child_pid = child_pid.expect("the example printed its child's pid");
    assert!(std::path::Path::new(&format!("/proc/{child_pid}")).exists(), "the child runs");
    // Let it work a moment, then ask it to stop.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sends SIGTERM to the example, our child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(example.id() as i32, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = example.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = example.kill();
            panic!("watchdog: the example did not end within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut tail = String::new();
    stdout.read_to_string(&mut tail).unwrap();
    let mut stderr = String::new();
    example.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let out = format!("{head}{tail}");
    assert!(status.success(), "the example exits 0 after SIGTERM: {status}\n{out}\n{stderr}");
    for line in [
        "got SIGTERM, shutting down",
        "stopped accepting requests",
        "cancelled the long poll task at the deadline",
        &format!("child {child_pid} killed and reaped (signal: 9 (SIGKILL))"),
        "heartbeat stopped after ",
        "loop closed, exiting with 0",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}\n{stderr}");
    }
    let tasks = out.lines().find(|l| l.starts_with("tasks: ")).expect("a tasks line");
    assert!(tasks.ends_with(" cancelled") && !tasks.contains(" 0 cancelled"), "{tasks}");
    // The child was reaped by the example: no process has its pid any more.
    assert!(
        !std::path::Path::new(&format!("/proc/{child_pid}")).exists(),
        "the example's child {child_pid} is still there"
    );
}
