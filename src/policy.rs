//! Event loop policies: the process-wide object that gets, sets and creates the current
//! loop of each context, as asyncio's policies do.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};

use crate::error::Error;
use crate::event_loop::{EventLoop, get_running_loop};
use crate::process::ChildWatcher;

/// Gets, sets and creates event loops for the current *context*.
///
/// The default policy's context is the thread; a custom policy may define it
/// differently (one loop for the whole process, one per task group, ...).
/// Plug-in crates register their policies by name with
/// [`register_policy!`](crate::register_policy).
///
/// # Examples
///
/// A policy whose loops all run in debug mode:
///
/// ```
/// use std::sync::Arc;
/// use polyloop::{DefaultEventLoopPolicy, Error, EventLoop, EventLoopPolicy};
///
/// #[derive(Debug, Default)]
/// struct Debugging(DefaultEventLoopPolicy);
///
/// impl EventLoopPolicy for Debugging {
///     fn name(&self) -> &str { "debugging" }
///     fn get_event_loop(&self) -> Result<EventLoop, Error> {
///         self.0.get_event_loop_with(|| self.new_event_loop())
///     }
///     fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error> { self.0.set_event_loop(lp) }
///     fn new_event_loop(&self) -> Result<EventLoop, Error> { EventLoop::builder().debug(true).build() }
/// }
///
/// polyloop::set_event_loop_policy(Some(Arc::new(Debugging::default())));
/// assert!(polyloop::new_event_loop()?.get_debug());
/// polyloop::set_event_loop_policy(None);
/// # Ok::<(), Error>(())
/// ```
pub trait EventLoopPolicy: Send + Sync + fmt::Debug + 'static {
    /// The name the policy is registered under (e.g. `"default"`).
    fn name(&self) -> &str;

    /// The loop of the current context. Never "nothing": either a loop or an error
    /// that says why there is none.
    ///
    /// # Errors
    ///
    /// [`Error::NoCurrentLoop`] where the policy does not create one (for the default
    /// policy: a thread other than the main thread with no loop set, or the main thread
    /// once `set_event_loop` was called there and left no loop).
    fn get_event_loop(&self) -> Result<EventLoop, Error>;

    /// Sets (or with `None`, clears) the loop of the current context.
    ///
    /// # Errors
    ///
    /// Whatever the policy refuses; the default policy refuses nothing.
    fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error>;

    /// Creates a new loop (not set as current).
    ///
    /// # Errors
    ///
    /// When the loop cannot be made, e.g. [`Error::InvalidEnv`] for a bad setting.
    fn new_event_loop(&self) -> Result<EventLoop, Error>;

    /// The child watcher that spawning through this policy uses. By default, the
    /// process-wide one (see [`process::watcher::get_child_watcher`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] for a bad `POLYLOOP_CHILD_WATCHER`, or
    /// [`Error::ChildWatcherUnavailable`].
    ///
    /// [`process::watcher::get_child_watcher`]: crate::process::watcher::get_child_watcher
    fn get_child_watcher(&self) -> Result<Arc<dyn ChildWatcher>, Error> {
        crate::process::watcher::get_child_watcher()
    }

    /// Sets the child watcher of this policy (`None`: a fresh one on the next get). By
    /// default, the process-wide one; the watcher it replaces is closed.
    fn set_child_watcher(&self, watcher: Option<Arc<dyn ChildWatcher>>) {
        crate::process::watcher::set_child_watcher(watcher)
    }

    /// Whether [`block_on`](crate::block_on) may keep this policy's loop for a thread
    /// between calls, instead of asking `get_event_loop` each time.
    ///
    /// Only a policy whose `get_event_loop` and `set_event_loop` go to a
    /// [`DefaultEventLoopPolicy`]'s per-thread context may say `true`: that context
    /// tells such caches when a thread's loop changes. The default is `false`.
    fn thread_loops_cacheable(&self) -> bool {
        false
    }
}

