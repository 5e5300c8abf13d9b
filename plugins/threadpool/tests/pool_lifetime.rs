//! Pool loops do not outlive their use (issue 11, item 3): a loop made implicitly for a
//! thread is closed when the thread exits, and a loop whose last handle is dropped
//! stops its workers and drops its tasks. Thread counts come back to where they were.
//!
//! Harness-less: the cases install policies process-wide and count the threads of the
//! process, so they run one after another, alone in this binary.

// The helpers are shared with the other plug-in crates and the root tests.
#[path = "../../../tests/plugin_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use polyloop::EventLoopPolicy;
use polyloop_threadpool::{ThreadPoolPolicy, new_pool_loop};
use support::{eventually, start_process_threads, thread_count, watchdog};

/// Counts drops of the tasks it is moved into.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drops {
    /// A task body that never finishes, counted when it is dropped.
    fn pending_task(&self) -> impl Future<Output = ()> + Send + 'static {
        let token = CountOnDrop(self.0.clone());
        async move {
            let _token = token;
            std::future::pending::<()>().await
        }
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Ten threads each call `block_on` once under the threadpool policy, leave a task
/// pending, and exit: their loops are closed, their workers joined, their tasks dropped.
fn implicit_loops_close_when_their_threads_exit() {
    let before = thread_count();
    polyloop::set_event_loop_policy(Some(Arc::new(ThreadPoolPolicy::with_workers(2))));
    let drops = Drops::default();
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let drops = drops.clone();
            thread::spawn(move || {
                polyloop::block_on(async move {
                    polyloop::spawn(drops.pending_task()).detach();
                    polyloop::yield_now().await;
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    polyloop::set_event_loop_policy(None);
    eventually("the 20 workers of the 10 exited threads' loops end", || thread_count() == before);
    assert_eq!(drops.count(), 10, "each exited thread's pending task is dropped");
}

/// Policies replaced while threads call `block_on`: the loops made for the old policies
/// do not pile up, and none is left once the threads exit.
fn policy_installs_while_threads_block_on_leave_no_workers() {
    const THREADS: usize = 4;
    const INSTALLS: usize = 200;
    let before = thread_count();
    let drops = Drops::default();
    let spawned = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    polyloop::set_event_loop_policy(Some(Arc::new(ThreadPoolPolicy::with_workers(1))));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (drops, spawned, done) = (drops.clone(), spawned.clone(), done.clone());
            thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let (drops, spawned) = (drops.clone(), spawned.clone());
                    polyloop::block_on(async move {
                        polyloop::spawn(drops.pending_task()).detach();
                        spawned.fetch_add(1, Ordering::SeqCst);
                        polyloop::yield_now().await;
                    });
                }
            })
        })
        .collect();
    for _ in 0..INSTALLS {
        polyloop::set_event_loop_policy(Some(Arc::new(ThreadPoolPolicy::with_workers(1))));
        thread::yield_now();
    }
    // Each thread keeps at most its current loop (one worker) while it lives, plus one
    // made for a policy that was replaced since its last `block_on`.
    // (Threads just joined may linger in /proc for a moment: hence `eventually`.)
    let bound = before + THREADS + 2 * THREADS;
    eventually("the loops of replaced policies are let go while the threads run", || {
        thread_count() <= bound
    });
    done.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    polyloop::set_event_loop_policy(None);
    eventually("every worker of every replaced policy's loop ends", || thread_count() == before);
    assert_eq!(drops.count(), spawned.load(Ordering::SeqCst), "every pending task is dropped");
}

/// A pool loop dropped without `close()` (from the policy, or `new_pool_loop`): its
/// workers stop and its pending tasks are dropped.
fn a_pool_loop_dropped_without_close_stops_its_workers() {
    let before = thread_count();
    let drops = Drops::default();
    let lp = ThreadPoolPolicy::with_workers(3).new_event_loop().unwrap();
    assert_eq!(thread_count(), before + 3);
    lp.spawn(drops.pending_task()).detach();
    lp.run_until_complete(polyloop::yield_now()).unwrap();
    drop(lp);
    eventually("the dropped loop's 3 workers end", || thread_count() == before);
    assert_eq!(drops.count(), 1, "the dropped loop's pending task is dropped");

    // A task that holds a clone of its loop keeps it open: the user's cycle. Dropping
    // every other handle leaves that one; `close()` is what breaks it.
    let lp = new_pool_loop(2).unwrap();
    let held = lp.clone();
    lp.spawn(async move {
        let _held = held;
        std::future::pending::<()>().await
    })
    .detach();
    let other = lp.clone();
    drop(lp);
    assert!(!other.is_closed(), "a loop with handles left stays open");
    other.close().unwrap();
    drop(other);
    eventually("close() joins the 2 workers", || thread_count() == before);

    // Many loops made and dropped: nothing accumulates.
    for _ in 0..50 {
        let lp = new_pool_loop(2).unwrap();
        lp.spawn(drops.pending_task()).detach();
    }
    eventually("the workers of 50 dropped loops end", || thread_count() == before);
    assert_eq!(drops.count(), 51);
}

