//! Attributes on the function reach the generated one: without the `allow`
//! below, the unused variable would fail this build.
#![deny(unused_variables)]

/// Runs on the default policy.
#[polyloop::policy_main]
#[allow(unused_variables)]
async fn main() {
    let unused = ();
}
