//! Child processes: [`Command`] and [`Child`], whose ends are awaited through the
//! policy's [`ChildWatcher`].
//!
//! ```
//! use polyloop::process::{ChildWatcher, default_watcher};
//!
//! let watcher = default_watcher()?;
//! let child = std::process::Command::new("sh").args(["-c", "exit 3"]).spawn()?;
//! let status = polyloop::block_on(watcher.watch(child.id()))?;
//! assert_eq!(status.code(), Some(3));
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod watcher;

pub use watcher::{
    CHILD_WATCHER_ENV, ChildExit, ChildWatchError, ChildWatcher, FastChildWatcher,
    MultiLoopChildWatcher, PidfdChildWatcher, SafeChildWatcher, ThreadedChildWatcher, WatcherKind,
    default_watcher,
};
