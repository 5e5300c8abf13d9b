#[polyloop::policy_test]
#[test]
async fn tested_twice() {}

fn main() {}
