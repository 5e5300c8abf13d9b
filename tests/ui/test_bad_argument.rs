#[polyloop::policy_test(policy = "Default")]
async fn bad_policy_name() {}

fn main() {}
