//! The engine of the SIGCHLD-driven watchers: multi-loop, safe and fast differ only in
//! where a rescan runs and how it reaps.
//!
//! Rescans come on each SIGCHLD and, while children are outstanding, on the slow
//! fallback timer of [`sigchld`] (a lost or stolen signal delays a status by at most
//! [`sigchld::FALLBACK`]). A child that other code reaped is an `ECHILD` error: for
//! multi-loop and safe at the next rescan; for fast, whose `waitpid(-1)` cannot tell,
//! at a signal's rescan that reaped nothing or at the next fallback rescan.

use std::collections::HashMap;
use std::io;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use rustix::process::{Pid, WaitOptions};

use super::core::{self, Added, Core, Kept, Waiter};
use super::exit::{ChildExit, from_wait_status};
use super::sigchld::{self, Listener, Subscription};
use crate::EventLoop;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Rescan on whichever thread notices the signal; no loop needed.
    MultiLoop,
    /// Rescan on the attached loop.
    Safe,
    /// Reap everything with `waitpid(-1)` on the attached loop.
    Fast,
}

/// What every fast watcher of the process shares: `waitpid(-1)` in one watcher reaps
/// the children of all the others, so each reaped status goes to the watcher that
/// owns the pid, or is kept here for whichever watcher asks for it later.
#[derive(Default)]
struct FastShared {
    owners: HashMap<u32, Weak<Engine>>,
    kept: Kept,
    /// Fast watchers not yet closed; the kept statuses go when the last one closes.
    open: usize,
}

static FAST: Mutex<Option<FastShared>> = Mutex::new(None);

/// How many fast engines are subscribed to SIGCHLD, and so may reap any child of the
/// process with `waitpid(-1)` at any time.
static REAPING: AtomicUsize = AtomicUsize::new(0);

/// A fast engine counted in `REAPING`.
struct Reaping;

impl Reaping {
    fn new() -> Reaping {
        REAPING.fetch_add(1, Ordering::SeqCst);
        Reaping
    }
}

