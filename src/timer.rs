//! polyloop's timers: one deadline-ordered queue for the process, armed on a timerfd
//! that async-io's reactor watches like any other I/O source.
//!
//! With async-io's own timers, a timer that falls due while the loop's thread is busy
//! only fires at the thread's next trip through the reactor: one more round of
//! `epoll_wait` and of the system calls around it, although the timer needs no
//! kernel to tell that it is due. Here, the thread that runs a loop looks at the
//! queue itself whenever its loop runs out of work ([`Driven`]) and fires what is due
//! on the spot; the timerfd is only there to wake a thread that sleeps in the
//! reactor. When the timerfd fires on a thread that runs a loop, re-arming it (two
//! system calls) waits until the woken tasks have run, so it does not delay them.
//!
//! Any thread that drives the reactor (a loop's, a worker's, async-io's own) fires the
//! queue's timers when the timerfd becomes readable, so a [`Sleep`] works under any
//! executor, as async-io's timers do. Where the queue cannot be made (no timerfd on
//! this system, or no file descriptor left), a [`Sleep`] uses an async-io timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// A wait until a deadline on the process's timer queue (or, where there is none, on
/// an async-io timer). Dropping it cancels it.
#[derive(Debug)]
pub(crate) struct Sleep {
    deadline: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Not polled yet.
    New,
    /// In the queue, under this key.
    Queued(u64),
    /// On an async-io timer.
    Reactor(async_io::Timer),
    /// In a forked child that lost the reactor: on the child's timer thread.
    Child(crate::fork::ChildTimer),
}

impl Sleep {
    pub(crate) fn new(deadline: Instant) -> Sleep {
        Sleep { deadline, state: State::New }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match &mut this.state {
            State::Reactor(timer) => return Pin::new(timer).poll(cx).map(drop),
            State::Child(timer) => return Pin::new(timer).poll(cx),
            _ => {}
        }
        if crate::fork::reactor_lost() {
            // A forked child: neither the reactor nor the queue (whose lock a thread
            // of the parent may have held at the fork) may be used here.
            this.state = State::Child(crate::fork::ChildTimer::new(this.deadline));
            return self.poll(cx);
        }
        if Instant::now() >= this.deadline {
            this.cancel();
            return Poll::Ready(());
        }
        match queue::get() {
            Some(q) => {
                let key = match this.state {
                    State::Queued(key) => Some(key),
                    _ => None,
                };
                this.state = State::Queued(q.wait(this.deadline, key, cx.waker()));
                Poll::Pending
            }
            None => {
                crate::fork::note_reactor();
                let mut timer = async_io::Timer::at(this.deadline);
                let poll = Pin::new(&mut timer).poll(cx).map(drop);
                this.state = State::Reactor(timer);
                poll
            }
        }
    }
}

