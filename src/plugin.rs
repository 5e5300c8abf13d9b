//! The registry of policy plug-ins: policies that any linked crate offers by name.
//!
//! A plug-in crate registers a policy with [`register_policy!`](crate::register_policy);
//! a program picks one by name with [`install`], or from the `POLYLOOP_POLICY`
//! environment variable with [`install_from_env`].
//!
//! **The linking rule:** a plug-in crate that the binary depends on but never names in
//! code is dropped by the linker, and its registration with it. Name it once:
//!
//! ```ignore
//! use polyloop_threadpool as _;
//! ```

use std::fmt;
use std::sync::Arc;

use crate::error::Error;
use crate::policy::{EventLoopPolicy, set_event_loop_policy};
// The settings live below the event loop (loops read them too); they are offered here,
// where programs and plug-ins look for them.
pub use crate::settings::{
    MAX_WORKERS, PolicyOptions, check_workers, options, policy_name_from_env, set_options,
    with_options, workers,
};
pub use crate::workers::start_workers;

/// A policy offered by name. Made by [`register_policy!`](crate::register_policy).
pub struct PolicyPlugin {
    /// The name programs select it by (`[a-z0-9-_.]+`).
    pub name: &'static str,
    /// One line that says what its loops do.
    pub description: &'static str,
    /// Makes a new instance of the policy.
    pub create: fn() -> Arc<dyn EventLoopPolicy>,
    /// Where it was registered (`module_path!()` of the registering code).
    pub origin: &'static str,
}

inventory::collect!(PolicyPlugin);

impl fmt::Debug for PolicyPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyPlugin")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Registers a policy plug-in under a name, from any crate.
///
/// The name must be non-empty and use only `a-z`, `0-9`, `-`, `_` and `.`; anything
/// else fails to compile.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use polyloop::DefaultEventLoopPolicy;
///
/// polyloop::register_policy! {
///     name: "doc-example",
///     description: "the default policy under another name",
///     create: || Arc::new(DefaultEventLoopPolicy::new()),
/// }
///
/// let p = polyloop::plugin::find("doc-example")?;
/// assert_eq!(p.description, "the default policy under another name");
/// # Ok::<(), polyloop::Error>(())
/// ```
#[macro_export]
macro_rules! register_policy {
    (name: $name:expr, description: $desc:expr, create: $create:expr $(,)?) => {
        const _: () = {
            if !$crate::__private::is_valid_policy_name($name) {
                panic!("invalid policy name: a name is non-empty and uses only a-z, 0-9, '-', '_' and '.'");
            }
        };
        $crate::__private::inventory::submit! {
            $crate::plugin::PolicyPlugin {
                name: $name,
                description: $desc,
                create: $create,
                origin: ::core::module_path!(),
            }
        }
    };
}

crate::register_policy! {
    name: "default",
    description: "one loop per thread, created on demand on the main thread (asyncio's default)",
    create: || Arc::new(crate::policy::DefaultEventLoopPolicy::new()),
}

/// Whether `name` is a valid policy name: non-empty, only `a-z0-9-_.`.
pub const fn is_valid_policy_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

/// Every registered plug-in, sorted by name (a name registered twice appears twice).
///
/// # Examples
///
/// ```
/// let names: Vec<_> = polyloop::plugin::plugins().iter().map(|p| p.name).collect();
/// assert!(names.contains(&"default"));
/// ```
pub fn plugins() -> Vec<&'static PolicyPlugin> {
    let mut all: Vec<_> = inventory::iter::<PolicyPlugin>.into_iter().collect();
    all.sort_by(|a, b| a.name.cmp(b.name).then(a.origin.cmp(b.origin)));
    all
}

/// The plug-in registered as `name`.
///
/// # Errors
///
/// - [`Error::InvalidPolicyName`] if `name` is empty or has characters outside `[a-z0-9-_.]`;
/// - [`Error::UnknownPolicy`] (listing every registered name) if none has it;
/// - [`Error::DuplicatePolicy`] (naming both origins) if two have it.
///
/// # Examples
///
/// ```
/// let err = polyloop::plugin::find("no-such-policy").unwrap_err();
/// assert!(err.to_string().contains("default"));
/// ```
pub fn find(name: &str) -> Result<&'static PolicyPlugin, Error> {
    if !is_valid_policy_name(name) {
        return Err(Error::InvalidPolicyName { name: name.to_string() });
    }
    let all = plugins();
    let matching: Vec<_> = all.iter().filter(|p| p.name == name).collect();
    match matching.as_slice() {
        [] => {
            let mut available: Vec<String> = all.iter().map(|p| p.name.to_string()).collect();
            available.dedup();
            Err(Error::UnknownPolicy { name: name.to_string(), available })
        }
        [one] => Ok(one),
        many => Err(Error::DuplicatePolicy {
            name: name.to_string(),
            origins: many.iter().map(|p| p.origin.to_string()).collect(),
        }),
    }
}

/// Creates the policy registered as `name` and makes it the process-wide policy.
///
/// # Errors
///
/// As [`find`].
///
/// # Examples
///
/// ```
/// let policy = polyloop::plugin::install("default")?;
/// assert_eq!(polyloop::get_event_loop_policy().name(), policy.name());
/// # Ok::<(), polyloop::Error>(())
/// ```
pub fn install(name: &str) -> Result<Arc<dyn EventLoopPolicy>, Error> {
    let policy = (find(name)?.create)();
    set_event_loop_policy(Some(policy.clone()));
    Ok(policy)
}

/// Installs the policy named by `POLYLOOP_POLICY`, or `"default"` when it is unset or empty.
///
/// # Errors
///
/// As [`find`], for the name the variable holds.
pub fn install_from_env() -> Result<Arc<dyn EventLoopPolicy>, Error> {
    install(&policy_name_from_env())
}
