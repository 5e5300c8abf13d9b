//! What `close()` of a tokio loop does, and children of both runtimes in one process.
//!
//! Without the test harness: the cases count the threads and fds of the process and
//! start children, so they run one after another, alone; at the end the binary fails
//! if a child, a thread or an fd was left behind.
//!
//! tokio keeps a little process-wide state, made by the first runtime with a signal
//! driver and kept until the process ends (a socket pair that carries signals to
//! every runtime): a throwaway runtime makes it before the baseline is taken.

#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polyloop::EventLoopPolicy;
use polyloop_tokio::{TokioLoopBuilder, TokioPolicy};
use support::{eventually, start_process_threads, thread_count, thread_names, watchdog};

fn main() {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    start_process_threads();
    let (threads, files) = (thread_count(), fds());
    let cases: &[(&str, fn())] = &[
        (
            "close_drops_polyloop_tasks_then_tokio_tasks",
            close_drops_polyloop_tasks_then_tokio_tasks,
        ),
        ("close_returns_threads_and_fds_to_baseline", close_returns_threads_and_fds_to_baseline),
        (
            "close_waits_a_bounded_time_for_blocking_tasks",
            close_waits_a_bounded_time_for_blocking_tasks,
        ),
        ("close_from_a_tokio_task", close_from_a_tokio_task),
        (
            "a_loop_dropped_without_close_ends_its_threads_and_tasks",
            a_loop_dropped_without_close_ends_its_threads_and_tasks,
        ),
        ("block_on_under_the_installed_policy", block_on_under_the_installed_policy),
        (
            "children_of_tokio_and_polyloop_keep_their_statuses",
            children_of_both_keep_their_statuses,
        ),
    ];
    run_cases(cases);
    eventually("every thread a case started has ended", || thread_count() == threads);
    // polyloop's process-wide pidfd watcher keeps one epoll for its children's pidfds.
    let left: Vec<String> = fds().difference(&files).cloned().collect();
    let pidfd_set = |fd: &String| fd.ends_with(" anon_inode:[eventpoll]");
    assert!(left.len() <= 1 && left.iter().all(pidfd_set), "fds left open: {left:?}");
    assert_eq!(children(), Vec::<String>::new(), "a child process remains");
    println!("\ntest result: ok. {} passed", cases.len());
}

/// Runs the cases one after another, a line per case as the harness prints; exits 1
/// if any case panicked.
fn run_cases(cases: &[(&str, fn())]) {
    println!("\nrunning {} tests", cases.len());
    let mut failed = Vec::new();
    for (name, case) in cases {
        let ok = std::panic::catch_unwind(case).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures: {failed:?}");
        std::process::exit(1);
    }
}

/// The open fds of this process and what they point at.
fn fds() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten().collect::<Vec<_>>() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let target = target.to_string_lossy().into_owned();
            // The handle of this very listing.
            if target != format!("/proc/{}/fd", std::process::id()) {
                out.insert(format!("{} {target}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// Child processes of this process, alive or zombie.
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else { continue };
        // "pid (comm) S ppid ...": the name may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        if rest.split_whitespace().nth(1) == Some(&me) {
            out.push(stat);
        }
    }
    out
}

/// Records, when dropped, its name and whether it was dropped inside a tokio context.
struct Witness(&'static str, Arc<Mutex<Vec<(&'static str, bool)>>>);

impl Drop for Witness {
    fn drop(&mut self) {
        let in_context = tokio::runtime::Handle::try_current().is_ok();
        self.1.lock().unwrap().push((self.0, in_context));
    }
}

fn close_drops_polyloop_tasks_then_tokio_tasks() {
    watchdog("close order", || {
        let log = Arc::new(Mutex::new(Vec::new()));
        let lp = TokioPolicy::with_workers(1).new_event_loop().unwrap();
        let (l1, l2) = (log.clone(), log.clone());
        lp.run_until_complete(async move {
            let w = Witness("polyloop task", l1);
            polyloop::spawn(async move {
                let _w = w;
                std::future::pending::<()>().await
            })
            .detach();
            let w = Witness("tokio task", l2);
            tokio::spawn(async move {
                let _w = w;
                std::future::pending::<()>().await
            });
            tokio::task::yield_now().await;
        })
        .unwrap();
        lp.close().unwrap();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[0], ("polyloop task", true), "polyloop's tasks go first, in the context");
        assert_eq!(log[1].0, "tokio task");
    });
}

fn close_returns_threads_and_fds_to_baseline() {
    watchdog("baseline", || {
        start_process_threads();
        let (threads, files) = (thread_count(), fds());
        for workers in [0, 3] {
            let lp = TokioLoopBuilder::new().workers(workers).tokio_threads(2).build().unwrap();
            lp.run_until_complete(async {
                // Sockets, timers, a blocking task and tasks still pending at close.
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let accept = polyloop::spawn(async move { listener.accept().await.map(|_| ()) });
                let _conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                accept.await.unwrap();
                tokio::task::spawn_blocking(|| 1).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
                let idle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                polyloop::spawn(async move {
                    let _ = idle.accept().await;
                })
                .detach();
                tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
            })
            .unwrap();
            assert!(thread_count() > threads, "the loop runs threads of its own");
            lp.close().unwrap();
            eventually("close() ends every thread of the loop", || thread_count() == threads);
            assert_eq!(fds(), files, "close() closes every fd of the loop ({workers} workers)");
        }
        let names = thread_names();
        assert!(!names.iter().any(|n| n.starts_with("polyloop-tokio")), "{names:?}");
    });
}

