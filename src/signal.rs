//! Unix signals, as asyncio's `loop.add_signal_handler` and tokio's `signal` module:
//! callbacks run by a loop ([`EventLoop::add_signal_handler`]) and streams of signal
//! numbers ([`signals`]).
//!
//! ```
//! use polyloop::signal::{self, SIGUSR1};
//!
//! polyloop::block_on(async {
//!     let mut stream = signal::signals([SIGUSR1])?;
//!     rustix::process::kill_process(
//!         rustix::process::getpid(),
//!         rustix::process::Signal::USR1,
//!     )?;
//!     assert_eq!(stream.recv().await, SIGUSR1);
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How
//!
//! The first handler or stream of a signal installs a signal action of ours with
//! `sigaction`, after saving the one it replaces. The action only does what is safe in
//! a signal handler: it marks the signal pending and writes a byte to a non-blocking
//! pipe, then calls the action it replaced if that was a function (so a handler that
//! tokio, async-process or a raw `sigaction` installed before keeps working; the
//! default action, to terminate say, is what a handler takes over). The pipe is read by
//! the async-io reactor, which hands each pending signal to its handlers (as callbacks
//! of their loops) and its streams. When the last handler and stream of a signal go
//! (removed, dropped, or their loop closed), the saved action is put back, so the
//! signal does again what it did before. If other code installed an action over ours
//! meanwhile, ours stays beneath it, passing signals on as before, and is used again by
//! the next handler.
//!
//! This is separate from the SIGCHLD listener of the child watchers (which goes
//! through signal-hook-registry and never gives its action back): a handler of SIGCHLD
//! added here sits over it and passes every SIGCHLD on.
//!
//! Signals are process-wide: every loop and stream that asked for a signal gets each
//! delivery. Signals coalesce, as in the kernel: two deliveries before the reactor
//! looks may be seen as one.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use rustix::pipe::PipeFlags;

use crate::error::Error;
use crate::event_loop::{EventLoop, WeakEventLoop};
use crate::process::watcher::readable::{Next, Readable};

/// Hangup (1).
pub const SIGHUP: i32 = libc::SIGHUP;
/// Interrupt from the keyboard, Ctrl-C (2).
pub const SIGINT: i32 = libc::SIGINT;
/// Quit from the keyboard (3).
pub const SIGQUIT: i32 = libc::SIGQUIT;
/// User-defined signal 1.
pub const SIGUSR1: i32 = libc::SIGUSR1;
/// User-defined signal 2.
pub const SIGUSR2: i32 = libc::SIGUSR2;
/// Broken pipe.
pub const SIGPIPE: i32 = libc::SIGPIPE;
/// Timer signal from `alarm`.
pub const SIGALRM: i32 = libc::SIGALRM;
/// Termination request (15).
pub const SIGTERM: i32 = libc::SIGTERM;
/// A child process stopped or ended.
pub const SIGCHLD: i32 = libc::SIGCHLD;
/// The terminal window changed size.
pub const SIGWINCH: i32 = libc::SIGWINCH;
/// Cannot be caught: [`EventLoop::add_signal_handler`] refuses it.
pub const SIGKILL: i32 = libc::SIGKILL;
/// Cannot be caught: [`EventLoop::add_signal_handler`] refuses it.
pub const SIGSTOP: i32 = libc::SIGSTOP;

/// Room for signal numbers 1 to 64 (Linux's real-time signals end at 64).
const SLOTS: usize = 65;

/// The highest signal number of this system.
fn max_signal() -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let max = libc::SIGRTMAX();
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let max = 31;
    max.min(SLOTS as i32 - 1)
}

/// Checks that `signum` is a signal a callback can handle.
fn validate(signum: i32) -> Result<usize, Error> {
    let reason = if signum < 1 || signum > max_signal() {
        format!("it is not a signal number; signals are numbered 1 to {}", max_signal())
    } else if signum == SIGKILL || signum == SIGSTOP {
        let name = if signum == SIGKILL { "SIGKILL" } else { "SIGSTOP" };
        format!("{name} cannot be caught, blocked or ignored; handle SIGTERM or SIGINT instead")
    } else if [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE].contains(&signum) {
        "it reports a fault of the thread that got it (SIGSEGV, SIGBUS, SIGILL, SIGFPE), which \
         a callback run later on a loop cannot handle"
            .to_string()
    } else {
        return Ok(signum as usize);
    };
    Err(Error::Signal { signum, reason })
}

