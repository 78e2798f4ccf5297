//! The control socket: how the small commands (`status`, `down`, `logs`)
//! and a second `up` talk to the running daemon. A Unix socket (a named
//! pipe on Windows) in the user's runtime dir, 0600 in a 0700 directory.
//! The protocol is one JSON request line; the answer is one JSON line, or
//! for `logs`, lines of text until the daemon or the client ends it.

pub mod client;
pub mod server;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Moves the control socket's directory (tests run many daemons at once).
pub const RUNTIME_DIR_ENV: &str = "DEVINGRESS_RUNTIME_DIR";

/// What a front end asks the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// The status model.
    Status,
    /// Stop cleanly.
    Down,
    /// The last `lines` log lines, then (with `follow`) new ones as they come.
    Logs {
        /// Keep sending new lines.
        follow: bool,
        /// How many past lines first.
        lines: usize,
    },
    /// Answer every request with a 503 until resumed.
    Pause,
    /// Serve again.
    Resume,
    /// Restart watching another kubeconfig context.
    SwitchContext {
        /// The context.
        context: String,
    },
}

/// The daemon's answer to everything but `status` and `logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether it was done.
    pub ok: bool,
    /// What happened.
    pub message: String,
}

/// What the daemon does on request, beyond answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop.
    Down,
    /// Stop, then start again on this context.
    SwitchContext(String),
}

/// Why the control socket cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No daemon answers.
    #[error("devingress is not running (no answer on {0})")]
    NotRunning(String),
    /// A daemon runs already.
    #[error("devingress is already running (pid {pid}, context {context}, {hosts} host(s))")]
    AlreadyRunning {
        /// Its process id.
        pid: u32,
        /// Its context.
        context: String,
        /// How many hosts it serves.
        hosts: usize,
    },
    /// Another daemon holds the lock and is starting (it does not answer yet).
    #[error("devingress is already running (another `up` holds {lock} and is starting)")]
    Starting {
        /// The lock file.
        lock: String,
    },
    /// The socket or its directory could not be made or used.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The other side said something unexpected.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

/// Where the control socket is: `$DEVINGRESS_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/devingress`, else a per-user directory in the temp dir.
/// On Windows, a named pipe per user.
pub fn socket_path() -> PathBuf {
    if cfg!(windows) {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
        return PathBuf::from(format!(r"\\.\pipe\devingress-{user}"));
    }
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = var(RUNTIME_DIR_ENV)
        .or_else(|| var("XDG_RUNTIME_DIR").map(|d| d.join("devingress")))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("devingress-{}", user_id())));
    dir.join("control.sock")
}

fn user_id() -> String {
    #[cfg(unix)]
    {
        // SAFETY: getuid cannot fail and touches no memory.
        unsafe { libc::getuid() }.to_string()
    }
    #[cfg(not(unix))]
    std::env::var("USERNAME").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_object_each() {
        let r = Request::Logs { follow: true, lines: 20 };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"command":"logs","follow":true,"lines":20}"#);
        assert_eq!(serde_json::from_str::<Request>(r#"{"command":"down"}"#).unwrap(), Request::Down);
        let s = Request::SwitchContext { context: "kind-dev".into() };
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"command":"switch-context","context":"kind-dev"}"#);
    }
}
