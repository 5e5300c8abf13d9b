//! What every watcher shares: the table of handlers, pids being watched and statuses
//! not yet claimed, pid checks, and delivery of results.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::process::ExitStatus;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use rustix::process::{Pid, WaitId, WaitIdOptions};

use super::error::ChildWatchError;
use super::exit::{ChildExit, ExitSender, returncode};
use crate::EventLoop;

/// The callback of `add_child_handler`: `callback(pid, returncode)`.
pub(crate) type Callback = Box<dyn FnOnce(u32, i32) + Send + 'static>;

/// Who is told when a child ends.
pub(crate) enum Waiter {
    Callback(Callback),
    Exit(ExitSender),
}

/// The state of one watcher, behind one lock.
#[derive(Default)]
pub(crate) struct State {
    /// Pids the backend will reap.
    pub(crate) watched: HashSet<u32>,
    pub(crate) handlers: HashMap<u32, Waiter>,
    /// Statuses of children reaped while no handler was set, for a later handler.
    pub(crate) exited: Kept,
    pub(crate) closed: bool,
    pub(crate) lp: Option<EventLoop>,
}

impl State {
    /// Closed, and nothing left to reap or report: resources may go.
    pub(crate) fn drained(&self) -> bool {
        self.closed && self.watched.is_empty() && self.handlers.is_empty()
    }
}

/// Statuses of reaped children, for a later handler, by pid.
///
/// A pid is recycled once its child is reaped: a kept status is only good while the
/// kernel has no unreaped child of ours under that pid ([`Kept::take_fresh`]). And the
/// statuses nobody asks for must not pile up: past [`Kept::MAX`] the oldest go.
#[derive(Default)]
pub(crate) struct Kept {
    statuses: HashMap<u32, io::Result<ExitStatus>>,
    /// Pids in the order they were kept, oldest first.
    order: VecDeque<u32>,
}

impl Kept {
    /// How many statuses are kept at most.
    pub(crate) const MAX: usize = 4096;

    pub(crate) fn insert(&mut self, pid: u32, status: io::Result<ExitStatus>) {
        if self.statuses.insert(pid, status).is_some() {
            self.order.retain(|p| *p != pid);
        }
        self.order.push_back(pid);
        while self.statuses.len() > Kept::MAX {
            let Some(oldest) = self.order.pop_front() else { break };
            self.statuses.remove(&oldest);
        }
    }

    /// The kept status of `pid`, unless it is stale: when `pid` is an unreaped child
    /// of ours right now, the kept status belonged to an earlier child that had the
    /// same pid, and is dropped.
    pub(crate) fn take_fresh(&mut self, pid: u32) -> Option<io::Result<ExitStatus>> {
        let status = self.statuses.remove(&pid)?;
        self.order.retain(|p| *p != pid);
        if check_child(pid).is_ok() { None } else { Some(status) }
    }

    pub(crate) fn clear(&mut self) {
        self.statuses.clear();
        self.order.clear();
    }
}

/// What a backend does when a pid gets its first handler.
pub(crate) enum Added {
    /// The status was already in; the handler has been called.
    Delivered,
    /// The pid was already watched; the handler replaced the old one.
    Replaced,
    /// The pid is newly watched: the backend must start watching it (after the lock).
    New,
}

pub(crate) struct Core {
    pub(crate) name: &'static str,
    state: Mutex<State>,
    /// The fork generation the watcher was made in: in a forked child, the parent's
    /// watcher refuses every child (its children, threads and reactor registrations
    /// stayed with the parent) instead of waiting for news that cannot come.
    generation: u64,
}

impl Core {
    pub(crate) fn new(name: &'static str) -> Core {
        Core { name, state: Mutex::new(State::default()), generation: crate::fork::generation() }
    }

    /// Whether this watcher was inherited across `fork()` (made in an ancestor process).
    pub(crate) fn is_inherited(&self) -> bool {
        self.generation != crate::fork::generation()
    }

