//! How many runners are running, for event sources that would rather be checked by a
//! runner than by another thread.
//!
//! While a loop's thread is busy, whoever else drives the reactor (often async-io's own
//! thread) takes its events and hands each one over across threads. A source that
//! runners can check cheaply may instead, when the reactor finds it ready while some
//! runner is running, take what is ready and then [`pause`]: not ask the reactor for
//! its next readiness. The next runner to stop running calls [`Paused::resume`], which
//! checks the source and asks the reactor again.
//!
//! Runners count themselves only while some source wants it ([`want`]): otherwise a
//! runner's poll costs one relaxed load here.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A paused source, resumed by the next runner that stops running.
pub(crate) trait Paused: Send + Sync {
    /// Checks the source and asks the reactor for its next readiness. Called once per
    /// [`pause`], or more: it must be idempotent.
    fn resume(&self);
}

/// How many sources want runners counted.
static WANTED: AtomicUsize = AtomicUsize::new(0);
/// How many runners are inside a poll (counted since a source wanted it).
static BUSY: AtomicUsize = AtomicUsize::new(0);
/// Whether `PAUSED` may hold a source: the runners' fast path.
static ANY_PAUSED: AtomicBool = AtomicBool::new(false);
static PAUSED: Mutex<Vec<Arc<dyn Paused>>> = Mutex::new(Vec::new());

/// A source starts (`true`) or stops (`false`) wanting runners counted. Calls pair up.
pub(crate) fn want(on: bool) {
    if on {
        WANTED.fetch_add(1, Ordering::SeqCst);
    } else {
        WANTED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether some runner is running now.
pub(crate) fn any_running() -> bool {
    BUSY.load(Ordering::SeqCst) > 0
}

/// Leaves `source` for the next runner that stops running, if one is running; returns
/// whether it was left. If not, the caller asks the reactor itself.
pub(crate) fn pause(source: Arc<dyn Paused>) -> bool {
    if !any_running() {
        return false;
    }
    {
        let mut paused = PAUSED.lock().unwrap_or_else(PoisonError::into_inner);
        paused.push(source);
        ANY_PAUSED.store(true, Ordering::SeqCst);
    }
    // The last runner may have stopped before it could see the source: then nobody
    // else will resume it.
    if !any_running() {
        resume_all();
    }
    true
}

/// Takes `source` off the paused list, if on it (it was resumed otherwise, or is
/// going away).
pub(crate) fn forget(source: &dyn Paused) {
    if !ANY_PAUSED.load(Ordering::SeqCst) {
        return;
    }
    let mut paused = PAUSED.lock().unwrap_or_else(PoisonError::into_inner);
    paused.retain(|s| !std::ptr::addr_eq(Arc::as_ptr(s), source as *const dyn Paused));
    if paused.is_empty() {
        ANY_PAUSED.store(false, Ordering::SeqCst);
    }
}

fn resume_all() {
    let paused = {
        let mut paused = PAUSED.lock().unwrap_or_else(PoisonError::into_inner);
        ANY_PAUSED.store(false, Ordering::SeqCst);
        std::mem::take(&mut *paused)
    };
    for source in paused {
        source.resume();
    }
}

/// A runner's poll, counted if a source wanted it when the poll began.
pub(crate) struct Running(bool);

impl Running {
    pub(crate) fn enter() -> Running {
        if WANTED.load(Ordering::Relaxed) == 0 {
            return Running(false);
        }
        BUSY.fetch_add(1, Ordering::SeqCst);
        Running(true)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0 {
            BUSY.fetch_sub(1, Ordering::SeqCst);
            if ANY_PAUSED.load(Ordering::SeqCst) {
                resume_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Source(AtomicUsize);

    impl Paused for Source {
        fn resume(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    // One test, so that no other test of this module moves the counters meanwhile;
    // runners of other tests may run, which only delays a resume to their own stop.
    #[test]
    fn a_paused_source_is_resumed_by_a_runner_that_stops() {
        let source = Arc::new(Source::default());
        // Nobody wants runners counted: nothing is running as far as sources know.
        let uncounted = Running::enter();
        assert!(!uncounted.0);
        want(true);
        let running = Running::enter();
        assert!(running.0);
        assert!(pause(source.clone()), "a runner is running");
        drop(uncounted);
        drop(running);
        let start = std::time::Instant::now();
        while source.0.load(Ordering::SeqCst) == 0 {
            // Another test's runner may hold `BUSY` up; it resumes the source as it stops.
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "never resumed");
            std::thread::yield_now();
        }
        want(false);
    }
}
