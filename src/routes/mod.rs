//! The routing table: cluster objects in, routes out, with no I/O.
//!
//! Rules 5 to 16 of the Ingress routing rules apply. Host selection comes
//! first: the most specific host group that matches the request host is the
//! only one whose paths are tried (exact beats wildcard beats empty host, as
//! a server block does in nginx and a hostname does in the Gateway API).
//! Within it the longest path wins, `Exact` before `Prefix` at equal length.
//! When no path matches, the group's own default backend answers (the
//! `defaultBackend` of an Ingress that has rules for that host), then the
//! cluster-wide one, and without either the answer is 404.

mod backend;
mod class;
pub mod gateway;
mod host;
mod lb;
mod path;
mod render;
#[cfg(test)]
mod tests;

/// A table with one Ingress routing each of `hosts` (`""` for no host) to
/// a Service `s`, for tests of what reads tables (TLS, DNS).
#[cfg(test)]
pub fn table_for_hosts(hosts: &[&str]) -> RouteTable {
    let rules: Vec<serde_json::Value> = hosts
        .iter()
        .map(|h| {
            serde_json::json!({"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}})
        })
        .collect();
    let ing = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "i", "namespace": "default"}, "spec": {"rules": rules}}),
    )
    .expect("valid Ingress");
    build(&Snapshot { ingresses: vec![Arc::new(ing)], synced: true, ..Default::default() })
}

pub use backend::{Backend, PodEndpoint, PortRef, Protocol, Target};
pub use class::{CLASS_ANNOTATION, CLASS_NAME, CONTROLLER, ClassPolicy, DEFAULT_CLASS_ANNOTATION, class_of};
pub use host::{HostError, HostPattern, normalize_request_host};
pub use lb::{LB_CLASS, LbPort, LbPortState, LoadBalancer, ServiceKey, serves_class};
pub use path::{PathError, PathKind, PathRule};
pub use render::{columns, render};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use crate::cluster::Snapshot;

/// The annotation that makes a backend speak gRPC (HTTP/2), as in ingress-nginx.
pub const BACKEND_PROTOCOL_ANNOTATION: &str = "nginx.ingress.kubernetes.io/backend-protocol";
/// The Service port `appProtocol` that means HTTP/2 over cleartext.
pub const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";

/// `namespace/name` of a namespaced object: an Ingress, a Service, a
/// Gateway or a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ObjectKey {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

/// `namespace/name` of an Ingress.
pub type IngressKey = ObjectKey;

impl ObjectKey {
    /// The key of an object.
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        ObjectKey {
            namespace: obj.meta().namespace.clone().unwrap_or_default(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A host name the table serves, whichever API named it: what DNS
/// answers, what certificates are minted for and what the OS resolver sends
/// to devingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServedHost {
    /// One name.
    Exact(String),
    /// Names under `suffix`: one label deeper (an Ingress wildcard), or any
    /// number of labels (a Gateway API wildcard).
    Wildcard {
        /// The domain, without `*.`.
        suffix: String,
        /// Whether names more than one label deeper are served too.
        any_depth: bool,
    },
}

impl ServedHost {
    /// Whether a lower-case name without the final dot is served.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            ServedHost::Exact(h) => h == name,
            ServedHost::Wildcard { suffix, any_depth } => match name.strip_suffix(suffix.as_str()) {
                Some(rest) if rest.len() > 1 && rest.ends_with('.') => {
                    *any_depth || !rest[..rest.len() - 1].contains('.')
                }
                _ => false,
            },
        }
    }

    /// Its DNS zone: the exact name, or the wildcard's domain.
    pub fn zone(&self) -> &str {
        match self {
            ServedHost::Exact(h) | ServedHost::Wildcard { suffix: h, .. } => h,
        }
    }
}

impl fmt::Display for ServedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServedHost::Exact(h) => f.write_str(h),
            ServedHost::Wildcard { suffix, .. } => write!(f, "*.{suffix}"),
        }
    }
}

