//! What the `tokio` policy's runner context costs: the same workloads on a default
//! loop and on a tokio-policy loop (no workers on either), in one run.
//!
//! `cargo bench --bench tokio_context`. `poll` is 100 tasks that each yield 100 times
//! (10,000 task polls per iteration): the context is entered once per run, so a poll
//! should cost the same. `run_ready` is one `run_until_complete` of a ready future:
//! what entering the context costs per run (`empty_context`: a loop whose runner
//! context does nothing but run the work, the core's share of that cost).

// criterion_group! makes an undocumented pub fn.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use polyloop::{EventLoop, EventLoopPolicy};
use polyloop_tokio::TokioPolicy;

const TASKS: u64 = 100;
const YIELDS: u64 = 100;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

fn loops() -> [(&'static str, EventLoop); 2] {
    [
        ("default", EventLoop::new().unwrap()),
        ("tokio", TokioPolicy::with_workers(0).new_event_loop().unwrap()),
    ]
}

async fn yields() {
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            polyloop::spawn(async {
                for _ in 0..YIELDS {
                    futures_lite::future::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("tokio_context/poll");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(TASKS * (YIELDS + 1)));
    for (name, lp) in loops() {
        g.bench_function(name, |b| b.iter(|| lp.run_until_complete(yields()).unwrap()));
        lp.close().unwrap();
    }
    g.finish();

    let mut g = c.benchmark_group("tokio_context/run_ready");
    g.throughput(Throughput::Elements(1));
    // The core's part alone: a runner context that only runs the work.
    let empty = EventLoop::builder().runner_context(|run| run()).build().unwrap();
    let [default, tokio] = loops();
    for (name, lp) in [default, ("empty_context", empty), tokio] {
        g.bench_function(name, |b| b.iter(|| lp.run_until_complete(async { 1 }).unwrap()));
        lp.close().unwrap();
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
