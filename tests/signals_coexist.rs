//! SIGCHLD watchers and `std::process::Child::wait` in one process: the multi-loop and
//! safe watchers poll only the pids they were given, so a child started and waited for
//! by other code keeps its status; the fast watcher's `waitpid(-1)` takes it (its
//! documented hazard), and keeps the status for a handler added later.
//!
//! Its own process (`harness = false`): the fast watcher reaps every child of the
//! process, and the safe watcher needs the main thread's loop.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use polyloop::process::{
    ChildWatcher, Command, FastChildWatcher, MultiLoopChildWatcher, SafeChildWatcher,
};

fn sh(script: &str) -> std::process::Command {
    let mut c = std::process::Command::new("sh");
    c.args(["-c", script]);
    c
}

/// Ours and theirs, interleaved: each side gets exactly its own statuses.
fn coexists_with_std_wait(watcher: Arc<dyn ChildWatcher>) {
    polyloop::block_on(async {
        polyloop::timeout(Duration::from_secs(60), async {
            for round in 0..20 {
                let mut ours = Command::new("sh")
                    .args(["-c", &format!("sleep 0.0{}; exit 3", round % 3)])
                    .watcher(watcher.clone())
                    .spawn()
                    .unwrap();
                // Theirs, started and waited for on a plain thread.
                let theirs = std::thread::spawn(move || {
                    let mut child = sh(&format!("exit {}", 10 + round)).spawn().unwrap();
                    child.wait()
                });
                let our_status = ours.wait().await.unwrap();
                assert_eq!(our_status.code(), Some(3), "{}: our child's status", watcher.name());
                let their_status = theirs.join().unwrap().unwrap_or_else(|e| {
                    panic!("{}: std's wait lost its child: {e}", watcher.name())
                });
                assert_eq!(their_status.code(), Some(10 + round));
            }
        })
        .await
        .expect("watchdog: coexistence run hung");
    });
    watcher.close();
}

fn fast_takes_other_codes_children_and_keeps_their_status() {
    let watcher = Arc::new(FastChildWatcher::new().unwrap());
    let lp = polyloop::get_event_loop().unwrap();
    watcher.attach_loop(Some(&lp));
    let mut theirs = sh("exit 7").spawn().unwrap();
    let pid = theirs.id();
    let status = lp
        .run_until_complete(async {
            polyloop::timeout(Duration::from_secs(30), async {
                // Wait until the fast watcher has reaped it (its /proc entry is gone).
                while Path::new(&format!("/proc/{pid}")).exists() {
                    polyloop::sleep(Duration::from_millis(5)).await;
                }
                // The status was kept: a handler added now still gets it.
                watcher.watch(pid).await
            })
            .await
            .expect("watchdog: the fast watcher never reaped the child")
        })
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    let err = theirs.wait().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECHILD), "std's wait finds its child gone: {err}");
    watcher.close();
}

fn main() {
    coexists_with_std_wait(Arc::new(MultiLoopChildWatcher::new().unwrap()));
    println!("signals_coexist: multiloop ok");
    let safe = Arc::new(SafeChildWatcher::new().unwrap());
    safe.attach_loop(Some(&polyloop::get_event_loop().unwrap()));
    coexists_with_std_wait(safe);
    println!("signals_coexist: safe ok");
    fast_takes_other_codes_children_and_keeps_their_status();
    println!("signals_coexist: fast's hazard ok");
}
