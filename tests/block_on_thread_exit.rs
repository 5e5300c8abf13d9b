//! The loop that `block_on` keeps at hand for a thread is let go when the thread exits:
//! its unfinished tasks are dropped, and nothing of it lingers. A loop made implicitly
//! for the thread is closed then, whoever else holds it.

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

/// Issue 11, item 10: a task that holds a handle of its own loop (from
/// `get_running_loop()`) kept that loop alive after its thread exited, and the loop
/// kept the task: neither was ever dropped. The thread's exit closes the loop instead
/// of waiting for its last handle.
#[test]
fn a_thread_exit_closes_its_loop_even_when_a_task_holds_the_loop() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = SetOnDrop(dropped.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        polyloop::block_on(async move {
            polyloop::spawn(async move {
                let _flag = flag;
                let _own_loop = polyloop::get_running_loop().expect("inside a task");
                std::future::pending::<()>().await
            })
            .detach();
            polyloop::yield_now().await;
            tx.send(polyloop::get_running_loop().unwrap()).unwrap();
        });
    })
    .join()
    .unwrap();
    let lp = rx.recv().unwrap();
    assert!(dropped.load(Ordering::SeqCst), "the task that holds its loop outlived the thread");
    assert!(lp.is_closed(), "the thread's implicit loop is closed when the thread exits");
    assert_eq!(lp.pending_tasks(), 0);
}
