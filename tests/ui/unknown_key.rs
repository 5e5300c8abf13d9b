#[polyloop::policy_main(threads = 4)]
async fn main() {}
