//! `-> !` expands: a `main` that never returns.
#[polyloop::policy_main]
async fn main() -> ! {
    std::process::exit(0)
}
