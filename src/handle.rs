//! Callbacks scheduled on a loop (`call_soon`, `call_later`, `call_at`), their handles,
//! and the task that runs them in order.

use std::any::Any;
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Instant;

use event_listener::Event;
use futures_lite::FutureExt;

use crate::executor::PushMark;

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

/// How many segment drivers may wait idle for a segment; a driver that finds this many
/// waiting when it is done ends, so that a burst of segments does not keep one driver
/// task per segment alive until the loop closes.
pub(crate) const IDLE_DRIVERS: usize = 8;

/// Where a callback was scheduled (for reports of its panic).
type Loc = &'static Location<'static>;

/// The callbacks of one loop: ready ones in FIFO order, timed ones by deadline.
///
/// asyncio keeps callbacks and task steps in one FIFO queue. Here tasks wait in the
/// executor's queues, and ready callbacks wait here, in *segments*: callbacks scheduled
/// one after the other with no task queued in between (the executor's push mark did not
/// change) form one. For each segment, a driver task stands in the executor's line where
/// the segment's first callback was scheduled; when it runs, it runs that segment (and
/// the timers that are due), then waits to be handed another. So a callback runs after
/// the tasks queued before it, and before those queued after it.
///
/// A callback scheduled while a segment runs opens a new segment, whose driver queues
/// at the back: each iteration runs only the callbacks that were ready when it began,
/// and what they schedule waits for the next one. Callbacks never run at the same time:
/// a driver that finds another one running waits its turn.
pub(crate) struct Callbacks {
    queues: Mutex<Queues>,
    /// Wakes the timer driver when a timer is added.
    event: Event,
    /// A driver is running callbacks.
    busy: AtomicBool,
    /// Notified when `busy` is cleared.
    released: Event,
}

/// The right to run callbacks (see [`Callbacks::claim`]); dropping it gives it up, also
/// when a callback's report panics.
struct Busy<'a>(&'a Callbacks);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
        self.0.released.notify(1);
    }
}

/// A callback to run now, and where it was scheduled.
type Due = (Handle, Callback, Loc);

/// A ready callback, and the number of its segment.
type Ready = (Handle, Callback, Loc, u64);

#[derive(Default)]
struct Queues {
    ready: VecDeque<Ready>,
    timers: BinaryHeap<Timed>,
    seq: u64,
    /// The number of the last segment opened.
    segments: u64,
    /// The segment that the next callback joins if the push mark is still this one;
    /// none once its driver took it.
    open: Option<(u64, PushMark)>,
    /// Drivers that wait to be handed a segment.
    idle: Vec<Waker>,
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
            busy: AtomicBool::new(false),
            released: Event::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Schedules a ready callback. `mark` reads the executor's push mark (see
    /// [`Executor::push_mark`](crate::executor::Executor)); `spawn_driver` spawns one
    /// more segment driver ([`Callbacks::drive_segments`]) when none is idle.
    pub(crate) fn push_ready(
        &self,
        callback: Callback,
        loc: Loc,
        mark: impl Fn() -> PushMark,
        spawn_driver: impl FnOnce(),
    ) -> Handle {
        let handle = Handle::new();
        let mut q = self.lock();
        let now = mark();
        if let Some((seg, at)) = q.open {
            if at == now {
                q.ready.push_back((handle.clone(), callback, loc, seg));
                return handle;
            }
        }
        q.segments += 1;
        let seg = q.segments;
        q.ready.push_back((handle.clone(), callback, loc, seg));
        // The segment's driver takes its place in line now, behind the tasks queued
        // before, as the callback would in asyncio's one queue.
        match q.idle.pop() {
            Some(driver) => crate::executor::waking_at_back(|| driver.wake()),
            None => spawn_driver(),
        }
        // Read after the driver was queued: only a task queued later closes the segment.
        q.open = Some((seg, mark()));
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
        q.ready.iter().filter(|(h, ..)| !h.is_cancelled()).count()
            + q.timers.iter().filter(|t| !t.handle.is_cancelled()).count()
    }

    /// How many segment drivers wait to be handed a segment.
    #[cfg(test)]
    pub(crate) fn idle_drivers(&self) -> usize {
        self.lock().idle.len()
    }

    /// Drops every scheduled callback.
    pub(crate) fn clear(&self) {
        let dropped = {
            let mut q = self.lock();
            q.open = None;
            (
                std::mem::take(&mut q.ready),
                std::mem::take(&mut q.timers),
                std::mem::take(&mut q.idle),
            )
        };
        drop(dropped);
    }

