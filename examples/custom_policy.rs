//! A complete policy plug-in in one file: a policy that keeps a log of the loops it
//! makes, registered under the name "logging" and then selected by that name.
//!
//! Run it with `cargo run --example custom_policy`. In a crate of its own the
//! `register_policy!` call is all it takes for any program that links the crate to
//! select "logging", e.g. with `POLYLOOP_POLICY=logging`.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use polyloop::{DefaultEventLoopPolicy, Error, EventLoop, EventLoopPolicy};

/// Every loop a `LoggingPolicy` made, and what happened to it.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The default policy's per-thread context, with loops that log their life.
#[derive(Default)]
struct LoggingPolicy {
    context: DefaultEventLoopPolicy,
    made: AtomicUsize,
}

impl fmt::Debug for LoggingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggingPolicy").field("made", &self.made).finish()
    }
}

impl EventLoopPolicy for LoggingPolicy {
    fn name(&self) -> &str {
        "logging"
    }

    fn get_event_loop(&self) -> Result<EventLoop, Error> {
        // asyncio's per-thread rule, with this policy's kind of loop.
        self.context.get_event_loop_with(|| self.new_event_loop())
    }

    fn set_event_loop(&self, lp: Option<EventLoop>) -> Result<(), Error> {
        self.context.set_event_loop(lp)
    }

    fn new_event_loop(&self) -> Result<EventLoop, Error> {
        let n = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        let lp = EventLoop::builder()
            .on_close(move |lp| log(format!("loop {n} (#{}) closed", lp.id())))
            .build()?;
        log(format!("loop {n} (#{}) made", lp.id()));
        Ok(lp)
    }
}

fn log(line: String) {
    LOG.lock().unwrap().push(line);
}

// The registration: a name, one line of description, and how to make the policy.
polyloop::register_policy! {
    name: "logging",
    description: "the default policy, keeping a log of the loops it makes and closes",
    create: || Arc::new(LoggingPolicy::default()),
}

fn main() -> Result<(), Error> {
    let plugin = polyloop::plugin::find("logging")?;
    println!("found {:?}: {} (registered in {})", plugin.name, plugin.description, plugin.origin);

    let policy = polyloop::plugin::install("logging")?;
    println!("the process-wide policy is now {:?}", policy.name());

    // Everything that asks the policy for a loop now gets one of ours.
    let lp = polyloop::new_event_loop()?;
    let out = lp.run_until_complete(async { polyloop::spawn(async { 6 * 7 }).await })?;
    lp.close()?;
    println!("a loop of the policy computed {out}");
    let out = polyloop::run_with(polyloop::new_event_loop, async { "run_with works too" })?;
    println!("{out}");

    for line in LOG.lock().unwrap().iter() {
        println!("log: {line}");
    }
    polyloop::set_event_loop_policy(None);
    Ok(())
}
