//! Running an executor as asyncio's loop runs its ready queue: in iterations, with the
//! loop's main future taking its turns in the line as a task would.
//!
//! asyncio keeps one FIFO queue: the task that `run_until_complete` made of its
//! argument waits its turn behind the callbacks and tasks queued before it, and `stop()`
//! ends the run once the handles that were ready when the current iteration began have
//! run. Here the main future is not a task (it need be neither `Send` nor `'static`):
//! a small *turn* task stands in line for it, and the runner polls the future right
//! after that task ran. The runner counts iterations (see [`Runner::begin_iterations`])
//! and ends the run at the end of one. What the loop adds to each iteration (its
//! timers) comes in through [`IterationHooks`].

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use super::state::{Runner, interrupt_runner, thread_id, waking_at_back};
use super::{Drive, Executor};

/// What an event loop adds to the iterations of its thread's run, besides tasks:
/// asyncio's timers, which join the line when an iteration begins, and bound how long
/// the idle thread sleeps.
pub(crate) trait IterationHooks: Sync {
    /// An iteration begins (the run's first one too, but not at the look that ends a
    /// run): queue what became ready since the last one behind what is queued now; it
    /// runs in this iteration. Called by the runner between tasks, before it counts
    /// the iteration's tasks.
    fn begin_iteration(&self);

    /// Set while [`begin_iteration`](IterationHooks::begin_iteration) may have
    /// something to do (the loop has timers): the runner reads it, and calls nothing
    /// while it is clear.
    fn armed(&self) -> &AtomicBool;

    /// Whether something waits for an iteration to begin (a timer is due): then tasks
    /// that wake each other from the LIFO slot must not stretch the current one
    /// forever. Asked once in a streak of batches.
    fn due(&self) -> bool;

    /// The thread has nothing to run and is about to sleep: `Ready` if an iteration
    /// should begin now all the same (a timer is due); else `Pending`, with `cx` woken
    /// when one should.
    fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<()>;
}

impl Executor<'_> {
    /// Runs tasks on the calling thread in iterations, until `future` completed and the
    /// iteration after the one in which it did has ended (`Some(output)`: asyncio's
    /// `run_until_complete` of a coroutine), or until `halt` was set and
    /// the current iteration has ended (`None`). If `halt` is set when the run begins,
    /// the run ends after one iteration.
    ///
    /// `future` gets its turns in the line: first behind what is queued now, then,
    /// when woken, as a task would (at the back of the line). `turn_at` is the spawn
    /// location of the task that stands in line for it. `hooks` are called as
    /// [`IterationHooks`] says.
    pub(crate) async fn run_iterations<F: Future>(
        &self,
        mut future: Pin<&mut F>,
        halt: &AtomicBool,
        turn_at: &'static Location<'static>,
        hooks: &impl IterationHooks,
    ) -> Option<F::Output> {
        let state = &self.state;
        let turn = std::sync::Arc::new(Turn {
            ran: AtomicBool::new(false),
            thread: thread_id(),
            wakers: Mutex::new((None, None)),
        });
        // SAFETY: `TurnTask` is `Send + 'static`.
        let turn_task = unsafe { self.spawn_inner(TurnTask(turn.clone()), turn_at) };
        // Made before the runner, so that it outlives it.
        let begin = || hooks.begin_iteration();
        let runner = Runner::new(state);
        // SAFETY: `begin` outlives the runner (see above), and `hooks` this function.
        unsafe { runner.on_iteration(&begin, hooks.armed()) };
        // SAFETY: `halt` outlives this function, and so the runner.
        unsafe { runner.begin_iterations(halt) };
        let mut out = None;
        // The waker of the turn task: waking it puts the future in line.
        let mut future_waker: Option<Waker> = None;
        let mut drive = Drive::default();
        let mut outer_set = false;
        let out = std::future::poll_fn(move |cx| {
            if !outer_set {
                outer_set = true;
                turn.lock().1 = Some(cx.waker().clone());
            }
            loop {
                let _enter = runner.enter();
                if turn.ran.load(Ordering::Acquire) {
                    turn.ran.store(false, Ordering::Relaxed);
                    if out.is_none() {
                        let waker = future_waker.get_or_insert_with(|| {
                            turn.lock().0.clone().expect("the turn task ran, and left its waker")
                        });
                        // As a task that yields: what it wakes goes to the back of the line.
                        let polled = waking_at_back(|| {
                            future.as_mut().poll(&mut Context::from_waker(waker))
                        });
                        if let Poll::Ready(v) = polled {
                            // asyncio stops the loop at the end of the iteration after the
                            // one in which the future completed: its done callback, which
                            // calls `stop()`, runs in that next iteration.
                            out = Some(v);
                            runner.halt_after_next();
                        }
                    }
                }
                let ran = drive.batch(state, &runner);
                if runner.halted() {
                    return Poll::Ready(out.take());
                }
                if ran > 0 {
                    if drive.busy(cx) {
                        if hooks.due() {
                            runner.end_stretch();
                        }
                        return Poll::Pending;
                    }
                    continue;
                }
                if turn.ran.load(Ordering::Acquire) {
                    // The turn task interrupted the batch: the future's turn, now.
                    continue;
                }
                if drive.idle(state, &runner, cx).is_pending() {
                    // Asleep until a task is queued, or a timer is due (asyncio's select
                    // timeout): then the next look begins an iteration.
                    if hooks.poll_idle(cx).is_ready() {
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        })
        .await;
        drop(turn_task);
        state.recheck_queued();
        out
    }
}

/// What the turn task and the runner share.
struct Turn {
    /// The turn task ran: the future's turn has come.
    ran: AtomicBool,
    /// The thread that runs the loop.
    thread: u64,
    /// The turn task's waker, and the waker of the thread that runs the loop.
    wakers: Mutex<(Option<Waker>, Option<Waker>)>,
}

impl Turn {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<Waker>, Option<Waker>)> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The task that stands in line for the main future: each time it runs, the future's
/// turn has come. It never completes; it is dropped when the run ends.
struct TurnTask(std::sync::Arc<Turn>);

impl Future for TurnTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let turn = &*self.0;
        {
            let mut wakers = turn.lock();
            if !wakers.0.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                wakers.0 = Some(cx.waker().clone());
            }
        }
        turn.ran.store(true, Ordering::Release);
        if thread_id() == turn.thread {
            // The runner polls the future before it runs another task.
            interrupt_runner();
        } else {
            // Run by another thread (a worker): wake the loop's thread to poll the future.
            if let Some(w) = turn.lock().1.as_ref() {
                w.wake_by_ref();
            }
        }
        Poll::Pending
    }
}