/// The default policy: one current loop per thread, registered as `"default"`.
///
/// `get_event_loop()` on the main thread with no loop set creates one and sets it, as
/// long as `set_event_loop` was never called on that thread (with a loop or `None`:
/// asyncio's `_set_called`); after that, and on any other thread, it is
/// [`Error::NoCurrentLoop`].
///
/// # Examples
///
/// ```
/// use polyloop::{DefaultEventLoopPolicy, EventLoopPolicy};
///
/// let policy = DefaultEventLoopPolicy::new();
/// let err = std::thread::spawn(move || policy.get_event_loop().unwrap_err()).join().unwrap();
/// assert!(err.is_no_current_loop());
/// ```
pub struct DefaultEventLoopPolicy {
    id: u64,
    /// Lives as long as the policy: threads let go of its loops once it is gone.
    alive: Arc<()>,
}

thread_local! {
    /// What `set_event_loop` was last given on this thread, per default-policy instance.
    static CURRENT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// What `set_event_loop` of one default policy was last given on one thread. An entry
/// with no loop is asyncio's `_set_called` without a loop: no loop is made implicitly
/// any more.
struct Entry {
    /// The policy's id.
    id: u64,
    /// The fork generation it was set in.
    generation: u64,
    /// The policy's [`DefaultEventLoopPolicy::alive`].
    policy: Weak<()>,
    lp: Option<EventLoop>,
}

impl Entry {
    /// Loops set before a fork belong to the parent process (a forked child starts as
    /// if `set_event_loop` had never been called, as asyncio's does); the entries of a
    /// policy that was dropped can never be read again.
    fn is_stale(&self, generation: u64) -> bool {
        self.generation != generation || self.policy.strong_count() == 0
    }
}

/// Takes the stale entries out of `entries`, to be dropped once the table is no longer
/// borrowed: dropping a loop's last handle closes it, and the destructors of its tasks
/// may look up this thread's loop.
fn take_stale(entries: &mut Vec<Entry>, generation: u64) -> Vec<Entry> {
    if !entries.iter().any(|e| e.is_stale(generation)) {
        return Vec::new();
    }
    let (stale, live) = std::mem::take(entries).into_iter().partition(|e| e.is_stale(generation));
    *entries = live;
    stale
}

impl DefaultEventLoopPolicy {
    /// A new default policy, with no loop set on any thread.
    pub fn new() -> DefaultEventLoopPolicy {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        DefaultEventLoopPolicy { id: NEXT.fetch_add(1, Ordering::Relaxed), alive: Arc::new(()) }
    }

    fn current(&self) -> Option<EventLoop> {
        self.entry().flatten()
    }

    /// What `set_event_loop` was last given on this thread: `None` if it was never
    /// called (in this process), `Some(None)` if it was last called with `None`.
    fn entry(&self) -> Option<Option<EventLoop>> {
        let generation = crate::fork::generation();
        let (found, stale) = CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            let stale = take_stale(&mut c, generation);
            (c.iter().find(|e| e.id == self.id).map(|e| e.lp.clone()), stale)
        });
        drop(stale);
        found
    }

    /// The loop set on this thread, if any. Unlike
    /// [`get_event_loop`](EventLoopPolicy::get_event_loop) it never creates one, so a
    /// policy that keeps the per-thread context but makes its own loops can wrap this
    /// one.
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::{DefaultEventLoopPolicy, EventLoopPolicy};
    ///
    /// let policy = DefaultEventLoopPolicy::new();
    /// assert!(policy.current_loop().is_none());
    /// let lp = policy.new_event_loop()?;
    /// policy.set_event_loop(Some(lp.clone()))?;
    /// assert_eq!(policy.current_loop(), Some(lp));
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn current_loop(&self) -> Option<EventLoop> {
        self.current()
    }

    /// This thread's loop by asyncio's rule, with new loops made by `make`: the loop set
    /// on this thread; on the main thread where `set_event_loop` was never called, a
    /// loop from `make`, set as current; else [`Error::NoCurrentLoop`].
    ///
    /// A policy that keeps asyncio's per-thread context but makes another kind of loop
    /// calls this from its `get_event_loop`. A loop made here is closed when the thread
    /// exits, so that an unused loop's threads and tasks do not linger.
    ///
    /// # Errors
    ///
    /// [`Error::NoCurrentLoop`] off the main thread with no loop set, or on the main
    /// thread after `set_event_loop(None)`; `make`'s error.
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::{DefaultEventLoopPolicy, EventLoop};
    ///
    /// let context = DefaultEventLoopPolicy::new();
    /// let debug_loops = || EventLoop::builder().debug(true).build();
    /// std::thread::spawn(move || {
    ///     let err = context.get_event_loop_with(debug_loops).unwrap_err();
    ///     assert!(err.is_no_current_loop());
    /// })
    /// .join()
    /// .unwrap();
    /// ```
    pub fn get_event_loop_with(
        &self,
        make: impl FnOnce() -> Result<EventLoop, Error>,
    ) -> Result<EventLoop, Error> {
        match self.entry() {
            Some(Some(lp)) => return Ok(lp),
            // `set_event_loop` was called here: no implicit loop, even on the main thread.
            Some(None) => return Err(Error::NoCurrentLoop { thread: thread_name() }),
            None if !is_main_thread() => {
                return Err(Error::NoCurrentLoop { thread: thread_name() });
            }
            None => {}
        }
        let lp = make()?;
        self.set_event_loop(Some(lp.clone()))?;
        // Made without being asked for: closed with the thread.
        crate::event_loop::close_at_thread_exit(&lp);
        Ok(lp)
    }
}

