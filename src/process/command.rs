//! `Command`: std's process builder, spawning through a child watcher.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::Arc;

use rustix::process::Pid;

use super::child::Child;
use super::spawner;
use super::watcher::{ChildWatchError, ChildWatcher, pidfd, polling};

/// Builds and spawns a child process, as `std::process::Command` does; its end is
/// awaited through a child watcher (the current policy's, unless one is given).
///
/// # Examples
///
/// ```
/// use polyloop::process::Command;
///
/// polyloop::block_on(async {
///     let out = Command::new("sh").arg("-c").arg("echo hi; exit 2").output().await?;
///     assert_eq!(out.stdout, b"hi\n");
///     assert_eq!(out.status.code(), Some(2));
///     Ok::<(), std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    inner: std::process::Command,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    kill_on_drop: bool,
    on_spawner: bool,
    watcher: Option<Arc<dyn ChildWatcher>>,
}

impl Command {
    /// A command that runs `program`.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            inner: std::process::Command::new(program),
            stdin: None,
            stdout: None,
            stderr: None,
            kill_on_drop: false,
            on_spawner: false,
            watcher: None,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets environment variables of the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Clears the child's environment.
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// The child's stdin (inherited by default; [`Stdio::piped`] gives an async pipe).
    /// Used by the next spawn only.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stdin = Some(cfg.into());
        self
    }

    /// The child's stdout (inherited by default, piped for [`output`](Command::output)).
    /// Used by the next spawn only.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stdout = Some(cfg.into());
        self
    }

    /// The child's stderr (inherited by default, piped for [`output`](Command::output)).
    /// Used by the next spawn only.
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stderr = Some(cfg.into());
        self
    }

    /// Kill the child (SIGKILL) when its [`Child`] is dropped before it ended. It is
    /// reaped either way.
    pub fn kill_on_drop(&mut self, on: bool) -> &mut Command {
        self.kill_on_drop = on;
        self
    }

    /// Watch the child with `watcher` instead of the current policy's.
    pub fn watcher(&mut self, watcher: Arc<dyn ChildWatcher>) -> &mut Command {
        self.watcher = Some(watcher);
        self
    }

    /// Makes [`status`](Command::status) and [`output`](Command::output) start the
    /// child on a spawner thread instead of the calling one (off by default).
    ///
    /// Starting a child blocks the thread that starts it until the child has exec'd.
    /// On a loop's thread that stalls the loop for each child, and children start one
    /// at a time; on spawner threads (started on demand, four per core at most, and
    /// from 4 to 64, each ending after half a second without work) the loop goes on,
    /// and children start in parallel: with many short children, that is most of their
    /// cost.
    ///
    /// What changes for the child, which is then made by a spawner thread:
    /// - it inherits that thread's attributes, not the caller's: CPU affinity,
    ///   scheduling policy and priority, seccomp or Landlock restrictions (the spawner
    ///   thread was started by whichever thread needed one first, and has none the
    ///   caller took on since);
    /// - `PR_SET_PDEATHSIG`, which a child may set on itself, fires when that thread
    ///   ends, which is half a second after its last spawn;
    /// - the environment and current directory are read when the spawner starts it.
    ///
    /// The command is lent to the spawner meanwhile: a `status` or `output` future
    /// forgotten (`mem::forget`) before its child started leaves it empty.
    ///
    /// While a fast watcher is open anywhere in the process, children are started on
    /// the calling thread all the same: its `waitpid(-1)` could reap a child that
    /// failed to exec before std's spawn, on the spawner thread, waits for it.
    pub fn start_on_spawner(&mut self, on: bool) -> &mut Command {
        self.on_spawner = on;
        self
    }

    /// Starts the child, watched from the start.
    ///
    /// An inactive watcher (a safe or fast one whose loop does not run) is attached to
    /// the loop running on this thread when this is the main thread, as asyncio does.
    ///
    /// # Errors
    ///
    /// The policy's watcher cannot be made (a bad `POLYLOOP_CHILD_WATCHER`), it is
    /// closed or inactive ([`ChildWatchError::Inactive`]), the spawn fails (std's
    /// error, as it is), or the
    /// watcher refuses the child once it is started (e.g. it was closed meanwhile by
    /// another thread): the child is then killed and reaped before this returns.
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_with(Stdio::inherit, Stdio::inherit)
    }

    /// `spawn`, with stdio not set for this spawn made by `stdin` (for stdin) and
    /// `out` (for stdout and stderr).
    fn spawn_with(&mut self, stdin: fn() -> Stdio, out: fn() -> Stdio) -> io::Result<Child> {
        let watcher = self.prepare(stdin, out)?;
        launch(&mut self.inner, &watcher, self.kill_on_drop)
    }

    /// `spawn_with`, on a spawner thread if asked ([`Command::start_on_spawner`]) and
    /// the watcher allows it.
    async fn start(&mut self, stdin: fn() -> Stdio, out: fn() -> Stdio) -> io::Result<Child> {
        // A fast watcher (open anywhere in the process) could reap a child that failed
        // to exec before std's spawn, on the spawner thread, waits for it.
        if !self.on_spawner || polling::any_child_may_be_reaped() {
            return self.spawn_with(stdin, out);
        }
        let watcher = self.prepare(stdin, out)?;
        let kill_on_drop = self.kill_on_drop;
        spawner::spawn(&mut self.inner, move |cmd| launch(cmd, &watcher, kill_on_drop)).await
    }

    /// What a spawn decides on the calling thread: the watcher (attached to this
    /// thread's running loop if it is inactive and this is the main thread, as asyncio
    /// does), and the stdio of this spawn.
    fn prepare(
        &mut self,
        stdin: fn() -> Stdio,
        out: fn() -> Stdio,
    ) -> io::Result<Arc<dyn ChildWatcher>> {
        let watcher = match &self.watcher {
            Some(w) => w.clone(),
            None => crate::get_event_loop_policy().get_child_watcher()?,
        };
        if !watcher.is_active() && crate::is_main_thread() {
            if let Some(lp) = crate::get_running_loop() {
                watcher.attach_loop(Some(&lp));
            }
        }
        if !watcher.is_active() {
            return Err(ChildWatchError::Inactive { watcher: watcher.name().to_string() }.into());
        }
        // Set on every spawn: what std's Command holds would stay for the next one.
        self.inner.stdin(self.stdin.take().unwrap_or_else(stdin));
        self.inner.stdout(self.stdout.take().unwrap_or_else(out));
        self.inner.stderr(self.stderr.take().unwrap_or_else(out));
        Ok(watcher)
    }

    /// Runs the child to its end and returns its status (stdio inherited unless set).
    ///
    /// With [`start_on_spawner`](Command::start_on_spawner), the child is started on a
    /// spawner thread; if this future is dropped meanwhile, the command is back in place
    /// once it is (a drop while the child is being started waits for that start), and
    /// a child already started is reaped by its watcher (killed first if
    /// [`kill_on_drop`](Command::kill_on_drop)).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn) and [`Child::wait`].
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        self.start(Stdio::inherit, Stdio::inherit).await?.wait().await
    }

    /// Runs the child to its end, collecting its stdout and stderr (piped unless set;
    /// stdin is null unless set). The child is started as by [`status`](Command::status).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn) and [`Child::wait_with_output`].
    pub async fn output(&mut self) -> io::Result<Output> {
        self.start(Stdio::null, Stdio::piped).await?.wait_with_output().await
    }
}

