//! The deadlines of the timer benches, shared by `compare` and `timers` so that both
//! sleep to the same ones.

use std::time::Duration;

/// `n` offsets from a base, spread over `spread` by a fixed xorshift: every runtime
/// (and the no-runtime floor) sleeps to the same deadlines.
pub(crate) fn offsets(n: usize, spread: Duration) -> Vec<Duration> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            spread.mul_f64((x % 1_000_000) as f64 / 1_000_000.0)
        })
        .collect()
}
