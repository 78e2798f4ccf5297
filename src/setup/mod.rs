//! `devingress setup`: the one-time privileged work, as a plan of steps
//! that is printed (what, why, and exactly what changes) before it is
//! carried out, and that `setup --undo` takes back. One file per platform
//! builds the plan; the plans are plain data, so every platform's plan is
//! tested on every platform.

pub mod linux;
pub mod macos;
pub mod windows;

use std::path::PathBuf;

use crate::resolver::SystemPaths;

/// The text every file `setup` writes starts with; `--undo` removes only
/// files that carry it.
pub const MARKER: &str = "managed by devingress (`devingress setup`); `devingress setup --undo` removes it";

/// Who the set-up is for: the user who will run `devingress up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The numeric user and group, where the OS has them.
    pub ids: Option<(u32, u32)>,
}

/// One change to the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write a file (its text starts with a comment holding [`MARKER`]),
    /// owned by root, or by the user when `user_owned`.
    WriteFile {
        /// The file's real path.
        path: PathBuf,
        /// Its text.
        contents: String,
        /// Its mode.
        mode: u32,
        /// Whether the user owns it (so that `up` can rewrite it).
        user_owned: bool,
    },
    /// Create a directory owned by the user (removed with its files on undo).
    UserDir {
        /// The directory's real path.
        path: PathBuf,
    },
    /// Run a command; `undo` is the command that takes it back.
    Run {
        /// The command line.
        argv: Vec<String>,
        /// The command that takes it back, if any.
        undo: Option<Vec<String>>,
    },
    /// Run a command on undo only (after everything later in the plan is undone).
    OnUndo {
        /// The command line.
        argv: Vec<String>,
    },
}

impl Action {
    /// One line saying what it changes.
    pub fn describe(&self) -> String {
        match self {
            Action::WriteFile { path, mode, user_owned, .. } => format!(
                "write {} (mode {mode:o}, owned by {})",
                path.display(),
                if *user_owned { "you" } else { "root" }
            ),
            Action::UserDir { path } => format!("create {} owned by you", path.display()),
            Action::Run { argv, .. } => format!("run: {}", argv.join(" ")),
            Action::OnUndo { argv } => format!("(undo runs: {})", argv.join(" ")),
        }
    }
}

/// One step: a purpose and the changes that serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step does.
    pub title: String,
    /// Why `up` needs it.
    pub why: String,
    /// The changes (none for a step that only explains).
    pub actions: Vec<Action>,
    /// Whether it is for one user (a package's install script, which runs
    /// for no user, skips these: `--system-only`).
    pub per_user: bool,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A file or directory could not be written or removed.
    #[error("cannot change {path}: {source}")]
    File {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A command failed (or could not start); says which and why.
    #[error(transparent)]
    Command(#[from] crate::resolver::ResolverError),
}

/// What this machine is, as far as the plan cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    /// Linux, with what runs its resolver.
    Linux {
        /// systemd-resolved runs.
        resolved: bool,
        /// NetworkManager has a dnsmasq drop-in directory.
        nm_dnsmasq: bool,
    },
    /// macOS.
    Macos,
    /// Windows.
    Windows,
}

impl Platform {
    /// This machine.
    pub fn detect(sys: &SystemPaths) -> Self {
        if cfg!(target_os = "macos") {
            Platform::Macos
        } else if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Linux {
                resolved: sys.resolved_runtime_dir().is_dir(),
                nm_dnsmasq: sys.file("/etc/NetworkManager/dnsmasq.d").is_dir(),
            }
        }
    }
}

/// The plan for `platform`, for `user` running the binary at `exe`.
pub fn plan(platform: &Platform, user: &User, exe: &std::path::Path) -> Vec<Step> {
    match platform {
        Platform::Linux { resolved, nm_dnsmasq } => linux::plan(user, exe, *resolved, *nm_dnsmasq),
        Platform::Macos => macos::plan(user),
        Platform::Windows => windows::plan(),
    }
}

/// Prints the plan, step by step.
pub fn explain(steps: &[Step]) -> String {
    let mut out = String::new();
    for (i, s) in steps.iter().enumerate() {
        out.push_str(&format!("{}. {}\n   why: {}\n", i + 1, s.title, s.why));
        for a in &s.actions {
            out.push_str(&format!("   - {}\n", a.describe()));
        }
    }
    out
}

