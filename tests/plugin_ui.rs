//! `register_policy!` refuses an invalid name at compile time (cases in `tests/ui_plugin/`).

mod common;

#[test]
fn invalid_policy_names_fail_to_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_plugin/*.rs");
}
