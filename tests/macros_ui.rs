//! Compile-time behaviour of `#[policy_main]` / `#[policy_test]`: what must
//! expand and run (`ui/pass`), and every misuse with its message (`ui/*.rs`).

mod common;

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
