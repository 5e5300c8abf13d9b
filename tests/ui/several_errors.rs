// Every mistake is reported in one build, each at its own token.
#[polyloop::policy_main(workers = 0, colour = "blue", debug = "yes")]
fn main() {}
