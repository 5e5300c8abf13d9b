//! Runs many children at once, each with piped output, through the child watcher that
//! `POLYLOOP_CHILD_WATCHER` names, and prints their exit codes; then as many again,
//! started on spawner threads (`start_on_spawner`), so that the loop goes on while
//! each one starts.
//!
//! Run it with `cargo run --example subprocess`, or pick a watcher:
//! `POLYLOOP_CHILD_WATCHER=multiloop cargo run --example subprocess`
//! (pidfd, threaded, multiloop, safe or fast; the default is pidfd where the kernel has it).

use polyloop::process::{Command, Stdio};

/// How many children run at once.
const CHILDREN: usize = 64;

/// Runs the children and checks what each printed and how each ended.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A bad POLYLOOP_CHILD_WATCHER is an error here that lists the allowed values.
    let watcher = polyloop::get_child_watcher()?;
    println!("child watcher: {}", watcher.name());

    polyloop::block_on(async {
        let mut tasks = Vec::new();
        for i in 0..CHILDREN {
            let child = Command::new("sh")
                .arg("-c")
                .arg(format!("echo child {i}; exit {}", i % 7))
                .stdout(Stdio::piped())
                .spawn()?;
            let pid = child.id().ok_or("a child not yet waited for has a pid")?;
            tasks.push((i, pid, polyloop::spawn(child.wait_with_output())));
        }
        for (i, pid, task) in tasks {
            let out = task.await?;
            let said = String::from_utf8_lossy(&out.stdout);
            let code = out.status.code();
            println!("child {i:2} (pid {pid}) exited with {code:?}, saying {:?}", said.trim_end());
            if code != Some((i % 7) as i32) || said != format!("child {i}\n") {
                return Err(format!("child {i} ended wrongly: {:?}", out).into());
            }
        }
        println!("all {CHILDREN} children reported");

        let tasks: Vec<_> = (0..CHILDREN)
            .map(|i| {
                polyloop::spawn(async move {
                    let mut cmd = Command::new("sh");
                    cmd.arg("-c").arg(format!("exit {}", i % 7)).start_on_spawner(true);
                    cmd.output().await
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let code = task.await?.status.code();
            if code != Some((i % 7) as i32) {
                return Err(format!("child {i} started on a spawner ended with {code:?}").into());
            }
        }
        println!("all {CHILDREN} children started on spawner threads reported");
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
