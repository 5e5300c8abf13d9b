//! How long a loop lives: its handles, references that do not keep it open, and the
//! loops that close when the thread they were made for exits.
//!
//! An [`EventLoop`] counts its handles. When the last one is dropped the loop is closed
//! (its close hooks run, so a pool joins its workers; its tasks are dropped), without
//! waiting for the memory to go. Threads that lend themselves to a loop hold a
//! [`WeakEventLoop`], which is no handle: a pool whose user let go of the loop stops.
//!
//! A task may hold a handle of its own loop (from `get_running_loop()`), and the loop
//! holds the task: counting alone would keep both forever. So a loop that was made for a
//! thread without being asked for (by `block_on`, or by a policy's `get_event_loop`) is
//! also closed when that thread exits, however many handles remain.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};

use super::{EventLoop, Inner};
use crate::error::Error;

impl Clone for EventLoop {
    /// Another handle of the same loop.
    fn clone(&self) -> Self {
        // Relaxed, as `Arc`'s own count: a new handle is made from a live one.
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        EventLoop { inner: self.inner.clone() }
    }
}

impl Drop for EventLoop {
    /// Dropping the last handle closes the loop, as [`EventLoop::close`] does.
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.last_handle_dropped();
        }
    }
}

impl EventLoop {
    /// A reference to this loop that does not keep it open: once every [`EventLoop`]
    /// handle is dropped, the loop closes (its close hooks run and its tasks are
    /// dropped) whatever `WeakEventLoop`s remain.
    ///
    /// A thread pool gives these to its worker threads, so that a loop its user drops
    /// without `close()` still stops its workers.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = polyloop::EventLoop::new()?;
    /// let weak = lp.downgrade();
    /// assert_eq!(weak.upgrade(), Some(lp.clone()));
    /// drop(lp);
    /// assert!(weak.upgrade().is_none());
    /// assert!(weak.run_worker(async {}).unwrap_err().is_closed());
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn downgrade(&self) -> WeakEventLoop {
        WeakEventLoop { inner: Arc::downgrade(&self.inner), id: self.inner.id }
    }

    #[cold]
    #[inline(never)]
    fn last_handle_dropped(&self) {
        if self.inner.fork_generation != crate::fork::generation() {
            // Inherited through `fork()`: the threads its hooks would stop and join do not
            // exist in this process, and joining them would hang. Only the memory goes;
            // the hooks, which may own such threads, are not even dropped.
            for hooks in [&self.inner.close_hooks, &self.inner.after_close_hooks] {
                std::mem::forget(std::mem::take(
                    &mut *hooks.lock().unwrap_or_else(PoisonError::into_inner),
                ));
            }
            return;
        }
        close_in_drop(self, "its last handle was dropped");
    }
}

/// Closes `lp` where a panic must not escape (a `Drop`, a thread-local destructor).
fn close_in_drop(lp: &EventLoop, why: &str) {
    // A running loop (only possible on another thread) refuses; it closes when its last
    // handle goes.
    if catch_unwind(AssertUnwindSafe(|| lp.close())).is_err() {
        eprintln!(
            "polyloop: closing event loop #{} when {why} panicked; the panic was caught, \
             since it could not be passed on from there",
            lp.id()
        );
    }
}

/// A reference to an [`EventLoop`] that does not keep it open; made by
/// [`EventLoop::downgrade`].
#[derive(Clone)]
pub struct WeakEventLoop {
    inner: Weak<Inner>,
    id: u64,
}

impl WeakEventLoop {
    /// The loop's number (as [`EventLoop::id`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A handle of the loop, or `None` once its last handle was dropped.
    pub fn upgrade(&self) -> Option<EventLoop> {
        let inner = self.inner.upgrade()?;
        let mut handles = inner.handles.load(Ordering::Relaxed);
        loop {
            // Zero handles: the loop was let go and is closing, or closed.
            if handles == 0 {
                return None;
            }
            match inner.handles.compare_exchange_weak(
                handles,
                handles + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(EventLoop { inner }),
                Err(now) => handles = now,
            }
        }
    }

