#[polyloop::policy_main(workers = "4")]
async fn main() {}
