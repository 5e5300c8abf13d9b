//! What an executor reports that nobody awaits: the panic of a task whose output
//! nobody claimed; a panic caught while a task's future, or an output that nobody
//! claimed, was dropped; `!Send` tasks leaked because their home thread is gone.
//!
//! async-task drops a task's future (and an output nobody will read) under a guard
//! that aborts the process if the drop panics. Every task's future is wrapped (see
//! `Tracked` in `active.rs`), and its output in [`Finished`], so that the drop happens
//! in our code first, inside `catch_unwind`; the guard then has nothing left to drop.
//! A drop that does not panic costs no more than before: `catch_unwind` only adds a
//! landing pad.

use std::any::Any;
use std::mem::{self, ManuallyDrop};
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};

use super::state::{State, running_state};

/// Something an executor reports to whoever owns it (a loop routes it to its hook).
#[derive(Debug)]
pub(crate) enum Incident<'a> {
    /// A task panicked, and nobody claimed its output: it was detached, or its `Task`
    /// dropped after it finished. (Awaiting the task resumes the panic instead.)
    TaskPanicked { spawned_at: &'static Location<'static>, payload: &'a (dyn Any + Send) },
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
        Incident::TaskPanicked { spawned_at, payload } => eprintln!(
            "polyloop: a detached task panicked: {} (spawned at {spawned_at})",
            message(payload)
        ),
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

/// A task's output, as the task hands it to async-task: its value, or its panic.
///
/// Whoever awaits the task gets the value, or the panic resumed. A panic that nobody
/// claims is reported ([`Incident::TaskPanicked`]) where the output is dropped, as
/// below.
///
/// async-task drops the output under its abort guard when nobody will read it (the
/// task was detached, or cancelled while it ran): that drop then happens here, inside
/// `catch_unwind`, on a runner of the task's executor, which reports a panic. A `Task`
/// dropped or detached after its task finished takes the output out and drops it with
/// [`Finished::drop_in_task`], which reports to the executor too. Only an output that
/// async-task drops elsewhere (a `Task` dropped or detached just as its task completes)
/// is reported on stderr, since its executor may be gone by then.
pub(crate) struct Finished<T> {
    value: ManuallyDrop<Result<T, Box<dyn Any + Send>>>,
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
        value: Result<T, Box<dyn Any + Send>>,
        state: *const State,
        spawned_at: &'static Location<'static>,
    ) -> Self {
        Finished { value: ManuallyDrop::new(value), state, spawned_at }
    }

    /// Drops the output, and reports a panic (the task's, or one of the drop) to the
    /// task's executor.
    ///
    /// # Safety
    ///
    /// The task is alive (which keeps its executor alive).
    pub(crate) unsafe fn drop_in_task(self) {
        let mut this = ManuallyDrop::new(self);
        let state = this.state;
        // SAFETY: `this` is never dropped, so the value is dropped once; the caller
        // keeps the executor alive.
        unsafe { this.drop_value(|incident| (*state).report(incident)) }
    }

    /// The output, handed to whoever awaited the task; its panic is resumed here.
    #[inline]
    pub(crate) fn into_inner(self) -> T {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the value is taken out once.
        match unsafe { ManuallyDrop::take(&mut this.value) } {
            Ok(value) => value,
            Err(panic) => resume_unwind(panic),
        }
    }

    /// Drops the value, or reports the task's panic and drops its payload, and sends
    /// any incident to `report`.
    ///
    /// # Safety
    ///
    /// As [`ManuallyDrop::drop`]: `self.value` is not used again.
    unsafe fn drop_value(&mut self, report: impl Fn(Incident<'_>)) {
        let spawned_at = self.spawned_at;
        // SAFETY: forwarded to the caller.
        let mut value = ManuallyDrop::new(unsafe { ManuallyDrop::take(&mut self.value) });
        if let Err(panic) = &*value {
            report(Incident::TaskPanicked { spawned_at, payload: &**panic });
        }
        // The task's panic payload may panic when dropped too.
        // SAFETY: `value` is not used after this.
        let dropped = unsafe { drop_catching(&mut value) };
        if let Err(panic) = dropped {
            report(Incident::DropPanicked { spawned_at, output: true, payload: &*panic });
            // Nor may this payload's drop unwind.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(panic)));
        }
    }
}

impl<T> Drop for Finished<T> {
    fn drop(&mut self) {
        let state = self.state;
        // SAFETY: `value` is not used after this.
        unsafe {
            self.drop_value(|incident| {
                let here = running_state();
                if std::ptr::eq(here, state) {
                    // SAFETY: `here` is the state of the runner running on this thread,
                    // which keeps it alive while it runs tasks.
                    (*here).report(incident);
                } else {
                    // The executor may be gone (see the type's docs).
                    to_stderr(incident);
                }
            })
        }
    }
}