/// A forked child that drops loops of its parent does not close them: their close
/// hooks belong to the parent, and a pool's would stop and join workers that do not
/// exist in the child.
fn a_pool_loop_inherited_through_fork_is_let_go_without_joining() {
    static HOOK_RAN: AtomicBool = AtomicBool::new(false);
    let pool = new_pool_loop(2).unwrap();
    let plain = polyloop::EventLoop::builder()
        .on_close(|_| HOOK_RAN.store(true, Ordering::SeqCst))
        .build()
        .unwrap();
    let before = thread_count();
    // SAFETY: the child installs a panic hook, drops two loop handles and leaves with
    // `_exit`; the parent holds no lock that those need while it forks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // A panic anywhere (joining a thread that is not there, say) fails the child.
        std::panic::set_hook(Box::new(|_| {
            // SAFETY: ends the child at once, running nothing inherited.
            unsafe { libc::_exit(2) }
        }));
        drop(pool);
        drop(plain);
        let code = if HOOK_RAN.load(Ordering::SeqCst) { 1 } else { 0 };
        // SAFETY: as above.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    eventually("the forked child drops the loops and exits", || {
        // SAFETY: `pid` is our child; `status` is a valid place for its status.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
    });
    assert!(libc::WIFEXITED(status), "the child ended with status {status:#x}");
    match libc::WEXITSTATUS(status) {
        0 => {}
        1 => panic!("the child ran a close hook of its parent's loop"),
        2 => panic!("the child panicked while dropping its parent's loops"),
        code => panic!("the child exited with {code}"),
    }
    // The parent's loops are untouched, and close when dropped here.
    assert_eq!(thread_count(), before);
    assert_eq!(pool.run_until_complete(async { polyloop::spawn(async { 7 }).await }).unwrap(), 7);
    drop((pool, plain));
    assert!(HOOK_RAN.load(Ordering::SeqCst), "in the parent, dropping the last handle closes");
    eventually("the parent's workers end", || thread_count() == before - 2);
}

/// On the main thread, the policy makes a loop on demand (`get_event_loop`); when the
/// policy is dropped, the thread lets go of that loop the next time it looks up its
/// loop, and a loop nobody else holds closes. Runs on the main thread itself.
fn main_thread_loops_of_replaced_policies_are_closed() {
    assert!(polyloop::is_main_thread());
    let before = thread_count();
    let drops = Drops::default();
    for _ in 0..50 {
        polyloop::set_event_loop_policy(Some(Arc::new(ThreadPoolPolicy::with_workers(1))));
        let lp = polyloop::get_event_loop().unwrap();
        lp.spawn(drops.pending_task()).detach();
    }
    // The current policy's loop, and its one worker, remain.
    eventually("the loops of the 49 replaced policies end", || thread_count() <= before + 1);
    eventually("their pending tasks are dropped", || drops.count() == 49);
    polyloop::get_event_loop().unwrap().close().unwrap();
    polyloop::set_event_loop_policy(None);
    eventually("the last loop's worker ends", || thread_count() == before);
}

fn main() {
    let cases: &[(&str, fn())] = &[
        (
            "implicit_loops_close_when_their_threads_exit",
            implicit_loops_close_when_their_threads_exit,
        ),
        (
            "policy_installs_while_threads_block_on_leave_no_workers",
            policy_installs_while_threads_block_on_leave_no_workers,
        ),
        (
            "a_pool_loop_dropped_without_close_stops_its_workers",
            a_pool_loop_dropped_without_close_stops_its_workers,
        ),
        (
            "a_pool_loop_inherited_through_fork_is_let_go_without_joining",
            a_pool_loop_inherited_through_fork_is_let_go_without_joining,
        ),
    ];
    start_process_threads();
    println!("\nrunning {} tests", cases.len() + 1);
    let mut failed = Vec::new();
    // On the main thread itself, where policies make loops on demand.
    let name = "main_thread_loops_of_replaced_policies_are_closed";
    let ok = std::panic::catch_unwind(main_thread_loops_of_replaced_policies_are_closed).is_ok();
    println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
    if !ok {
        failed.push(name);
    }
    for &(name, case) in cases {
        let ok = std::panic::catch_unwind(|| watchdog(name, case)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures: {failed:?}");
        std::process::exit(1);
    }
    println!("\ntest result: ok. {} passed", cases.len() + 1);
}
