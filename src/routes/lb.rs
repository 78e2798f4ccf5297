//! `type: LoadBalancer` Services: which of their ports devingress serves on
//! loopback, and which it cannot (pure: objects in, a list out).
//!
//! A Service is served when its `spec.loadBalancerClass` is unset or is
//! [`LB_CLASS`]; Services of any other class are another controller's and
//! are left alone (no listener, no status). Each TCP port is served at its
//! own number. Two Services claiming one port number: the older keeps it
//! (then `namespace/name`), as for Ingress conflicts. UDP and SCTP cannot go
//! through a pod port-forward, so those ports are listed with that reason.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::backend::{Backend, PortRef, Protocol, resolve_target};

/// The `loadBalancerClass` that names devingress.
pub const LB_CLASS: &str = "devingress.dev/lb";

/// `namespace/name` of a Service.
pub type ServiceKey = super::ObjectKey;

/// Why a port of a served Service is not served, as far as the cluster's
/// objects tell (the machine's ports are the TCP load balancer's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbPortState {
    /// Served at its number on the listen address.
    Serve,
    /// A protocol port-forward cannot carry (UDP, SCTP).
    UnsupportedProtocol,
    /// An older Service holds the same port number.
    Conflict(ServiceKey),
}

/// One port of a served LoadBalancer Service.
#[derive(Debug, Clone)]
pub struct LbPort {
    /// The port's name in the Service, if any.
    pub name: Option<String>,
    /// The port number, served on the listen address as it is.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The pods behind it (its `targetPort`, resolved per pod).
    pub backend: Arc<Backend>,
    /// Whether it is served.
    pub state: LbPortState,
}

/// A `type: LoadBalancer` Service that devingress serves.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    /// The Service.
    pub service: ServiceKey,
    /// Its ports, in the Service's order.
    pub ports: Vec<LbPort>,
}

/// Whether devingress serves Services of this `loadBalancerClass`.
pub fn serves_class(class: Option<&str>) -> bool {
    class.is_none_or(|c| c == LB_CLASS)
}

