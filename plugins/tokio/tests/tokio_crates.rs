//! tokio and crates built on it, inside polyloop tasks under the "tokio" policy: time,
//! net (an echo server with 100 clients), spawning across both, and a hyper 1 server
//! and client on tokio's I/O. The same workload under the default policy shows tokio's
//! panic. Loopback only.

#[path = "../../../tests/plugin_support/mod.rs"]
mod support;
#[path = "../../../tests/plugin_support/thread_limit.rs"]
mod thread_limit;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use polyloop::{EventLoop, EventLoopPolicy};
use polyloop_tokio::{TokioLoopBuilder, TokioPolicy};
use support::{is_child, run_child, start_process_threads, thread_count, watchdog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Runs `fut` on a fresh loop of `policy`, closes the loop, under the watchdog.
fn run_on<T: Send + 'static>(
    what: &'static str,
    make: impl FnOnce() -> EventLoop + Send + 'static,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    watchdog(what, move || {
        let lp = make();
        let out = lp.run_until_complete(fut);
        lp.close().unwrap();
        out.unwrap()
    })
}

fn tokio_loop() -> EventLoop {
    TokioPolicy::with_workers(0).new_event_loop().unwrap()
}

fn tokio_pool_loop() -> EventLoop {
    TokioPolicy::with_workers(2).new_event_loop().unwrap()
}

#[test]
fn registered_as_tokio() {
    let plugin = polyloop::plugin::find("tokio").unwrap();
    assert_eq!((plugin.create)().name(), "tokio");
    assert!(polyloop::plugin::plugins().iter().any(|p| p.name == "tokio"));
}

#[polyloop::policy_test(policy = "tokio")]
async fn policy_test_macro_runs_inside_tokio() {
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(tokio::runtime::Handle::try_current().is_ok());
}

#[test]
fn sleep_and_timeout() {
    for make in [tokio_loop as fn() -> EventLoop, tokio_pool_loop] {
        run_on("sleep_and_timeout", make, async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let quick = tokio::time::timeout(Duration::from_secs(30), async { 7 }).await;
            assert_eq!(quick, Ok(7));
            let slow =
                tokio::time::timeout(Duration::from_millis(5), std::future::pending::<()>()).await;
            assert!(slow.is_err(), "a pending future times out");
            // From a polyloop task on whichever thread runs it.
            let inner = polyloop::spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                tokio::time::timeout(Duration::from_secs(30), async { "in a task" }).await
            });
            assert_eq!(inner.await, Ok("in a task"));
        });
    }
}

/// 100 clients, each sends its number 10 times through an echo server and reads it back.
async fn echo_workload() -> usize {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = polyloop::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            polyloop::spawn(async move {
                let mut buf = [0u8; 64];
                loop {
                    let n = conn.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    conn.write_all(&buf[..n]).await.unwrap();
                }
            })
            .detach();
        }
    });
    let clients: Vec<_> = (0..100u32)
        .map(|i| {
            polyloop::spawn(async move {
                let mut conn = TcpStream::connect(addr).await.unwrap();
                let msg = i.to_be_bytes();
                for _ in 0..10 {
                    conn.write_all(&msg).await.unwrap();
                    let mut back = [0u8; 4];
                    conn.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, msg);
                }
                1
            })
        })
        .collect();
    let mut done = 0;
    for c in clients {
        done += c.await;
    }
    drop(server); // cancels the accept loop
    done
}

#[test]
fn net_echo_server_with_100_clients() {
    assert_eq!(run_on("echo", tokio_loop, echo_workload()), 100);
    assert_eq!(run_on("echo on a pool", tokio_pool_loop, echo_workload()), 100);
}

#[test]
fn tokio_spawn_from_polyloop_and_polyloop_spawn_from_tokio() {
    run_on("cross spawn", tokio_pool_loop, async {
        let lp = polyloop::get_running_loop().unwrap();
        // tokio::spawn from a polyloop task (on the loop's thread or a worker).
        let from_task = polyloop::spawn(async {
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                std::thread::current().name().map(String::from)
            })
            .await
            .unwrap()
        })
        .await;
        assert_eq!(from_task.as_deref(), Some("polyloop-tokio"), "tokio runs it on its thread");

        // A polyloop spawn from a tokio task, through the loop's handle; the task runs
        // on polyloop's threads, still inside the runtime context.
        let on_polyloop = tokio::spawn(async move {
            lp.spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let name = std::thread::current().name().map(String::from).unwrap_or_default();
                (name, tokio::runtime::Handle::try_current().is_ok())
            })
            .await
        })
        .await
        .unwrap();
        assert_ne!(on_polyloop.0, "polyloop-tokio", "polyloop ran it, not tokio");
        assert!(on_polyloop.1);

        // tokio::sync between the two.
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        for i in 0..4 {
            let tx = tx.clone();
            if i % 2 == 0 {
                polyloop::spawn(async move { tx.send(i).await.unwrap() }).detach();
            } else {
                tokio::spawn(async move { tx.send(i).await.unwrap() });
            }
        }
        drop(tx);
        let mut got = Vec::new();
        while let Some(i) = rx.recv().await {
            got.push(i);
        }
        got.sort();
        assert_eq!(got, [0, 1, 2, 3]);
    });
}

