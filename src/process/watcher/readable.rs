//! Calls a function from the async-io reactor each time an fd becomes readable, with
//! no task and no thread of our own: the reactor wakes a waker that is our code.
//!
//! The reactor is driven by whichever thread runs a loop, or by async-io's own
//! thread when none does, so this works whether or not any loop runs.

use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

use async_io::Async;

/// What the function wants next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Call again at the next readiness.
    Again,
    /// Stop: deregister the fd, then close it.
    Stop,
}

type OnReady<T> = Box<dyn Fn(&Async<T>) -> Next + Send + Sync>;

/// A registration of an fd (an `OwnedFd`, or one shared through an `Arc`); it ends when
/// the function says [`Next::Stop`] or on [`Readable::stop`].
pub(crate) struct Readable<T: AsFd + Send + Sync + 'static> {
    inner: Arc<Inner<T>>,
}

struct Inner<T: AsFd + Send + Sync + 'static> {
    /// `None` once stopped. Dropping the `Async` deregisters the fd before closing it
    /// (or before dropping our share of it).
    /// Shared so that no lock is held while the function runs (it may stop us).
    source: Mutex<Option<Arc<Async<T>>>>,
    on_ready: OnReady<T>,
    /// The waker given to the reactor; weak, so a stopped registration is freed.
    this: Weak<Inner<T>>,
    /// The fork generation the fd was registered in. In a forked child, deregistering
    /// would remove the parent's registration from the epoll they share: the child
    /// lets the fd go without it.
    generation: u64,
}

impl<T: AsFd + Send + Sync + 'static> Readable<T> {
    /// Takes `source`, already registered with the reactor (`Async::new`). Nothing is
    /// called until [`Readable::arm`].
    pub(crate) fn new(
        source: Async<T>,
        on_ready: impl Fn(&Async<T>) -> Next + Send + Sync + 'static,
    ) -> Readable<T> {
        let inner = Arc::new_cyclic(|this| Inner {
            source: Mutex::new(Some(Arc::new(source))),
            on_ready: Box::new(on_ready),
            this: this.clone(),
            generation: crate::fork::generation(),
        });
        Readable { inner }
    }

    /// Checks readiness now (calling the function if ready) and asks the reactor to
    /// wake us at the next readiness. Call it without holding locks the function takes.
    pub(crate) fn arm(&self) {
        self.inner.poll();
    }

    /// Deregisters and closes the fd; the function is not called again.
    pub(crate) fn stop(&self) {
        self.inner.stop();
    }
}

impl<T: AsFd + Send + Sync + 'static> Inner<T> {
    fn stop(&self) {
        let source = self.source.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.release(source);
    }

    /// Drops the registration, except in a forked child (see `generation`).
    fn release(&self, source: Option<Arc<Async<T>>>) {
        if self.generation != crate::fork::generation() {
            std::mem::forget(source);
            return;
        }
        drop(source);
    }

    fn poll(&self) {
        // The registration owns itself while armed: the reactor holds the waker.
        let Some(this) = self.this.upgrade() else { return };
        let waker = Waker::from(this);
        let mut cx = Context::from_waker(&waker);
        loop {
            let Some(fd) = self.source.lock().unwrap_or_else(PoisonError::into_inner).clone()
            else {
                return;
            };
            match fd.poll_readable(&mut cx) {
                Poll::Pending => return,
                // An error from the reactor: let the function find out by reading.
                Poll::Ready(_) => {
                    // The reactor used up our waker: if the function unwound, nothing
                    // would ask for the next readiness and the fd would go deaf for
                    // good. A panic is reported, and we keep listening.
                    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        (self.on_ready)(&fd)
                    }))
                    .unwrap_or_else(|_| {
                        eprintln!("polyloop: a reactor callback panicked; still listening");
                        Next::Again
                    });
                    if next == Next::Stop {
                        self.stop();
                        return;
                    }
                }
            }
        }
    }
}

impl<T: AsFd + Send + Sync + 'static> Drop for Inner<T> {
    fn drop(&mut self) {
        let source = self.source.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        self.release(source);
    }
}

impl<T: AsFd + Send + Sync + 'static> Wake for Inner<T> {
    fn wake(self: Arc<Self>) {
        self.poll();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.poll();
    }
}
