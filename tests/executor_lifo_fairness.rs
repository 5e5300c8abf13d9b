//! Two tasks that wake each other run back to back (the runner's LIFO slot), but not
//! forever: other tasks still get their turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn ping_pong_pair_does_not_starve_other_tasks() {
    polyloop::block_on(async {
        let done = Arc::new(AtomicBool::new(false));
        let (a_tx, a_rx) = async_channel::bounded::<()>(1);
        let (b_tx, b_rx) = async_channel::bounded::<()>(1);
        let d = done.clone();
        let ping = polyloop::spawn(async move {
            while !d.load(Ordering::SeqCst) {
                a_tx.send(()).await.unwrap();
                b_rx.recv().await.unwrap();
            }
            drop(a_tx);
        });
        let pong = polyloop::spawn(async move {
            while a_rx.recv().await.is_ok() {
                if b_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        let d = done.clone();
        // Spawned last, so it sits behind the pair in the queues.
        polyloop::spawn(async move { d.store(true, Ordering::SeqCst) }).await;
        ping.await;
        pong.await;
    });
}
