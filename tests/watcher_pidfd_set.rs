//! The pidfd watcher keeps its children's pidfds in one epoll set of its own: made at
//! the first watch, kept while the watcher lives, and let go once nothing is watched
//! and nothing more can be (the watcher is closed or dropped). Children still in flight
//! at that point are reaped first.

// The watcher reaps the children; `Child::wait` would race it.
#![allow(clippy::zombie_processes)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::gated;
use polyloop::process::{ChildWatcher, PidfdChildWatcher};

/// The tests count this process's epoll fds: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn epolls() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy() == "anon_inode:[eventpoll]")
        })
        .count()
}

/// Waits (under a watchdog) until this process has `n` epoll fds.
fn until_epolls(n: usize, what: &str) {
    let start = Instant::now();
    while epolls() != n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: {} epoll fds, not {n}",
            epolls()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn open_gate(child: &mut Child) {
    drop(child.stdin.take());
}

/// Takes the counting for this test, once the reactor (and its epoll) exists; gives
/// the number of epoll fds to start from.
fn start_counting() -> (MutexGuard<'static, ()>, usize) {
    let serial = serial();
    polyloop::block_on(polyloop::sleep(Duration::from_millis(1)));
    (serial, epolls())
}

/// The set goes when the watcher is dropped, or, if the reactor is just then running
/// the set's callback on another thread (the one that reported this child's exit may
/// still be returning), as soon as that callback returns: the callback holds the set
/// while it runs. Hence a wait, under the watchdog, not a look right after the drop.
#[test]
fn an_idle_watcher_dropped_lets_go_of_its_set() {
    let (_serial, before) = start_counting();
    let watcher = PidfdChildWatcher::new();
    assert_eq!(epolls(), before, "no set before the first watch");
    let child = Command::new("sh").args(["-c", "exit 4"]).spawn().unwrap();
    let status = polyloop::block_on(watcher.watch(child.id())).unwrap();
    assert_eq!(status.code(), Some(4));
    assert_eq!(epolls(), before + 1, "the set stays while the watcher lives");
    drop(watcher);
    until_epolls(before, "dropped with nothing watched: the set goes with it");
}

#[test]
fn a_dropped_watcher_still_reaps_its_children_then_lets_go() {
    let (_serial, before) = start_counting();
    let watcher = PidfdChildWatcher::new();
    let (tx, rx) = mpsc::channel();
    let mut children: Vec<Child> = (0..70).map(|i| gated(i % 7)).collect();
    for child in &children {
        let tx = tx.clone();
        watcher.add_child_handler(
            child.id(),
            Box::new(move |pid, code| tx.send((pid, code)).unwrap()),
        );
    }
    drop(watcher);
    assert_eq!(epolls(), before + 1, "children in flight keep the set");
    for child in &mut children {
        open_gate(child);
    }
    let mut got: Vec<(u32, i32)> =
        (0..children.len()).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    got.sort();
    let mut want: Vec<(u32, i32)> =
        children.iter().enumerate().map(|(i, c)| (c.id(), i as i32 % 7)).collect();
    want.sort();
    assert_eq!(got, want);
    until_epolls(before, "after the last child of a dropped watcher");
}

#[test]
fn a_closed_watcher_lets_go_once_its_last_child_is_reaped() {
    let (_serial, before) = start_counting();
    let watcher = PidfdChildWatcher::new();
    let mut first = gated(1);
    let mut second = gated(2);
    let exits = [watcher.watch(first.id()), watcher.watch(second.id())];
    watcher.close();
    assert_eq!(epolls(), before + 1, "closed with children in flight: the set stays");
    let late = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
    let err = polyloop::block_on(watcher.watch(late.id())).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    assert_eq!(epolls(), before + 1, "a refused watch makes no new set");
    // The refused child is ours to reap.
    let other = PidfdChildWatcher::new();
    assert!(polyloop::block_on(other.watch(late.id())).unwrap().success());
    drop(other);

    open_gate(&mut first);
    open_gate(&mut second);
    let [a, b] = exits;
    assert_eq!(polyloop::block_on(a).unwrap().code(), Some(1));
    assert_eq!(polyloop::block_on(b).unwrap().code(), Some(2));
    until_epolls(before, "after the last child of a closed watcher");
    drop(watcher);
    assert_eq!(epolls(), before);
}

#[test]
fn many_children_ending_together_are_all_reaped() {
    let _serial = serial();
    // More children than one `epoll_wait` takes (64) end at once: they all read one
    // pipe, and its write end closes.
    let watcher = PidfdChildWatcher::new();
    let (gate, open_all) = common::pipe();
    let children: Vec<Child> = (0..200)
        .map(|i| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("read x; exit {}", i % 256))
                .stdin(Stdio::from(gate.try_clone().unwrap()))
                .spawn()
                .unwrap()
        })
        .collect();
    drop(gate);
    let exits: Vec<_> = children.iter().map(|c| watcher.watch(c.id())).collect();
    drop(open_all);
    polyloop::block_on(async {
        for (i, exit) in exits.into_iter().enumerate() {
            assert_eq!(exit.await.unwrap().code(), Some(i as i32 % 256));
        }
    });
}
