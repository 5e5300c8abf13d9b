//! The main way in: `#[polyloop::policy_main]` on an `async fn main`.
//!
//! The macro installs a policy, runs `main` on a fresh loop made by it, and closes
//! that loop at the end. Without an argument, the policy comes from
//! `POLYLOOP_POLICY` (else `"default"`); `#[polyloop::policy_main(policy = "tokio")]`
//! would fix it in the code instead. Every plug-in is linked below, so each of their
//! names can be chosen:
//!
//! ```text
//! cargo run --example hello_main
//! POLYLOOP_POLICY=threadpool cargo run --example hello_main
//! POLYLOOP_POLICY=tokio cargo run --example hello_main
//! POLYLOOP_POLICY=no-such-policy cargo run --example hello_main   # fails, listing the names
//! ```

use std::time::Duration;

// The linking rule: a plug-in's policy is registered only if the binary names the crate.
use polyloop_debug as _;
use polyloop_global as _;
use polyloop_threadpool as _;
use polyloop_tokio as _;

#[polyloop::policy_main]
async fn main() {
    let policy = polyloop::get_event_loop_policy();
    let tasks: Vec<_> = (1..=10u64).map(|i| polyloop::spawn(async move { i * i })).collect();
    let mut sum = 0;
    for t in tasks {
        sum += t.await;
    }
    polyloop::sleep(Duration::from_millis(1)).await;
    println!("hello from the {:?} policy: the squares of 1..=10 add up to {sum}", policy.name());
}
