//! Blocking work off the loop: [`unblock`] and
//! [`EventLoop::run_in_executor`](crate::EventLoop::run_in_executor), as asyncio's
//! `run_in_executor(None, f)` / `to_thread` and tokio's `spawn_blocking`.
//!
//! A closure given to [`unblock`] runs on a thread of one process-wide pool, and the
//! returned [`Unblock`] future resolves to its result. Threads start on demand, one per
//! closure waiting while none is free, up to [`max_threads`] (512 unless
//! `POLYLOOP_BLOCKING_THREADS` says otherwise), and each ends after half a second
//! without work. Past the bound, closures wait in FIFO order for a free thread.
//!
//! - A panic in the closure resumes in whoever awaits the future.
//! - Dropping the future before its closure started removes the closure from the
//!   queue (it is dropped at once, never run). Dropping it afterwards lets the closure
//!   finish on its thread; the result is dropped there.
//!
//! # Why not the `blocking` crate
//!
//! smol-rs's `blocking` does nearly this, but does not fit in three ways:
//! - *bound*: it reads its own `BLOCKING_MAX_THREADS`, clamps a bad value or falls back
//!   to its default without a word, where polyloop's settings reject a bad value with
//!   an error that says what is allowed;
//! - *fork*: its counts of threads survive `fork()` while the threads do not, so in a
//!   forked child work queued behind "idle" threads that do not exist never runs; this
//!   pool starts afresh in a child, as the loops do;
//! - *removal*: a dropped, unstarted `blocking` task stays in its queue (and may start
//!   a thread) until a thread pops it; here it leaves the queue at once.
//!
//! The spawner that starts children for
//! [`Command::start_on_spawner`](crate::process::Command::start_on_spawner) runs on this
//! pool too (with a bound of its own on how many children start at once), so a program
//! has one pool of blocking threads, not two.
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::Error;
use crate::event_loop::EventLoop;
use crate::exception::{ExceptionContext, ExceptionSource};

/// The environment variable that sets [`max_threads`].
pub const THREADS_ENV: &str = crate::settings::BLOCKING_THREADS_ENV;
/// The bound on the pool's threads when `POLYLOOP_BLOCKING_THREADS` is unset: blocking
/// work mostly waits (on files, DNS, locks), so many threads may be useful at once.
pub const DEFAULT_MAX_THREADS: usize = crate::settings::DEFAULT_BLOCKING_THREADS;
/// The largest value `POLYLOOP_BLOCKING_THREADS` may hold.
pub const MAX_MAX_THREADS: usize = crate::settings::MAX_BLOCKING_THREADS;
/// How long a pool thread waits for work before it ends.
const IDLE: Duration = Duration::from_millis(500);
/// The name of the pool's threads (at most 15 bytes: Linux keeps no more).
pub(crate) const THREAD_NAME: &str = "polyloop-block";

/// Runs `f` on the blocking pool; the future resolves to what `f` returns.
///
/// The closure is queued at once, whether or not the future is polled.
///
/// # Panics
///
/// If `POLYLOOP_BLOCKING_THREADS` holds a bad value (see [`max_threads`]). Awaiting the
/// future resumes a panic of `f`.
///
/// # Examples
///
/// ```
/// let sum = polyloop::block_on(async {
///     polyloop::unblock(|| (1..=100u64).sum::<u64>()).await
/// });
/// assert_eq!(sum, 5050);
/// ```
#[track_caller]
pub fn unblock<T, F>(f: F) -> Unblock<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if let Err(err) = max_threads() {
        panic!("polyloop::unblock: {err}");
    }
    submit(f, None, Location::caller())
}

/// The bound on the blocking pool's threads: `POLYLOOP_BLOCKING_THREADS`, else
/// [`DEFAULT_MAX_THREADS`]. Read once, at first use.
///
/// # Errors
///
/// [`Error::InvalidEnv`] if `POLYLOOP_BLOCKING_THREADS` is set to anything but a whole
/// number from 1 to [`MAX_MAX_THREADS`].
///
/// # Examples
///
/// ```
/// let bound = polyloop::blocking::max_threads()?;
/// assert!(bound >= 1);
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn max_threads() -> Result<usize, Error> {
    static MAX: OnceLock<Result<usize, Error>> = OnceLock::new();
    MAX.get_or_init(crate::settings::blocking_threads).clone()
}

