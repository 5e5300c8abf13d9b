#[polyloop::policy_main(debug = 1)]
async fn main() {}
