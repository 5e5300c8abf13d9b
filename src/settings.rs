//! Settings read from the environment, and the options a program passes to whatever
//! policy it installs: `POLYLOOP_POLICY`, `POLYLOOP_WORKERS`, `POLYLOOP_DEBUG`,
//! `POLYLOOP_BLOCKING_THREADS` and [`PolicyOptions`].
//!
//! This module sits below the event loop: loops read their debug setting here, policies
//! their worker counts, and the plug-in registry the policy's name. It imports nothing
//! of theirs, so the modules above it depend on it in one direction only. Its public
//! items are re-exported from [`crate::plugin`].

use std::cell::Cell;
use std::sync::{Mutex, PoisonError};

use crate::error::Error;

/// Settings a program passes to whatever policy it installs (from
/// `#[policy_main(workers = 4, debug = true)]`, for example). Policies read them
/// with [`options`] when they make a loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Worker threads, for policies that use a pool (else `POLYLOOP_WORKERS`).
    pub workers: Option<usize>,
    /// Debug mode for new loops (else `POLYLOOP_DEBUG`).
    pub debug: Option<bool>,
}

static OPTIONS: Mutex<PolicyOptions> = Mutex::new(PolicyOptions { workers: None, debug: None });

thread_local! {
    static SCOPED: Cell<Option<PolicyOptions>> = const { Cell::new(None) };
}

/// Sets the process-wide [`PolicyOptions`].
pub fn set_options(options: PolicyOptions) {
    *OPTIONS.lock().unwrap_or_else(PoisonError::into_inner) = options;
}

/// The [`PolicyOptions`] in effect on this thread: those of an enclosing
/// [`with_options`], else the process-wide ones.
///
/// # Examples
///
/// ```
/// use polyloop::plugin::{PolicyOptions, options, with_options};
///
/// let four = PolicyOptions { workers: Some(4), debug: None };
/// assert_eq!(with_options(four, options), four);
/// ```
pub fn options() -> PolicyOptions {
    if let Some(scoped) = SCOPED.with(Cell::get) {
        return scoped;
    }
    *OPTIONS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` with `options` in effect on this thread only (tests running in parallel
/// each get their own).
pub fn with_options<R>(options: PolicyOptions, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<PolicyOptions>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|s| s.replace(Some(options))));
    f()
}

/// The name in `POLYLOOP_POLICY`, or `"default"`.
pub fn policy_name_from_env() -> String {
    match std::env::var("POLYLOOP_POLICY") {
        Ok(name) if !name.is_empty() => name,
        Err(std::env::VarError::NotUnicode(v)) => v.to_string_lossy().into_owned(),
        _ => "default".to_string(),
    }
}

/// The most worker threads one pool may have.
///
/// A count beyond it is refused with a clear error rather than tried: a thread costs
/// its stack's address space and a kernel task, and thousands of them per loop only
/// exhaust the system's limits (at `10^12` the list of handles alone cannot be
/// allocated). No machine has this many cores for one loop's tasks to use.
///
/// # Examples
///
/// ```
/// use polyloop::plugin::{MAX_WORKERS, PolicyOptions, with_options, workers};
///
/// let too_many = PolicyOptions { workers: Some(MAX_WORKERS + 1), debug: None };
/// let err = with_options(too_many, workers).unwrap_err();
/// assert!(err.to_string().contains("at most 1024"));
/// ```
pub const MAX_WORKERS: usize = 1024;

/// The number of worker threads a pool should use: [`PolicyOptions::workers`], else
/// `POLYLOOP_WORKERS`, else the number of available cores (at most [`MAX_WORKERS`]).
///
/// # Errors
///
/// [`Error::InvalidEnv`] if `POLYLOOP_WORKERS` is not a whole number from 1 to
/// [`MAX_WORKERS`]; [`Error::TooManyWorkers`] if [`PolicyOptions::workers`] is above it.
pub fn workers() -> Result<usize, Error> {
    if let Some(n) = options().workers {
        return check_workers(n.max(1));
    }
    let invalid = |value: String| Error::InvalidEnv {
        var: "POLYLOOP_WORKERS",
        value,
        expected: format!(
            "a whole number of worker threads from 1 to {MAX_WORKERS} \
             (polyloop::plugin::MAX_WORKERS)"
        ),
    };
    match std::env::var("POLYLOOP_WORKERS") {
        Err(std::env::VarError::NotPresent) => {
            Ok(std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS))
        }
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
            _ => Err(invalid(v)),
        },
        Err(std::env::VarError::NotUnicode(v)) => Err(invalid(v.to_string_lossy().into_owned())),
    }
}

