//! Model-based test: random sequences of policy and loop operations on two threads and
//! the main thread, checked against a small model of asyncio's rules. Every refused
//! operation must return the documented error.
//!
//! Runs without the harness: it owns the process-wide policy slot for its whole run,
//! and its `main` is the process's main thread, where asyncio makes loops on demand
//! until `set_event_loop` is called there.

mod common;

use std::sync::mpsc;
use std::thread;

use polyloop::{Error, EventLoop};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The threads operations run on; the last one is the main thread (this one).
const THREADS: [&str; 3] = ["model-a", "model-b", "main"];
const MAIN: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    New { t: usize },
    Set { t: usize, lp: Option<usize> },
    Get { t: usize },
    Run { t: usize, lp: usize },
    RunNested { t: usize, outer: usize, inner: usize },
    RunWhileRunningElsewhere { t: usize, lp: usize },
    StopThenRun { t: usize, lp: usize },
    Close { t: usize, lp: usize },
    SetPolicyNone,
    Install { name: &'static str },
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..3usize;
    let lp = 0..8usize;
    prop_oneof![
        3 => t.clone().prop_map(|t| Op::New { t }),
        3 => (t.clone(), proptest::option::of(lp.clone())).prop_map(|(t, lp)| Op::Set { t, lp }),
        3 => t.clone().prop_map(|t| Op::Get { t }),
        3 => (t.clone(), lp.clone()).prop_map(|(t, lp)| Op::Run { t, lp }),
        1 => (t.clone(), lp.clone(), lp.clone()).prop_map(|(t, outer, inner)| Op::RunNested { t, outer, inner }),
        1 => (t.clone(), lp.clone()).prop_map(|(t, lp)| Op::RunWhileRunningElsewhere { t, lp }),
        1 => (t.clone(), lp.clone()).prop_map(|(t, lp)| Op::StopThenRun { t, lp }),
        1 => (t.clone(), lp.clone()).prop_map(|(t, lp)| Op::Close { t, lp }),
        1 => Just(Op::SetPolicyNone),
        1 => prop_oneof![Just("default"), Just("no-such-policy"), Just(""), Just("Bad Name")]
            .prop_map(|name| Op::Install { name }),
    ]
}

/// What an operation gave: nothing, a loop (by index), or an error.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Done,
    Loop(usize),
    Failed(Error),
}

/// The model: which loop each thread has set, whether `set_event_loop` was called on
/// it (asyncio's `_set_called`), and which loops are closed.
#[derive(Default)]
struct Model {
    current: [Option<usize>; 3],
    set_called: [bool; 3],
    closed: Vec<bool>,
}

impl Model {
    /// A fresh default policy: no thread has a loop or was ever told one.
    fn reset(&mut self) {
        self.current = [None; 3];
        self.set_called = [false; 3];
    }
}

/// Runs `f` on thread `t`: a worker, or the main thread itself.
fn on<R: Send + 'static>(
    workers: &[Worker; 2],
    t: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    if t == MAIN { f() } else { workers[t].call(f) }
}

/// A thread that runs closures sent to it, one at a time.
struct Worker {
    tx: mpsc::Sender<Box<dyn FnOnce() + Send>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Worker {
    fn new(name: &str) -> Worker {
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let handle = thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for f in rx {
                    f();
                }
            })
            .unwrap();
        Worker { tx, handle: Some(handle) }
    }

    fn call<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (rtx, rrx) = mpsc::channel();
        self.tx.send(Box::new(move || rtx.send(f()).unwrap())).unwrap();
        rrx.recv().expect("the worker panicked")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        self.handle.take().unwrap().join().unwrap();
    }
}

fn index_of(loops: &[EventLoop], lp: &EventLoop) -> usize {
    loops.iter().position(|l| l == lp).expect("a loop the test made")
}