    /// Runs the loop's `Send` tasks on the calling thread until `until` completes, as
    /// [`EventLoop::run_worker`] does, but without keeping the loop open: when the last
    /// handle is dropped the loop closes, and its close hooks are where a pool tells its
    /// workers to stop (with `until`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the loop is closed or every handle was dropped,
    /// [`Error::AlreadyRunning`] if a loop is already running on this thread.
    pub fn run_worker<T>(&self, until: impl Future<Output = T>) -> Result<T, Error> {
        let Some(inner) = self.inner.upgrade() else {
            return Err(Error::Closed { loop_id: self.id });
        };
        if inner.handles.load(Ordering::Acquire) == 0 {
            return Err(Error::Closed { loop_id: self.id });
        }
        Uncounted::new(inner).run_worker(until)
    }
}

impl fmt::Debug for WeakEventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakEventLoop")
            .field("id", &self.id)
            .field("open", &(self.inner.strong_count() > 0))
            .finish()
    }
}

/// A loop borrowed as an [`EventLoop`] without being one of its handles: it does not
/// keep the loop open, and letting it go never closes the loop. Inside, the loop is
/// the thread's running loop, and `get_running_loop()` makes real handles from it.
struct Uncounted(ManuallyDrop<EventLoop>);

impl Uncounted {
    fn new(inner: Arc<Inner>) -> Uncounted {
        Uncounted(ManuallyDrop::new(EventLoop { inner }))
    }
}

impl Deref for Uncounted {
    type Target = EventLoop;

    fn deref(&self) -> &EventLoop {
        &self.0
    }
}

impl Drop for Uncounted {
    fn drop(&mut self) {
        // SAFETY: `new` made this `EventLoop` without counting a handle, so its own
        // `Drop`, which uncounts one, must not run, and never does: it sits in a
        // `ManuallyDrop` that is never taken out. Reading its `Arc` moves out the one
        // reference `new` was given, once, here; the `EventLoop` is not used again.
        drop(unsafe { std::ptr::read(&self.0.inner) });
    }
}

/// A loop made for this thread without being asked for.
struct Implicit {
    lp: WeakEventLoop,
    fork_generation: u64,
}

/// The implicit loops of a thread; dropped, with the thread, it closes them.
struct ImplicitLoops(RefCell<Vec<Implicit>>);

impl Drop for ImplicitLoops {
    fn drop(&mut self) {
        for entry in std::mem::take(self.0.get_mut()) {
            // A forked child does not close its parent's loops.
            if entry.fork_generation != crate::fork::generation() {
                continue;
            }
            if let Some(lp) = entry.lp.upgrade() {
                close_in_drop(&lp, "the thread it was made for exited");
            }
        }
    }
}

thread_local! {
    static IMPLICIT: ImplicitLoops = const { ImplicitLoops(RefCell::new(Vec::new())) };
}

/// Closes `lp`, a loop made for this thread without being asked for, when this thread
/// exits. Whoever else holds the loop then holds a closed loop: it was this thread's,
/// and the thread is done with it.
pub(crate) fn close_at_thread_exit(lp: &EventLoop) {
    let generation = crate::fork::generation();
    let entry = Implicit { lp: lp.downgrade(), fork_generation: generation };
    // During the thread's exit there is no list any more: the loop is left to its
    // handles.
    let _ = IMPLICIT.try_with(|loops| {
        let mut loops = loops.0.borrow_mut();
        // Loops already gone leave the list, and so do those of a parent process. (Only
        // counts are read here: nothing is dropped that could run code.)
        loops.retain(|e| e.lp.inner.strong_count() > 0 && e.fork_generation == generation);
        loops.push(entry);
    });
}