/// Carries out the plan under `sys`'s root, saying each step before doing
/// it; stops at the first failure.
pub fn apply(steps: &[Step], user: &User, sys: &SystemPaths, say: &mut dyn FnMut(String)) -> Result<(), SetupError> {
    for (i, s) in steps.iter().enumerate() {
        if s.actions.is_empty() {
            continue;
        }
        say(format!("{}. {}", i + 1, s.title));
        for a in s.actions.iter().filter(|a| !matches!(a, Action::OnUndo { .. })) {
            say(format!("   {}", a.describe()));
            run_action(a, user, sys)?;
        }
    }
    Ok(())
}

/// Takes the plan back, last change first; goes on past failures and
/// returns them.
pub fn undo(steps: &[Step], sys: &SystemPaths, say: &mut dyn FnMut(String)) -> Vec<SetupError> {
    let mut errors = Vec::new();
    for a in steps.iter().flat_map(|s| s.actions.iter()).rev() {
        let done = match a {
            Action::WriteFile { path, .. } => {
                let real = sys.file(&path.to_string_lossy());
                match std::fs::read_to_string(&real) {
                    Ok(t) if t.lines().next().is_some_and(|l| l.contains(MARKER)) => {
                        say(format!("remove {}", path.display()));
                        std::fs::remove_file(&real).map_err(|source| SetupError::File { path: path.clone(), source })
                    }
                    Ok(_) => {
                        say(format!("leave {} alone: devingress did not write it", path.display()));
                        Ok(())
                    }
                    Err(_) => Ok(()),
                }
            }
            Action::UserDir { path } => {
                let real = sys.file(&path.to_string_lossy());
                if real.exists() {
                    say(format!("remove {}", path.display()));
                    std::fs::remove_dir_all(&real).map_err(|source| SetupError::File { path: path.clone(), source })
                } else {
                    Ok(())
                }
            }
            Action::Run { undo: Some(argv), .. } | Action::OnUndo { argv } => {
                say(format!("run: {}", argv.join(" ")));
                run(argv)
            }
            Action::Run { undo: None, .. } => Ok(()),
        };
        if let Err(e) = done {
            say(format!("   failed: {e}"));
            errors.push(e);
        }
    }
    errors
}

fn run_action(a: &Action, user: &User, sys: &SystemPaths) -> Result<(), SetupError> {
    match a {
        Action::WriteFile { path, contents, mode, user_owned } => {
            let real = sys.file(&path.to_string_lossy());
            let err = |source| SetupError::File { path: path.clone(), source };
            if let Some(dir) = real.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            crate::paths::write_atomic(&real, contents.as_bytes(), false).map_err(err)?;
            set_mode(&real, *mode).map_err(err)?;
            if *user_owned {
                give_to(&real, user).map_err(err)?;
            }
            Ok(())
        }
        Action::UserDir { path } => {
            let real = sys.file(&path.to_string_lossy());
            let err = |source| SetupError::File { path: path.clone(), source };
            std::fs::create_dir_all(&real).map_err(err)?;
            set_mode(&real, 0o755).map_err(err)?;
            give_to(&real, user).map_err(err)
        }
        Action::Run { argv, .. } => run(argv),
        Action::OnUndo { .. } => Ok(()),
    }
}

fn run(argv: &[String]) -> Result<(), SetupError> {
    crate::resolver::Program::new(&argv[0]).run(&argv[1..])?;
    Ok(())
}

fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

fn give_to(path: &std::path::Path, user: &User) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some((uid, gid)) = user.ids {
        return std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
    let _ = (path, user);
    Ok(())
}

/// The user `setup` works for: the one who ran `sudo`, else this one.
pub fn invoking_user() -> User {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let name = var("SUDO_USER").or_else(|| var("USER")).or_else(|| var("USERNAME")).unwrap_or_else(|| "root".into());
    #[cfg(unix)]
    let ids = match (var("SUDO_UID"), var("SUDO_GID")) {
        (Some(u), Some(g)) => u.parse().ok().zip(g.parse().ok()),
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        _ => Some(unsafe { (libc::getuid(), libc::getgid()) }),
    };
    #[cfg(not(unix))]
    let ids = None;
    User { name, ids }
}

/// Whether this process runs as root (administrator on Windows is not
/// detected: Windows steps only explain).
pub fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid cannot fail and touches no memory.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    false
}
