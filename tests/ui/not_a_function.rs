#[polyloop::policy_main]
struct Main;

fn main() {}
