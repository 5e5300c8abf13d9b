//! The executor rows of BENCHMARKS.md: the same workloads on polyloop, tokio and smol
//! (async-executor / async-io), in one run.
//!
//! `cargo bench --bench runtime`; `benches/table.py` turns the results into a table.
//! BENCHMARKS.md comes from `benches/compare.rs`, which interleaves repetitions;
//! criterion here is for quick looks at one row.

// criterion_group! makes an undocumented pub fn.
#![allow(missing_docs)]

use std::future::{Future, ready};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group};
use criterion::{criterion_main, measurement::WallTime};
use polyloop::EventLoop;

/// Tasks per spawn+join iteration.
const SPAWN: u64 = 200_000;
/// Tasks and yields per task in the yield storm.
const YIELD_TASKS: u64 = 4;
const YIELDS: u64 = 500_000;
/// Round trips per ping-pong iteration.
const PINGS_LOCAL: u64 = 100_000;
const PINGS_THREADS: u64 = 20_000;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(elements));
    g
}

fn tokio_current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn tokio_multi(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// A polyloop loop with two worker threads lent to it, as the threadpool policy does.
struct Pool {
    lp: EventLoop,
    stop: async_channel::Sender<()>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl Pool {
    fn new(workers: usize) -> Pool {
        let lp = EventLoop::new().unwrap();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let workers = (0..workers)
            .map(|_| {
                let (lp, stopped) = (lp.clone(), stopped.clone());
                thread::spawn(move || {
                    let _ = lp.run_worker(async move { stopped.recv().await.ok() });
                })
            })
            .collect();
        Pool { lp, stop, workers }
    }

    fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        self.lp.run_until_complete(fut).unwrap()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.close();
        for w in self.workers.drain(..) {
            w.join().unwrap();
        }
        let _ = self.lp.close();
    }
}

/// An async-executor `Executor` with two threads running it, as smol sets one up.
struct SmolPool {
    ex: Arc<async_executor::Executor<'static>>,
    stop: async_channel::Sender<()>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl SmolPool {
    fn new(workers: usize) -> SmolPool {
        let ex = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let workers = (0..workers)
            .map(|_| {
                let (ex, stopped) = (ex.clone(), stopped.clone());
                thread::spawn(move || {
                    async_io::block_on(ex.run(async move { stopped.recv().await.ok() }));
                })
            })
            .collect();
        SmolPool { ex, stop, workers }
    }
}

impl Drop for SmolPool {
    fn drop(&mut self) {
        self.stop.close();
        for w in self.workers.drain(..) {
            w.join().unwrap();
        }
    }
}

fn spawn_join(c: &mut Criterion) {
    let mut g = group(c, "spawn_join", SPAWN);
    g.bench_function("polyloop/single", |b| {
        b.iter(|| {
            polyloop::block_on(async {
                let tasks: Vec<_> = (0..SPAWN).map(|_| polyloop::spawn(async {})).collect();
                for t in tasks {
                    t.await;
                }
            })
        })
    });
    {
        let pool = Pool::new(2);
        g.bench_function("polyloop/pool2", |b| {
            b.iter(|| {
                pool.run(async {
                    let tasks: Vec<_> = (0..SPAWN).map(|_| polyloop::spawn(async {})).collect();
                    for t in tasks {
                        t.await;
                    }
                })
            })
        });
    }
    {
        let rt = tokio_current();
        g.bench_function("tokio/current_thread", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..SPAWN).map(|_| tokio::spawn(async {})).collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
    }
    {
        let rt = tokio_multi(2);
        g.bench_function("tokio/multi_thread2", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..SPAWN).map(|_| tokio::spawn(async {})).collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
    }
    {
        let ex = async_executor::LocalExecutor::new();
        g.bench_function("smol/local_executor", |b| {
            b.iter(|| {
                async_io::block_on(ex.run(async {
                    let tasks: Vec<_> = (0..SPAWN).map(|_| ex.spawn(async {})).collect();
                    for t in tasks {
                        t.await;
                    }
                }))
            })
        });
    }
    {
        let pool = SmolPool::new(2);
        let ex = &pool.ex;
        g.bench_function("smol/executor2", |b| {
            b.iter(|| {
                async_io::block_on(ex.run(async {
                    let tasks: Vec<_> = (0..SPAWN).map(|_| ex.spawn(async {})).collect();
                    for t in tasks {
                        t.await;
                    }
                }))
            })
        });
    }
    g.finish();
}

fn yield_storm(c: &mut Criterion) {
    let mut g = group(c, "yield", YIELD_TASKS * YIELDS);
    g.bench_function("polyloop/single", |b| {
        b.iter(|| {
            polyloop::block_on(async {
                let tasks: Vec<_> = (0..YIELD_TASKS)
                    .map(|_| {
                        polyloop::spawn(async {
                            for _ in 0..YIELDS {
                                polyloop::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
            })
        })
    });
    {
        let rt = tokio_current();
        g.bench_function("tokio/current_thread", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..YIELD_TASKS)
                        .map(|_| {
                            tokio::spawn(async {
                                for _ in 0..YIELDS {
                                    tokio::task::yield_now().await;
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
    }
    {
        let ex = async_executor::LocalExecutor::new();
        g.bench_function("smol/local_executor", |b| {
            b.iter(|| {
                async_io::block_on(ex.run(async {
                    let tasks: Vec<_> = (0..YIELD_TASKS)
                        .map(|_| {
                            ex.spawn(async {
                                for _ in 0..YIELDS {
                                    futures_lite::future::yield_now().await;
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await;
                    }
                }))
            })
        });
    }
    g.finish();
}

/// Sends `n` pings and waits for each pong.
async fn ping(n: u64, tx: async_channel::Sender<u64>, rx: async_channel::Receiver<u64>) {
    for i in 0..n {
        tx.send(i).await.unwrap();
        rx.recv().await.unwrap();
    }
}

/// Answers every ping.
async fn pong(tx: async_channel::Sender<u64>, rx: async_channel::Receiver<u64>) {
    while let Ok(i) = rx.recv().await {
        tx.send(i).await.unwrap();
    }
}

type Ends = (
    (async_channel::Sender<u64>, async_channel::Receiver<u64>),
    (async_channel::Sender<u64>, async_channel::Receiver<u64>),
);

fn pair() -> Ends {
    let (a_tx, a_rx) = async_channel::bounded(1);
    let (b_tx, b_rx) = async_channel::bounded(1);
    ((a_tx, b_rx), (b_tx, a_rx))
}

fn ping_pong_local(c: &mut Criterion) {
    let mut g = group(c, "ping_pong_local", PINGS_LOCAL);
    g.bench_function("polyloop/single", |b| {
        b.iter(|| {
            let ((tx, rx), (ptx, prx)) = pair();
            polyloop::block_on(async {
                let p = polyloop::spawn(pong(ptx, prx));
                let q = polyloop::spawn(ping(PINGS_LOCAL, tx, rx));
                q.await;
                p.await;
            })
        })
    });
    {
        let rt = tokio_current();
        g.bench_function("tokio/current_thread", |b| {
            b.iter(|| {
                let ((tx, rx), (ptx, prx)) = pair();
                rt.block_on(async {
                    let p = tokio::spawn(pong(ptx, prx));
                    let q = tokio::spawn(ping(PINGS_LOCAL, tx, rx));
                    q.await.unwrap();
                    p.await.unwrap();
                })
            })
        });
    }
    {
        let ex = async_executor::LocalExecutor::new();
        g.bench_function("smol/local_executor", |b| {
            b.iter(|| {
                let ((tx, rx), (ptx, prx)) = pair();
                async_io::block_on(ex.run(async {
                    let p = ex.spawn(pong(ptx, prx));
                    let q = ex.spawn(ping(PINGS_LOCAL, tx, rx));
                    q.await;
                    p.await;
                }))
            })
        });
    }
    g.finish();
}

/// Ping on this thread, pong on another: each side runs on its runtime's `block_on`.
fn across<B>(block_on: B)
where
    B: Fn(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) + Clone + Send + 'static,
{
    let ((tx, rx), (ptx, prx)) = pair();
    let other = block_on.clone();
    let t = thread::spawn(move || other(Box::pin(pong(ptx, prx))));
    block_on(Box::pin(ping(PINGS_THREADS, tx, rx)));
    t.join().unwrap();
}

fn ping_pong_threads(c: &mut Criterion) {
    let mut g = group(c, "ping_pong_threads", PINGS_THREADS);
    g.bench_function("polyloop/single", |b| b.iter(|| across(polyloop::block_on)));
    g.bench_function("tokio/current_thread", |b| {
        b.iter(|| across(|f| tokio_current().block_on(f)))
    });
    g.bench_function("smol/block_on", |b| b.iter(|| across(async_io::block_on)));
    g.finish();
}

fn block_on_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("block_on_ready");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(1));
    g.bench_function("polyloop", |b| b.iter(|| polyloop::block_on(ready(1u32))));
    let rt = tokio_current();
    g.bench_function("tokio/current_thread", |b| b.iter(|| rt.block_on(ready(1u32))));
    g.bench_function("smol/block_on", |b| b.iter(|| async_io::block_on(ready(1u32))));
    g.bench_function("futures_lite/block_on", |b| {
        b.iter(|| futures_lite::future::block_on(ready(1u32)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = spawn_join, yield_storm, ping_pong_local, ping_pong_threads, block_on_ready
}
criterion_main!(benches);
