//! The synchronization primitives of the executor: std's, or loom's when the crate is
//! built with `--cfg loom` so that `tests/loom.rs` can explore every interleaving of
//! the queue hand-off and the sleep/wake protocol.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, RwLock};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Declares thread-locals with std's macro, or loom's under `--cfg loom` (loom runs
/// its threads on one OS thread, so std's thread-locals would be shared).
macro_rules! executor_thread_local {
    ($($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;)*) => {
        #[cfg(not(loom))]
        std::thread_local! { $($(#[$attr])* static $name: $t = const { $init };)* }
        #[cfg(loom)]
        loom::thread_local! { $($(#[$attr])* static $name: $t = $init;)* }
    };
}
pub(crate) use executor_thread_local;
