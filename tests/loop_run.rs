//! The run / stop / close state machine of `EventLoop`, and its errors.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use polyloop::{Error, EventLoop};

#[test]
fn run_until_complete_returns_the_output() {
    let lp = EventLoop::new().unwrap();
    assert_eq!(lp.run_until_complete(async { "out" }).unwrap(), "out");
    assert!(!lp.is_running());
    assert!(!lp.is_closed());
}

#[test]
fn the_loop_is_running_inside_and_is_the_running_loop() {
    let lp = EventLoop::new().unwrap();
    let me = lp.clone();
    lp.run_until_complete(async move {
        assert!(me.is_running());
        assert_eq!(polyloop::get_running_loop(), Some(me.clone()));
        assert_eq!(polyloop::get_event_loop().unwrap(), me);
    })
    .unwrap();
    assert!(polyloop::get_running_loop().is_none());
}

#[test]
fn running_a_closed_loop_is_an_error_naming_it() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let err = lp.run_until_complete(async {}).unwrap_err();
    assert_eq!(err, Error::Closed { loop_id: lp.id() });
    assert_eq!(
        err.to_string(),
        format!("event loop #{} is closed; create a new one with new_event_loop()", lp.id())
    );
    assert!(lp.run_forever().unwrap_err().is_closed());
    assert!(lp.try_spawn(async {}).unwrap_err().is_closed());
}

#[test]
fn close_is_idempotent() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    lp.close().unwrap();
    assert!(lp.is_closed());
}

#[test]
#[should_panic(expected = "is closed")]
fn spawning_on_a_closed_loop_panics_with_the_reason() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    drop(lp.spawn(async {}));
}

#[test]
#[should_panic(expected = "is closed")]
fn call_soon_on_a_closed_loop_panics_with_the_reason() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    lp.call_soon(|| {});
}

#[test]
fn a_nested_run_is_refused() {
    let lp = EventLoop::new().unwrap();
    let inner = lp.clone();
    let err = lp
        .run_until_complete(async move { inner.run_until_complete(async {}).unwrap_err() })
        .unwrap();
    assert_eq!(err, Error::AlreadyRunning { loop_id: lp.id() });
    assert!(err.to_string().contains("already running"));
    // run_forever as well
    let inner = lp.clone();
    let err = lp.run_until_complete(async move { inner.run_forever().unwrap_err() }).unwrap();
    assert!(err.is_already_running());
}

#[test]
fn running_another_loop_inside_a_running_loop_is_refused() {
    let outer = EventLoop::new().unwrap();
    let other = EventLoop::new().unwrap();
    let o = other.clone();
    let err = outer.run_until_complete(async move { o.run_until_complete(async {}) }).unwrap();
    assert_eq!(err.unwrap_err(), Error::AlreadyRunning { loop_id: outer.id() });
    assert!(!other.is_running());
}

#[test]
fn running_from_a_second_thread_while_running_is_refused() {
    let lp = EventLoop::new().unwrap();
    let other = lp.clone();
    let err = lp
        .run_until_complete(async move {
            std::thread::spawn(move || other.run_until_complete(async {}).unwrap_err())
                .join()
                .unwrap()
        })
        .unwrap();
    assert_eq!(err, Error::AlreadyRunning { loop_id: lp.id() });
}

#[test]
fn closing_a_running_loop_is_an_error() {
    let lp = EventLoop::new().unwrap();
    let me = lp.clone();
    let err = lp.run_until_complete(async move { me.close().unwrap_err() }).unwrap();
    assert_eq!(err, Error::Running { loop_id: lp.id() });
    assert!(err.to_string().contains("call stop()"));
    assert!(!lp.is_closed());
}

