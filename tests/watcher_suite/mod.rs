//! One conformance suite for every child watcher. Each `tests/watcher_<kind>.rs` is its
//! own test binary (`harness = false`) that runs these cases one after another on one
//! watcher kind, then checks that the process has no zombie children and no fd left
//! over. Sequential on purpose: the thread count and fd checks see only this suite, and
//! the fast watcher's `waitpid(-1)` cannot steal another test's child.

// The children are reaped by the watchers under test, never by `Child::wait`; the
// final check proves no zombie is left.
#![allow(dead_code, unreachable_pub, clippy::zombie_processes, clippy::type_complexity)]

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use polyloop::EventLoop;
use polyloop::process::{ChildWatchError, ChildWatcher};

/// Watchdog for one case: a hang fails the case instead of the run.
const WATCHDOG: Duration = Duration::from_secs(60);

/// The watcher kind under test.
pub struct Kit {
    pub name: &'static str,
    pub make: fn() -> Arc<dyn ChildWatcher>,
    /// Safe and fast: active only while attached to a loop.
    pub needs_loop: bool,
    /// Whether the thread count must stay flat with many children.
    pub flat_threads: bool,
}

type Case = (&'static str, fn(&Kit));

pub const CASES: &[Case] = &[
    ("exit_codes_0_1_255", exit_codes),
    ("handler_returncodes", handler_returncodes),
    ("death_by_sigkill_and_sigterm", death_by_signal),
    ("exit_before_handler_is_added", exit_before_handler),
    ("replace_handler", replace_handler),
    ("remove_handler", remove_handler),
    ("watch_replaced_by_handler_resolves_with_error", watch_replaced),
    ("unknown_and_invalid_pids", unknown_pids),
    ("close_then_use", close_then_use),
    ("attach_loop_none_and_back", attach_none_and_back),
    ("five_hundred_children_in_flight", five_hundred_children),
    ("thread_count_flat_with_200_children", thread_count),
    ("a_child_reaped_by_other_code_is_an_error_not_a_hang", reaped_elsewhere),
    ("a_panicking_waker_costs_no_other_child_its_status", panicking_waker),
];

/// Runs every case on `kit`, then the process-wide checks; exits non-zero on failure.
pub fn run(kit: Kit) {
    warm_up(&kit);
    let fds_before = open_fds();
    let mut passed = 0;
    let mut failed = Vec::new();
    println!("\nrunning {} tests ({} watcher)", CASES.len() + 2, kit.name);
    for (name, case) in CASES {
        match catch_unwind(AssertUnwindSafe(|| case(&kit))) {
            Ok(()) => {
                println!("test {}::{name} ... ok", kit.name);
                passed += 1;
            }
            Err(_) => {
                println!("test {}::{name} ... FAILED", kit.name);
                failed.push(*name);
            }
        }
    }
    let mut finals: Vec<(&str, Box<dyn Fn()>)> = vec![
        ("no_zombie_children_left", Box::new(assert_no_children)),
        ("no_fds_leaked", Box::new(move || assert_fds(&fds_before))),
    ];
    for (name, check) in finals.drain(..) {
        match catch_unwind(AssertUnwindSafe(check)) {
            Ok(()) => {
                println!("test {}::{name} ... ok", kit.name);
                passed += 1;
            }
            Err(_) => {
                println!("test {}::{name} ... FAILED", kit.name);
                failed.push(name);
            }
        }
    }
    let result = if failed.is_empty() { "ok" } else { "FAILED" };
    println!("\ntest result: {result}. {passed} passed; {} failed", failed.len());
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(101);
    }
}

/// Creates what lives for the whole process (the reactor and its thread) before the
/// fd and thread baselines are taken.
fn warm_up(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let child = sh("exit 0");
        w.watch(child.id()).await.unwrap();
        polyloop::sleep(Duration::from_millis(1)).await;
    });
}

/// Runs `body` with a fresh watcher attached to a fresh loop, under the watchdog; then
/// closes both.
pub fn with_watcher<F, Fut>(kit: &Kit, body: F)
where
    F: FnOnce(Arc<dyn ChildWatcher>) -> Fut,
    Fut: Future<Output = ()>,
{
    let w = (kit.make)();
    let lp = EventLoop::new().unwrap();
    w.attach_loop(Some(&lp));
    let out = lp.run_until_complete(polyloop::timeout(WATCHDOG, body(w.clone()))).unwrap();
    w.close();
    // Let the loop run what the close left (a last rescan) before it goes.
    lp.run_until_complete(polyloop::sleep(Duration::from_millis(1))).unwrap();
    w.attach_loop(None);
    lp.close().unwrap();
    out.unwrap_or_else(|e| panic!("{} watcher: watchdog fired: {e}", kit.name));
}

