//! Panics that nobody awaits: asyncio's exception handler.
//!
//! A panic in a detached task, in a callback, in a child-exit handler, in blocking work
//! whose future was dropped, in a close hook, or while a task's future or output is
//! dropped, has nobody to resume in. Each of them is handed to one function, [`report`],
//! which calls the loop's handler (set with [`EventLoop::set_exception_handler`]) or,
//! without one, the default: a line on stderr. What the executor catches (see
//! `executor/report.rs`) comes here through the loop's reporter, which without a handler
//! sends it to the loop's debug hook, as it did before there were handlers.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::Arc;

use crate::event_loop::EventLoop;

/// A loop's exception handler: called with the loop and what happened.
pub type ExceptionHandler = dyn Fn(&EventLoop, &ExceptionContext) + Send + Sync + 'static;

/// Where a panic that nobody awaits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExceptionSource {
    /// A task whose [`Task`](crate::Task) was detached, or dropped after it finished.
    Task,
    /// A callback of `call_soon`, `call_later`, `call_at` or a signal handler, as it ran
    /// or as it was dropped without running (cancelled, refused by a closed loop, or
    /// dropped by `close()`).
    Callback,
    /// A handler given to `add_child_handler`.
    ChildHandler,
    /// The drop of a task's future (when it is cancelled, or its loop closed), or of a
    /// task's output that nobody claimed: the executor caught the panic.
    Drop,
    /// A closure of [`unblock`](crate::unblock) or
    /// [`run_in_executor`](EventLoop::run_in_executor) whose future was dropped.
    Blocking,
    /// A hook given to `on_close` or `LoopBuilder::after_close` (one whose panic is not
    /// resumed by `close()`).
    CloseHook,
    /// `!Send` tasks that could not be dropped because their home thread had exited:
    /// they were leaked (no panic comes with this one).
    Leak,
}

/// What an exception handler is told, as asyncio's context dict: a message, the panic's
/// payload as text, and where the failing code came from.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use polyloop::{EventLoop, ExceptionContext, ExceptionSource};
///
/// let lp = EventLoop::new()?;
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// lp.set_exception_handler(Some(Box::new(move |_: &EventLoop, ctx: &ExceptionContext| {
///     s.lock().unwrap().push((ctx.source(), ctx.panic_message().map(String::from)));
/// })));
/// lp.call_soon(|| panic!("boom"));
/// lp.run_until_complete(polyloop::sleep(std::time::Duration::from_millis(1)))?;
/// assert_eq!(*seen.lock().unwrap(), [(ExceptionSource::Callback, Some("boom".to_string()))]);
/// # Ok::<(), polyloop::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ExceptionContext {
    source: ExceptionSource,
    message: String,
    panic: Option<String>,
    location: Option<&'static Location<'static>>,
}

impl ExceptionContext {
    /// A context with a message and nothing else.
    pub fn new(source: ExceptionSource, message: impl Into<String>) -> ExceptionContext {
        ExceptionContext { source, message: message.into(), panic: None, location: None }
    }

    /// A context for a caught panic.
    pub(crate) fn from_panic(
        source: ExceptionSource,
        message: impl Into<String>,
        payload: &(dyn Any + Send),
        location: Option<&'static Location<'static>>,
    ) -> ExceptionContext {
        ExceptionContext {
            source,
            message: message.into(),
            panic: Some(panic_message(payload)),
            location,
        }
    }

    /// Where the panic came from.
    pub fn source(&self) -> ExceptionSource {
        self.source
    }

    /// What happened, in words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The panic's payload as text (a `&str` or `String` payload; other payloads are
    /// described), if a panic was caught.
    pub fn panic_message(&self) -> Option<&str> {
        self.panic.as_deref()
    }

    /// Where the task was spawned, the callback scheduled or the blocking work queued,
    /// when known.
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.location
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(panic) = &self.panic {
            write!(f, ": {panic}")?;
        }
        if let Some(loc) = self.location {
            let verb = match self.source {
                ExceptionSource::Task | ExceptionSource::Drop => "spawned",
                ExceptionSource::Callback => "scheduled",
                ExceptionSource::Blocking => "queued",
                ExceptionSource::ChildHandler | ExceptionSource::CloseHook => "added",
                ExceptionSource::Leak => "spawned",
            };
            write!(f, " ({verb} at {loc})")?;
        }
        Ok(())
    }
}

