//! An external program that devingress runs to change the OS resolver
//! (resolvectl, nmcli, powershell). Tests point it at a stand-in script.

use std::path::PathBuf;
use std::process::Command;

use super::ResolverError;

/// A program and how to call it.
#[derive(Debug, Clone)]
pub struct Program {
    /// The program: a name looked up in `PATH`, or a path.
    pub path: PathBuf,
}

impl Program {
    /// The program `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Program { path: path.into() }
    }

    /// The command line, for messages.
    pub fn command_line(&self, args: &[String]) -> String {
        std::iter::once(self.path.display().to_string()).chain(args.iter().cloned()).collect::<Vec<_>>().join(" ")
    }

    /// Runs it with `args` and returns what it printed; a failure carries
    /// what it printed on stderr.
    pub fn run(&self, args: &[String]) -> Result<String, ResolverError> {
        let failed = |message: String| ResolverError::Command { command: self.command_line(args), message };
        let out = Command::new(&self.path).args(args).output().map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(failed(if stderr.is_empty() { out.status.to_string() } else { stderr }));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
