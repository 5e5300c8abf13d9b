//! The child-process rows of BENCHMARKS.md, per child watcher and against tokio::process,
//! async-process and plain std threads:
//! - 1000 × `/bin/true` with at most 64 alive: children per second;
//! - 256 × `sleep 0.2` all alive at once: wall time, peak threads, peak RSS.
//!
//! `cargo bench --bench process`. Each (workload, runtime) pair runs in a fresh copy of
//! this binary, so that peak RSS and the watcher choice (`POLYLOOP_CHILD_WATCHER`) are
//! its own; the parent prints the medians.

use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const TRUE_CHILDREN: usize = 1000;
const TRUE_ALIVE: usize = 64;
const SLEEP_CHILDREN: usize = 256;
const RUNS: usize = 3;
const ROLE: &str = "POLYLOOP_BENCH_PROCESS_ROLE";

const RUNTIMES: [&str; 9] = [
    "polyloop/pidfd",
    "polyloop/pidfd+spawner",
    "polyloop/threaded",
    "polyloop/multiloop",
    "polyloop/safe",
    "polyloop/fast",
    "tokio/current_thread",
    "async-process",
    "std/threads",
];

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    for workload in ["true", "sleep"] {
        for rt in RUNTIMES {
            let name = format!("{workload}/{rt}");
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            let mut results: Vec<Vec<f64>> = Vec::new();
            for _ in 0..RUNS {
                let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
                cmd.env(ROLE, &name).stderr(Stdio::inherit());
                if let Some(kind) = rt.strip_prefix("polyloop/") {
                    cmd.env("POLYLOOP_CHILD_WATCHER", kind.trim_end_matches("+spawner"));
                }
                let out = cmd.output().expect("runs a copy of the bench");
                assert!(out.status.success(), "{name} failed: {:?}", out.status);
                let line = String::from_utf8_lossy(&out.stdout);
                results.push(line.split_whitespace().map(|v| v.parse().unwrap()).collect());
            }
            let median = |i: usize| {
                let mut v: Vec<f64> = results.iter().map(|r| r[i]).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (wall, threads, rss) = (median(0), median(1), median(2));
            if workload == "true" {
                println!(
                    "process/{name:<30} {:>8.0} children/s   wall {:>8.1} ms   peak threads {threads:>4.0}   peak RSS {:>6.0} KiB",
                    TRUE_CHILDREN as f64 / wall,
                    wall * 1e3,
                    rss
                );
            } else {
                println!(
                    "process/{name:<30} wall {:>8.1} ms   peak threads {threads:>4.0}   peak RSS {:>6.0} KiB",
                    wall * 1e3,
                    rss
                );
            }
        }
    }
}

/// Runs one workload in this process and prints `wall_seconds peak_threads peak_rss_kib`.
fn child(role: &str) {
    let (workload, rt) = role.split_once('/').unwrap();
    let sampler = Sampler::start();
    let start = Instant::now();
    match (workload, rt) {
        ("true", rt) if rt.ends_with("+spawner") => {
            polyloop::block_on(true_storm(polyloop_spawner_status))
        }
        ("sleep", rt) if rt.ends_with("+spawner") => {
            polyloop::block_on(sleep_all(polyloop_spawner_status))
        }
        ("true", rt) if rt.starts_with("polyloop") => {
            polyloop::block_on(true_storm(polyloop_status))
        }
        ("sleep", rt) if rt.starts_with("polyloop") => {
            polyloop::block_on(sleep_all(polyloop_status))
        }
        ("true", "tokio/current_thread") => tokio_rt().block_on(true_storm(tokio_status)),
        ("sleep", "tokio/current_thread") => tokio_rt().block_on(sleep_all(tokio_status)),
        ("true", "async-process") => async_io::block_on(true_storm(async_process_status)),
        ("sleep", "async-process") => async_io::block_on(sleep_all(async_process_status)),
        ("true", "std/threads") => std_true_storm(),
        ("sleep", "std/threads") => std_sleep_all(),
        _ => panic!("unknown role {role}"),
    }
    let wall = start.elapsed().as_secs_f64();
    let threads = sampler.stop();
    println!("{wall} {threads} {}", status_kib("VmHWM:"));
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

type Status = std::pin::Pin<Box<dyn Future<Output = std::process::ExitStatus>>>;

fn polyloop_status(program: &'static str, args: &'static [&'static str]) -> Status {
    Box::pin(
        async move { polyloop::process::Command::new(program).args(args).status().await.unwrap() },
    )
}

/// As `polyloop_status`, with the child started on a spawner thread.
fn polyloop_spawner_status(program: &'static str, args: &'static [&'static str]) -> Status {
    Box::pin(async move {
        let mut cmd = polyloop::process::Command::new(program);
        cmd.args(args).start_on_spawner(true).status().await.unwrap()
    })
}

fn tokio_status(program: &'static str, args: &'static [&'static str]) -> Status {
    Box::pin(
        async move { tokio::process::Command::new(program).args(args).status().await.unwrap() },
    )
}

fn async_process_status(program: &'static str, args: &'static [&'static str]) -> Status {
    Box::pin(async move { async_process::Command::new(program).args(args).status().await.unwrap() })
}

/// `TRUE_CHILDREN` runs of `/bin/true`, at most `TRUE_ALIVE` at once, all in one task:
/// the children are awaited together, so the runtime's executor is not what is measured.
async fn true_storm(status: fn(&'static str, &'static [&'static str]) -> Status) {
    let mut started = 0;
    let mut alive: Vec<Status> = Vec::new();
    while started < TRUE_CHILDREN || !alive.is_empty() {
        while started < TRUE_CHILDREN && alive.len() < TRUE_ALIVE {
            alive.push(status("/bin/true", &[]));
            started += 1;
        }
        let i = any_exit(&mut alive).await;
        drop(alive.swap_remove(i));
    }
}

/// `SLEEP_CHILDREN` runs of `sleep 0.2`, all alive at once.
async fn sleep_all(status: fn(&'static str, &'static [&'static str]) -> Status) {
    let mut alive: Vec<Status> = (0..SLEEP_CHILDREN).map(|_| status("sleep", &["0.2"])).collect();
    while !alive.is_empty() {
        let i = any_exit(&mut alive).await;
        drop(alive.swap_remove(i));
    }
}

/// Polls every child (which starts the ones not started yet) until one has exited
/// successfully; gives its index.
async fn any_exit(alive: &mut [Status]) -> usize {
    std::future::poll_fn(|cx| {
        for (i, f) in alive.iter_mut().enumerate() {
            if let std::task::Poll::Ready(s) = f.as_mut().poll(cx) {
                assert!(s.success());
                return std::task::Poll::Ready(i);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn std_true_storm() {
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..TRUE_ALIVE)
        .map(|_| {
            let next = next.clone();
            thread::spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < TRUE_CHILDREN {
                    assert!(std::process::Command::new("/bin/true").status().unwrap().success());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn std_sleep_all() {
    let threads: Vec<_> = (0..SLEEP_CHILDREN)
        .map(|_| {
            thread::spawn(|| {
                assert!(std::process::Command::new("sleep").arg("0.2").status().unwrap().success())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A line of `/proc/self/status` in KiB (or as a count).
fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the thread count every millisecond; reports the peak, less itself.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<u64>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = thread::spawn(move || {
            let mut peak = 0;
            while !s.load(Ordering::Relaxed) {
                peak = peak.max(status_kib("Threads:"));
                thread::sleep(Duration::from_millis(1));
            }
            peak.max(status_kib("Threads:")).saturating_sub(1)
        });
        Sampler { stop, handle }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}