impl Drop for Reaping {
    fn drop(&mut self) {
        REAPING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a fast watcher may reap any child of this process now (`waitpid(-1)`).
pub(crate) fn any_child_may_be_reaped() -> bool {
    REAPING.load(Ordering::SeqCst) > 0
}

pub(crate) struct Engine {
    pub(crate) core: Core,
    mode: Mode,
    /// One rescan at a time: two concurrent `waitpid(pid)` would turn the loser's
    /// result into ECHILD.
    scan_lock: Mutex<()>,
    scan_scheduled: AtomicBool,
    /// The SIGCHLD subscription, and for a fast engine its count in `REAPING`.
    sub: Mutex<Option<(Subscription, Option<Reaping>)>>,
    /// A fast watcher counted in `FastShared::open`.
    fast_open: AtomicBool,
    /// A SIGCHLD came since the last full rescan began.
    signalled: AtomicBool,
    /// The fallback timer asked for a rescan with no signal on its way: one more than
    /// [`sigchld::raised`] then; 0 when it has not.
    fallback_due: AtomicU64,
    /// Fast: the next rescan also asks the kernel whether each watched pid is still a
    /// child of ours (`waitpid(-1)` says nothing of children reaped by other code).
    check_gone: AtomicBool,
}

impl Engine {
    pub(crate) fn new(name: &'static str, mode: Mode) -> io::Result<Arc<Engine>> {
        let engine = Arc::new(Engine {
            core: Core::new(name),
            mode,
            scan_lock: Mutex::new(()),
            scan_scheduled: AtomicBool::new(false),
            sub: Mutex::new(None),
            fast_open: AtomicBool::new(mode == Mode::Fast),
            signalled: AtomicBool::new(false),
            fallback_due: AtomicU64::new(0),
            check_gone: AtomicBool::new(false),
        });
        if mode == Mode::Fast {
            let mut fast = FAST.lock().unwrap_or_else(PoisonError::into_inner);
            fast.get_or_insert_with(Default::default).open += 1;
        }
        // The listener keeps the engine alive until it is closed and drained, so a
        // dropped watcher still reaps the children it watched.
        let sub = sigchld::subscribe(Arc::new(Subscriber(engine.clone())))?;
        let reaping = (mode == Mode::Fast).then(Reaping::new);
        *engine.sub.lock().unwrap_or_else(PoisonError::into_inner) = Some((sub, reaping));
        Ok(engine)
    }

    pub(crate) fn add(
        self: &Arc<Self>,
        pid: u32,
        waiter: Waiter,
    ) -> Result<(), (io::Error, Waiter)> {
        if let Err(e) = self.core.check_inherited() {
            return Err((e, waiter));
        }
        if self.mode == Mode::Fast {
            return self.add_fast(pid, waiter);
        }
        // The SIGCHLD action was armed in `new`, before any of these children could
        // be watched; the scan below catches a child that exited before this call.
        if let Added::New = self.core.add(pid, waiter, false, |_| Ok(()))? {
            sigchld::children_outstanding();
            match self.mode {
                Mode::MultiLoop => self.scan(Some(pid)),
                Mode::Safe | Mode::Fast => self.schedule_scan(),
            }
        }
        Ok(())
    }

    fn add_fast(self: &Arc<Self>, pid: u32, waiter: Waiter) -> Result<(), (io::Error, Waiter)> {
        // Under the shared lock, which every `waitpid(-1)` holds: the child is either
        // unreaped (and the kernel says it is ours) or its status is kept. Handlers
        // are called once it is released: a handler may watch another child.
        let mut guard = FAST.lock().unwrap_or_else(PoisonError::into_inner);
        let fast = guard.get_or_insert_with(Default::default);
        if let Some(status) = fast.kept.take_fresh(pid) {
            let result = self.core.hand_over(pid, waiter, status);
            return match result {
                Ok(delivery) => {
                    drop(guard);
                    delivery.run();
                    Ok(())
                }
                Err((e, w, status)) => {
                    fast.kept.insert(pid, status);
                    Err((e, w))
                }
            };
        }
        let (added, after) = self.core.add_later(pid, waiter, false, |_| Ok(()))?;
        fast.owners.insert(pid, Arc::downgrade(self));
        drop(guard);
        after.run();
        if let Added::New = added {
            sigchld::children_outstanding();
            self.schedule_scan();
        }
        Ok(())
    }

    pub(crate) fn watch(self: &Arc<Self>, pid: u32) -> ChildExit {
        let exit = core::watch_with(pid, |pid, w| self.add(pid, w));
        if self.mode != Mode::MultiLoop {
            // Rescans run on the loop, which may never run again: a child whose end
            // nobody awaits any more is reaped without it.
            let me = Arc::downgrade(self);
            exit.on_abandon(move || {
                if let Some(me) = me.upgrade() {
                    me.reap_orphans();
                }
            });
        }
        exit
    }

    /// Reaps, here and now, the children whose `ChildExit` was dropped unresolved
    /// (a dropped `Child`): no handler runs for them, so this needs no loop. Called
    /// when one is dropped and on each SIGCHLD, so such a child is reaped even once
    /// its loop has stopped: at the drop if it had ended, else when it ends.
    fn reap_orphans(&self) {
        let orphans: Vec<u32> = self
            .core
            .lock()
            .handlers
            .iter()
            .filter(|(_, w)| matches!(w, Waiter::Exit(s) if s.is_abandoned()))
            .map(|(pid, _)| *pid)
            .collect();
        if orphans.is_empty() {
            return;
        }
        let mut done = Vec::new();
        let one = self.scan_lock.lock().unwrap_or_else(PoisonError::into_inner);
        // The fast watchers' shared lock: `add_fast` sees a child unreaped or kept.
        let mut fast = match self.mode {
            Mode::Fast => Some(FAST.lock().unwrap_or_else(PoisonError::into_inner)),
            _ => None,
        };
        for pid in orphans {
            let Some(status) = try_reap(pid) else { continue };
            if let Some(shared) = fast.as_mut().and_then(|f| f.as_mut()) {
                shared.owners.remove(&pid);
            }
            done.extend(self.core.complete_later(pid, status).0);
        }
        drop(fast);
        drop(one);
        let drained = self.core.lock().drained();
        self.after_scan(drained);
        for d in done {
            d.run();
        }
    }

    pub(crate) fn add_child_handler(
        self: &Arc<Self>,
        pid: u32,
        callback: Box<dyn FnOnce(u32, i32) + Send + 'static>,
    ) {
        core::add_handler_with(self.core.name, pid, callback, |pid, w| self.add(pid, w));
    }

    pub(crate) fn attach_loop(self: &Arc<Self>, lp: Option<&EventLoop>) {
        if self.core.is_inherited() {
            return;
        }
        self.core.attach(lp);
        if lp.is_some() && self.mode != Mode::MultiLoop {
            // A child may have ended while the watcher had no loop. A rescan still
            // queued on a former loop may never run there: schedule one here anyway.
            self.scan_scheduled.store(false, Ordering::Release);
            self.schedule_scan();
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        if self.core.is_inherited() {
            return false;
        }
        let state = self.core.lock();
        match self.mode {
            Mode::MultiLoop => !state.closed,
            // As asyncio's: only while the attached loop runs. A child accepted while
            // it is idle would wait for a rescan that may never run.
            Mode::Safe | Mode::Fast => {
                !state.closed && state.lp.as_ref().is_some_and(EventLoop::is_running)
            }
        }
    }

    /// Closes: no new children; the SIGCHLD subscription goes once the children
    /// already watched have been reaped (at once when there are none).
    pub(crate) fn close(&self) {
        // What an inherited watcher holds (its SIGCHLD subscription, the fast
        // watchers' shared statuses) belongs to the parent: leave it be.
        if self.core.is_inherited() {
            return;
        }
        if self.fast_open.swap(false, Ordering::AcqRel) {
            // The kept statuses are shared by every fast watcher (one reaps the
            // children of all): they are dropped once none is open.
            let mut fast = FAST.lock().unwrap_or_else(PoisonError::into_inner);
            let fast = fast.get_or_insert_with(Default::default);
            fast.open -= 1;
            if fast.open == 0 {
                fast.kept.clear();
            }
        }
        if self.core.close() {
            self.unsubscribe();
        }
    }

    fn unsubscribe(&self) {
        let sub = self.sub.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(sub);
    }

    fn on_signal(self: &Arc<Self>) {
        self.signalled.store(true, Ordering::SeqCst);
        self.rescan_soon();
    }

    /// The fallback timer fired; see [`Listener::on_fallback`].
    fn on_fallback(self: &Arc<Self>, quiet: bool) {
        if quiet {
            self.fallback_due.store(sigchld::raised() + 1, Ordering::SeqCst);
        }
        self.check_gone.store(true, Ordering::SeqCst);
        self.rescan_soon();
    }

    /// A full rescan: here (multi-loop) or on the attached loop.
    fn rescan_soon(self: &Arc<Self>) {
        match self.mode {
            Mode::MultiLoop => self.scan(None),
            Mode::Safe | Mode::Fast => {
                self.reap_orphans();
                self.schedule_scan();
            }
        }
    }

    /// After a rescan: the subscription goes once drained; the fallback timer once no
    /// watcher has a child outstanding.
    fn after_scan(&self, drained: bool) {
        if drained {
            self.unsubscribe();
        }
        if self.core.lock().watched.is_empty() {
            sigchld::maybe_idle();
        }
    }

    /// Runs a rescan on the attached loop; without one, the next `attach_loop` does.
    fn schedule_scan(self: &Arc<Self>) {
        let Some(lp) = self.core.lock().lp.clone() else { return };
        if self.scan_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        // The task owns the flag: however it ends (run, or dropped unrun with its
        // loop, or refused), the flag is reset and later signals schedule again.
        let flag = Scheduled(self.clone());
        if let Ok(task) = lp.try_spawn(async move {
            let me = flag.0.clone();
            // Reset before scanning: a signal during the scan schedules another.
            drop(flag);
            me.scan(None);
        }) {
            task.detach();
        }
    }

    /// Reaps what has exited: `only` one pid, or every watched one. The handlers are
    /// called once the scan lock is released: a handler may add a child, which scans.
    fn scan(&self, only: Option<u32>) {
        let mut done = Vec::new();
        let one = self.scan_lock.lock().unwrap_or_else(PoisonError::into_inner);
        // What a full rescan answers: a signal, the fallback timer, or both.
        let full = only.is_none();
        let signalled = full && self.signalled.swap(false, Ordering::SeqCst);
        let fallback = if full { self.fallback_due.swap(0, Ordering::SeqCst) } else { 0 };
        let check_gone = full && self.check_gone.swap(false, Ordering::SeqCst);
        let (drained, exits) = match self.mode {
            Mode::MultiLoop | Mode::Safe => self.poll_each(only, &mut done),
            Mode::Fast => self.reap_all(&mut done, check_gone, signalled),
        };
        drop(one);
        if fallback != 0 && !signalled && exits > 0 && sigchld::raised() + 1 == fallback {
            // Found by the timer, and no signal was raised since it fired. (Best effort:
            // a signal the kernel has queued but no thread has handled yet is unseen.)
            sigchld::report_unannounced(self.core.name);
        }
        self.after_scan(drained);
        for d in done {
            d.run();
        }
    }

    /// `waitpid(pid, WNOHANG)` for every watched pid: O(n), but it leaves other code's
    /// children alone. Gives whether the watcher is drained, and how many children
    /// were found to have exited.
    fn poll_each(&self, only: Option<u32>, done: &mut Vec<core::Delivery>) -> (bool, usize) {
        let pids: Vec<u32> = match only {
            Some(pid) => vec![pid],
            None => self.core.lock().watched.iter().copied().collect(),
        };
        let mut exits = 0;
        for pid in pids {
            if let Some(status) = try_reap(pid) {
                exits += usize::from(status.is_ok());
                done.extend(self.core.complete_later(pid, status).0);
            }
        }
        (self.core.lock().drained(), exits)
    }

    /// `waitpid(-1, WNOHANG)` until nothing is left: O(1) per child, but it reaps
    /// children of other code too (their statuses are kept for a later handler).
    ///
    /// `waitpid(-1)` cannot tell that other code reaped one of our children. When the
    /// fallback timer asks (`check_gone`), or a signal's rescan reaped nothing (a sign
    /// that someone else did), each watched pid that the kernel no longer counts as
    /// our child gets `ECHILD`.
    fn reap_all(
        &self,
        done: &mut Vec<core::Delivery>,
        check_gone: bool,
        signalled: bool,
    ) -> (bool, usize) {
        let mut drained_owners = Vec::new();
        let mut exits = 0;
        let drained = loop {
            // Under the shared lock, so that `add_fast` sees a child either unreaped
            // or kept. Handlers are called once it is released.
            let mut fast = FAST.lock().unwrap_or_else(PoisonError::into_inner);
            let fast = fast.get_or_insert_with(Default::default);
            let (pid, status) = match rustix::process::waitpid(None, WaitOptions::NOHANG) {
                Ok(Some((p, status))) => (p.as_raw_nonzero().get() as u32, status),
                Err(rustix::io::Errno::INTR) => continue,
                // No child has exited, or there are no children at all.
                Ok(None) | Err(_) => break self.core.lock().drained(),
            };
            let status = Ok(from_wait_status(status));
            exits += 1;
            let Some(owner) = fast.owners.remove(&pid).and_then(|w| w.upgrade()) else {
                fast.kept.insert(pid, status);
                continue;
            };
            let (delivery, owner_drained) = owner.core.complete_later(pid, status);
            done.extend(delivery);
            if owner_drained && !std::ptr::eq(Arc::as_ptr(&owner), self) {
                drained_owners.push(owner);
            }
        };
        for owner in drained_owners {
            owner.unsubscribe();
        }
        if check_gone || (signalled && exits == 0) {
            return (self.reap_gone(done), exits);
        }
        (drained, exits)
    }

    /// Fast: completes with `ECHILD` each watched pid that is no longer an unreaped
    /// child of ours (other code reaped it). Under the shared lock, which every
    /// `waitpid(-1)` of ours holds: a child we reaped is never taken for one reaped
    /// elsewhere. Gives whether the watcher is drained.
    fn reap_gone(&self, done: &mut Vec<core::Delivery>) -> bool {
        let mut fast = FAST.lock().unwrap_or_else(PoisonError::into_inner);
        let fast = fast.get_or_insert_with(Default::default);
        let pids: Vec<u32> = self.core.lock().watched.iter().copied().collect();
        for pid in pids {
            if let Err(err) = core::check_child(pid) {
                fast.owners.remove(&pid);
                done.extend(self.core.complete_later(pid, Err(err)).0);
            }
        }
        self.core.lock().drained()
    }
}

/// An engine as a SIGCHLD subscriber.
struct Subscriber(Arc<Engine>);

impl Listener for Subscriber {
    fn on_signal(&self) {
        self.0.on_signal();
    }

    fn on_fallback(&self, quiet: bool) {
        self.0.on_fallback(quiet);
    }

    fn outstanding(&self) -> bool {
        !self.0.core.lock().watched.is_empty()
    }
}

/// `waitpid(pid, WNOHANG)`: the status if the child has ended (or an error).
fn try_reap(pid: u32) -> Option<io::Result<ExitStatus>> {
    let p = Pid::from_raw(pid as i32).expect("a watched pid is positive");
    loop {
        match rustix::process::waitpid(Some(p), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => return Some(Ok(from_wait_status(status))),
            Ok(None) => return None,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::CHILD) => return Some(Err(core::not_child(pid))),
            Err(e) => return Some(Err(e.into())),
        }
    }
}

/// A rescan is queued: owned by the rescan task, and dropped with it.
struct Scheduled(Arc<Engine>);

impl Drop for Scheduled {
    fn drop(&mut self) {
        self.0.scan_scheduled.store(false, Ordering::Release);
    }
}

/// The `ChildWatcher`, `Drop` and `Debug` impls of a watcher that is an `Engine` in a
/// given mode (multi-loop, safe, fast): everything but its constructor and docs.
macro_rules! engine_watcher {
    ($ty:ident, $name:literal) => {
        impl $crate::process::ChildWatcher for $ty {
            fn name(&self) -> &str {
                $name
            }

            fn add_child_handler(
                &self,
                pid: u32,
                callback: Box<dyn FnOnce(u32, i32) + Send + 'static>,
            ) {
                self.engine.add_child_handler(pid, callback);
            }

            fn remove_child_handler(&self, pid: u32) -> bool {
                self.engine.core.remove(pid)
            }

            fn attach_loop(&self, lp: Option<&$crate::EventLoop>) {
                self.engine.attach_loop(lp);
            }

            fn is_active(&self) -> bool {
                self.engine.is_active()
            }

            fn close(&self) {
                self.engine.close();
            }

            fn watch(&self, pid: u32) -> $crate::process::ChildExit {
                self.engine.watch(pid)
            }
        }

        impl Drop for $ty {
            fn drop(&mut self) {
                // Children already watched are still reaped; then the subscription goes.
                self.engine.close();
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let state = self.engine.core.lock();
                f.debug_struct(stringify!($ty))
                    .field("watched", &state.watched.len())
                    .field("attached", &state.lp.is_some())
                    .field("closed", &state.closed)
                    .finish()
            }
        }
    };
}
pub(super) use engine_watcher;
