//! Spawner threads: where [`Command::status`](super::Command::status) and
//! [`Command::output`](super::Command::output) start their children when asked to
//! ([`Command::start_on_spawner`](super::Command::start_on_spawner)).
//!
//! Starting a child blocks the calling thread until the child has exec'd (std spawns
//! with `vfork` semantics). On a loop's thread that stalls every task of the loop, and
//! it starts children one at a time however many cores there are. Spawner threads
//! take that wait instead: a loop's thread stays free, and children start in parallel.
//!
//! The spawner runs on the blocking pool ([`crate::blocking`]): at most [`max_threads`]
//! of its pool jobs at a time, each taking spawns from the spawner's queue until it is
//! empty. The pool's threads start on demand and end when idle.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use super::child::Child;

/// What a spawner thread runs: starts the child of `cmd`.
type Work = Box<dyn FnOnce(&mut std::process::Command) -> io::Result<Child> + Send>;

/// At most this many children start at once, each on a thread of the blocking pool:
/// four per core (a spawner waits on its child's exec most of the time), from 4 to 64.
pub(crate) fn max_threads() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores * 4).clamp(4, 64)
    })
}

struct Queue {
    /// The fork generation the rest is from: a forked child has none of its parent's
    /// pool threads, nor can it wait for their jobs.
    generation: u64,
    jobs: VecDeque<Arc<Job>>,
    /// Pool jobs taking spawns from `jobs` now.
    runners: usize,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { generation: 0, jobs: VecDeque::new(), runners: 0 });

fn queue() -> MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queues `job`, and starts a runner on the blocking pool if the limit allows.
fn submit(job: Arc<Job>) {
    let mut queue = queue();
    if queue.generation != job.generation {
        // In a forked child: start afresh.
        queue.jobs.clear();
        queue.runners = 0;
        queue.generation = job.generation;
    }
    queue.jobs.push_back(job);
    if queue.runners < max_threads() {
        queue.runners += 1;
        drop(queue);
        crate::blocking::execute(run_spawns);
    }
}

/// A job of the blocking pool: starts the queued children until none is left.
fn run_spawns() {
    loop {
        let job = {
            let mut queue = queue();
            match queue.jobs.pop_front() {
                Some(job) => job,
                None => {
                    queue.runners -= 1;
                    return;
                }
            }
        };
        job.run();
    }
}

/// One child to start: the command (lent by the caller's `Command` for the time of
/// the spawn), and once started, the result with the command to give back.
struct Job {
    slot: Mutex<Slot>,
    done: Condvar,
    /// The fork generation it was submitted in.
    generation: u64,
}

struct Slot {
    /// Taken by the spawner thread when it starts, or back by a caller that gave up.
    todo: Option<(std::process::Command, Work)>,
    result: Option<(std::process::Command, io::Result<Child>)>,
    waker: Option<Waker>,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let Some((mut cmd, work)) = self.lock().todo.take() else { return };
        // A panic must neither end the runner nor leave the caller waiting.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut cmd)))
            .unwrap_or_else(|_| Err(io::Error::other("polyloop: starting the child panicked")));
        let waker = {
            let mut slot = self.lock();
            slot.result = Some((cmd, result));
            slot.waker.take()
        };
        self.done.notify_all();
        if let Some(waker) = waker {
            // A waker that panics must not end the runner (it would stay counted).
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
        }
    }
}

/// Starts a child of `cmd` on a spawner thread with `work`; `cmd` is lent to the
/// spawner until the child is started, and is back in place when the future is done or
/// dropped (a child started for a dropped future is dropped: its watcher reaps it).
pub(crate) fn spawn<'a>(
    cmd: &'a mut std::process::Command,
    work: impl FnOnce(&mut std::process::Command) -> io::Result<Child> + Send + 'static,
) -> Spawn<'a> {
    let lent = std::mem::replace(cmd, std::process::Command::new(""));
    let job = Arc::new(Job {
        slot: Mutex::new(Slot { todo: Some((lent, Box::new(work))), result: None, waker: None }),
        done: Condvar::new(),
        generation: crate::fork::generation(),
    });
    submit(job.clone());
    Spawn { cmd, job, finished: false }
}

/// The future of [`spawn`].
pub(crate) struct Spawn<'a> {
    cmd: &'a mut std::process::Command,
    job: Arc<Job>,
    /// The result was handed out, and the command given back.
    finished: bool,
}