/// A path of a host group and where it goes.
#[derive(Debug, Clone)]
pub struct PathRoute {
    /// The path and how it matches.
    pub rule: PathRule,
    /// Where matching requests go.
    pub backend: Arc<Backend>,
    /// The Ingress the path came from.
    pub ingress: IngressKey,
}

/// A default backend and the Ingress that gave it.
#[derive(Debug, Clone)]
pub struct DefaultRoute {
    /// Where unmatched requests go.
    pub backend: Arc<Backend>,
    /// The Ingress whose `defaultBackend` this is.
    pub ingress: IngressKey,
}

/// All paths for one host pattern, merged over every Ingress that names it.
#[derive(Debug, Clone)]
pub struct HostGroup {
    /// The host pattern.
    pub host: HostPattern,
    /// Paths in match order: the first that matches wins.
    pub paths: Vec<PathRoute>,
    /// The `defaultBackend` of an Ingress with rules for this host.
    pub default_backend: Option<DefaultRoute>,
}

/// A host listed in an Ingress's `spec.tls` (rules 17 to 19), or the
/// hostname of a Gateway's HTTPS listener with its `certificateRefs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsHost {
    /// The host pattern.
    pub host: HostPattern,
    /// The `kubernetes.io/tls` Secret named for it, in the Ingress's
    /// namespace; `None` when `secretName` is empty.
    pub secret: Option<SecretRef>,
    /// Whether plain HTTP redirects to HTTPS (308), which is the default;
    /// the annotation `nginx.ingress.kubernetes.io/ssl-redirect: "false"` turns it off.
    pub redirect: bool,
    /// What lists it, for messages: `Ingress ns/name`, `Gateway ns/name listener https`.
    pub owner: String,
}

/// `namespace/name` of a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The annotation that turns off the HTTP to HTTPS redirect of `spec.tls` hosts.
pub const SSL_REDIRECT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/ssl-redirect";

/// An Ingress that is not served, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The Ingress.
    pub ingress: IngressKey,
    /// The offending field, e.g. `spec.rules[0].http.paths[1].backend`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ingress {} skipped: {}: {}", self.ingress, self.field, self.reason)
    }
}

/// What a request resolved to.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    /// Where the request goes.
    pub backend: &'a Arc<Backend>,
    /// The Ingress that routed it.
    pub ingress: &'a IngressKey,
}

/// The routing table computed from one [`Snapshot`].
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Host groups: exact hosts, then wildcards, then the empty host, each sorted.
    pub groups: Vec<HostGroup>,
    /// The cluster-wide default backend.
    pub default_backend: Option<DefaultRoute>,
    /// Ingresses that are not served because they are malformed.
    pub skipped: Vec<Skipped>,
    /// Ingresses left out by the class policy, and why.
    pub other_class: Vec<(IngressKey, String)>,
    /// Ingresses that are served (their status gets devingress's address).
    pub served: Vec<IngressKey>,
    /// Hosts listed in `spec.tls` of served Ingresses, oldest Ingress first.
    pub tls: Vec<TlsHost>,
    /// Problems that do not stop an Ingress from being served (conflicts,
    /// unsupported backends). Each names the Ingress.
    pub warnings: Vec<String>,
    /// Number of Ingresses that are served.
    pub ingress_count: usize,
    /// Whether the snapshot was complete (see [`Snapshot::synced`]).
    pub synced: bool,
    /// The `type: LoadBalancer` Services served on loopback, oldest first.
    pub load_balancers: Vec<LoadBalancer>,
    /// Routes of Gateways (HTTPRoutes), which take a host before Ingresses do.
    pub gateway: gateway::GatewayTable,
    /// Every host name served, from Ingresses and Gateway routes alike.
    pub served_hosts: Vec<ServedHost>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
    any: Option<usize>,
}

impl RouteTable {
    /// The host group a normalised host belongs to: its exact host, else a
    /// wildcard one label up, else the rules without a host.
    fn group_for(&self, host: &str) -> Option<&HostGroup> {
        self.exact
            .get(host)
            .or_else(|| {
                host.split_once('.').and_then(
                    |(first, rest)| {
                        if first.is_empty() { None } else { self.wildcard.get(rest) }
                    },
                )
            })
            .or(self.any.as_ref())
            .map(|&i| &self.groups[i])
    }

