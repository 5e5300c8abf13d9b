//! The watcher conformance suite (tests/watcher_suite) on `PidfdChildWatcher`.
//!
//! Its own test binary (`harness = false`): the cases run one after another, then
//! the process is checked for zombie children and leaked fds.

mod common;

mod watcher_suite;

use std::sync::Arc;

use polyloop::process::{ChildWatcher, PidfdChildWatcher};

fn make() -> Arc<dyn ChildWatcher> {
    Arc::new(PidfdChildWatcher::new())
}

fn main() {
    watcher_suite::run(watcher_suite::Kit {
        name: "pidfd",
        make,
        needs_loop: false,
        flat_threads: true,
    });
}
