//! A blocking fn returning `impl Trait`: the output type is inferred, not named.
use std::fmt::Display;

#[polyloop::policy_main]
async fn answer() -> impl Display {
    async { 42 }.await
}

fn main() {
    assert_eq!(answer().to_string(), "42");
}
