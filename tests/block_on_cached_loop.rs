//! `block_on` caches this thread's loop; every change of policy or of the thread's
//! loop must still be seen. One test, since it swaps the process-wide policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use polyloop::{DefaultEventLoopPolicy, Error, EventLoop, EventLoopPolicy};

fn running() -> EventLoop {
    polyloop::block_on(async { polyloop::get_running_loop().expect("a running loop") })
}

/// A policy that makes a new loop for every `get_event_loop`.
#[derive(Debug, Default)]
struct Fresh(AtomicUsize);

impl EventLoopPolicy for Fresh {
    fn name(&self) -> &str {
        "fresh"
    }
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        EventLoop::new()
    }
    fn set_event_loop(&self, _: Option<EventLoop>) -> Result<(), Error> {
        Ok(())
    }
    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        EventLoop::new()
    }
}

/// A policy that keeps its loops in a default policy's per-thread context, counts
/// the lookups, and lets `block_on` cache its loops.
#[derive(Debug, Default)]
struct Counted(DefaultEventLoopPolicy, AtomicUsize);

impl EventLoopPolicy for Counted {
    fn name(&self) -> &str {
        "counted"
    }
    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.get_event_loop_with(|| self.new_event_loop())
    }
    fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error> {
        self.0.set_event_loop(lp)
    }
    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        EventLoop::new()
    }
    fn thread_loops_cacheable(&self) -> bool {
        true
    }
}

#[test]
fn block_on_sees_every_change_of_loop_and_policy() {
    std::thread::spawn(|| {
        // The thread's loop, then another one set in its place.
        let first = running();
        assert_eq!(running(), first);
        let other = polyloop::new_event_loop().unwrap();
        polyloop::set_event_loop(Some(other.clone())).unwrap();
        assert_eq!(running(), other);

        // A closed loop is replaced.
        other.close().unwrap();
        let replacement = running();
        assert_ne!(replacement, other);
        assert!(!replacement.is_closed());

        // A custom policy is asked every time.
        let fresh = Arc::new(Fresh::default());
        polyloop::set_event_loop_policy(Some(fresh.clone()));
        let (a, b) = (running(), running());
        assert_ne!(a, b);
        assert_eq!(fresh.0.load(Ordering::SeqCst), 2);

        // Even a default policy passed in: its loop for this thread is its own.
        let mine = Arc::new(DefaultEventLoopPolicy::new());
        polyloop::set_event_loop_policy(Some(mine.clone()));
        let lp = polyloop::new_event_loop().unwrap();
        mine.set_event_loop(Some(lp.clone())).unwrap();
        assert_eq!(running(), lp);

        // A policy that says its loops may be cached is asked once, and a loop set
        // through it is still seen.
        let counted = Arc::new(Counted::default());
        polyloop::set_event_loop_policy(Some(counted.clone()));
        let lp = polyloop::new_event_loop().unwrap();
        counted.set_event_loop(Some(lp.clone())).unwrap();
        let asked = counted.1.load(Ordering::SeqCst);
        assert_eq!((running(), running(), running()), (lp.clone(), lp.clone(), lp.clone()));
        assert_eq!(counted.1.load(Ordering::SeqCst) - asked, 1, "asked once, then cached");
        let lp2 = polyloop::new_event_loop().unwrap();
        counted.set_event_loop(Some(lp2.clone())).unwrap();
        assert_eq!(running(), lp2);

        // Installed by name, the default policy's loops are cached as well.
        polyloop::plugin::install("default").unwrap();
        assert_eq!(running(), running());

        // Back to the built-in default: a loop of its own, not one seen before.
        polyloop::set_event_loop_policy(None);
        let back = running();
        assert!(back != lp && back != replacement);
    })
    .join()
    .unwrap();
}
