//! The watcher conformance suite (tests/watcher_suite) on `SafeChildWatcher`.
//!
//! Its own test binary (`harness = false`): the cases run one after another, then
//! the process is checked for zombie children and leaked fds.

mod common;

mod watcher_suite;

use std::sync::Arc;

use polyloop::process::{ChildWatcher, SafeChildWatcher};

fn make() -> Arc<dyn ChildWatcher> {
    Arc::new(SafeChildWatcher::new().unwrap())
}

fn main() {
    watcher_suite::run(watcher_suite::Kit {
        name: "safe",
        make,
        needs_loop: true,
        flat_threads: true,
    });
}