/// Starts the child of `cmd`, watched by `watcher` from the start.
fn launch(
    cmd: &mut std::process::Command,
    watcher: &Arc<dyn ChildWatcher>,
    kill_on_drop: bool,
) -> io::Result<Child> {
    let mut std_child = cmd.spawn()?;
    let pid = std_child.id();
    // Opened before anyone can reap the child, so it names this child for good.
    // Shared with the watcher, which need not open its own.
    let pidfd = if pidfd::is_supported() {
        Pid::from_raw(pid as i32).and_then(|p| pidfd::open(p).ok()).map(Arc::new)
    } else {
        None
    };
    let exit = match &pidfd {
        Some(fd) => watcher.watch_spawned(pid, fd.clone()),
        None => watcher.watch(pid),
    };
    if let Some(err) = exit.take_error() {
        // The watcher refused the child (it was closed since `is_active`, say):
        // nobody would reap it. Kill it (through the pidfd, which cannot hit a
        // recycled pid) and reap it here, so that no zombie is left.
        let _ = match &pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(&**fd, rustix::process::Signal::KILL)
                .map_err(io::Error::from),
            None => std_child.kill(),
        };
        let _ = std_child.wait();
        return Err(err);
    }
    let mut child = Child::new(&mut std_child, exit, pidfd, kill_on_drop);
    // On failure `child` is dropped: killed if asked, reaped by the watcher.
    child.set_pipes(&mut std_child)?;
    Ok(child)
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("command", &self.inner)
            .field("kill_on_drop", &self.kill_on_drop)
            .field("start_on_spawner", &self.on_spawner)
            .field("watcher", &self.watcher.as_ref().map(|w| w.name().to_string()))
            .finish()
    }
}
