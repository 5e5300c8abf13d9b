//! Every argument at once, and a trailing comma.
#[polyloop::policy_main(policy = "default", workers = 2, debug = true, crate = "::polyloop",)]
async fn main() {
    assert!(polyloop::get_running_loop().is_some());
}
