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
//! Each child's end is a future from the watcher ([`ChildWatcher::watch`]); see
//! [`watcher`] for the kinds and `POLYLOOP_CHILD_WATCHER`.
//!
//! Starting a child blocks the calling thread until the child has exec'd. With
//! [`Command::start_on_spawner`], [`Command::status`] and [`Command::output`] start it
//! on a spawner thread instead, so that a loop's thread goes on meanwhile and many
//! children start in parallel (see there for what that changes for the child).

mod child;
mod command;
mod spawner;
pub mod watcher;

pub use child::{Child, ChildStderr, ChildStdin, ChildStdout};
pub use command::Command;
pub use std::process::{ExitStatus, Output, Stdio};
pub use watcher::{
    CHILD_WATCHER_ENV, ChildExit, ChildWatchError, ChildWatcher, FastChildWatcher,
    MultiLoopChildWatcher, PidfdChildWatcher, SafeChildWatcher, ThreadedChildWatcher, WatcherKind,
    default_watcher,
};
