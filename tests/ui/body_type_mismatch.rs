// A body whose value does not match the return type is reported in the body,
// not at the attribute.
#[polyloop::policy_main]
async fn main() -> Result<(), String> {
    let answer = 42;
    answer
}
