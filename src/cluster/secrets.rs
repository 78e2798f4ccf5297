//! Watching the TLS Secrets that Ingresses name, and only those: one watch
//! per Secret, narrowed by a `metadata.name` field selector, started and
//! stopped as the Ingresses change.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::RetryBackoff;
use crate::kubeclient::describe_error;
use crate::routes::SecretRef;

/// The referenced Secrets as last seen. Dropping it stops the watches.
pub struct SecretWatch {
    client: Client,
    tasks: HashMap<SecretRef, AbortHandle>,
    secrets: Arc<Mutex<HashMap<SecretRef, Arc<Secret>>>>,
    changed: Arc<Notify>,
    /// Secrets whose watch failed, said once each.
    warned: Arc<Mutex<HashSet<SecretRef>>>,
    /// Secrets whose first list is done: absent now means absent.
    listed: Arc<Mutex<HashSet<SecretRef>>>,
}

impl SecretWatch {
    /// No Secrets watched yet.
    pub fn new(client: Client) -> Self {
        SecretWatch {
            client,
            tasks: HashMap::new(),
            secrets: Arc::new(Mutex::new(HashMap::new())),
            changed: Arc::new(Notify::new()),
            warned: Arc::new(Mutex::new(HashSet::new())),
            listed: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Signalled when a watched Secret changes.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// The watched Secrets that exist, by reference, and those whose first
    /// list has completed (so that their absence, or their content, is
    /// known rather than not loaded yet), read together: a watch records
    /// both under the Secrets' lock.
    pub fn snapshot(&self) -> (HashMap<SecretRef, Arc<Secret>>, HashSet<SecretRef>) {
        let secrets = self.secrets.lock().expect("secrets");
        let listed = self.listed.lock().expect("listed").clone();
        (secrets.clone(), listed)
    }

    /// Watches exactly `wanted`.
    pub fn set_wanted(&mut self, wanted: &BTreeSet<SecretRef>) {
        let gone: Vec<SecretRef> = self.tasks.keys().filter(|r| !wanted.contains(*r)).cloned().collect();
        for r in gone {
            if let Some(t) = self.tasks.remove(&r) {
                t.abort();
            }
            let mut secrets = self.secrets.lock().expect("secrets");
            secrets.remove(&r);
            self.listed.lock().expect("listed").remove(&r);
            drop(secrets);
            self.warned.lock().expect("warned").remove(&r);
        }
        for r in wanted {
            if self.tasks.contains_key(r) {
                continue;
            }
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &r.namespace);
            let config = watcher::Config::default().fields(&format!("metadata.name={}", r.name));
            let (secrets, changed, warned, listed, r2) =
                (self.secrets.clone(), self.changed.clone(), self.warned.clone(), self.listed.clone(), r.clone());
            let task = tokio::spawn(async move {
                let backoff = RetryBackoff::default();
                let answered = backoff.answered();
                let stream = watcher(api, config).backoff(backoff);
                futures::pin_mut!(stream);
                let mut listing: Option<Arc<Secret>> = None;
                while let Some(event) = stream.next().await {
                    if matches!(&event, Ok(e) if !matches!(e, watcher::Event::Init)) {
                        answered.store(true, std::sync::atomic::Ordering::Release);
                    }
                    let mut map = secrets.lock().expect("secrets");
                    match event {
                        Ok(watcher::Event::Init) => listing = None,
                        Ok(watcher::Event::InitApply(s)) => listing = Some(Arc::new(s)),
                        Ok(watcher::Event::InitDone) => {
                            match listing.take() {
                                Some(s) => map.insert(r2.clone(), s),
                                None => map.remove(&r2),
                            };
                            listed.lock().expect("listed").insert(r2.clone());
                        }
                        Ok(watcher::Event::Apply(s)) => {
                            map.insert(r2.clone(), Arc::new(s));
                        }
                        Ok(watcher::Event::Delete(_)) => {
                            map.remove(&r2);
                        }
                        Err(e) => {
                            if warned.lock().expect("warned").insert(r2.clone()) {
                                let why = match &e {
                                    watcher::Error::InitialListFailed(e) | watcher::Error::WatchFailed(e) => {
                                        describe_error(e)
                                    }
                                    other => other.to_string(),
                                };
                                tracing::warn!(
                                    "cannot watch TLS Secret {r2}: {why}; its hosts get devingress certificates"
                                );
                            }
                            continue;
                        }
                    }
                    drop(map);
                    changed.notify_one();
                }
            });
            self.tasks.insert(r.clone(), task.abort_handle());
        }
    }
}

impl Drop for SecretWatch {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}