impl EventLoop {
    /// Calls `callback` on this loop, as a callback (see
    /// [`call_soon`](EventLoop::call_soon)), each time the process gets signal
    /// `signum`, as asyncio's `loop.add_signal_handler`. Adding a handler for a signal
    /// that has one on this loop replaces it. Works from any thread, and for loops on
    /// any thread: each loop with a handler for a signal gets every delivery.
    ///
    /// While a signal has handlers (or [`signals`] streams), its previous action is
    /// only called if it was a function; the default action (to terminate, say) is
    /// not taken. [`remove_signal_handler`](EventLoop::remove_signal_handler) of the
    /// last handler, or [`close`](EventLoop::close), puts the previous action back.
    /// A panic of the callback goes to the loop's exception handler.
    ///
    /// # Errors
    ///
    /// [`Error::Signal`] for a number that is not a signal, for SIGKILL and SIGSTOP
    /// (which cannot be caught), for fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE),
    /// or if the action cannot be installed; [`Error::Closed`] if the loop is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::signal::SIGUSR2;
    ///
    /// let lp = polyloop::EventLoop::new()?;
    /// let stopper = lp.clone();
    /// lp.add_signal_handler(SIGUSR2, move || stopper.stop())?;
    /// rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::USR2)
    ///     .unwrap();
    /// lp.run_forever()?; // until the handler stops it
    /// assert!(lp.remove_signal_handler(SIGUSR2)?);
    /// assert!(lp.add_signal_handler(9, || {}).unwrap_err().to_string().contains("SIGKILL"));
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    #[track_caller]
    pub fn add_signal_handler<F>(&self, signum: i32, callback: F) -> Result<(), Error>
    where
        F: FnMut() + Send + 'static,
    {
        let sig = validate(signum)?;
        let handler = LoopHandler {
            lp: self.downgrade(),
            callback: Arc::new(Mutex::new(Box::new(callback))),
            loc: Location::caller(),
        };
        let mut reg = registry();
        if self.is_closed() {
            return Err(Error::Closed { loop_id: self.id() });
        }
        if !reg.signals[sig].handlers.contains_key(&self.id()) {
            reg.subscribe(sig)?;
        }
        // A handler this loop had for the signal is replaced.
        let old = reg.signals[sig].handlers.insert(self.id(), handler);
        if reg.hooked.insert(self.id()) {
            // Closing the loop removes its handlers.
            self.on_close(|lp| remove_loop(lp.id()));
        }
        drop(reg);
        drop(old);
        Ok(())
    }

    /// Removes this loop's handler of signal `signum`; says whether there was one, as
    /// asyncio's `loop.remove_signal_handler`. When it was the signal's last handler
    /// (and no [`signals`] stream wants it), the signal's previous action is back.
    ///
    /// # Errors
    ///
    /// [`Error::Signal`] for a number that is not a signal, or SIGKILL, SIGSTOP or a
    /// fault signal (none of which can have a handler).
    pub fn remove_signal_handler(&self, signum: i32) -> Result<bool, Error> {
        let sig = validate(signum)?;
        let mut reg = registry();
        let old = reg.signals[sig].handlers.remove(&self.id());
        if old.is_some() {
            reg.unsubscribe(sig);
        }
        drop(reg);
        Ok(old.is_some())
    }
}

