//! Callbacks scheduled on a loop (`call_soon`, `call_later`, `call_at`), their handles,
//! and the task that runs them in order.

use std::any::Any;
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use event_listener::Event;

use crate::exception::{ExceptionContext, ExceptionSource};
use crate::executor::PushMark;

/// A callback scheduled with [`EventLoop::call_soon`](crate::EventLoop::call_soon).
///
/// Cancelling it before it runs means it never runs: the loop drops it instead. A
/// panic while it is dropped (in the `Drop` of a value it captured) is reported as the
/// panic of a callback is, and the other callbacks run all the same.
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

/// What a callback was doing when it panicked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// It ran.
    Running,
    /// It was dropped without running (cancelled, or its loop closed): the `Drop` of a
    /// value it captured panicked.
    Dropping,
}

/// What an exception handler is told of a callback's panic.
pub(crate) fn panic_context(panic: &(dyn Any + Send), loc: Loc, stage: Stage) -> ExceptionContext {
    let message = match stage {
        Stage::Running => "a callback panicked (the loop goes on)",
        Stage::Dropping => "a callback that never ran panicked while being dropped",
    };
    ExceptionContext::from_panic(ExceptionSource::Callback, message, panic, Some(loc))
}

/// Drops `callback` (one that will never run) where its panic must not escape: the
/// `Drop` of what it captured may panic, and that panic, unwinding from a loop's
/// driver, its iteration or its close, would lose the callbacks around it (or abort
/// the process, if a second one panicked as it unwound). It is caught and given to
/// `report`, as the panic of a callback that runs is.
pub(crate) fn drop_callback<C>(
    callback: C,
    loc: Loc,
    report: &impl Fn(&(dyn Any + Send), Loc, Stage),
) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(callback))) {
        caught(panic, loc, Stage::Dropping, report);
    }
}

/// Reports a panic caught from a callback, then drops its payload, whose own `Drop`
/// must not escape either.
fn caught(
    panic: Box<dyn Any + Send>,
    loc: Loc,
    stage: Stage,
    report: &impl Fn(&(dyn Any + Send), Loc, Stage),
) {
    report(&*panic, loc, stage);
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(panic))) {
        // A payload whose drop panicked, and then that panic's own: left alone.
        std::mem::forget(again);
    }
}

/// The callbacks of one loop: ready ones in FIFO order, timed ones by deadline.
///
/// asyncio keeps callbacks and task steps in one FIFO queue. Here tasks wait in the
/// executor's queues, and ready callbacks wait here, in *segments*: callbacks scheduled
/// one after the other with no task queued in between (the executor's push mark did not
/// change) form one. For each segment, a driver task stands in the executor's line where
/// the segment's first callback was scheduled; when it runs, it runs that segment, then
/// waits to be handed another. So a callback runs after the tasks queued before it, and
/// before those queued after it.
///
/// A callback scheduled while a segment runs opens a new segment, whose driver queues
/// at the back: each iteration runs only the callbacks that were ready when it began,
/// and what they schedule waits for the next one. Callbacks never run at the same time:
/// a driver that finds another one running waits its turn.
///
/// Timed callbacks wait in a heap until an iteration of the loop begins after their
/// deadline: then they join the line at its back, behind everything that was ready
/// when that iteration began, as asyncio's `_run_once` appends its due timers to its
/// ready queue (see [`Callbacks::begin_iteration`]); they run in that iteration. The
/// loop's thread, with nothing to run, sleeps until the earliest deadline at most
/// ([`Callbacks::poll_idle`]), as asyncio's select times out.
pub(crate) struct Callbacks {
    queues: Mutex<Queues>,
    /// The earliest deadline in the heap, in nanoseconds since `base`, or `NO_TIMER`:
    /// an iteration's start reads this, not the lock.
    next_due: AtomicU64,
    /// There is a timer (`next_due` is not `NO_TIMER`): the runner reads it before it
    /// calls [`Callbacks::begin_iteration`] at all.
    armed: AtomicBool,
    base: Instant,
    /// The sleep of the loop's idle thread until the earliest deadline, and that deadline.
    alarm: Mutex<Option<(Instant, Alarm)>>,
    /// A driver is running callbacks.
    busy: AtomicBool,
    /// Notified when `busy` is cleared.
    released: Event,
}

