//! A callback scheduled from another thread while the loop closes is either refused
//! (and dropped by the call that refused it) or accepted and then dropped by `close()`:
//! once `close()` returns, nothing the loop accepted is left behind holding what it
//! captured, and every later call is refused.
//!
//! Threads schedule callbacks with `call_soon` and `call_later` in a tight loop while
//! the test's thread closes the loop, many rounds over. Each callback holds a drop
//! counter and a channel sender: when the loop's last handle but the test's own is
//! gone, every one of them must have been dropped (the counter), and the channel's
//! receiver must see every sender gone.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use polyloop::EventLoop;

/// How many times the race is run.
const ROUNDS: usize = 200;

/// How many threads schedule callbacks in each round.
const PUSHERS: usize = 4;

/// How long one wait inside a round may take before it fails the test instead of
/// hanging; not a performance check.
const WATCHDOG: Duration = Duration::from_secs(60);

/// The same, for all the rounds together.
const ALL_ROUNDS_WATCHDOG: Duration = Duration::from_secs(300);

/// What a refusal of a closed loop says (see `polyloop::Error::Closed`).
const CLOSED_MESSAGE: &str = "is closed; create a new one";

/// Counts its drop; its sender tells the channel's receiver that it is still alive.
struct Held {
    drops: Drops,
    kind: Kind,
    _alive: mpsc::Sender<()>,
}

/// Drops of callbacks scheduled with `call_soon`, and with `call_later`.
type Drops = Arc<[AtomicUsize; 2]>;

impl Drop for Held {
    fn drop(&mut self) {
        self.drops[self.kind as usize].fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Soon,
    Later,
}

/// What one pushing thread saw.
#[derive(Default)]
struct Tally {
    accepted: [usize; 2],
    refused: [usize; 2],
    /// Calls that began after `close()` had returned and were accepted all the same.
    accepted_after_close: usize,
}

/// Schedules a callback holding `held` with the call `held.kind` names: `true` if the
/// loop accepted it, `false` if it refused it as a closed loop does (any other panic
/// fails the test).
fn schedule(lp: &EventLoop, held: Held) -> bool {
    let kind = held.kind;
    let outcome = catch_unwind(AssertUnwindSafe(|| match kind {
        Kind::Soon => drop(lp.call_soon(move || drop(held))),
        // Far in the future: it never runs, only `close()` can drop it.
        Kind::Later => drop(lp.call_later(Duration::from_secs(3600), move || drop(held))),
    }));
    match outcome {
        Ok(()) => true,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("<not a string>");
            assert!(
                message.contains(CLOSED_MESSAGE),
                "{kind:?} on a closing loop panicked with {message:?}, not with the refusal \
                 of a closed loop"
            );
            false
        }
    }
}

/// The refusals of closed loops are expected here by the thousand: they are kept off
/// stderr; any other panic is printed as usual.
fn quiet_refusals() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if !message.is_some_and(|m| m.contains(CLOSED_MESSAGE)) {
                default(info);
            }
        }));
    });
}

/// Waits until `done` holds, failing at the watchdog.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WATCHDOG, "watchdog: {what} never happened");
        std::thread::yield_now();
    }
}

/// Closes `lp` once every thread has `started` (on odd rounds `n`, after running it
/// for one iteration, so that some of what they scheduled runs).
fn close_once_all_started(lp: &EventLoop, n: usize, what: &str, started: &AtomicUsize) {
    wait_for(what, || started.load(Ordering::SeqCst) >= PUSHERS);
    if n % 2 == 1 {
        let stopper = lp.clone();
        lp.call_soon(move || stopper.stop());
        lp.run_forever().unwrap();
    }
    lp.close().unwrap();
}

