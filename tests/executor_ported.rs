//! The behaviour that async-executor and async-task promise for their executors and task
//! handles, checked against polyloop's `Executor`, `LocalExecutor` and `Task`.
//!
//! Each test names the scenario it carries over. Scenarios that need an API polyloop
//! does not have (`try_tick`, `tick`, `spawn_many`, raw `Runnable`s) are left out, or
//! driven through `run` instead of `tick` where the promise is the same.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread;
use std::time::Duration;

use futures_lite::future::{self, block_on, poll_once};
use polyloop::{Executor, LocalExecutor, Task};

/// How long a test may take before it fails instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `body` on its own thread and fails the test if it does not finish in time.
/// A panic in `body` fails the test with that panic.
fn within<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let out = body();
        let _ = tx.send(out);
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(out) => {
            handle.join().unwrap();
            out
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body ended without sending its output"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: the test hung"),
    }
}

/// Calls its closure when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// A future that stays pending forever, keeps its latest waker in `slot`, and counts
/// its polls and its drop.
fn parked(
    slot: Arc<Mutex<Option<Waker>>>,
    polls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
) -> impl Future<Output = ()> + Send + 'static {
    // Made outside the async block, the guard counts the drop of a future never polled.
    let guard = OnDrop(move || {
        drops.fetch_add(1, Ordering::SeqCst);
    });
    async move {
        let _guard = guard;
        future::poll_fn(|cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            *slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        })
        .await
    }
}

/// Runs `ex` on this thread until `done` says so.
fn run_until(ex: &Executor<'_>, mut done: impl FnMut() -> bool) {
    block_on(ex.run(async {
        while !done() {
            future::yield_now().await;
        }
    }))
}

// ---- async-executor: tests/drop.rs -------------------------------------------------

#[test]
fn dropping_the_executor_drops_every_unfinished_task() {
    within(|| {
        let slot = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let ex = Executor::new();
        let task = ex.spawn(parked(slot.clone(), polls.clone(), drops.clone()));

        run_until(&ex, || slot.lock().unwrap().is_some());
        assert_eq!(drops.load(Ordering::SeqCst), 0);

        drop(ex);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the executor's drop drops the future");

        // The task was cancelled: awaiting it panics, and drops nothing more.
        let awaited = catch_unwind(AssertUnwindSafe(|| block_on(poll_once(task))));
        assert!(awaited.is_err(), "awaiting a task its executor dropped panics");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // A waker of the dropped task is harmless.
        slot.lock().unwrap().take().unwrap().wake();
        assert_eq!(polls.load(Ordering::SeqCst), 1);
    })
}

#[test]
fn a_forgotten_executor_leaks_its_tasks_instead_of_dropping_them() {
    within(|| {
        let slot = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let ex = Executor::new();
        let task = ex.spawn(parked(slot.clone(), polls.clone(), drops.clone()));

        run_until(&ex, || slot.lock().unwrap().is_some());
        std::mem::forget(ex);
        assert_eq!(drops.load(Ordering::SeqCst), 0);

        assert!(block_on(poll_once(task)).is_none(), "the task is still pending");
        assert_eq!(drops.load(Ordering::SeqCst), 0);
    })
}

#[test]
fn a_finished_task_can_be_awaited_after_its_executor_is_dropped() {
    within(|| {
        let text = String::from("hello");
        let ex = Executor::new();
        let task: Task<&str> = ex.spawn(async { text.as_str() });
        run_until(&ex, || task.is_finished());
        drop(ex);
        assert_eq!(block_on(task), "hello");
        drop(text);
    })
}

/// Spawns, on `ex`, a task whose output counts its own drop in `drops`.
fn output_counting_drop<'a>(
    ex: &Executor<'a>,
    drops: &'a AtomicUsize,
) -> Task<OnDrop<impl FnMut() + Send + 'a>> {
    ex.spawn(async move {
        OnDrop(move || {
            drops.fetch_add(1, Ordering::SeqCst);
        })
    })
}

