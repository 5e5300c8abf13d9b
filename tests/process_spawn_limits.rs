//! Spawning under a resource limit that stops the reactor's thread from starting:
//! the spawn returns an `io::Error`, nothing panics, and no child is left behind.
//!
//! Root ignores `RLIMIT_NPROC`, and the tests run as root here. So the case runs in a
//! forked copy of this process that drops to the unprivileged uid and gid 65534
//! (`nobody`) before it sets the limit: first to the tasks that uid already has (no
//! thread can start: making a signal-driven watcher is an error), then to one more
//! (the fork of a child fits, a thread after it does not). Its own process
//! (`harness = false`): the fork must come before this process starts the reactor
//! or any thread, which a forked copy would not have.

mod common;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

use polyloop::process::MultiLoopChildWatcher;

const NOBODY: u32 = 65534;

/// Tasks (threads) of `uid`, counted from /proc: what `RLIMIT_NPROC` counts.
fn tasks_of(uid: u32) -> u64 {
    let mut n = 0;
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        // Processes only, not /proc/self and /proc/thread-self.
        if p.file_name().to_str().is_none_or(|s| s.parse::<u32>().is_err()) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(p.path().join("status")) else { continue };
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string())
        };
        let real = field("Uid:").and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
        if real == Some(uid) {
            n += field("Threads:").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
        }
    }
    n
}

/// Runs in the forked copy: returns what went wrong, if anything.
fn limited_spawn() -> Result<(), String> {
    // SAFETY: plain syscalls on this single-threaded forked process; the order (groups,
    // gid, then uid) is the one that works while we still are root.
    unsafe {
        if libc::getuid() == 0 {
            let ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(NOBODY) == 0
                && libc::setuid(NOBODY) == 0;
            if !ok {
                return Err(format!("cannot drop to uid {NOBODY}"));
            }
        }
    }
    // SAFETY: as above.
    let uid = unsafe { libc::getuid() };
    let tasks = tasks_of(uid);

    // No new task at all: a signal-driven watcher cannot start the reactor it needs.
    set_nproc(tasks, tasks + 1)?;
    match catch_unwind(MultiLoopChildWatcher::new) {
        Err(_) => return Err("MultiLoopChildWatcher::new panicked".into()),
        Ok(Ok(_)) => return Err("a watcher was made with no reactor thread".into()),
        Ok(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
        Ok(Err(err)) => return Err(format!("not the limit's error: {err}")),
    }

    // One more task: the fork of a child fits, a thread after it does not.
    set_nproc(tasks + 1, tasks + 1)?;
    let spawned = catch_unwind(AssertUnwindSafe(|| {
        polyloop::block_on(polyloop::process::Command::new("sh").args(["-c", "exit 3"]).status())
    }));
    let outcome = match spawned {
        Err(_) => Err("Command::status panicked".to_string()),
        Ok(Ok(status)) => Err(format!("a thread and a child both fitted: {status:?}")),
        Ok(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Ok(Err(err)) => Err(format!("not the limit's error: {err}")),
    };
    let left = common::children();
    if !left.is_empty() {
        return Err(format!("{outcome:?}, and children left behind: {left:?}"));
    }
    outcome
}

fn set_nproc(soft: u64, hard: u64) -> Result<(), String> {
    let rlim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: a valid rlimit for this process.
    if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &rlim) } != 0 {
        return Err(format!("cannot set RLIMIT_NPROC to {soft}"));
    }
    Ok(())
}

fn main() {
    println!("\nrunning 1 test");
    // SAFETY: no thread has been started in this process yet; the forked copy only
    // runs `limited_spawn` and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match limited_spawn() {
            Ok(()) => 0,
            Err(what) => {
                eprintln!("{what}");
                1
            }
        };
        // SAFETY: ends the forked copy without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the forked copy, into a local status word.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    println!(
        "test a_spawn_when_the_reactor_thread_cannot_start_is_an_error_and_leaves_no_zombie ... {}",
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        std::process::exit(1);
    }
    println!("\ntest result: ok. 1 passed");
}
