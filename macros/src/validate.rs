//! Step two: check the parsed arguments and the function, and build a `Config`.
//!
//! Every check reports one exact sentence spanned at the offending token, and
//! all of them run, so one build shows every mistake. Whatever is valid is kept
//! in the `Config` even when something else is wrong: the caller still expands
//! the function with it, so an editor keeps working.

use proc_macro2::Span;
use quote::ToTokens;
use syn::{Expr, ExprLit, ItemFn, Lit, LitBool, LitInt, LitStr, Path};

use crate::parse::Arg;

/// Which macro is being expanded; the checks on the function differ slightly.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    /// The attribute as the user wrote it, for messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Kind::Main => "#[policy_main]",
            Kind::Test => "#[policy_test]",
        }
    }
}

/// The validated arguments. `None` means "not given": the runtime then falls
/// back to `POLYLOOP_POLICY`, the policy's own defaults, and so on.
pub(crate) struct Config {
    pub(crate) policy: Option<LitStr>,
    /// The worker count, with the span of the literal it came from.
    pub(crate) workers: Option<(usize, Span)>,
    pub(crate) debug: Option<LitBool>,
    /// The path to the polyloop crate; `None` means `::polyloop`.
    pub(crate) krate: Option<Path>,
}

const KEYS: &str = "`policy`, `workers`, `debug`, `crate`";

/// Checks the arguments and the function signature. Returns the config built
/// from whatever was valid, and the combined errors, if any.
pub(crate) fn validate(kind: Kind, args: Vec<Arg>, item: &ItemFn) -> (Config, Option<syn::Error>) {
    let mut errors = Errors(None);
    let mut config = Config { policy: None, workers: None, debug: None, krate: None };
    // Keys seen so far, to reject duplicates even when the first value was bad.
    let mut seen: Vec<String> = Vec::new();

    for Arg { key, value } in args {
        let name = key.to_string();
        if !matches!(name.as_str(), "policy" | "workers" | "debug" | "crate") {
            errors.push(syn::Error::new_spanned(
                &key,
                format!("unknown argument `{name}`; expected one of {KEYS}"),
            ));
            continue;
        }
        if seen.contains(&name) {
            errors.push(syn::Error::new_spanned(&key, format!("`{name}` is given more than once")));
            continue;
        }
        seen.push(name.clone());

        let Some(value) = value else {
            let example = match name.as_str() {
                "policy" => "policy = \"default\"",
                "workers" => "workers = 4",
                "debug" => "debug = true",
                _ => "crate = \"polyloop\"",
            };
            errors.push(syn::Error::new_spanned(
                &key,
                format!("`{name}` needs a value, as in `{example}`"),
            ));
            continue;
        };
        let result = match name.as_str() {
            "policy" => policy(&value).map(|lit| config.policy = Some(lit)),
            "workers" => workers(&value).map(|n| config.workers = Some(n)),
            "debug" => debug(&value).map(|lit| config.debug = Some(lit)),
            _ => krate(&value).map(|path| config.krate = Some(path)),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }

    signature(kind, item, &mut errors);
    (config, errors.0)
}

fn policy(value: &Expr) -> syn::Result<LitStr> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            "`policy` expects a string literal, such as `policy = \"default\"`",
        ));
    };
    let name = lit.value();
    if name.is_empty() {
        return Err(syn::Error::new_spanned(
            lit,
            "the policy name is empty; expected a registered name, such as `\"default\"`",
        ));
    }
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.');
    if !name.chars().all(allowed) {
        return Err(syn::Error::new_spanned(
            lit,
            format!(
                "the policy name `{name}` may only contain lowercase ASCII letters, digits, `-`, `_` and `.`"
            ),
        ));
    }
    Ok(lit.clone())
}

fn workers(value: &Expr) -> syn::Result<(usize, Span)> {
    let expected = "`workers` expects an integer literal of at least 1, such as `workers = 4`";
    let Some(Lit::Int(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(value, expected));
    };
    // A suffix such as `4u8` would make the generated `Option<usize>` fail to
    // type-check far from here; refuse it at the literal instead.
    if !matches!(lit.suffix(), "" | "usize") {
        return Err(syn::Error::new_spanned(lit, expected));
    }
    match lit.base10_parse::<usize>() {
        Ok(0) => Err(syn::Error::new_spanned(
            lit,
            "`workers` must be at least 1, since a loop needs a thread to run on",
        )),
        Ok(n) => Ok((n, lit.span())),
        Err(_) => Err(too_large(lit)),
    }
}

fn too_large(lit: &LitInt) -> syn::Error {
    syn::Error::new_spanned(lit, "`workers` is too large to fit in a `usize`")
}

fn debug(value: &Expr) -> syn::Result<LitBool> {
    match literal(value) {
        Some(Lit::Bool(lit)) => Ok(lit.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            "`debug` expects `true` or `false`, such as `debug = true`",
        )),
    }
}

fn krate(value: &Expr) -> syn::Result<Path> {
    let Some(Lit::Str(lit)) = literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            "`crate` expects a string literal holding a path, such as `crate = \"polyloop\"`",
        ));
    };
    let mut path: Path = lit.parse().map_err(|_| {
        syn::Error::new_spanned(
            lit,
            format!(
                "`{}` is not a path; `crate` expects the path to the polyloop crate, such as `\"polyloop\"`",
                lit.value()
            ),
        )
    })?;
    // Resolve the generated code's paths as if the user had typed the string
    // where the literal stands, so a bad path is reported there.
    for segment in &mut path.segments {
        segment.ident.set_span(lit.span());
    }
    Ok(path)
}

/// The literal behind `value`, if it is one.
fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, attrs }) if attrs.is_empty() => Some(lit),
        _ => None,
    }
}

/// Checks what the macro needs of the function itself.
fn signature(kind: Kind, item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            format!(
                "the `async` keyword is missing from the function declaration; `{}` runs an `async fn`",
                kind.attribute()
            ),
        ));
    }

    // `#[policy_main]` on another name is allowed (it becomes a blocking fn, as
    // with tokio); only the real entry point is held to `main`'s rules.
    let what = match kind {
        Kind::Main if sig.ident == "main" => Some("the `main` function"),
        Kind::Main => None,
        Kind::Test => Some("a test function"),
    };
    let Some(what) = what else { return };

    if !sig.inputs.is_empty() {
        errors
            .push(syn::Error::new_spanned(&sig.inputs, format!("{what} cannot accept arguments")));
    }
    // `Generics` prints only `<...>`, so a bare `where` clause needs its own span.
    let generics: Option<&dyn ToTokens> = if !sig.generics.params.is_empty() {
        Some(&sig.generics)
    } else {
        sig.generics.where_clause.as_ref().map(|w| w as &dyn ToTokens)
    };
    if let Some(generics) = generics {
        errors.push(syn::Error::new_spanned(
            generics,
            format!("{what} cannot have generic parameters"),
        ));
    }
    if kind == Kind::Test {
        for attr in &item.attrs {
            if attr.path().is_ident("test") {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "`#[policy_test]` already adds `#[test]`, so remove this one",
                ));
            }
        }
    }
}

/// Errors collected so far, combined into one.
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }
}
