//! Fork awareness: a child process must not use the loops of its parent, nor the
//! parent's reactor.
//!
//! After `fork()`, the child has one thread (a copy of the forking one) whose
//! thread-locals still name the parent's loops, but those loops' reactor, threads and
//! tasks did not come along. As asyncio does, the child starts with no current and no
//! running loop: a handler registered with `pthread_atfork` bumps a generation
//! counter in the child, and every loop remembered per thread carries the generation
//! it was set in.
//!
//! async-io's reactor is a process-wide static that cannot be rebuilt: in a child of a
//! process that used it, its lock is held for good by the parent's driver thread (which
//! the child does not have), and its epoll and eventfd are shared with the parent, so
//! an event the child takes is lost to the parent. So once polyloop has used the
//! reactor, its forked children never touch it: loops run on a plain parker, timers
//! ([`sleep_until`]) on a timer thread of the child's own, and whatever needs the
//! reactor for I/O ([`check_reactor`]) fails with an error that says so.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, Once, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();
/// polyloop has used async-io's reactor in this process (or an ancestor of it).
static REACTOR_USED: AtomicBool = AtomicBool::new(false);
/// This process was forked after async-io's reactor was in use: it must not touch it.
static REACTOR_LOST: AtomicBool = AtomicBool::new(false);

/// The number of forks this process descends from since polyloop was first used.
#[inline]
pub(crate) fn generation() -> u64 {
    REGISTER.call_once(register);
    GENERATION.load(Ordering::Relaxed)
}

/// Whether this process is a forked child of a process that had used async-io's
/// reactor (so it must not use it).
#[inline]
pub(crate) fn reactor_lost() -> bool {
    REACTOR_LOST.load(Ordering::Relaxed)
}

/// Records that the reactor is (about to be) in use, so that forked children know.
/// Every path of polyloop that makes or uses async-io's reactor calls it first.
#[inline]
pub(crate) fn note_reactor() {
    if !REACTOR_USED.load(Ordering::Relaxed) {
        mark_reactor_used();
    }
}

#[cold]
fn mark_reactor_used() {
    REGISTER.call_once(register);
    REACTOR_USED.store(true, Ordering::SeqCst);
}

/// Runs `future` to completion on this thread, driving async-io's reactor while idle;
/// in a child that lost the reactor, on a plain parker (tasks, wakers from threads and
/// polyloop's timers still work).
pub(crate) fn block_on<T>(future: impl Future<Output = T>) -> T {
    if reactor_lost() {
        return futures_lite::future::block_on(future);
    }
    note_reactor();
    async_io::block_on(future)
}

/// `Ok` where async-io's reactor may be used for I/O; in a forked child that lost it,
/// an error that says why and what still works.
///
/// # Errors
///
/// [`io::ErrorKind::Unsupported`] in such a child.
pub(crate) fn check_reactor() -> io::Result<()> {
    if reactor_lost() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this process was forked from one that used async-io's reactor, whose lock and \
             epoll stay with the parent after fork(); I/O through the reactor (async pipes, \
             the pidfd, multiloop, safe and fast child watchers) is not available here. Loops, \
             tasks, timers and children through a ThreadedChildWatcher work; for I/O, exec a \
             new program (or fork before the parent first runs a loop)",
        ));
    }
    note_reactor();
    Ok(())
}

/// Waits until `deadline`: a timer of async-io's reactor, or in a child that lost the
/// reactor, one of the child's own timer thread.
pub(crate) async fn sleep_until(deadline: Instant) {
    if reactor_lost() {
        ChildTimer { deadline, key: None }.await;
        return;
    }
    note_reactor();
    async_io::Timer::at(deadline).await;
}

#[cfg(unix)]
fn register() {
    unsafe extern "C" {
        fn pthread_atfork(
            prepare: Option<extern "C" fn()>,
            parent: Option<extern "C" fn()>,
            child: Option<extern "C" fn()>,
        ) -> std::ffi::c_int;
    }
    extern "C" fn in_child() {
        // Only atomics: async-signal-safe, as a fork handler must be.
        GENERATION.fetch_add(1, Ordering::Relaxed);
        if REACTOR_USED.load(Ordering::Relaxed) {
            REACTOR_LOST.store(true, Ordering::Relaxed);
        }
    }
    // SAFETY: `pthread_atfork` is the POSIX function of this signature in the C library
    // that std links; the handler is a plain `extern "C" fn` that lives for the whole
    // program and only touches atomics.
    let rc = unsafe { pthread_atfork(None, None, Some(in_child)) };
    debug_assert_eq!(rc, 0, "pthread_atfork failed");
}

#[cfg(not(unix))]
fn register() {}

/// The timers of a child that lost the reactor: wakers by deadline, and the thread that
/// wakes them. One per fork generation (a child of this child makes its own: this
/// one's thread and lock stay behind).
struct Timers {
    generation: u64,
    wakers: Mutex<BTreeMap<(Instant, u64), Waker>>,
    changed: Condvar,
    next_key: AtomicU64,
}

static TIMERS: AtomicPtr<Timers> = AtomicPtr::new(std::ptr::null_mut());

impl Timers {
    /// This generation's timers, with their thread started.
    fn get() -> &'static Timers {
        let generation = generation();
        let current = TIMERS.load(Ordering::Acquire);
        // SAFETY: a non-null pointer comes from `Box::leak` below and is never freed.
        if let Some(t) = unsafe { current.as_ref() } {
            if t.generation == generation {
                return t;
            }
        }
        let fresh: &'static Timers = Box::leak(Box::new(Timers {
            generation,
            wakers: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            next_key: AtomicU64::new(0),
        }));
        let fresh_ptr = std::ptr::from_ref(fresh).cast_mut();
        match TIMERS.compare_exchange(current, fresh_ptr, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                std::thread::Builder::new()
                    .name("polyloop-timer".into())
                    .spawn(move || fresh.run())
                    .expect("polyloop: cannot start the timer thread of a forked child");
                fresh
            }
            // Another thread installed this generation's timers first (the leaked box
            // is a few bytes, once).
            // SAFETY: as above.
            Err(other) => unsafe { &*other },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Instant, u64), Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes each timer when its deadline passes.
    fn run(&self) {
        let mut wakers = self.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = wakers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                drop(wakers);
                due.into_iter().for_each(Waker::wake);
                wakers = self.lock();
                continue;
            }
            wakers = match wakers.keys().next().map(|k| k.0) {
                Some(next) => {
                    let wait = next.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(wakers, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self.changed.wait(wakers).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// A timer on the child's timer thread.
struct ChildTimer {
    deadline: Instant,
    key: Option<(&'static Timers, u64)>,
}

impl Future for ChildTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.cancel();
            return Poll::Ready(());
        }
        let (timers, key) = match self.key {
            Some(k) => k,
            None => {
                let timers = Timers::get();
                (timers, timers.next_key.fetch_add(1, Ordering::Relaxed))
            }
        };
        self.key = Some((timers, key));
        let mut wakers = timers.lock();
        let first = wakers.keys().next().is_none_or(|k| self.deadline < k.0);
        wakers.insert((self.deadline, key), cx.waker().clone());
        drop(wakers);
        if first {
            // An earlier deadline than the thread waits for.
            timers.changed.notify_one();
        }
        Poll::Pending
    }
}

impl ChildTimer {
    fn cancel(&mut self) {
        if let Some((timers, key)) = self.key.take() {
            timers.lock().remove(&(self.deadline, key));
        }
    }
}

impl Drop for ChildTimer {
    fn drop(&mut self) {
        self.cancel();
    }
}
