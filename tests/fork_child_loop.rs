//! A forked child of a process that has run loops (so async-io's reactor, its driver
//! thread and its epoll exist): a new loop works with timers, callbacks and tasks;
//! children started through a fresh watcher are reported; what needs the inherited
//! reactor (async pipes, the reactor-driven watchers) or was inherited (the parent's
//! watchers) fails with a clear error. Nothing hangs: every child arms an alarm, so a
//! hang ends it with SIGALRM and fails the test.
//!
//! Runs without the test harness: the process forks, and has few threads when it does.

// The children are reaped by the watchers under test, never by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use polyloop::EventLoop;
use polyloop::process::{
    ChildWatchError, ChildWatcher, Command, FastChildWatcher, MultiLoopChildWatcher,
    PidfdChildWatcher, SafeChildWatcher, ThreadedChildWatcher,
};

/// The child's alarm: far longer than any case needs, even on a busy machine.
const ALARM_SECS: u32 = 30;
const WATCHDOG: Duration = Duration::from_secs(20);

/// Forks; the child arms its alarm, runs `child` and exits with its code (101 on a
/// panic). The parent gets that code, or fails if the child died of a signal (the
/// alarm of a hang).
fn in_child(what: &str, child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: no other thread of this binary is inside the allocator or holds a lock
    // the child takes (no harness; the reactor's and spawner threads wait idle), so
    // the child may run ordinary code before it exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: `alarm` only arms a timer whose default action ends this process.
        unsafe { libc::alarm(ALARM_SECS) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: `_exit` ends the child without running the parent's atexit handlers
        // or flushing buffers twice.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we just made.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status),
        "{what}: the forked child died of signal {} (SIGALRM = {}: it hung)",
        libc::WTERMSIG(status),
        libc::SIGALRM
    );
    libc::WEXITSTATUS(status)
}

/// Uses timers and I/O on a loop, so that async-io's reactor and its thread run.
fn use_the_reactor() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = async_io::Async::new(b).unwrap();
    polyloop::block_on(async {
        polyloop::sleep(Duration::from_millis(1)).await;
        a.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        b.read_with(|mut s| s.read(&mut byte)).await.unwrap();
        assert_eq!(byte, *b"x");
    });
}

fn check(ok: bool, code: i32) -> Result<(), i32> {
    if ok { Ok(()) } else { Err(code) }
}

/// A new loop in the child: timers, timeouts, callbacks (soon and later) and tasks.
fn new_loop_works() -> Result<(), i32> {
    let lp = EventLoop::new().map_err(|_| 10)?;
    let out = lp
        .run_until_complete(async {
            polyloop::sleep(Duration::from_millis(5)).await;
            let t = polyloop::spawn(async {
                polyloop::sleep(Duration::from_millis(2)).await;
                7
            });
            let timed_out =
                polyloop::timeout(Duration::from_millis(5), std::future::pending::<()>()).await;
            (t.await, timed_out.is_err())
        })
        .map_err(|_| 11)?;
    check(out == (7, true), 12)?;
    let fired = Arc::new(AtomicBool::new(false));
    let (f, stopper) = (fired.clone(), lp.clone());
    lp.call_soon(move || f.store(true, Ordering::SeqCst));
    lp.call_later(Duration::from_millis(5), move || stopper.stop());
    lp.run_forever().map_err(|_| 13)?;
    check(fired.load(Ordering::SeqCst), 14)?;
    lp.close().map_err(|_| 15)?;
    // block_on too: a timer on this thread's loop.
    polyloop::block_on(polyloop::sleep(Duration::from_millis(1)));
    Ok(())
}

/// Children of the child: through a fresh threaded watcher, and through the default
/// watcher (made in the child, not the parent's).
fn children_through_a_fresh_watcher() -> Result<(), i32> {
    let threaded: Arc<dyn ChildWatcher> = Arc::new(ThreadedChildWatcher::new());
    let status = polyloop::block_on(polyloop::timeout(WATCHDOG, async {
        Command::new("sh").args(["-c", "exit 7"]).watcher(threaded).status().await
    }));
    check(matches!(status, Ok(Ok(s)) if s.code() == Some(7)), 20)?;
    let status = polyloop::block_on(polyloop::timeout(WATCHDOG, async {
        Command::new("sh").args(["-c", "exit 8"]).status().await
    }));
    check(matches!(status, Ok(Ok(s)) if s.code() == Some(8)), 21)?;
    Ok(())
}

