//! `-> Result<(), E>` with `?` on two different error types and an early return.
use std::error::Error;

#[polyloop::policy_main]
async fn main() -> Result<(), Box<dyn Error>> {
    let n: u32 = "42".parse()?;
    let s = String::from_utf8(vec![b'o', b'k'])?;
    if n == 42 && s == "ok" {
        return Ok(());
    }
    Err("unreachable".into())
}