impl Sleep {
    /// Takes the sleep out of the queue, if it is in it.
    fn cancel(&mut self) {
        if let State::Queued(key) = std::mem::replace(&mut self.state, State::New) {
            // A forked child must not touch the queue: its lock may have been held by a
            // thread of the parent at the fork (a sleep of the parent's, dropped in the
            // child, leaves its entry behind).
            if crate::fork::reactor_lost() {
                return;
            }
            if let Some(q) = queue::get() {
                q.remove(self.deadline, key);
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A future run by a thread that drives the reactor for it (`fork::block_on`): each
/// time the future runs out of work, the timers that are due fire on this thread (and
/// the future is polled again), and a re-arming of the timerfd left to this thread is
/// done.
#[derive(Debug)]
pub(crate) struct Driven<F> {
    future: F,
    /// This thread's driver state before this future's run began, restored after.
    outer: Option<queue::DriverState>,
}

impl<F> Driven<F> {
    pub(crate) fn new(future: F) -> Driven<F> {
        Driven { future, outer: None }
    }
}

impl<F: Future + Unpin> Future for Driven<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        queue::driver_enter(&mut this.outer);
        loop {
            if let Poll::Ready(out) = Pin::new(&mut this.future).poll(cx) {
                return Poll::Ready(out);
            }
            if !queue::idle() {
                break;
            }
        }
        queue::driver_leave(cx.waker());
        Poll::Pending
    }
}

impl<F> Drop for Driven<F> {
    fn drop(&mut self) {
        queue::driver_drop(&mut self.outer);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod queue {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::os::fd::OwnedFd;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use async_io::Async;
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };

    /// The process's timer queue.
    pub(super) struct Queue {
        fd: Async<OwnedFd>,
        /// Wakes [`Queue::on_readable`]; registered with the reactor for `fd`.
        waker: Waker,
        inner: Mutex<Inner>,
        /// The first deadline, in nanoseconds since `base`, or `u64::MAX` for none: a
        /// hint that lets a thread see without the lock that nothing is due. It may be
        /// earlier than the true first deadline (after a removal), never later.
        earliest: AtomicU64,
        base: Instant,
        /// The timerfd fired on a loop's thread, which re-arms it once its tasks ran.
        rearm: AtomicBool,
    }

    struct Inner {
        wakers: BTreeMap<(Instant, u64), Waker>,
        next_key: u64,
        /// The deadline the timerfd is set for, if it is set.
        armed: Option<Instant>,
        /// The reactor watches `fd` for us (until it reports it readable).
        registered: bool,
    }

    static QUEUE: OnceLock<Queue> = OnceLock::new();

    /// The queue, made on first use; `None` where it cannot be made.
    pub(super) fn get() -> Option<&'static Queue> {
        if let Some(q) = QUEUE.get() {
            return Some(q);
        }
        let q = Queue::new()?;
        // Another thread may have made one first: this one is dropped.
        Some(QUEUE.get_or_init(|| q))
    }

    struct ReadableWake;

    impl Wake for ReadableWake {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            if let Some(q) = QUEUE.get() {
                q.on_readable();
            }
        }
    }

    impl Queue {
        fn new() -> Option<Queue> {
            crate::fork::note_reactor();
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )
            .ok()?;
            Some(Queue {
                fd: Async::new(fd).ok()?,
                waker: Waker::from(Arc::new(ReadableWake)),
                inner: Mutex::new(Inner {
                    wakers: BTreeMap::new(),
                    next_key: 0,
                    armed: None,
                    registered: false,
                }),
                earliest: AtomicU64::new(u64::MAX),
                base: Instant::now(),
                rearm: AtomicBool::new(false),
            })
        }

        fn lock(&self) -> MutexGuard<'_, Inner> {
            self.inner.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn nanos(&self, t: Instant) -> u64 {
            u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
        }

        /// Puts (or keeps) a sleep until `deadline` in the queue with `waker`; returns
        /// its key.
        pub(super) fn wait(&self, deadline: Instant, key: Option<u64>, waker: &Waker) -> u64 {
            let mut inner = self.lock();
            if let Some(key) = key {
                if let Some(w) = inner.wakers.get_mut(&(deadline, key)) {
                    if !w.will_wake(waker) {
                        w.clone_from(waker);
                    }
                    return key;
                }
            }
            let key = inner.next_key;
            inner.next_key += 1;
            inner.wakers.insert((deadline, key), waker.clone());
            self.earliest.fetch_min(self.nanos(deadline), Ordering::AcqRel);
            if inner.armed.is_none_or(|armed| deadline < armed) {
                self.arm(&mut inner, deadline);
            }
            self.register(&mut inner);
            key
        }

        pub(super) fn remove(&self, deadline: Instant, key: u64) {
            self.lock().wakers.remove(&(deadline, key));
        }

        /// Sets the timerfd for `deadline`.
        fn arm(&self, inner: &mut Inner, deadline: Instant) {
            // Relative: the timer fires no earlier than `deadline` (zero would disarm it).
            let wait =
                deadline.saturating_duration_since(Instant::now()).max(Duration::from_nanos(1));
            self.settime(wait);
            inner.armed = Some(deadline);
        }

        fn settime(&self, wait: Duration) {
            let value = Itimerspec {
                it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: Timespec {
                    tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: wait.subsec_nanos().into(),
                },
            };
            // Setting also clears an expiry that was not read. It cannot fail on a
            // timerfd of ours with a valid value.
            let _ = timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &value);
        }

        /// Has the reactor watch the timerfd, if it does not already.
        fn register(&self, inner: &mut Inner) {
            if inner.registered {
                return;
            }
            let mut cx = Context::from_waker(&self.waker);
            // The first poll after the reactor reported the fd takes that report; the
            // next one registers. Bounded, in case reports keep coming.
            for _ in 0..4 {
                match self.fd.poll_readable(&mut cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Pending => {
                        inner.registered = true;
                        return;
                    }
                    Poll::Ready(Err(_)) => break,
                }
            }
            // The reactor could not watch the fd (out of memory): the queue goes on
            // with the loops' threads firing it, and a retry at the next sleep.
        }

        /// Sets the timerfd for the first deadline (and has it watched), or clears it.
        fn rearm_locked(&self, inner: &mut Inner) {
            match inner.wakers.first_key_value().map(|(k, _)| k.0) {
                Some(first) => {
                    if inner.armed != Some(first) {
                        self.arm(inner, first);
                    }
                    self.register(inner);
                }
                None => {
                    if inner.armed.take().is_some() {
                        self.settime(Duration::ZERO);
                    }
                }
            }
        }

        /// Takes the wakers of the sleeps due at `now` out of the queue.
        fn take_due(&self, inner: &mut Inner, now: Instant) -> Vec<Waker> {
            let mut due = Vec::new();
            while let Some(entry) = inner.wakers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if inner.armed.is_some_and(|armed| armed <= now) {
                // It has fired, or is about to: it no longer stands for a sleep.
                inner.armed = None;
            }
            let first = inner.wakers.first_key_value().map_or(u64::MAX, |(k, _)| self.nanos(k.0));
            self.earliest.store(first, Ordering::Release);
            due
        }

