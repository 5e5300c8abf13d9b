//! `Command`: std's process builder, spawning through a child watcher.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{CommandArgs, CommandEnvs, ExitStatus, Output, Stdio};
use std::sync::Arc;

use rustix::process::Pid;

use super::child::Child;
use super::spawn_error::{NulByte, SpawnError};
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
///
/// # Errors
///
/// A child that cannot start gives an error of the kind std gives, whose message
/// names the program (or its working directory) and says what was wrong; it carries a
/// [`SpawnError`], where std's own error, with its OS error code, is kept.
pub struct Command {
    inner: std::process::Command,
    /// Who chose what `inner` holds for each stdio stream.
    stdin: Chosen,
    stdout: Chosen,
    stderr: Chosen,
    kill_on_drop: bool,
    on_spawner: bool,
    watcher: Option<Arc<dyn ChildWatcher>>,
    /// The first NUL byte given to it, which std keeps out of sight (its getters show
    /// `<string-with-nul>` instead), for the spawn's error to point at.
    nul: Option<NulByte>,
}

impl Command {
    /// A command that runs `program`.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        let program = program.as_ref();
        let mut cmd = Command::from(std::process::Command::new(program));
        note_nul(&mut cmd.nul, program, || NulByte::in_program(program));
        cmd
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        let arg = arg.as_ref();
        note_nul(&mut self.nul, arg, || NulByte::in_arg(self.inner.get_args().count() + 1, arg));
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        let (key, val) = (key.as_ref(), val.as_ref());
        note_nul(&mut self.nul, key, || NulByte::in_env(key));
        note_nul(&mut self.nul, val, || NulByte::in_env(key));
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
        for (key, val) in vars {
            self.env(key, val);
        }
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
        let dir = dir.as_ref();
        note_nul(&mut self.nul, dir.as_os_str(), || NulByte::in_dir(dir));
        self.inner.current_dir(dir);
        self
    }

    /// The child's stdin ([`Stdio::piped`] gives an async pipe, [`ChildStdin`]). Kept
    /// for every later spawn, as std does. Unset, it is inherited, except by
    /// [`output`](Command::output), which gives the child a null stdin.
    ///
    /// [`ChildStdin`]: super::ChildStdin
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin = Chosen::Caller;
        self
    }

    /// The child's stdout ([`Stdio::piped`] gives an async pipe, [`ChildStdout`]). Kept
    /// for every later spawn, as std does. Unset, it is inherited, except by
    /// [`output`](Command::output), which pipes it.
    ///
    /// [`ChildStdout`]: super::ChildStdout
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout = Chosen::Caller;
        self
    }

    /// The child's stderr ([`Stdio::piped`] gives an async pipe, [`ChildStderr`]). Kept
    /// for every later spawn, as std does. Unset, it is inherited, except by
    /// [`output`](Command::output), which pipes it.
    ///
    /// [`ChildStderr`]: super::ChildStderr
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr = Chosen::Caller;
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
    /// - the environment and current directory are read when the spawner starts it;
    /// - a [`pre_exec`](Command::pre_exec) closure runs in a fork of the spawner
    ///   thread, and sees that thread's state (see there).
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
    /// closed or inactive ([`ChildWatchError::Inactive`]), the reactor cannot start
    /// (no thread or fd left under a resource limit; no child is forked then, and
    /// nothing panics), the child cannot start (an error of std's kind, whose message
    /// names the program or directory and says what was wrong; std's error and its OS
    /// error code are in its [`SpawnError`]), or the watcher refuses the child once it
    /// is started (e.g. it was closed meanwhile by another thread): the child is then
    /// killed and reaped before this returns.
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_with(Fallback::Inherit, Fallback::Inherit)
    }

    /// `spawn`, with the stdio streams the caller did not set made as `stdin` says (for
    /// stdin) and `out` says (for stdout and stderr).
    fn spawn_with(&mut self, stdin: Fallback, out: Fallback) -> io::Result<Child> {
        let watcher = self.prepare(stdin, out)?;
        launch(&mut self.inner, &watcher, self.kill_on_drop, self.nul.as_ref())
    }

    /// `spawn_with`, on a spawner thread if asked ([`Command::start_on_spawner`]) and
    /// the watcher allows it.
    async fn start(&mut self, stdin: Fallback, out: Fallback) -> io::Result<Child> {
        // A fast watcher (open anywhere in the process) could reap a child that failed
        // to exec before std's spawn, on the spawner thread, waits for it.
        if !self.on_spawner || polling::any_child_may_be_reaped() {
            return self.spawn_with(stdin, out);
        }
        let watcher = self.prepare(stdin, out)?;
        let kill_on_drop = self.kill_on_drop;
        let nul = self.nul.clone();
        let start = move |cmd: &mut _| launch(cmd, &watcher, kill_on_drop, nul.as_ref());
        spawner::spawn(&mut self.inner, start).await
    }

    /// What a spawn decides on the calling thread: the watcher (attached to this
    /// thread's running loop if it is inactive and this is the main thread, as asyncio
    /// does), and the stdio of this spawn.
    fn prepare(&mut self, stdin: Fallback, out: Fallback) -> io::Result<Arc<dyn ChildWatcher>> {
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
        let inner = &mut self.inner;
        stdin.settle(&mut self.stdin, |s| _ = inner.stdin(s));
        out.settle(&mut self.stdout, |s| _ = inner.stdout(s));
        out.settle(&mut self.stderr, |s| _ = inner.stderr(s));
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
        self.start(Fallback::Inherit, Fallback::Inherit).await?.wait().await
    }

    /// Runs the child to its end, collecting its stdout and stderr (piped unless set;
    /// stdin is null unless set). The child is started as by [`status`](Command::status).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn) and [`Child::wait_with_output`].
    pub async fn output(&mut self) -> io::Result<Output> {
        self.start(Fallback::Null, Fallback::Piped).await?.wait_with_output().await
    }

    /// The program, as given to [`Command::new`].
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// The arguments, without the program.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut cmd = polyloop::process::Command::new("ls");
    /// cmd.args(["-l", "/"]);
    /// assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["-l", "/"]);
    /// ```
    pub fn get_args(&self) -> CommandArgs<'_> {
        self.inner.get_args()
    }

    /// The environment variables set (`Some`) or removed (`None`) for the child, beyond
    /// what it inherits.
    pub fn get_envs(&self) -> CommandEnvs<'_> {
        self.inner.get_envs()
    }

    /// The child's working directory, if set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.inner.get_current_dir()
    }

    /// Whether the child is killed when its [`Child`] is dropped before it ended (see
    /// [`kill_on_drop`](Command::kill_on_drop)).
    pub fn get_kill_on_drop(&self) -> bool {
        self.kill_on_drop
    }

    /// The std `Command` inside, to read what it holds.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// The std `Command` inside, for what this one has no method for (its
    /// `CommandExt` traits, say).
    ///
    /// Stdio set here is kept by [`spawn`](Command::spawn) and
    /// [`status`](Command::status) until a call to [`output`](Command::output), which
    /// sets its own defaults in its place; stdio set through
    /// [`stdin`](Command::stdin), [`stdout`](Command::stdout) and
    /// [`stderr`](Command::stderr) is kept by all three.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// The std `Command` inside, with what was set on it (stdio too).
    pub fn into_std(self) -> std::process::Command {
        self.inner
    }

    /// The child's `argv[0]`, which programs show as their name (the program to run is
    /// still the one given to [`Command::new`]). Unix only.
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::process::Command;
    ///
    /// let out = polyloop::block_on(
    ///     Command::new("sh").arg0("my-shell").args(["-c", "echo $0"]).output(),
    /// )?;
    /// assert_eq!(out.stdout, b"my-shell\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn arg0(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        let arg = arg.as_ref();
        note_nul(&mut self.nul, arg, || NulByte::in_arg0(arg));
        self.inner.arg0(arg);
        self
    }

    /// Runs the child as user `id` (`setuid`). Unix only; the spawn fails with
    /// `EPERM` unless this process may take that user.
    pub fn uid(&mut self, id: u32) -> &mut Command {
        self.inner.uid(id);
        self
    }

    /// Runs the child as group `id` (`setgid`). Unix only; the spawn fails with
    /// `EPERM` unless this process may take that group.
    pub fn gid(&mut self, id: u32) -> &mut Command {
        self.inner.gid(id);
        self
    }

    /// Puts the child in process group `pgroup` (`setpgid`): 0 makes a new group whose
    /// id is the child's pid, so that a signal to the group reaches the child and
    /// whatever it starts, and a terminal's Ctrl-C does not. Unix only.
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::process::{Command, Stdio};
    ///
    /// let out = polyloop::block_on(
    ///     Command::new("sh").args(["-c", "ps -o pgid= -p $$"]).process_group(0).output(),
    /// )?;
    /// let pgid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    /// assert_ne!(pgid, rustix::process::getpgrp().as_raw_nonzero().get() as u32);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn process_group(&mut self, pgroup: i32) -> &mut Command {
        self.inner.process_group(pgroup);
        self
    }

    /// Runs `f` in the child after it is forked and before it execs the program (after
    /// std's own steps: stdio, working directory, `uid`/`gid`/`process_group`). An
    /// error from `f` fails the spawn with that error. Unix only.
    ///
    /// With a `pre_exec` closure, std starts the child with `fork` rather than
    /// `posix_spawn` or `vfork`, which costs more per child.
    ///
    /// # Safety
    ///
    /// `f` runs in the forked child, where only the thread that forked exists: a lock
    /// held by any other thread of this process at the fork (the allocator's, a
    /// `Mutex`, stdout's) stays held forever. So `f` must do only what is
    /// async-signal-safe (see `signal-safety(7)`): raw system calls (`setsid`,
    /// `prctl`, `dup2`, `close`, `setrlimit`, ...), no allocation, no locks, no
    /// printing, no panics. This process always has other threads (the reactor's, a
    /// loop's, spawner threads), so none of this is theoretical. `f` must also not
    /// close or replace the file descriptors std uses to report a failed exec.
    ///
    /// **Spawner threads.** With [`start_on_spawner`](Command::start_on_spawner), the
    /// child is forked from a spawner thread, and `f` runs in that copy of it: what `f`
    /// sees of the forking thread (thread-locals, signal mask, CPU affinity, the thread
    /// name, `PR_SET_PDEATHSIG`'s parent thread) is the spawner thread's, not the
    /// caller's. That is why `f` must be `Send + Sync`: it is moved to the spawner
    /// thread with the command, and is lent there for the time of the spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::process::Command;
    ///
    /// let mut cmd = Command::new("sh");
    /// cmd.args(["-c", "ps -o sid= -p $$; ps -o sid= -p $PPID"]);
    /// // SAFETY: setsid is a single async-signal-safe system call.
    /// unsafe { cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into)) };
    /// let out = polyloop::block_on(cmd.output())?;
    /// let sids: Vec<_> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    /// assert_ne!(sids[0], sids[1], "the child leads a session of its own");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        // SAFETY: our caller upholds `CommandExt::pre_exec`'s contract, which is ours
        // (see `# Safety`).
        unsafe { self.inner.pre_exec(f) };
        self
    }
}

