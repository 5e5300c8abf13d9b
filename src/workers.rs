//! Worker threads that a policy lends to one of its loops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use event_listener::Event;

use crate::error::Error;
use crate::event_loop::EventLoop;
use crate::settings::check_workers;

/// Starts `workers` threads that run `lp`'s `Send` tasks, beside the thread that runs
/// the loop, until the loop closes; thread `i` (from 0) is named `name(i)`.
///
/// The workers lend themselves through a [`WeakEventLoop`](crate::WeakEventLoop), so
/// they do not keep the loop open: closing it, by `close()` or by dropping its last
/// handle, stops and joins them (on the thread that closes it, unless that is one of
/// the workers: that one ends when its task returns to it). They run the loop's tasks
/// whether or not the loop itself is running, inside its
/// [runner context](crate::LoopBuilder::runner_context).
///
/// # Errors
///
/// - [`Error::TooManyWorkers`] above [`MAX_WORKERS`](crate::plugin::MAX_WORKERS): no
///   thread starts;
/// - [`Error::ThreadStart`] if the system refuses a thread (a limit on threads, such as
///   `ulimit -u`): the workers already started are stopped and joined first. The loop
///   stays open; a policy that cannot do without its workers closes it.
///
/// # Examples
///
/// ```
/// let lp = polyloop::EventLoop::builder().build()?;
/// polyloop::plugin::start_workers(&lp, 2, |i| format!("my-pool-{i}"))?;
/// let on = lp.run_until_complete(async {
///     polyloop::spawn(async { std::thread::current().name().map(String::from) }).await
/// })?;
/// println!("ran on {on:?}"); // the loop's own thread, or one of the two workers
/// lp.close()?; // stops and joins the workers
///
/// let too_many = polyloop::plugin::start_workers(&lp, 1 << 20, |i| format!("w{i}"));
/// assert!(too_many.unwrap_err().to_string().contains("at most 1024"));
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn start_workers(
    lp: &EventLoop,
    workers: usize,
    name: impl Fn(usize) -> String,
) -> Result<(), Error> {
    check_workers(workers)?;
    let pool = Arc::new(Pool {
        stop: AtomicBool::new(false),
        stopped: Event::new(),
        threads: Mutex::new(Vec::with_capacity(workers)),
    });
    // The hook goes on before any worker starts, so a close that races with start-up
    // still stops them all.
    let hook_pool = pool.clone();
    lp.on_close(move |_| hook_pool.shut_down());
    for i in 0..workers {
        // A handle here would keep the loop open for as long as the worker runs, which
        // is until the loop closes: the loop could never go.
        let (worker_lp, worker_pool) = (lp.downgrade(), pool.clone());
        let spawned = thread::Builder::new().name(name(i)).spawn(move || {
            // `Closed` means the loop was closed (or let go) before this worker got
            // going: nothing to do.
            let _ = worker_lp.run_worker(worker_pool.wait_stopped());
        });
        match spawned {
            Ok(handle) => pool.threads.lock().unwrap_or_else(PoisonError::into_inner).push(handle),
            Err(err) => {
                pool.shut_down();
                return Err(Error::ThreadStart {
                    what: format!("worker thread {i} of {workers} for event loop #{}", lp.id()),
                    kind: err.kind(),
                    reason: err.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The worker threads of one loop, and the signal that stops them.
struct Pool {
    stop: AtomicBool,
    stopped: Event,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// Completes once [`Pool::shut_down`] was called.
    async fn wait_stopped(&self) {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let listener = self.stopped.listen();
            // Check again: a shutdown between the load and `listen` has no listener
            // to wake.
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            listener.await;
        }
    }

    /// Tells every worker to stop, and joins them (run when the loop closes: by
    /// `close()`, or when its last handle is dropped).
    fn shut_down(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stopped.notify(usize::MAX);
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let me = thread::current().id();
        for handle in threads {
            // `close()` called from a task on a worker: that worker cannot join itself.
            // It has been told to stop, and ends as soon as the task returns to it.
            if handle.thread().id() == me {
                continue;
            }
            // A worker only runs tasks, whose panics go to their awaiters, so a panic
            // here is a bug in the executor: report it rather than panic inside close().
            if handle.join().is_err() {
                eprintln!("polyloop: a worker thread panicked");
            }
        }
    }
}
