#[polyloop::policy_main(policy = threadpool)]
async fn main() {}