fn close_waits_a_bounded_time_for_blocking_tasks() {
    watchdog("bounded wait", || {
        start_process_threads();
        let threads = thread_count();
        let release = Arc::new(std::sync::Barrier::new(2));
        let lp =
            TokioLoopBuilder::new().shutdown_timeout(Duration::from_millis(50)).build().unwrap();
        let gate = release.clone();
        lp.run_until_complete(async move {
            let (started_tx, started_rx) = tokio::sync::oneshot::channel();
            tokio::task::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                gate.wait();
            });
            started_rx.await.unwrap();
        })
        .unwrap();
        // The blocking task never ends by itself: close() returns after the timeout
        // rather than waiting for it.
        lp.close().unwrap();
        assert!(lp.is_closed());
        release.wait();
        eventually("the blocking thread ends once its task does", || thread_count() == threads);
    });
}

fn close_from_a_tokio_task() {
    watchdog("close from tokio", || {
        start_process_threads();
        let threads = thread_count();
        let lp = TokioPolicy::with_workers(0).new_event_loop().unwrap();
        let runtime = lp.run_until_complete(async { tokio::runtime::Handle::current() }).unwrap();
        // A task that tokio runs closes the idle loop: its runtime cannot wait for the
        // thread the task is on, so it is shut down in the background.
        let (tx, rx) = std::sync::mpsc::channel();
        let closer = lp.clone();
        runtime.spawn(async move {
            tx.send(closer.close()).unwrap();
        });
        drop(runtime);
        rx.recv().unwrap().unwrap();
        assert!(lp.is_closed());
        eventually("tokio's threads end by themselves", || thread_count() == threads);
    });
}

// Issue 11, item 3: the workers held handles of their loop, so a loop with workers that
// was dropped without close() never closed; its workers, tokio's threads and its
// pending tasks stayed until the process ended.
fn a_loop_dropped_without_close_ends_its_threads_and_tasks() {
    watchdog("drop without close", || {
        start_process_threads();
        let threads = thread_count();
        for workers in [0, 3] {
            let log = Arc::new(Mutex::new(Vec::new()));
            let lp = TokioPolicy::with_workers(workers).new_event_loop().unwrap();
            let l = log.clone();
            lp.run_until_complete(async move {
                let w = Witness("pending task", l);
                polyloop::spawn(async move {
                    let _w = w;
                    std::future::pending::<()>().await
                })
                .detach();
                tokio::time::sleep(Duration::from_millis(1)).await;
            })
            .unwrap();
            assert!(thread_count() > threads, "the loop runs threads of its own");
            drop(lp);
            eventually("dropping the last handle ends every thread of the loop", || {
                thread_count() == threads
            });
            let log = log.lock().unwrap();
            assert_eq!(log.len(), 1, "the pending task is dropped ({workers} workers)");
            assert_eq!(log[0], ("pending task", true), "inside the runtime's context");
        }
    });
}

fn block_on_under_the_installed_policy() {
    watchdog("block_on", || {
        let policy = polyloop::plugin::install("tokio").unwrap();
        assert_eq!(policy.name(), "tokio");
        // block_on makes this thread's loop through the policy, and runs inside it.
        let out = polyloop::block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::spawn(async { "from tokio" }).await.unwrap()
        });
        assert_eq!(out, "from tokio");
        let lp = polyloop::get_event_loop().unwrap();
        polyloop::set_event_loop(None).unwrap();
        lp.close().unwrap();
        polyloop::set_event_loop_policy(None);
    });
}

fn children_of_both_keep_their_statuses() {
    watchdog("children", || {
        let lp = TokioPolicy::with_workers(1).new_event_loop().unwrap();
        lp.run_until_complete(async {
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for i in 0..20 {
                let code = i % 7;
                let script = format!("sleep 0.0{}; exit {code}", i % 3);
                ours.push(polyloop::spawn({
                    let script = script.clone();
                    async move {
                        let status = polyloop::process::Command::new("sh")
                            .arg("-c")
                            .arg(script)
                            .status()
                            .await
                            .unwrap();
                        (code, status.code())
                    }
                }));
                theirs.push(tokio::spawn(async move {
                    let status = tokio::process::Command::new("sh")
                        .arg("-c")
                        .arg(script)
                        .status()
                        .await
                        .unwrap();
                    (code + 100, status.code().map(|c| c + 100))
                }));
            }
            for t in ours {
                let (want, got) = t.await;
                assert_eq!(got, Some(want), "a polyloop child's status");
            }
            for t in theirs {
                let (want, got) = t.await.unwrap();
                assert_eq!(got, Some(want), "a tokio child's status");
            }
        })
        .unwrap();
        lp.close().unwrap();
    });
}