/// What needs the reactor the child inherited fails at once, and says why.
fn reactor_io_fails_clearly() -> Result<(), i32> {
    let out = polyloop::block_on(polyloop::timeout(WATCHDOG, async {
        Command::new("sh").args(["-c", "echo hi"]).output().await
    }));
    let err = match out {
        Ok(Err(err)) => err,
        _ => return Err(30),
    };
    check(err.to_string().contains("fork"), 31)?;
    // Watchers that need the reactor cannot be made here.
    let err = MultiLoopChildWatcher::new().err().ok_or(32)?;
    check(err.to_string().contains("fork"), 33)?;
    check(SafeChildWatcher::new().is_err() && FastChildWatcher::new().is_err(), 34)?;
    let pidfd = PidfdChildWatcher::new();
    let child = std::process::Command::new("true").spawn().map_err(|_| 35)?;
    let err = polyloop::block_on(polyloop::timeout(WATCHDOG, pidfd.watch(child.id())));
    let err = match err {
        Ok(Err(err)) => err,
        _ => return Err(36),
    };
    check(err.to_string().contains("fork"), 37)?;
    // The child is still ours: reap it here.
    let _ = { child }.wait();
    Ok(())
}

/// The parent's watchers, inherited, refuse with `Forked` instead of hanging.
fn inherited_watchers_fail_clearly(watchers: &[Arc<dyn ChildWatcher>]) -> Result<(), i32> {
    for (i, w) in watchers.iter().enumerate() {
        let code = 40 + 3 * i as i32;
        check(!w.is_active(), code)?;
        let child = std::process::Command::new("true").spawn().map_err(|_| code)?;
        let got = polyloop::block_on(polyloop::timeout(WATCHDOG, w.watch(child.id())));
        let err = match got {
            Ok(Err(err)) => err,
            _ => return Err(code + 1),
        };
        let forked = matches!(ChildWatchError::from_io(&err), Some(ChildWatchError::Forked { .. }));
        check(forked && err.to_string().contains("fork"), code + 2)?;
        let _ = { child }.wait();
        let spawned = Command::new("true").watcher(w.clone()).spawn();
        check(spawned.is_err(), code + 2)?;
    }
    Ok(())
}

fn main() {
    use_the_reactor();
    // The five watchers, each used once in the parent. The fast one is detached before
    // the forks: its waitpid(-1) must not take the forked children from `in_child`.
    let lp = EventLoop::new().unwrap();
    let watchers: Vec<Arc<dyn ChildWatcher>> = vec![
        Arc::new(ThreadedChildWatcher::new()),
        Arc::new(PidfdChildWatcher::new()),
        Arc::new(MultiLoopChildWatcher::new().unwrap()),
        Arc::new(SafeChildWatcher::new().unwrap()),
        Arc::new(FastChildWatcher::new().unwrap()),
    ];
    for w in &watchers {
        w.attach_loop(Some(&lp));
        let child = std::process::Command::new("true").spawn().unwrap();
        let status = lp.run_until_complete(polyloop::timeout(WATCHDOG, w.watch(child.id())));
        assert!(status.unwrap().unwrap().unwrap().success(), "{} in the parent", w.name());
        w.attach_loop(None);
    }

    type Case<'a> = (&'a str, &'a dyn Fn() -> Result<(), i32>);
    let cases: [Case<'_>; 4] = [
        ("a new loop works in a forked child", &new_loop_works),
        ("children through a fresh watcher", &children_through_a_fresh_watcher),
        ("reactor I/O fails clearly", &reactor_io_fails_clearly),
        ("inherited watchers fail clearly", &|| inherited_watchers_fail_clearly(&watchers)),
    ];
    let mut failed = Vec::new();
    for (what, case) in cases {
        let code = in_child(what, || match case() {
            Ok(()) => 0,
            Err(code) => code,
        });
        println!(
            "test {what} ... {}",
            if code == 0 { "ok".into() } else { format!("FAILED (code {code})") }
        );
        if code != 0 {
            failed.push(what);
        }
    }

    // The parent's reactor was not disturbed by its children.
    use_the_reactor();
    for w in &watchers {
        w.close();
    }
    lp.close().unwrap();
    assert!(failed.is_empty(), "failed: {failed:?}");
    println!("fork_child_loop: ok");
}
