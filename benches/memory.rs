//! The memory rows of BENCHMARKS.md: heap bytes per idle spawned task on polyloop,
//! tokio and smol, and polyloop's RSS and live heap before and after 1M tasks.
//!
//! `cargo bench --bench memory`. A counting allocator gives exact heap bytes; RSS
//! comes from `/proc/self/status`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Tasks alive at once for the per-task measurement.
const IDLE: usize = 100_000;
/// Tasks in the long run, spawned and joined in batches.
const LONG: usize = 1_000_000;
const BATCH: usize = 1_000;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator with the same arguments; the
// counter is only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded from our caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded from our caller.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded from our caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Heap bytes per task while `IDLE` tasks wait on a future that never completes.
/// `run` spawns them (with `spawn_idle`), lets them all be polled once, and reports the
/// heap growth; the handles' own vector is not counted.
fn per_task(name: &str, bytes: isize) {
    println!("memory/idle_task/{name:<24} {:>6.1} bytes per task", bytes as f64 / IDLE as f64);
}

fn polyloop_idle() -> isize {
    let lp = polyloop::EventLoop::new().unwrap();
    let mut handles = Vec::with_capacity(IDLE);
    let grown = lp
        .run_until_complete(async {
            let before = live();
            for _ in 0..IDLE {
                handles.push(polyloop::spawn(std::future::pending::<()>()));
            }
            for _ in 0..4 {
                polyloop::yield_now().await;
            }
            live() - before
        })
        .unwrap();
    drop(handles);
    lp.close().unwrap();
    grown
}

fn tokio_idle() -> isize {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut handles = Vec::with_capacity(IDLE);
    let grown = rt.block_on(async {
        let before = live();
        for _ in 0..IDLE {
            handles.push(tokio::spawn(std::future::pending::<()>()));
        }
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        live() - before
    });
    for h in &handles {
        h.abort();
    }
    drop(handles);
    drop(rt);
    grown
}

fn smol_idle() -> isize {
    let ex = async_executor::LocalExecutor::new();
    let mut handles = Vec::with_capacity(IDLE);
    let grown = async_io::block_on(ex.run(async {
        let before = live();
        for _ in 0..IDLE {
            handles.push(ex.spawn(std::future::pending::<()>()));
        }
        for _ in 0..4 {
            futures_lite::future::yield_now().await;
        }
        live() - before
    }));
    drop(handles);
    drop(ex);
    grown
}

/// Spawns and joins `LONG` tasks on this thread's loop, `BATCH` at a time.
fn long_run() {
    polyloop::block_on(async {
        for _ in 0..LONG / BATCH {
            let tasks: Vec<_> = (0..BATCH).map(|i| polyloop::spawn(async move { i })).collect();
            for t in tasks {
                t.await;
            }
        }
    });
}

fn main() {
    per_task("polyloop", polyloop_idle());
    per_task("tokio/current_thread", tokio_idle());
    per_task("smol/local_executor", smol_idle());

    // Warm up: the loop, the reactor and the batch vector exist before the baseline.
    polyloop::block_on(async {
        let tasks: Vec<_> = (0..BATCH).map(|i| polyloop::spawn(async move { i })).collect();
        for t in tasks {
            t.await;
        }
    });
    let (rss0, heap0) = (rss_kib(), live());
    long_run();
    let (rss1, heap1) = (rss_kib(), live());
    long_run();
    let (rss2, heap2) = (rss_kib(), live());
    println!(
        "memory/long_run/polyloop {}M tasks: RSS {rss0} -> {rss1} -> {rss2} KiB, \
         live heap {heap0} -> {heap1} -> {heap2} bytes (before, after one run, after two)",
        LONG / 1_000_000
    );
}
