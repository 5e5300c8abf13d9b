//! Thread limits for the plug-in tests that make a worker thread fail to start
//! (included by path from the threadpool's and the tokio plug-in's tests, whose
//! crates have `rustix` as a dev-dependency).
#![allow(dead_code, unreachable_pub)]

/// A user id that no process uses, for a child that must feel `RLIMIT_NPROC`: the
/// first free one of `first..first + 100` (each test binary passes its own range, so
/// that two binaries running at once do not share a user id).
pub fn unused_uid(first: u32) -> u32 {
    (first..first + 100).find(|uid| tasks_of_uid(*uid) == 0).expect("a free user id")
}

/// How many threads, of every process, run as real user `uid`.
pub fn tasks_of_uid(uid: u32) -> usize {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        // Processes only: not the `self` and `thread-self` links to this one.
        if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).and_then(|rest| {
                rest.split_whitespace().next().and_then(|v| v.parse::<usize>().ok())
            })
        };
        if field("Uid:") == Some(uid as usize) {
            total += field("Threads:").unwrap_or(1);
        }
    }
    total
}

/// Runs `f` while this user may start only `more` threads beyond those it runs now
/// (the soft `RLIMIT_NPROC`, which counts threads too), then lifts the limit again.
pub fn with_thread_limit<R>(more: usize, f: impl FnOnce() -> R) -> R {
    use rustix::process::{Resource, getrlimit, getuid, setrlimit};
    let old = getrlimit(Resource::Nproc);
    let now = tasks_of_uid(getuid().as_raw());
    let limited = rustix::process::Rlimit { current: Some((now + more) as u64), ..old };
    setrlimit(Resource::Nproc, limited).expect("lower RLIMIT_NPROC");
    let out = f();
    setrlimit(Resource::Nproc, old).expect("restore RLIMIT_NPROC");
    out
}
