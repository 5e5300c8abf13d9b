//! Fork awareness: a child process must not use the loops of its parent.
//!
//! After `fork()`, the child has one thread (a copy of the forking one) whose
//! thread-locals still name the parent's loops, but those loops' reactor, threads and
//! tasks did not come along. As asyncio does, the child starts with no current and no
//! running loop: a handler registered with `pthread_atfork` bumps a generation
//! counter in the child, and every loop remembered per thread carries the generation
//! it was set in.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The number of forks this process descends from since polyloop was first used.
#[inline]
pub(crate) fn generation() -> u64 {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(register);
    GENERATION.load(Ordering::Relaxed)
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
        // Only an atomic add: async-signal-safe, as a fork handler must be.
        GENERATION.fetch_add(1, Ordering::Relaxed);
    }
    // SAFETY: `pthread_atfork` is the POSIX function of this signature in the C library
    // that std links; the handler is a plain `extern "C" fn` that lives for the whole
    // program and only touches an atomic.
    let rc = unsafe { pthread_atfork(None, None, Some(in_child)) };
    debug_assert_eq!(rc, 0, "pthread_atfork failed");
}

#[cfg(not(unix))]
fn register() {}
