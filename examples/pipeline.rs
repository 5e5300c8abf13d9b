//! Pipes three children together, as the shell line
//! `printf '...' | sort | uniq -c` does: each child's stdout becomes the next one's
//! stdin (`into_stdio`), this process feeds the first one and reads the last one, and
//! a fourth child, which would run for a minute, is ended with SIGTERM (`signal`).
//!
//! Run it with `cargo run --example pipeline`.

use futures_lite::AsyncWriteExt;
use polyloop::process::{Command, Stdio};

#[polyloop::policy_main]
async fn main() -> std::io::Result<()> {
    // cat | sort | uniq -c, with this process writing to cat.
    let mut cat = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut sort = Command::new("sort")
        .stdin(cat.stdout.take().expect("piped").into_stdio()?)
        .stdout(Stdio::piped())
        .spawn()?;
    let uniq = Command::new("uniq")
        .arg("-c")
        .stdin(sort.stdout.take().expect("piped").into_stdio()?)
        .stdout(Stdio::piped())
        .spawn()?;

    let mut input = cat.stdin.take().expect("piped");
    input.write_all(b"polyloop\nasync\npolyloop\nloop\nasync\npolyloop\n").await?;
    drop(input); // end of input: cat ends, then sort, then uniq

    let out = uniq.wait_with_output().await?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (count, word) = line.trim().split_once(' ').unwrap_or(("?", line));
        println!("{word}: {count}");
    }
    println!("cat: {}, sort: {}, uniq: {}", cat.wait().await?, sort.wait().await?, out.status);

    // A child that would run for a minute, ended with SIGTERM.
    let mut sleeper = Command::new("sleep").arg("60").spawn()?;
    sleeper.signal(15)?;
    println!("sleep after SIGTERM: {}", sleeper.wait().await?);
    Ok(())
}
