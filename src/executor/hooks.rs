//! What runners tell as they start and stop running.
//!
//! Some events reach the reactor on whichever thread drives it, often async-io's own
//! thread while the loop's thread is busy; each one is then handed over across threads.
//! A source of such events can instead be checked by the runners themselves, as they
//! stop running, and be left to the reactor only while no runner runs. It registers
//! a [`RunnerHook`] here.
//!
//! With no hook registered, a runner pays one relaxed load per poll.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Told by every runner of every executor when it starts running (`enter`) and when it
/// stops: about to sleep, to let the reactor look for I/O, or to return (`leave`).
/// Each `enter` is followed by one `leave`, also when a task panics.
pub(crate) trait RunnerHook: Send + Sync {
    fn enter(&self);
    fn leave(&self);
}

type Hooks = Arc<Vec<Arc<dyn RunnerHook>>>;

/// How many hooks are registered: the runners' fast path.
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// The hooks; replaced, never changed in place, so a runner keeps the list it entered.
static HOOKS: Mutex<Option<Hooks>> = Mutex::new(None);

fn hooks() -> std::sync::MutexGuard<'static, Option<Hooks>> {
    HOOKS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers `hook` with every runner, from their next poll on; a hook registered
/// already stays registered once.
pub(crate) fn add(hook: Arc<dyn RunnerHook>) {
    let mut hooks = hooks();
    let mut list: Vec<_> = hooks.as_deref().cloned().unwrap_or_default();
    if list.iter().any(|h| Arc::ptr_eq(h, &hook)) {
        return;
    }
    list.push(hook);
    COUNT.store(list.len(), Ordering::Relaxed);
    *hooks = Some(Arc::new(list));
}

/// Unregisters `hook`, if registered. Runners that entered with it still tell it when they leave.
pub(crate) fn remove(hook: &dyn RunnerHook) {
    let mut hooks = hooks();
    let mut list: Vec<_> = hooks.as_deref().cloned().unwrap_or_default();
    list.retain(|h| !std::ptr::addr_eq(Arc::as_ptr(h), hook as *const dyn RunnerHook));
    COUNT.store(list.len(), Ordering::Relaxed);
    *hooks = if list.is_empty() { None } else { Some(Arc::new(list)) };
}

/// A runner's poll, between `enter` and `leave` of the hooks registered when it began.
pub(crate) struct Running(Option<Hooks>);

impl Running {
    pub(crate) fn enter() -> Running {
        if COUNT.load(Ordering::Relaxed) == 0 {
            return Running(None);
        }
        let hooks = hooks().clone();
        for hook in hooks.iter().flat_map(|h| h.iter()) {
            hook.enter();
        }
        Running(hooks)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for hook in self.0.iter().flat_map(|h| h.iter()) {
            hook.leave();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicIsize;

    /// Counts the calls made on the thread that made it (other tests run executors on
    /// other threads meanwhile).
    struct Count {
        thread: std::thread::ThreadId,
        inside: AtomicIsize,
        left: AtomicUsize,
    }

    impl Default for Count {
        fn default() -> Count {
            Count {
                thread: std::thread::current().id(),
                inside: AtomicIsize::new(0),
                left: AtomicUsize::new(0),
            }
        }
    }

    impl RunnerHook for Count {
        fn enter(&self) {
            if std::thread::current().id() == self.thread {
                self.inside.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn leave(&self) {
            if std::thread::current().id() == self.thread {
                self.inside.fetch_sub(1, Ordering::SeqCst);
                self.left.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn enter_and_leave_pair_up_across_registration() {
        let count = Arc::new(Count::default());
        let hook: Arc<dyn RunnerHook> = count.clone();
        let before = Running::enter(); // entered before the hook came: never told
        add(hook.clone());
        add(hook.clone());
        let during = Running::enter();
        assert_eq!(count.inside.load(Ordering::SeqCst), 1, "registered once");
        remove(&*hook);
        remove(&*hook);
        drop(before);
        assert_eq!(count.left.load(Ordering::SeqCst), 0);
        // Entered with the hook: told when it leaves, though the hook is gone by then.
        drop(during);
        assert_eq!(count.inside.load(Ordering::SeqCst), 0);
        assert_eq!(count.left.load(Ordering::SeqCst), 1);
        drop(Running::enter());
        assert_eq!(count.left.load(Ordering::SeqCst), 1, "removed: not told again");
    }
}