pub fn sh(script: &str) -> Child {
    Command::new("sh").arg("-c").arg(script).spawn().unwrap()
}

use crate::common::gated;

fn open_gate(child: &mut Child) {
    drop(child.stdin.take());
}

/// Collects `(pid, returncode)` from handlers.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<(&'static str, u32, i32)>>>);

impl Calls {
    pub fn handler(&self, tag: &'static str) -> Box<dyn FnOnce(u32, i32) + Send> {
        let calls = self.0.clone();
        Box::new(move |pid, code| calls.lock().unwrap().push((tag, pid, code)))
    }

    pub async fn wait_for(&self, n: usize) -> Vec<(&'static str, u32, i32)> {
        loop {
            {
                let c = self.0.lock().unwrap();
                if c.len() >= n {
                    return c.clone();
                }
            }
            polyloop::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn now(&self) -> Vec<(&'static str, u32, i32)> {
        self.0.lock().unwrap().clone()
    }
}

fn watch_error(err: &io::Error) -> &ChildWatchError {
    ChildWatchError::from_io(err).unwrap_or_else(|| panic!("not a ChildWatchError: {err:?}"))
}

fn exit_codes(kit: &Kit) {
    with_watcher(kit, |w| async move {
        for code in [0, 1, 255] {
            let child = sh(&format!("exit {code}"));
            let status = w.watch(child.id()).await.unwrap();
            assert_eq!(status.code(), Some(code), "{status:?}");
            assert_eq!(status.success(), code == 0);
        }
    });
}

fn handler_returncodes(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let calls = Calls::default();
        let mut pids = Vec::new();
        for code in [0, 1, 255] {
            let child = sh(&format!("exit {code}"));
            pids.push((child.id(), code));
            w.add_child_handler(child.id(), calls.handler("h"));
        }
        let mut got: Vec<(u32, i32)> =
            calls.wait_for(3).await.into_iter().map(|(_, p, c)| (p, c)).collect();
        got.sort();
        pids.sort();
        assert_eq!(got, pids);
    });
}

fn death_by_signal(kit: &Kit) {
    with_watcher(kit, |w| async move {
        for (sig, name) in [(9, "KILL"), (15, "TERM")] {
            let mut child = gated(0);
            let exit = w.watch(child.id());
            Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status()
                .unwrap();
            let status = exit.await.unwrap();
            assert_eq!(status.signal(), Some(sig), "{status:?}");
            assert_eq!(status.code(), None);
            open_gate(&mut child);

            let mut child = gated(0);
            let calls = Calls::default();
            w.add_child_handler(child.id(), calls.handler("h"));
            Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert_eq!(calls.wait_for(1).await, [("h", child.id(), -sig)]);
            open_gate(&mut child);
        }
    });
}

/// Waits (without reaping) until `pid` is a zombie, or gone (a watcher that needs no
/// loop may have reaped it already).
async fn until_exited(pid: u32) {
    loop {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return };
        let state = stat.rsplit(')').next().unwrap().split_whitespace().next().unwrap();
        if state == "Z" {
            return;
        }
        polyloop::sleep(Duration::from_millis(2)).await;
    }
}

fn exit_before_handler(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let child = sh("exit 42");
        until_exited(child.id()).await;
        assert_eq!(w.watch(child.id()).await.unwrap().code(), Some(42));

        let child = sh("exit 43");
        until_exited(child.id()).await;
        let calls = Calls::default();
        w.add_child_handler(child.id(), calls.handler("late"));
        assert_eq!(calls.wait_for(1).await, [("late", child.id(), 43)]);
    });
}

fn replace_handler(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let mut child = gated(5);
        let calls = Calls::default();
        w.add_child_handler(child.id(), calls.handler("first"));
        w.add_child_handler(child.id(), calls.handler("second"));
        open_gate(&mut child);
        assert_eq!(calls.wait_for(1).await, [("second", child.id(), 5)]);
        // Give a wrongly kept first handler the chance to show up.
        polyloop::sleep(Duration::from_millis(20)).await;
        assert_eq!(calls.now(), [("second", child.id(), 5)]);
    });
}

