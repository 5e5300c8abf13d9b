//! polyloop's executor, compiled on its own so that loom can check it: the very same
//! source files as `src/executor/`, without the event loop and the reactor.
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test --release -p polyloop-loom --test loom
//! ```
#![allow(rustdoc::broken_intra_doc_links)]
// The loop-only parts of the executor (home tasks, debug locations) are unused here.
#![allow(dead_code)]

#[path = "../../../src/executor/mod.rs"]
pub mod executor;
