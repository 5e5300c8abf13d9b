//! The home of an executor's `!Send` tasks: the one thread that may poll and drop them.
//!
//! A `!Send` future may only be dropped on the thread that spawned it, but a loop may
//! be closed, or its last handle dropped, on any thread. So the executor never drops
//! a `!Send` task elsewhere:
//! - on its home thread, cancelled tasks are dropped at once;
//! - on another thread, they are left queued for the home thread, which drops them
//!   the next time it starts running an executor, or when it exits (a thread-local
//!   destructor, which also cancels and drops the `!Send` tasks still alive: nothing
//!   could ever poll them again);
//! - once the home thread has exited, whatever is queued for it is leaked on purpose,
//!   and reported (see [`Incident::LocalTasksLeaked`]).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

use concurrent_queue::ConcurrentQueue;

use super::report::Incident;
use super::state::{Runnable, State, thread_id};
use super::sync::{Arc, AtomicU64, Ordering, fence};

/// The value of [`Home::thread`] once the home thread has exited.
const GONE: u64 = u64::MAX;

/// The `!Send` side of an executor's state.
pub(crate) struct Home {
    /// Runnables of `!Send` tasks, only popped on the home thread.
    queue: ConcurrentQueue<Runnable>,
    /// The id (see [`thread_id`]) of the home thread; 0 = none yet, [`GONE`] = exited.
    thread: AtomicU64,
}

impl Home {
    pub(crate) fn new() -> Home {
        Home { queue: ConcurrentQueue::unbounded(), thread: AtomicU64::new(0) }
    }

    /// Queues a runnable of a `!Send` task (from any thread: wakers are `Send`).
    #[inline]
    pub(crate) fn push(&self, runnable: Runnable) {
        // Unbounded and never closed.
        let _ = self.queue.push(runnable);
    }

    /// Whether no `!Send` task is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many `!Send` tasks are queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Takes a runnable to run, if the calling thread (`me`) is the home thread. Once
    /// the executor cancelled its tasks (a loop closed on another thread, while this
    /// one runs it as a worker), drops what is queued instead: those tasks were left
    /// here to be dropped, not run.
    #[inline]
    /// `cancelled` is the executor's mark of that ([`State::is_cancelled`]).
    pub(crate) fn pop_for(&self, me: u64, cancelled: impl FnOnce() -> bool) -> Option<Runnable> {
        if self.queue.is_empty() || self.thread.load(Ordering::Acquire) != me {
            return None;
        }
        let runnable = self.queue.pop().ok()?;
        // Set before the cancellation woke the tasks, so before the push that this pop
        // took (or before a later one).
        if cancelled() {
            drop(runnable);
            self.drop_queued();
            return None;
        }
        Some(runnable)
    }

    /// Drops the queued runnables (which drops their futures) if the calling thread is
    /// the home thread; leaves them to the home thread if it lives; leaks and reports
    /// them if it has exited.
    pub(crate) fn drain(&self, state: &State) {
        // Pairs with the fence in `thread_exits`: either this sees the home thread
        // gone, or the home thread's last drain sees what was queued before this.
        fence(Ordering::SeqCst);
        match self.thread.load(Ordering::SeqCst) {
            GONE => {
                let mut leaked = 0;
                while let Ok(runnable) = self.queue.pop() {
                    // Neither runnable nor future may be dropped off the home thread.
                    std::mem::forget(runnable);
                    leaked += 1;
                }
                if leaked > 0 {
                    state.report(Incident::LocalTasksLeaked { count: leaked });
                }
            }
            t if t == thread_id() => self.drop_queued(),
            // Nobody spawned a `!Send` task, or the home thread lives and will drop
            // them (see the module docs).
            _ => {}
        }
    }

    /// Drops what is queued; only on the home thread.
    fn drop_queued(&self) {
        while let Ok(runnable) = self.queue.pop() {
            drop(runnable);
        }
    }
}

/// Makes the calling thread the home of `state`'s `!Send` tasks, unless another thread
/// is (or was). Returns whether the calling thread is the home thread.
pub(crate) fn claim(state: &Arc<State>) -> bool {
    let me = thread_id();
    let home = &state.home;
    match home.thread.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            if !registry::add(state) {
                // This thread is already tearing down its thread-locals: it cannot
                // promise to drop the tasks at its exit, so it takes none.
                home.thread.store(GONE, Ordering::SeqCst);
                return false;
            }
            true
        }
        Err(owner) => owner == me,
    }
}

/// Drops the `!Send` tasks of closed executors that other threads left to this one.
/// Called when a thread starts running an executor.
#[inline]
pub(crate) fn drop_left_behind() {
    registry::drop_left_behind();
}

impl State {
    /// The home thread exits: cancels and drops every `!Send` task of this executor
    /// on it, then marks it gone.
    fn home_thread_exits(&self) {
        // Queue every live `!Send` task, so that dropping its runnable cancels it.
        let wakers = self.active().home_wakers();
        for waker in wakers {
            waker.wake();
        }
        self.home.drop_queued();
        self.home.thread.store(GONE, Ordering::SeqCst);
        // Pairs with the fence in `drain`: what another thread queued before it looked
        // at `thread` is seen here.
        fence(Ordering::SeqCst);
        self.home.drop_queued();
    }
}

/// A `!Send` task's future: the home thread is the only one that polls or drops it.
pub(crate) struct OnHome<F> {
    future: ManuallyDrop<F>,
    thread: u64,
}

