#[polyloop::policy_main]
fn main() {}
