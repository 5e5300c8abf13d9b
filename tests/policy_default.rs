//! The default policy and the process-wide policy slot, with asyncio's rules.
//!
//! These tests run on the test harness's threads, none of which is the main thread;
//! `policy_main_thread.rs` covers the main thread.

mod common;

use std::sync::{Arc, Mutex};

use polyloop::{DefaultEventLoopPolicy, Error, EventLoop, EventLoopPolicy};

/// Tests in this file that change the process-wide policy take this lock.
static SLOT: Mutex<()> = Mutex::new(());

#[test]
fn a_thread_without_a_loop_gets_an_error_naming_it() {
    let policy = DefaultEventLoopPolicy::new();
    let err = std::thread::Builder::new()
        .name("worker-7".into())
        .spawn(move || policy.get_event_loop().unwrap_err())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(err, Error::NoCurrentLoop { thread: "worker-7".into() });
    assert!(err.to_string().contains("no current event loop in thread 'worker-7'"));
}

#[test]
fn set_then_get_returns_the_same_loop_and_none_clears_it() {
    let policy = DefaultEventLoopPolicy::new();
    let lp = policy.new_event_loop().unwrap();
    policy.set_event_loop(Some(lp.clone())).unwrap();
    assert_eq!(policy.get_event_loop().unwrap(), lp);
    policy.set_event_loop(None).unwrap();
    assert!(policy.get_event_loop().unwrap_err().is_no_current_loop());
}

#[test]
fn each_thread_has_its_own_loop() {
    let policy = Arc::new(DefaultEventLoopPolicy::new());
    let loops: Vec<EventLoop> = (0..4)
        .map(|_| {
            let policy = policy.clone();
            std::thread::spawn(move || {
                let lp = policy.new_event_loop().unwrap();
                policy.set_event_loop(Some(lp.clone())).unwrap();
                assert_eq!(policy.get_event_loop().unwrap(), lp);
                lp
            })
            .join()
            .unwrap()
        })
        .collect();
    for (i, a) in loops.iter().enumerate() {
        for b in &loops[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // This thread never set one.
    assert!(policy.get_event_loop().is_err());
}

#[test]
fn two_policies_keep_separate_loops_on_one_thread() {
    let p1 = DefaultEventLoopPolicy::new();
    let p2 = DefaultEventLoopPolicy::new();
    let lp = p1.new_event_loop().unwrap();
    p1.set_event_loop(Some(lp.clone())).unwrap();
    assert_eq!(p1.get_event_loop().unwrap(), lp);
    assert!(p2.get_event_loop().is_err());
}

#[test]
fn new_event_loop_always_returns_a_fresh_loop() {
    let policy = DefaultEventLoopPolicy::new();
    let a = policy.new_event_loop().unwrap();
    let b = policy.new_event_loop().unwrap();
    assert_ne!(a, b);
    assert!(!a.is_closed() && !a.is_running());
}

#[test]
fn get_event_loop_returns_the_running_loop_first() {
    let _slot = SLOT.lock().unwrap();
    let set = polyloop::new_event_loop().unwrap();
    polyloop::set_event_loop(Some(set.clone())).unwrap();
    let running = EventLoop::new().unwrap();
    let r = running.clone();
    let got = running.run_until_complete(async { polyloop::get_event_loop() }).unwrap().unwrap();
    assert_eq!(got, r);
    assert_eq!(polyloop::get_event_loop().unwrap(), set);
    polyloop::set_event_loop(None).unwrap();
}

#[test]
fn set_event_loop_policy_none_restores_a_fresh_default() {
    let _slot = SLOT.lock().unwrap();
    #[derive(Debug)]
    struct Custom;
    impl EventLoopPolicy for Custom {
        fn name(&self) -> &str {
            "custom"
        }
        fn get_event_loop(&self) -> Result<EventLoop, Error> {
            Err(Error::NoCurrentLoop { thread: "custom".into() })
        }
        fn set_event_loop(&self, _: Option<EventLoop>) -> Result<(), Error> {
            Ok(())
        }
        fn new_event_loop(&self) -> Result<EventLoop, Error> {
            EventLoop::builder().debug(true).build()
        }
    }
    let before = polyloop::get_event_loop_policy();
    polyloop::set_event_loop_policy(Some(Arc::new(Custom)));
    assert_eq!(polyloop::get_event_loop_policy().name(), "custom");
    assert!(polyloop::new_event_loop().unwrap().get_debug());
    polyloop::set_event_loop_policy(None);
    let after = polyloop::get_event_loop_policy();
    assert_eq!(after.name(), "default");
    assert!(!Arc::ptr_eq(&before, &after), "a fresh default policy, as asyncio makes");
    // The same default is kept until it is replaced.
    assert!(Arc::ptr_eq(&after, &polyloop::get_event_loop_policy()));
}

#[test]
fn free_functions_go_through_the_installed_policy() {
    let _slot = SLOT.lock().unwrap();
    polyloop::set_event_loop_policy(None);
    let lp = polyloop::new_event_loop().unwrap();
    polyloop::set_event_loop(Some(lp.clone())).unwrap();
    assert_eq!(polyloop::get_event_loop_policy().get_event_loop().unwrap(), lp);
    polyloop::set_event_loop(None).unwrap();
    assert!(polyloop::get_event_loop().unwrap_err().is_no_current_loop());
}

/// The loop that `set_event_loop` replaces may be let go right there (its last handle),
/// which closes it and drops its tasks; a task whose destructor looks up this thread's
/// loop must find the policy usable, not in the middle of an update.
#[test]
fn a_replaced_loop_s_tasks_may_look_up_the_loop_when_they_are_dropped() {
    struct LooksUp(Arc<DefaultEventLoopPolicy>, Arc<Mutex<Option<bool>>>);
    impl Drop for LooksUp {
        fn drop(&mut self) {
            *self.1.lock().unwrap() = Some(self.0.current_loop().is_none());
        }
    }
    let policy = Arc::new(DefaultEventLoopPolicy::new());
    let seen = Arc::new(Mutex::new(None));
    let lp = policy.new_event_loop().unwrap();
    let guard = LooksUp(policy.clone(), seen.clone());
    lp.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    })
    .detach();
    policy.set_event_loop(Some(lp)).unwrap();
    // The policy held the last handle: replacing the loop lets it go.
    policy.set_event_loop(None).unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(true), "the task was dropped and saw no loop");
}
