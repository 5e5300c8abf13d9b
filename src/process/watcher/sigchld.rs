//! The process-wide SIGCHLD listener shared by the signal-driven watchers
//! (multi-loop, safe, fast).
//!
//! One signal action for the whole process, registered through signal-hook-registry,
//! which chains to whatever handler was installed before (tokio, async-process, a raw
//! `sigaction`), so they keep working. The action only writes a byte to a
//! non-blocking self-pipe (async-signal-safe); the pipe's read end is watched by the
//! reactor, which calls each subscriber. Signals coalesce and a full pipe drops bytes,
//! so subscribers rescan every pid they watch on each call.
//!
//! Subscriptions are counted: the first registers the action, the last unregisters it
//! (and closes the pipe), whatever order the watchers are closed in. After that only
//! the previous handler runs, as before the first watcher.
//!
//! A signal can still be lost for good: other code may replace the action with a raw
//! `sigaction`, or reap the child and not chain. So while some subscriber has
//! children outstanding, a fallback timer calls the subscribers every [`FALLBACK`]
//! as well: a lost signal makes a status late, never lost. The timer is a timer of
//! the reactor (no thread, no fd), armed when a child is newly watched and let go as
//! soon as no subscriber has a child outstanding.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use rustix::pipe::PipeFlags;
use signal_hook_registry::SigId;

use super::readable::{Next, Readable};

/// How often the subscribers rescan while they have children outstanding, signal or
/// not: the longest a lost SIGCHLD delays a status.
pub(crate) const FALLBACK: Duration = Duration::from_secs(1);

/// A subscriber: a signal-driven watcher.
pub(crate) trait Listener: Send + Sync {
    /// A SIGCHLD came (or several).
    fn on_signal(&self);
    /// The fallback timer fired. `quiet`: every SIGCHLD raised so far had been passed
    /// on, so an exit found now had no signal on its way.
    fn on_fallback(&self, quiet: bool);
    /// Whether it watches a child not yet reaped.
    fn outstanding(&self) -> bool;
}

struct Hub {
    sig: SigId,
    reader: Readable<std::os::fd::OwnedFd>,
}

static HUB: Mutex<Option<Hub>> = Mutex::new(None);
static LISTENERS: Mutex<BTreeMap<u64, Arc<dyn Listener>>> = Mutex::new(BTreeMap::new());
/// How many SIGCHLD wake-ups the hub has passed on (for tests and debugging).
static DELIVERIES: AtomicU64 = AtomicU64::new(0);
/// How many times the action ran (counted in the signal handler).
static RAISED: AtomicU64 = AtomicU64::new(0);
/// `RAISED` as the hub last read it, before it passed the wake-up on.
static SEEN: AtomicU64 = AtomicU64::new(0);
/// The fallback timer, while armed.
static TIMER: Mutex<Option<Arc<Tick>>> = Mutex::new(None);

/// A subscription to SIGCHLD; dropping it unsubscribes.
pub(crate) struct Subscription {
    id: u64,
}

/// Calls `listener` (from the reactor) after each SIGCHLD, and on the fallback timer,
/// from now on.
///
/// The action is armed when this returns: a caller that then checks its children
/// cannot miss an exit.
pub(crate) fn subscribe(listener: Arc<dyn Listener>) -> io::Result<Subscription> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // The hub's pipe is watched by the reactor, which a forked child may have lost.
    crate::fork::check_reactor()?;
    let mut hub = HUB.lock().unwrap_or_else(PoisonError::into_inner);
    if hub.is_none() {
        *hub = Some(start()?);
    }
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    LISTENERS.lock().unwrap_or_else(PoisonError::into_inner).insert(id, listener);
    Ok(Subscription { id })
}

/// Whether the SIGCHLD action is registered now (some watcher subscribes).
pub(crate) fn is_armed() -> bool {
    HUB.lock().unwrap_or_else(PoisonError::into_inner).is_some()
}

/// How many wake-ups were passed on to subscribers so far.
pub(crate) fn deliveries() -> u64 {
    DELIVERIES.load(Ordering::Relaxed)
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut hub = HUB.lock().unwrap_or_else(PoisonError::into_inner);
        let mut listeners = LISTENERS.lock().unwrap_or_else(PoisonError::into_inner);
        listeners.remove(&self.id);
        if listeners.is_empty() {
            drop(listeners);
            if let Some(h) = hub.take() {
                // Unregister first, so the action (and its write end) is gone before
                // the read end is closed.
                signal_hook_registry::unregister(h.sig);
                h.reader.stop();
            }
            drop(hub);
            disarm_fallback();
        }
    }
}

