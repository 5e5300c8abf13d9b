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

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::pipe::PipeFlags;
use signal_hook_registry::SigId;

use super::readable::{Next, Readable};

type Listener = Arc<dyn Fn() + Send + Sync>;

struct Hub {
    sig: SigId,
    reader: Readable<std::os::fd::OwnedFd>,
}

static HUB: Mutex<Option<Hub>> = Mutex::new(None);
static LISTENERS: Mutex<BTreeMap<u64, Listener>> = Mutex::new(BTreeMap::new());
/// How many SIGCHLD wake-ups the hub has passed on (for tests and debugging).
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// A subscription to SIGCHLD; dropping it unsubscribes.
pub(crate) struct Subscription {
    id: u64,
}

/// Calls `listener` (from the reactor) after each SIGCHLD, from now on.
///
/// The action is armed when this returns: a caller that then checks its children
/// cannot miss an exit.
pub(crate) fn subscribe(listener: Listener) -> io::Result<Subscription> {
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
        }
    }
}

fn start() -> io::Result<Hub> {
    super::reactor::start()?;
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    let action = move || {
        // Async-signal-safe: one write(2) on a non-blocking pipe; a full pipe already
        // holds a pending wake-up, so a lost byte loses nothing.
        let _ = rustix::io::write(&write, &[1u8]);
    };
    // SAFETY: the action only calls write(2) (rustix issues the raw syscall and does not
    // touch errno or allocate), which is async-signal-safe; it captures only an fd.
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
    let mut buf = [0u8; 64];
    // Drain the pipe; the bytes carry no data.
    while let Ok(n) = rustix::io::read(fd.get_ref(), &mut buf) {
        if n < buf.len() {
            break;
        }
    }
    DELIVERIES.fetch_add(1, Ordering::Relaxed);
    let listeners: Vec<Listener> =
        LISTENERS.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
    for l in listeners {
        l();
    }
    Next::Again
}

fn sigchld() -> i32 {
    rustix::process::Signal::CHILD.as_raw()
}