impl Future for Spawn<'_> {
    type Output = io::Result<Child>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Child>> {
        let this = self.get_mut();
        let mut slot = this.job.lock();
        match slot.result.take() {
            Some((cmd, result)) => {
                *this.cmd = cmd;
                this.finished = true;
                Poll::Ready(result)
            }
            None => {
                match &mut slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Spawn<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut slot = self.job.lock();
        if let Some((cmd, _work)) = slot.todo.take() {
            // Not started: take the command back.
            *self.cmd = cmd;
            return;
        }
        if slot.result.is_none() && self.job.generation != crate::fork::generation() {
            // Started by a spawner thread of the parent process: it will never finish
            // here. The command stays lent.
            return;
        }
        // Being started (a spawn takes as long as the child's exec), or done already.
        while slot.result.is_none() {
            slot = self.job.done.wait(slot).unwrap_or_else(PoisonError::into_inner);
        }
        if let Some((cmd, child)) = slot.result.take() {
            *self.cmd = cmd;
            drop(slot);
            drop(child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// The tests fill the pool and count its threads: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Children being started at once (pool jobs taking spawns).
    fn runners() -> usize {
        queue().runners
    }

    /// Work that reports where it ran, as an error (no child is started).
    fn report_thread(_: &mut std::process::Command) -> io::Result<Child> {
        let name = std::thread::current().name().map(str::to_owned);
        Err(io::Error::other(format!("ran on {name:?}")))
    }

    #[test]
    fn work_runs_on_a_spawner_thread_and_the_command_comes_back() {
        let _serial = serial();
        let mut cmd = std::process::Command::new("true");
        cmd.arg("x");
        let err = futures_lite::future::block_on(spawn(&mut cmd, report_thread)).unwrap_err();
        assert_eq!(err.to_string(), "ran on Some(\"polyloop-block\")");
        assert_eq!(cmd.get_program(), "true");
        assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["x"]);
    }

    /// Keeps every spawner thread busy until the returned sender is dropped.
    fn fill_pool() -> (mpsc::Sender<()>, Vec<Spawn<'static>>) {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (busy_tx, busy_rx) = mpsc::channel();
        let blockers: Vec<_> = (0..max_threads())
            .map(|_| {
                let (release_rx, busy_tx) = (release_rx.clone(), busy_tx.clone());
                let cmd = Box::leak(Box::new(std::process::Command::new("true")));
                spawn(cmd, move |_| {
                    busy_tx.send(()).unwrap();
                    let _ = release_rx.lock().unwrap().recv();
                    Err(io::Error::other("released"))
                })
            })
            .collect();
        for _ in 0..max_threads() {
            if busy_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                // Let the blocked spawns finish first: dropping them waits for them.
                drop(release_tx);
                drop(blockers);
                panic!("a spawner thread the pool counts did not take a blocked spawn");
            }
        }
        (release_tx, blockers)
    }

    #[test]
    fn threads_are_bounded_and_a_queued_spawn_dropped_takes_its_command_back_at_once() {
        let _serial = serial();
        let (release, blockers) = fill_pool();
        assert_eq!(runners(), max_threads(), "one runner per blocked spawn, no more");
        assert!(crate::blocking::threads() >= max_threads(), "each on a pool thread");

        // Queued behind the blocked ones: dropping it takes the command back unstarted.
        let mut cmd = std::process::Command::new("queued");
        let queued = spawn(&mut cmd, |_| panic!("a dropped spawn never runs"));
        assert_eq!(runners(), max_threads(), "the queued spawn waits for a runner");
        drop(queued);
        assert_eq!(cmd.get_program(), "queued");

        drop(release);
        for blocked in blockers {
            let err = futures_lite::future::block_on(blocked).unwrap_err();
            assert_eq!(err.to_string(), "released");
        }
    }

    #[test]
    fn a_spawn_dropped_while_running_waits_for_it_and_takes_its_command_back() {
        let _serial = serial();
        let (started_tx, started_rx) = mpsc::channel();
        let (finish_tx, finish_rx) = mpsc::channel::<()>();
        let mut cmd = std::process::Command::new("running");
        let running = spawn(&mut cmd, move |_| {
            started_tx.send(()).unwrap();
            let _ = finish_rx.recv();
            Err(io::Error::other("finished"))
        });
        started_rx.recv().unwrap();
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(finish_tx);
        });
        drop(running); // waits for the work to finish
        assert_eq!(cmd.get_program(), "running");
        finisher.join().unwrap();
    }

    #[test]
    fn a_panic_while_starting_is_an_error_and_the_thread_goes_on() {
        let _serial = serial();
        let mut cmd = std::process::Command::new("true");
        let err = futures_lite::future::block_on(spawn(&mut cmd, |_| panic!("boom")));
        assert_eq!(err.unwrap_err().to_string(), "polyloop: starting the child panicked");
        let err = futures_lite::future::block_on(spawn(&mut cmd, report_thread)).unwrap_err();
        assert_eq!(err.to_string(), "ran on Some(\"polyloop-block\")");
    }

    #[test]
    fn a_waker_that_panics_does_not_end_the_spawner_thread() {
        let _serial = serial();
        /// Says it was woken, then panics.
        struct Panics(Mutex<mpsc::Sender<()>>);
        impl std::task::Wake for Panics {
            fn wake(self: Arc<Self>) {
                let _ = self.0.lock().unwrap().send(());
                panic!("a waker with a bug");
            }
        }
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let mut cmd = std::process::Command::new("true");
        let mut spawning = spawn(&mut cmd, move |c| {
            let _ = go_rx.recv();
            report_thread(c)
        });
        let (woken_tx, woken_rx) = mpsc::channel();
        let panics = Waker::from(Arc::new(Panics(Mutex::new(woken_tx))));
        let polled = Pin::new(&mut spawning).poll(&mut Context::from_waker(&panics));
        assert!(polled.is_pending());
        drop(go_tx); // the work finishes, and wakes the waker that panics
        woken_rx.recv_timeout(Duration::from_secs(10)).expect("the waker is woken");
        let err = futures_lite::future::block_on(spawning).unwrap_err();
        assert_eq!(err.to_string(), "ran on Some(\"polyloop-block\")");
        // All runners still serve: one per blocked spawn, as many as allowed.
        let (release, blockers) = fill_pool();
        assert_eq!(runners(), max_threads());
        drop(release);
        for blocked in blockers {
            let _ = futures_lite::future::block_on(blocked);
        }
    }

    #[test]
    fn runners_and_their_pool_threads_end_when_idle() {
        let _serial = serial();
        let mut cmd = std::process::Command::new("true");
        let _ = futures_lite::future::block_on(spawn(&mut cmd, report_thread));
        let start = Instant::now();
        while runners() > 0 || crate::blocking::threads() > 0 {
            assert!(start.elapsed() < Duration::from_secs(30), "the pool threads never ended");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