/// The LoadBalancer Services devingress serves, oldest first, with every
/// port's state; and one warning per port that cannot be used, naming the
/// Service and the field.
pub fn load_balancers(
    services: &[Arc<Service>],
    slices_by_ns: &HashMap<&str, Vec<&EndpointSlice>>,
) -> (Vec<LoadBalancer>, Vec<String>) {
    let mut chosen: Vec<&Service> = services
        .iter()
        .map(|s| &**s)
        .filter(|s| {
            let spec = s.spec.as_ref();
            spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                && serves_class(spec.and_then(|s| s.load_balancer_class.as_deref()))
        })
        .collect();
    chosen.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb).then_with(|| ServiceKey::of(*a).cmp(&ServiceKey::of(*b)))
    });
    let mut holders: BTreeMap<u16, ServiceKey> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    for svc in chosen {
        let key = ServiceKey::of(svc);
        let slices = slices_by_ns.get(key.namespace.as_str()).map(Vec::as_slice).unwrap_or_default();
        let mut ports = Vec::new();
        let spec_ports = svc.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default();
        for (i, p) in spec_ports.iter().enumerate() {
            let Ok(number) = u16::try_from(p.port) else {
                warnings
                    .push(format!("Service {key}: spec.ports[{i}].port: {} is not a port number; not served", p.port));
                continue;
            };
            if number == 0 {
                warnings.push(format!("Service {key}: spec.ports[{i}].port: 0 is not a port number; not served"));
                continue;
            }
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let target = resolve_target(svc, p.name.as_deref(), slices.iter().copied());
            let backend =
                Arc::new(Backend::new(&key.namespace, &key.name, PortRef::Number(number), Protocol::Http1, target));
            let state = if protocol != "TCP" {
                LbPortState::UnsupportedProtocol
            } else {
                match holders.get(&number) {
                    Some(holder) => LbPortState::Conflict(holder.clone()),
                    None => {
                        holders.insert(number, key.clone());
                        LbPortState::Serve
                    }
                }
            };
            ports.push(LbPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol,
                backend,
                state,
            });
        }
        out.push(LoadBalancer { service: key, ports });
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Target;
    use serde_json::json;

    fn svc(ns: &str, name: &str, created: &str, class: Option<&str>, ports: serde_json::Value) -> Arc<Service> {
        let mut spec = json!({"type": "LoadBalancer", "selector": {"app": name}, "ports": ports});
        if let Some(c) = class {
            spec["loadBalancerClass"] = json!(c);
        }
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
                                          "spec": spec}))
            .unwrap(),
        )
    }

    fn slice(ns: &str, svc: &str, port_name: &str, port: u16, pods: &[(&str, Option<bool>, bool)]) -> EndpointSlice {
        let eps: Vec<serde_json::Value> = pods
            .iter()
            .map(|(p, ready, terminating)| {
                json!({"addresses": ["10.0.0.1"], "conditions": {"ready": ready, "terminating": terminating},
                       "targetRef": {"kind": "Pod", "name": p, "namespace": ns}})
            })
            .collect();
        serde_json::from_value(json!({"metadata": {"name": format!("{svc}-x"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc}}, "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}))
        .unwrap()
    }

    fn build(services: &[Arc<Service>], slices: &[EndpointSlice]) -> (Vec<LoadBalancer>, Vec<String>) {
        let mut by_ns: HashMap<&str, Vec<&EndpointSlice>> = HashMap::new();
        for s in slices {
            by_ns.entry(s.metadata.namespace.as_deref().unwrap()).or_default().push(s);
        }
        load_balancers(services, &by_ns)
    }

    #[test]
    fn unset_and_own_class_are_served_other_classes_and_types_are_not() {
        let mut other = (*svc("a", "cluster-ip", "2026-01-01T00:00:00Z", None, json!([{"port": 1}]))).clone();
        other.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        let services = vec![
            svc("a", "plain", "2026-01-01T00:00:00Z", None, json!([{"port": 6379}])),
            svc("a", "ours", "2026-01-01T00:00:00Z", Some(LB_CLASS), json!([{"port": 5432}])),
            svc("a", "theirs", "2026-01-01T00:00:00Z", Some("example.com/metallb"), json!([{"port": 9000}])),
            Arc::new(other),
        ];
        let (lbs, warnings) = build(&services, &[]);
        let names: Vec<String> = lbs.iter().map(|l| l.service.to_string()).collect();
        assert_eq!(names, ["a/ours", "a/plain"]);
        assert!(warnings.is_empty());
    }

    #[test]
    fn the_older_service_keeps_a_port_and_udp_is_listed_as_unsupported() {
        let services = vec![
            svc("b", "young", "2026-02-01T00:00:00Z", None, json!([{"port": 6379, "name": "redis"}])),
            svc("a", "old", "2026-01-01T00:00:00Z", None, json!([{"port": 6379}, {"port": 53, "protocol": "UDP"}])),
        ];
        let (lbs, _) = build(&services, &[]);
        assert_eq!(lbs[0].service.to_string(), "a/old");
        assert_eq!(lbs[0].ports[0].state, LbPortState::Serve);
        assert_eq!(lbs[0].ports[1].state, LbPortState::UnsupportedProtocol);
        assert_eq!(
            lbs[1].ports[0].state,
            LbPortState::Conflict(ServiceKey { namespace: "a".into(), name: "old".into() })
        );
        assert_eq!(lbs[1].ports[0].name.as_deref(), Some("redis"));
    }

    #[test]
    fn same_age_goes_by_namespace_and_name() {
        let services = vec![
            svc("z", "s", "2026-01-01T00:00:00Z", None, json!([{"port": 80}])),
            svc("a", "s", "2026-01-01T00:00:00Z", None, json!([{"port": 80}])),
        ];
        let (lbs, _) = build(&services, &[]);
        assert_eq!((lbs[0].service.to_string().as_str(), &lbs[0].ports[0].state), ("a/s", &LbPortState::Serve));
        assert!(matches!(lbs[1].ports[0].state, LbPortState::Conflict(_)));
    }

    #[test]
    fn backends_take_ready_pods_through_the_named_port_and_never_terminating_ones() {
        let services = vec![svc("a", "db", "2026-01-01T00:00:00Z", None, json!([{"port": 5432, "name": "pg"}]))];
        let slices = vec![slice(
            "a",
            "db",
            "pg",
            15432,
            &[
                ("db-0", Some(true), false),
                ("db-1", None, false),
                ("db-2", Some(false), true),
                ("db-3", Some(true), true),
            ],
        )];
        let (lbs, _) = build(&services, &slices);
        match &lbs[0].ports[0].backend.target {
            Target::Pods { ready, not_ready, .. } => {
                let pods: Vec<String> = ready.iter().map(|e| format!("{}:{}", e.pod, e.port)).collect();
                assert_eq!(pods, ["db-0:15432", "db-1:15432"]);
                assert_eq!(*not_ready, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_port_out_of_range_is_skipped_with_a_warning_naming_the_field() {
        let services = vec![svc("a", "bad", "2026-01-01T00:00:00Z", None, json!([{"port": 70000}, {"port": 8080}]))];
        let (lbs, warnings) = build(&services, &[]);
        assert_eq!(lbs[0].ports.len(), 1);
        assert_eq!(warnings, ["Service a/bad: spec.ports[0].port: 70000 is not a port number; not served"]);
    }
}