impl Drop for Callbacks {
    /// What is still scheduled when the loop's memory goes (the callbacks of a loop
    /// inherited through `fork()`, which is never closed) is dropped as
    /// [`Callbacks::clear`] drops it; with no loop left to tell, a panic goes to the
    /// default handler.
    fn drop(&mut self) {
        self.clear(&|panic: &(dyn Any + Send), loc, stage| {
            crate::exception::report(None, panic_context(panic, loc, stage));
        });
    }
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

/// See [`Callbacks::poll_idle`].
type Alarm = Pin<Box<dyn Future<Output = ()> + Send>>;

/// `Callbacks::next_due` when there is no timer.
const NO_TIMER: u64 = u64::MAX;

/// A ready callback, and the number of its segment.
type Ready = (Handle, Callback, Loc, u64);

#[derive(Default)]
struct Queues {
    /// Set by [`Callbacks::clear`]: from then on every push is refused. Read and set
    /// under the lock, so that a push is either in the queues before `clear` takes
    /// them, and dropped by it, or refused.
    closed: bool,
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
    /// The loop's thread, asleep until the earliest deadline (see
    /// [`Callbacks::poll_idle`]): an earlier one wakes it.
    sleeper: Option<Waker>,
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
            next_due: AtomicU64::new(NO_TIMER),
            armed: AtomicBool::new(false),
            base: Instant::now(),
            alarm: Mutex::new(None),
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
    ///
    /// Gives `callback` back, not scheduled, once [`Callbacks::clear`] has run: the
    /// caller drops it (outside the lock, with [`drop_callback`]) and refuses.
    pub(crate) fn push_ready(
        &self,
        callback: Callback,
        loc: Loc,
        mark: impl Fn() -> PushMark,
        spawn_driver: impl FnOnce(),
    ) -> Result<Handle, Callback> {
        let mut q = self.lock();
        if q.closed {
            return Err(callback);
        }
        let handle = Handle::new();
        Self::queue_ready(&mut q, [(handle.clone(), callback, loc)], mark, spawn_driver);
        Ok(handle)
    }

    /// Puts `due` at the back of the line: in the open segment if no task was queued
    /// since its driver was (the push mark is still the same), else in a new segment
    /// whose driver is queued now.
    fn queue_ready(
        q: &mut Queues,
        due: impl IntoIterator<Item = Due>,
        mark: impl Fn() -> PushMark,
        spawn_driver: impl FnOnce(),
    ) {
        let now = mark();
        if let Some((seg, at)) = q.open {
            if at == now {
                q.ready.extend(due.into_iter().map(|(h, c, l)| (h, c, l, seg)));
                return;
            }
        }
        q.segments += 1;
        let seg = q.segments;
        q.ready.extend(due.into_iter().map(|(h, c, l)| (h, c, l, seg)));
        // The segment's driver takes its place in line now, behind the tasks queued
        // before, as the callback would in asyncio's one queue.
        match q.idle.pop() {
            Some(driver) => crate::executor::waking_at_back(|| driver.wake()),
            None => spawn_driver(),
        }
        // Read after the driver was queued: only a task queued later closes the segment.
        q.open = Some((seg, mark()));
    }

    /// Schedules a callback due at `when`; gives it back, as [`Callbacks::push_ready`]
    /// does, once [`Callbacks::clear`] has run.
    pub(crate) fn push_timed(
        &self,
        when: Instant,
        callback: Callback,
        loc: Loc,
    ) -> Result<TimerHandle, Callback> {
        let handle = Handle::new();
        let sleeper = {
            let mut q = self.lock();
            if q.closed {
                return Err(callback);
            }
            q.seq += 1;
            let seq = q.seq;
            let earliest = q.timers.peek().is_none_or(|t| when < t.when);
            q.timers.push(Timed { when, seq, handle: handle.clone(), callback, loc });
            if earliest {
                self.set_next_due(self.nanos(when));
            }
            // The loop's thread sleeps until a later deadline (or none): it must look
            // again.
            earliest.then(|| q.sleeper.take()).flatten()
        };
        if let Some(sleeper) = sleeper {
            sleeper.wake();
        }
        Ok(TimerHandle { handle, when })
    }

    /// Sets `next_due` (under the lock), and `armed` with it.
    fn set_next_due(&self, next: u64) {
        self.next_due.store(next, Ordering::Relaxed);
        let armed = next != NO_TIMER;
        if self.armed.load(Ordering::Relaxed) != armed {
            self.armed.store(armed, Ordering::Relaxed);
        }
    }

    /// Set while there is a timer (see [`Callbacks::begin_iteration`]).
    pub(crate) fn armed(&self) -> &AtomicBool {
        &self.armed
    }

