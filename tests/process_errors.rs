//! A child that cannot start: the error names the program (or its directory) and says
//! what was wrong, has the kind std gives, and keeps std's error (with its OS code)
//! inside.

mod common;

use std::error::Error;
use std::io;
use std::time::Duration;

use polyloop::process::{Command, SpawnError};

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(Duration::from_secs(30), fut)).expect("watchdog fired")
}

/// Spawns `cmd` on this thread, then through `status` on a spawner thread; checks that
/// both errors agree with what std's spawn of `std_cmd` (the same command) gives, and
/// returns the message.
fn spawn_error(cmd: &mut Command, mut std_cmd: std::process::Command) -> String {
    let std_err = std_cmd.spawn().unwrap_err();
    let err = cmd.spawn().unwrap_err();
    assert_eq!(err.kind(), std_err.kind(), "{err}");
    // std's error is the inner one: through get_ref(), and as source().
    let spawn = SpawnError::from_io(&err).expect("a SpawnError inside");
    assert_eq!(spawn.io_error().kind(), std_err.kind());
    assert_eq!(spawn.raw_os_error(), std_err.raw_os_error());
    let source = err.source().and_then(|s| s.downcast_ref::<io::Error>()).expect("std's error");
    assert_eq!(source.raw_os_error(), std_err.raw_os_error());
    assert!(err.to_string().ends_with(&format!("({std_err})")), "{err}");

    let on_spawner = run(cmd.start_on_spawner(true).status()).unwrap_err();
    cmd.start_on_spawner(false);
    assert_eq!(on_spawner.to_string(), err.to_string());
    err.to_string()
}

/// async-process `tests/std.rs` `smoke_failure`.
#[test]
fn smoke_failure() {
    assert!(Command::new("if-this-is-a-binary-then-the-world-has-ended").spawn().is_err());
}

/// async-process `tests/std.rs` `test_process_output_fail_to_start`.
#[test]
fn test_process_output_fail_to_start() {
    run(async {
        match Command::new("/no-binary-by-this-name-should-exist").output().await {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            Ok(..) => panic!(),
        }
    });
}

#[test]
fn a_missing_program_names_it_and_the_path_searched() {
    let msg = spawn_error(
        &mut Command::new("polyloop-no-such-program"),
        std::process::Command::new("polyloop-no-such-program"),
    );
    assert!(msg.starts_with("cannot start \"polyloop-no-such-program\": "), "{msg}");
    assert!(msg.contains("no program of that name is in any directory of PATH"), "{msg}");
    let path = std::env::var("PATH").unwrap();
    assert!(msg.contains(&format!("PATH={path:?}")), "{msg}");

    // The child's own PATH, if the command sets one, is where it was looked for.
    let mut cmd = Command::new("polyloop-no-such-program");
    cmd.env("PATH", "/nowhere");
    let err = cmd.spawn().unwrap_err();
    assert!(err.to_string().contains("PATH=\"/nowhere\""), "{err}");
}

#[test]
fn a_missing_program_path_names_it() {
    let msg = spawn_error(
        &mut Command::new("/nonexistent/polyloop-prog"),
        std::process::Command::new("/nonexistent/polyloop-prog"),
    );
    assert!(msg.starts_with("cannot start \"/nonexistent/polyloop-prog\": there is no such file"));
}

#[test]
fn an_empty_program_name_says_so() {
    let msg = spawn_error(&mut Command::new(""), std::process::Command::new(""));
    let err = Command::new("").spawn().unwrap_err();
    assert_eq!(SpawnError::from_io(&err).unwrap().program(), "");
    assert!(msg.starts_with("cannot start a program with an empty name"), "{msg}");
    assert!(msg.contains("give Command::new the program's name or path"), "{msg}");
}

#[test]
fn a_current_dir_that_does_not_exist_names_the_directory() {
    let mut cmd = Command::new("true");
    cmd.current_dir("/nonexistent/polyloop-dir");
    let mut std_cmd = std::process::Command::new("true");
    std_cmd.current_dir("/nonexistent/polyloop-dir");
    let msg = spawn_error(&mut cmd, std_cmd);
    assert!(
        msg.starts_with(
            "cannot start \"true\" in directory \"/nonexistent/polyloop-dir\": that directory \
             does not exist; give current_dir a directory that exists"
        ),
        "{msg}"
    );
}

#[test]
fn a_current_dir_that_is_a_file_says_so() {
    let mut cmd = Command::new("true");
    cmd.current_dir("Cargo.toml");
    let mut std_cmd = std::process::Command::new("true");
    std_cmd.current_dir("Cargo.toml");
    let msg = spawn_error(&mut cmd, std_cmd);
    assert!(
        msg.starts_with("cannot start \"true\" in directory \"Cargo.toml\": it is not a directory"),
        "{msg}"
    );
}

#[test]
fn a_nul_byte_in_an_argument_names_the_argument() {
    let mut cmd = Command::new("echo");
    cmd.args(["fine", "bad\0arg"]);
    let mut std_cmd = std::process::Command::new("echo");
    std_cmd.args(["fine", "bad\0arg"]);
    let msg = spawn_error(&mut cmd, std_cmd);
    assert!(
        msg.starts_with(
            "cannot start \"echo\": argument 2 (\"bad\\0arg\") holds a NUL byte, which cannot \
             be passed to a program"
        ),
        "{msg}"
    );
    assert_eq!(cmd.spawn().unwrap_err().kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn a_nul_byte_in_the_program_or_environment_says_where() {
    let err = Command::new("ec\0ho").spawn().unwrap_err();
    assert!(err.to_string().contains("\"ec\\0ho\": its name holds a NUL byte"), "{err}");
    assert_eq!(SpawnError::from_io(&err).unwrap().program(), "ec\0ho");
    let err = Command::new("echo").env("KEY", "va\0lue").spawn().unwrap_err();
    assert!(err.to_string().contains("environment variable \"KEY\" holds a NUL byte"), "{err}");
}

#[test]
fn a_nul_byte_set_on_a_std_command_is_still_named_as_the_cause() {
    let mut std_cmd = std::process::Command::new("echo");
    std_cmd.arg("a\0b");
    let err = Command::from(std_cmd).spawn().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("a NUL byte was given to it"), "{err}");
}
