//! A task that blocks the loop's thread in a `block_on` of its own (bad practice, but
//! it must not hang): the sleeps it waits for there still end, though the loop cannot
//! run meanwhile. Alone in its binary, so that no other test's timers wake the
//! reactor behind its back.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous: the body takes milliseconds, but the machine may be very busy.
const WATCHDOG: Duration = Duration::from_secs(60);

fn in_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

#[test]
fn a_task_that_blocks_the_loop_thread_in_its_own_block_on_still_sees_its_sleeps_end() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        polyloop::block_on(async {
            // A sleep of the loop that stays pending meanwhile.
            let pending = polyloop::spawn(polyloop::sleep(Duration::from_secs(3600)));
            polyloop::sleep(Duration::from_millis(1)).await;
            // Blocking the loop's thread is bad practice, but must not hang: this
            // block_on drives the reactor on the loop's thread while the loop cannot run.
            for _ in 0..3 {
                // Two sleeps queued at once: the second one's timer is set when the
                // first one fires, here, while the loop cannot run.
                let (first, second) = (in_ms(2), in_ms(4));
                async_io::block_on(futures_lite::future::zip(
                    polyloop::sleep_until(first),
                    polyloop::sleep_until(second),
                ));
                assert!(Instant::now() >= second);
            }
            drop(pending);
        });
        let _ = tx.send(());
    });
    rx.recv_timeout(WATCHDOG).expect("watchdog: a sleep never ended");
}
