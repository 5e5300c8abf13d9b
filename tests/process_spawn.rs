//! `Command::spawn` when the watcher refuses the child after the fork.

mod common;

use std::sync::{Arc, Mutex};

use polyloop::EventLoop;
use polyloop::process::{ChildExit, ChildWatchError, ChildWatcher, Command, PidfdChildWatcher};

/// A pidfd watcher that is closed (as by `set_child_watcher` on another thread)
/// between `spawn`'s `is_active` check and its `watch`.
#[derive(Debug, Default)]
struct ClosedMeanwhile {
    inner: PidfdChildWatcher,
    watched: Mutex<Option<u32>>,
}

impl ChildWatcher for ClosedMeanwhile {
    fn add_child_handler(&self, pid: u32, callback: Box<dyn FnOnce(u32, i32) + Send + 'static>) {
        self.inner.add_child_handler(pid, callback);
    }

    fn remove_child_handler(&self, pid: u32) -> bool {
        self.inner.remove_child_handler(pid)
    }

    fn attach_loop(&self, lp: Option<&EventLoop>) {
        self.inner.attach_loop(lp);
    }

    fn is_active(&self) -> bool {
        true
    }

    fn close(&self) {
        self.inner.close();
    }

    fn watch(&self, pid: u32) -> ChildExit {
        *self.watched.lock().unwrap() = Some(pid);
        self.inner.close();
        self.inner.watch(pid)
    }
}

#[test]
fn spawn_kills_and_reaps_a_child_its_watcher_refused() {
    let w = Arc::new(ClosedMeanwhile::default());
    let err = Command::new("sleep").arg("30").watcher(w.clone()).spawn().unwrap_err();
    assert!(
        matches!(ChildWatchError::from_io(&err), Some(ChildWatchError::Closed { .. })),
        "{err}"
    );
    let pid = w.watched.lock().unwrap().expect("the child was started");
    // Killed and reaped before spawn returned: not even a zombie is left.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "child {pid} remains");
}
