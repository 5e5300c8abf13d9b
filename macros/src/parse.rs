//! Step one: turn the attribute's tokens into `key = value` pairs.
//!
//! Nothing here knows which keys exist or what their values mean; that is
//! `validate`'s job, so every misuse is reported in one place and with the span
//! of the token that is wrong.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

/// One `key = value` argument, as written. `value` is `None` for a bare `key`,
/// which `validate` reports with an example for that key.
pub(crate) struct Arg {
    pub(crate) key: Ident,
    pub(crate) value: Option<Expr>,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            // `#[policy_main("threadpool")]`: say how to write what was meant.
            let lit: LitStr = input.parse()?;
            return Err(syn::Error::new_spanned(
                &lit,
                format!(
                    "arguments are `key = value`; to pick a policy, write `policy = {}`",
                    lit.to_token_stream()
                ),
            ));
        }
        // `parse_any` so that the keyword `crate` is accepted as a key.
        let key = Ident::parse_any(input)?;
        if input.peek(Token![,]) || input.is_empty() {
            return Ok(Arg { key, value: None });
        }
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(Arg { key, value: Some(value) })
    }
}

/// Parses the tokens inside `#[policy_main(...)]`: `key = value` pairs
/// separated by commas, a trailing comma allowed.
pub(crate) fn args(tokens: TokenStream) -> syn::Result<Vec<Arg>> {
    let args = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens)?;
    Ok(args.into_iter().collect())
}
