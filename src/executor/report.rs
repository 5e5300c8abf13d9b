//! What an executor reports that nobody awaits: a panic caught while a task's future,
//! or an output that nobody claimed, was dropped; `!Send` tasks leaked because their
//! home thread is gone.
//!
//! async-task drops a task's future (and an output nobody will read) under a guard
//! that aborts the process if the drop panics. Every task's future is wrapped (see
//! `Tracked` in `active.rs`), and its output in [`Finished`], so that the drop happens
//! in our code first, inside `catch_unwind`; the guard then has nothing left to drop.
//! A drop that does not panic costs no more than before: `catch_unwind` only adds a
//! landing pad.

use std::any::Any;
use std::mem::{self, ManuallyDrop};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};

use super::state::{State, running_state};

/// Something an executor reports to whoever owns it (a loop routes it to its hook).
#[derive(Debug)]
pub(crate) enum Incident<'a> {
    /// Dropping a task's future (`output == false`), or its output that nobody
    /// claimed (`output == true`), panicked. The panic was caught; the executor goes on.
    DropPanicked {
        spawned_at: &'static Location<'static>,
        output: bool,
        payload: &'a (dyn Any + Send),
    },
    /// `!Send` tasks were queued to be dropped after their home thread had exited:
    /// they cannot be dropped anywhere else, so they were leaked on purpose.
    LocalTasksLeaked { count: usize },
}

/// Where an executor sends its incidents.
pub(crate) type Reporter = Box<dyn Fn(Incident<'_>) + Send + Sync>;

/// The reports of an executor that nobody gave a [`Reporter`]: one line on stderr.
pub(crate) fn to_stderr(incident: Incident<'_>) {
    match incident {
        Incident::DropPanicked { spawned_at, output, payload } => eprintln!(
            "polyloop: {} of the task spawned at {spawned_at} panicked while being dropped \
             (the executor goes on): {}",
            if output { "the output" } else { "the future" },
            message(payload)
        ),
        Incident::LocalTasksLeaked { count } => eprintln!(
            "polyloop: leaked {count} !Send task(s) whose home thread has exited (they can \
             only be dropped on that thread)"
        ),
    }
}

/// The text of a panic payload.
pub(crate) fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic with a non-string payload"
    }
}

/// Drops `value` in place, and gives the payload if its drop panicked.
///
/// # Safety
///
/// As [`ManuallyDrop::drop`]: `value` is not used again.
#[inline]
pub(crate) unsafe fn drop_catching<T>(
    value: &mut ManuallyDrop<T>,
) -> Result<(), Box<dyn Any + Send>> {
    if !mem::needs_drop::<T>() {
        return Ok(());
    }
    // SAFETY: forwarded to the caller.
    catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(value) }))
}

/// A task's output, as the task hands it to async-task.
///
/// async-task drops the output under its abort guard when nobody will read it (the
/// task was detached, or cancelled while it ran): that drop then happens here, inside
/// `catch_unwind`, on a runner of the task's executor, which reports a panic. A `Task`
/// dropped or detached after its task finished takes the output out and drops it with
/// [`Finished::drop_in_task`], which reports to the executor too. Only an output that
/// async-task drops elsewhere (a `Task` dropped or detached just as its task completes)
/// is reported on stderr, since its executor may be gone by then.
pub(crate) struct Finished<T> {
    value: ManuallyDrop<T>,
    /// The task's executor: compared with the one running on the dropping thread, and
    /// only read through that one.
    state: *const State,
    spawned_at: &'static Location<'static>,
}

// SAFETY: the pointer is only compared, and read through the runner of this thread
// (see `Drop`); the rest is `T`.
unsafe impl<T: Send> Send for Finished<T> {}
// SAFETY: as above; `&Finished<T>` gives nothing but `&T`.
unsafe impl<T: Sync> Sync for Finished<T> {}

impl<T> Finished<T> {
    #[inline]
    pub(crate) fn new(
        value: T,
        state: *const State,
        spawned_at: &'static Location<'static>,
    ) -> Self {
        Finished { value: ManuallyDrop::new(value), state, spawned_at }
    }

    /// Drops the output, and reports a panic to the task's executor.
    ///
    /// # Safety
    ///
    /// The task is alive (which keeps its executor alive).
    pub(crate) unsafe fn drop_in_task(self) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the value is dropped once.
        if let Err(panic) = unsafe { drop_catching(&mut this.value) } {
            // SAFETY: the caller keeps the executor alive.
            unsafe { &*this.state }.report(Incident::DropPanicked {
                spawned_at: this.spawned_at,
                output: true,
                payload: &*panic,
            });
        }
    }

    /// The output, handed to whoever awaited the task.
    #[inline]
    pub(crate) fn into_inner(self) -> T {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the value is taken out once.
        unsafe { ManuallyDrop::take(&mut this.value) }
    }
}

impl<T> Drop for Finished<T> {
    fn drop(&mut self) {
        // SAFETY: `value` is not used after this.
        let Err(panic) = (unsafe { drop_catching(&mut self.value) }) else { return };
        let incident =
            Incident::DropPanicked { spawned_at: self.spawned_at, output: true, payload: &*panic };
        let here = running_state();
        if std::ptr::eq(here, self.state) {
            // SAFETY: `here` is the state of the runner running on this thread, which
            // keeps it alive while it runs tasks.
            unsafe { &*here }.report(incident);
        } else {
            // The executor may be gone (see the type's docs).
            to_stderr(incident);
        }
    }
}
