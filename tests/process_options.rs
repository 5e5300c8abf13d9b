//! `Command`'s getters, its std escape hatches (`From`, `as_std`, `as_std_mut`,
//! `into_std`) and its Unix options (`arg0`, `uid`, `gid`, `process_group`, `pre_exec`).

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use polyloop::process::Command;

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    polyloop::block_on(polyloop::timeout(Duration::from_secs(30), fut)).expect("watchdog fired")
}

/// tokio `tests/process_arg0.rs`.
#[test]
fn arg0() {
    run(async {
        let mut cmd = Command::new("sh");
        cmd.arg0("test_string").arg("-c").arg("echo $0");
        let output = cmd.output().await.unwrap();
        assert_eq!(output.stdout, b"test_string\n");
    });
}

#[test]
fn getters_read_back_what_was_set() {
    let mut cmd = Command::new("prog");
    assert_eq!(cmd.get_program(), "prog");
    assert_eq!(cmd.get_args().count(), 0);
    assert_eq!(cmd.get_envs().count(), 0);
    assert_eq!(cmd.get_current_dir(), None);
    assert!(!cmd.get_kill_on_drop());

    cmd.args(["a", "b"]).env("K", "v").env_remove("GONE").current_dir("/tmp").kill_on_drop(true);
    assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["a", "b"]);
    let envs: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
    assert_eq!(envs, [(OsStr::new("GONE"), None), (OsStr::new("K"), Some(OsStr::new("v")))]);
    assert_eq!(cmd.get_current_dir(), Some(Path::new("/tmp")));
    assert!(cmd.get_kill_on_drop());
}

#[test]
fn a_std_command_converts_and_keeps_what_it_holds() {
    let mut std_cmd = std::process::Command::new("sh");
    std_cmd.args(["-c", "echo $K; pwd"]).env("K", "from std").current_dir("/");
    let mut cmd = Command::from(std_cmd);
    assert_eq!(cmd.as_std().get_program(), "sh");
    let out = run(cmd.output()).unwrap();
    assert_eq!(out.stdout, b"from std\n/\n");

    // What as_std_mut sets is used, and into_std gives it all back.
    cmd.as_std_mut().env("K", "changed");
    let out = run(cmd.output()).unwrap();
    assert_eq!(out.stdout, b"changed\n/\n");
    let std_cmd = cmd.into_std();
    assert_eq!(std_cmd.get_current_dir(), Some(Path::new("/")));
}

#[test]
fn uid_and_gid_of_this_process_are_accepted() {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let out = run(Command::new("id").uid(uid).gid(gid).output()).unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("uid={uid}")), "{said}");
    assert!(said.contains(&format!("gid={gid}")), "{said}");
}

/// Root hands the child to another user; anyone else may not, and the spawn fails.
#[test]
fn uid_and_gid_of_another_user_are_taken_or_refused() {
    const NOBODY: u32 = 65534;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "id -u; id -g"]).uid(NOBODY).gid(NOBODY);
    if rustix::process::getuid().is_root() {
        let out = run(cmd.output()).unwrap();
        assert_eq!(out.stdout, format!("{NOBODY}\n{NOBODY}\n").as_bytes(), "{out:?}");
    } else {
        let err = run(cmd.output()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    }
}

#[test]
fn process_group_zero_makes_a_group_led_by_the_child() {
    run(async {
        let mut child = Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        let pid = child.id().unwrap();
        let pgid = rustix::process::getpgid(rustix::process::Pid::from_raw(pid as i32)).unwrap();
        assert_eq!(pgid.as_raw_nonzero().get() as u32, pid, "the child leads its own group");
        assert_ne!(pgid, rustix::process::getpgrp());
        child.kill().unwrap();
        child.wait().await.unwrap();
    });
}

#[test]
fn pre_exec_runs_in_the_child_on_the_calling_thread_and_on_a_spawner() {
    for on_spawner in [false, true] {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ps -o sid= -p $$; ps -o sid= -p $PPID"]).start_on_spawner(on_spawner);
        // SAFETY: setsid is one async-signal-safe system call; nothing is allocated.
        unsafe { cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into)) };
        let out = run(cmd.output()).unwrap();
        let sids: Vec<String> =
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
        assert_eq!(sids.len(), 2, "{out:?}");
        assert_ne!(sids[0], sids[1], "on_spawner={on_spawner}: the child leads a new session");
    }
}

#[test]
fn an_error_from_pre_exec_fails_the_spawn_with_that_error() {
    for on_spawner in [false, true] {
        let mut cmd = Command::new("true");
        cmd.start_on_spawner(on_spawner);
        // SAFETY: builds an error from a constant: no allocation, no lock.
        unsafe { cmd.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EDOM))) };
        let err = run(cmd.status()).unwrap_err();
        let std_err = polyloop::process::SpawnError::from_io(&err).expect("a spawn error");
        assert_eq!(std_err.raw_os_error(), Some(libc::EDOM), "{err}");
    }
}
