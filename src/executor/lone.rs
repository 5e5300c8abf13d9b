//! The barriers that let a runner on its own use plain loads and stores on its LIFO
//! slot (see `Runner::lone_begin` in `state.rs` for the protocol).
//!
//! A runner's slot is shared: another runner may take a task that waits there behind
//! a busy task. So the runner puts and takes with atomic swaps, about 10 ns each on
//! the machines we measure, twice for every task it wakes and runs. While it is the
//! executor's only runner, nobody else can take from its slot, and plain operations
//! are enough; what is left is the moment another runner joins. The protocol for that
//! is an asymmetric Dekker handshake: the runner on its own raises a flag around each
//! plain operation and then reads the runner count, with only a compiler fence in
//! between ([`light`]); a runner that joins raises the count and then makes every
//! thread of the process execute a full memory barrier ([`heavy`], `membarrier(2)`).
//! After that, either the joiner sees the flag of an operation that read the old count,
//! or the operation sees the new count and takes the atomic way.
//!
//! `membarrier` may be missing (an old kernel) or filtered (seccomp): a runner then
//! never goes on its own ([`available`]). Should a barrier fail after it went (a filter
//! installed later), no runner goes on its own from then on, and the joiner does not
//! touch that runner's slot or private queue until the runner has seen the count
//! itself (at its next operation, or before it sleeps: see `Local::may_take`).
//!
//! The plain operations are not reentrant: a waker must not be called from a signal
//! handler (it never could: queueing a task may allocate and take locks).

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, Ordering};

/// Whether this process registered for expedited barriers: [`UNKNOWN`] until it tried
/// (as it starts: see [`REGISTER_AT_START`]), then [`YES`] or [`NO`].
#[cfg(not(loom))]
static REGISTERED: AtomicU8 = AtomicU8::new(UNKNOWN);
#[cfg(not(loom))]
const UNKNOWN: u8 = 0;
#[cfg(not(loom))]
const YES: u8 = 1;
#[cfg(not(loom))]
const NO: u8 = 2;

#[cfg(all(test, not(loom)))]
std::thread_local! {
    /// Makes [`heavy`] fail on this thread, to test what a runner that joins does then.
    pub(crate) static FAIL_HEAVY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How many times [`heavy`] was called on this thread.
    pub(crate) static HEAVY_CALLS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether this process can make its other threads execute a memory barrier on demand
/// (and so whether a runner may go on its own). Registers for it the first time.
#[cfg(not(loom))]
#[inline]
pub(crate) fn available() -> bool {
    // Named here as well as `#[used]`, so that nothing between here and the linker
    // can leave it out.
    let _ = std::hint::black_box(&REGISTER_AT_START);
    REGISTERED.load(Ordering::Relaxed) == YES
}

/// Registers for expedited barriers as the process starts, before `main`: while the
/// process has one thread the kernel registers it at once, where later it waits for a
/// grace period of every CPU (10–15 ms measured), which a program would feel as a
/// pause the first time a runner goes on its own.
#[cfg(not(loom))]
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER_AT_START: extern "C" fn() = register_at_start;

#[cfg(not(loom))]
extern "C" fn register_at_start() {
    register();
}

/// Registers this process for expedited barriers; whether that worked.
#[cfg(not(loom))]
#[cold]
fn register() -> bool {
    use rustix::thread::{MembarrierCommand, membarrier};
    let ok = membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok();
    REGISTERED.store(if ok { YES } else { NO }, Ordering::Relaxed);
    ok
}

/// Forgets that a barrier failed (after a test injected the failure): registers again.
#[cfg(all(test, not(loom)))]
pub(crate) fn forget() {
    register();
}

/// Loom cannot model `membarrier`: under the model checks, runners always use atomics.
#[cfg(loom)]
pub(crate) fn available() -> bool {
    false
}

/// Makes every other running thread of this process execute a full memory barrier
/// before this returns. Whether it did.
#[cfg(not(loom))]
#[cold]
pub(crate) fn heavy() -> bool {
    use rustix::thread::{MembarrierCommand, membarrier};
    #[cfg(test)]
    HEAVY_CALLS.set(HEAVY_CALLS.get() + 1);
    #[cfg(test)]
    let failing = FAIL_HEAVY.get();
    #[cfg(not(test))]
    let failing = false;
    let done = !failing
        && (membarrier(MembarrierCommand::PrivateExpedited).is_ok()
            // Not registered (in a forked child whose kernel did not carry the
            // parent's registration over, say): register, and try again.
            || (register() && membarrier(MembarrierCommand::PrivateExpedited).is_ok())
            // Slow (it waits for every CPU to pass a quiescent state), but needs no
            // registration.
            || membarrier(MembarrierCommand::Global).is_ok());
    if !done {
        // No runner goes on its own any more.
        REGISTERED.store(NO, Ordering::Relaxed);
    }
    done
}

/// Never called under loom (no runner goes on its own).
#[cfg(loom)]
pub(crate) fn heavy() -> bool {
    false
}

/// The lone runner's side of the handshake: keeps the compiler from moving its flag's
/// store after its load of the runner count; the processor may, but [`heavy`] on the
/// other side covers that.
#[inline(always)]
pub(crate) fn light() {
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}
