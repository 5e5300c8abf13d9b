//! Step three: write the blocking function that runs the `async` body on a
//! fresh loop through `<crate>::__private`.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ItemFn;

use crate::validate::{Config, Kind};

/// Expands `item` into a sync fn with the same name, visibility, attributes and
/// return type, whose body hands `async move { <body> }` to the runtime.
///
/// The output type is never named: it is inferred from the fn's return type,
/// so `-> Result<(), E>`, `-> impl Trait` and `-> !` all go through.
pub(crate) fn expand(kind: Kind, config: &Config, mut item: ItemFn) -> TokenStream {
    let policy = option(config.policy.as_ref().map(ToTokens::to_token_stream));
    let workers = option(config.workers.map(|(n, span)| {
        let mut lit = Literal::usize_unsuffixed(n);
        lit.set_span(span);
        lit.into_token_stream()
    }));
    let debug = option(config.debug.as_ref().map(ToTokens::to_token_stream));

    let (runner, test) = match kind {
        Kind::Main => (quote!(policy_main), None),
        Kind::Test => {
            // We add `#[test]` ourselves; a second one would run the test twice
            // (validation has already reported it).
            item.attrs.retain(|attr| !attr.path().is_ident("test"));
            (quote!(policy_test), Some(quote!(#[::core::prelude::v1::test])))
        }
    };

    item.sig.asyncness = None;
    let ItemFn { attrs, vis, sig, block } = item;

    // A body whose value does not match the return type is reported at the
    // call below, so give the call the span of the body's last token: the error
    // then points into the user's code instead of at the attribute.
    let last = block
        .stmts
        .last()
        .and_then(|stmt| stmt.to_token_stream().into_iter().last())
        .map_or_else(|| block.brace_token.span.close(), |token| token.span());
    // The whole call must carry that span, so the default path does too; a
    // `crate = "..."` path keeps the literal's span for resolution errors.
    let krate = match &config.krate {
        Some(path) => path.to_token_stream(),
        None => quote_spanned!(last=> ::polyloop),
    };
    let body = Ident::new("__polyloop_body", Span::mixed_site());
    let run = quote_spanned! {last=>
        #krate::__private::#runner(
            #krate::__private::MainConfig {
                policy: #policy,
                workers: #workers,
                debug: #debug,
            },
            #body,
        )
    };

    // The `let` is there for the `allow`: `async fn main() { run().await }`
    // is idiomatic, but as a block it would trip clippy's lint.
    quote! {
        #test
        #(#attrs)*
        #vis #sig {
            #[allow(clippy::redundant_async_block)]
            let #body = async move #block;
            #run
        }
    }
}

/// `Some(value)` or `None`, spelled so a user's own `Some` cannot shadow it.
fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}
