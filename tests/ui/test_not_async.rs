#[polyloop::policy_test]
fn sync_test() {}

fn main() {}
