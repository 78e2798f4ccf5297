//! Watching the cluster: reflectors for Ingress, IngressClass, Service and
//! EndpointSlice that keep a [`Snapshot`] current, and report when the API
//! server comes and goes.

mod class;
mod gateway;
mod gateway_class;
mod gateway_status;
mod health;
mod pod_ips;
mod secrets;
mod snapshot;
mod status;

pub use class::ensure_class;
pub use gateway::{GatewayStores, INSTALL_COMMAND as GATEWAY_API_INSTALL_COMMAND};
pub use gateway_class::{GATEWAY_CLASS_NAME, GATEWAY_CONTROLLER, GatewayClassWriter};
pub use gateway_status::GatewayStatusWriter;
pub use health::Health;
pub use secrets::SecretWatch;
pub use snapshot::{GatewayObjects, Snapshot};
pub use status::{ADDRESS, FIELD_MANAGER, StatusWriter, current_entries};

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use pod_ips::PodIps;

/// Running watchers and their caches. Dropping it stops the watchers.
pub struct ClusterWatch {
    ingresses: Vec<Store<Ingress>>,
    ingress_classes: Vec<Store<IngressClass>>,
    services: Vec<Store<Service>>,
    endpoint_slices: Vec<Store<EndpointSlice>>,
    /// Pods found by IP for endpoints that name none.
    pod_ips: Arc<PodIps>,
    /// One flag per watcher, set once its first list is in the store.
    synced: Vec<Arc<AtomicBool>>,
    changed: Arc<Notify>,
    health: Arc<Health>,
    /// The Gateway API's caches, once its CRDs are found.
    gateway: Arc<OnceLock<GatewayStores>>,
    /// Whether discovery has said if the Gateway API is installed.
    gateway_known: Arc<AtomicBool>,
    _tasks: JoinSet<()>,
}

impl ClusterWatch {
    /// Starts the watchers: all namespaces, or only `namespaces` when given.
    /// IngressClasses are cluster-scoped and always watched as a whole.
    /// When the API server did not answer the first question (which the
    /// user was told), watchers failing for that reason say nothing more.
    pub fn start(client: Client, namespaces: &[String], info: &crate::kubeclient::ClusterInfo) -> Self {
        let health = Health::new(&info.server);
        if let Some(reason) = &info.unreachable {
            health.already_said(reason);
        }
        let mut w = Spawner {
            tasks: JoinSet::new(),
            synced: Vec::new(),
            changed: Arc::new(Notify::new()),
            health: Arc::new(health),
        };
        let ingresses = namespaced_apis(&client, namespaces)
            .into_iter()
            .map(|(api, ns)| w.reflector(api, "ingresses", ns))
            .collect();
        let services = namespaced_apis(&client, namespaces)
            .into_iter()
            .map(|(api, ns)| w.reflector(api, "services", ns))
            .collect();
        let endpoint_slices: Vec<Store<EndpointSlice>> = namespaced_apis(&client, namespaces)
            .into_iter()
            .map(|(api, ns)| w.reflector(api, "endpointslices", ns))
            .collect();
        let ingress_classes = vec![w.reflector(Api::all(client.clone()), "ingressclasses", String::new())];
        let pod_ips = Arc::new(PodIps::default());
        w.tasks.spawn(pod_ips::follow(client.clone(), endpoint_slices.clone(), pod_ips.clone(), w.changed.clone()));
        let gateway = Arc::new(OnceLock::new());
        let gateway_known = Arc::new(AtomicBool::new(false));
        w.tasks.spawn(gateway::follow(
            client,
            namespaces.to_vec(),
            w.changed.clone(),
            w.health.clone(),
            gateway.clone(),
            gateway_known.clone(),
        ));
        ClusterWatch {
            ingresses,
            ingress_classes,
            services,
            endpoint_slices,
            pod_ips,
            synced: w.synced,
            changed: w.changed,
            health: w.health,
            gateway,
            gateway_known,
            _tasks: w.tasks,
        }
    }

