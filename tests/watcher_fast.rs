//! The watcher conformance suite (tests/watcher_suite) on `FastChildWatcher`.
//!
//! Its own test binary (`harness = false`): the cases run one after another, then
//! the process is checked for zombie children and leaked fds.

mod common;

mod watcher_suite;

use std::sync::Arc;

use polyloop::process::{ChildWatcher, FastChildWatcher};

fn make() -> Arc<dyn ChildWatcher> {
    Arc::new(FastChildWatcher::new().unwrap())
}

fn main() {
    watcher_suite::run(watcher_suite::Kit {
        name: "fast",
        make,
        needs_loop: true,
        flat_threads: true,
    });
}
