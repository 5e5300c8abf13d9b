//! After `fork()`, the child does not get its parent's loops (asyncio resets them).
//!
//! Runs without the test harness, so the process has few threads when it forks (the
//! reactor's and idle spawner threads, none inside the allocator: glibc's `fork` keeps
//! it usable in the child) and the child may run ordinary code.

mod common;

use std::sync::Arc;

use polyloop::EventLoop;
use polyloop::process::{ChildWatcher, Command, ThreadedChildWatcher};

/// Forks; the child runs `child` and exits with its code; the parent gets that code.
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: no other thread of this binary is inside the allocator or holds a lock
    // the child takes (no harness; the reactor's and spawner threads wait idle), so
    // the child may run ordinary code before it exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: `_exit` ends the child without running the parent's atexit handlers
        // or flushing buffers twice.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we just made.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    libc::WEXITSTATUS(status)
}

fn main() {
    // The parent sets a current loop, then forks.
    let parent = polyloop::get_event_loop().unwrap();
    let parent_id = parent.id();
    let code = in_child(move || {
        let lp = match polyloop::get_event_loop() {
            Ok(lp) => lp,
            Err(_) => return 2,
        };
        if lp.id() == parent_id {
            return 3; // handed out the parent's loop
        }
        // The new loop works.
        if polyloop::block_on(async { 5 }) != 5 {
            return 4;
        }
        0
    });
    assert_eq!(code, 0, "child saw the parent's current loop (code {code})");

    // Forking from inside a running loop: the child has no running loop.
    let lp = EventLoop::new().unwrap();
    let code = lp
        .run_until_complete(async {
            in_child(|| {
                if polyloop::get_running_loop().is_some() {
                    return 5;
                }
                // block_on does not refuse: the child is not inside a loop.
                if polyloop::block_on(async { 1 }) != 1 {
                    return 6;
                }
                0
            })
        })
        .unwrap();
    assert_eq!(code, 0, "child saw the parent's running loop (code {code})");

    // block_on keeps its loop per thread; a child must not reuse the parent's.
    let used = polyloop::block_on(async { polyloop::get_running_loop().unwrap().id() });
    let code = in_child(move || {
        let in_child = polyloop::block_on(async { polyloop::get_running_loop().unwrap().id() });
        if in_child == used { 7 } else { 0 }
    });
    assert_eq!(code, 0, "block_on in the child reused the parent's loop (code {code})");

    let watcher = || -> Arc<dyn ChildWatcher> { Arc::new(ThreadedChildWatcher::new()) };

    // Starting a child makes async-io's reactor and its thread, with no loop run yet:
    // a child forked then must not use that reactor either (its lock and epoll stay
    // with the parent's thread, and a loop there hung at its first timer). The parent's
    // child is reaped by the threaded watcher, waited for after the fork.
    let mut started = Command::new("true").watcher(watcher()).spawn().unwrap();
    let code = in_child(|| {
        // SAFETY: `alarm` only arms a timer whose default action ends this process.
        unsafe { libc::alarm(20) };
        polyloop::block_on(polyloop::sleep(std::time::Duration::from_millis(1)));
        let lp = EventLoop::new().unwrap();
        lp.run_until_complete(polyloop::sleep(std::time::Duration::from_millis(1))).unwrap();
        0
    });
    assert_eq!(code, 0, "a timer in a child forked after a spawn failed (code {code})");
    assert!(polyloop::block_on(started.wait()).unwrap().success());

    // `status` can start children on spawner threads, which a forked child does not get:
    // fork while the parent's are alive (idle, waiting for work), and the child's
    // `status` must start threads of its own. An alarm ends a child that would hang.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exit 4"]).watcher(watcher()).start_on_spawner(true);
    let parent_status = polyloop::block_on(cmd.status());
    assert_eq!(parent_status.unwrap().code(), Some(4));
    let code = in_child(move || {
        // SAFETY: `alarm` only arms a timer whose default action ends this process.
        unsafe { libc::alarm(20) };
        let status = polyloop::block_on(
            Command::new("sh")
                .args(["-c", "exit 9"])
                .watcher(watcher())
                .start_on_spawner(true)
                .status(),
        );
        match status.map(|s| s.code()) {
            Ok(Some(9)) => 0,
            _ => 8,
        }
    });
    assert_eq!(code, 0, "status() in a forked child failed (code {code})");

    // The parent keeps its loop.
    assert_eq!(polyloop::get_event_loop().unwrap(), parent);
    println!("fork: ok");
}
