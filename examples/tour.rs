//! A tour of polyloop: block_on, spawning, timers, callbacks and the policy round trip.
//!
//! Run it with `cargo run --example tour`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() -> Result<(), polyloop::Error> {
    // 1. block_on: run a future on this thread's loop, no set-up.
    let answer = polyloop::block_on(async { 6 * 7 });
    println!("block_on gave {answer}");

    // 2. Spawning: many tasks, joined in order.
    let sum = polyloop::block_on(async {
        let tasks: Vec<_> = (1..=100u64).map(|i| polyloop::spawn(async move { i * i })).collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await;
        }
        sum
    });
    println!("spawned 100 tasks; the sum of their squares is {sum}");

    // 3. Timers: sleep and timeout.
    let start = Instant::now();
    let timed_out = polyloop::block_on(async {
        polyloop::sleep(Duration::from_millis(20)).await;
        polyloop::timeout(Duration::from_millis(10), polyloop::sleep(Duration::from_secs(10))).await
    });
    println!("slept 20ms, then {} ({:?} in all)", timed_out.unwrap_err(), start.elapsed());

    // 4. Callbacks: call_soon runs in order, call_later by deadline; stop() ends run_forever.
    let lp = polyloop::new_event_loop()?;
    let log = Arc::new(Mutex::new(Vec::new()));
    for (delay, name) in [(30, "later: 30ms"), (10, "later: 10ms"), (20, "later: 20ms")] {
        let log = log.clone();
        lp.call_later(Duration::from_millis(delay), move || log.lock().unwrap().push(name));
    }
    for name in ["soon: first", "soon: second"] {
        let log = log.clone();
        lp.call_soon(move || log.lock().unwrap().push(name));
    }
    let cancelled = lp.call_later(Duration::from_millis(5), || unreachable!("cancelled"));
    cancelled.cancel();
    let stopper = lp.clone();
    lp.call_later(Duration::from_millis(40), move || stopper.stop());
    lp.run_forever()?;
    lp.close()?;
    for line in log.lock().unwrap().iter() {
        println!("callback ran: {line}");
    }

    // 5. Policies: the process-wide policy, got and set as in asyncio.
    let before = polyloop::get_event_loop_policy();
    println!("the policy is {:?}; registered policies:", before.name());
    for p in polyloop::plugin::plugins() {
        println!("  {:<10} {}", p.name, p.description);
    }
    let installed = polyloop::plugin::install("default")?;
    println!("installed a fresh {:?} policy by name", installed.name());
    polyloop::set_event_loop_policy(None);
    println!(
        "set_event_loop_policy(None) restored the default: {:?}",
        polyloop::get_event_loop_policy().name()
    );
    match polyloop::plugin::install("no-such-policy") {
        Err(e) => println!("installing an unknown name fails clearly:\n  {e}"),
        Ok(_) => unreachable!(),
    }
    Ok(())
}
