//! On a loop run by one thread, tasks run in the order asyncio gives them: spawned
//! tasks start in spawn order, and a task woken because a task it awaits finished
//! resumes after the tasks already queued (asyncio schedules both with `call_soon`).

use std::sync::{Arc, Mutex};

use polyloop::{EventLoop, LocalExecutor};

type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, what: impl Into<String>) {
    log.lock().unwrap().push(what.into());
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn tasks_spawned_by_a_task_start_in_spawn_order() {
    let lp = EventLoop::new().unwrap();
    let log = Log::default();
    // More tasks than a runner's local queue holds, so that some wait in the shared one.
    for n in [3usize, 1000] {
        let l = log.clone();
        let root = lp.spawn(async move {
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let l = l.clone();
                    polyloop::spawn(async move { note(&l, i.to_string()) })
                })
                .collect();
            for t in tasks {
                t.await;
            }
        });
        lp.run_until_complete(root).unwrap();
        let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        assert_eq!(taken(&log), expected, "{n} tasks");
    }
    lp.close().unwrap();
}

#[test]
fn a_task_awaiting_another_resumes_after_the_tasks_queued_before_it() {
    let lp = EventLoop::new().unwrap();
    let log = Log::default();
    let l = log.clone();
    let root = lp.spawn(async move {
        let spawn = |name: &'static str| {
            let l = l.clone();
            polyloop::spawn(async move { note(&l, name) })
        };
        let (a, b, c) = (spawn("a"), spawn("b"), spawn("c"));
        a.await;
        note(&l, "awaited a");
        b.await;
        c.await;
    });
    lp.run_until_complete(root).unwrap();
    assert_eq!(taken(&log), ["a", "b", "c", "awaited a"]);
    lp.close().unwrap();
}

#[test]
fn a_local_executor_starts_tasks_in_spawn_order() {
    let ex = LocalExecutor::new();
    let log = Log::default();
    let ex = std::rc::Rc::new(ex);
    let (ex2, l) = (ex.clone(), log.clone());
    let root = ex.spawn(async move {
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let l = l.clone();
                ex2.spawn(async move { note(&l, i.to_string()) })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
    futures_lite::future::block_on(ex.run(root));
    assert_eq!(taken(&log), ["0", "1", "2", "3", "4"]);
}

#[test]
fn a_message_answered_at_once_still_runs_its_receiver_next() {
    // The hand-off that the LIFO slot exists for is unchanged: a task woken by a
    // channel send runs before the tasks queued earlier.
    let lp = EventLoop::new().unwrap();
    let log = Log::default();
    let l = log.clone();
    let root = lp.spawn(async move {
        let (tx, rx) = async_channel::bounded::<()>(1);
        let l2 = l.clone();
        let receiver = polyloop::spawn(async move {
            note(&l2, "waiting");
            rx.recv().await.unwrap();
            note(&l2, "received");
        });
        polyloop::yield_now().await;
        let l3 = l.clone();
        let sender = polyloop::spawn(async move {
            let l4 = l3.clone();
            let other = polyloop::spawn(async move { note(&l4, "other") });
            tx.send(()).await.unwrap();
            note(&l3, "sent");
            other.await;
        });
        sender.await;
        receiver.await;
    });
    lp.run_until_complete(root).unwrap();
    assert_eq!(taken(&log), ["waiting", "sent", "received", "other"]);
    lp.close().unwrap();
}

#[test]
fn tasks_that_wake_each_other_forever_let_a_task_from_another_thread_run() {
    // Two tasks hand a message back and forth without end on the loop's one runner;
    // a task spawned from another thread must still get its turn.
    let lp = EventLoop::new().unwrap();
    let root = lp.spawn(async {
        let (tx_a, rx_a) = async_channel::bounded::<()>(1);
        let (tx_b, rx_b) = async_channel::bounded::<()>(1);
        let ping = polyloop::spawn(async move {
            while tx_a.send(()).await.is_ok() && rx_b.recv().await.is_ok() {}
        });
        let pong = polyloop::spawn(async move {
            while rx_a.recv().await.is_ok() && tx_b.send(()).await.is_ok() {}
        });
        (ping, pong)
    });
    let (ping, pong) = lp.run_until_complete(root).unwrap();
    let handle = lp.clone();
    let outsider = std::thread::spawn(move || handle.spawn(async { "ran" })).join().unwrap();
    let got = lp
        .run_until_complete(polyloop::timeout(std::time::Duration::from_secs(60), outsider))
        .unwrap();
    assert_eq!(got, Ok("ran"), "watchdog: the task from another thread never ran");
    drop((ping, pong));
    lp.close().unwrap();
}

#[test]
fn a_yielding_local_task_does_not_starve_a_task_woken_from_another_thread() {
    // A `!Send` task that yields in a loop (asyncio's `while not done: await
    // sleep(0)`) waits for a task woken by its timer: that wake-up must get its turn.
    use std::sync::atomic::{AtomicBool, Ordering};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let yields = polyloop::block_on(async {
            let done = Arc::new(AtomicBool::new(false));
            let d = done.clone();
            polyloop::spawn(async move {
                polyloop::sleep(std::time::Duration::from_millis(10)).await;
                d.store(true, Ordering::SeqCst);
            })
            .detach();
            polyloop::spawn_local(async move {
                let mut n = 0u64;
                while !done.load(Ordering::SeqCst) {
                    polyloop::yield_now().await;
                    n += 1;
                }
                n
            })
            .await
        });
        let _ = tx.send(yields);
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("watchdog: the task woken by its timer never ran behind a yielding !Send task");
}
