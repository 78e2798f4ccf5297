//! Backends: a Service port resolved to the pods that serve it (rules 14 to 16).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// A Service port as an Ingress names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// `port.number`.
    Number(u16),
    /// `port.name`.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

/// What a backend speaks (rule 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// HTTP/1.1 (the default).
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge over cleartext: a Service port with
    /// `appProtocol: kubernetes.io/h2c`, or an Ingress annotated
    /// `nginx.ingress.kubernetes.io/backend-protocol: GRPC`. gRPC needs it.
    H2c,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http1 => "http/1.1",
            Protocol::H2c => "h2c",
        })
    }
}

/// One pod port that can take traffic, reached through pod port-forward.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodEndpoint {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container port, already resolved from a named `targetPort`.
    pub port: u16,
}

impl fmt::Display for PodEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.pod, self.port)
    }
}

/// Where requests for a backend go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Ready pod endpoints (possibly none). `not_ready` counts the others.
    Pods {
        /// Endpoints that take new traffic, sorted and without duplicates.
        ready: Vec<PodEndpoint>,
        /// Endpoints that exist but are not ready.
        not_ready: usize,
        /// Ready endpoints that no pod stands behind (Services without a
        /// selector): devingress cannot port-forward to them.
        without_pod: usize,
    },
    /// The Service does not exist (yet).
    ServiceMissing,
    /// A backend devingress cannot serve; the text says why.
    Unsupported(String),
}

impl Target {
    /// Ready pods and all endpoints (ready or not, with a pod or without),
    /// as `ready/total` columns show them; `(0, 0)` without pods.
    pub fn pod_counts(&self) -> (usize, usize) {
        match self {
            Target::Pods { ready, not_ready, without_pod } => (ready.len(), ready.len() + not_ready + without_pod),
            Target::ServiceMissing | Target::Unsupported(_) => (0, 0),
        }
    }
}

/// A Service port that routes point at. Shared between all routes that name
/// the same Service port, so load spreading sees all of their traffic.
#[derive(Debug)]
pub struct Backend {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Service port as the Ingress named it.
    pub port: PortRef,
    /// What the pods speak on it.
    pub protocol: Protocol,
    /// Where its requests go.
    pub target: Target,
    /// Round-robin cursor over `ready`.
    next: AtomicUsize,
}

impl Backend {
    /// Makes a backend with a fresh round-robin cursor.
    pub fn new(namespace: &str, service: &str, port: PortRef, protocol: Protocol, target: Target) -> Self {
        Backend {
            namespace: namespace.into(),
            service: service.into(),
            port,
            protocol,
            target,
            next: AtomicUsize::new(0),
        }
    }

    /// Picks the next ready endpoint, round-robin. Round-robin rather than
    /// least-outstanding because every request pays the same port-forward hop
    /// and pods of one Deployment are alike; it needs one atomic add and
    /// spreads evenly from the first request on, which is what a developer
    /// checking "do all my replicas get traffic" expects.
    pub fn pick(&self) -> Option<&PodEndpoint> {
        match &self.target {
            Target::Pods { ready, .. } if !ready.is_empty() => {
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                Some(&ready[i % ready.len()])
            }
            _ => None,
        }
    }

    /// Picks a ready endpoint other than `not`, for a retry; `None` when
    /// `not` is the only one.
    pub fn pick_other(&self, not: &PodEndpoint) -> Option<PodEndpoint> {
        match &self.target {
            Target::Pods { ready, .. } if ready.iter().any(|e| e != not) => loop {
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                let ep = &ready[i % ready.len()];
                if ep != not {
                    return Some(ep.clone());
                }
            },
            _ => None,
        }
    }

    /// Number of ready endpoints.
    pub fn ready_count(&self) -> usize {
        match &self.target {
            Target::Pods { ready, .. } => ready.len(),
            _ => 0,
        }
    }

    /// `service:port`, as shown in tables and error pages.
    pub fn display_name(&self) -> String {
        format!("{}:{}", self.service, self.port)
    }
}

/// Why a backend reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    /// The field below the backend, e.g. `service.port.name`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The Service port that an Ingress names, found in the Service.
pub fn find_service_port<'a>(
    svc: &'a Service,
    port: &PortRef,
) -> Result<&'a k8s_openapi::api::core::v1::ServicePort, PortError> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    match port {
        PortRef::Number(n) => ports.iter().find(|p| p.port == i32::from(*n)).ok_or_else(|| PortError {
            field: "service.port.number",
            reason: format!("Service {name:?} has no port {n} (it has {})", list_ports(ports)),
        }),
        PortRef::Name(want) => {
            ports.iter().find(|p| p.name.as_deref() == Some(want.as_str())).ok_or_else(|| PortError {
                field: "service.port.name",
                reason: format!("Service {name:?} has no port named {want:?} (it has {})", list_ports(ports)),
            })
        }
    }
}

fn list_ports(ports: &[k8s_openapi::api::core::v1::ServicePort]) -> String {
    if ports.is_empty() {
        return "no ports".into();
    }
    ports
        .iter()
        .map(|p| match &p.name {
            Some(n) if !n.is_empty() => format!("{} ({n})", p.port),
            _ => p.port.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves a Service port to pod endpoints through the Service's
/// EndpointSlices. The slice's port with the Service port's name carries the
/// container port number; a named `targetPort` can resolve differently per
/// pod, which the endpoint controller expresses as separate slices.
pub fn resolve_target<'a>(
    svc: &Service,
    port_name: Option<&str>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Target {
    let spec = svc.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        let ext = spec.and_then(|s| s.external_name.as_deref()).unwrap_or("?");
        return Target::Unsupported(format!(
            "Service {:?} is of type ExternalName ({ext}); devingress forwards only to pods",
            svc.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    let svc_ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    let svc_name = svc.metadata.name.as_deref().unwrap_or_default();
    let want = port_name.unwrap_or("");
    let mut ready = Vec::new();
    let mut not_ready = 0;
    let mut without_pod = 0;
    for slice in slices {
        let labels = slice.metadata.labels.as_ref();
        if slice.metadata.namespace.as_deref().unwrap_or_default() != svc_ns
            || labels.and_then(|l| l.get("kubernetes.io/service-name")).map(String::as_str) != Some(svc_name)
        {
            continue;
        }
        let Some(port) = slice
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|p| p.name.as_deref().unwrap_or("") == want)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in &slice.endpoints {
            // Ready unset means ready; a terminating pod takes nothing new.
            let conditions = ep.conditions.as_ref();
            if conditions.and_then(|c| c.ready) == Some(false) || conditions.and_then(|c| c.terminating) == Some(true) {
                not_ready += 1;
                continue;
            }
            match &ep.target_ref {
                Some(r) if r.kind.as_deref() == Some("Pod") && r.name.is_some() => ready.push(PodEndpoint {
                    namespace: r.namespace.clone().unwrap_or_else(|| svc_ns.to_string()),
                    pod: r.name.clone().unwrap_or_default(),
                    port,
                }),
                _ => without_pod += 1,
            }
        }
    }
    // Dual-stack clusters list each pod in an IPv4 and an IPv6 slice.
    ready.sort();
    ready.dedup();
    Target::Pods { ready, not_ready, without_pod }
}
