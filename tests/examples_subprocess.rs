//! Runs `examples/subprocess.rs` (compiled into this test) with every child watcher,
//! and with a bad and a good `POLYLOOP_CHILD_WATCHER`; then checks that no child is
//! left unreaped.
//!
//! Its own process (`harness = false`): it sets the environment before any thread
//! starts, and the fast watcher reaps with `waitpid(-1)`.

mod common;

use std::sync::Arc;

use polyloop::process::{ChildWatcher, WatcherKind};

#[path = "../examples/subprocess.rs"]
#[allow(unreachable_pub)]
mod example;

fn no_children_left() -> bool {
    std::fs::read_dir("/proc/self/task").unwrap().flatten().all(|t| {
        std::fs::read_to_string(t.path().join("children")).unwrap_or_default().trim().is_empty()
    })
}

fn main() {
    let mut passed = 0;

    // SAFETY: no other thread exists yet (nothing has touched the reactor or spawned),
    // so nothing reads the environment concurrently.
    unsafe { std::env::set_var("POLYLOOP_CHILD_WATCHER", "signals") };
    let err = example::main().unwrap_err().to_string();
    assert!(
        err.contains("POLYLOOP_CHILD_WATCHER=\"signals\" is not valid")
            && err.contains("pidfd, threaded, multiloop, safe, fast"),
        "{err}"
    );
    println!("test bad_env_value_lists_the_allowed_ones ... ok");
    passed += 1;

    // SAFETY: as above: still no other thread (the failed run started none).
    unsafe { std::env::set_var("POLYLOOP_CHILD_WATCHER", "multiloop") };
    example::main().unwrap();
    assert_eq!(polyloop::get_child_watcher().unwrap().name(), "multiloop");
    println!("test example_with_env_multiloop ... ok");
    passed += 1;

    for kind in WatcherKind::ALL {
        let watcher: Arc<dyn ChildWatcher> = kind.create().unwrap();
        polyloop::set_child_watcher(Some(watcher));
        example::main().unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(polyloop::get_child_watcher().unwrap().name(), kind.name());
        println!("test example_with_{kind} ... ok");
        passed += 1;
    }
    polyloop::set_child_watcher(None);

    assert!(no_children_left(), "the example left children unreaped");
    println!("test no_children_left ... ok");
    passed += 1;
    println!("\ntest result: ok. {passed} passed; 0 failed");
}
