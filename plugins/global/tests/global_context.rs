//! The global policy: one loop for the whole process, replaced for everyone by
//! `set_event_loop`, and replaced when closed or cleared.

// The helpers are shared with the other plug-in crates and the root tests.
#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use std::sync::{Arc, Barrier};
use std::thread;

use polyloop::{EventLoop, EventLoopPolicy};
use polyloop_global::GlobalPolicy;
use support::watchdog;

#[test]
fn registered_by_name() {
    let plugin = polyloop::plugin::find("global").unwrap();
    assert!(plugin.description.contains("whole process"), "{}", plugin.description);
    assert_eq!((plugin.create)().name(), "global");
}

#[test]
fn every_thread_gets_the_same_loop() {
    let policy = Arc::new(GlobalPolicy::new());
    // Many threads asking at once for the first time still get one loop.
    let start = Arc::new(Barrier::new(8));
    let loops: Vec<EventLoop> = (0..8)
        .map(|_| {
            let (policy, start) = (policy.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                policy.get_event_loop().unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(loops.iter().all(|lp| *lp == loops[0]));
    assert_eq!(policy.get_event_loop().unwrap(), loops[0]);
    assert_eq!(policy.current_loop(), Some(loops[0].clone()));
    loops[0].close().unwrap();
}

#[test]
fn set_event_loop_replaces_it_for_every_thread() {
    let policy = Arc::new(GlobalPolicy::new());
    let old = policy.get_event_loop().unwrap();
    let mine = policy.new_event_loop().unwrap();
    assert_ne!(mine, old, "new_event_loop makes a loop and does not set it");
    assert_eq!(policy.get_event_loop().unwrap(), old);

    let p = policy.clone();
    let m = mine.clone();
    thread::spawn(move || p.set_event_loop(Some(m)).unwrap()).join().unwrap();
    assert_eq!(policy.get_event_loop().unwrap(), mine);
    let p = policy.clone();
    assert_eq!(thread::spawn(move || p.get_event_loop().unwrap()).join().unwrap(), mine);
    assert!(!old.is_closed(), "the replaced loop is left open for its owner to close");
    old.close().unwrap();
    mine.close().unwrap();
}

#[test]
fn a_closed_or_cleared_loop_is_replaced_on_the_next_get() {
    let policy = GlobalPolicy::new();
    let first = policy.get_event_loop().unwrap();
    first.close().unwrap();
    assert_eq!(policy.current_loop(), None, "a closed loop is not current");
    let second = policy.get_event_loop().unwrap();
    assert_ne!(second, first);
    assert!(!second.is_closed());
    assert_eq!(policy.get_event_loop().unwrap(), second);

    policy.set_event_loop(None).unwrap();
    assert_eq!(policy.current_loop(), None);
    let third = policy.get_event_loop().unwrap();
    assert_ne!(third, second);
    second.close().unwrap();
    third.close().unwrap();
}

#[test]
fn work_from_other_threads_runs_on_the_one_loop() {
    watchdog("work_from_other_threads", || {
        let policy = Arc::new(GlobalPolicy::new());
        let tasks: Vec<_> = (0..4u64)
            .map(|i| {
                let policy = policy.clone();
                thread::spawn(move || policy.get_event_loop().unwrap().spawn(async move { i * 10 }))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let lp = policy.get_event_loop().unwrap();
        let sum = lp
            .run_until_complete(async {
                let mut sum = 0;
                for t in tasks {
                    sum += t.await;
                }
                sum
            })
            .unwrap();
        assert_eq!(sum, 60);
        lp.close().unwrap();
    });
}

#[test]
fn with_factory_makes_its_kind_of_loop() {
    let policy = GlobalPolicy::with_factory(|| EventLoop::builder().debug(true).build());
    let lp = policy.get_event_loop().unwrap();
    assert!(lp.get_debug());
    assert!(policy.new_event_loop().unwrap().get_debug());
    lp.close().unwrap();
}

/// The only test here that installs a process-wide policy.
#[test]
fn installed_by_name_it_is_the_process_loop() {
    watchdog("installed_by_name", || {
        let policy = polyloop::plugin::install("global").unwrap();
        assert_eq!(polyloop::get_event_loop_policy().name(), "global");
        let here = polyloop::get_event_loop().unwrap();
        let there = thread::spawn(polyloop::get_event_loop).join().unwrap().unwrap();
        assert_eq!(here, there);

        // While one thread runs the process loop, block_on elsewhere still works
        // (on a private loop), and tasks spawned onto the process loop run.
        let runner = {
            let lp = here.clone();
            thread::spawn(move || lp.run_forever())
        };
        support::eventually("the process loop to run", || here.is_running());
        assert_eq!(polyloop::block_on(async { 5 }), 5);
        let (tx, rx) = std::sync::mpsc::channel();
        here.spawn(async move { tx.send(polyloop::get_running_loop()).unwrap() }).detach();
        let ran_on = rx.recv_timeout(support::WATCHDOG).unwrap();
        assert_eq!(ran_on, Some(here.clone()));
        here.stop();
        runner.join().unwrap().unwrap();
        here.close().unwrap();
        assert_ne!(polyloop::get_event_loop().unwrap(), here);
        polyloop::get_event_loop().unwrap().close().unwrap();
        drop(policy);
        polyloop::set_event_loop_policy(None);
    });
}