    /// [`ChildWatchError::Forked`](super::ChildWatchError::Forked) for a watcher
    /// inherited across `fork()`. Checked before any lock: one held by a thread of the
    /// parent at the fork would never be released in the child.
    pub(crate) fn check_inherited(&self) -> io::Result<()> {
        if self.is_inherited() {
            return Err(super::ChildWatchError::Forked { watcher: self.name }.into());
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `waiter` for `pid`. `start` runs under the lock for a pid not yet
    /// watched, after the checks; an error from it is returned and nothing is recorded.
    ///
    /// Among the checks, the kernel is asked whether `pid` is our unreaped child, unless
    /// `spawned_here`: the caller has just spawned it and not reaped it. (Had other code
    /// reaped it meanwhile, the backend's reap reports that instead.)
    pub(crate) fn add(
        &self,
        pid: u32,
        waiter: Waiter,
        spawned_here: bool,
        start: impl FnOnce(&mut State) -> io::Result<()>,
    ) -> Result<Added, (io::Error, Waiter)> {
        let (added, after) = self.add_later(pid, waiter, spawned_here, start)?;
        after.run();
        Ok(added)
    }

    /// As `add`, but what is to be done with a handler (call it, or drop the one it
    /// replaced) is returned, to be done once the caller has released its own locks.
    pub(crate) fn add_later(
        &self,
        pid: u32,
        waiter: Waiter,
        spawned_here: bool,
        start: impl FnOnce(&mut State) -> io::Result<()>,
    ) -> Result<(Added, AfterLock), (io::Error, Waiter)> {
        if let Err(e) = validate_pid(pid) {
            return Err((e, waiter));
        }
        let mut state = self.lock();
        if state.closed {
            return Err((ChildWatchError::Closed { watcher: self.name }.into(), waiter));
        }
        if let Some(status) = state.exited.take_fresh(pid) {
            let lp = state.lp.clone();
            let d = Delivery { pid, waiter, status, lp };
            return Ok((Added::Delivered, AfterLock::Deliver(d)));
        }
        if state.watched.contains(&pid) {
            let old = state.handlers.insert(pid, waiter);
            return Ok((Added::Replaced, old.map_or(AfterLock::Nothing, AfterLock::Drop)));
        }
        let checked = if spawned_here { Ok(()) } else { check_child(pid) };
        if let Err(e) = checked.and_then(|()| start(&mut state)) {
            return Err((e, waiter));
        }
        state.watched.insert(pid);
        state.handlers.insert(pid, waiter);
        Ok((Added::New, AfterLock::Nothing))
    }

    /// Gives `waiter` a status reaped elsewhere (by another fast watcher), to be
    /// delivered once the caller's locks are released; on refusal, returns the status
    /// too.
    #[allow(clippy::type_complexity)]
    pub(crate) fn hand_over(
        &self,
        pid: u32,
        waiter: Waiter,
        status: io::Result<ExitStatus>,
    ) -> Result<Delivery, (io::Error, Waiter, io::Result<ExitStatus>)> {
        let state = self.lock();
        if state.closed {
            return Err((ChildWatchError::Closed { watcher: self.name }.into(), waiter, status));
        }
        Ok(Delivery { pid, waiter, status, lp: state.lp.clone() })
    }

    /// The child `pid` was reaped (or could not be): tell its handler, or keep the
    /// status for a later one. Returns whether the watcher is now drained.
    pub(crate) fn complete(&self, pid: u32, status: io::Result<ExitStatus>) -> bool {
        let (done, drained) = self.complete_later(pid, status);
        if let Some(d) = done {
            d.run();
        }
        drained
    }

    /// As `complete`, but the handler is returned instead of called, so that the
    /// caller can release its own locks first (a handler may add another child).
    pub(crate) fn complete_later(
        &self,
        pid: u32,
        status: io::Result<ExitStatus>,
    ) -> (Option<Delivery>, bool) {
        let mut state = self.lock();
        let done = finish(&mut state, pid, status);
        (done, state.drained())
    }

    pub(crate) fn remove(&self, pid: u32) -> bool {
        if self.is_inherited() {
            return false;
        }
        let old = self.lock().handlers.remove(&pid);
        old.is_some()
    }

    /// Marks the watcher closed; returns whether it is drained already.
    pub(crate) fn close(&self) -> bool {
        // What an inherited watcher holds belongs to the parent: leave it be.
        if self.is_inherited() {
            return false;
        }
        let mut state = self.lock();
        state.closed = true;
        state.exited.clear();
        state.drained()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn attach(&self, lp: Option<&EventLoop>) {
        if self.is_inherited() {
            return;
        }
        self.lock().lp = lp.cloned();
    }
}

/// A handler to call once no lock is held: who, with what, where.
pub(crate) struct Delivery {
    pid: u32,
    waiter: Waiter,
    status: io::Result<ExitStatus>,
    lp: Option<EventLoop>,
}

impl Delivery {
    /// Calls the handler. Call it without holding any watcher lock.
    pub(crate) fn run(self) {
        deliver(self.pid, self.waiter, self.status, self.lp.as_ref());
    }
}

/// What is left to do once the locks are released.
pub(crate) enum AfterLock {
    Nothing,
    /// Call a handler.
    Deliver(Delivery),
    /// Drop a replaced handler (a dropped `ChildExit` sender wakes its task).
    Drop(Waiter),
}

impl AfterLock {
    pub(crate) fn run(self) {
        match self {
            AfterLock::Nothing => {}
            AfterLock::Deliver(d) => d.run(),
            AfterLock::Drop(old) => drop(old),
        }
    }
}

/// What `complete` does under the lock: forget `pid`, and take its handler (to call
/// after the lock) or keep its status.
pub(crate) fn finish(
    state: &mut State,
    pid: u32,
    status: io::Result<ExitStatus>,
) -> Option<Delivery> {
    state.watched.remove(&pid);
    match state.handlers.remove(&pid) {
        Some(waiter) => Some(Delivery { pid, waiter, status, lp: state.lp.clone() }),
        None => {
            if !state.closed {
                state.exited.insert(pid, status);
            }
            None
        }
    }
}

/// `watch` in terms of `add`: a `ChildExit` that carries any error.
pub(crate) fn watch_with(
    pid: u32,
    add: impl FnOnce(u32, Waiter) -> Result<(), (io::Error, Waiter)>,
) -> ChildExit {
    let (exit, sender) = ChildExit::pair(pid);
    if let Err((err, Waiter::Exit(sender))) = add(pid, Waiter::Exit(sender)) {
        sender.send(Err(err));
    }
    exit
}

/// `add_child_handler` in terms of `add`: errors are reported as asyncio does.
pub(crate) fn add_handler_with(
    name: &str,
    pid: u32,
    callback: Callback,
    add: impl FnOnce(u32, Waiter) -> Result<(), (io::Error, Waiter)>,
) {
    if let Err((err, waiter)) = add(pid, Waiter::Callback(callback)) {
        // The callback cannot carry an error: asyncio reports 255 and logs why.
        eprintln!("polyloop: {name} child watcher: {err}; the handler gets returncode 255");
        if let Waiter::Callback(cb) = waiter {
            cb(pid, 255);
        }
    }
}

/// Hands `status` to `waiter`: a `ChildExit` at once, a callback on the attached
/// loop or, without one, on the callback thread. Never here: this may be a waker
/// called by the reactor with its lock held, and a callback that blocked on async
/// work there would stall every user of the reactor.
pub(crate) fn deliver(
    pid: u32,
    waiter: Waiter,
    status: io::Result<ExitStatus>,
    lp: Option<&EventLoop>,
) {
    match waiter {
        Waiter::Exit(sender) => sender.send(status),
        Waiter::Callback(cb) => {
            let code = match &status {
                Ok(s) => returncode(s),
                Err(err) => {
                    eprintln!(
                        "polyloop: cannot report the exit of pid {pid}: {err}; returncode 255"
                    );
                    255
                }
            };
            let cb = match lp {
                Some(lp) => match lp.try_spawn({
                    let lp = lp.downgrade();
                    async move { call_handler(cb, pid, code, lp.upgrade().as_ref()) }
                }) {
                    Ok(task) => return task.detach(),
                    Err(_) => {
                        return eprintln!(
                            "polyloop: pid {pid} exited, but the event loop its watcher is attached to is closed; the handler was dropped"
                        );
                    }
                },
                None => cb,
            };
            on_callback_thread(Box::new(move || call_handler(cb, pid, code, None)));
        }
    }
}

/// Calls a user's handler; a panic in it goes to the exception handler of the loop the
/// watcher is attached to, else to stderr (as asyncio logs an exception in a callback),
/// and no further, so the thread or the task that delivers statuses keeps working.
fn call_handler(cb: Callback, pid: u32, code: i32, lp: Option<&EventLoop>) {
    let run = std::panic::AssertUnwindSafe(move || cb(pid, code));
    if let Err(panic) = std::panic::catch_unwind(run) {
        let context = crate::exception::ExceptionContext::from_panic(
            crate::exception::ExceptionSource::ChildHandler,
            format!("the handler of child {pid} panicked"),
            &*panic,
            None,
        );
        crate::exception::report(lp, context);
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

struct CallbackQueue {
    jobs: VecDeque<Job>,
    /// Whether the callback thread is up (it ends once the queue is empty).
    running: bool,
}

static CALLBACKS: Mutex<CallbackQueue> =
    Mutex::new(CallbackQueue { jobs: VecDeque::new(), running: false });

/// Runs `job` on the callback thread: one thread, started when a job comes and ended
/// once none is left, that runs the handlers of watchers without a loop one at a
/// time, in the order their children were reaped.
fn on_callback_thread(job: Job) {
    let mut queue = CALLBACKS.lock().unwrap_or_else(PoisonError::into_inner);
    queue.jobs.push_back(job);
    if queue.running {
        return;
    }
    queue.running = true;
    drop(queue);
    let started =
        std::thread::Builder::new().name("polyloop-child-handlers".into()).spawn(run_callbacks);
    if let Err(err) = started {
        // Better late than never: run them here rather than lose them.
        eprintln!("polyloop: cannot start the child handler thread ({err}); running them here");
        run_callbacks();
    }
}

fn run_callbacks() {
    loop {
        let job = {
            let mut queue = CALLBACKS.lock().unwrap_or_else(PoisonError::into_inner);
            match queue.jobs.pop_front() {
                Some(job) => job,
                None => {
                    queue.running = false;
                    return;
                }
            }
        };
        job();
    }
}

/// A pid that can be a child: 1..=pid_max.
pub(crate) fn validate_pid(pid: u32) -> io::Result<Pid> {
    let max = pid_max();
    if pid == 0 || pid > max {
        return Err(ChildWatchError::InvalidPid { pid, max }.into());
    }
    Ok(Pid::from_raw(pid as i32).expect("a pid in 1..=pid_max is positive"))
}

/// Whether `pid` is our child and not yet reaped (it may have exited): asks the
/// kernel without reaping.
pub(crate) fn check_child(pid: u32) -> io::Result<()> {
    let p = validate_pid(pid)?;
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    loop {
        match rustix::process::waitid(WaitId::Pid(p), opts) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::CHILD) => return Err(ChildWatchError::NotChild { pid }.into()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// `ECHILD` from a reap: someone else reaped the child.
pub(crate) fn not_child(pid: u32) -> io::Error {
    ChildWatchError::NotChild { pid }.into()
}

fn pid_max() -> u32 {
    static MAX: OnceLock<u32> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304)
    })
}

/// The `ChildWatcher`, `Default` and `Debug` impls of a watcher made of a [`Core`] (field
/// `core`), an `add(pid, waiter)` method that starts watching one child (pidfd,
/// threaded) and an `after_close()` method that lets go of what no child needs:
/// everything but how a child is watched. More trait methods may follow the
/// type, in braces.
macro_rules! core_watcher {
    ($ty:ident $({ $($extra:tt)* })?) => {
        impl $crate::process::ChildWatcher for $ty {
            fn name(&self) -> &str {
                self.core.name
            }

            fn add_child_handler(
                &self,
                pid: u32,
                callback: Box<dyn FnOnce(u32, i32) + Send + 'static>,
            ) {
                $crate::process::watcher::core::add_handler_with(
                    self.core.name,
                    pid,
                    callback,
                    |pid, w| self.add(pid, w),
                );
            }

            fn remove_child_handler(&self, pid: u32) -> bool {
                self.core.remove(pid)
            }

            fn attach_loop(&self, lp: Option<&$crate::EventLoop>) {
                self.core.attach(lp);
            }

            fn is_active(&self) -> bool {
                !self.core.is_inherited() && !self.core.is_closed()
            }

            fn close(&self) {
                // What each child holds (a pidfd, a waiting thread) ends with it.
                self.core.close();
                self.after_close();
            }

            fn watch(&self, pid: u32) -> $crate::process::ChildExit {
                $crate::process::watcher::core::watch_with(pid, |pid, w| self.add(pid, w))
            }

            $($($extra)*)?
        }

        impl Default for $ty {
            fn default() -> Self {
                $ty::new()
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let state = self.core.lock();
                f.debug_struct(stringify!($ty))
                    .field("watched", &state.watched.len())
                    .field("closed", &state.closed)
                    .finish()
            }
        }
    };
}
pub(super) use core_watcher;
