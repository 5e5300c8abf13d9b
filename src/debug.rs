//! Debug mode: reports of slow task polls and callbacks, and of work still pending
//! when a loop closes.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Something debug mode noticed; given to the loop's debug hook.
#[derive(Debug)]
#[non_exhaustive]
pub enum DebugEvent<'a> {
    /// One poll of a task took longer than the loop's slow threshold.
    SlowPoll {
        /// The loop's number.
        loop_id: u64,
        /// Where the task was spawned.
        spawned_at: &'static Location<'static>,
        /// How long the poll took.
        elapsed: Duration,
    },
    /// A callback took longer than the loop's slow threshold.
    SlowCallback {
        /// The loop's number.
        loop_id: u64,
        /// How long it took.
        elapsed: Duration,
    },
    /// The loop was closed with tasks unfinished or callbacks never run.
    ClosedWithPending {
        /// The loop's number.
        loop_id: u64,
        /// Where each unfinished task was spawned.
        tasks: &'a [&'static Location<'static>],
        /// How many callbacks never ran.
        callbacks: usize,
    },
    /// A task's future, or its output that nobody claimed, panicked while being
    /// dropped (the task was cancelled, or its loop closed). The panic was caught and
    /// the loop goes on. Reported whether debug mode is on or not.
    DropPanicked {
        /// The loop's number.
        loop_id: u64,
        /// Where the task was spawned.
        spawned_at: &'static Location<'static>,
        /// Whether the output (not the future) panicked.
        output: bool,
        /// The panic's message.
        message: &'a str,
    },
    /// `!Send` tasks were to be dropped after their home thread had exited; they can
    /// only be dropped there, so they were leaked. Reported whether debug mode is on
    /// or not.
    LocalTasksLeaked {
        /// The loop's number.
        loop_id: u64,
        /// How many tasks were leaked.
        count: usize,
    },
    /// A close hook panicked, and the panic could not be resumed by `close()` (another
    /// hook panicked first, or the thread was already unwinding). Reported whether
    /// debug mode is on or not.
    CloseHookPanicked {
        /// The loop's number.
        loop_id: u64,
        /// The panic's message.
        message: &'a str,
    },
}

impl fmt::Display for DebugEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DebugEvent::SlowPoll { loop_id, spawned_at, elapsed } => write!(
                f,
                "event loop #{loop_id}: a poll of the task spawned at {spawned_at} took {elapsed:?}"
            ),
            DebugEvent::SlowCallback { loop_id, elapsed } => {
                write!(f, "event loop #{loop_id}: a callback took {elapsed:?}")
            }
            DebugEvent::ClosedWithPending { loop_id, tasks, callbacks } => {
                write!(
                    f,
                    "event loop #{loop_id} closed with {} unfinished task(s) and {callbacks} callback(s) never run",
                    tasks.len()
                )?;
                for loc in tasks.iter() {
                    write!(f, "\n  task spawned at {loc}")?;
                }
                Ok(())
            }
            DebugEvent::DropPanicked { loop_id, spawned_at, output, message } => write!(
                f,
                "event loop #{loop_id}: {} of the task spawned at {spawned_at} panicked while \
                 being dropped (the loop goes on): {message}",
                if *output { "the output" } else { "the future" }
            ),
            DebugEvent::LocalTasksLeaked { loop_id, count } => write!(
                f,
                "event loop #{loop_id}: leaked {count} !Send task(s) whose home thread has \
                 exited (they can only be dropped on that thread)"
            ),
            DebugEvent::CloseHookPanicked { loop_id, message } => write!(
                f,
                "event loop #{loop_id}: a close hook panicked (close() finished its work): {message}"
            ),
        }
    }
}

/// Where a loop sends its debug reports.
pub type DebugHook = fn(&DebugEvent<'_>);

/// The default debug hook: one line on stderr per report.
pub fn stderr_hook(event: &DebugEvent<'_>) {
    eprintln!("polyloop debug: {event}");
}

/// A future whose polls are timed.
pub(crate) struct Instrumented<F> {
    future: F,
    loc: &'static Location<'static>,
    loop_id: u64,
    slow: Duration,
    hook: DebugHook,
}

impl<F> Instrumented<F> {
    pub(crate) fn new(
        future: F,
        loc: &'static Location<'static>,
        loop_id: u64,
        slow: Duration,
        hook: DebugHook,
    ) -> Self {
        Instrumented { future, loc, loop_id, slow, hook }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`, and
        // `Instrumented` has no `Drop` impl and is `Unpin` only if `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let start = Instant::now();
        let out = future.poll(cx);
        let elapsed = start.elapsed();
        if elapsed >= this.slow {
            (this.hook)(&DebugEvent::SlowPoll {
                loop_id: this.loop_id,
                spawned_at: this.loc,
                elapsed,
            });
        }
        out
    }
}
