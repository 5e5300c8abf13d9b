//! Every plug-in, linked into one binary: listed, installed by name and through
//! `POLYLOOP_POLICY`, and each running the same workload (10k tasks, timers and
//! callbacks, a channel ping-pong).

mod common;
#[path = "plugin_support/mod.rs"]
mod support;

use std::time::Duration;

use polyloop::EventLoop;
// The linking rule: a plug-in crate that is never named is dropped by the linker.
use polyloop_debug as _;
use polyloop_global as _;
use polyloop_threadpool as _;
use support::{is_child, run_child, watchdog};

/// Every policy this binary links, sorted.
const ALL: [&str; 4] = ["debug", "default", "global", "threadpool"];

/// The same work under every policy: many tasks, timers and callbacks, a ping-pong.
fn workload(lp: &EventLoop) {
    let handle = lp.clone();
    lp.run_until_complete(async move {
        // 10k tasks, each yielding once.
        let tasks: Vec<_> = (0..10_000u64)
            .map(|i| {
                polyloop::spawn(async move {
                    polyloop::yield_now().await;
                    i
                })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await;
        }
        assert_eq!(sum, 49_995_000);

        // Timers: sleeps in tasks, a timeout that fires, a callback by deadline.
        let sleepers: Vec<_> = (1..=20u64)
            .map(|ms| polyloop::spawn(polyloop::sleep(Duration::from_millis(ms))))
            .collect();
        for s in sleepers {
            s.await;
        }
        let never = polyloop::sleep(Duration::from_secs(3600));
        assert!(polyloop::timeout(Duration::from_millis(2), never).await.is_err());
        let (tx, rx) = async_channel::bounded(2);
        let later = tx.clone();
        handle.call_later(Duration::from_millis(3), move || later.try_send("later").unwrap());
        handle.call_soon(move || tx.try_send("soon").unwrap());
        assert_eq!(rx.recv().await.unwrap(), "soon");
        assert_eq!(rx.recv().await.unwrap(), "later");

        // A ping-pong between two tasks over channels.
        let (ping_tx, ping_rx) = async_channel::bounded::<u32>(1);
        let (pong_tx, pong_rx) = async_channel::bounded::<u32>(1);
        let ponger = polyloop::spawn(async move {
            while let Ok(n) = ping_rx.recv().await {
                pong_tx.send(n + 1).await.unwrap();
            }
        });
        let mut n = 0;
        for _ in 0..1000 {
            ping_tx.send(n).await.unwrap();
            n = pong_rx.recv().await.unwrap();
        }
        assert_eq!(n, 1000);
        drop(ping_tx);
        ponger.await;
    })
    .unwrap();
}

#[test]
fn lists_every_plugin() {
    let plugins = polyloop::plugin::plugins();
    let names: Vec<_> = plugins.iter().map(|p| p.name).collect();
    assert_eq!(names, ALL);
    for p in &plugins {
        assert!(!p.description.is_empty(), "{p:?}");
        let origin = if p.name == "default" {
            "polyloop::plugin".to_string()
        } else {
            format!("polyloop_{}", p.name)
        };
        assert_eq!(p.origin, origin);
        assert_eq!((p.create)().name(), p.name);
    }
}

#[test]
fn the_same_workload_runs_under_every_policy() {
    for name in ALL {
        watchdog(name, move || {
            let policy = (polyloop::plugin::find(name).unwrap().create)();
            let lp = policy.new_event_loop().unwrap();
            workload(&lp);
            lp.close().unwrap();
        });
    }
}

/// The only test here that sets the process-wide policy.
#[test]
fn each_installs_by_name() {
    for name in ALL {
        watchdog(name, move || {
            let installed = polyloop::plugin::install(name).unwrap();
            assert_eq!(installed.name(), name);
            assert_eq!(polyloop::get_event_loop_policy().name(), name);
            let lp = polyloop::new_event_loop().unwrap();
            workload(&lp);
            lp.close().unwrap();
        });
    }
    polyloop::set_event_loop_policy(None);
    assert_eq!(polyloop::get_event_loop_policy().name(), "default");
}

#[test]
fn each_installs_from_polyloop_policy() {
    for name in ALL {
        run_child("child_install_from_env", &[("POLYLOOP_POLICY", name)]);
    }
}

#[test]
#[ignore = "run by each_installs_from_polyloop_policy in a child process"]
fn child_install_from_env() {
    if !is_child() {
        return;
    }
    let name = std::env::var("POLYLOOP_POLICY").unwrap();
    let policy = polyloop::plugin::install_from_env().unwrap();
    assert_eq!(policy.name(), name);
    assert_eq!(polyloop::get_event_loop_policy().name(), name);
    let lp = polyloop::new_event_loop().unwrap();
    workload(&lp);
    lp.close().unwrap();
}

#[test]
fn an_unknown_polyloop_policy_is_a_clear_error() {
    run_child("child_unknown_policy_from_env", &[("POLYLOOP_POLICY", "fibers")]);
}

#[test]
#[ignore = "run by an_unknown_polyloop_policy_is_a_clear_error in a child process"]
fn child_unknown_policy_from_env() {
    if !is_child() {
        return;
    }
    let err = polyloop::plugin::install_from_env().unwrap_err();
    assert!(err.is_unknown_policy());
    assert_eq!(
        err.to_string(),
        "no event loop policy is registered as \"fibers\"; registered: debug, default, global, \
         threadpool. A plug-in crate is only found when the binary links it: name it in code, \
         e.g. `use polyloop_threadpool as _;`"
    );
    assert_eq!(polyloop::get_event_loop_policy().name(), "default", "nothing was installed");
}

#[test]
fn bad_polyloop_workers_is_a_clear_error() {
    for value in ["0", "abc"] {
        run_child(
            "child_bad_workers",
            &[("POLYLOOP_POLICY", "threadpool"), ("POLYLOOP_WORKERS", value)],
        );
    }
}

#[test]
#[ignore = "run by bad_polyloop_workers_is_a_clear_error in a child process"]
fn child_bad_workers() {
    if !is_child() {
        return;
    }
    let value = std::env::var("POLYLOOP_WORKERS").unwrap();
    let expected = format!(
        "POLYLOOP_WORKERS={value:?} is not valid; expected a whole number of worker threads from \
         1 to 1024 (polyloop::plugin::MAX_WORKERS)"
    );
    assert_eq!(polyloop::plugin::workers().unwrap_err().to_string(), expected);
    polyloop::plugin::install_from_env().unwrap();
    assert_eq!(polyloop::new_event_loop().unwrap_err().to_string(), expected);
}

#[test]
fn polyloop_debug_turns_debug_on_under_every_policy() {
    run_child("child_debug_everywhere", &[("POLYLOOP_DEBUG", "1")]);
    run_child("child_debug_everywhere", &[("POLYLOOP_DEBUG", "0")]);
}

#[test]
#[ignore = "run by polyloop_debug_turns_debug_on_under_every_policy in a child process"]
fn child_debug_everywhere() {
    if !is_child() {
        return;
    }
    let on = std::env::var("POLYLOOP_DEBUG").unwrap() == "1";
    for name in ALL {
        let lp = (polyloop::plugin::find(name).unwrap().create)().new_event_loop().unwrap();
        // The debug policy's loops are debug loops whatever the variable says.
        assert_eq!(lp.get_debug(), on || name == "debug", "{name}");
        lp.close().unwrap();
    }
}

#[test]
fn a_bad_polyloop_debug_is_a_clear_error() {
    run_child("child_bad_debug", &[("POLYLOOP_DEBUG", "yes")]);
}

#[test]
#[ignore = "run by a_bad_polyloop_debug_is_a_clear_error in a child process"]
fn child_bad_debug() {
    if !is_child() {
        return;
    }
    for name in ["default", "global", "threadpool"] {
        let err = (polyloop::plugin::find(name).unwrap().create)().new_event_loop().unwrap_err();
        assert_eq!(
            err.to_string(),
            "POLYLOOP_DEBUG=\"yes\" is not valid; expected 1 or true (debug on), 0 or false (off)",
            "{name}"
        );
    }
}