    /// Which served host a request host counts under: its host pattern
    /// (`*.apps.test`), `*` for the cluster's default backend, or `None`
    /// when nothing routes it.
    pub fn served_as(&self, host: &str) -> Option<String> {
        match self.group_for(host) {
            Some(g) if g.host == HostPattern::Any => Some("*".into()),
            Some(g) => Some(g.host.to_string()),
            None => self.default_backend.as_ref().map(|_| "*".into()),
        }
    }

    /// Finds the route for a normalised host and a request path.
    pub fn route(&self, host: &str, path: &str) -> Option<RouteMatch<'_>> {
        if let Some(group) = self.group_for(host) {
            if let Some(p) = group.paths.iter().find(|p| p.rule.matches(path)) {
                return Some(RouteMatch { backend: &p.backend, ingress: &p.ingress });
            }
            if let Some(d) = &group.default_backend {
                return Some(RouteMatch { backend: &d.backend, ingress: &d.ingress });
            }
        }
        self.default_backend.as_ref().map(|d| RouteMatch { backend: &d.backend, ingress: &d.ingress })
    }

    /// The `spec.tls` entry for a normalised request host: the exact host,
    /// else a wildcard that matches it.
    pub fn tls_for(&self, host: &str) -> Option<&TlsHost> {
        let exact = HostPattern::Exact(host.to_string());
        self.tls
            .iter()
            .find(|t| t.host == exact)
            .or_else(|| self.tls.iter().find(|t| matches!(t.host, HostPattern::Wildcard(_)) && t.host.matches(host)))
    }

    /// The host patterns that are served, as shown to users.
    pub fn hosts(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.host.to_string()).collect()
    }

    /// Every distinct backend in the table.
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        let mut seen: Vec<Arc<Backend>> = Vec::new();
        let all = self
            .groups
            .iter()
            .flat_map(|g| g.paths.iter().map(|p| &p.backend).chain(g.default_backend.as_ref().map(|d| &d.backend)))
            .chain(self.default_backend.as_ref().map(|d| &d.backend))
            .chain(self.gateway.backends());
        for b in all {
            if !seen.iter().any(|s| Arc::ptr_eq(s, b)) {
                seen.push(b.clone());
            }
        }
        seen
    }
}

/// The host names of the Ingress host groups and the Gateway routes, each
/// once (a Gateway wildcard wins over an Ingress one on the same domain: it
/// covers more).
fn served_hosts(table: &RouteTable) -> Vec<ServedHost> {
    let mut out: Vec<ServedHost> = Vec::new();
    let ingress = table.groups.iter().filter_map(|g| match &g.host {
        HostPattern::Exact(h) => Some(ServedHost::Exact(h.clone())),
        HostPattern::Wildcard(s) => Some(ServedHost::Wildcard { suffix: s.clone(), any_depth: false }),
        HostPattern::Any => None,
    });
    let gateway = table.gateway.slots().flat_map(|slot| {
        table.gateway.hosts(slot).into_iter().filter_map(|h| match h {
            gateway::GatewayHost::Exact(h) => Some(ServedHost::Exact(h.clone())),
            gateway::GatewayHost::Wildcard(s) => Some(ServedHost::Wildcard { suffix: s.clone(), any_depth: true }),
            gateway::GatewayHost::Any => None,
        })
    });
    for host in ingress.chain(gateway) {
        match out.iter_mut().find(|o| {
            o.zone() == host.zone()
                && matches!(o, ServedHost::Wildcard { .. }) == matches!(host, ServedHost::Wildcard { .. })
        }) {
            Some(ServedHost::Wildcard { any_depth, .. }) => {
                if let ServedHost::Wildcard { any_depth: true, .. } = host {
                    *any_depth = true;
                }
            }
            Some(_) => {}
            None => out.push(host),
        }
    }
    out
}

