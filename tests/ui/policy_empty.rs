#[polyloop::policy_main(policy = "")]
async fn main() {}