#[test]
fn dropping_the_executor_then_a_finished_task_drops_the_output_once() {
    within(|| {
        let drops = AtomicUsize::new(0);
        let ex = Executor::new();
        let task = output_counting_drop(&ex, &drops);
        run_until(&ex, || task.is_finished());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(ex);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "the output belongs to the task handle");
        drop(task);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    })
}

#[test]
fn dropping_a_finished_task_then_the_executor_drops_the_output_once() {
    within(|| {
        let drops = AtomicUsize::new(0);
        let ex = Executor::new();
        let task = output_counting_drop(&ex, &drops);
        run_until(&ex, || task.is_finished());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(task);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop(ex);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    })
}

// ---- async-executor: tests/larger_tasks.rs -----------------------------------------

/// Runs the scenario `make` builds, first driving `ex` with `run` on this thread, then
/// with sixteen threads in `run` while this thread only awaits the scenario.
fn on_one_then_many_threads<Fut>(make: impl Fn(Arc<Executor<'static>>) -> Fut)
where
    Fut: Future<Output = ()>,
{
    let ex = Arc::new(Executor::new());
    block_on(ex.run(make(ex.clone())));

    thread::scope(|scope| {
        let (stop, stopped) = async_channel::bounded::<()>(1);
        for _ in 0..16 {
            let stopped = stopped.clone();
            let ex = &ex;
            scope.spawn(move || block_on(ex.run(stopped.recv())));
        }
        block_on(make(ex.clone()));
        drop(stop);
    });
    assert_eq!(ex.len(), 0);
}

#[test]
fn larger_tasks_smoke() {
    within(|| on_one_then_many_threads(|ex| async move { ex.spawn(async {}).await }))
}

#[test]
fn larger_tasks_that_yield() {
    within(|| on_one_then_many_threads(|ex| async move { ex.spawn(future::yield_now()).await }))
}

#[test]
fn larger_tasks_that_wait_on_a_timer() {
    within(|| {
        on_one_then_many_threads(|ex| async move {
            ex.spawn(async {
                async_io::Timer::after(Duration::from_millis(5)).await;
            })
            .await
        })
    })
}

// ---- async-executor: tests/local_queue.rs, tests/different_executors.rs ------------

#[test]
fn dropping_one_of_two_runners_leaves_the_other_working() {
    within(|| {
        block_on(async {
            let ex = Executor::new();
            let mut first = Box::pin(ex.run(future::pending::<()>()));
            let mut second = pin!(ex.run(future::pending::<()>()));
            assert!(poll_once(first.as_mut()).await.is_none());
            assert!(poll_once(second.as_mut()).await.is_none());
            drop(first);
            assert!(poll_once(second.as_mut()).await.is_none());

            // And the remaining runner still runs tasks.
            let task = ex.spawn(async { 5 });
            assert!(poll_once(second.as_mut()).await.is_none());
            assert!(task.is_finished());
            assert_eq!(task.await, 5);
        })
    })
}

#[test]
fn dropping_one_of_two_local_runners_leaves_the_other_working() {
    within(|| {
        block_on(async {
            let ex = LocalExecutor::new();
            let mut first = Box::pin(ex.run(future::pending::<()>()));
            let mut second = pin!(ex.run(future::pending::<()>()));
            assert!(poll_once(first.as_mut()).await.is_none());
            assert!(poll_once(second.as_mut()).await.is_none());
            drop(first);
            assert!(poll_once(second.as_mut()).await.is_none());

            let task = ex.spawn(async { 5 });
            assert!(poll_once(second.as_mut()).await.is_none());
            assert!(task.is_finished());
            assert_eq!(task.await, 5);
        })
    })
}

#[test]
fn a_task_spawned_on_one_local_executor_is_not_run_by_another() {
    within(|| {
        block_on(async {
            let polled = Cell::new(false);
            let ex1 = LocalExecutor::new();
            let ex2 = LocalExecutor::new();
            let mut run1 = pin!(ex1.run(future::pending::<()>()));
            let mut run2 = pin!(ex2.run(future::pending::<()>()));
            assert!(poll_once(run1.as_mut()).await.is_none());
            assert!(poll_once(run2.as_mut()).await.is_none());

            ex1.spawn(async {
                polled.set(true);
                future::pending::<()>().await
            })
            .detach();
            assert!(poll_once(run2.as_mut()).await.is_none());
            assert!(!polled.get(), "the second executor ran the first one's task");

            assert!(poll_once(run1.as_mut()).await.is_none());
            assert!(polled.get());
        })
    })
}

#[test]
fn a_task_spawned_on_one_executor_is_not_run_by_another() {
    within(|| {
        block_on(async {
            let polled = AtomicBool::new(false);
            let ex1 = Executor::new();
            let ex2 = Executor::new();
            let mut run1 = pin!(ex1.run(future::pending::<()>()));
            let mut run2 = pin!(ex2.run(future::pending::<()>()));
            assert!(poll_once(run1.as_mut()).await.is_none());
            assert!(poll_once(run2.as_mut()).await.is_none());

            ex1.spawn(async {
                polled.store(true, Ordering::SeqCst);
                future::pending::<()>().await
            })
            .detach();
            assert!(poll_once(run2.as_mut()).await.is_none());
            assert!(!polled.load(Ordering::SeqCst), "the second executor ran the first one's task");

            assert!(poll_once(run1.as_mut()).await.is_none());
            assert!(polled.load(Ordering::SeqCst));
        })
    })
}

// ---- async-executor: tests/panic_prop.rs -------------------------------------------

#[test]
fn a_panic_in_a_task_resumes_in_its_awaiter_not_in_the_runner() {
    within(|| {
        let ex = Executor::new();
        let task = ex.spawn(async { panic!("a panic inside a task") });
        // Running the executor does not panic.
        run_until(&ex, || task.is_finished());
        let awaited = catch_unwind(AssertUnwindSafe(|| block_on(poll_once(task))));
        assert!(awaited.is_err(), "awaiting the task resumes its panic");
    })
}

#[test]
fn a_panic_in_a_local_task_resumes_in_its_awaiter_not_in_the_runner() {
    within(|| {
        let ex = LocalExecutor::new();
        let task = ex.spawn(async { panic!("a panic inside a local task") });
        block_on(ex.run(async {
            while !task.is_finished() {
                future::yield_now().await;
            }
        }));
        let awaited = catch_unwind(AssertUnwindSafe(|| block_on(poll_once(task))));
        assert!(awaited.is_err(), "awaiting the task resumes its panic");
    })
}

// ---- async-executor: tests/spawn_many.rs (with `spawn` in a loop) ------------------

const MANY: usize = 50_000;

#[test]
fn many_ready_tasks_give_their_outputs() {
    within(|| {
        let ex = Executor::new();
        let tasks: Vec<_> = (0..MANY).map(|i| ex.spawn(future::ready(i))).collect();
        block_on(ex.run(async move {
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await, i);
            }
        }));
        assert!(ex.is_empty());
    })
}