#[test]
fn stop_before_run_forever_makes_it_return_after_one_pass() {
    let lp = EventLoop::new().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    lp.call_soon(move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the ready callback ran in the one pass");
    // The stop request was used up: the next run_forever runs until stopped again.
    let stopper = lp.clone();
    lp.call_later(Duration::from_millis(5), move || stopper.stop());
    lp.run_forever().unwrap();
}

#[test]
fn stop_from_another_thread_ends_run_forever() {
    let lp = EventLoop::new().unwrap();
    let remote = lp.clone();
    let t = std::thread::spawn(move || {
        while !remote.is_running() {
            std::thread::yield_now();
        }
        remote.stop();
    });
    lp.run_forever().unwrap();
    t.join().unwrap();
    assert!(!lp.is_running());
}

#[test]
fn stop_during_run_until_complete_reports_stopped() {
    let lp = EventLoop::new().unwrap();
    let me = lp.clone();
    let err = lp
        .run_until_complete(async move {
            me.stop();
            std::future::pending::<()>().await
        })
        .unwrap_err();
    assert_eq!(err, Error::Stopped { loop_id: lp.id() });
    // The loop can run again.
    assert_eq!(lp.run_until_complete(async { 3 }).unwrap(), 3);
}

#[test]
fn tasks_only_progress_while_the_loop_runs_and_survive_between_runs() {
    let lp = EventLoop::new().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let task = lp.spawn(async move {
        for _ in 0..3 {
            c.fetch_add(1, Ordering::SeqCst);
            polyloop::sleep(Duration::from_millis(1)).await;
        }
        "finished"
    });
    assert_eq!(count.load(Ordering::SeqCst), 0);
    lp.run_until_complete(polyloop::yield_now()).unwrap();
    assert!(count.load(Ordering::SeqCst) >= 1);
    assert_eq!(lp.run_until_complete(task).unwrap(), "finished");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn close_drops_pending_tasks_and_callbacks() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let lp = EventLoop::new().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = Flag(dropped.clone());
    lp.spawn(async move {
        let _f = flag;
        std::future::pending::<()>().await
    })
    .detach();
    let flag = Flag(dropped.clone());
    lp.call_later(Duration::from_secs(3600), move || drop(flag));
    lp.run_until_complete(polyloop::yield_now()).unwrap();
    assert_eq!(lp.pending_tasks(), 1);
    assert_eq!(lp.pending_callbacks(), 1);
    lp.close().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    assert_eq!(lp.pending_tasks(), 0);
    assert_eq!(lp.pending_callbacks(), 0);
}

#[test]
fn clones_are_the_same_loop_and_new_loops_differ() {
    let a = EventLoop::new().unwrap();
    let b = EventLoop::new().unwrap();
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    assert_ne!(a.id(), b.id());
    assert!(format!("{a:?}").contains(&format!("id: {}", a.id())));
}

#[test]
fn io_and_timers_from_async_io_work_inside() {
    let lp = EventLoop::new().unwrap();
    let got = lp
        .run_until_complete(async {
            let listener = async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0))?;
            let addr = listener.get_ref().local_addr()?;
            let server = polyloop::spawn(async move {
                use futures_lite::AsyncWriteExt;
                let (mut s, _) = listener.accept().await?;
                s.write_all(b"hello").await?;
                std::io::Result::Ok(())
            });
            use futures_lite::AsyncReadExt;
            let mut c = async_io::Async::<std::net::TcpStream>::connect(addr).await?;
            let mut buf = String::new();
            c.read_to_string(&mut buf).await?;
            server.await?;
            std::io::Result::Ok(buf)
        })
        .unwrap()
        .unwrap();
    assert_eq!(got, "hello");
}

/// A loop closed on another thread while a worker runs one of its tasks that keeps
/// yielding: the close cancels it, and the worker, which goes on running, never polls
/// it again (it used to be put back in line as it yielded, after the close had
/// emptied the queues, and ran on for as long as the worker did).
#[test]
fn a_worker_stops_running_a_task_of_a_loop_closed_elsewhere() {
    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let watchdog = Duration::from_secs(60);
    for round in 0..50 {
        let lp = EventLoop::new().unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (p, d) = (polls.clone(), drops.clone());
        lp.spawn(async move {
            let _dropped = Dropped(d);
            loop {
                p.fetch_add(1, Ordering::SeqCst);
                polyloop::yield_now().await;
            }
        })
        .detach();
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let worker = {
            let lp = lp.clone();
            std::thread::spawn(move || {
                lp.run_worker(async move {
                    let _ = stop_rx.recv().await;
                })
                .unwrap();
            })
        };
        let start = std::time::Instant::now();
        while polls.load(Ordering::SeqCst) < 100 {
            assert!(start.elapsed() < watchdog, "watchdog: the task never ran");
            std::thread::yield_now();
        }
        lp.close().unwrap();
        // The worker still runs: the cancelled task is dropped, not run on.
        while drops.load(Ordering::SeqCst) == 0 {
            assert!(
                start.elapsed() < watchdog,
                "round {round}: the task of the closed loop still runs on the worker ({} polls)",
                polls.load(Ordering::SeqCst)
            );
            std::thread::yield_now();
        }
        let after = polls.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(polls.load(Ordering::SeqCst), after, "round {round}: polled after its drop");
        stop_tx.send_blocking(()).unwrap();
        worker.join().unwrap();
    }
}

