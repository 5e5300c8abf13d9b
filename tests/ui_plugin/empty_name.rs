// A policy name is checked at compile time: non-empty, only a-z, 0-9, '-', '_' and '.'.
use std::sync::Arc;

polyloop::register_policy! {
    name: "",
    description: "a policy with a name that is not allowed",
    create: || Arc::new(polyloop::DefaultEventLoopPolicy::new()),
}

fn main() {}