impl Default for DefaultEventLoopPolicy {
    fn default() -> Self {
        DefaultEventLoopPolicy::new()
    }
}

impl EventLoopPolicy for DefaultEventLoopPolicy {
    fn name(&self) -> &str {
        "default"
    }

    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        self.get_event_loop_with(|| self.new_event_loop())
    }

    fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error> {
        bump_generation();
        let generation = crate::fork::generation();
        let (replaced, stale) = CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            let stale = take_stale(&mut c, generation);
            let replaced = c.iter().position(|e| e.id == self.id).map(|i| c.remove(i));
            // Kept with `None` too: it records that `set_event_loop` was called.
            let policy = Arc::downgrade(&self.alive);
            c.push(Entry { id: self.id, generation, policy, lp });
            (replaced, stale)
        });
        // Dropped outside the borrow: dropping a loop's last handle closes it, and the
        // destructors of its tasks may look up this thread's loop.
        drop((replaced, stale));
        Ok(())
    }

    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        EventLoop::new()
    }

    fn thread_loops_cacheable(&self) -> bool {
        true
    }
}

impl fmt::Debug for DefaultEventLoopPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultEventLoopPolicy").field("id", &self.id).finish()
    }
}

/// Whether the calling thread is the process's main thread.
pub fn is_main_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::gettid() == rustix::process::getpid()
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::thread::current().name() == Some("main")
    }
}

/// The calling thread's name, or its id when it has none.
pub(crate) fn thread_name() -> String {
    let t = std::thread::current();
    match t.name() {
        Some(name) => name.to_string(),
        None => format!("{:?}", t.id()),
    }
}

static POLICY: RwLock<Option<Arc<dyn EventLoopPolicy>>> = RwLock::new(None);

/// Whether the policy in `POLICY` keeps its loops in a default policy's per-thread
/// context, where a thread's loop only changes through `set_event_loop` (see
/// [`EventLoopPolicy::thread_loops_cacheable`]).
static POLICY_IS_BUILTIN_DEFAULT: AtomicBool = AtomicBool::new(true);

/// Bumped whenever the answer of "this thread's loop" may change: the policy is
/// replaced, or a default policy's loop is set. Caches of that answer compare it.
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn bump_generation() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// The generation of "this thread's loop", and whether the answer may be cached at all
/// (only for policies with a default policy's per-thread context; others may answer
/// differently for every call).
#[inline]
pub(crate) fn loop_generation() -> (u64, bool) {
    let generation = GENERATION.load(Ordering::Acquire);
    (generation, POLICY_IS_BUILTIN_DEFAULT.load(Ordering::Acquire))
}

/// The process-wide policy (the default one unless another was set).
///
/// # Examples
///
/// ```
/// assert_eq!(polyloop::get_event_loop_policy().name(), "default");
/// ```
pub fn get_event_loop_policy() -> Arc<dyn EventLoopPolicy> {
    if let Some(p) = POLICY.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
        return p.clone();
    }
    POLICY
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(|| Arc::new(DefaultEventLoopPolicy::new()))
        .clone()
}

