//! The loop that `block_on` keeps at hand for a thread is let go when the thread exits:
//! its unfinished tasks are dropped, and nothing of it lingers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_thread_that_used_block_on_releases_its_loop_when_it_exits() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = SetOnDrop(dropped.clone());
    let seen = dropped.clone();
    std::thread::spawn(move || {
        polyloop::block_on(async move {
            // A task that never finishes lives as long as its loop.
            polyloop::spawn(async move {
                let _flag = flag;
                std::future::pending::<()>().await
            })
            .detach();
            polyloop::yield_now().await;
        });
        // The loop is cached for the next call, and still holds the task.
        polyloop::block_on(async {});
        assert!(!seen.load(Ordering::SeqCst), "the task was dropped while its loop lives");
    })
    .join()
    .unwrap();
    assert!(dropped.load(Ordering::SeqCst), "the thread's loop outlived the thread");
}