/// A stream of the signal numbers the process gets, among those asked for, as tokio's
/// `signal::unix::signal` (for many signals at once).
///
/// It does not need a loop: it is woken by the reactor, so it works in any loop and in
/// [`block_on`](crate::block_on). While it lives, the signals' previous actions are
/// only called if they are functions (the default action is not taken); dropping the
/// last handler or stream of a signal puts its previous action back.
///
/// # Errors
///
/// As [`EventLoop::add_signal_handler`], for the first bad number.
///
/// # Examples
///
/// ```
/// use futures_lite::StreamExt;
/// use polyloop::signal::{SIGHUP, SIGUSR1};
///
/// polyloop::block_on(async {
///     let mut stream = polyloop::signal::signals([SIGHUP, SIGUSR1]).unwrap();
///     rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP)
///         .unwrap();
///     assert_eq!(stream.next().await, Some(SIGHUP));
/// });
/// assert!(polyloop::signal::signals([0]).is_err());
/// ```
pub fn signals(signums: impl IntoIterator<Item = i32>) -> Result<Signals, Error> {
    let mut sigs = Vec::new();
    for signum in signums {
        let sig = validate(signum)?;
        if !sigs.contains(&sig) {
            sigs.push(sig);
        }
    }
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let shared = Arc::new(StreamShared::default());
    let mut reg = registry();
    for (i, &sig) in sigs.iter().enumerate() {
        if let Err(err) = reg.subscribe(sig) {
            for &done in &sigs[..i] {
                reg.signals[done].streams.remove(&id);
                reg.unsubscribe(done);
            }
            return Err(err);
        }
        reg.signals[sig].streams.insert(id, shared.clone());
    }
    Ok(Signals { id, sigs, shared })
}

/// The stream of [`signals`]: yields each signal number as the process gets it.
pub struct Signals {
    id: u64,
    sigs: Vec<usize>,
    shared: Arc<StreamShared>,
}

#[derive(Default)]
struct StreamShared {
    inner: Mutex<(VecDeque<i32>, Option<Waker>)>,
}

