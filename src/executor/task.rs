//! `Task<T>`: the handle of a spawned future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A spawned future: awaiting it gives the future's output.
///
/// Dropping a `Task` **cancels** it (unlike tokio's `JoinHandle`, which detaches); call
/// [`Task::detach`] to let it run on its own. A panic inside the task is caught, the
/// executor goes on running the other tasks, and the panic resumes in whoever awaits
/// the task.
///
/// # Examples
///
/// ```
/// let task = polyloop::block_on(async { polyloop::spawn(async { 1 + 2 }) });
/// // A task spawned on a loop runs when that loop runs again.
/// assert_eq!(polyloop::block_on(task), 3);
/// ```
#[must_use = "dropping a Task cancels it; call .detach() to let it run on its own"]
pub struct Task<T>(pub(crate) async_task::Task<T>);

impl<T> Task<T> {
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
        self.0.detach()
    }

    /// Cancels the task and waits until it is gone. Gives its output if it had
    /// already finished, else `None`.
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
        self.0.cancel().await
    }

    /// Whether the task has finished (its output is ready, or it panicked or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("finished", &self.is_finished()).finish()
    }
}
