//! A small server-like program that shuts down gracefully on SIGINT or SIGTERM: its
//! tasks, a child process and a timer all end before it exits 0.
//!
//! Run it with `cargo run --example graceful_shutdown`, then press Ctrl-C (or send
//! `kill -TERM <pid>` from another terminal).
//!
//! - Requests arrive on a queue; three workers handle them, and a fourth task waits on
//!   a "long poll" that never answers.
//! - A helper child process (`sleep`) runs beside them.
//! - A timer prints a heartbeat, rescheduling itself with `call_later`.
//!
//! On SIGINT or SIGTERM (a handler of the loop, `add_signal_handler`), the program stops
//! accepting requests, gives its tasks until a deadline to finish what they hold and
//! cancels the rest, kills and reaps the child, stops the timer, and closes the loop
//! (which removes the signal handlers).

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polyloop::process::Command;
use polyloop::signal::{SIGINT, SIGTERM};
use polyloop::{EventLoop, Task, TimerHandle};

/// How long the tasks get to finish once a shutdown is asked for.
const DEADLINE: Duration = Duration::from_secs(2);
/// How often the heartbeat timer fires.
const HEARTBEAT: Duration = Duration::from_millis(100);

fn main() -> Result<(), Box<dyn Error>> {
    let lp = polyloop::new_event_loop()?;
    let served = lp.run_until_complete(serve(lp.clone()))??;
    // Closing the loop also removes its signal handlers: SIGINT and SIGTERM are back
    // to their default actions.
    lp.close()?;
    println!("served {served} requests; loop closed, exiting with 0");
    Ok(())
}

/// Runs the server until a signal asks it to stop, then shuts it down. Returns how
/// many requests were handled.
async fn serve(lp: EventLoop) -> Result<u64, Box<dyn Error>> {
    // The shutdown request: each handler runs as a callback of this loop.
    let (stop_tx, stop_rx) = async_channel::bounded::<i32>(1);
    for sig in [SIGINT, SIGTERM] {
        let tx = stop_tx.clone();
        lp.add_signal_handler(sig, move || {
            let _ = tx.try_send(sig);
        })?;
    }

    // The child process.
    let mut child = Command::new("sleep").arg("1000").spawn()?;
    let child_pid = child.id().expect("a child just started has its pid");
    println!("child {child_pid} started");

    // The timer: a heartbeat that schedules itself again until told to stop.
    let timer = Heartbeat::start(&lp);

    // The work: a queue of requests, three workers, and a task on a long poll.
    let (requests, queue) = async_channel::bounded::<u64>(16);
    let served = Arc::new(AtomicU64::new(0));
    let mut tasks: Vec<(&str, Task<()>)> = (0..3)
        .map(|_| {
            let (queue, served) = (queue.clone(), served.clone());
            let worker = polyloop::spawn(async move {
                while let Ok(request) = queue.recv().await {
                    polyloop::sleep(Duration::from_millis(5 + request % 10)).await;
                    served.fetch_add(1, Ordering::Relaxed);
                }
            });
            ("worker", worker)
        })
        .collect();
    tasks.push(("long poll", polyloop::spawn(std::future::pending::<()>())));
    let accepting = Arc::new(AtomicBool::new(true));
    let acceptor = {
        let accepting = accepting.clone();
        polyloop::spawn(async move {
            let mut next = 0;
            while accepting.load(Ordering::Relaxed) {
                if requests.send(next).await.is_err() {
                    break;
                }
                next += 1;
                polyloop::sleep(Duration::from_millis(2)).await;
            }
            // Dropping the sender closes the queue: the workers end once it is empty.
        })
    };

    println!("ready: pid {} (send SIGINT or SIGTERM to stop)", std::process::id());
    let sig = stop_rx.recv().await?;
    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
    println!("got {name}, shutting down");

    // 1. Stop accepting work.
    accepting.store(false, Ordering::Relaxed);
    acceptor.await;
    println!("stopped accepting requests");

    // 2. Let the tasks finish what they hold until the deadline; cancel the rest.
    let deadline = Instant::now() + DEADLINE;
    let (mut finished, mut cancelled) = (0, 0);
    for (what, mut task) in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        if polyloop::timeout(left, &mut task).await.is_ok() {
            finished += 1;
        } else {
            task.cancel().await;
            cancelled += 1;
            println!("cancelled the {what} task at the deadline");
        }
    }
    println!("tasks: {finished} finished, {cancelled} cancelled");

    // 3. Kill and reap the child.
    child.kill()?;
    let status = child.wait().await?;
    println!("child {child_pid} killed and reaped ({status})");

    // 4. Stop the timer.
    let beats = timer.stop();
    println!("heartbeat stopped after {beats} beats");
    Ok(served.load(Ordering::Relaxed))
}

/// A timer that fires every [`HEARTBEAT`] by scheduling itself again.
#[derive(Clone)]
struct Heartbeat {
    next: Arc<Mutex<Option<TimerHandle>>>,
    beats: Arc<AtomicU64>,
}

impl Heartbeat {
    fn start(lp: &EventLoop) -> Heartbeat {
        let timer = Heartbeat { next: Arc::default(), beats: Arc::default() };
        timer.schedule(lp.clone());
        timer
    }

    fn schedule(&self, lp: EventLoop) {
        let this = self.clone();
        let mut next = self.next.lock().unwrap();
        if next.as_ref().is_some_and(TimerHandle::is_cancelled) {
            return; // stopped
        }
        *next = Some(lp.clone().call_later(HEARTBEAT, move || {
            this.beats.fetch_add(1, Ordering::Relaxed);
            this.schedule(lp);
        }));
    }

    /// Cancels the next beat; returns how many there were.
    fn stop(&self) -> u64 {
        if let Some(next) = self.next.lock().unwrap().as_ref() {
            next.cancel();
        }
        self.beats.load(Ordering::Relaxed)
    }
}