/// A backend reference that passed validation, before it is shared.
struct BackendSpec {
    service: String,
    port: PortRef,
    /// The Service port's name, used to find the port in EndpointSlices.
    port_name: Option<String>,
    protocol: Protocol,
    target: Option<Target>,
}

/// What an Ingress contributes, once it validated as a whole.
struct Contribution {
    key: IngressKey,
    paths: Vec<(HostPattern, PathRule, BackendSpec)>,
    hosts: Vec<HostPattern>,
    tls: Vec<TlsHost>,
    default_backend: Option<BackendSpec>,
    has_rules: bool,
}

/// Builds the routing table from a snapshot, serving every Ingress. Pure:
/// the same snapshot gives the same table.
pub fn build(snapshot: &Snapshot) -> RouteTable {
    build_with(snapshot, &ClassPolicy::default())
}

/// Builds the routing table from a snapshot for the Ingresses `policy` admits.
pub fn build_with(snapshot: &Snapshot, policy: &ClassPolicy) -> RouteTable {
    let services: HashMap<(&str, &str), &Service> = snapshot
        .services
        .iter()
        .map(|s| {
            (
                (s.metadata.namespace.as_deref().unwrap_or_default(), s.metadata.name.as_deref().unwrap_or_default()),
                &**s,
            )
        })
        .collect();
    let mut slices_by_ns: HashMap<&str, Vec<&EndpointSlice>> = HashMap::new();
    for s in &snapshot.endpoint_slices {
        slices_by_ns.entry(s.metadata.namespace.as_deref().unwrap_or_default()).or_default().push(s);
    }

    // Oldest first, so that conflicts resolve the same way every time.
    let mut ingresses: Vec<&Ingress> = snapshot.ingresses.iter().map(|i| &**i).collect();
    ingresses.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb).then_with(|| IngressKey::of(*a).cmp(&IngressKey::of(*b)))
    });

    let mut table = RouteTable { synced: snapshot.synced, ..RouteTable::default() };
    let (load_balancers, lb_warnings) = lb::load_balancers(&snapshot.services, &slices_by_ns);
    table.load_balancers = load_balancers;
    table.warnings.extend(lb_warnings);
    if let Some(objects) = &snapshot.gateway {
        table.gateway = gateway::GatewayTable::build(objects, &policy.gateway_classes, &services, &slices_by_ns);
        table.warnings.extend(table.gateway.warnings.iter().cloned());
        // A Gateway's certificates come first: its routes take their hosts.
        let ingress_tls = std::mem::take(&mut table.tls);
        table.tls = table.gateway.tls.iter().cloned().chain(ingress_tls).collect();
    }
    let mut contributions = Vec::new();
    for ing in ingresses {
        if let Err(why) = policy.admits(ing, snapshot.ingress_classes.iter().map(|c| &**c)) {
            table.other_class.push((IngressKey::of(ing), why));
            continue;
        }
        match validate(ing, &services) {
            Ok(c) => contributions.push(c),
            Err(s) => table.skipped.push(s),
        }
    }
    table.ingress_count = contributions.len();
    table.served = contributions.iter().map(|c| c.key.clone()).collect();
    for c in &contributions {
        for t in &c.tls {
            if !table.tls.iter().any(|have| have.host == t.host) {
                table.tls.push(t.clone());
            }
        }
    }

    // Share one Backend per Service port, so round-robin sees all its traffic.
    let mut shared: HashMap<(String, String, PortRef, Protocol), Arc<Backend>> = HashMap::new();
    let mut share = |ns: &str, spec: BackendSpec, ingress: &IngressKey, warnings: &mut Vec<String>| {
        let key = (ns.to_string(), spec.service.clone(), spec.port.clone(), spec.protocol);
        if let Some(b) = shared.get(&key) {
            return b.clone();
        }
        let target = spec.target.unwrap_or_else(|| match services.get(&(ns, spec.service.as_str())) {
            Some(svc) => backend::resolve_target(
                svc,
                spec.port_name.as_deref(),
                slices_by_ns.get(ns).into_iter().flatten().copied(),
            ),
            None => Target::ServiceMissing,
        });
        if let Target::Unsupported(why) = &target {
            warnings.push(format!("Ingress {ingress}: {why}"));
        }
        let b = Arc::new(Backend::new(ns, &spec.service, spec.port, spec.protocol, target));
        shared.insert(key, b.clone());
        b
    };

    let mut groups: BTreeMap<HostPattern, HostGroup> = BTreeMap::new();
    let mut default_candidates: Vec<(bool, DefaultRoute)> = Vec::new();
    for c in contributions {
        let ns = c.key.namespace.clone();
        for host in &c.hosts {
            groups.entry(host.clone()).or_insert_with(|| HostGroup {
                host: host.clone(),
                paths: Vec::new(),
                default_backend: None,
            });
        }
        for (host, rule, spec) in c.paths {
            let group = groups.get_mut(&host).expect("host group inserted above");
            if let Some(existing) = group.paths.iter().find(|p| p.rule == rule) {
                table.warnings.push(format!(
                    "Ingress {} also routes {} {} {}; the older Ingress {} keeps it",
                    c.key, host, rule.kind, rule.path, existing.ingress
                ));
                continue;
            }
            let backend = share(&ns, spec, &c.key, &mut table.warnings);
            group.paths.push(PathRoute { rule, backend, ingress: c.key.clone() });
        }
        if let Some(spec) = c.default_backend {
            let route = DefaultRoute { backend: share(&ns, spec, &c.key, &mut table.warnings), ingress: c.key.clone() };
            for host in &c.hosts {
                let group = groups.get_mut(host).expect("host group inserted above");
                if group.default_backend.is_none() {
                    group.default_backend = Some(route.clone());
                }
            }
            default_candidates.push((c.has_rules, route));
        }
    }

    // Cluster-wide default: an Ingress without rules first, then the oldest.
    default_candidates.sort_by_key(|(has_rules, _)| *has_rules);
    if let Some((_, winner)) = default_candidates.first() {
        for (_, other) in &default_candidates[1..] {
            if !Arc::ptr_eq(&other.backend, &winner.backend) {
                table.warnings.push(format!(
                    "Ingress {} and Ingress {} both give a cluster-wide default backend; {} ({}) wins",
                    winner.ingress,
                    other.ingress,
                    winner.ingress,
                    winner.backend.display_name()
                ));
            }
        }
        table.default_backend = Some(winner.clone());
    }

    let mut groups: Vec<HostGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| a.host.rank().cmp(&b.host.rank()).then_with(|| a.host.cmp(&b.host)));
    for (i, g) in groups.iter_mut().enumerate() {
        g.paths.sort_by(|a, b| a.rule.precedence(&b.rule));
        match &g.host {
            HostPattern::Exact(h) => {
                table.exact.insert(h.clone(), i);
            }
            HostPattern::Wildcard(s) => {
                table.wildcard.insert(s.clone(), i);
            }
            HostPattern::Any => table.any = Some(i),
        }
    }
    table.groups = groups;
    table.served_hosts = served_hosts(&table);
    table
}

