#[polyloop::policy_main("threadpool")]
async fn main() {}
