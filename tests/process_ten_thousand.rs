//! 10,000 children through the pidfd watcher, at most 64 alive at a time: every status
//! is right, and the process ends with the file descriptors it started with.

mod common;

use std::sync::Arc;
use std::time::Duration;

use polyloop::process::{ChildWatcher, Command, PidfdChildWatcher};

fn fd_count() -> usize {
    common::open_fds().len()
}

#[test]
fn ten_thousand_children_leave_the_fd_count_unchanged() {
    if !PidfdChildWatcher::is_supported() {
        eprintln!("pidfd_open is not supported here; nothing to check");
        return;
    }
    let watcher: Arc<dyn ChildWatcher> = Arc::new(PidfdChildWatcher::new());
    polyloop::block_on(async {
        // Warm up the reactor and the watcher before counting.
        Command::new("true").watcher(watcher.clone()).status().await.unwrap();
        let before = fd_count();
        let total = 10_000;
        let in_flight = 64;
        let done = polyloop::timeout(Duration::from_secs(600), async {
            let mut ok = 0;
            let mut next = 0;
            let mut running = Vec::new();
            while ok < total {
                while running.len() < in_flight && next < total {
                    let code = next % 7;
                    let child = Command::new("sh")
                        .args(["-c", &format!("exit {code}")])
                        .watcher(watcher.clone())
                        .spawn()
                        .unwrap();
                    running.push(polyloop::spawn(async move {
                        let mut child = child;
                        (code, child.wait().await.unwrap())
                    }));
                    next += 1;
                }
                let batch = std::mem::take(&mut running);
                for t in batch {
                    let (code, status) = t.await;
                    assert_eq!(status.code(), Some(code));
                    ok += 1;
                }
            }
            ok
        })
        .await
        .expect("watchdog: 10,000 children did not finish");
        assert_eq!(done, total);
        // A watcher may close the last pidfds just after it has woken their waiters, on
        // the thread that drives the reactor: let that settle (a watchdog, not a timing
        // check).
        let mut after = fd_count();
        for _ in 0..1000 {
            if after == before {
                break;
            }
            polyloop::sleep(Duration::from_millis(10)).await;
            after = fd_count();
        }
        assert_eq!(after, before, "the fd count changed over 10,000 children");
        assert!(common::children().is_empty(), "children left: {:?}", common::children());
    });
    watcher.close();
}
