//! Writing devingress's address into the status of the Ingresses it serves
//! (rule 4), and taking it out again on a clean exit.
//!
//! It uses server-side apply with field manager `devingress` and never
//! forces: an Ingress whose `status.loadBalancer.ingress` holds another
//! controller's address is left alone, and when devingress removes its
//! entry it removes only what it owns.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::kubeclient::describe_error;
use crate::routes::IngressKey;

/// The field manager devingress writes status as.
pub const FIELD_MANAGER: &str = "devingress";
/// The address devingress serves Ingresses on.
pub const ADDRESS: &str = "127.0.0.1";

/// What the writer knows about the Ingresses it touched.
pub struct StatusWriter {
    client: Client,
    /// Ingresses whose status holds devingress's address.
    written: HashSet<IngressKey>,
    /// Ingresses where another controller owns the status.
    others: HashSet<IngressKey>,
    /// The last failure, said once.
    failing: Option<String>,
}

/// What the status of an Ingress says about its load balancer.
fn addresses(ing: &Ingress) -> Vec<Value> {
    ing.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| list.iter().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)).collect())
        .unwrap_or_default()
}

fn apply_body(key: &IngressKey, entries: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": key.name, "namespace": key.namespace},
           "status": {"loadBalancer": entries}})
}

impl StatusWriter {
    /// A writer that patches through `client`.
    pub fn new(client: Client) -> Self {
        StatusWriter { client, written: HashSet::new(), others: HashSet::new(), failing: None }
    }

    /// Whether some write failed and should be tried again.
    pub fn needs_retry(&self) -> bool {
        self.failing.is_some()
    }

    fn failed(&mut self, what: String) {
        if self.failing.as_deref() != Some(what.as_str()) {
            tracing::warn!("{what}; will try again");
            self.failing = Some(what);
        }
    }

    async fn apply(&self, key: &IngressKey, entries: Value) -> Result<(), kube::Error> {
        let api: Api<Ingress> = Api::namespaced(self.client.clone(), &key.namespace);
        api.patch_status(&key.name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(apply_body(key, entries)))
            .await
            .map(|_| ())
    }

    /// Brings the status of every Ingress in line with `served`.
    pub async fn sync(&mut self, ingresses: &[Arc<Ingress>], served: &[IngressKey]) {
        self.failing = None;
        let by_key: BTreeMap<IngressKey, &Ingress> = ingresses.iter().map(|i| (IngressKey::of(i), &**i)).collect();
        let served: HashSet<&IngressKey> = served.iter().collect();
        let ours = json!([{"ip": ADDRESS}]);
        for key in &served {
            let Some(ing) = by_key.get(*key) else { continue };
            let current = addresses(ing);
            if Value::Array(current.clone()) == ours {
                self.written.insert((*key).clone());
                continue;
            }
            if !current.is_empty() {
                if self.others.insert((*key).clone()) {
                    tracing::info!("Ingress {key}: another controller set its address; leaving its status alone");
                }
                continue;
            }
            if self.others.contains(*key) && !self.written.contains(*key) {
                continue;
            }
            match self.apply(key, json!({"ingress": ours})).await {
                Ok(()) => {
                    tracing::debug!("Ingress {key}: status.loadBalancer.ingress = [{{ip: {ADDRESS}}}]");
                    self.written.insert((*key).clone());
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    if self.others.insert((*key).clone()) {
                        tracing::info!("Ingress {key}: another controller manages its status; leaving it alone");
                    }
                }
                Err(e) => self.failed(format!("cannot write the status of Ingress {key}: {}", describe_error(&e))),
            }
        }
        let gone: Vec<IngressKey> = self.written.iter().filter(|k| !served.contains(k)).cloned().collect();
        for key in gone {
            if !by_key.contains_key(&key) {
                self.written.remove(&key);
                continue;
            }
            match self.apply(&key, json!({})).await {
                Ok(()) => {
                    self.written.remove(&key);
                }
                Err(e) => self.failed(format!("cannot clear the status of Ingress {key}: {}", describe_error(&e))),
            }
        }
        self.others.retain(|k| served.contains(k));
    }

    /// Removes devingress's address from every Ingress it wrote it to.
    pub async fn clear_all(&mut self) {
        let keys: Vec<IngressKey> = self.written.drain().collect();
        let mut cleared = 0;
        for key in &keys {
            match self.apply(key, json!({})).await {
                Ok(()) => cleared += 1,
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => tracing::warn!("cannot clear the status of Ingress {key}: {}", describe_error(&e)),
            }
        }
        if cleared > 0 {
            tracing::info!("removed devingress's address from the status of {cleared} Ingress(es)");
        }
    }
}
