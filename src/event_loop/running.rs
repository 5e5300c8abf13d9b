//! The loop running on this thread, and the guards that claim a loop for a run.

use std::cell::Cell;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use super::{EventLoop, IDLE, driver_location};
use crate::error::Error;
use crate::fork;

thread_local! {
    /// The loop running on this thread (also set on the worker threads of a loop): the
    /// fork generation it was set in, and a pointer to the `EventLoop` that a
    /// [`CurrentGuard`] borrows, or null.
    static RUNNING_LOOP: Cell<(u64, *const EventLoop)> = const { Cell::new((0, std::ptr::null())) };
}

/// The loop running on this thread, if any (also inside a worker of a loop).
///
/// # Examples
///
/// ```
/// assert!(polyloop::get_running_loop().is_none());
/// polyloop::block_on(async { assert!(polyloop::get_running_loop().is_some()) });
/// ```
pub fn get_running_loop() -> Option<EventLoop> {
    with_running_loop(|lp| lp.cloned())
}

/// The id of the loop running on this thread, given the current fork generation.
#[inline]
pub(crate) fn running_loop_id(fork_generation: u64) -> Option<u64> {
    let (generation, ptr) = RUNNING_LOOP.try_with(Cell::get).unwrap_or((0, std::ptr::null()));
    if ptr.is_null() || generation != fork_generation {
        return None;
    }
    // SAFETY: as in `with_running_loop`.
    Some(unsafe { &*ptr }.id())
}

/// Calls `f` with the loop running on this thread, without cloning it.
pub(crate) fn with_running_loop<R>(f: impl FnOnce(Option<&EventLoop>) -> R) -> R {
    let (generation, ptr) = RUNNING_LOOP.try_with(Cell::get).unwrap_or((0, std::ptr::null()));
    // A child process does not run its parent's loop.
    if ptr.is_null() || generation != crate::fork::generation() {
        return f(None);
    }
    // SAFETY: a non-null pointer was set by a `CurrentGuard` that borrows that loop and
    // resets the pointer before the borrow ends; guards are never leaked. (In a forked
    // child the pointer is not used: the generation differs.)
    f(unsafe { ptr.as_ref() })
}

/// Sets the thread's running loop, and restores the previous one on drop.
pub(super) struct CurrentGuard<'a> {
    prev: (u64, *const EventLoop),
    _lp: std::marker::PhantomData<&'a EventLoop>,
}

impl<'a> CurrentGuard<'a> {
    pub(super) fn set(lp: &'a EventLoop) -> CurrentGuard<'a> {
        CurrentGuard::set_at(lp, crate::fork::generation())
    }

    /// `set`, given the current fork generation.
    #[inline]
    pub(super) fn set_at(lp: &'a EventLoop, fork_generation: u64) -> CurrentGuard<'a> {
        let prev = RUNNING_LOOP.with(|c| c.replace((fork_generation, lp)));
        CurrentGuard { prev, _lp: std::marker::PhantomData }
    }
}

impl Drop for CurrentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = RUNNING_LOOP.try_with(|c| c.set(self.prev));
    }
}

/// A loop claimed for a run on this thread; dropping it ends the run.
pub(crate) struct RunGuard<'a> {
    pub(super) _current: CurrentGuard<'a>,
    pub(super) lp: &'a EventLoop,
}

impl RunGuard<'_> {
    pub(crate) fn run_until_complete<F: Future>(self, future: F) -> Result<F::Output, Error> {
        let lp = self.lp;
        if lp.inner.context.is_some() {
            return lp.in_context(move || self.run_plain(future));
        }
        self.run_plain(future)
    }

    /// `run_until_complete` inside the runner context, if there is one.
    #[inline]
    fn run_plain<F: Future>(self, future: F) -> Result<F::Output, Error> {
        // With work queued, or a timer due (which joins the line when the run's first
        // iteration begins), the future waits its turn before it.
        if !self.nothing_waits() {
            return self.run_queued(future);
        }
        let mut future = pin!(future);
        // A future that is ready at once, with nothing queued before it, needs neither
        // the executor nor the reactor: its iteration would run it alone. Poll it once
        // here (a spurious poll is harmless to a pending one).
        if let Poll::Ready(out) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            // What it queued as it completed runs in the iteration after, as asyncio
            // runs it before the done callback that stops the loop, and so do the timers
            // due by then. (The run ends before the future is dropped, as on the other
            // paths.)
            if self.nothing_waits() {
                drop(self);
            } else {
                self.run_one_iteration();
            }
            return Ok(out);
        }
        self.run_polled(future)
    }

    /// Whether no task or callback is queued and no timer is due: nothing for an
    /// iteration to run.
    #[inline]
    fn nothing_waits(&self) -> bool {
        self.lp.inner.executor.nothing_queued() && !self.lp.inner.callbacks.any_due()
    }

    /// Runs one iteration (what is queued now), then ends the run. Kept out of line, as
    /// `run_polled`.
    #[inline(never)]
    fn run_one_iteration(self) {
        // Set from the start: the run ends after one iteration.
        run_until_halted(self.lp, &AtomicBool::new(true));
    }

    /// `run_plain` when work is queued. Kept out of line, as `run_polled`.
    #[inline(never)]
    fn run_queued<F: Future>(self, future: F) -> Result<F::Output, Error> {
        self.run_polled(pin!(future))
    }

    /// Runs the loop until `future` completes and the iteration after the one in which
    /// it did ends, as asyncio's `run_until_complete` does (see `Executor::run_iterations`). Kept out
    /// of line, so that a ready future's path stays short.
    #[inline(never)]
    fn run_polled<F: Future>(self, future: Pin<&mut F>) -> Result<F::Output, Error> {
        let inner = &*self.lp.inner;
        let out = fork::block_on(inner.executor.run_iterations(
            future,
            &inner.stopping,
            driver_location(),
            self.lp,
        ));
        let id = inner.id;
        drop(self);
        out.ok_or(Error::Stopped { loop_id: id })
    }
}

/// Runs the loop's tasks and callbacks in iterations until `halt` is set and the
/// current iteration has ended (after one iteration if it is set already).
pub(super) fn run_until_halted(lp: &EventLoop, halt: &AtomicBool) {
    let _ = fork::block_on(lp.inner.executor.run_iterations(
        pin!(std::future::pending::<()>()),
        halt,
        driver_location(),
        lp,
    ));
}

impl Drop for RunGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let inner = &*self.lp.inner;
        // Only written when set: a store would cost a locked instruction on every run.
        if inner.stopping.load(Ordering::Relaxed) {
            inner.stopping.store(false, Ordering::SeqCst);
        }
        inner.phase.store(IDLE, Ordering::Release);
    }
}