impl<F> OnHome<F> {
    /// Wraps a future made on its home thread.
    pub(crate) fn new(future: F) -> OnHome<F> {
        OnHome { future: ManuallyDrop::new(future), thread: thread_id() }
    }
}

impl<F: Future> Future for OnHome<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Only the home thread pops the home queue (see `Home::pop_for`).
        debug_assert_eq!(self.thread, thread_id(), "a !Send task polled off its home thread");
        // SAFETY: `future` is structurally pinned: never moved out, and only dropped
        // in place (or leaked) by `Drop` below.
        unsafe { self.map_unchecked_mut(|h| &mut *h.future) }.poll(cx)
    }
}

impl<F> Drop for OnHome<F> {
    fn drop(&mut self) {
        if self.thread != thread_id() {
            // The executor never does this (see the module docs). Were it to happen,
            // dropping the future here would be unsound: leak it, and say so through
            // the panic that `Tracked` catches and reports.
            panic!("a !Send task was dropped off its home thread; its future was leaked");
        }
        // SAFETY: not used again.
        unsafe { ManuallyDrop::drop(&mut self.future) }
    }
}

/// The executors a thread is the home of, so that it can drop their `!Send` tasks.
#[cfg(not(loom))]
mod registry {
    use std::cell::RefCell;
    use std::sync::{Arc, Weak};

    use super::State;

    thread_local! {
        static HOMES: Homes = const { Homes(RefCell::new(Vec::new())) };
    }

    struct Homes(RefCell<Vec<Weak<State>>>);

    impl Drop for Homes {
        fn drop(&mut self) {
            for state in self.0.take() {
                if let Some(state) = state.upgrade() {
                    state.home_thread_exits();
                }
            }
        }
    }

    /// Remembers that this thread is `state`'s home. False if this thread's
    /// thread-locals are being destroyed.
    pub(super) fn add(state: &Arc<State>) -> bool {
        HOMES
            .try_with(|homes| {
                let mut homes = homes.0.borrow_mut();
                homes.retain(|s| s.strong_count() > 0);
                homes.push(Arc::downgrade(state));
            })
            .is_ok()
    }

    #[inline]
    pub(super) fn drop_left_behind() {
        let _ = HOMES.try_with(|homes| {
            if homes.0.borrow().is_empty() {
                return;
            }
            drop_left_behind_slow(homes);
        });
    }

    #[cold]
    fn drop_left_behind_slow(homes: &Homes) {
        // Upgrade under the borrow, drop outside it: dropping a future may spawn
        // `!Send` tasks on another executor, which borrows the list again.
        let closed: Vec<Arc<State>> = {
            let mut homes = homes.0.borrow_mut();
            let mut closed = Vec::new();
            homes.retain(|s| match s.upgrade() {
                Some(state) if state.is_cancelled() => {
                    closed.push(state);
                    false
                }
                Some(_) => true,
                None => false,
            });
            closed
        };
        for state in closed {
            state.home.drop_queued();
        }
    }
}

/// Under loom (which has no `Weak`), nothing is registered: the model checks run only
/// `Send` tasks.
#[cfg(loom)]
mod registry {
    use super::{Arc, State};

    pub(super) fn add(_: &Arc<State>) -> bool {
        true
    }

    pub(super) fn drop_left_behind() {}
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::panic::Location;
    use std::sync::atomic::AtomicBool;

    use super::super::Executor;
    use super::*;

    struct SetOnDrop(std::sync::Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn tasks_left_for_a_home_thread_that_is_gone_are_leaked_and_reported_not_dropped() {
        static LEAKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let ex = Executor::new();
        ex.set_reporter(Box::new(|incident| {
            if let Incident::LocalTasksLeaked { count } = incident {
                LEAKED.fetch_add(count, std::sync::atomic::Ordering::SeqCst);
            }
        }));
        let dropped = std::sync::Arc::new(AtomicBool::new(false));
        let flag = SetOnDrop(dropped.clone());
        let task = ex
            .spawn_home(
                async move {
                    let _flag = flag;
                    std::future::pending::<()>().await
                },
                Location::caller(),
            )
            .unwrap_or_else(|_| panic!("this thread is the first home"));
        task.detach();
        // As if the home thread had exited without dropping this task.
        ex.state.home.thread.store(GONE, Ordering::SeqCst);
        ex.cancel_all();
        assert_eq!(LEAKED.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst), "dropped off its home thread");
        assert_eq!(ex.len(), 0);
        // Nobody may become the home again: the tasks of the old one could be there.
        assert!(ex.spawn_home(async {}, Location::caller()).is_err());
    }

    #[test]
    fn a_home_queue_is_only_drained_on_the_home_thread() {
        let ex = std::sync::Arc::new(Executor::new());
        let dropped = std::sync::Arc::new(AtomicBool::new(false));
        let flag = SetOnDrop(dropped.clone());
        ex.spawn_home(
            async move {
                let _flag = flag;
                std::future::pending::<()>().await
            },
            Location::caller(),
        )
        .unwrap_or_else(|_| panic!("this thread is the first home"))
        .detach();
        let other = ex.clone();
        std::thread::spawn(move || other.cancel_all()).join().unwrap();
        assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst), "dropped off its home thread");
        // This thread starts running an executor: it drops what was left to it.
        drop_left_behind();
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }
}
