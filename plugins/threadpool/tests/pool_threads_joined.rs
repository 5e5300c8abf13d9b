//! A pool loop starts exactly its workers, and `close()` joins every one of them.
//!
//! Alone in its test binary, so that no other test starts or ends threads while the
//! threads of the process are counted.

// The helpers are shared with the other plug-in crates and the root tests.
#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use polyloop::EventLoopPolicy;
use polyloop_threadpool::ThreadPoolPolicy;
use support::{eventually, start_process_threads, thread_count, watchdog};

#[test]
fn close_joins_every_worker() {
    watchdog("close_joins_every_worker", || {
        start_process_threads();
        let before = thread_count();
        let lp = ThreadPoolPolicy::with_workers(3).new_event_loop().unwrap();
        assert_eq!(thread_count(), before + 3, "a loop with 3 workers starts 3 threads");

        let sum = lp
            .run_until_complete(async {
                let tasks: Vec<_> =
                    (0..1000u64).map(|i| polyloop::spawn(async move { i })).collect();
                let mut sum = 0;
                for t in tasks {
                    sum += t.await;
                }
                sum
            })
            .unwrap();
        assert_eq!(sum, 499_500);

        lp.close().unwrap();
        // A joined thread can linger in /proc/self/task for a moment after it exited.
        eventually("close() joins the 3 workers", || thread_count() == before);

        // A second loop of the same policy has its own workers, also joined.
        let policy = ThreadPoolPolicy::with_workers(2);
        let (a, b) = (policy.new_event_loop().unwrap(), policy.new_event_loop().unwrap());
        assert_eq!(thread_count(), before + 4);
        a.close().unwrap();
        eventually("closing the first loop joins its 2 workers", || thread_count() == before + 2);
        b.close().unwrap();
        b.close().unwrap(); // closing twice does nothing
        eventually("closing the second loop joins its 2 workers", || thread_count() == before);
    });
}