fn remove_handler(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let mut child = gated(6);
        let calls = Calls::default();
        assert!(!w.remove_child_handler(child.id()), "no handler yet");
        w.add_child_handler(child.id(), calls.handler("removed"));
        assert!(w.remove_child_handler(child.id()));
        assert!(!w.remove_child_handler(child.id()));
        open_gate(&mut child);
        // The child is still reaped, and its status kept for a later handler.
        assert_eq!(w.watch(child.id()).await.unwrap().code(), Some(6));
        assert!(calls.now().is_empty(), "a removed handler was called: {:?}", calls.now());
    });
}

fn watch_replaced(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let mut child = gated(7);
        let exit = w.watch(child.id());
        let calls = Calls::default();
        w.add_child_handler(child.id(), calls.handler("new"));
        let err = exit.await.unwrap_err();
        assert!(matches!(watch_error(&err), ChildWatchError::HandlerGone { .. }), "{err}");
        assert!(err.to_string().contains("was replaced or removed"), "{err}");
        open_gate(&mut child);
        assert_eq!(calls.wait_for(1).await, [("new", child.id(), 7)]);
    });
}

fn unknown_pids(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let err = w.watch(1).await.unwrap_err();
        assert!(watch_error(&err).is_not_child(), "{err}");
        assert!(err.to_string().contains("pid 1 is not a child of this process"), "{err}");
        assert!(err.to_string().contains("ECHILD"), "{err}");

        let err = w.watch(0).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().starts_with("pid 0 is not a child process"), "{err}");

        let err = w.watch(u32::MAX).await.unwrap_err();
        assert!(err.to_string().contains("pid 4294967295 is out of range"), "{err}");
        assert!(err.to_string().contains("as a signed number it is -1"), "{err}");

        let huge = i32::MAX as u32;
        let err = w.watch(huge).await.unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");

        // Reaped already, by someone else.
        let mut child = sh("exit 0");
        let pid = child.id();
        child.wait().unwrap();
        let err = w.watch(pid).await.unwrap_err();
        assert!(watch_error(&err).is_not_child(), "{err}");

        // A handler cannot get an error: asyncio's 255.
        let calls = Calls::default();
        w.add_child_handler(1, calls.handler("pid1"));
        assert_eq!(calls.wait_for(1).await, [("pid1", 1, 255)]);
    });
}

fn close_then_use(kit: &Kit) {
    let keep = Arc::new(Mutex::new(None));
    let keep2 = keep.clone();
    with_watcher(kit, |w| async move {
        let mut before = gated(8);
        let exit = w.watch(before.id());
        w.close();
        assert!(!w.is_active());
        w.close(); // twice is fine

        let child = sh("exit 0");
        let err = w.watch(child.id()).await.unwrap_err();
        assert!(matches!(watch_error(&err), ChildWatchError::Closed { .. }), "{err}");
        assert!(err.to_string().contains(&format!("the {} child watcher is closed", w.name())));
        let calls = Calls::default();
        w.add_child_handler(child.id(), calls.handler("closed"));
        assert_eq!(calls.wait_for(1).await, [("closed", child.id(), 255)]);
        *keep2.lock().unwrap() = Some(child);

        // A child watched before the close is still reaped and reported.
        open_gate(&mut before);
        assert_eq!(exit.await.unwrap().code(), Some(8));
    });
    // Reap the child the closed watcher refused, with a new one.
    let child = keep.lock().unwrap().take().unwrap();
    with_watcher(kit, |w| async move {
        assert_eq!(w.watch(child.id()).await.unwrap().code(), Some(0));
    });
}

fn attach_none_and_back(kit: &Kit) {
    let needs_loop = kit.needs_loop;
    with_watcher(kit, |w| async move {
        let lp = polyloop::get_running_loop().unwrap();
        w.attach_loop(None);
        assert_eq!(w.is_active(), !needs_loop, "is_active without a loop");
        let child = sh("exit 9");
        let exit = w.watch(child.id());
        until_exited(child.id()).await;
        w.attach_loop(Some(&lp));
        assert!(w.is_active());
        assert_eq!(exit.await.unwrap().code(), Some(9));
    });
}

fn five_hundred_children(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let mut exits = Vec::new();
        for i in 0..500 {
            let code = i % 256;
            let child = sh(&format!("exit {code}"));
            exits.push((code, w.watch(child.id())));
        }
        for (code, exit) in exits {
            assert_eq!(exit.await.unwrap().code(), Some(code));
        }
    });
}