/// One round: `PUSHERS` threads schedule callbacks until the loop refuses them, while
/// this thread closes it (after running it for a moment, on odd rounds, so that some
/// callbacks run). Returns how many callbacks the loop accepted.
fn round(n: usize) -> usize {
    let lp = EventLoop::new().unwrap();
    let drops: Drops = Arc::default();
    let (alive, senders_gone) = mpsc::channel::<()>();
    let started = Arc::new(AtomicUsize::new(0));
    let close_returned = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|i| {
            let lp = lp.clone();
            let drops = drops.clone();
            let alive = alive.clone();
            let started = started.clone();
            let close_returned = close_returned.clone();
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                let mut counted = false;
                for call in i.. {
                    let kind = if call % 2 == 0 { Kind::Soon } else { Kind::Later };
                    let after_close = close_returned.load(Ordering::SeqCst);
                    let held = Held { drops: drops.clone(), kind, _alive: alive.clone() };
                    if schedule(&lp, held) {
                        tally.accepted[kind as usize] += 1;
                        tally.accepted_after_close += usize::from(after_close);
                        if !std::mem::replace(&mut counted, true) {
                            started.fetch_add(1, Ordering::SeqCst);
                        }
                    } else {
                        // Refused once, refused for good, by both calls.
                        for kind in [Kind::Soon, Kind::Later] {
                            let held = Held { drops: drops.clone(), kind, _alive: alive.clone() };
                            assert!(!schedule(&lp, held), "a call after a refusal was accepted");
                        }
                        tally.refused[kind as usize] += 1;
                        tally.refused[0] += 1;
                        tally.refused[1] += 1;
                        return tally;
                    }
                }
                unreachable!("the loop never refused a callback")
            })
        })
        .collect();
    drop(alive);
    close_once_all_started(&lp, n, "the threads' first callbacks", &started);
    close_returned.store(true, Ordering::SeqCst);
    // Calls after `close()` returned are refused, on this thread too.
    for kind in [Kind::Soon, Kind::Later] {
        let (tx, _rx) = mpsc::channel();
        assert!(!schedule(&lp, Held { drops: Arc::default(), kind, _alive: tx }));
    }
    let mut accepted = [0; 2];
    let mut refused = [0; 2];
    for pusher in pushers {
        let tally = pusher.join().unwrap();
        assert_eq!(
            tally.accepted_after_close, 0,
            "round {n}: calls begun after close() returned were accepted"
        );
        for k in 0..2 {
            accepted[k] += tally.accepted[k];
            refused[k] += tally.refused[k];
        }
    }
    // The loop itself is still here (this thread holds it): what it accepted must have
    // been dropped by `close()`, not be waiting for the loop's memory to go.
    // Refused callbacks were dropped by the call that refused them.
    let scheduled = [0, 1].map(|k| accepted[k] + refused[k]);
    let dropped = [0, 1].map(|k| drops[k].load(Ordering::SeqCst));
    assert_eq!(
        dropped, scheduled,
        "round {n}: [call_soon, call_later] callbacks dropped, of those scheduled; fewer: \
         callbacks the loop accepted outlived close() ({accepted:?} accepted)"
    );
    assert_eq!(
        senders_gone.try_recv(),
        Err(TryRecvError::Disconnected),
        "round {n}: a sender captured by an accepted callback outlived close()"
    );
    drop(lp);
    accepted[0] + accepted[1]
}

#[test]
fn callbacks_scheduled_while_the_loop_closes_are_refused_or_dropped_by_close() {
    quiet_refusals();
    let accepted = all_rounds(round);
    assert!(accepted > 0, "no callback was ever accepted");
}

/// Runs `ROUNDS` rounds of `one` on a thread of their own, failing at the watchdog
/// rather than hanging; the sum of what the rounds return.
fn all_rounds(one: fn(usize) -> usize) -> usize {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = catch_unwind(|| (0..ROUNDS).map(one).sum::<usize>());
        let _ = tx.send(out);
    });
    match rx.recv_timeout(ALL_ROUNDS_WATCHDOG) {
        Ok(Ok(sum)) => sum,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("watchdog: the rounds did not finish"),
    }
}

/// One round of spawns: `PUSHERS` threads spawn tasks that hold a drop counter and a
/// sender and never finish on their own, until the loop refuses them, while this
/// thread closes it. Returns how many tasks the loop accepted.
fn spawn_round(n: usize) -> usize {
    let lp = EventLoop::new().unwrap();
    let drops: Drops = Arc::default();
    let (alive, senders_gone) = mpsc::channel::<()>();
    let started = Arc::new(AtomicUsize::new(0));
    let spawners: Vec<_> = (0..PUSHERS)
        .map(|_| {
            let (lp, drops, alive, started) =
                (lp.clone(), drops.clone(), alive.clone(), started.clone());
            std::thread::spawn(move || {
                let mut tasks = Vec::new();
                let mut refused = 0;
                loop {
                    let held =
                        Held { drops: drops.clone(), kind: Kind::Soon, _alive: alive.clone() };
                    let future = async move {
                        let _held = held;
                        std::future::pending::<()>().await;
                    };
                    match lp.try_spawn(future) {
                        Ok(task) => {
                            if tasks.is_empty() {
                                started.fetch_add(1, Ordering::SeqCst);
                            }
                            tasks.push(task);
                        }
                        Err(_) => {
                            refused += 1;
                            break;
                        }
                    }
                }
                (tasks, refused)
            })
        })
        .collect();
    drop(alive);
    close_once_all_started(&lp, n, "the threads' first tasks", &started);
    let (mut accepted, mut refused) = (0, 0);
    let mut tasks = Vec::new();
    for spawner in spawners {
        let (t, r) = spawner.join().unwrap();
        accepted += t.len();
        refused += r;
        tasks.extend(t);
    }
    // What the closed loop accepted was cancelled by `close()` (its handle says it
    // finished, and awaiting it would not hang); refused futures were dropped by the
    // call that refused them.
    assert!(
        tasks.iter().all(|t| t.is_finished()),
        "round {n}: {} of {accepted} accepted tasks outlived close() unfinished",
        tasks.iter().filter(|t| !t.is_finished()).count()
    );
    assert_eq!(
        drops[0].load(Ordering::SeqCst),
        accepted + refused,
        "round {n}: futures dropped, of those spawned; fewer: tasks the loop accepted \
         outlived close() ({accepted} accepted)"
    );
    drop(tasks);
    assert_eq!(
        senders_gone.try_recv(),
        Err(TryRecvError::Disconnected),
        "round {n}: a sender held by an accepted task outlived close()"
    );
    drop(lp);
    accepted
}

#[test]
fn tasks_spawned_while_the_loop_closes_are_refused_or_cancelled_by_close() {
    let accepted = all_rounds(spawn_round);
    assert!(accepted > 0, "no task was ever accepted");
}