/// Checks one Ingress as a whole. The first problem skips it, naming the field.
fn validate(ing: &Ingress, services: &HashMap<(&str, &str), &Service>) -> Result<Contribution, Skipped> {
    let key = IngressKey::of(ing);
    let skip = |field: String, reason: String| Skipped { ingress: key.clone(), field, reason };
    let ns = key.namespace.as_str();
    let grpc = ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BACKEND_PROTOCOL_ANNOTATION))
        .is_some_and(|p| p.eq_ignore_ascii_case("GRPC") || p.eq_ignore_ascii_case("H2C"));
    let Some(spec) = ing.spec.as_ref() else {
        return Err(skip("spec".into(), "is missing".into()));
    };
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        return Err(skip("spec".into(), "has neither rules nor a defaultBackend".into()));
    }
    let default_backend = match &spec.default_backend {
        Some(b) => {
            Some(check_backend(b, ns, services, grpc).map_err(|(f, r)| skip(format!("spec.defaultBackend{f}"), r))?)
        }
        None => None,
    };
    let mut paths = Vec::new();
    let mut hosts = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let host = HostPattern::parse(rule.host.as_deref())
            .map_err(|e| skip(format!("spec.rules[{i}].host"), e.to_string()))?;
        if !hosts.contains(&host) {
            hosts.push(host.clone());
        }
        let Some(http) = &rule.http else { continue };
        for (j, p) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let rule = PathRule::parse(p.path.as_deref(), &p.path_type).map_err(|e| {
                let sub = if matches!(e, PathError::BadKind(_)) { "pathType" } else { "path" };
                skip(format!("{field}.{sub}"), e.to_string())
            })?;
            let backend = check_backend(&p.backend, ns, services, grpc)
                .map_err(|(f, r)| skip(format!("{field}.backend{f}"), r))?;
            paths.push((host.clone(), rule, backend));
        }
    }
    let redirect = ing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SSL_REDIRECT_ANNOTATION))
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let mut tls = Vec::new();
    for (i, entry) in spec.tls.as_deref().unwrap_or_default().iter().enumerate() {
        let secret = entry
            .secret_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|name| SecretRef { namespace: key.namespace.clone(), name: name.to_string() });
        for (j, h) in entry.hosts.as_deref().unwrap_or_default().iter().enumerate() {
            let host =
                HostPattern::parse(Some(h)).map_err(|e| skip(format!("spec.tls[{i}].hosts[{j}]"), e.to_string()))?;
            if host != HostPattern::Any {
                tls.push(TlsHost { host, secret: secret.clone(), redirect, owner: format!("Ingress {key}") });
            }
        }
    }
    Ok(Contribution { key, paths, hosts, tls, default_backend, has_rules: !rules.is_empty() })
}