/// A hyper 1 HTTP/1 server and 20 client requests, both on tokio's I/O.
async fn hyper_workload() -> Vec<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = polyloop::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            polyloop::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let body = format!("hello {}", req.uri().path());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), service)
                    .await
                    .unwrap();
            })
            .detach();
        }
    });
    let clients: Vec<_> = (0..20)
        .map(|i| {
            polyloop::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
                polyloop::spawn(async move { conn.await.unwrap() }).detach();
                let req = Request::get(format!("/{i}"))
                    .header("host", "localhost")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8(body.to_vec()).unwrap()
            })
        })
        .collect();
    let mut out = Vec::new();
    for c in clients {
        out.push(c.await);
    }
    drop(server);
    out
}

#[test]
fn hyper_server_and_client_on_tokio_io() {
    let expected: Vec<String> = (0..20).map(|i| format!("hello /{i}")).collect();
    assert_eq!(run_on("hyper", tokio_loop, hyper_workload()), expected);
    assert_eq!(run_on("hyper on a pool", tokio_pool_loop, hyper_workload()), expected);
}

/// The same workloads on a default loop: tokio's first call panics with its message,
/// and the panic reaches whoever awaits the task.
#[test]
fn without_the_policy_tokio_panics_with_its_message() {
    type Start = fn() -> polyloop::Task<()>;
    let cases: [(&str, Start); 3] = [
        ("sleep", || polyloop::spawn(async { tokio::time::sleep(Duration::from_millis(1)).await })),
        ("echo", || polyloop::spawn(async { assert_eq!(echo_workload().await, 100) })),
        ("hyper", || polyloop::spawn(async { assert_eq!(hyper_workload().await.len(), 20) })),
    ];
    for (what, start) in cases {
        let msg = watchdog("default policy", move || {
            let lp = EventLoop::new().unwrap();
            // Spawned from inside the loop: polyloop::spawn needs a running loop.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                lp.run_until_complete(async move { start().await }).unwrap()
            }));
            lp.close().unwrap();
            let panic = out.expect_err("tokio panics outside a runtime");
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        assert!(
            msg.contains("must be called from the context of a Tokio 1.x runtime"),
            "{what}: {msg}"
        );
    }
}

