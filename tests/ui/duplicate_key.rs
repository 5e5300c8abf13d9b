#[polyloop::policy_main(policy = "default", workers = 2, policy = "default")]
async fn main() {}
