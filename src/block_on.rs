//! `block_on`: run a future on this thread's loop, with the loop kept at hand.
//!
//! Looking the loop up through the policy takes a lock and clones an `Arc`; for the
//! built-in default policy, `block_on` keeps the loop it used last in a thread-local,
//! valid while the policy and fork generations it was found in hold. The thread-local
//! has no drop glue (the loop sits in a `ManuallyDrop`), so reading it is a plain
//! load; [`CacheOwner`] releases the loop when the thread exits.

use std::cell::Cell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ptr;

use crate::{EventLoop, event_loop, fork, get_event_loop_policy, policy};

/// Runs a future to completion on this thread's event loop and returns its output.
///
/// It works on any thread with no set-up: it uses the policy's loop for this thread,
/// and creates and sets one where there is none (where asyncio's `get_event_loop`
/// would refuse). If the policy's loop is closed, a new one replaces it; if it is
/// running on another thread (a policy with one loop for the whole process), a
/// private loop runs the future and is closed after.
///
/// A loop that `block_on` creates is closed when the thread exits, under every policy:
/// its unfinished tasks are dropped then, also those that hold the loop.
///
/// # Panics
///
/// When called from inside a running loop (a task, a callback): blocking there would
/// stall the loop. Await the future instead, or [`spawn`](crate::spawn) it. Also when the policy
/// cannot make a loop (a bad `POLYLOOP_DEBUG`, for instance); the message says why.
///
/// # Examples
///
/// ```
/// let v = polyloop::block_on(async { vec![1, 2, 3] });
/// assert_eq!(v.len(), 3);
///
/// // any thread works
/// let t = std::thread::spawn(|| polyloop::block_on(async { 5 }));
/// assert_eq!(t.join().unwrap(), 5);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let fork_generation = fork::generation();
    if let Some(id) = event_loop::running_loop_id(fork_generation) {
        panic!(
            "polyloop::block_on was called from inside running event loop #{id}; blocking here \
             would stall that loop. Await the future instead, or start it with polyloop::spawn",
        );
    }
    // The policy's loop for this thread, cached while the policy generation holds (read
    // before the lookup, so a change during it leaves the cache stale, not wrong).
    let (generation, cacheable) = policy::loop_generation();
    // A forked child must not reuse its parent's loop either.
    let generation = (generation, fork_generation);
    let cached = LOOP_CACHE.with(|c| {
        // SAFETY: a shared look at the cache; nothing writes it during this closure.
        match unsafe { &*c.as_ptr() } {
            Some(e) if cacheable && e.generation == generation && !e.lp.is_closed() => {
                Some(ptr::from_ref::<EventLoop>(&e.lp))
            }
            _ => None,
        }
    });
    let fresh;
    let lp: &EventLoop = match cached {
        // SAFETY: the entry stays in the cache, unchanged, until this call is done with
        // it. The cache is only written by `refill` (below, before a loop is used) and
        // by `CacheOwner` when the thread exits; and a `block_on` nested in this one
        // panics before it looks at the cache, since the loop is marked running on this
        // thread before the future is polled.
        Some(lp) => unsafe { &*lp },
        None => {
            fresh = refill(generation, cacheable);
            &fresh
        }
    };
    // No loop runs on this thread (checked above, in this fork generation).
    match lp.claim(fork_generation) {
        Ok(guard) => {
            guard.run_until_complete(future).unwrap_or_else(|e| panic!("polyloop::block_on: {e}"))
        }
        // The policy's loop is closed, or busy elsewhere: run on a private loop.
        Err(_) => run_private(future),
    }
}

/// The policy's loop for this thread, put in the cache if the policy lets loops be
/// cached.
#[cold]
#[inline(never)]
fn refill(generation: (u64, u64), cacheable: bool) -> EventLoop {
    let lp = policy_loop();
    // Arms the release at thread exit; once the thread is exiting, nothing is cached
    // any more. A stale entry is let go either way.
    let entry = (cacheable && CACHE_OWNER.try_with(|_| ()).is_ok())
        .then(|| Cached { generation, lp: ManuallyDrop::new(lp.clone()) });
    // The old entry is dropped outside `with`: dropping a loop may run destructors of
    // its tasks, which may call `block_on`.
    if let Some(old) = LOOP_CACHE.with(|c| c.replace(entry)) {
        drop(old.into_loop());
    }
    lp
}

/// Runs `future` on a loop of its own, closed after.
#[cold]
#[inline(never)]
fn run_private<F: Future>(future: F) -> F::Output {
    let private = get_event_loop_policy()
        .new_event_loop()
        .unwrap_or_else(|e| panic!("polyloop::block_on: {e}"));
    let out =
        private.run_until_complete(future).unwrap_or_else(|e| panic!("polyloop::block_on: {e}"));
    let _ = private.close();
    out
}

/// The policy's loop for this thread; a new one (set as current) where there is none or
/// it is closed. A loop made here was made for this thread without being asked for: it
/// is closed when the thread exits, whatever the policy.
fn policy_loop() -> EventLoop {
    let policy = get_event_loop_policy();
    match policy.get_event_loop() {
        Ok(lp) if !lp.is_closed() => lp,
        _ => {
            let lp = policy.new_event_loop().unwrap_or_else(|e| panic!("polyloop::block_on: {e}"));
            // A policy that refuses to set it still lets us run it.
            let _ = policy.set_event_loop(Some(lp.clone()));
            event_loop::close_at_thread_exit(&lp);
            lp
        }
    }
}

thread_local! {
    /// The loop `block_on` used last on this thread.
    static LOOP_CACHE: Cell<Option<Cached>> = const { Cell::new(None) };
    /// Releases the cached loop when the thread exits (touched when the cache is filled).
    static CACHE_OWNER: CacheOwner = const { CacheOwner };
}

/// A loop in the cache, and the policy and fork generations it was found in.
struct Cached {
    generation: (u64, u64),
    /// Owned: released through [`Cached::into_loop`] by `refill` or [`CacheOwner`].
    lp: ManuallyDrop<EventLoop>,
}

impl Cached {
    fn into_loop(self) -> EventLoop {
        ManuallyDrop::into_inner(self.lp)
    }
}

/// Releases the cached loop at thread exit.
struct CacheOwner;

impl Drop for CacheOwner {
    fn drop(&mut self) {
        if let Ok(Some(entry)) = LOOP_CACHE.try_with(Cell::take) {
            drop(entry.into_loop());
        }
    }
}