impl EventLoop {
    /// Sets the handler of panics that nobody awaits on this loop, as asyncio's
    /// `loop.set_exception_handler`; `None` restores the default: one line on stderr,
    /// except for what the executor catches while dropping a task's future or output,
    /// what it leaks, and a close hook's panic that `close()` does not resume, which go
    /// to the loop's debug hook ([`DebugEvent`](crate::DebugEvent); stderr by default).
    ///
    /// The handler is called for panics in detached tasks (and tasks whose `Task` was
    /// dropped after they panicked), in callbacks (also while one that never ran is
    /// dropped), in child-exit handlers of watchers
    /// attached to this loop, in blocking work of
    /// [`run_in_executor`](EventLoop::run_in_executor) whose future was dropped, in close
    /// hooks whose panic `close()` does not resume, for panics the executor catches while
    /// it drops a task's future or an output nobody claimed ([`ExceptionSource::Drop`]),
    /// and for `!Send` tasks leaked because their home thread was gone
    /// ([`ExceptionSource::Leak`]). A loop whose last handle was dropped has no handler
    /// any more: what its close reports goes to the debug hook. The handler runs on
    /// whichever thread caught the panic. A panic in
    /// the handler itself is printed on stderr and goes no further; a report made while
    /// the handler runs on the same thread goes to stderr too, so that a handler can
    /// never call itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use polyloop::{EventLoop, ExceptionContext};
    ///
    /// let lp = EventLoop::new()?;
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// lp.set_exception_handler(Some(Box::new(move |_: &EventLoop, ctx: &ExceptionContext| {
    ///     tx.lock().unwrap().send(ctx.to_string()).unwrap();
    /// })));
    /// lp.spawn(async { panic!("lost") }).detach();
    /// lp.run_until_complete(polyloop::sleep(std::time::Duration::from_millis(1)))?;
    /// let report = rx.recv().unwrap();
    /// assert!(report.starts_with("a detached task panicked: lost (spawned at "), "{report}");
    /// lp.set_exception_handler(None); // back to stderr
    /// # Ok::<(), polyloop::Error>(())
    /// ```
    pub fn set_exception_handler(&self, handler: Option<Box<ExceptionHandler>>) {
        self.set_exception_handler_arc(handler.map(Arc::from));
    }

    /// The handler set with [`set_exception_handler`](EventLoop::set_exception_handler),
    /// if any.
    pub fn get_exception_handler(&self) -> Option<Arc<ExceptionHandler>> {
        self.exception_handler()
    }

    /// Reports `context` as a panic nobody awaits would be: to this loop's handler,
    /// else on stderr, as asyncio's `loop.call_exception_handler`.
    pub fn call_exception_handler(&self, context: ExceptionContext) {
        report(Some(self), context);
    }
}

/// The default handler: one line on stderr.
///
/// # Examples
///
/// ```
/// use polyloop::{ExceptionContext, ExceptionSource, default_exception_handler};
///
/// // Prints "polyloop: something failed" on stderr.
/// default_exception_handler(&ExceptionContext::new(ExceptionSource::Callback, "something failed"));
/// ```
pub fn default_exception_handler(context: &ExceptionContext) {
    eprintln!("polyloop: {context}");
}

thread_local! {
    /// Set while an exception handler runs on this thread.
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

/// The sink of every panic that nobody awaits: the loop's handler, else stderr.
///
/// Never unwinds, and never calls a handler from inside a handler on the same thread.
pub(crate) fn report(lp: Option<&EventLoop>, context: ExceptionContext) {
    let handler = match lp {
        Some(lp) if !IN_HANDLER.try_with(Cell::get).unwrap_or(true) => {
            lp.exception_handler().map(|h| (lp, h))
        }
        _ => None,
    };
    let Some((lp, handler)) = handler else {
        return default_exception_handler(&context);
    };
    IN_HANDLER.with(|c| c.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| handler(lp, &context)));
    IN_HANDLER.with(|c| c.set(false));
    if let Err(panic) = outcome {
        eprintln!(
            "polyloop: the exception handler of event loop #{} panicked ({}) while handling: {context}",
            lp.id(),
            panic_message(&*panic)
        );
        // Its payload may panic when dropped: that must not unwind from here either.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(panic)));
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a payload that is not a string".to_string()
    }
}
