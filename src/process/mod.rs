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
//! [`Command::status`] and [`Command::output`] start their child on a spawner thread
//! (at most four per core, each ending after half a second without work), since
//! starting a child blocks until it has exec'd: the loop's thread goes on meanwhile,
//! and many children start in parallel. [`Command::spawn`] starts it on the calling
//! thread.

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
