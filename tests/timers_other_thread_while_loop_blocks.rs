//! A loop thread on which a timer fired, and whose woken task then blocks it, does not
//! hold up the sleeps of other threads (in a binary of its own: the timers of other
//! tests would wake the reactor and hide a hang).

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_sleep_on_another_thread_ends_while_a_loop_thread_blocks_after_its_timer_fired() {
    let got = polyloop::block_on(async {
        // A few sleeps, so that this idle loop thread is the one in the reactor.
        for _ in 0..5 {
            polyloop::sleep(Duration::from_millis(1)).await;
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Not a loop thread: it relies on the timerfd being armed for it.
            futures_lite::future::block_on(polyloop::sleep(Duration::from_millis(50)));
            let _ = tx.send(());
        });
        // Fires through the reactor on this loop thread.
        polyloop::sleep(Duration::from_millis(20)).await;
        // The woken task blocks the loop's thread until the other thread's sleep ends
        // (a watchdog: it should end about 30 ms from now).
        rx.recv_timeout(Duration::from_secs(30))
    });
    got.expect(
        "watchdog: the other thread's 50 ms sleep did not end while this loop's thread was blocked",
    );
}
