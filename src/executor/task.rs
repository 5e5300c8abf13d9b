//! `Task<T>`: the handle of a spawned future.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use super::report::Finished;
use super::state::State;
use super::sync::Arc;

/// A spawned future: awaiting it gives the future's output.
///
/// Dropping a `Task` **cancels** it (unlike tokio's `JoinHandle`, which detaches); call
/// [`Task::detach`] to let it run on its own. A panic inside the task is caught, the
/// executor goes on running the other tasks, and the panic resumes in whoever awaits
/// the task. A panic while the task's future is dropped (when it is cancelled) is
/// caught and reported, as is one while dropping an output that nobody will read.
///
/// # Examples
///
/// ```
/// let task = polyloop::block_on(async { polyloop::spawn(async { 1 + 2 }) });
/// // A task spawned on a loop runs when that loop runs again.
/// assert_eq!(polyloop::block_on(task), 3);
/// ```
#[must_use = "dropping a Task cancels it; call .detach() to let it run on its own"]
pub struct Task<T> {
    task: ManuallyDrop<async_task::Task<Finished<T>, Arc<State>>>,
    /// Set once `poll` gave the output: nothing is left to release on drop.
    taken: bool,
}

impl<T> Task<T> {
    pub(crate) fn new(task: async_task::Task<Finished<T>, Arc<State>>) -> Task<T> {
        Task { task: ManuallyDrop::new(task), taken: false }
    }

    fn into_inner(self) -> async_task::Task<Finished<T>, Arc<State>> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the task is taken out once.
        unsafe { ManuallyDrop::take(&mut this.task) }
    }

    /// Lets the task run to completion on its own; its output is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let done = Arc::new(AtomicBool::new(false));
    /// let d = done.clone();
    /// polyloop::block_on(async move {
    ///     polyloop::spawn(async move { d.store(true, Ordering::SeqCst) }).detach();
    ///     polyloop::yield_now().await;
    /// });
    /// assert!(done.load(Ordering::SeqCst));
    /// ```
    pub fn detach(self) {
        let task = self.into_inner();
        // Even an output that needs no drop may be a panic to report.
        if task.is_finished() {
            // Nothing will read the output: drop it now (see `release`).
            release(task);
        } else {
            // Finishing later, the task drops its output on a runner.
            task.detach();
        }
    }

    /// Cancels the task and waits until it is gone. Gives its output if it had
    /// already finished, else `None`. A task that has not finished is dropped by a
    /// thread running its executor: with none running, this waits.
    ///
    /// # Examples
    ///
    /// ```
    /// polyloop::block_on(async {
    ///     let task = polyloop::spawn(std::future::pending::<()>());
    ///     assert_eq!(task.cancel().await, None);
    /// });
    /// ```
    pub async fn cancel(self) -> Option<T> {
        self.into_inner().cancel().await.map(Finished::into_inner)
    }

    /// Whether the task has finished (its output is ready, or it panicked or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let out = Pin::new(&mut *self.task).poll(cx);
        if out.is_ready() {
            self.taken = true;
        }
        out.map(Finished::into_inner)
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        // SAFETY: `self.task` is not used again.
        let task = unsafe { ManuallyDrop::take(&mut self.task) };
        // Even an output that needs no drop may be a panic to report, unless it was
        // taken.
        if !self.taken && task.is_finished() {
            release(task);
        }
        // Otherwise async-task's drop cancels it; finishing later, or while it is
        // cancelled, the task drops its output on a runner.
    }
}

/// Drops the output of a finished `task`, if nobody took it.
///
/// async-task would read out the output and drop it after letting go of the task, when
/// its executor may be gone; taken out here, while `cancel` holds the task (and so its
/// executor), a panic in its drop is reported to that executor.
fn release<T>(task: async_task::Task<Finished<T>, Arc<State>>) {
    let mut cancel = pin!(task.cancel());
    let mut cx = Context::from_waker(Waker::noop());
    // The task's own panic is in its output (`Finished`), reported by `drop_in_task`;
    // nothing else here should unwind, and if it did it must not leave `drop`.
    if let Ok(Poll::Ready(Some(out))) =
        catch_unwind(AssertUnwindSafe(|| cancel.as_mut().poll(&mut cx)))
    {
        // SAFETY: `cancel` holds the task until the end of this function.
        unsafe { out.drop_in_task() };
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("finished", &self.is_finished()).finish()
    }
}