impl Signals {
    /// Waits for the next signal and gives its number.
    pub async fn recv(&mut self) -> i32 {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next signal.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<i32> {
        let mut inner = self.shared.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.0.pop_front() {
            Some(sig) => Poll::Ready(sig),
            None => {
                match &inner.1 {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => inner.1 = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl futures_lite::Stream for Signals {
    type Item = i32;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<i32>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let mut reg = registry();
        for &sig in &self.sigs {
            if reg.signals[sig].streams.remove(&self.id).is_some() {
                reg.unsubscribe(sig);
            }
        }
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sigs: Vec<usize> = self.sigs.clone();
        f.debug_struct("Signals").field("signals", &sigs).finish()
    }
}

/// A loop's handler of one signal.
struct LoopHandler {
    lp: WeakEventLoop,
    callback: Arc<Mutex<Box<dyn FnMut() + Send>>>,
    loc: &'static Location<'static>,
}

/// Who wants one signal.
#[derive(Default)]
struct Wanted {
    /// By loop id.
    handlers: BTreeMap<u64, LoopHandler>,
    /// By stream id.
    streams: BTreeMap<u64, Arc<StreamShared>>,
    /// Handlers and streams together.
    count: usize,
}

struct Registry {
    signals: Vec<Wanted>,
    /// Loops whose close hook removes their handlers.
    hooked: HashSet<u64>,
    /// The pipe's read end, in the reactor, while any signal is wanted.
    reader: Option<Readable<OwnedFd>>,
    /// Its write end.
    writer: Option<OwnedFd>,
    /// How many signals are wanted.
    wanted: usize,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

struct RegistryGuard(MutexGuard<'static, Option<Registry>>);

impl std::ops::Deref for RegistryGuard {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        self.0.as_ref().expect("made by registry()")
    }
}

impl std::ops::DerefMut for RegistryGuard {
    fn deref_mut(&mut self) -> &mut Registry {
        self.0.as_mut().expect("made by registry()")
    }
}

fn registry() -> RegistryGuard {
    let mut guard = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    guard.get_or_insert_with(|| Registry {
        signals: (0..SLOTS).map(|_| Wanted::default()).collect(),
        hooked: HashSet::new(),
        reader: None,
        writer: None,
        wanted: 0,
    });
    RegistryGuard(guard)
}

impl Registry {
    /// One more handler or stream of `sig`: the first one installs the action.
    fn subscribe(&mut self, sig: usize) -> Result<(), Error> {
        if self.signals[sig].count == 0 {
            if self.wanted == 0 {
                self.open_pipe().map_err(|e| Error::Signal {
                    signum: sig as i32,
                    reason: format!("cannot make the pipe that signals are passed through: {e}"),
                })?;
            }
            if let Err(e) = install(sig) {
                if self.wanted == 0 {
                    self.close_pipe();
                }
                return Err(Error::Signal {
                    signum: sig as i32,
                    reason: format!("cannot install the signal action: {e}"),
                });
            }
            self.wanted += 1;
        }
        self.signals[sig].count += 1;
        Ok(())
    }

    /// One handler or stream of `sig` fewer: the last one puts the old action back.
    fn unsubscribe(&mut self, sig: usize) {
        let wanted = &mut self.signals[sig];
        wanted.count -= 1;
        if wanted.count == 0 {
            uninstall(sig);
            self.wanted -= 1;
            if self.wanted == 0 {
                self.close_pipe();
            }
        }
    }

    fn open_pipe(&mut self) -> std::io::Result<()> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let reader = Readable::new(async_io::Async::new_nonblocking(read)?, on_readable);
        WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        self.writer = Some(write);
        reader.arm();
        self.reader = Some(reader);
        Ok(())
    }

    fn close_pipe(&mut self) {
        WAKE_FD.store(-1, Ordering::SeqCst);
        // A handler that saw the fd before it was cleared may still write to it.
        while IN_HANDLER.load(Ordering::SeqCst) > 0 {
            std::hint::spin_loop();
        }
        if let Some(reader) = self.reader.take() {
            reader.stop();
        }
        self.writer = None;
    }
}

/// Removes every handler of the loop `id` (it is being closed).
fn remove_loop(id: u64) {
    let mut reg = registry();
    reg.hooked.remove(&id);
    let mut removed = Vec::new();
    for sig in 1..SLOTS {
        if let Some(h) = reg.signals[sig].handlers.remove(&id) {
            removed.push(h);
            reg.unsubscribe(sig);
        }
    }
    drop(reg);
    drop(removed);
}

/// The reactor saw the pipe readable: hand out the pending signals.
fn on_readable(fd: &async_io::Async<OwnedFd>) -> Next {
    let mut buf = [0u8; 64];
    while let Ok(n) = rustix::io::read(fd.get_ref(), &mut buf) {
        if n < buf.len() {
            break;
        }
    }
    for (sig, pending) in PENDING.iter().enumerate() {
        if pending.swap(false, Ordering::SeqCst) {
            dispatch(sig);
        }
    }
    Next::Again
}

fn dispatch(sig: usize) {
    let (handlers, streams): (Vec<_>, Vec<_>) = {
        let reg = registry();
        let wanted = &reg.signals[sig];
        (
            wanted.handlers.values().map(|h| (h.lp.clone(), h.callback.clone(), h.loc)).collect(),
            wanted.streams.values().cloned().collect(),
        )
    };
    for (lp, callback, loc) in handlers {
        let Some(lp) = lp.upgrade() else { continue };
        // A loop closed meanwhile has dropped its handlers: nothing to run.
        let _ = lp.try_call_soon_at(
            move || (callback.lock().unwrap_or_else(PoisonError::into_inner))(),
            loc,
        );
    }
    for stream in streams {
        let waker = {
            let mut inner = stream.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if !inner.0.contains(&(sig as i32)) {
                inner.0.push_back(sig as i32);
            }
            inner.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

// What the signal action reads: plain atomics, as is safe in a signal handler.

/// The pipe's write end, or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// How many signal actions are running right now.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
/// Signals delivered and not handed out yet.
static PENDING: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// Whether deliveries of a signal are wanted.
static ACTIVE: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// Whether our action is installed for a signal (maybe under another one).
static INSTALLED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
/// The action ours replaced, for each signal; never freed (a signal handler may be
/// reading it), one small allocation per install.
static PREVIOUS: [AtomicPtr<libc::sigaction>; SLOTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let errno = Errno::save();
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let slot = usize::try_from(sig).ok().filter(|&s| s < SLOTS);
    if let Some(s) = slot {
        if ACTIVE[s].load(Ordering::SeqCst) {
            PENDING[s].store(true, Ordering::SeqCst);
            let fd = WAKE_FD.load(Ordering::SeqCst);
            if fd >= 0 {
                // A full pipe already holds a wake-up; the pending flag keeps the signal.
                // SAFETY: write(2) is async-signal-safe; `fd` is the pipe's write end,
                // which is not closed while this handler runs (see `close_pipe`).
                unsafe { libc::write(fd, [sig as u8].as_ptr().cast(), 1) };
            }
        }
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    if let Some(s) = slot {
        let prev = PREVIOUS[s].load(Ordering::SeqCst);
        // SAFETY: a non-null pointer is a leaked, never-freed action.
        if let Some(prev) = unsafe { prev.as_ref() } {
            // SAFETY: `prev` was this signal's action before ours: calling it with the
            // arguments the kernel gave us is what the kernel would have done.
            unsafe { call_previous(prev, sig, info, ctx) };
        }
    }
    errno.restore();
}

/// Calls a saved action if it is a function (not the default, not ignore).
///
/// # Safety
///
/// Only from a signal handler for `sig`, with its arguments.
unsafe fn call_previous(
    prev: &libc::sigaction,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    let f = prev.sa_sigaction;
    if f == libc::SIG_DFL || f == libc::SIG_IGN {
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO, the action is a three-argument handler.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(f) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO, the action is a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(f) };
        f(sig);
    }
}

/// The current action of `sig`.
fn current(sig: usize) -> std::io::Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reads the action of a valid signal number into `old`.
    if unsafe { libc::sigaction(sig as libc::c_int, std::ptr::null(), &mut old) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(old)
}

/// Makes deliveries of `sig` come to us, installing our action unless it is already
/// there (maybe under another one, which calls it).
fn install(sig: usize) -> std::io::Result<()> {
    if !INSTALLED[sig].load(Ordering::SeqCst) {
        // Saved before ours goes in, so that ours never runs without it.
        let before = current(sig)?;
        PREVIOUS[sig].store(Box::into_raw(Box::new(before)), Ordering::SeqCst);
        // SAFETY: an all-zero sigaction is valid; the fields that matter are set below.
        let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
        ours.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
        // SAFETY: `sa_mask` is a valid sigset_t to clear.
        unsafe { libc::sigemptyset(&mut ours.sa_mask) };
        // SAFETY: installs a valid action for a signal number checked by `validate`.
        let mut replaced: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::sigaction(sig as libc::c_int, &ours, &mut replaced) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if replaced.sa_sigaction != before.sa_sigaction {
            // Changed by other code between the two calls: chain to what was there.
            PREVIOUS[sig].store(Box::into_raw(Box::new(replaced)), Ordering::SeqCst);
        }
        INSTALLED[sig].store(true, Ordering::SeqCst);
    }
    ACTIVE[sig].store(true, Ordering::SeqCst);
    Ok(())
}

/// Stops deliveries of `sig` to us, and puts the saved action back if ours is still
/// the one installed (if not, another action sits over ours and calls it: ours stays,
/// passing signals on).
fn uninstall(sig: usize) {
    ACTIVE[sig].store(false, Ordering::SeqCst);
    PENDING[sig].store(false, Ordering::SeqCst);
    let Ok(now) = current(sig) else { return };
    if now.sa_sigaction != on_signal as *const () as libc::sighandler_t {
        return;
    }
    let prev = PREVIOUS[sig].load(Ordering::SeqCst);
    // SAFETY: a non-null pointer is a leaked, never-freed action.
    if let Some(prev) = unsafe { prev.as_ref() } {
        // SAFETY: puts back the action that was installed before ours.
        if unsafe { libc::sigaction(sig as libc::c_int, prev, std::ptr::null_mut()) } == 0 {
            INSTALLED[sig].store(false, Ordering::SeqCst);
        }
    }
}

/// errno, kept across a signal handler (the code it interrupted may be about to read
/// it).
struct Errno(libc::c_int);

impl Errno {
    fn save() -> Errno {
        // SAFETY: the location of this thread's errno is always valid.
        Errno(unsafe { *errno_location() })
    }

    fn restore(self) {
        // SAFETY: as above.
        unsafe { *errno_location() = self.0 };
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: always safe to call.
    unsafe { libc::__errno_location() }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: always safe to call.
    unsafe { libc::__error() }
}
