//! `SpawnError`: why a child could not be started, in words that name the program.

use std::error::Error;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::Path;

/// Why [`Command::spawn`](super::Command::spawn) (or `status`, `output`) could not start
/// the child: std's error, with a message that names the program (or its working
/// directory) and says what was wrong.
///
/// It travels inside an [`io::Error`] of the same [`kind`](io::Error::kind) as std's;
/// get it back with [`SpawnError::from_io`]. That `io::Error` has no
/// [`raw_os_error`](io::Error::raw_os_error) of its own (`io::Error::new` drops it): read
/// the OS error code with [`SpawnError::raw_os_error`], or from std's error, which is
/// the outer error's [`source`](Error::source) and this one's
/// [`io_error`](SpawnError::io_error).
///
/// # Examples
///
/// ```
/// use std::error::Error;
/// use polyloop::process::{Command, SpawnError};
///
/// let err = Command::new("polyloop-no-such-program").spawn().unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert!(err.to_string().contains("\"polyloop-no-such-program\""), "{err}");
/// assert!(err.to_string().contains("PATH"), "{err}");
/// let spawn = SpawnError::from_io(&err).unwrap();
/// assert_eq!(spawn.raw_os_error(), Some(2)); // ENOENT
/// let std_err = err.source().unwrap().downcast_ref::<std::io::Error>().unwrap();
/// assert_eq!(std_err.raw_os_error(), Some(2));
/// ```
#[derive(Debug)]
pub struct SpawnError {
    message: String,
    program: OsString,
    error: io::Error,
}

impl SpawnError {
    /// `error`, std's reason why `cmd` could not start, as an `io::Error` of the same
    /// kind that carries a `SpawnError`. `nul` is where a NUL byte was given, if one was.
    pub(crate) fn wrap(
        cmd: &std::process::Command,
        nul: Option<&NulByte>,
        error: io::Error,
    ) -> io::Error {
        let program = match nul {
            Some(NulByte { program: Some(program), .. }) => program.clone(),
            _ => cmd.get_program().to_os_string(),
        };
        let message = describe(cmd, &program, nul, &error);
        io::Error::new(error.kind(), SpawnError { message, program, error })
    }

    /// The `SpawnError` inside `err`, if it carries one.
    pub fn from_io(err: &io::Error) -> Option<&SpawnError> {
        err.get_ref()?.downcast_ref::<SpawnError>()
    }

    /// The program that could not start, as given to `Command::new`.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// std's error, as `std::process::Command::spawn` returned it.
    pub fn io_error(&self) -> &io::Error {
        &self.error
    }

    /// The OS error code of std's error (e.g. `ENOENT`), if it has one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.error.raw_os_error()
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.error)
    }
}

impl Error for SpawnError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

/// Where a NUL byte was given to a command: std refuses to spawn it, and its getters
/// show `<string-with-nul>` in place of the string.
#[derive(Clone, Debug)]
pub(crate) struct NulByte {
    /// "argument 2 (\"a\\0b\")", and so on.
    place: String,
    /// The program's name, when it is what holds the NUL byte.
    program: Option<OsString>,
}

impl NulByte {
    pub(crate) fn in_program(program: &OsStr) -> NulByte {
        NulByte { place: "its name".to_string(), program: Some(program.to_os_string()) }
    }

    /// In argument `n` (from 1).
    pub(crate) fn in_arg(n: usize, arg: &OsStr) -> NulByte {
        NulByte { place: format!("argument {n} ({arg:?})"), program: None }
    }

    pub(crate) fn in_arg0(arg0: &OsStr) -> NulByte {
        NulByte { place: format!("its arg0 ({arg0:?})"), program: None }
    }

    /// In the name or the value of environment variable `key`.
    pub(crate) fn in_env(key: &OsStr) -> NulByte {
        NulByte { place: format!("environment variable {key:?}"), program: None }
    }

    pub(crate) fn in_dir(dir: &Path) -> NulByte {
        NulByte { place: format!("its working directory ({dir:?})"), program: None }
    }
}

/// What was wrong, in words: the checks go from what std refuses before it starts
/// anything (an empty name, a NUL byte) to what the child's chdir or exec reported.
fn describe(
    cmd: &std::process::Command,
    program: &OsStr,
    nul: Option<&NulByte>,
    error: &io::Error,
) -> String {
    if program.is_empty() {
        return "cannot start a program with an empty name: give Command::new the program's \
                name or path"
            .to_string();
    }
    if let Some(NulByte { place, .. }) = nul {
        return format!(
            "cannot start {program:?}: {place} holds a NUL byte, which cannot be passed to a \
             program (it would end the string there); remove it"
        );
    }
    if error.kind() == io::ErrorKind::InvalidInput && cmd_has_hidden_nul(cmd) {
        // Set on a std Command, which hides where.
        return format!(
            "cannot start {program:?}: a NUL byte was given to it (in its name, an argument, \
             the environment or the working directory), which cannot be passed to a program; \
             remove it"
        );
    }
    if let Some(dir) = cmd.get_current_dir() {
        if let Some(why) = bad_dir(dir) {
            return format!(
                "cannot start {program:?} in directory {dir:?}: {why}; give current_dir a \
                 directory that exists"
            );
        }
    }
    match error.kind() {
        io::ErrorKind::NotFound if program.as_encoded_bytes().contains(&b'/') => {
            format!("cannot start {program:?}: there is no such file")
        }
        io::ErrorKind::NotFound => {
            let path = path_of(cmd).map_or_else(
                || "PATH is not set".to_string(),
                |p| format!("PATH={:?}", p.to_string_lossy()),
            );
            format!(
                "cannot start {program:?}: no program of that name is in any directory of PATH \
                 ({path}); give its full path, or add its directory to PATH"
            )
        }
        io::ErrorKind::PermissionDenied => format!(
            "cannot start {program:?}: permission denied (the file is not executable, or a \
             directory on its way cannot be searched)"
        ),
        _ => format!("cannot start {program:?}"),
    }
}

/// Whether std's getters show a string that held a NUL byte.
fn cmd_has_hidden_nul(cmd: &std::process::Command) -> bool {
    const HIDDEN: &str = "<string-with-nul>";
    cmd.get_program() == HIDDEN
        || cmd.get_args().any(|a| a == HIDDEN)
        || cmd.get_envs().any(|(k, v)| k == HIDDEN || v.is_some_and(|v| v == HIDDEN))
}

/// Why `dir` cannot be the child's working directory, if it cannot.
fn bad_dir(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => Some("it is not a directory".to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some("that directory does not exist".to_string())
        }
        Err(e) => Some(format!("it cannot be reached ({e})")),
    }
}

/// The PATH the child's program is looked up in: the command's own, if it sets one.
fn path_of(cmd: &std::process::Command) -> Option<OsString> {
    match cmd.get_envs().find(|(key, _)| *key == "PATH") {
        Some((_, value)) => value.map(OsStr::to_os_string),
        None => std::env::var_os("PATH"),
    }
}