/// Other code (a chained SIGCHLD handler, a library calling `waitpid`) reaps a
/// watched child first: the watcher reports `ECHILD`, within its documented bound,
/// never hangs. The reap is done blocking on the loop's thread, so that a watcher that
/// reaps on the loop cannot get there first; one that reaps elsewhere may win, and
/// then reports the status itself.
fn reaped_elsewhere(kit: &Kit) {
    with_watcher(kit, |w| async move {
        for round in 0..20 {
            let mut child = gated(3);
            let pid = child.id();
            let exit = w.watch(pid);
            open_gate(&mut child);
            let mut raw = 0;
            // SAFETY: a blocking waitpid for a child of ours, into a local status word.
            let reaped = unsafe { libc::waitpid(pid as i32, &mut raw, 0) } == pid as i32;
            match exit.await {
                Err(err) => {
                    assert!(reaped, "round {round}: an error, yet nobody else reaped: {err}");
                    assert!(watch_error(&err).is_not_child(), "round {round}: {err}");
                }
                Ok(status) => {
                    assert!(!reaped, "round {round}: a status that other code took: {status:?}");
                    assert_eq!(status.code(), Some(3));
                }
            }
        }
    });
}

/// A waker that panics when woken (a task with a bug, a broken executor).
struct PanickingWaker(Arc<AtomicUsize>);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a waker with a bug (this panic is part of the test)");
    }
}

/// Thirty children end together; every third one is awaited through a waker that
/// panics. The panic costs no other child its status, and the children whose wakers
/// panicked have theirs too.
fn panicking_waker(kit: &Kit) {
    with_watcher(kit, |w| async move {
        let (gate, open_all) = crate::common::pipe();
        let children: Vec<Child> = (0..30)
            .map(|i| {
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("read x; exit {i}"))
                    .stdin(Stdio::from(gate.try_clone().unwrap()))
                    .spawn()
                    .unwrap()
            })
            .collect();
        drop(gate);
        let panicked = Arc::new(AtomicUsize::new(0));
        let bad = Waker::from(Arc::new(PanickingWaker(panicked.clone())));
        let mut exits: Vec<_> = children.iter().map(|c| w.watch(c.id())).collect();
        for exit in exits.iter_mut().step_by(3) {
            let polled = Pin::new(exit).poll(&mut Context::from_waker(&bad));
            assert!(matches!(polled, Poll::Pending), "no child ended before its gate opened");
        }
        drop(open_all);
        for (i, exit) in exits.iter_mut().enumerate().filter(|(i, _)| i % 3 != 0) {
            let status = exit.await.unwrap_or_else(|e| panic!("child {i}: {e}"));
            assert_eq!(status.code(), Some(i as i32));
        }
        // Once their wakers were called, the others' statuses are there too.
        while panicked.load(Ordering::SeqCst) < 10 {
            polyloop::sleep(Duration::from_millis(2)).await;
        }
        for (i, exit) in exits.iter_mut().enumerate().step_by(3) {
            assert!(exit.is_ready(), "child {i}: woken, yet no status");
            assert_eq!(exit.await.unwrap().code(), Some(i as i32));
        }
    });
}

pub fn thread_count_now() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn thread_count(kit: &Kit) {
    let flat = kit.flat_threads;
    with_watcher(kit, |w| async move {
        let before = thread_count_now();
        let mut children: Vec<Child> = (0..200).map(|_| gated(0)).collect();
        let exits: Vec<_> = children.iter().map(|c| w.watch(c.id())).collect();
        polyloop::sleep(Duration::from_millis(20)).await;
        let peak = thread_count_now();
        for c in &mut children {
            open_gate(c);
        }
        for exit in exits {
            assert!(exit.await.unwrap().success());
        }
        if flat {
            // One thread per child would add 200.
            assert!(peak <= before + 1, "threads grew from {before} to {peak} with 200 children");
        } else {
            assert!(peak >= before + 200, "threaded: one thread per child ({before} -> {peak})");
        }
    });
}

fn children_of_self() -> Vec<String> {
    crate::common::children().into_iter().map(|(pid, state)| format!("{pid} ({state})")).collect()
}

/// Every child this process started has been reaped.
pub fn assert_no_children() {
    let left = children_of_self();
    assert!(left.is_empty(), "children left (zombies or still running): {left:?}");
}

pub fn open_fds() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string());
            format!("{} -> {}", e.file_name().to_string_lossy(), target.unwrap_or_default())
        })
        .filter(|s| !s.contains("/proc/") || !s.contains("/fd"))
        .collect()
}

/// No fd was left open (the listing of /proc/self/fd itself is ignored).
pub fn assert_fds(before: &BTreeSet<String>) {
    let after = open_fds();
    let leaked: Vec<_> = after.difference(before).collect();
    assert!(leaked.is_empty(), "fds leaked: {leaked:?}");
}
