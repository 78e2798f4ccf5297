//! Watching the Gateway API's objects, once the cluster has its CRDs.
//!
//! Whether the CRDs are installed is asked through discovery
//! (`GET /apis/gateway.networking.k8s.io/v1`), which needs no extra RBAC.
//! Without them devingress says so once, with the command that installs
//! them, and asks again every few seconds: Gateways are served without a
//! restart once they appear. Ingresses are served either way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kube::runtime::reflector::Store;
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{Health, Spawner, namespaced_apis};
use k8s_openapi::api::core::v1::Namespace;

use crate::gateway::api::{GROUP, Gateway, GatewayClass, GrpcRoute, HttpRoute, ReferenceGrant};

/// How often the CRDs are looked for while they are missing.
const RECHECK: Duration = Duration::from_secs(5);

/// The command that installs the Gateway API's standard channel.
pub const INSTALL_COMMAND: &str = "kubectl apply --server-side -f \
https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/standard-install.yaml";

/// The resources devingress needs from the group's `v1` (and ReferenceGrant
/// from `v1beta1`).
const NEEDED: [&str; 4] = ["gatewayclasses", "gateways", "httproutes", "grpcroutes"];

/// The caches of the Gateway API's objects.
pub struct GatewayStores {
    pub(super) classes: Store<GatewayClass>,
    pub(super) gateways: Vec<Store<Gateway>>,
    pub(super) http_routes: Vec<Store<HttpRoute>>,
    pub(super) grpc_routes: Vec<Store<GrpcRoute>>,
    pub(super) grants: Vec<Store<ReferenceGrant>>,
    pub(super) namespaces: Store<Namespace>,
    pub(super) synced: Vec<Arc<AtomicBool>>,
    _tasks: JoinSet<()>,
}

impl GatewayStores {
    /// Whether every Gateway API watcher has its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::Acquire))
    }
}

/// Whether the cluster serves the Gateway API resources devingress needs.
pub async fn installed(client: &Client) -> Result<bool, kube::Error> {
    let v1 = match client.list_api_group_resources(&format!("{GROUP}/v1")).await {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
        Err(e) => return Err(e),
    };
    let has = |name: &str| v1.resources.iter().any(|r| r.name == name);
    if !NEEDED.iter().all(|n| has(n)) {
        return Ok(false);
    }
    match client.list_api_group_resources(&format!("{GROUP}/v1beta1")).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "referencegrants")),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until the CRDs are installed (saying once that they are not),
/// then starts the watchers and puts their caches in `into`.
pub async fn follow(
    client: Client,
    namespaces: Vec<String>,
    changed: Arc<Notify>,
    health: Arc<Health>,
    into: Arc<OnceLock<GatewayStores>>,
    known: Arc<AtomicBool>,
) {
    let mut said = false;
    loop {
        match installed(&client).await {
            Ok(true) => break,
            Ok(false) if !said => {
                known.store(true, Ordering::Release);
                changed.notify_one();
                said = true;
                tracing::warn!(
                    "the cluster has no Gateway API CRDs, so no Gateway or HTTPRoute is served (Ingresses are); \
                     to install them: {INSTALL_COMMAND}"
                );
            }
            // Unreachable API server: the core watchers say so.
            Ok(false) | Err(_) => {}
        }
        tokio::time::sleep(RECHECK).await;
    }
    if said {
        tracing::info!("the Gateway API CRDs are installed now: serving Gateways");
    } else {
        tracing::debug!("the cluster has the Gateway API CRDs");
    }
    let mut w = Spawner { tasks: JoinSet::new(), synced: Vec::new(), changed: changed.clone(), health };
    let classes = w.reflector(Api::<GatewayClass>::all(client.clone()), "gatewayclasses", String::new());
    let gateways =
        namespaced_apis(&client, &namespaces).into_iter().map(|(api, ns)| w.reflector(api, "gateways", ns)).collect();
    let http_routes =
        namespaced_apis(&client, &namespaces).into_iter().map(|(api, ns)| w.reflector(api, "httproutes", ns)).collect();
    let grpc_routes =
        namespaced_apis(&client, &namespaces).into_iter().map(|(api, ns)| w.reflector(api, "grpcroutes", ns)).collect();
    let grants = namespaced_apis(&client, &namespaces)
        .into_iter()
        .map(|(api, ns)| w.reflector(api, "referencegrants", ns))
        .collect();
    // Namespaces matter only to listeners with a namespace selector, and
    // many users may not list them: their watcher reports to a health of its
    // own, so that a refusal never makes devingress look degraded.
    let mut ns = Spawner {
        tasks: JoinSet::new(),
        synced: Vec::new(),
        changed: changed.clone(),
        health: Arc::new(w.health.detached()),
    };
    let namespace_store = ns.reflector(Api::<Namespace>::all(client.clone()), "namespaces", String::new());
    let mut tasks = w.tasks;
    tasks.spawn(async move {
        // Keep the Namespace watcher's tasks alive with the others.
        while ns.tasks.join_next().await.is_some() {}
    });
    let stores = GatewayStores {
        classes,
        gateways,
        http_routes,
        grpc_routes,
        grants,
        namespaces: namespace_store,
        synced: w.synced,
        _tasks: tasks,
    };
    if into.set(stores).is_ok() {
        known.store(true, Ordering::Release);
        changed.notify_one();
    }
}