    /// Signalled after any watched object changes.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Connection state towards the API server.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Whether every watcher has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::Acquire))
    }

    /// Whether the Gateway API is known to be absent, or its watchers have
    /// their first lists too.
    pub fn gateway_synced(&self) -> bool {
        self.gateway_known.load(Ordering::Acquire) && self.gateway.get().is_none_or(GatewayStores::is_synced)
    }

    /// Waits until every watcher has completed its first list, the Gateway
    /// API's included, and the pods of endpoints without one were looked
    /// up, or the deadline passes.
    pub async fn wait_all_synced(&self, deadline: Duration) -> bool {
        let wait = async {
            while !(self.is_synced() && self.gateway_synced() && self.pod_ips.settled()) {
                let notified = self.changed.notified();
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }

    /// Waits until every watcher has completed its first list, or the deadline passes.
    pub async fn wait_synced(&self, deadline: Duration) -> bool {
        let wait = async {
            while !self.is_synced() {
                let notified = self.changed.notified();
                if self.is_synced() {
                    break;
                }
                // Re-check now and then: notify_one may have been taken by the
                // table builder.
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }

    /// The current objects.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            synced: self.is_synced(),
            ingresses: self.ingresses.iter().flat_map(Store::state).collect(),
            ingress_classes: self.ingress_classes.iter().flat_map(Store::state).collect(),
            services: self.services.iter().flat_map(Store::state).collect(),
            endpoint_slices: self.pod_ips.complete(self.endpoint_slices.iter().flat_map(Store::state).collect()),
            gateway: self.gateway.get().map(|g| snapshot::GatewayObjects {
                synced: g.is_synced(),
                classes: g.classes.state(),
                gateways: g.gateways.iter().flat_map(Store::state).collect(),
                http_routes: g.http_routes.iter().flat_map(Store::state).collect(),
                grpc_routes: g.grpc_routes.iter().flat_map(Store::state).collect(),
                reference_grants: g.grants.iter().flat_map(Store::state).collect(),
                namespaces: g.namespaces.state(),
            }),
        }
    }
}

/// What every reflector task shares while they are being started.
struct Spawner {
    tasks: JoinSet<()>,
    synced: Vec<Arc<AtomicBool>>,
    changed: Arc<Notify>,
    health: Arc<Health>,
}

impl Spawner {
    /// Runs one reflector in the background; its store is returned at once
    /// and fills as the watcher lists and watches. Errors (API server
    /// unreachable, watch broken, forbidden) go to `health`, and the watcher
    /// retries with exponential backoff while the store keeps its last state.
    fn reflector<K>(&mut self, api: Api<K>, resource: &'static str, namespace: String) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let (reader, writer) = reflector::store();
        let changed = self.changed.clone();
        let health = self.health.clone();
        let synced = Arc::new(AtomicBool::new(false));
        self.synced.push(synced.clone());
        let what =
            if namespace.is_empty() { resource.to_string() } else { format!("{resource} in namespace {namespace}") };
        self.tasks.spawn(async move {
            let backoff = RetryBackoff::default();
            let answered = backoff.answered();
            let stream = watcher(api, watcher::Config::default()).backoff(backoff).reflect(writer);
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    // A watcher emits `Init` before it even asks for a list:
                    // it says nothing about the API server.
                    Ok(watcher::Event::Init) => {}
                    Ok(event) => {
                        answered.store(true, Ordering::Release);
                        health.watch_ok(&what);
                        if matches!(event, watcher::Event::InitDone) {
                            synced.store(true, Ordering::Release);
                        }
                        changed.notify_one();
                    }
                    Err(e) => health.watch_failed(&what, &e),
                }
            }
        });
        reader
    }
}

/// How watchers retry: 250 ms, doubling up to 5 s, back to the start after
/// the API server answered. kube-rs's default climbs to 30 s, which after a
/// laptop sleep or a cluster restart would leave routes stale for up to half
/// a minute; a local API server can take a retry every few seconds.
///
/// kube's `StreamBackoff` resets its backoff on every item the watcher
/// yields, and a watcher yields `Event::Init` before each list attempt, so a
/// reset there would retry a dead API server every 250 ms forever. The
/// backoff therefore starts over only when the watcher's owner says, through
/// [`RetryBackoff::answered`], that a real answer came.
#[derive(Debug, Clone)]
pub struct RetryBackoff {
    next: Duration,
    answered: Arc<AtomicBool>,
}

impl RetryBackoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(5);

    /// The flag to set when the API server answered (an object or the end
    /// of a list): the next failure then waits the shortest time again.
    pub fn answered(&self) -> Arc<AtomicBool> {
        self.answered.clone()
    }
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff { next: Self::FIRST, answered: Arc::new(AtomicBool::new(false)) }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.answered.swap(false, Ordering::AcqRel) {
            self.next = Self::FIRST;
        }
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for RetryBackoff {
    /// Ignored: see the type's documentation.
    fn reset(&mut self) {}
}

fn namespaced_apis<K>(client: &Client, namespaces: &[String]) -> Vec<(Api<K>, String)>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespaces.is_empty() {
        vec![(Api::all(client.clone()), String::new())]
    } else {
        namespaces.iter().map(|ns| (Api::namespaced(client.clone(), ns), ns.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;

    #[test]
    fn backoff_doubles_to_five_seconds_and_starts_over_only_after_an_answer() {
        let mut b = RetryBackoff::default();
        let first: Vec<u64> = b.by_ref().take(7).map(|d| d.as_millis() as u64).collect();
        assert_eq!(first, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        // kube resets on every item, `Init` included: that changes nothing.
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_secs(5)));
        b.answered().store(true, Ordering::Release);
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
        assert_eq!(b.next(), Some(Duration::from_millis(500)));
    }
}