fn start() -> io::Result<Hub> {
    super::reactor::start()?;
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    let action = move || {
        // Async-signal-safe: an atomic add, and one write(2) on a non-blocking pipe; a
        // full pipe already holds a pending wake-up, so a lost byte loses nothing.
        RAISED.fetch_add(1, Ordering::SeqCst);
        let _ = rustix::io::write(&write, &[1u8]);
    };
    // SAFETY: the action only adds to a lock-free atomic and calls write(2) (rustix
    // issues the raw syscall and does not touch errno or allocate), both
    // async-signal-safe; it captures only an fd.
    let sig = unsafe { signal_hook_registry::register(sigchld(), action)? };
    // Non-blocking already: no need for `Async::new` to set it.
    let reader = match async_io::Async::new_nonblocking(read) {
        Ok(source) => Readable::new(source, on_readable),
        Err(e) => {
            signal_hook_registry::unregister(sig);
            return Err(e);
        }
    };
    reader.arm();
    Ok(Hub { sig, reader })
}

fn on_readable(fd: &async_io::Async<std::os::fd::OwnedFd>) -> Next {
    // Before the pipe is drained: a signal raised after this writes a new byte.
    SEEN.store(RAISED.load(Ordering::SeqCst), Ordering::SeqCst);
    let mut buf = [0u8; 64];
    // Drain the pipe; the bytes carry no data.
    while let Ok(n) = rustix::io::read(fd.get_ref(), &mut buf) {
        if n < buf.len() {
            break;
        }
    }
    DELIVERIES.fetch_add(1, Ordering::Relaxed);
    for l in listeners() {
        l.on_signal();
    }
    Next::Again
}

fn listeners() -> Vec<Arc<dyn Listener>> {
    LISTENERS.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
}

/// How many times the action has run so far.
pub(crate) fn raised() -> u64 {
    RAISED.load(Ordering::SeqCst)
}

/// Says once per process, on stderr, that the fallback timer found an exit that no
/// SIGCHLD announced: polyloop's action was replaced, or the signal was lost.
pub(crate) fn report_unannounced(watcher: &str) {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if !REPORTED.swap(true, Ordering::SeqCst) {
        eprintln!(
            "polyloop: {watcher} child watcher: its fallback rescan found a child's exit that \
             no SIGCHLD announced (was polyloop's SIGCHLD action replaced, by a raw \
             sigaction?); statuses may come up to {FALLBACK:?} late. Reported once."
        );
    }
}

/// A child is newly watched: arms the fallback timer, unless it is armed.
pub(crate) fn children_outstanding() {
    let mut slot = TIMER.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_some() {
        return;
    }
    let tick = Arc::new_cyclic(|this| Tick {
        timer: Mutex::new(Some(async_io::Timer::after(FALLBACK))),
        this: this.clone(),
    });
    *slot = Some(tick.clone());
    drop(slot);
    tick.poll();
}

/// A subscriber has no child outstanding any more: lets the timer go if none has.
pub(crate) fn maybe_idle() {
    let mut slot = TIMER.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() || listeners().iter().any(|l| l.outstanding()) {
        return;
    }
    let tick = slot.take();
    drop(slot);
    if let Some(tick) = tick {
        tick.cancel();
    }
}

/// Lets the timer go, whatever is outstanding (no subscriber is left).
fn disarm_fallback() {
    let tick = TIMER.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(tick) = tick {
        tick.cancel();
    }
}

/// Whether the fallback timer is armed (for tests).
pub(crate) fn fallback_armed() -> bool {
    TIMER.lock().unwrap_or_else(PoisonError::into_inner).is_some()
}

/// One arming of the fallback timer: a reactor timer whose waker is this.
struct Tick {
    /// `None` once fired or cancelled; dropping it deregisters it from the reactor.
    timer: Mutex<Option<async_io::Timer>>,
    this: Weak<Tick>,
}

impl Tick {
    fn poll(&self) {
        let Some(this) = self.this.upgrade() else { return };
        let waker = Waker::from(this);
        let mut timer = self.timer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(t) = timer.as_mut() else { return };
        if Pin::new(t).poll(&mut Context::from_waker(&waker)).is_pending() {
            return;
        }
        *timer = None;
        drop(timer);
        self.fire();
    }

    fn cancel(&self) {
        let timer = self.timer.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(timer);
    }

    /// Calls every subscriber, and arms a new timer if one still has children.
    fn fire(&self) {
        {
            let mut slot = TIMER.lock().unwrap_or_else(PoisonError::into_inner);
            match &*slot {
                Some(t) if std::ptr::eq(Arc::as_ptr(t), self) => *slot = None,
                // Cancelled meanwhile.
                _ => return,
            }
        }
        let quiet = RAISED.load(Ordering::SeqCst) == SEEN.load(Ordering::SeqCst);
        let mut outstanding = false;
        for l in listeners() {
            // A subscriber that panics costs the others nothing.
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                l.on_fallback(quiet);
                l.outstanding()
            }));
            outstanding |= called.unwrap_or(true);
        }
        if outstanding {
            children_outstanding();
        }
    }
}

impl Wake for Tick {
    fn wake(self: Arc<Self>) {
        self.poll();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.poll();
    }
}

fn sigchld() -> i32 {
    rustix::process::Signal::CHILD.as_raw()
}
