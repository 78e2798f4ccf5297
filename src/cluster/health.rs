//! Whether the API server is reachable, as the watchers see it, with one
//! plain message per change of state rather than one per retry.

use std::sync::Mutex;

use kube::runtime::watcher;

use crate::kubeclient::describe_error;

/// Connection state shared by all watchers.
#[derive(Debug)]
pub struct Health {
    server: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last error, while the API server is failing.
    failing: Option<String>,
    /// Whether any watch has succeeded yet.
    ever_ok: bool,
}

impl Health {
    /// State for the API server at `server`.
    pub fn new(server: &str) -> Self {
        Health { server: server.to_string(), state: Mutex::new(State::default()) }
    }

    /// A separate state for the same API server: watchers whose failures
    /// must not count as the cluster's (an optional, maybe forbidden, list).
    pub fn detached(&self) -> Self {
        Health::new(&self.server)
    }

    /// The problem the watchers have now, if any.
    pub fn problem(&self) -> Option<String> {
        self.state.lock().expect("health lock").failing.clone()
    }

    /// The API server did not answer before the watchers started, for
    /// `reason`, and the user was told: watchers failing for the same
    /// reason say nothing more.
    pub fn already_said(&self, reason: &str) {
        let mut st = self.state.lock().expect("health lock");
        st.failing = Some(format!("cannot reach the API server at {}: {reason}", self.server));
    }

    /// A watcher got an event: the API server answers.
    pub fn watch_ok(&self, _what: &str) {
        let mut st = self.state.lock().expect("health lock");
        if let Some(err) = st.failing.take() {
            tracing::info!(server = %self.server, "the API server answers again; watches resumed (last error: {err})");
        }
        st.ever_ok = true;
    }

    /// A watcher failed; it retries with backoff by itself.
    pub fn watch_failed(&self, what: &str, err: &watcher::Error) {
        let text = match err {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => describe_error(e),
            watcher::Error::WatchError(status) => format!("{} ({})", status.message, status.reason),
            other => other.to_string(),
        };
        let message = format!("cannot watch {what} on the API server at {}: {text}", self.server);
        let mut st = self.state.lock().expect("health lock");
        // Every watcher fails for the same reason when the server is gone:
        // say it once, and again only when the reason changes.
        if st.failing.as_deref().is_some_and(|f| f.ends_with(&text)) {
            tracing::debug!("{message} (still failing; retrying with backoff)");
            return;
        }
        if st.ever_ok {
            tracing::warn!("{message}; serving the last known routes and retrying with backoff");
        } else {
            tracing::warn!("{message}; retrying with backoff");
        }
        st.failing = Some(message);
    }
}