    /// Moves the due timers (by deadline) to the back of `batch`; returns the next
    /// deadline.
    fn take_due(q: &mut Queues, batch: &mut Vec<Due>) -> Option<Instant> {
        let now = Instant::now();
        while q.timers.peek().is_some_and(|t| t.when <= now || t.handle.is_cancelled()) {
            let t = q.timers.pop().expect("peeked");
            batch.push((t.handle, t.callback, t.loc));
        }
        q.timers.peek().map(|t| t.when)
    }

    /// Runs `batch`, skipping cancelled callbacks; `report` gets the panic of one.
    fn run(batch: Vec<Due>, report: &impl Fn(&(dyn Any + Send), Loc)) {
        // What the callbacks wake goes to the back of the line, as asyncio's
        // `call_soon` would queue it.
        crate::executor::waking_at_back(|| {
            for (handle, callback, loc) in batch {
                if handle.is_cancelled() {
                    continue;
                }
                // A panicking callback is reported and the loop goes on, as in asyncio.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(callback)) {
                    report(&*panic, loc);
                }
            }
        });
    }

    /// Waits until no other driver runs callbacks (only ever the case with several
    /// threads), and claims the right to until the guard drops.
    async fn claim(&self) -> Busy<'_> {
        loop {
            if !self.busy.swap(true, Ordering::Acquire) {
                return Busy(self);
            }
            let released = self.released.listen();
            if !self.busy.swap(true, Ordering::Acquire) {
                return Busy(self);
            }
            released.await;
        }
    }

    /// Takes the oldest segment that no driver took yet, and the timers that are due.
    fn take_segment(&self) -> Vec<Due> {
        let mut batch = Vec::new();
        let mut q = self.lock();
        let Some(&(.., seg)) = q.ready.front() else { return batch };
        while q.ready.front().is_some_and(|r| r.3 == seg) {
            let (handle, callback, loc, _) = q.ready.pop_front().expect("peeked");
            batch.push((handle, callback, loc));
        }
        if q.open.is_some_and(|(open, _)| open == seg) {
            q.open = None;
        }
        if Self::take_due(&mut q, &mut batch).is_some() {
            // The timer driver may wait for this segment: the next deadline is its again.
            self.event.notify(1);
        }
        batch
    }

    /// A segment driver: each time it runs, it runs the oldest segment that no driver
    /// took yet (in one thread, drivers run in the order in which the segments were
    /// opened, so this is its own), then the timers that are due, then waits until it
    /// is handed another segment. Spawned on the loop's executor.
    pub(crate) async fn drive_segments(
        self: Arc<Self>,
        report: impl Fn(&(dyn Any + Send), Loc) + Send + 'static,
    ) {
        loop {
            let busy = self.claim().await;
            Self::run(self.take_segment(), &report);
            drop(busy);
            // Handed another segment by `push_ready`, it is woken, and so queued, again;
            // with enough drivers idle already, it ends.
            let mut parked = false;
            let kept = std::future::poll_fn(|cx| {
                if std::mem::replace(&mut parked, true) {
                    return Poll::Ready(true);
                }
                let mut q = self.lock();
                if q.idle.len() >= IDLE_DRIVERS {
                    return Poll::Ready(false);
                }
                q.idle.push(cx.waker().clone());
                Poll::Pending
            })
            .await;
            if !kept {
                return;
            }
        }
    }

    /// The timer driver: sleeps until the next timer is due, then runs the due ones,
    /// unless a segment waits to run: its driver runs them after it. Spawned on the
    /// loop's executor.
    pub(crate) async fn drive_timers(
        self: Arc<Self>,
        report: impl Fn(&(dyn Any + Send), Loc) + Send + 'static,
    ) {
        loop {
            let listener = self.event.listen();
            let mut batch = Vec::new();
            let next = {
                let mut q = self.lock();
                // A segment waits: its driver runs the due timers behind it, as asyncio
                // appends them to the ready queue (and tells us when done).
                (q.ready.is_empty()).then(|| Self::take_due(&mut q, &mut batch))
            };
            let Some(next) = next else {
                listener.await;
                continue;
            };
            if !batch.is_empty() {
                let busy = self.claim().await;
                Self::run(batch, &report);
                drop(busy);
                // Timers that these callbacks set for now wait for the next iteration.
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
