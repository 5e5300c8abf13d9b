//! Model checks of the executor's queue hand-off and sleep/wake protocol with loom:
//! every interleaving (up to a preemption bound) of a runner going to sleep against
//! wake-ups, spawns and cancellations from other threads.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release -p polyloop-loom --test loom`;
//! without `--cfg loom` this file is empty.
#![cfg(loom)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use polyloop_loom::executor::Executor;

/// A one-value channel made of loom primitives only, so that loom sees all of its
/// synchronization (a std `Arc` around loom atomics would hide some of it).
struct Oneshot<T>(Arc<Mutex<(Option<T>, Option<Waker>)>>);

impl<T> Clone for Oneshot<T> {
    fn clone(&self) -> Self {
        Oneshot(self.0.clone())
    }
}

impl<T> Oneshot<T> {
    fn new() -> Self {
        Oneshot(Arc::new(Mutex::new((None, None))))
    }

    fn send(&self, value: T) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            slot.0 = Some(value);
            slot.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Oneshot<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.lock().unwrap();
        match slot.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(f);
}

/// A runner asleep with nothing to do is woken by a task woken from another thread:
/// no lost wake-up between "nothing to run", "register as sleeper" and "sleep".
#[test]
fn a_wake_from_another_thread_reaches_a_sleeping_runner() {
    model(|| {
        let ex = StdArc::new(Executor::new());
        let tx = Oneshot::<u32>::new();
        let rx = tx.clone();
        let task = ex.spawn(rx);
        let waker = loom::thread::spawn(move || tx.send(5));
        let out = loom::future::block_on(ex.run(task));
        assert_eq!(out, 5);
        waker.join().unwrap();
    });
}

/// A task spawned from another thread (into the global queue) is run by a runner that
/// may already be asleep.
#[test]
fn a_spawn_from_another_thread_reaches_a_sleeping_runner() {
    model(|| {
        let ex = StdArc::new(Executor::new());
        let tx = Oneshot::<u32>::new();
        let rx = tx.clone();
        let remote = ex.clone();
        let spawner = loom::thread::spawn(move || {
            remote.spawn(async move { tx.send(9) }).detach();
        });
        let out = loom::future::block_on(ex.run(rx));
        assert_eq!(out, 9);
        spawner.join().unwrap();
    });
}

/// Two runners share the work (local queues, the global queue, stealing): every task
/// runs exactly once and both runners finish.
#[test]
fn two_runners_run_each_task_exactly_once() {
    model(|| {
        let ex = StdArc::new(Executor::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let runs = runs.clone();
                ex.spawn(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let done_tx = Oneshot::<()>::new();
        let done_rx = done_tx.clone();
        let helper_ex = ex.clone();
        let helper = loom::thread::spawn(move || {
            // Help until the main runner says it is done.
            loom::future::block_on(helper_ex.run(done_rx));
        });
        loom::future::block_on(ex.run(async {
            for t in tasks {
                t.await;
            }
        }));
        done_tx.send(());
        helper.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(ex.is_empty());
    });
}

/// Cancelling a task from another thread while a runner may be running it: the future
/// is dropped exactly once, and `cancel` gives its output only if it completed.
#[test]
fn cancellation_racing_completion_drops_the_future_once() {
    model(|| {
        let ex = StdArc::new(Executor::new());
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Counted(drops.clone());
        let r = ran.clone();
        let task = ex.spawn(async move {
            let _c = counted;
            r.fetch_add(1, Ordering::SeqCst);
            7
        });
        let done_tx = Oneshot::<Option<i32>>::new();
        let done_rx = done_tx.clone();
        let canceller = loom::thread::spawn(move || {
            let out = loom::future::block_on(task.cancel());
            done_tx.send(out);
        });
        let out = loom::future::block_on(ex.run(done_rx));
        canceller.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the future is dropped exactly once");
        match out {
            Some(v) => {
                assert_eq!(v, 7);
                assert_eq!(ran.load(Ordering::SeqCst), 1);
            }
            None => assert!(ran.load(Ordering::SeqCst) <= 1),
        }
        assert!(ex.is_empty());
    });
}

/// Cancelling every task (as closing a loop does) while a runner on another thread
/// finishes one: the set of live tasks hands its reference to the task to exactly one
/// of them, the future is dropped once, and the set ends empty.
#[test]
fn cancel_all_racing_a_finishing_task_releases_it_once() {
    model(|| {
        let ex = StdArc::new(Executor::new());
        let drops = Arc::new(AtomicUsize::new(0));
        let counted = Counted(drops.clone());
        ex.spawn(async move {
            let _c = counted;
        })
        .detach();
        let done_tx = Oneshot::<()>::new();
        let done_rx = done_tx.clone();
        let runner_ex = ex.clone();
        let runner = loom::thread::spawn(move || {
            loom::future::block_on(runner_ex.run(done_rx));
        });
        ex.cancel_all_now();
        done_tx.send(());
        runner.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the future is dropped exactly once");
        assert!(ex.is_empty());
    });
}

/// A spawn from another thread racing the cancellation of every task (as a loop
/// closes): the new task is either found by the cancellation's drain or drains itself
/// as it sees the executor cancelled; its future is dropped once either way, and its
/// handle says it finished, where it used to stay queued, alive, until the executor
/// went.
#[test]
fn a_spawn_racing_cancel_all_is_cancelled_too() {
    model(|| {
        let ex = StdArc::new(Executor::new());
        let drops = Arc::new(AtomicUsize::new(0));
        let counted = Counted(drops.clone());
        let spawner_ex = ex.clone();
        let spawner = loom::thread::spawn(move || {
            spawner_ex.spawn(async move {
                let _c = counted;
                std::future::pending::<()>().await;
            })
        });
        ex.cancel_all_now();
        let task = spawner.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the future is dropped once");
        assert!(task.is_finished(), "the task was left queued after the cancellation");
        assert!(ex.is_empty());
    });
}
