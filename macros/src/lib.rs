//! The `#[policy_main]` and `#[policy_test]` attribute macros of
//! [polyloop](https://docs.rs/polyloop).
//!
//! Use them through the main crate, as `#[polyloop::policy_main]` and
//! `#[polyloop::policy_test]`; this crate is an implementation detail. Both turn
//! an `async fn` into a blocking one that installs an event-loop policy, runs the
//! body on a fresh loop created through it, and closes that loop afterwards.
//!
//! The expansion is done in three steps, each in its own module: `parse` reads
//! the `key = value` arguments, `validate` checks them and the function and
//! reports every misuse at the token that is wrong, and `expand` writes the
//! blocking function. On an error the function is still emitted (next to a
//! `compile_error!`), so an editor keeps completing inside it.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks
)]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;
use syn::ItemFn;

use crate::validate::Kind;

/// Runs an `async fn main` on an event loop made by a polyloop policy.
///
/// The function becomes a plain `fn` with the same name and return type. Its
/// body runs on a fresh loop from the chosen policy, which is closed when the
/// body completes. The policy is picked in this order: the `policy` argument,
/// else the `POLYLOOP_POLICY` environment variable, else `"default"`.
///
/// # Arguments
///
/// All are optional and given as `key = value`:
///
/// - `policy = "name"`: the registered policy to install. Lowercase ASCII
///   letters, digits, `-`, `_` and `.` only. A policy from a plug-in crate needs
///   that crate linked in, e.g. `use polyloop_threadpool as _;`.
/// - `workers = N`: worker threads, for policies that use a pool (`N >= 1`).
/// - `debug = true | false`: ask for a debug loop.
/// - `crate = "path"`: where the polyloop crate is, if it was renamed or
///   re-exported (default `::polyloop`).
///
/// # Examples
///
/// ```ignore
/// #[polyloop::policy_main]
/// async fn main() -> std::io::Result<()> {
///     let status = polyloop::process::Command::new("true").status().await?;
///     assert!(status.success());
///     Ok(())
/// }
/// ```
///
/// With arguments:
///
/// ```ignore
/// use polyloop_threadpool as _; // link the plug-in that registers "threadpool"
///
/// #[polyloop::policy_main(policy = "threadpool", workers = 4, debug = true)]
/// async fn main() {
///     let answer = polyloop::spawn(async { 6 * 7 }).await;
///     assert_eq!(answer, 42);
/// }
/// ```
///
/// The function does not have to be called `main`: elsewhere it simply becomes
/// a blocking function.
///
/// # Errors
///
/// It is a compile error to put it on a function that is not `async`, to give
/// `main` parameters or generics, to use an unknown or repeated argument, to
/// give an argument a value of the wrong kind, `workers = 0`, or a policy name
/// that is empty or has characters outside `[a-z0-9-_.]`.
///
/// # Panics
///
/// The generated `main` panics if the named policy is not registered; the
/// message lists the registered ones.
#[proc_macro_attribute]
pub fn policy_main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async` test on a fresh event loop made by a polyloop policy.
///
/// Like [`macro@policy_main`], and adds `#[test]`: every test gets its own new
/// loop, closed when the test ends. The function's other attributes
/// (`#[should_panic]`, `#[ignore]`, doc comments, ...) are kept, and a
/// `Result` return type works as it does for any test. It takes the same
/// arguments as [`macro@policy_main`].
///
/// # Examples
///
/// ```ignore
/// #[polyloop::policy_test]
/// async fn spawns_on_the_running_loop() {
///     assert!(polyloop::get_running_loop().is_some());
///     assert_eq!(polyloop::spawn(async { 1 + 1 }).await, 2);
/// }
///
/// #[polyloop::policy_test(policy = "default", debug = true)]
/// async fn returns_a_result() -> std::io::Result<()> {
///     polyloop::process::Command::new("true").status().await?;
///     Ok(())
/// }
///
/// #[polyloop::policy_test]
/// #[should_panic(expected = "boom")]
/// async fn panics() {
///     panic!("boom");
/// }
/// ```
///
/// # Errors
///
/// The same compile errors as [`macro@policy_main`], for any test function; and
/// an extra `#[test]` on the function is an error, since this adds one.
#[proc_macro_attribute]
pub fn policy_test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(Kind::Test, args.into(), item.into()).into()
}

/// Parse, validate, expand; on an error, expand what was valid and append the
/// error, so the function still exists for the rest of the crate and for IDEs.
fn entry(
    kind: Kind,
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let item: ItemFn = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(e) => return with_error(item.clone(), not_a_function(kind, item, e)),
    };
    let (config, error) = match parse::args(args) {
        Ok(args) => validate::validate(kind, args, &item),
        Err(mut e) => {
            // Still check the function, so its mistakes show in the same build.
            let (config, more) = validate::validate(kind, Vec::new(), &item);
            if let Some(more) = more {
                e.combine(more);
            }
            (config, Some(e))
        }
    };
    let expanded = expand::expand(kind, &config, item);
    match error {
        Some(e) => with_error(expanded, e),
        None => expanded,
    }
}

/// The error for an item that is not a function. syn's own error is kept when
/// the item is a function after all (its body did not parse), as it says where.
fn not_a_function(kind: Kind, item: proc_macro2::TokenStream, error: syn::Error) -> syn::Error {
    match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Fn(_)) | Err(_) => error,
        Ok(other) => syn::Error::new_spanned(
            other,
            format!("`{}` can only be used on an `async fn`", kind.attribute()),
        ),
    }
}

/// `tokens` followed by `compile_error! { ... }`, as an item of its own: no
/// trailing comma or semicolon that could hide the message.
fn with_error(mut tokens: proc_macro2::TokenStream, error: syn::Error) -> proc_macro2::TokenStream {
    tokens.extend(error.into_compile_error());
    tokens
}