/// Remembers in `slot` where the first NUL byte was given, if `s` holds one.
fn note_nul(slot: &mut Option<NulByte>, s: &OsStr, place: impl FnOnce() -> NulByte) {
    if slot.is_none() && s.as_encoded_bytes().contains(&0) {
        *slot = Some(place());
    }
}

/// Starts the child of `cmd`, watched by `watcher` from the start.
fn launch(
    cmd: &mut std::process::Command,
    watcher: &Arc<dyn ChildWatcher>,
    kill_on_drop: bool,
    nul: Option<&NulByte>,
) -> io::Result<Child> {
    // What can fail for want of a thread or an fd (the reactor, which the watcher and
    // the pipes need) is set up before the fork, so that it fails with no child.
    super::watcher::reactor::start()?;
    let mut std_child = cmd.spawn().map_err(|e| SpawnError::wrap(cmd, nul, e))?;
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

/// Who chose what the std command holds for one of the child's stdio streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chosen {
    /// Nobody since the command was made: std's default (inherit), or what the std
    /// `Command` it was made from holds.
    Nobody,
    /// The last spawn, with its method's [`Fallback`].
    Fallback,
    /// The caller, with `stdin`, `stdout` or `stderr`: kept for every spawn.
    Caller,
}

/// What a spawn method gives a stdio stream that the caller did not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fallback {
    Inherit,
    Null,
    Piped,
}