#[test]
fn many_ready_local_tasks_give_their_outputs() {
    within(|| {
        let ex = LocalExecutor::new();
        let tasks: Vec<_> = (0..MANY).map(|i| ex.spawn(future::ready(i))).collect();
        block_on(ex.run(async move {
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await, i);
            }
        }));
        assert!(ex.is_empty());
    })
}

// ---- async-executor: the examples in src/lib.rs ------------------------------------

#[test]
fn is_empty_counts_unfinished_tasks_not_handles() {
    within(|| {
        let ex = Executor::new();
        assert!(ex.is_empty());
        assert_eq!(ex.len(), 0);
        let task = ex.spawn(async { 1 });
        assert!(!ex.is_empty());
        assert_eq!(ex.len(), 1);
        run_until(&ex, || task.is_finished());
        // The handle is still held, but the task has finished.
        assert!(ex.is_empty());
        assert_eq!(ex.len(), 0);
        drop(task);
        assert!(ex.is_empty());
    })
}

#[test]
fn a_pending_task_keeps_the_executor_non_empty_until_it_is_dropped() {
    within(|| {
        let ex = Executor::new();
        let task = ex.spawn(future::pending::<()>());
        block_on(poll_once(ex.run(future::pending::<()>())));
        // Spawned, polled, not finished, not waiting to be run.
        assert!(!ex.is_empty());
        assert_eq!(ex.len(), 1);
        drop(task);
        run_until(&ex, || ex.is_empty());
        assert_eq!(ex.len(), 0);
    })
}

