#[polyloop::policy_main(workers = 0)]
async fn main() {}
