//! Child processes: [`Command`] and [`Child`], whose ends are awaited through the
//! policy's [`ChildWatcher`].
//!
//! ```
//! use polyloop::process::Command;
//!
//! polyloop::block_on(async {
//!     let status = Command::new("sh").arg("-c").arg("exit 3").status().await?;
//!     assert_eq!(status.code(), Some(3));
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The names are std's and tokio's, so that their users' code ports by changing
//! imports: [`Child::wait`], [`Child::try_wait`], [`Child::wait_with_output`],
//! [`Child::id`] (`None` once the child is reaped), [`Child::kill`] and
//! [`Child::signal`]. One child's pipe becomes the next child's stdio with
//! [`ChildStdout::into_stdio`] (`examples/pipeline.rs` pipes three together). A child
//! that cannot start gives an error that names the program and says what was wrong,
//! with std's error (and its OS error code) kept inside: see [`SpawnError`].
//!
//! Each child's end is a future from the watcher ([`ChildWatcher::watch`]); see
//! [`watcher`] for the kinds and `POLYLOOP_CHILD_WATCHER`.
//!
//! Starting a child blocks the calling thread until the child has exec'd. With
//! [`Command::start_on_spawner`], [`Command::status`] and [`Command::output`] start it
//! on a spawner thread instead, so that a loop's thread goes on meanwhile and many
//! children start in parallel (see there for what that changes for the child).

mod child;
mod command;
mod pipe;
mod spawn_error;
mod spawner;
pub mod watcher;

pub use child::{Child, PidFd};
pub use command::Command;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use spawn_error::SpawnError;
pub use std::process::{ExitStatus, Output, Stdio};
pub use watcher::{
    CHILD_WATCHER_ENV, ChildExit, ChildWatchError, ChildWatcher, FastChildWatcher,
    MultiLoopChildWatcher, PidfdChildWatcher, SafeChildWatcher, ThreadedChildWatcher, WatcherKind,
    default_watcher,
};