/// A loop closed on another thread while a worker that is the home of its `!Send`
/// tasks runs: the close wakes those tasks so that they are dropped, and leaves them to
/// the worker, their home thread, which must drop them, not poll them again.
#[test]
fn a_worker_home_to_not_send_tasks_drops_them_when_the_loop_closes_elsewhere() {
    // `!Send` through the marker: only its home thread may poll or drop it.
    struct Counted(Arc<AtomicUsize>, Arc<AtomicUsize>, std::marker::PhantomData<std::rc::Rc<()>>);
    impl std::future::Future for Counted {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::task::Poll::Pending
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    let watchdog = Duration::from_secs(60);
    let lp = EventLoop::new().unwrap();
    let polls = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let worker = {
        let (lp, polls, drops) = (lp.clone(), polls.clone(), drops.clone());
        std::thread::spawn(move || {
            let l = lp.clone();
            lp.run_worker(async move {
                l.spawn_local(Counted(polls, drops, std::marker::PhantomData)).detach();
                let _ = stop_rx.recv().await;
            })
            .unwrap();
        })
    };
    let start = std::time::Instant::now();
    while polls.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < watchdog, "watchdog: the task never ran");
        std::thread::yield_now();
    }
    lp.close().unwrap();
    // The worker is woken for the task the close left to it; give it a moment.
    std::thread::sleep(Duration::from_millis(50));
    stop_tx.send_blocking(()).unwrap();
    worker.join().unwrap();
    assert_eq!(polls.load(Ordering::SeqCst), 1, "the closed loop's task was polled again");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the home thread dropped the task");
}

#[test]
fn run_worker_lends_a_thread_to_the_loop() {
    let lp = EventLoop::new().unwrap();
    let task = lp.spawn(async { std::thread::current().id() });
    let worker = lp.clone();
    let (id, running) = std::thread::spawn(move || {
        let id = worker.run_worker(task).unwrap();
        (id, polyloop::get_running_loop())
    })
    .join()
    .unwrap();
    assert_ne!(id, std::thread::current().id());
    assert!(running.is_none(), "the worker's running loop is cleared after");
    lp.close().unwrap();
    let closed = lp.clone();
    let err = std::thread::spawn(move || closed.run_worker(async {}).unwrap_err()).join().unwrap();
    assert!(err.is_closed());
}

#[test]
fn close_hooks_run_once_on_close() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let lp = EventLoop::builder()
        .on_close(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    lp.close().unwrap();
    lp.close().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// Two tasks that pass a number back and forth for as long as `go` is set, each waking
/// the other from its runner's LIFO slot, with nothing else queued.
fn ping_pong_until(lp: &EventLoop, go: &Arc<std::sync::atomic::AtomicBool>) {
    let (a_tx, a_rx) = async_channel::bounded::<u64>(1);
    let (b_tx, b_rx) = async_channel::bounded::<u64>(1);
    lp.spawn(async move {
        while let Ok(i) = a_rx.recv().await {
            if b_tx.send(i).await.is_err() {
                break;
            }
        }
    })
    .detach();
    let go = go.clone();
    lp.spawn(async move {
        let mut i = 0;
        while go.load(Ordering::SeqCst) {
            a_tx.send(i).await.unwrap();
            b_rx.recv().await.unwrap();
            i += 1;
        }
    })
    .detach();
}

/// Generous: the ping-pong ends by itself after this, so that a run that ignores the
/// end it was asked for fails the test instead of hanging it.
const PING_PONG_WATCHDOG: Duration = Duration::from_secs(30);

/// Ends the ping-pong after the watchdog, and says whether it had to.
fn watchdog(go: &Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<bool> {
    let go = go.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while go.load(Ordering::SeqCst) {
            if start.elapsed() > PING_PONG_WATCHDOG {
                go.store(false, Ordering::SeqCst);
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    })
}

/// A loop on which (if asked) two tasks wake each other until [`PingPong::finish`], or
/// until a watchdog ends them after [`PING_PONG_WATCHDOG`].
struct PingPong {
    lp: EventLoop,
    go: Arc<std::sync::atomic::AtomicBool>,
    dog: std::thread::JoinHandle<bool>,
}

impl PingPong {
    fn start(pair: bool) -> PingPong {
        let lp = EventLoop::new().unwrap();
        let go = Arc::new(std::sync::atomic::AtomicBool::new(true));
        if pair {
            ping_pong_until(&lp, &go);
        }
        let dog = watchdog(&go);
        PingPong { lp, go, dog }
    }

    /// Ends the pair and closes the loop; fails with `stalled` if the watchdog had to
    /// end them. Whether the pair was still going.
    fn finish(self, stalled: &str) -> bool {
        let still_going = self.go.swap(false, Ordering::SeqCst);
        assert!(!self.dog.join().unwrap(), "{stalled}");
        self.lp.run_until_complete(polyloop::sleep(Duration::from_millis(1))).unwrap();
        self.lp.close().unwrap();
        still_going
    }
}

#[test]
fn stop_from_another_thread_ends_a_run_while_two_tasks_ping_pong() {
    let pp = PingPong::start(true);
    let stopper = pp.lp.clone();
    let stopping = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stopper.stop();
    });
    pp.lp.run_forever().unwrap();
    stopping.join().unwrap();
    // Still going: the run ended because of stop(), not because the tasks finished.
    assert!(pp.finish("run_forever ignored stop() while two tasks ping-ponged"));
}

