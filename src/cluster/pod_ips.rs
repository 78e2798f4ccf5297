//! The pods behind endpoints that do not name one.
//!
//! The endpoint controller gives every endpoint of a Service with a
//! selector a `targetRef` to its pod, and devingress forwards to that pod.
//! A Service without a selector gets its EndpointSlices from someone else (a
//! person, an operator), who may leave `targetRef` out. For such an endpoint
//! devingress asks the API server for the pod with that IP in the slice's
//! namespace (`fieldSelector=status.podIP=…`), and the snapshot shows the
//! endpoint as if it named that pod. An endpoint whose IP is no pod's stays
//! without one: the routes report it as unreachable.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::kubeclient::describe_error;

/// How often the slices are looked through for endpoints without a pod.
const SCAN: Duration = Duration::from_secs(1);
/// How long an answer is trusted: an IP may come to a pod later, or go to
/// another one.
const FRESH: Duration = Duration::from_secs(30);

/// One endpoint address in one namespace.
type Address = (String, String);

/// What the API server said of one address.
#[derive(Debug, Clone)]
struct Lookup {
    /// The pod with that IP, if one has it.
    pod: Option<String>,
    /// When it was asked.
    at: Instant,
}

/// Pods found by IP, shared by the lookup task and the snapshot.
#[derive(Debug, Default)]
pub struct PodIps {
    known: Mutex<HashMap<Address, Lookup>>,
    /// Set once the first lists of the slices are in and their endpoints
    /// without a pod have been looked up.
    settled: AtomicBool,
}

impl PodIps {
    /// Whether the first round of lookups is done.
    pub fn settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// `slices` with every endpoint without a Pod `targetRef` given the pod
    /// found at its first address, when one was.
    pub fn complete(&self, slices: Vec<Arc<EndpointSlice>>) -> Vec<Arc<EndpointSlice>> {
        let known = self.known.lock().expect("pod ips");
        if known.is_empty() {
            return slices;
        }
        slices
            .into_iter()
            .map(|slice| {
                let ns = slice.metadata.namespace.clone().unwrap_or_default();
                let found = |ep: &k8s_openapi::api::discovery::v1::Endpoint| {
                    let ip = ep.addresses.first()?;
                    known.get(&(ns.clone(), ip.clone()))?.pod.clone()
                };
                if !slice.endpoints.iter().any(|ep| without_pod(ep) && found(ep).is_some()) {
                    return slice;
                }
                let mut slice = (*slice).clone();
                for ep in &mut slice.endpoints {
                    if without_pod(ep) {
                        if let Some(pod) = found(ep) {
                            ep.target_ref = Some(ObjectReference {
                                kind: Some("Pod".into()),
                                namespace: Some(ns.clone()),
                                name: Some(pod),
                                ..Default::default()
                            });
                        }
                    }
                }
                Arc::new(slice)
            })
            .collect()
    }
}

/// Whether an endpoint names no pod.
fn without_pod(ep: &k8s_openapi::api::discovery::v1::Endpoint) -> bool {
    !ep.target_ref.as_ref().is_some_and(|r| r.kind.as_deref() == Some("Pod") && r.name.is_some())
}

/// The addresses of endpoints without a pod in `slices`.
fn addresses(slices: &[Arc<EndpointSlice>]) -> BTreeSet<Address> {
    slices
        .iter()
        .flat_map(|s| {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            s.endpoints
                .iter()
                .filter(|ep| without_pod(ep))
                .filter_map(move |ep| ep.addresses.first().map(|ip| (ns.clone(), ip.clone())))
        })
        .collect()
}

/// Looks up the pods of endpoints without one, and tells `changed` when the
/// answer changes what the snapshot shows.
pub async fn follow(client: Client, slices: Vec<Store<EndpointSlice>>, ips: Arc<PodIps>, changed: Arc<Notify>) {
    let mut said_forbidden = false;
    for store in &slices {
        if store.wait_until_ready().await.is_err() {
            return;
        }
    }
    loop {
        let wanted = addresses(&slices.iter().flat_map(Store::state).collect::<Vec<_>>());
        let due: Vec<Address> = {
            let mut known = ips.known.lock().expect("pod ips");
            known.retain(|a, _| wanted.contains(a));
            wanted.into_iter().filter(|a| known.get(a).is_none_or(|l| l.at.elapsed() > FRESH)).collect()
        };
        let mut news = false;
        for (ns, ip) in due {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let params = ListParams::default().fields(&format!("status.podIP={ip}"));
            let pod = match api.list(&params).await {
                Ok(list) => list.items.into_iter().find_map(|p| p.metadata.name),
                Err(e) => {
                    if !said_forbidden {
                        said_forbidden = true;
                        tracing::warn!(
                            "cannot find the pod of endpoint {ip} in namespace {ns} (an EndpointSlice endpoint \
                             without targetRef): {}; such endpoints are not reached",
                            describe_error(&e)
                        );
                    }
                    None
                }
            };
            match &pod {
                Some(p) => tracing::debug!("endpoint {ip} in namespace {ns} is pod {p}"),
                None => tracing::debug!("endpoint {ip} in namespace {ns} is no pod's"),
            }
            let mut known = ips.known.lock().expect("pod ips");
            let before = known.insert((ns, ip), Lookup { pod: pod.clone(), at: Instant::now() });
            news |= before.and_then(|b| b.pod) != pod;
        }
        ips.settled.store(true, Ordering::Release);
        if news {
            changed.notify_one();
        }
        tokio::time::sleep(SCAN).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_without_a_pod_get_the_pod_found_at_their_address() {
        let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "manual", "namespace": "db"}, "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.5"]},
            {"addresses": ["10.0.0.6"]},
            {"addresses": ["10.0.0.7"], "targetRef": {"kind": "Pod", "name": "named", "namespace": "db"}},
        ]}))
        .unwrap();
        let slices = vec![Arc::new(slice)];
        let wanted: Vec<Address> = addresses(&slices).into_iter().collect();
        assert_eq!(wanted, [("db".into(), "10.0.0.5".into()), ("db".into(), "10.0.0.6".into())]);
        let ips = PodIps::default();
        {
            let mut known = ips.known.lock().unwrap();
            known.insert(("db".into(), "10.0.0.5".into()), Lookup { pod: Some("db-0".into()), at: Instant::now() });
            known.insert(("db".into(), "10.0.0.6".into()), Lookup { pod: None, at: Instant::now() });
            // The same IP in another namespace is another pod.
            known.insert(("web".into(), "10.0.0.6".into()), Lookup { pod: Some("web-0".into()), at: Instant::now() });
        }
        let out = ips.complete(slices);
        let names: Vec<Option<String>> =
            out[0].endpoints.iter().map(|ep| ep.target_ref.as_ref().and_then(|r| r.name.clone())).collect();
        assert_eq!(names, [Some("db-0".into()), None, Some("named".into())]);
        assert_eq!(out[0].endpoints[0].target_ref.as_ref().unwrap().namespace.as_deref(), Some("db"));
    }
}
