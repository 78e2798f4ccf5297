//! The objects devingress has seen in the cluster, as one immutable value.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::gateway::api::{Gateway, GatewayClass, GrpcRoute, HttpRoute, ReferenceGrant};

/// Everything the routing table is computed from. Building one does no I/O:
/// the watchers fill it from their caches, tests fill it by hand.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// All Ingresses in the watched namespaces.
    pub ingresses: Vec<Arc<Ingress>>,
    /// All IngressClasses (cluster-scoped).
    pub ingress_classes: Vec<Arc<IngressClass>>,
    /// All Services in the watched namespaces.
    pub services: Vec<Arc<Service>>,
    /// All EndpointSlices in the watched namespaces.
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Whether every watcher has finished its first list. Until then an
    /// empty table means "not loaded yet" rather than "nothing to serve".
    /// (The Gateway API's watchers have their own flag: CRDs installed
    /// while devingress runs must not make the Ingresses look unloaded.)
    pub synced: bool,
    /// The Gateway API's objects, once the cluster has its CRDs.
    pub gateway: Option<GatewayObjects>,
}

/// The Gateway API's objects in the watched namespaces.
#[derive(Debug, Clone, Default)]
pub struct GatewayObjects {
    /// Whether each of their watchers has its first list.
    pub synced: bool,
    /// All GatewayClasses (cluster-scoped).
    pub classes: Vec<Arc<GatewayClass>>,
    /// Gateways.
    pub gateways: Vec<Arc<Gateway>>,
    /// HTTPRoutes.
    pub http_routes: Vec<Arc<HttpRoute>>,
    /// GRPCRoutes.
    pub grpc_routes: Vec<Arc<GrpcRoute>>,
    /// ReferenceGrants.
    pub reference_grants: Vec<Arc<ReferenceGrant>>,
    /// Namespaces, for listeners that allow routes by a namespace selector
    /// (empty when devingress may not list them).
    pub namespaces: Vec<Arc<k8s_openapi::api::core::v1::Namespace>>,
}