#[test]
fn local_is_empty_counts_unfinished_tasks_not_handles() {
    within(|| {
        let ex = LocalExecutor::new();
        assert!(ex.is_empty());
        let task = ex.spawn(async { 1 });
        assert!(!ex.is_empty());
        assert_eq!(ex.len(), 1);
        block_on(ex.run(async {
            while !task.is_finished() {
                future::yield_now().await;
            }
        }));
        assert!(ex.is_empty());
        assert_eq!(ex.len(), 0);
        assert_eq!(block_on(task), 1);
    })
}

#[test]
fn the_example_of_run_with_several_threads() {
    within(|| {
        let ex = Executor::new();
        let (stop, stopped) = async_channel::unbounded::<()>();
        thread::scope(|scope| {
            for _ in 0..4 {
                let stopped = stopped.clone();
                let ex = &ex;
                scope.spawn(move || block_on(ex.run(stopped.recv())));
            }
            let sum: usize = block_on(async {
                (0..100).map(|i| ex.spawn(async move { i })).collect::<Vec<_>>()
            })
            .into_iter()
            .map(block_on)
            .sum();
            assert_eq!(sum, (0..100).sum());
            drop(stop);
        });
    })
}

// ---- async-task: cancel, detach, join --------------------------------------------------

#[test]
fn cancelling_a_task_before_it_runs_drops_it_unpolled() {
    within(|| {
        let slot = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let ex = Executor::new();
        let task = ex.spawn(parked(slot, polls.clone(), drops.clone()));
        // As in async-task, the future is dropped by whoever runs the task next: cancel
        // waits for a runner.
        assert_eq!(block_on(ex.run(task.cancel())), None);
        assert_eq!(polls.load(Ordering::SeqCst), 0);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        run_until(&ex, || ex.is_empty());
        assert_eq!(polls.load(Ordering::SeqCst), 0);
    })
}

#[test]
fn cancelling_a_finished_task_gives_its_output() {
    within(|| {
        let ex = Executor::new();
        let task = ex.spawn(async { 9 });
        run_until(&ex, || task.is_finished());
        assert_eq!(block_on(task.cancel()), Some(9));
    })
}

#[test]
fn cancel_while_the_task_is_being_polled_waits_for_the_poll() {
    within(|| {
        let polls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (started_tx, started) = mpsc::channel::<()>();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let ex = Arc::new(Executor::new());
        let (p, d) = (polls.clone(), drops.clone());
        let task = ex.spawn(async move {
            let _guard = OnDrop(move || {
                d.fetch_add(1, Ordering::SeqCst);
            });
            future::poll_fn(|_| {
                p.fetch_add(1, Ordering::SeqCst);
                let _ = started_tx.send(());
                // Stays inside the poll until the test lets it go.
                release_rx.lock().unwrap().recv().unwrap();
                Poll::<()>::Pending
            })
            .await
        });
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let runner = {
            let ex = ex.clone();
            thread::spawn(move || block_on(ex.run(stopped.recv())))
        };
        started.recv().unwrap();
        let canceller = thread::spawn(move || block_on(task.cancel()));
        release.send(()).unwrap();
        assert_eq!(canceller.join().unwrap(), None);
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "cancel returns once the future is dropped");
        drop(stop);
        let _ = runner.join().unwrap();
        assert!(ex.is_empty());
    })
}

#[test]
fn dropping_the_handle_of_an_idle_task_drops_it_when_the_executor_runs() {
    within(|| {
        let slot = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let ex = Executor::new();
        let task = ex.spawn(parked(slot.clone(), polls.clone(), drops.clone()));
        run_until(&ex, || slot.lock().unwrap().is_some());
        // No waker left: only the handle keeps the task.
        drop(slot.lock().unwrap().take());
        drop(task);
        run_until(&ex, || drops.load(Ordering::SeqCst) == 1);
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        assert!(ex.is_empty());
    })
}

