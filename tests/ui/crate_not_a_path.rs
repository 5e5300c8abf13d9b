#[polyloop::policy_main(crate = "poly loop")]
async fn main() {}