/// `requested` worker threads, if that is within [`MAX_WORKERS`].
///
/// # Errors
///
/// [`Error::TooManyWorkers`] above it.
pub fn check_workers(requested: usize) -> Result<usize, Error> {
    if requested > MAX_WORKERS {
        return Err(Error::TooManyWorkers { requested, max: MAX_WORKERS });
    }
    Ok(requested)
}

/// Debug mode for a new loop that was not told: [`PolicyOptions::debug`], else
/// `POLYLOOP_DEBUG` (unset, empty, `0` or `false` is off; `1` or `true` is on).
///
/// # Errors
///
/// [`Error::InvalidEnv`] when `POLYLOOP_DEBUG` holds anything else.
pub(crate) fn debug() -> Result<bool, Error> {
    if let Some(on) = options().debug {
        return Ok(on);
    }
    match std::env::var("POLYLOOP_DEBUG") {
        Err(std::env::VarError::NotPresent) => Ok(false),
        Ok(v) if v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false") => Ok(false),
        Ok(v) if v == "1" || v.eq_ignore_ascii_case("true") => Ok(true),
        Ok(v) => Err(Error::InvalidEnv {
            var: "POLYLOOP_DEBUG",
            value: v,
            expected: "1 or true (debug on), 0 or false (off)".into(),
        }),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::InvalidEnv {
            var: "POLYLOOP_DEBUG",
            value: v.to_string_lossy().into_owned(),
            expected: "1 or true (debug on), 0 or false (off)".into(),
        }),
    }
}

/// The variable that bounds the blocking pool (see [`crate::blocking::max_threads`]).
pub(crate) const BLOCKING_THREADS_ENV: &str = "POLYLOOP_BLOCKING_THREADS";
/// The blocking pool's bound when the variable is unset.
pub(crate) const DEFAULT_BLOCKING_THREADS: usize = 512;
/// The largest bound the variable may set.
pub(crate) const MAX_BLOCKING_THREADS: usize = 10_000;

/// The blocking pool's bound: `POLYLOOP_BLOCKING_THREADS`, else 512.
///
/// # Errors
///
/// [`Error::InvalidEnv`] unless the variable is unset or a whole number from 1 to
/// 10000.
pub(crate) fn blocking_threads() -> Result<usize, Error> {
    parse_blocking_threads(std::env::var(BLOCKING_THREADS_ENV))
}

fn parse_blocking_threads(var: Result<String, std::env::VarError>) -> Result<usize, Error> {
    let value = match var {
        Err(std::env::VarError::NotPresent) => return Ok(DEFAULT_BLOCKING_THREADS),
        Ok(v) => v,
        Err(std::env::VarError::NotUnicode(v)) => v.to_string_lossy().into_owned(),
    };
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_BLOCKING_THREADS).contains(&n) => Ok(n),
        _ => Err(Error::InvalidEnv {
            var: BLOCKING_THREADS_ENV,
            value,
            expected: format!(
                "a whole number of blocking threads from 1 to {MAX_BLOCKING_THREADS}"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_of_the_variable_are_errors_that_say_what_is_allowed() {
        use std::env::VarError;
        assert_eq!(parse_blocking_threads(Err(VarError::NotPresent)), Ok(DEFAULT_BLOCKING_THREADS));
        assert_eq!(parse_blocking_threads(Ok(" 8 ".into())), Ok(8));
        assert_eq!(parse_blocking_threads(Ok("10000".into())), Ok(10_000));
        for bad in ["", "0", "-1", "ten", "10001", "1.5"] {
            let err = parse_blocking_threads(Ok(bad.into())).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "POLYLOOP_BLOCKING_THREADS={bad:?} is not valid; expected a whole number \
                     of blocking threads from 1 to 10000"
                )
            );
        }
    }
}
