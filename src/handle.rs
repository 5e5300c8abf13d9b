//! Callbacks scheduled on a loop (`call_soon`, `call_later`, `call_at`), their handles,
//! and the task that runs them in order.

use std::any::Any;
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use event_listener::Event;
use futures_lite::FutureExt;

/// A callback scheduled with [`EventLoop::call_soon`](crate::EventLoop::call_soon).
///
/// Cancelling it before it runs means it never runs.
///
/// # Examples
///
/// ```
/// let lp = polyloop::EventLoop::new().unwrap();
/// let h = lp.call_soon(|| panic!("never runs"));
/// h.cancel();
/// assert!(h.is_cancelled());
/// lp.run_until_complete(polyloop::yield_now()).unwrap();
/// ```
#[derive(Clone)]
pub struct Handle {
    state: Arc<AtomicBool>,
}

impl Handle {
    pub(crate) fn new() -> Handle {
        Handle { state: Arc::new(AtomicBool::new(false)) }
    }

    /// Cancels the callback; it does nothing if the callback already ran.
    pub fn cancel(&self) {
        self.state.store(true, Ordering::Release);
    }

    /// Whether [`Handle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("cancelled", &self.is_cancelled()).finish()
    }
}

/// A callback scheduled for a point in time with
/// [`EventLoop::call_later`](crate::EventLoop::call_later) or
/// [`EventLoop::call_at`](crate::EventLoop::call_at).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let lp = polyloop::EventLoop::new().unwrap();
/// let h = lp.call_later(Duration::from_secs(3600), || panic!("never runs"));
/// assert!(h.when() > lp.time());
/// h.cancel();
/// ```
#[derive(Clone)]
pub struct TimerHandle {
    handle: Handle,
    when: Instant,
}

impl TimerHandle {
    /// When the callback is due.
    pub fn when(&self) -> Instant {
        self.when
    }

    /// Cancels the callback; it does nothing if the callback already ran.
    pub fn cancel(&self) {
        self.handle.cancel()
    }

    /// Whether [`TimerHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.handle.is_cancelled()
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

pub(crate) type Callback = Box<dyn FnOnce() + Send + 'static>;

/// Where a callback was scheduled (for reports of its panic).
type Loc = &'static Location<'static>;

/// The callbacks of one loop: ready ones in FIFO order, timed ones by deadline.
///
/// They run in passes, as the iterations of asyncio's loop: a pass runs the callbacks
/// that were ready when it began, and what those schedule waits for the next pass.
/// Once `stop()` was called, no pass begins in this run after the one that ran in it
/// (or, for a stop before the run, after its first one): the rest waits for the next run.
pub(crate) struct Callbacks {
    queues: Mutex<Queues>,
    /// Wakes the driver task when a callback is added.
    event: Event,
    /// The number of the loop's current (or last) run; only the thread that runs the
    /// loop writes it.
    run: AtomicU64,
    /// `stop()` was called and the run it ends has not ended yet: no new pass.
    stopping: AtomicBool,
    /// Notified when a run begins.
    run_begun: Event,
}

#[derive(Default)]
struct Queues {
    ready: VecDeque<(Handle, Callback, Loc)>,
    timers: BinaryHeap<Timed>,
    seq: u64,
}

/// A timed callback; the heap pops the earliest deadline, then the earliest scheduled.
struct Timed {
    when: Instant,
    seq: u64,
    handle: Handle,
    callback: Callback,
    loc: Loc,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        (self.when, self.seq) == (other.when, other.seq)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // Reversed: `BinaryHeap` is a max-heap.
        (other.when, other.seq).cmp(&(self.when, self.seq))
    }
}

impl Callbacks {
    pub(crate) fn new() -> Callbacks {
        Callbacks {
            queues: Mutex::new(Queues::default()),
            event: Event::new(),
            run: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            run_begun: Event::new(),
        }
    }