/// Sets the process-wide policy; `None` restores a fresh default policy.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use polyloop::DefaultEventLoopPolicy;
///
/// let mine = Arc::new(DefaultEventLoopPolicy::new());
/// polyloop::set_event_loop_policy(Some(mine.clone()));
/// assert!(std::ptr::addr_eq(Arc::as_ptr(&polyloop::get_event_loop_policy()), Arc::as_ptr(&mine)));
/// polyloop::set_event_loop_policy(None);
/// assert!(!std::ptr::addr_eq(Arc::as_ptr(&polyloop::get_event_loop_policy()), Arc::as_ptr(&mine)));
/// ```
pub fn set_event_loop_policy(policy: Option<Arc<dyn EventLoopPolicy>>) {
    let mut slot = POLICY.write().unwrap_or_else(PoisonError::into_inner);
    let cacheable = policy.as_ref().is_none_or(|p| p.thread_loops_cacheable());
    POLICY_IS_BUILTIN_DEFAULT.store(cacheable, Ordering::Release);
    *slot = policy;
    bump_generation();
}

/// The loop for this context: the running loop if there is one, else the policy's
/// current loop (`get_event_loop_policy().get_event_loop()`).
///
/// # Errors
///
/// [`Error::NoCurrentLoop`] on a thread that has no loop and where the policy does not
/// create one (with the default policy: any thread but the main thread, and the main
/// thread too once `set_event_loop` was called there, e.g. with `None`).
///
/// # Examples
///
/// ```
/// let lp = polyloop::new_event_loop()?;
/// let inside = lp.run_until_complete(async { polyloop::get_event_loop() })??;
/// assert_eq!(inside, lp);
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn get_event_loop() -> Result<EventLoop, Error> {
    if let Some(lp) = get_running_loop() {
        return Ok(lp);
    }
    get_event_loop_policy().get_event_loop()
}

/// Sets (or clears) the current loop of this context through the policy.
///
/// # Errors
///
/// Whatever the policy refuses.
///
/// # Examples
///
/// ```
/// std::thread::spawn(|| {
///     let lp = polyloop::new_event_loop()?;
///     polyloop::set_event_loop(Some(lp.clone()))?;
///     assert_eq!(polyloop::get_event_loop()?, lp);
///     polyloop::set_event_loop(None)?;
///     assert!(polyloop::get_event_loop().unwrap_err().is_no_current_loop());
///     Ok::<(), polyloop::Error>(())
/// }).join().unwrap()?;
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn set_event_loop(lp: Option<EventLoop>) -> Result<(), Error> {
    get_event_loop_policy().set_event_loop(lp)
}

/// Creates a new loop through the policy.
///
/// # Errors
///
/// When the policy cannot make a loop (e.g. a bad environment setting).
pub fn new_event_loop() -> Result<EventLoop, Error> {
    get_event_loop_policy().new_event_loop()
}

/// The current policy's child watcher (`get_event_loop_policy().get_child_watcher()`).
///
/// # Errors
///
/// [`Error::InvalidEnv`] when `POLYLOOP_CHILD_WATCHER` holds a bad value (the message
/// lists the allowed ones), or [`Error::ChildWatcherUnavailable`].
///
/// # Examples
///
/// ```
/// let watcher = polyloop::get_child_watcher()?;
/// assert!(watcher.is_active() || watcher.name() == "safe" || watcher.name() == "fast");
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn get_child_watcher() -> Result<Arc<dyn ChildWatcher>, Error> {
    get_event_loop_policy().get_child_watcher()
}

/// Sets the current policy's child watcher; `None` makes the next get create a fresh
/// one. The watcher it replaces is closed (its children are still reaped).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use polyloop::process::ThreadedChildWatcher;
///
/// polyloop::set_child_watcher(Some(Arc::new(ThreadedChildWatcher::new())));
/// assert_eq!(polyloop::get_child_watcher()?.name(), "threaded");
/// polyloop::set_child_watcher(None);
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn set_child_watcher(watcher: Option<Arc<dyn ChildWatcher>>) {
    get_event_loop_policy().set_child_watcher(watcher)
}
