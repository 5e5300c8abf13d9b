//! The timer row of BENCHMARKS.md: 100k timers with deadlines spread over 0–50 ms, on
//! polyloop, tokio and smol; wall time and how late each timer fired (p50, p99).
//!
//! `cargo bench --bench timers`. Overshoot percentiles are not a per-iteration time, so
//! this bench has its own small harness: a few runs per runtime, medians printed.

#[path = "common/deadlines.rs"]
mod deadlines;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Timer counts: the 100k, and 10k to show precision when arming keeps up.
const SIZES: [usize; 2] = [100_000, 10_000];
/// The count of the current run.
static TIMERS: AtomicUsize = AtomicUsize::new(0);
const SPREAD: Duration = Duration::from_millis(50);
const RUNS: usize = 5;

/// The offsets of one run's deadlines: a fixed pseudo-random spread over `SPREAD`.
fn offsets() -> Vec<Duration> {
    deadlines::offsets(TIMERS.load(Ordering::Relaxed), SPREAD)
}

type Workload = fn() -> Run;

struct Run {
    wall: Duration,
    /// How late each timer fired, and whether its task was first polled after the
    /// deadline (so the timer was armed too late to be on time).
    overshoot: Vec<(Duration, bool)>,
}

/// The instant the deadlines count from: set once every task is spawned, before any
/// of them is polled, so spawn cost is not counted as overshoot (registering the
/// timers is).
type Base = Arc<OnceLock<Instant>>;

fn deadline(base: &Base, offset: Duration) -> Instant {
    *base.get().expect("the base is set before tasks run") + offset
}

/// Runs one workload: `spawn_all` spawns a timer per offset and returns a future of
/// every timer's overshoot.
async fn run<F, Fut>(spawn_all: F) -> Run
where
    F: FnOnce(Base, Vec<Duration>) -> Fut,
    Fut: Future<Output = Vec<(Duration, bool)>>,
{
    let base = Base::default();
    let all = spawn_all(base.clone(), offsets());
    let start = Instant::now();
    base.set(start).unwrap();
    let overshoot = all.await;
    Run { wall: start.elapsed(), overshoot }
}

fn polyloop_timers() -> Run {
    polyloop::block_on(async {
        run(|base, offsets| {
            let tasks: Vec<_> = offsets
                .into_iter()
                .map(|off| {
                    let base = base.clone();
                    polyloop::spawn(async move {
                        let d = deadline(&base, off);
                        let late = Instant::now() >= d;
                        polyloop::sleep_until(d).await;
                        (Instant::now() - d, late)
                    })
                })
                .collect();
            async move {
                let mut out = Vec::with_capacity(tasks.len());
                for t in tasks {
                    out.push(t.await);
                }
                out
            }
        })
        .await
    })
}

fn tokio_timers() -> Run {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        run(|base, offsets| {
            let tasks: Vec<_> = offsets
                .into_iter()
                .map(|off| {
                    let base = base.clone();
                    tokio::spawn(async move {
                        let d = deadline(&base, off);
                        let late = Instant::now() >= d;
                        tokio::time::sleep_until(d.into()).await;
                        (Instant::now() - d, late)
                    })
                })
                .collect();
            async move {
                let mut out = Vec::with_capacity(tasks.len());
                for t in tasks {
                    out.push(t.await.unwrap());
                }
                out
            }
        })
        .await
    })
}

fn smol_timers() -> Run {
    let ex = async_executor::LocalExecutor::new();
    async_io::block_on(ex.run(async {
        run(|base, offsets| {
            let tasks: Vec<_> = offsets
                .into_iter()
                .map(|off| {
                    let base = base.clone();
                    ex.spawn(async move {
                        let d = deadline(&base, off);
                        let late = Instant::now() >= d;
                        async_io::Timer::at(d).await;
                        (Instant::now() - d, late)
                    })
                })
                .collect();
            async move {
                let mut out = Vec::with_capacity(tasks.len());
                for t in tasks {
                    out.push(t.await);
                }
                out
            }
        })
        .await
    }))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects runtimes.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runtimes: [(&str, Workload); 3] = [
        ("polyloop/single", polyloop_timers),
        ("tokio/current_thread", tokio_timers),
        ("smol/local_executor", smol_timers),
    ];
    for n in SIZES {
        TIMERS.store(n, Ordering::Relaxed);
        println!("timers: {n} deadlines over {SPREAD:?}, {RUNS} runs each, medians");
        for (name, f) in runtimes {
            if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
                continue;
            }
            let mut walls = Vec::new();
            let (mut p50s, mut p99s, mut p50s_armed, mut p99s_armed, mut late) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..RUNS {
                let r = f();
                let mut all: Vec<Duration> = r.overshoot.iter().map(|o| o.0).collect();
                let mut armed: Vec<Duration> =
                    r.overshoot.iter().filter(|o| !o.1).map(|o| o.0).collect();
                all.sort();
                armed.sort();
                walls.push(r.wall);
                p50s.push(percentile(&all, 0.50));
                p99s.push(percentile(&all, 0.99));
                p50s_armed.push(percentile(&armed, 0.50));
                p99s_armed.push(percentile(&armed, 0.99));
                late.push(Duration::from_nanos((all.len() - armed.len()) as u64));
            }
            for v in [&mut walls, &mut p50s, &mut p99s, &mut p50s_armed, &mut p99s_armed, &mut late]
            {
                v.sort();
            }
            let m = RUNS / 2;
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            println!(
                "timers/{n}/{name:<24} wall {:>7.2} ms  overshoot p50 {:>8.1} us  p99 {:>8.1} us  | \
             armed in time: p50 {:>7.1} us  p99 {:>8.1} us  ({} of {n} armed late)",
                walls[m].as_secs_f64() * 1e3,
                us(p50s[m]),
                us(p99s[m]),
                us(p50s_armed[m]),
                us(p99s_armed[m]),
                late[m].as_nanos(),
            );
        }
    }
}