/// Checks a backend reference; an error gives the field below `backend` and the reason.
fn check_backend(
    b: &IngressBackend,
    ns: &str,
    services: &HashMap<(&str, &str), &Service>,
    grpc: bool,
) -> Result<BackendSpec, (String, String)> {
    if let Some(r) = &b.resource {
        let what = format!("{}/{}", r.kind, r.name);
        return Ok(BackendSpec {
            service: what.clone(),
            port: PortRef::Name("-".into()),
            port_name: None,
            protocol: Protocol::Http1,
            target: Some(Target::Unsupported(format!(
                "backend.resource ({what}) is not supported; devingress forwards only to Services"
            ))),
        });
    }
    let Some(svc) = &b.service else {
        return Err((String::new(), "names neither a service nor a resource".into()));
    };
    if svc.name.is_empty() {
        return Err((".service.name".into(), "is empty".into()));
    }
    let port = match svc.port.as_ref().map(|p| (p.number, p.name.as_deref())) {
        Some((Some(n), None)) => match u16::try_from(n) {
            Ok(n) if n > 0 => PortRef::Number(n),
            _ => return Err((".service.port.number".into(), format!("{n} is not a valid port"))),
        },
        Some((None, Some(name))) if !name.is_empty() => PortRef::Name(name.to_string()),
        Some((Some(_), Some(_))) => {
            return Err((".service.port".into(), "gives both a number and a name; give one".into()));
        }
        _ => return Err((".service.port".into(), "gives neither a number nor a name".into())),
    };
    let mut protocol = if grpc { Protocol::H2c } else { Protocol::Http1 };
    let (port_name, target) = match services.get(&(ns, svc.name.as_str())) {
        Some(s) => {
            let sp = backend::find_service_port(s, &port).map_err(|e| (format!(".{}", e.field), e.reason))?;
            if sp.app_protocol.as_deref() == Some(H2C_APP_PROTOCOL) {
                protocol = Protocol::H2c;
            }
            (sp.name.clone(), None)
        }
        // A Service that does not exist yet is not a malformed Ingress: the
        // route answers 503 until it appears.
        None => (None, Some(Target::ServiceMissing)),
    };
    Ok(BackendSpec { service: svc.name.clone(), port, port_name, protocol, target })
}