fn check(ops: Vec<Op>) -> Result<(), TestCaseError> {
    polyloop::set_event_loop_policy(None);
    let workers = [Worker::new(THREADS[0]), Worker::new(THREADS[1])];
    let mut loops: Vec<EventLoop> = Vec::new();
    let mut model = Model::default();

    for op in ops {
        let (got, want) = match op.clone() {
            Op::New { t } => {
                let lp = on(&workers, t, || polyloop::new_event_loop().unwrap());
                loops.push(lp);
                model.closed.push(false);
                (Outcome::Done, Outcome::Done)
            }
            Op::Set { t, lp } => {
                let pick = lp.filter(|_| !loops.is_empty()).map(|i| i % loops.len());
                let arg = pick.map(|i| loops[i].clone());
                let got = on(&workers, t, move || polyloop::set_event_loop(arg));
                model.current[t] = pick;
                model.set_called[t] = true;
                (outcome(got), Outcome::Done)
            }
            Op::Get { t } => {
                let got = on(&workers, t, polyloop::get_event_loop);
                // Only the main thread, never told a loop, gets one made (and set).
                let want = match model.current[t] {
                    Some(i) => Outcome::Loop(i),
                    None if t == MAIN && !model.set_called[t] => {
                        model.current[t] = Some(loops.len());
                        model.set_called[t] = true;
                        Outcome::Loop(loops.len())
                    }
                    None => Outcome::Failed(Error::NoCurrentLoop { thread: THREADS[t].into() }),
                };
                let got = match got {
                    Ok(lp) if !loops.contains(&lp) => {
                        loops.push(lp);
                        model.closed.push(false);
                        Outcome::Loop(loops.len() - 1)
                    }
                    Ok(lp) => Outcome::Loop(index_of(&loops, &lp)),
                    Err(e) => Outcome::Failed(e),
                };
                (got, want)
            }
            Op::Run { t, lp } => {
                let Some(i) = pick(&loops, lp) else { continue };
                let l = loops[i].clone();
                let got = on(&workers, t, move || {
                    let me = l.clone();
                    l.run_until_complete(async move {
                        // Inside, the running loop comes first.
                        polyloop::get_event_loop().map(|inside| inside == me)
                    })
                });
                let got = match got {
                    Ok(Ok(true)) => Outcome::Done,
                    Ok(Ok(false)) => Outcome::Failed(Error::NoRunningLoop),
                    Ok(Err(e)) | Err(e) => Outcome::Failed(e),
                };
                (got, if_open(&model, i, &loops, Outcome::Done))
            }
            Op::RunNested { t, outer, inner } => {
                let (Some(o), Some(n)) = (pick(&loops, outer), pick(&loops, inner)) else {
                    continue;
                };
                let (lo, ln) = (loops[o].clone(), loops[n].clone());
                let got = on(&workers, t, move || {
                    lo.run_until_complete(async move { ln.run_until_complete(async {}) })
                });
                let got = match got {
                    Ok(inner) => outcome(inner),
                    Err(e) => Outcome::Failed(e),
                };
                let want = Outcome::Failed(Error::AlreadyRunning { loop_id: loops[o].id() });
                (got, if_open(&model, o, &loops, want))
            }
            Op::RunWhileRunningElsewhere { t, lp } => {
                let Some(i) = pick(&loops, lp) else { continue };
                let l = loops[i].clone();
                let other = Worker::new("model-other");
                let got = on(&workers, t, move || {
                    let l2 = l.clone();
                    l.run_until_complete(async move {
                        other.call(move || l2.run_until_complete(async {}))
                    })
                });
                let got = match got {
                    Ok(inner) => outcome(inner),
                    Err(e) => Outcome::Failed(e),
                };
                let want = Outcome::Failed(Error::AlreadyRunning { loop_id: loops[i].id() });
                (got, if_open(&model, i, &loops, want))
            }
            Op::StopThenRun { t, lp } => {
                let Some(i) = pick(&loops, lp) else { continue };
                let l = loops[i].clone();
                let got = on(&workers, t, move || {
                    l.stop();
                    l.run_until_complete(std::future::pending::<()>())
                });
                let want = Outcome::Failed(Error::Stopped { loop_id: loops[i].id() });
                (outcome(got), if_open(&model, i, &loops, want))
            }
            Op::Close { t, lp } => {
                let Some(i) = pick(&loops, lp) else { continue };
                let l = loops[i].clone();
                let got = on(&workers, t, move || l.close());
                model.closed[i] = true;
                (outcome(got), Outcome::Done)
            }
            Op::SetPolicyNone => {
                polyloop::set_event_loop_policy(None);
                model.reset();
                (Outcome::Done, Outcome::Done)
            }
            Op::Install { name } => {
                let got = polyloop::plugin::install(name).map(drop);
                let want = match name {
                    "default" => {
                        model.reset();
                        Outcome::Done
                    }
                    "no-such-policy" => Outcome::Failed(Error::UnknownPolicy {
                        name: name.into(),
                        available: vec!["default".into()],
                    }),
                    _ => Outcome::Failed(Error::InvalidPolicyName { name: name.into() }),
                };
                (outcome(got), want)
            }
        };
        prop_assert_eq!(got, want, "after {:?}", op);
    }
    for lp in &loops {
        prop_assert!(!lp.is_running());
        lp.close().unwrap();
    }
    polyloop::set_event_loop_policy(None);
    Ok(())
}

fn pick(loops: &[EventLoop], i: usize) -> Option<usize> {
    (!loops.is_empty()).then(|| i % loops.len())
}

fn if_open(model: &Model, i: usize, loops: &[EventLoop], want: Outcome) -> Outcome {
    if model.closed[i] { Outcome::Failed(Error::Closed { loop_id: loops[i].id() }) } else { want }
}

fn outcome(r: Result<(), Error>) -> Outcome {
    match r {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed(e),
    }
}

fn main() {
    let mut runner =
        TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let result = runner.run(&proptest::collection::vec(op(), 1..40), check);
    if let Err(e) = result {
        panic!("model check failed: {e}");
    }
    println!(
        "model_policy: 64 random sequences on two threads and the main thread matched the model"
    );
}