impl EventLoop {
    /// Runs `f` on the blocking pool for this loop, as asyncio's
    /// `loop.run_in_executor(None, f)`: [`unblock`], refused once the loop is closed.
    /// If the future is dropped after `f` started and `f` then panics, the panic goes
    /// to this loop's exception handler (see
    /// [`set_exception_handler`](EventLoop::set_exception_handler)).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the loop is closed; [`Error::InvalidEnv`] if
    /// `POLYLOOP_BLOCKING_THREADS` holds a bad value.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = polyloop::EventLoop::new()?;
    /// let work = lp.run_in_executor(|| std::thread::current().name().map(String::from))?;
    /// let name = lp.run_until_complete(work)?;
    /// assert_eq!(name.as_deref(), Some("polyloop-block"));
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    #[track_caller]
    pub fn run_in_executor<T, F>(&self, f: F) -> Result<Unblock<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_closed() {
            return Err(Error::Closed { loop_id: self.id() });
        }
        max_threads()?;
        Ok(submit(f, Some(self.downgrade()), Location::caller()))
    }
}

/// The future of [`unblock`] and [`EventLoop::run_in_executor`]: the result of a closure
/// run on the blocking pool.
///
/// Dropping it before the closure started removes the closure; dropping it afterwards
/// lets the closure finish and drops its result.
#[must_use = "dropping an Unblock before its closure started removes the closure"]
pub struct Unblock<T> {
    job: Arc<Job<T>>,
    /// The result was handed out.
    finished: bool,
}

impl<T> Future for Unblock<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.job.lock();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(result) => {
                drop(slot);
                self.finished = true;
                match result {
                    Ok(value) => Poll::Ready(value),
                    Err(panic) => resume_unwind(panic),
                }
            }
            Slot::Queued(f, _) => {
                *slot = Slot::Queued(f, Some(cx.waker().clone()));
                Poll::Pending
            }
            Slot::Running(waker) => {
                let waker = match waker {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *slot = Slot::Running(Some(waker));
                Poll::Pending
            }
            Slot::Taken | Slot::Abandoned => unreachable!("an Unblock polled after it completed"),
        }
    }
}

impl<T> Drop for Unblock<T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut slot = self.job.lock();
        match std::mem::replace(&mut *slot, Slot::Abandoned) {
            Slot::Queued(f, _) => {
                drop(slot);
                remove(self.job.id, self.job.generation);
                // Dropped here, never run.
                drop(f);
            }
            // The thread drops the result when the closure returns.
            Slot::Running(_) => {}
            Slot::Done(result) => {
                drop(slot);
                drop(result);
            }
            Slot::Taken | Slot::Abandoned => {}
        }
    }
}

impl<T> fmt::Debug for Unblock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.job.lock() {
            Slot::Queued(..) => "queued",
            Slot::Running(_) => "running",
            Slot::Done(_) => "done",
            Slot::Taken | Slot::Abandoned => "finished",
        };
        f.debug_struct("Unblock").field("state", &state).finish()
    }
}

type Closure<T> = Box<dyn FnOnce() -> T + Send>;

/// One closure and, once it ran, its result.
struct Job<T> {
    slot: Mutex<Slot<T>>,
    /// Its key in the pool's queue.
    id: u64,
    /// The fork generation it was queued in.
    generation: u64,
    /// For a report of a panic nobody awaits: the loop, and where the work was queued.
    lp: Option<crate::event_loop::WeakEventLoop>,
    loc: &'static Location<'static>,
}

enum Slot<T> {
    /// In the pool's queue; the waker of the future, once polled.
    Queued(Closure<T>, Option<Waker>),
    Running(Option<Waker>),
    Done(std::thread::Result<T>),
    /// The future took the result.
    Taken,
    /// The future was dropped.
    Abandoned,
}

impl<T> Job<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the pool runs: a job, whatever its result type.
trait Run: Send + Sync {
    fn run(&self);
}