/// async-task drops a detached task once nothing can wake it; an executor keeps a
/// reference to each unfinished task (to drop it with the executor), so the task
/// stays until then, as it does in async-executor.
#[test]
fn a_detached_task_that_nothing_can_wake_stays_until_the_executor_is_dropped() {
    within(|| {
        for waker_first in [false, true] {
            let slot = Arc::new(Mutex::new(None));
            let polls = Arc::new(AtomicUsize::new(0));
            let drops = Arc::new(AtomicUsize::new(0));
            let ex = Executor::new();
            let task = ex.spawn(parked(slot.clone(), polls.clone(), drops.clone()));
            run_until(&ex, || slot.lock().unwrap().is_some());
            if waker_first {
                drop(slot.lock().unwrap().take());
                task.detach();
            } else {
                task.detach();
                drop(slot.lock().unwrap().take());
            }
            block_on(poll_once(ex.run(future::pending::<()>())));
            assert_eq!(drops.load(Ordering::SeqCst), 0);
            assert_eq!(ex.len(), 1);
            drop(ex);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            assert_eq!(polls.load(Ordering::SeqCst), 1);
        }
    })
}

#[test]
fn a_detached_task_runs_to_completion() {
    within(|| {
        let done = Arc::new(AtomicBool::new(false));
        let ex = Executor::new();
        let d = done.clone();
        ex.spawn(async move {
            future::yield_now().await;
            d.store(true, Ordering::SeqCst);
        })
        .detach();
        run_until(&ex, || done.load(Ordering::SeqCst));
        run_until(&ex, || ex.is_empty());
    })
}

// ---- async-task: wakers -----------------------------------------------------------

#[test]
fn waking_a_task_polls_it_again_once() {
    within(|| {
        let slot = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let ex = Executor::new();
        let _task = ex.spawn(parked(slot.clone(), polls.clone(), drops.clone()));
        run_until(&ex, || polls.load(Ordering::SeqCst) == 1);

        let waker = slot.lock().unwrap().clone().unwrap();
        waker.wake_by_ref();
        let clone = waker.clone();
        clone.wake();
        run_until(&ex, || polls.load(Ordering::SeqCst) >= 2);
        block_on(poll_once(ex.run(future::pending::<()>())));
        assert_eq!(polls.load(Ordering::SeqCst), 2, "two wakes before a poll give one poll");

        slot.lock().unwrap().clone().unwrap().wake();
        run_until(&ex, || polls.load(Ordering::SeqCst) >= 3);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
    })
}

#[test]
fn waking_a_finished_task_does_nothing() {
    within(|| {
        let slot = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicUsize::new(0));
        let ex = Executor::new();
        let (s, p) = (slot.clone(), polls.clone());
        let task = ex.spawn(future::poll_fn(move |cx| {
            let n = p.fetch_add(1, Ordering::SeqCst);
            *s.lock().unwrap() = Some(cx.waker().clone());
            if n == 0 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(3)
            }
        }));
        run_until(&ex, || task.is_finished());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        slot.lock().unwrap().take().unwrap().wake();
        block_on(poll_once(ex.run(future::pending::<()>())));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        assert!(ex.is_empty());
        assert_eq!(block_on(task), 3);
    })
}

#[test]
fn waking_a_cancelled_task_does_nothing() {
    within(|| {
        let slot = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let ex = Executor::new();
        let task = ex.spawn(parked(slot.clone(), polls.clone(), drops.clone()));
        run_until(&ex, || polls.load(Ordering::SeqCst) == 1);
        assert_eq!(block_on(ex.run(task.cancel())), None);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        slot.lock().unwrap().take().unwrap().wake();
        block_on(poll_once(ex.run(future::pending::<()>())));
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        assert!(ex.is_empty());
    })
}

#[test]
fn a_waker_from_another_thread_wakes_the_task() {
    within(|| {
        let ex = Executor::new();
        let (tx, rx) = async_channel::bounded::<u32>(1);
        let task = ex.spawn(async move { rx.recv().await.unwrap() * 2 });
        block_on(poll_once(ex.run(future::pending::<()>())));
        assert!(!task.is_finished());
        let sender = thread::spawn(move || block_on(tx.send(21)).unwrap());
        assert_eq!(block_on(ex.run(task)), 42);
        sender.join().unwrap();
    })
}

