#[polyloop::policy_main(policy = "Thread Pool")]
async fn main() {}