    /// A run of the loop begins: a driver held back by a stop may run a pass again.
    pub(crate) fn begin_run(&self) {
        // Only the thread that claimed the loop for this run writes the number.
        self.run.store(self.run.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
        self.run_begun.notify(usize::MAX);
    }

    /// `stop()` was called: no pass begins in this run after the one under way (or, if
    /// the loop is not running, after the first pass of the next run).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// The run that a stop ended is over.
    pub(crate) fn clear_stop(&self) {
        self.stopping.store(false, Ordering::Release);
    }

    /// Whether a stop holds the driver back: it already ran a pass in run `last_run`,
    /// which is still the current one.
    fn held_back(&self, last_run: Option<u64>) -> bool {
        self.stopping.load(Ordering::Acquire) && last_run == Some(self.run.load(Ordering::Acquire))
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push_ready(&self, callback: Callback, loc: Loc) -> Handle {
        let handle = Handle::new();
        self.lock().ready.push_back((handle.clone(), callback, loc));
        // The callbacks' driver waits its turn behind the tasks queued before, as the
        // callback would in asyncio's one queue.
        crate::executor::waking_at_back(|| self.event.notify(1));
        handle
    }

    pub(crate) fn push_timed(&self, when: Instant, callback: Callback, loc: Loc) -> TimerHandle {
        let handle = Handle::new();
        {
            let mut q = self.lock();
            q.seq += 1;
            let seq = q.seq;
            q.timers.push(Timed { when, seq, handle: handle.clone(), callback, loc });
        }
        self.event.notify(1);
        TimerHandle { handle, when }
    }

    /// How many callbacks are scheduled and not cancelled.
    pub(crate) fn pending(&self) -> usize {
        let q = self.lock();
        q.ready.iter().filter(|(h, _, _)| !h.is_cancelled()).count()
            + q.timers.iter().filter(|t| !t.handle.is_cancelled()).count()
    }

    /// Drops every scheduled callback.
    pub(crate) fn clear(&self) {
        let dropped = {
            let mut q = self.lock();
            (std::mem::take(&mut q.ready), std::mem::take(&mut q.timers))
        };
        drop(dropped);
    }

    /// Moves the due timers into the ready queue (by deadline) and takes the ready
    /// queue, as one iteration of asyncio's loop does. Callbacks added while these run
    /// wait for the next iteration.
    fn take_due(&self) -> (VecDeque<(Handle, Callback, Loc)>, Option<Instant>) {
        let now = Instant::now();
        let mut q = self.lock();
        while q.timers.peek().is_some_and(|t| t.when <= now || t.handle.is_cancelled()) {
            let t = q.timers.pop().expect("peeked");
            q.ready.push_back((t.handle, t.callback, t.loc));
        }
        let next = q.timers.peek().map(|t| t.when);
        (std::mem::take(&mut q.ready), next)
    }

    /// The task that runs the callbacks of a loop; spawned on the loop's executor.
    /// `report` gets the panic of a callback, and where it was scheduled.
    pub(crate) async fn drive(
        self: Arc<Self>,
        report: impl Fn(&(dyn Any + Send), Loc) + Send + 'static,
    ) {
        // The run in which the last pass ran.
        let mut last_run = None;
        loop {
            if self.held_back(last_run) {
                // Register, then look again, so that a run that begins meanwhile is seen.
                let begun = self.run_begun.listen();
                if self.held_back(last_run) {
                    begun.await;
                }
                continue;
            }
            let listener = self.event.listen();
            let (batch, next) = self.take_due();
            if !batch.is_empty() {
                last_run = Some(self.run.load(Ordering::Acquire));
                for (handle, callback, loc) in batch {
                    if handle.is_cancelled() {
                        continue;
                    }
                    // A panicking callback is reported and the loop goes on, as in asyncio.
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(callback)) {
                        report(&*panic, loc);
                    }
                }
                // Let tasks woken by these callbacks run before the next batch.
                futures_lite::future::yield_now().await;
                continue;
            }
            match next {
                Some(when) => crate::fork::sleep_until(when).or(listener).await,
                None => listener.await,
            }
        }
    }
}