impl<T: Send + 'static> Run for Job<T> {
    fn run(&self) {
        let f = {
            let mut slot = self.lock();
            match std::mem::replace(&mut *slot, Slot::Taken) {
                Slot::Queued(f, waker) => {
                    *slot = Slot::Running(waker);
                    f
                }
                // Dropped before it started (it left the queue then too).
                other => {
                    *slot = other;
                    return;
                }
            }
        };
        let result = catch_unwind(AssertUnwindSafe(f));
        let mut slot = self.lock();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Running(waker) => {
                *slot = Slot::Done(result);
                drop(slot);
                if let Some(waker) = waker {
                    // A waker that panics must not end the pool's thread.
                    let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
                }
            }
            _ => {
                // Nobody waits: drop the result here; a panic is reported.
                *slot = Slot::Abandoned;
                drop(slot);
                if let Err(panic) = result {
                    let lp = self.lp.as_ref().and_then(|w| w.upgrade());
                    crate::exception::report(
                        lp.as_ref(),
                        ExceptionContext::from_panic(
                            ExceptionSource::Blocking,
                            "a blocking closure panicked after its future was dropped",
                            &*panic,
                            Some(self.loc),
                        ),
                    );
                }
            }
        }
    }
}

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

struct PoolState {
    /// The fork generation the rest is from: a forked child has none of its parent's
    /// threads.
    generation: u64,
    /// Queued jobs by a growing key: FIFO, and a dropped future removes its own.
    queue: BTreeMap<u64, Arc<dyn Run>>,
    next_id: u64,
    /// Threads alive, and how many of them wait for work.
    threads: usize,
    idle: usize,
}

static POOL: Pool = Pool {
    state: Mutex::new(PoolState {
        generation: 0,
        queue: BTreeMap::new(),
        next_id: 0,
        threads: 0,
        idle: 0,
    }),
    work: Condvar::new(),
};

fn pool() -> MutexGuard<'static, PoolState> {
    let mut pool = POOL.state.lock().unwrap_or_else(PoisonError::into_inner);
    let generation = crate::fork::generation();
    if pool.generation != generation {
        // In a forked child: the parent's threads did not come along, nor can their
        // jobs finish here.
        pool.queue.clear();
        pool.threads = 0;
        pool.idle = 0;
        pool.generation = generation;
    }
    pool
}

/// Runs `f` on the blocking pool, with nobody waiting for it (for the spawner, whose
/// jobs report back on their own). `f` must catch its own panics: one would be lost.
#[track_caller]
pub(crate) fn execute(f: impl FnOnce() + Send + 'static) {
    drop(queue(f, None, Location::caller()));
}

/// Queues `f` and starts a thread if none is free and the bound allows.
fn submit<T, F>(
    f: F,
    lp: Option<crate::event_loop::WeakEventLoop>,
    loc: &'static Location<'static>,
) -> Unblock<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Unblock { job: queue(f, lp, loc), finished: false }
}

fn queue<T, F>(
    f: F,
    lp: Option<crate::event_loop::WeakEventLoop>,
    loc: &'static Location<'static>,
) -> Arc<Job<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let max = max_threads().unwrap_or(DEFAULT_MAX_THREADS);
    let mut pool = pool();
    let id = pool.next_id;
    pool.next_id += 1;
    let job = Arc::new(Job {
        slot: Mutex::new(Slot::Queued(Box::new(f), None)),
        id,
        generation: pool.generation,
        lp,
        loc,
    });
    pool.queue.insert(id, job.clone());
    if pool.idle > 0 {
        POOL.work.notify_one();
    }
    if pool.queue.len() > pool.idle && pool.threads < max {
        pool.threads += 1;
        let started = std::thread::Builder::new().name(THREAD_NAME.into()).spawn(worker);
        if started.is_err() {
            pool.threads -= 1;
            if pool.threads == 0 {
                // No thread at all to run it: run the work here rather than never.
                let jobs = std::mem::take(&mut pool.queue);
                drop(pool);
                jobs.into_values().for_each(|job| job.run());
            }
        }
    }
    job
}

/// Takes a job that was not started out of the queue.
fn remove(id: u64, generation: u64) {
    let mut pool = pool();
    if pool.generation == generation {
        pool.queue.remove(&id);
    }
}

fn worker() {
    let mut pool = pool();
    loop {
        if let Some((_, job)) = pool.queue.pop_first() {
            drop(pool);
            job.run();
            drop(job);
            pool = self::pool();
            continue;
        }
        pool.idle += 1;
        let (guard, wait) =
            POOL.work.wait_timeout(pool, IDLE).unwrap_or_else(PoisonError::into_inner);
        pool = guard;
        pool.idle -= 1;
        if wait.timed_out() && pool.queue.is_empty() {
            pool.threads -= 1;
            return;
        }
    }
}

/// How many threads the pool has now (for tests).
#[doc(hidden)]
pub fn threads() -> usize {
    pool().threads
}