#[test]
fn worker_threads_poll_inside_the_runtime() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    run_on("workers", tokio_pool_loop, async move {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let seen = seen2.clone();
                polyloop::spawn(async move {
                    tokio::task::yield_now().await;
                    let name = std::thread::current().name().map(String::from).unwrap_or_default();
                    let ok = tokio::runtime::Handle::try_current().is_ok();
                    seen.lock().unwrap().push((name, ok));
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 200);
    assert!(seen.iter().all(|(_, ok)| *ok), "every poll is inside the runtime: {seen:?}");
}

#[test]
fn builder_settings_and_bad_input() {
    let lp = TokioLoopBuilder::new()
        .workers(1)
        .tokio_threads(2)
        .shutdown_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    lp.close().unwrap();
    let zero = std::panic::catch_unwind(|| TokioLoopBuilder::new().tokio_threads(0)).unwrap_err();
    let msg = zero.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default();
    assert!(msg.contains("tokio_threads(0)") && msg.contains("at least 1"), "{msg}");
}

#[test]
fn workers_come_from_the_options_else_none() {
    let policy = TokioPolicy::new();
    let four = polyloop::plugin::PolicyOptions { workers: Some(4), debug: None };
    assert_eq!(polyloop::plugin::with_options(four, || policy.workers()).unwrap(), 4);
    assert_eq!(TokioPolicy::with_workers(3).workers().unwrap(), 3);
    if std::env::var_os("POLYLOOP_WORKERS").is_none() {
        assert_eq!(policy.workers().unwrap(), 0, "no workers unless asked for");
    }
}

// Issue 11, item 8: a worker count given in code had no bound: 2^40 workers aborted the
// process on a huge allocation and usize::MAX panicked with "capacity overflow". In a
// child process, so that an abort cannot take this test binary down with it.

/// The error for a worker count above the bound.
fn too_many(n: usize) -> String {
    format!(
        "a pool of {n} worker threads was asked for; at most 1024 are allowed \
         (polyloop::plugin::MAX_WORKERS)"
    )
}

#[test]
fn huge_worker_counts_are_a_clear_error() {
    run_child("child_huge_worker_counts", &[]);
    for value in ["1025", "1000000000000", "18446744073709551615"] {
        run_child("child_huge_workers_env", &[("POLYLOOP_WORKERS", value)]);
    }
}

#[test]
#[ignore = "run by huge_worker_counts_are_a_clear_error in a child process"]
fn child_huge_worker_counts() {
    if !is_child() {
        return;
    }
    start_process_threads();
    let before = thread_count();
    for n in [usize::MAX, 1 << 40, 1025] {
        let err = TokioPolicy::with_workers(n).new_event_loop().unwrap_err();
        assert_eq!(err.to_string(), too_many(n), "with_workers({n})");
        assert_eq!(TokioPolicy::with_workers(n).workers().unwrap_err().to_string(), too_many(n));
        let err = TokioLoopBuilder::new().workers(n).build().unwrap_err();
        assert_eq!(err.to_string(), too_many(n), "TokioLoopBuilder::workers({n})");
        let options = polyloop::plugin::PolicyOptions { workers: Some(n), debug: None };
        let err = polyloop::plugin::with_options(options, || {
            TokioPolicy::new().new_event_loop().unwrap_err()
        });
        assert_eq!(err.to_string(), too_many(n), "PolicyOptions {{ workers: Some({n}) }}");
    }
    assert_eq!(thread_count(), before, "no thread is started for a refused loop");
}

#[test]
#[ignore = "run by huge_worker_counts_are_a_clear_error in a child process"]
fn child_huge_workers_env() {
    if !is_child() {
        return;
    }
    let value = std::env::var("POLYLOOP_WORKERS").unwrap();
    let err = TokioPolicy::new().new_event_loop().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "POLYLOOP_WORKERS={value:?} is not valid; expected a whole number of worker \
             threads from 1 to 1024 (polyloop::plugin::MAX_WORKERS)"
        )
    );
}

// Issue 11, item 8: a worker thread that the system refused to start was a panic.

/// Root ignores `RLIMIT_NPROC`, and tests often run as root: then the child runs as a
/// user id that no process uses, so that its own threads are all the limit counts.
#[test]
fn a_worker_that_cannot_start_is_an_error_and_the_started_threads_are_joined() {
    use std::os::unix::process::CommandExt;
    let as_root = rustix::process::geteuid().is_root();
    let uid = thread_limit::unused_uid(47_201);
    support::run_child_with("child_worker_cannot_start", &[], |cmd| {
        if as_root {
            cmd.uid(uid).gid(uid);
        }
    });
}

#[test]
#[ignore = "run by a_worker_that_cannot_start_is_an_error_and_the_started_threads_are_joined"]
fn child_worker_cannot_start() {
    if !is_child() {
        return;
    }
    assert!(!rustix::process::geteuid().is_root(), "root is not held to RLIMIT_NPROC");
    start_process_threads();
    let before = thread_count();
    let policy = TokioPolicy::with_workers(8);
    // One thread for tokio's runtime and two workers start; the third worker cannot.
    let err = thread_limit::with_thread_limit(3, || policy.new_event_loop()).unwrap_err();
    let text = err.to_string();
    assert!(err.is_thread_start(), "{text}");
    assert!(text.starts_with("could not start worker thread 2 of 8 for event loop #"), "{text}");
    assert!(text.contains("ulimit -u"), "the message says what to change: {text}");
    support::eventually("the threads that started are joined", || thread_count() == before);
    // Not even tokio's own thread can start.
    let err = thread_limit::with_thread_limit(0, || policy.new_event_loop()).unwrap_err();
    let text = err.to_string();
    assert!(err.is_thread_start(), "{text}");
    assert!(
        text.starts_with("could not start a thread of the tokio runtime for a new event loop"),
        "{text}"
    );
    assert_eq!(thread_count(), before, "no thread of the refused loop remains");
    // With the limit lifted, the same policy makes loops again.
    let lp = policy.new_event_loop().unwrap();
    assert!(thread_count() >= before + 9, "8 workers and tokio's thread");
    lp.close().unwrap();
    support::eventually("close() joins every thread", || thread_count() == before);
}
