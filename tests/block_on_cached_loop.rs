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

        // Back to the built-in default: a loop of its own, not one seen before.
        polyloop::set_event_loop_policy(None);
        let back = running();
        assert!(back != lp && back != replacement);
    })
    .join()
    .unwrap();
}
