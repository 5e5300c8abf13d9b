#[polyloop::policy_main(debug)]
async fn main() {}