    /// `at` in nanoseconds since `base` (0 before it).
    fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.base).as_nanos();
        u64::try_from(nanos).unwrap_or(NO_TIMER - 1).min(NO_TIMER - 1)
    }

    /// Whether the earliest timer (perhaps a cancelled one) is due: one load while
    /// there is no timer.
    #[inline]
    pub(crate) fn any_due(&self) -> bool {
        let next = self.next_due.load(Ordering::Relaxed);
        next != NO_TIMER && self.nanos(Instant::now()) >= next
    }

    /// Called by the loop's runner when an iteration begins, before it counts what the
    /// iteration runs: moves the timers that are due (by deadline, then in the order
    /// they were scheduled) to the back of the line, as asyncio's `_run_once` appends
    /// them to its ready queue, so that they run in this iteration, behind everything
    /// that was ready when it began. `mark` and `spawn_driver` are those of
    /// [`Callbacks::push_ready`]; `report` gets the panic of a cancelled timer's drop.
    #[inline]
    pub(crate) fn begin_iteration(
        &self,
        mark: impl Fn() -> PushMark,
        spawn_driver: impl FnOnce(),
        report: &impl Fn(&(dyn Any + Send), Loc, Stage),
    ) {
        if self.any_due() {
            self.queue_due(mark, spawn_driver, report);
        }
    }

    /// [`Callbacks::begin_iteration`] with a timer due. Out of line: an iteration
    /// begins as often as a task yields.
    #[cold]
    #[inline(never)]
    fn queue_due(
        &self,
        mark: impl Fn() -> PushMark,
        spawn_driver: impl FnOnce(),
        report: &impl Fn(&(dyn Any + Send), Loc, Stage),
    ) {
        let mut due = Vec::new();
        let mut cancelled = Vec::new();
        let mut q = self.lock();
        let now = Instant::now();
        while q.timers.peek().is_some_and(|t| t.when <= now || t.handle.is_cancelled()) {
            let t = q.timers.pop().expect("peeked");
            let to = if t.handle.is_cancelled() { &mut cancelled } else { &mut due };
            to.push((t.handle, t.callback, t.loc));
        }
        self.set_next_due(q.timers.peek().map_or(NO_TIMER, |t| self.nanos(t.when)));
        if !due.is_empty() {
            Self::queue_ready(&mut q, due, mark, spawn_driver);
            // What is scheduled from now on waits for the next iteration: it opens a
            // segment of its own, even with no task queued in between.
            q.open = None;
        }
        drop(q);
        // Dropped outside the lock: dropping a callback may schedule another. On the
        // runner's path: a panic must not unwind through the executor.
        for (_, callback, loc) in cancelled {
            drop_callback(callback, loc, report);
        }
    }

    /// Called by the loop's thread when it has nothing to run, before it sleeps:
    /// `Ready` if a timer is due (a new iteration begins at its next look); else
    /// `Pending`, and `cx` is woken at the earliest deadline, or when a timer with an
    /// earlier one is scheduled.
    pub(crate) fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        let next = {
            let mut q = self.lock();
            if !q.sleeper.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                q.sleeper = Some(cx.waker().clone());
            }
            q.timers.peek().map(|t| t.when)
        };
        let mut alarm = self.alarm.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(next) = next else {
            *alarm = None;
            return Poll::Pending;
        };
        if next <= Instant::now() {
            *alarm = None;
            return Poll::Ready(());
        }
        if alarm.as_ref().is_none_or(|(at, _)| *at != next) {
            *alarm = Some((next, Box::pin(crate::fork::sleep_until(next))));
        }
        let (_, sleep) = alarm.as_mut().expect("set above");
        let rang = sleep.as_mut().poll(cx);
        if rang.is_ready() {
            // A finished sleep is not polled again.
            *alarm = None;
        }
        rang
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

    /// Drops every scheduled callback, each one even when others panic while being
    /// dropped: `report` gets each such panic. From then on every push is refused.
    ///
    /// A push from another thread that saw the loop open before it closed may come
    /// this late: marking the queues closed under the lock that pushes take orders it
    /// with this. Either it came first, and its callback is taken and dropped here, or
    /// it is refused; none is left in the queues once this returns.
    pub(crate) fn clear(&self, report: &impl Fn(&(dyn Any + Send), Loc, Stage)) {
        let (ready, timers, idle, sleeper) = {
            let mut q = self.lock();
            q.closed = true;
            q.open = None;
            self.set_next_due(NO_TIMER);
            (
                std::mem::take(&mut q.ready),
                std::mem::take(&mut q.timers),
                std::mem::take(&mut q.idle),
                q.sleeper.take(),
            )
        };
        // Outside the lock: dropping a callback may schedule another.
        for (_, callback, loc, _) in ready {
            drop_callback(callback, loc, report);
        }
        for Timed { callback, loc, .. } in timers.into_vec() {
            drop_callback(callback, loc, report);
        }
        drop((idle, sleeper));
        drop(self.alarm.lock().unwrap_or_else(PoisonError::into_inner).take());
    }

    /// Runs `batch`, dropping cancelled callbacks; `report` gets the panic of one, as
    /// it runs or as it is dropped.
    fn run(batch: Vec<Due>, report: &impl Fn(&(dyn Any + Send), Loc, Stage)) {
        // What the callbacks wake goes to the back of the line, as asyncio's
        // `call_soon` would queue it.
        crate::executor::waking_at_back(|| {
            for (handle, callback, loc) in batch {
                if handle.is_cancelled() {
                    drop_callback(callback, loc, report);
                    continue;
                }
                // A panicking callback is reported and the loop goes on, as in asyncio.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(callback)) {
                    caught(panic, loc, Stage::Running, report);
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

    /// Takes the oldest segment that no driver took yet.
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
        batch
    }

    /// A segment driver: each time it runs, it runs the oldest segment that no driver
    /// took yet (in one thread, drivers run in the order in which the segments were
    /// opened, so this is its own), then waits until it is handed another segment.
    /// Spawned on the loop's executor.
    pub(crate) async fn drive_segments(
        self: Arc<Self>,
        report: impl Fn(&(dyn Any + Send), Loc, Stage) + Send + 'static,
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
}
