//! Lists every registered event loop policy, then runs the same small workload under
//! each one: tasks, timers, and a look at which threads ran them.
//!
//! Run it with `cargo run --example policies`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

// The linking rule: a plug-in crate is registered only if the binary names it.
use polyloop_debug as _;
use polyloop_global as _;
use polyloop_threadpool as _;
use polyloop_tokio as _;

fn main() -> Result<(), polyloop::Error> {
    let plugins = polyloop::plugin::plugins();
    println!("registered policies:");
    for p in &plugins {
        println!("  {:<11} {}", p.name, p.description);
    }
    println!();

    for p in &plugins {
        // Process-wide, as asyncio's set_event_loop_policy; POLYLOOP_POLICY=<name> and
        // polyloop::plugin::install_from_env() do the same from the environment.
        let policy = polyloop::plugin::install(p.name)?;
        let lp = polyloop::new_event_loop()?;
        let start = Instant::now();
        let (sum, threads) = lp.run_until_complete(workload())?;
        let debug = lp.get_debug();
        lp.close()?; // a thread pool joins its workers here
        println!(
            "{:<11} 1000 tasks summed to {sum} on {threads} thread(s) in {:?} (debug: {debug})",
            policy.name(),
            start.elapsed(),
        );
    }

    polyloop::set_event_loop_policy(None);
    println!("\nback to the {:?} policy", polyloop::get_event_loop_policy().name());
    Ok(())
}

/// 1000 tasks that sleep a little and return their number; the sum, and how many
/// threads ran them.
async fn workload() -> (u64, usize) {
    let threads: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
    let tasks: Vec<_> = (0..1000u64)
        .map(|i| {
            let threads = threads.clone();
            polyloop::spawn(async move {
                polyloop::sleep(Duration::from_millis(i % 5)).await;
                threads.lock().unwrap().insert(thread::current().id());
                i
            })
        })
        .collect();
    let mut sum = 0;
    for t in tasks {
        sum += t.await;
    }
    let n = threads.lock().unwrap().len();
    (sum, n)
}
