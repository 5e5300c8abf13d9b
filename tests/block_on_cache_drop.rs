//! When `block_on` lets go of the loop it kept at hand, the loop may be dropped there,
//! and with it the unfinished tasks whose destructors may call `block_on` again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls `block_on` from its destructor, and counts the calls that completed.
struct BlockOnInDrop(Arc<AtomicUsize>);

impl Drop for BlockOnInDrop {
    fn drop(&mut self) {
        let v = polyloop::block_on(async { 7 });
        assert_eq!(v, 7);
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_task_dropped_with_a_replaced_loop_may_call_block_on() {
    let done = Arc::new(AtomicUsize::new(0));
    let (d, seen) = (done.clone(), done.clone());
    std::thread::spawn(move || {
        // The thread's loop, kept at hand by `block_on`, with a task that never ends.
        polyloop::block_on(async move {
            let guard = BlockOnInDrop(d);
            polyloop::spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            })
            .detach();
            polyloop::yield_now().await;
        });
        // Another loop takes its place: the old one now lives only in the cache.
        let other = polyloop::new_event_loop().unwrap();
        polyloop::set_event_loop(Some(other.clone())).unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 0, "the old loop is alive");
        // This call drops the old loop and its task, whose destructor runs `block_on`.
        let lp = polyloop::block_on(async { polyloop::get_running_loop().unwrap() });
        assert_eq!(lp, other);
        assert_eq!(seen.load(Ordering::SeqCst), 1, "the old loop went with the cache");
        // The cache still works after the nested call.
        assert_eq!(polyloop::block_on(async { polyloop::get_running_loop().unwrap() }), other);
    })
    .join()
    .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 1, "the task's destructor ran once");
}
