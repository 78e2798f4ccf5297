//! Writing devingress's address into the status of the objects it serves:
//! Ingresses (rule 4) and `type: LoadBalancer` Services, and taking it out
//! again on a clean exit.
//!
//! It uses server-side apply with field manager `devingress` and never
//! forces: an object whose `status.loadBalancer.ingress` holds another
//! controller's address is left alone, and when devingress removes its
//! entry it removes only what it owns.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::marker::PhantomData;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::kubeclient::describe_error;
use crate::routes::ObjectKey;

/// The field manager devingress writes status as.
pub const FIELD_MANAGER: &str = "devingress";
/// The address devingress serves on.
pub const ADDRESS: &str = "127.0.0.1";

/// The failures of status writes, said once each: a write retried every
/// few seconds that keeps failing the same way is not said again.
#[derive(Debug, Default)]
pub struct Failures {
    /// What failed in the last round.
    last: Vec<String>,
    /// What failed in this round.
    now: Vec<String>,
}

impl Failures {
    /// A new round of writes begins.
    pub fn start(&mut self) {
        self.last = std::mem::take(&mut self.now);
    }

    /// A write failed: warns unless the last round already said so.
    /// Returns whether it was said.
    pub fn fail(&mut self, what: String) -> bool {
        let new = !self.last.contains(&what) && !self.now.contains(&what);
        if new {
            tracing::warn!("{what}; will try again");
        }
        self.now.push(what);
        new
    }

    /// Whether a write of this round failed and should be retried.
    pub fn any(&self) -> bool {
        !self.now.is_empty()
    }
}

/// What the writer knows about the objects of one kind it touched.
pub struct StatusWriter<K> {
    client: Client,
    /// Objects whose status holds devingress's entry.
    written: HashSet<ObjectKey>,
    /// Objects where another controller owns the status.
    others: HashSet<ObjectKey>,
    /// Failed writes, said once each.
    failures: Failures,
    kind: PhantomData<K>,
}

/// The kind's name in messages ("Ingress", "Service").
fn kind_name<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}

impl<K> StatusWriter<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    /// A writer that patches through `client`.
    pub fn new(client: Client) -> Self {
        StatusWriter {
            client,
            written: HashSet::new(),
            others: HashSet::new(),
            failures: Failures::default(),
            kind: PhantomData,
        }
    }

    /// Whether some write failed and should be tried again.
    pub fn needs_retry(&self) -> bool {
        self.failures.any()
    }

    async fn apply(&self, key: &ObjectKey, load_balancer: Value) -> Result<(), kube::Error> {
        let api: Api<K> = Api::namespaced(self.client.clone(), &key.namespace);
        let body = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()),
                          "metadata": {"name": key.name, "namespace": key.namespace},
                          "status": {"loadBalancer": load_balancer}});
        api.patch_status(&key.name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(body)).await.map(|_| ())
    }

    /// Brings `status.loadBalancer.ingress` of each object in line:
    /// `desired` holds devingress's entries for the objects it serves,
    /// `current` what every existing object's status holds now.
    pub async fn sync(&mut self, current: &BTreeMap<ObjectKey, Vec<Value>>, desired: &BTreeMap<ObjectKey, Value>) {
        self.failures.start();
        let kind = kind_name::<K>();
        for (key, ours) in desired {
            let Some(now) = current.get(key) else { continue };
            if Value::Array(now.clone()) == *ours {
                self.written.insert(key.clone());
                continue;
            }
            if !now.is_empty() && !self.written.contains(key) {
                if self.others.insert(key.clone()) {
                    tracing::info!("{kind} {}: another controller set its address; leaving its status alone", key);
                }
                continue;
            }
            if self.others.contains(key) && !self.written.contains(key) {
                continue;
            }
            match self.apply(key, json!({"ingress": ours})).await {
                Ok(()) => {
                    tracing::debug!("{kind} {}: status.loadBalancer.ingress = {ours}", key);
                    self.written.insert(key.clone());
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    if self.others.insert(key.clone()) {
                        tracing::info!("{kind} {}: another controller manages its status; leaving it alone", key);
                    }
                }
                Err(e) => {
                    self.failures.fail(format!("cannot write the status of {kind} {}: {}", key, describe_error(&e)));
                }
            }
        }
        let gone: Vec<ObjectKey> = self.written.iter().filter(|k| !desired.contains_key(*k)).cloned().collect();
        for key in gone {
            if !current.contains_key(&key) {
                self.written.remove(&key);
                continue;
            }
            match self.apply(&key, json!({})).await {
                Ok(()) => {
                    self.written.remove(&key);
                }
                Err(e) => {
                    self.failures.fail(format!("cannot clear the status of {kind} {}: {}", key, describe_error(&e)));
                }
            }
        }
        self.others.retain(|k| desired.contains_key(k));
    }

    /// Removes devingress's entry from every object it wrote it to.
    pub async fn clear_all(&mut self) {
        let kind = kind_name::<K>();
        let keys: Vec<ObjectKey> = self.written.drain().collect();
        let mut cleared = 0;
        for key in &keys {
            match self.apply(key, json!({})).await {
                Ok(()) => cleared += 1,
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => tracing::warn!("cannot clear the status of {kind} {}: {}", key, describe_error(&e)),
            }
        }
        if cleared > 0 {
            tracing::info!("removed devingress's address from the status of {cleared} {kind}(s)");
        }
    }
}

/// `status.loadBalancer.ingress` of every object, as JSON, by key.
pub fn current_entries<'a, K, S>(
    objects: impl IntoIterator<Item = &'a K>,
    entries: impl Fn(&K) -> Option<&Vec<S>>,
) -> BTreeMap<ObjectKey, Vec<Value>>
where
    K: Resource + 'a,
    S: serde::Serialize,
{
    objects
        .into_iter()
        .map(|o| {
            let key = ObjectKey::of(o);
            let list = entries(o).map(|l| l.iter().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)).collect());
            (key, list.unwrap_or_default())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Failures;

    #[test]
    fn a_failure_retried_round_after_round_is_said_once() {
        let mut f = Failures::default();
        f.start();
        assert!(f.fail("cannot write A".into()));
        assert!(!f.fail("cannot write A".into()), "twice in one round");
        assert!(f.fail("cannot write B".into()));
        f.start();
        assert!(!f.fail("cannot write A".into()), "the next round's retry");
        assert!(f.any());
        // A round without it clears it: a later failure is news again.
        f.start();
        assert!(!f.any());
        f.start();
        assert!(f.fail("cannot write A".into()));
    }
}
