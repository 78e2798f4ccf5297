//! Notices the kubeconfig being edited while `up` runs: `kubectl config
//! use-context`, `kind export kubeconfig`, a cloud CLI's login. devingress
//! keeps serving the context it started on and says that the current
//! context is now another (in the log and in `status`), unless it was
//! asked to follow it (`up --follow-context`), in which case it starts
//! again on the new one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the files are looked at.
const INTERVAL: Duration = Duration::from_secs(2);

/// What `up` watches and how it answers.
pub struct KubeconfigWatch {
    /// The kubeconfig file(s) read at the start.
    pub files: Vec<PathBuf>,
    /// The context served.
    pub serving: String,
    /// `--context` was given: the current context does not choose what is served.
    pub explicit_context: bool,
    /// `--follow-context`: start again on a new current context.
    pub follow: bool,
}

/// A change the daemon shows in `status` until it is undone.
pub type Notice = Arc<Mutex<Option<String>>>;

impl KubeconfigWatch {
    /// Looks at the files every [`INTERVAL`] and says what changed; sets
    /// `notice` while the current context is not the served one; returns
    /// the context to start again on, when following.
    pub async fn run(self, notice: Notice) -> String {
        let mut seen = fingerprint(&self.files);
        let mut unreadable: Option<String> = None;
        loop {
            tokio::time::sleep(INTERVAL).await;
            let now = fingerprint(&self.files);
            if now == seen {
                continue;
            }
            seen = now;
            let current = match crate::kubeconfig::load_files(&self.files, String::new(), None) {
                Ok(loaded) => loaded.context,
                Err(e) => {
                    let why = e.to_string();
                    if unreadable.as_ref() != Some(&why) {
                        tracing::warn!(
                            "the kubeconfig changed and cannot be read now ({why}); devingress goes on serving {}",
                            self.serving
                        );
                    }
                    unreadable = Some(why);
                    continue;
                }
            };
            unreadable = None;
            let mut shown = notice.lock().expect("notice lock");
            if current == self.serving || (self.explicit_context && !self.follow) {
                if shown.take().is_some() {
                    tracing::info!("the kubeconfig's current context is {} again", self.serving);
                } else {
                    tracing::info!(
                        "the kubeconfig changed; devingress goes on with the settings it started with (context {})",
                        self.serving
                    );
                }
            } else if self.follow {
                tracing::info!(
                    "the kubeconfig's current context is now {current} (it was {}): starting again on it, as \
                     --follow-context asks",
                    self.serving
                );
                return current;
            } else {
                let text = format!(
                    "the kubeconfig's current context is now {current}; devingress still serves {}: \
                     `devingress use-context {current}` switches, `devingress up --follow-context` follows such changes",
                    self.serving
                );
                if shown.as_ref() != Some(&text) {
                    tracing::warn!("{text}");
                }
                *shown = Some(text);
            }
        }
    }
}

/// The files' contents (a kubeconfig is a few KiB; modification times can
/// miss two writes within their granularity).
fn fingerprint(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}
