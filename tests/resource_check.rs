//! The exit-time resource check of `tests/common` really catches leaks: this binary
//! runs itself as a child that leaks a file descriptor, a thread and a zombie, and
//! expects the child to fail with a report naming each.

mod common;

use std::process::Command;

fn main() {
    if std::env::var_os("POLYLOOP_LEAK_ON_PURPOSE").is_some() {
        // Leak a pipe, a parked thread and a zombie child.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe` writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        std::thread::Builder::new()
            .name("leaked".into())
            .spawn(|| {
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        let child = Command::new("true").spawn().unwrap();
        std::mem::forget(child);
        std::thread::sleep(std::time::Duration::from_millis(50));
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .env("POLYLOOP_LEAK_ON_PURPOSE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the leaking child must fail: {stderr}");
    assert!(stderr.contains("resource check failed at exit"), "{stderr}");
    assert!(stderr.contains("(pipe:["), "the fd is named: {stderr}");
    assert!(stderr.contains("(leaked) is still running"), "the thread is named: {stderr}");
    assert!(stderr.contains("zombie child process"), "the zombie is named: {stderr}");
    println!("resource_check: ok");
}
