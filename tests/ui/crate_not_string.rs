#[polyloop::policy_main(crate = polyloop)]
async fn main() {}