        /// The reactor reported the timerfd readable (on whichever thread drives it).
        fn on_readable(&self) {
            let now = Instant::now();
            let driver = DRIVER
                .try_with(|d| d.try_borrow().ok().and_then(|d| d.waker.clone()))
                .ok()
                .flatten();
            let mut inner = self.lock();
            inner.registered = false;
            let due = self.take_due(&mut inner, now);
            match &driver {
                // This thread runs a loop and is between two polls of it: it re-arms the
                // timerfd once the tasks woken here have run.
                Some(_) => self.rearm.store(true, Ordering::Release),
                None => self.rearm_locked(&mut inner),
            }
            drop(inner);
            due.into_iter().for_each(Waker::wake);
            if let Some(driver) = driver {
                driver.wake();
            }
        }

        /// For a loop's thread that ran out of work: fires what is due, or does a
        /// re-arming left to it. Whether it woke anything.
        fn idle(&self) -> bool {
            let earliest = self.earliest.load(Ordering::Acquire);
            let rearm = self.rearm.load(Ordering::Acquire);
            if earliest == u64::MAX && !rearm {
                return false;
            }
            let now = Instant::now();
            if earliest > self.nanos(now) && !rearm {
                return false;
            }
            let mut inner = self.lock();
            let due = self.take_due(&mut inner, now);
            if due.is_empty() {
                if self.rearm.swap(false, Ordering::AcqRel) || inner.armed.is_none() {
                    self.rearm_locked(&mut inner);
                }
                return false;
            }
            // Re-armed at the next look, once the tasks woken here have run.
            self.rearm.store(true, Ordering::Release);
            drop(inner);
            due.into_iter().for_each(Waker::wake);
            true
        }

        fn rearm_now(&self) {
            if self.rearm.swap(false, Ordering::AcqRel) {
                let mut inner = self.lock();
                self.rearm_locked(&mut inner);
            }
        }
    }

    /// What this thread does for the queue while it drives the reactor for a loop.
    #[derive(Default, Debug)]
    pub(crate) struct DriverState {
        /// This thread's `block_on` waker, set between two polls of a [`Driven`]
        /// future (while the reactor may run here), `None` while the future itself
        /// runs (a task blocking in a `block_on` of its own must not leave the
        /// re-arming to this thread).
        ///
        /// [`Driven`]: super::Driven
        waker: Option<Waker>,
    }

    thread_local! {
        static DRIVER: RefCell<DriverState> = RefCell::default();
    }

    /// A poll of a `Driven` future begins.
    pub(super) fn driver_enter(outer: &mut Option<DriverState>) {
        let _ = DRIVER.try_with(|d| {
            let mut d = d.borrow_mut();
            if outer.is_none() {
                // The first poll: keep the state of a run this one is nested in.
                *outer = Some(std::mem::take(&mut *d));
            }
            d.waker = None;
        });
    }

    /// A poll of a `Driven` future ends with `Pending`: the reactor may run on this
    /// thread until `waker` is woken.
    pub(super) fn driver_leave(waker: &Waker) {
        let _ = DRIVER.try_with(|d| {
            let mut d = d.borrow_mut();
            match &mut d.waker {
                Some(w) if w.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
        });
    }

    /// A `Driven` future is dropped: restores the state of the run it was nested in.
    pub(super) fn driver_drop(outer: &mut Option<DriverState>) {
        if let Some(outer) = outer.take() {
            let _ = DRIVER.try_with(|d| *d.borrow_mut() = outer);
            if let Some(q) = QUEUE.get() {
                q.rearm_now();
            }
        }
    }

    /// See [`Queue::idle`]; `false` where no queue was made.
    pub(super) fn idle() -> bool {
        QUEUE.get().is_some_and(Queue::idle)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod queue {
    use std::task::Waker;
    use std::time::Instant;

    /// No timerfd here: sleeps use async-io's timers.
    pub(super) enum Queue {}

    impl Queue {
        pub(super) fn wait(&self, _: Instant, _: Option<u64>, _: &Waker) -> u64 {
            match *self {}
        }

        pub(super) fn remove(&self, _: Instant, _: u64) {
            match *self {}
        }
    }

    pub(super) fn get() -> Option<&'static Queue> {
        None
    }

    #[derive(Debug)]
    pub(crate) struct DriverState;

    pub(super) fn driver_enter(_: &mut Option<DriverState>) {}

    pub(super) fn driver_leave(_: &std::task::Waker) {}

    pub(super) fn driver_drop(_: &mut Option<DriverState>) {}

    pub(super) fn idle() -> bool {
        false
    }
}