impl Fallback {
    /// Sets this fallback with `set` unless the caller chose the stream, or nobody did
    /// and this is std's default anyway (which keeps what a std `Command` turned into
    /// ours holds).
    fn settle(self, chosen: &mut Chosen, set: impl FnOnce(Stdio)) {
        match (*chosen, self) {
            (Chosen::Caller, _) | (Chosen::Nobody, Fallback::Inherit) => {}
            _ => {
                set(match self {
                    Fallback::Inherit => Stdio::inherit(),
                    Fallback::Null => Stdio::null(),
                    Fallback::Piped => Stdio::piped(),
                });
                *chosen = Chosen::Fallback;
            }
        }
    }
}

impl From<std::process::Command> for Command {
    /// Wraps a std `Command`, keeping all it holds. Its stdio settings are kept by
    /// [`spawn`](Command::spawn) and [`status`](Command::status);
    /// [`output`](Command::output) replaces them with its own defaults (null stdin,
    /// piped stdout and stderr) unless they are set again through this `Command`.
    ///
    /// # Examples
    ///
    /// ```
    /// use polyloop::process::Command;
    ///
    /// let mut std_cmd = std::process::Command::new("sh");
    /// std_cmd.args(["-c", "exit 5"]);
    /// let status = polyloop::block_on(Command::from(std_cmd).status())?;
    /// assert_eq!(status.code(), Some(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            stdin: Chosen::Nobody,
            stdout: Chosen::Nobody,
            stderr: Chosen::Nobody,
            kill_on_drop: false,
            on_spawner: false,
            watcher: None,
            nul: None,
        }
    }
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
