//! Starting async-io's reactor as an error, not a panic.
//!
//! async-io makes its reactor on first use, and starts its driving thread then with
//! `expect`: when no thread can start (`RLIMIT_NPROC`, a cgroup's pid limit) or no
//! epoll can be made (`RLIMIT_NOFILE`), first use is a panic. Whatever in the
//! watchers and the spawn path first uses the reactor calls [`start`] before, so that
//! such a limit is an `io::Error` there instead, and the spawn path calls it before it
//! forks, so that no child is started that nobody could watch.

use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

static STARTED: AtomicBool = AtomicBool::new(false);

/// Makes sure async-io's reactor and its thread are up.
///
/// # Errors
///
/// When a thread cannot start (the kind of the thread's error, `WouldBlock` under
/// `RLIMIT_NPROC`), or async-io could not make its reactor; tried again at the next
/// call.
pub(crate) fn start() -> io::Result<()> {
    if STARTED.load(Ordering::Acquire) {
        return Ok(());
    }
    // A forked child that lost the reactor has none to start: it must not touch the
    // parent's (what needs it for I/O fails in `fork::check_reactor`).
    if crate::fork::reactor_lost() {
        return Ok(());
    }
    // Recorded before the reactor and its thread exist, so that a child forked from
    // here on knows it lost them. (A spawn with a threaded watcher and no pipes uses
    // nothing else of the reactor: unrecorded, such a child ran its loops on the
    // parent's reactor and hung at its first timer.)
    crate::fork::note_reactor();
    // async-io's thread would be started with `expect`: try a thread here first, where
    // failing is an error. (A limit reached between the two is still caught below.)
    let probe = std::thread::Builder::new().name("polyloop-probe".into()).spawn(|| ());
    match probe {
        Ok(probe) => {
            let _ = probe.join();
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot start the reactor: no new thread can start ({e})"),
            ));
        }
    }
    // Registering a timer makes the reactor (and its thread); dropping it deregisters.
    let made = catch_unwind(AssertUnwindSafe(|| {
        let mut timer = async_io::Timer::after(Duration::from_secs(3600));
        let _ = Pin::new(&mut timer).poll(&mut Context::from_waker(Waker::noop()));
    }));
    match made {
        Ok(()) => {
            STARTED.store(true, Ordering::Release);
            Ok(())
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".into());
            Err(io::Error::other(format!("cannot start the reactor: {what}")))
        }
    }
}