// ---- async-task: panics -----------------------------------------------------------

#[test]
fn a_panic_while_awaited_resumes_in_the_awaiter() {
    within(|| {
        let ex = Arc::new(Executor::new());
        let (go, wait) = async_channel::bounded::<()>(1);
        let task = ex.spawn(async move {
            let _ = wait.recv().await;
            panic!("a panic while someone awaits the task")
        });
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let runner = {
            let ex = ex.clone();
            thread::spawn(move || block_on(ex.run(stopped.recv())))
        };
        let awaiter = thread::spawn(move || catch_unwind(AssertUnwindSafe(|| block_on(task))));
        block_on(go.send(())).unwrap();
        assert!(awaiter.join().unwrap().is_err(), "the awaiter gets the panic");
        drop(stop);
        let _ = runner.join().unwrap();
        assert!(ex.is_empty());
    })
}

#[test]
fn a_panic_in_a_detached_task_leaves_the_executor_running() {
    within(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let ex = Executor::new();
        let d = drops.clone();
        ex.spawn(async move {
            let _guard = OnDrop(move || {
                d.fetch_add(1, Ordering::SeqCst);
            });
            future::yield_now().await;
            panic!("a panic in a detached task")
        })
        .detach();
        run_until(&ex, || drops.load(Ordering::SeqCst) == 1);
        let after = ex.spawn(async { 4 });
        assert_eq!(block_on(ex.run(after)), 4);
        assert!(ex.is_empty());
    })
}

#[test]
fn a_panic_before_the_handle_is_dropped_is_not_resumed_by_the_drop() {
    within(|| {
        let ex = Executor::new();
        let task = ex.spawn(async { panic!("a panic nobody awaits") });
        run_until(&ex, || task.is_finished());
        drop(task);
        let after = ex.spawn(async { 4 });
        assert_eq!(block_on(ex.run(after)), 4);
    })
}

// ---- async-executor: runners that go away -----------------------------------------

#[test]
fn a_task_woken_by_a_runner_that_panics_is_run_by_the_next_runner() {
    within(|| {
        let ex = Executor::new();
        let (tx, rx) = async_channel::bounded::<u8>(1);
        let task = ex.spawn(async move { rx.recv().await.unwrap() + 1 });
        block_on(poll_once(ex.run(future::pending::<()>())));
        assert!(!task.is_finished());

        // The runner's own future wakes the task, then panics before anything else runs.
        let run = catch_unwind(AssertUnwindSafe(|| {
            block_on(ex.run(async {
                tx.try_send(1).unwrap();
                panic!("a panic in the future given to run")
            }))
        }));
        assert!(run.is_err(), "the panic of run's future resumes in its caller");
        assert_eq!(block_on(ex.run(task)), 2);
        assert!(ex.is_empty());
    })
}

#[test]
fn dropping_a_local_executor_drops_its_unfinished_tasks() {
    within(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let ex = LocalExecutor::new();
        let polled = std::rc::Rc::new(Cell::new(false));
        let p = polled.clone();
        let d = drops.clone();
        let guard = OnDrop(move || {
            d.fetch_add(1, Ordering::SeqCst);
        });
        let first = ex.spawn(async move {
            let _guard = guard;
        });
        let d = drops.clone();
        let task = ex.spawn(async move {
            let _guard = OnDrop(move || {
                d.fetch_add(1, Ordering::SeqCst);
            });
            p.set(true);
            future::pending::<()>().await
        });
        block_on(ex.run(async {
            while !polled.get() {
                future::yield_now().await;
            }
        }));
        // The first task ran too: its guard is gone.
        assert!(first.is_finished());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop(ex);
        assert_eq!(drops.load(Ordering::SeqCst), 2, "the executor's drop drops the future");
        assert!(catch_unwind(AssertUnwindSafe(|| block_on(poll_once(task)))).is_err());
        drop(first);
    })
}