#[test]
fn run_until_complete_returns_while_two_tasks_ping_pong() {
    let pp = PingPong::start(true);
    let out = pp
        .lp
        .run_until_complete(async {
            polyloop::sleep(Duration::from_millis(20)).await;
            42
        })
        .unwrap();
    let still_going = pp.finish("run_until_complete did not return while two tasks ping-ponged");
    assert_eq!(out, 42);
    assert!(still_going);
}

/// A timer that comes due while two tasks wake each other from the LIFO slot, with
/// nothing else queued (a stretched iteration), still runs: here it stops the run.
#[test]
fn a_timer_runs_while_two_tasks_ping_pong() {
    let pp = PingPong::start(true);
    let stopper = pp.lp.clone();
    pp.lp.call_later(Duration::from_millis(20), move || stopper.stop());
    pp.lp.run_forever().unwrap();
    // Still going: the run ended because the timer ran, not because the tasks finished.
    assert!(pp.finish("a due timer did not run while two tasks ping-ponged"));
}

/// A timer scheduled with no delay by `run_until_complete`'s future as it completes runs
/// before the run returns, as asyncio runs it (in the iteration of the done callback
/// that stops the loop), also while two tasks wake each other from the LIFO slot.
///
/// ```python
/// async def main():
///     await asyncio.sleep(0.005)
///     loop.call_later(0, log.append, "timer")
/// # pinger and ponger exchange items over two asyncio.Queue(1) forever
/// loop.run_until_complete(main())
/// print(log)  # ['timer']
/// ```
#[test]
fn a_timer_scheduled_as_the_main_future_completes_runs_before_the_run_returns() {
    for ping_pong in [false, true] {
        for _ in 0..5 {
            let pp = PingPong::start(ping_pong);
            let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (me, r) = (pp.lp.clone(), ran.clone());
            pp.lp
                .run_until_complete(async move {
                    polyloop::sleep(Duration::from_millis(5)).await;
                    me.call_later(Duration::ZERO, move || r.store(true, Ordering::SeqCst));
                })
                .unwrap();
            let ran = ran.load(Ordering::SeqCst);
            pp.finish("the run did not return while two tasks ping-ponged");
            assert!(ran, "the timer did not run before the run returned (ping-pong: {ping_pong})");
        }
    }
}

/// A run that ends with tasks still queued leaves them in the order they were queued:
/// one queued by a task on the loop's thread, then one queued from another thread,
/// run in that order in the next run.
#[test]
fn tasks_left_queued_at_a_stop_keep_their_order_for_the_next_run() {
    let lp = EventLoop::new().unwrap();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (me, l) = (lp.clone(), log.clone());
    lp.spawn(async move {
        let l1 = l.clone();
        me.spawn(async move { l1.lock().unwrap().push("L1") }).detach();
        let (other, l2) = (me.clone(), l.clone());
        std::thread::spawn(move || {
            other.spawn(async move { l2.lock().unwrap().push("G1") }).detach();
        })
        .join()
        .unwrap();
        me.stop();
    })
    .detach();
    lp.run_forever().unwrap();
    assert!(log.lock().unwrap().is_empty(), "both were queued in the iteration that stopped");
    lp.run_until_complete(async {
        polyloop::sleep(Duration::from_millis(1)).await;
    })
    .unwrap();
    assert_eq!(*log.lock().unwrap(), ["L1", "G1"]);
    lp.close().unwrap();
}

/// A callback scheduled from another thread after that thread queued tasks runs after
/// them, whatever the loop's queues held before.
#[test]
fn a_callback_from_another_thread_runs_after_the_tasks_that_thread_queued_before() {
    let lp = EventLoop::new().unwrap();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let note = |l: &Arc<std::sync::Mutex<Vec<&'static str>>>, what| {
        let l = l.clone();
        move || l.lock().unwrap().push(what)
    };
    let (me, l) = (lp.clone(), log.clone());
    lp.spawn(async move {
        l.lock().unwrap().push("X");
        let (other, l2) = (me.clone(), l.clone());
        std::thread::spawn(move || {
            for w in ["W1", "W2", "W3"] {
                let l3 = l2.clone();
                other.spawn(async move { l3.lock().unwrap().push(w) }).detach();
            }
            let l4 = l2.clone();
            other.call_soon(move || l4.lock().unwrap().push("B"));
        })
        .join()
        .unwrap();
    })
    .detach();
    lp.call_soon(note(&log, "A"));
    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop());
    lp.run_forever().unwrap();
    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop());
    lp.run_forever().unwrap();
    lp.close().unwrap();
    assert_eq!(*log.lock().unwrap(), ["X", "A", "W1", "W2", "W3", "B"]);
}
