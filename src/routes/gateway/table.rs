//! Gateways and HTTPRoutes into routes (pure): which Gateways devingress
//! serves, which routes attach to which listeners and under which
//! hostnames, and each rule's matches and weighted backends, ordered by the
//! Gateway API's precedence.
//!
//! `HTTP` and `HTTPS` listeners go into slots: port 80 and 443 onto
//! devingress's own HTTP and HTTPS ports, any other port onto a port of its
//! own ([`Slot`]). Routes (HTTPRoute, and GRPCRoute in the same shape)
//! attach through `parentRefs` where `allowedRoutes` lets them, under the
//! intersection of their hostnames with the listener's; each rule's
//! matches, filters, timeouts and weighted backends become lookup entries.
//! What cannot be served is left out with a warning that names the object
//! and field, and the reports say how each Gateway and route stands, for
//! their status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{Filter, GatewayHost, HttpMatch, RequestParts};
use crate::cluster::GatewayObjects;
use crate::gateway::api::gateways::{GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom};
use crate::gateway::api::httproutes::HttpRouteRulesBackendRefs;
use crate::gateway::api::{GROUP, Gateway, HttpRoute, ReferenceGrant};
use crate::routes::backend::{Backend, PortRef, Protocol, find_service_port, resolve_target};
use crate::routes::{H2C_APP_PROTOCOL, ObjectKey, Target};

/// The controller name of devingress's GatewayClasses.
pub const CONTROLLER: &str = "devingress.dev/gateway-controller";

/// Which of devingress's listeners a Gateway listener is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// devingress's HTTP port (the Gateway's port 80).
    Http,
    /// devingress's HTTPS port (the Gateway's port 443).
    Https,
    /// A port of its own, at the listener's number (any other port).
    Port {
        /// The port number, the same on the listen address.
        port: u16,
        /// Whether connections are TLS first (an `HTTPS` listener).
        tls: bool,
    },
}

impl Slot {
    /// Where devingress serves a listener of `protocol` on `port`, or
    /// `None` for a protocol it does not serve.
    pub fn of(protocol: &str, port: i32) -> Option<Slot> {
        let port = u16::try_from(port).ok().filter(|p| *p > 0)?;
        match (protocol, port) {
            ("HTTP", 80) => Some(Slot::Http),
            ("HTTPS", 443) => Some(Slot::Https),
            ("HTTP", port) => Some(Slot::Port { port, tls: false }),
            ("HTTPS", port) => Some(Slot::Port { port, tls: true }),
            _ => None,
        }
    }

    /// The Gateway listener's port number this slot serves.
    pub fn listener_port(self) -> u16 {
        match self {
            Slot::Http => 80,
            Slot::Https => 443,
            Slot::Port { port, .. } => port,
        }
    }

    /// `https` when connections are TLS first, else `http`.
    pub fn scheme(self) -> &'static str {
        if self.tls() { "https" } else { "http" }
    }

    /// Whether connections are TLS first.
    pub fn tls(self) -> bool {
        match self {
            Slot::Http => false,
            Slot::Https => true,
            Slot::Port { tls, .. } => tls,
        }
    }
}

impl std::fmt::Display for Slot {
    /// `http`, `https`, or with a port of its own `http:8080`, `https:8443`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Http => f.write_str("http"),
            Slot::Https => f.write_str("https"),
            Slot::Port { port, tls: false } => write!(f, "http:{port}"),
            Slot::Port { port, tls: true } => write!(f, "https:{port}"),
        }
    }
}

/// One backend of a rule and its weight.
#[derive(Debug, Clone)]
pub enum WeightedBackend {
    /// A Service port.
    Service {
        /// The Service port's pods.
        backend: Arc<Backend>,
        /// Its share.
        weight: u32,
        /// The backendRef's own filters (header modifiers), applied after
        /// the rule's to the requests it takes.
        filters: Arc<Vec<Filter>>,
    },
    /// A backendRef that cannot be used: its share answers 500 (rule 22).
    Invalid {
        /// Its share.
        weight: u32,
        /// The reason for the route's status (`BackendNotFound`, `RefNotPermitted`, `InvalidKind`).
        reason: &'static str,
        /// Why, in words.
        message: String,
    },
}

/// One match of one rule of one route, as the lookup tries it.
#[derive(Debug, Clone)]
pub struct GatewayRule {
    /// The match.
    pub matched: HttpMatch,
    /// The rule's backends.
    pub backends: Arc<Vec<WeightedBackend>>,
    /// The rule's filters, in order.
    pub filters: Arc<Vec<Filter>>,
    /// How long the backend may take to answer (`timeouts.request` or
    /// `timeouts.backendRequest`, whichever is shorter).
    pub timeout: Option<std::time::Duration>,
    /// Weighted round-robin cursor, shared by the rule's matches.
    cursor: Arc<AtomicUsize>,
    /// The route.
    pub route: ObjectKey,
    /// The rule's index in the route.
    pub rule: usize,
    /// The Gateway and listener it came through.
    pub via: (ObjectKey, String),
    created: Option<k8s_openapi::jiff::Timestamp>,
}

/// What a request found.
#[derive(Debug, Clone)]
pub enum GatewayAction<'a> {
    /// Send it to this backend, with the backendRef's own filters.
    Forward(&'a Arc<Backend>, &'a GatewayRule, &'a [Filter]),
    /// Answer it with 500: the share of an invalid backendRef, or a rule
    /// without a usable backend.
    Fail(String, &'a GatewayRule),
    /// The rule answers with a redirect of its own (`RequestRedirect`).
    Redirect(&'a GatewayRule),
    /// The host is a Gateway route's, but no rule matches: 404.
    NoRule,
}

/// The rules under one effective hostname of one slot.
#[derive(Debug, Clone, Default)]
struct HostRules {
    rules: Vec<GatewayRule>,
}

/// A rule match as shown to users.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatewayRow {
    /// `http` or `https`, devingress's own listeners, or `http:8080`, a
    /// port of the listener's own.
    pub listener: String,
    /// The hostname it answers.
    pub host: String,
    /// The match, condensed.
    pub matched: String,
    /// Backends with weights and ready pods, or what it answers.
    pub action: String,
    /// `namespace/name rule N` of the route.
    pub route: String,
    /// The Gateway and listener it came through.
    pub via: String,
}

/// Why a condition is false: its reason and message.
pub type Unmet = (&'static str, String);

/// How one listener of a served Gateway stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerReport {
    /// The listener's name.
    pub name: String,
    /// Where it is served (`None`: a protocol devingress does not serve).
    pub slot: Option<Slot>,
    /// The route kinds it supports (`HTTPRoute` for HTTP and HTTPS).
    pub supported_kinds: Vec<&'static str>,
    /// How many routes attach to it.
    pub attached_routes: usize,
    /// `Ok` when it is accepted and programmed, else why not.
    pub accepted: Result<(), Unmet>,
    /// `Ok` when its `certificateRefs` resolve (`InvalidCertificateRef`,
    /// `RefNotPermitted` otherwise).
    pub resolved: Result<(), Unmet>,
    /// A conflict with another listener on its port (`HostnameConflict`,
    /// `ProtocolConflict`): such a listener is not served (rule 6).
    pub conflicted: Option<Unmet>,
    /// The Secret its `certificateRefs` name, once permitted.
    pub certificate: Option<crate::routes::SecretRef>,
    /// Route kinds in `allowedRoutes.kinds` that devingress does not serve
    /// (`InvalidRouteKinds` in `ResolvedRefs`; the others are still served).
    pub invalid_kinds: Option<Unmet>,
}

impl ListenerReport {
    /// The port of its own the listener asks for: a [`Slot::Port`] of an
    /// accepted listener in no conflict.
    pub fn own_port(&self) -> Option<Slot> {
        match (self.slot, &self.accepted, &self.conflicted) {
            (Some(slot @ Slot::Port { .. }), Ok(()), None) => Some(slot),
            _ => None,
        }
    }

    /// Whether the listener is valid: accepted, its references resolved,
    /// and in no conflict.
    pub fn valid(&self) -> bool {
        self.accepted.is_ok() && self.resolved.is_ok() && self.conflicted.is_none() && self.invalid_kinds.is_none()
    }
}

/// How a served Gateway stands, for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayReport {
    /// The Gateway.
    pub gateway: ObjectKey,
    /// Its `metadata.generation`.
    pub generation: i64,
    /// Whether its class is devingress's (status is written only then).
    pub ours: bool,
    /// Why its `infrastructure.parametersRef` cannot be used (devingress
    /// takes no parameters): the Gateway is then not accepted, nor served.
    pub invalid_parameters: Option<String>,
    /// Its listeners, in order.
    pub listeners: Vec<ListenerReport>,
}

/// How a route stands toward one of its parentRefs to a served Gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentReport {
    /// The parentRef as the route wrote it (for `status.parents[].parentRef`).
    pub parent_ref: serde_json::Value,
    /// Whether that Gateway's class is devingress's.
    pub ours: bool,
    /// `Accepted`, or why not (`NotAllowedByListeners`, `NoMatchingListenerHostname`, `NoMatchingParent`).
    pub accepted: Result<(), Unmet>,
    /// `ResolvedRefs`, or why not (`BackendNotFound`, `RefNotPermitted`, `InvalidKind`).
    pub resolved: Result<(), Unmet>,
}

/// How a route stands, for its status.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteReport {
    /// HTTPRoute or GRPCRoute.
    pub kind: RouteKind,
    /// The route.
    pub route: ObjectKey,
    /// Its `metadata.generation`.
    pub generation: i64,
    /// One entry per parentRef to a served Gateway.
    pub parents: Vec<ParentReport>,
}

/// Every Gateway route devingress serves.
#[derive(Debug, Clone, Default)]
pub struct GatewayTable {
    slots: BTreeMap<Slot, Vec<(GatewayHost, HostRules)>>,
    /// The Gateways served (of devingress's classes, or named with `--gateway-class`).
    pub gateways: Vec<ObjectKey>,
    /// Problems, each naming the object and the field.
    pub warnings: Vec<String>,
    /// How each served Gateway stands.
    pub gateway_reports: Vec<GatewayReport>,
    /// How each route attached (or not) to served Gateways.
    pub route_reports: Vec<RouteReport>,
    /// The hostnames of HTTPS listeners with the Secret each one names.
    pub tls: Vec<crate::routes::TlsHost>,
}

impl GatewayTable {
    /// Every rule, under each host and slot it serves.
    fn rules_mut(&mut self) -> impl Iterator<Item = &mut GatewayRule> {
        self.slots.values_mut().flatten().flat_map(|(_, host)| host.rules.iter_mut())
    }

    /// Carries the request counts of `before`'s `RequestMirror` shares
    /// over to the same rules here (same route, rule and filter), so that
    /// a `percent` or `fraction` stays exact across rebuilds of the table.
    pub fn continue_from(&mut self, before: &GatewayTable) {
        let mut shares: HashMap<(&ObjectKey, usize, usize), &super::filters::Share> = HashMap::new();
        for (_, host) in before.slots.values().flatten() {
            for rule in &host.rules {
                for (i, f) in rule.filters.iter().enumerate() {
                    if let Filter::Mirror { share, .. } = f {
                        shares.insert((&rule.route, rule.rule, i), share);
                    }
                }
            }
        }
        if shares.is_empty() {
            return;
        }
        for rule in self.rules_mut() {
            let mut filters = (*rule.filters).clone();
            let mut carried = false;
            for (i, f) in filters.iter_mut().enumerate() {
                if let (Filter::Mirror { share, .. }, Some(old)) = (f, shares.get(&(&rule.route, rule.rule, i))) {
                    share.continue_from(old);
                    carried = true;
                }
            }
            if carried {
                rule.filters = Arc::new(filters);
            }
        }
    }
}

/// Whether a namespace with `labels` is chosen by a listener's selector
/// (every `matchLabels` pair and every `matchExpressions` entry must hold).
fn selects(
    selector: &crate::gateway::api::gateways::GatewayListenersAllowedRoutesNamespacesSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
}

/// Whether `l` conflicts with another listener of its Gateway (rule 6):
/// another protocol on its port, or the same protocol and hostname.
fn conflict(l: &GatewayListeners, all: &[GatewayListeners]) -> Option<Unmet> {
    let host = |x: &GatewayListeners| x.hostname.clone().unwrap_or_default().to_ascii_lowercase();
    let others = all.iter().filter(|o| o.name != l.name && o.port == l.port);
    let mut same_host = false;
    for o in others {
        if o.protocol != l.protocol {
            return Some(("ProtocolConflict", format!("port {} also has a {} listener", l.port, o.protocol)));
        }
        same_host |= host(o) == host(l);
    }
    same_host.then(|| {
        ("HostnameConflict", format!("another {} listener on port {} has the same hostname", l.protocol, l.port))
    })
}

/// The certificate of an HTTPS listener (rule 7): its hostname as a
/// certificate host pattern (`Any` without one: the routes' hostnames then
/// name the hosts) and the Secret of its first `certificateRefs` entry, or
/// `None` (no refs: devingress mints one); an unusable ref is
/// `InvalidCertificateRef` or `RefNotPermitted`.
fn certificate(
    l: &GatewayListeners,
    gw: &ObjectKey,
    grants: &[Arc<ReferenceGrant>],
) -> Result<Option<(crate::routes::HostPattern, crate::routes::SecretRef)>, Unmet> {
    let Some(r) = l.tls.as_ref().and_then(|t| t.certificate_refs.as_ref()).and_then(|c| c.first()) else {
        return Ok(None);
    };
    if r.group.as_deref().is_some_and(|g| !g.is_empty()) || r.kind.as_deref().is_some_and(|k| k != "Secret") {
        return Err(("InvalidCertificateRef", format!("{} is not a Secret", r.name)));
    }
    let ns = r.namespace.clone().unwrap_or_else(|| gw.namespace.clone());
    if ns != gw.namespace && !granted(grants, ("Gateway", &gw.namespace), ("Secret", &ns, &r.name)) {
        return Err(("RefNotPermitted", format!("no ReferenceGrant in namespace {ns} allows Secret {ns}/{}", r.name)));
    }
    let host = match l.hostname.as_deref() {
        None | Some("") => crate::routes::HostPattern::Any,
        Some(h) => match crate::routes::HostPattern::parse(Some(h)) {
            Ok(p) => p,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some((host, crate::routes::SecretRef { namespace: ns, name: r.name.clone() })))
}

/// The route kinds devingress serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    /// HTTPRoute.
    Http,
    /// GRPCRoute: matched like an HTTPRoute on `/service/method`, its
    /// backends always spoken to over HTTP/2 (h2c).
    Grpc,
}

impl RouteKind {
    /// Every kind devingress serves.
    pub const ALL: [RouteKind; 2] = [RouteKind::Http, RouteKind::Grpc];

    /// The API kind.
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }
}

/// Whether a ReferenceGrant in `to_ns` lets objects of `from_kind` (a
/// Gateway API kind) in `from_ns` refer to the core object `name` of
/// `to_kind` there: a route's Service backends, a Gateway's Secrets.
fn granted(grants: &[Arc<ReferenceGrant>], from: (&str, &str), to: (&str, &str, &str)) -> bool {
    let ((from_kind, from_ns), (to_kind, to_ns, name)) = (from, to);
    grants.iter().filter(|g| g.metadata.namespace.as_deref() == Some(to_ns)).any(|g| {
        g.spec.from.iter().any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns)
            && g.spec
                .to
                .iter()
                .any(|t| t.group.is_empty() && t.kind == to_kind && t.name.as_deref().is_none_or(|n| n == name))
    })
}

/// Whether a listener's `allowedRoutes.kinds` admits routes of `kind`
/// (HTTPRoute and GRPCRoute are the default for HTTP and HTTPS listeners).
fn allows(l: &GatewayListeners, kind: RouteKind) -> bool {
    match l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()) {
        None => true,
        Some(kinds) => kinds.iter().any(|k| k.kind == kind.name() && k.group.as_deref().is_none_or(|g| g == GROUP)),
    }
}

/// A GRPCRoute in the HTTPRoute's shape: each method match becomes a path
/// match on `/service/method` (rule 24), the rest is the same.
fn grpc_as_http(route: &crate::gateway::api::GrpcRoute) -> Option<HttpRoute> {
    let mut v = serde_json::to_value(route).ok()?;
    if let Some(rules) = v["spec"]["rules"].as_array_mut() {
        for rule in rules {
            if let Some(matches) = rule["matches"].as_array_mut() {
                for m in matches {
                    let method = m["method"].take();
                    if let Some(path) = grpc_path(&method) {
                        m["path"] = path;
                    }
                }
            }
        }
    }
    v["apiVersion"] = serde_json::json!("gateway.networking.k8s.io/v1");
    v["kind"] = serde_json::json!("HTTPRoute");
    serde_json::from_value(v).ok()
}

/// The path match of a GRPCRoute method match.
fn grpc_path(method: &serde_json::Value) -> Option<serde_json::Value> {
    let service = method["service"].as_str().filter(|s| !s.is_empty());
    let name = method["method"].as_str().filter(|s| !s.is_empty());
    let regex = method["type"].as_str() == Some("RegularExpression");
    let (kind, value) = match (regex, service, name) {
        (_, None, None) => return None,
        (false, Some(s), Some(m)) => ("Exact", format!("/{s}/{m}")),
        (false, Some(s), None) => ("PathPrefix", format!("/{s}")),
        (false, None, Some(m)) => ("RegularExpression", format!("/[^/]+/{}", regex::escape(m))),
        (true, s, m) => ("RegularExpression", format!("/(?:{})/(?:{})", s.unwrap_or("[^/]+"), m.unwrap_or("[^/]+"))),
    };
    Some(serde_json::json!({"type": kind, "value": value}))
}

impl GatewayTable {
    /// Builds the table. `extra_classes` are foreign GatewayClasses whose
    /// Gateways devingress also routes (`--gateway-class`).
    pub fn build(
        objects: &GatewayObjects,
        extra_classes: &[String],
        services: &HashMap<(&str, &str), &Service>,
        slices_by_ns: &HashMap<&str, Vec<&EndpointSlice>>,
    ) -> Self {
        let mut table = GatewayTable::default();
        let ours: Vec<&str> = objects
            .classes
            .iter()
            .filter(|c| c.spec.controller_name == CONTROLLER)
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        let served: Vec<&Gateway> = objects
            .gateways
            .iter()
            .map(|g| &**g)
            .filter(|g| {
                ours.contains(&g.spec.gateway_class_name.as_str()) || extra_classes.contains(&g.spec.gateway_class_name)
            })
            .collect();
        let key = |ns: Option<&str>, name: &str| ObjectKey {
            namespace: ns.unwrap_or_default().to_string(),
            name: name.to_string(),
        };
        table.gateways = served.iter().map(|g| ObjectKey::of(*g)).collect();
        for g in &served {
            let gw_key = ObjectKey::of(*g);
            let listeners = g
                .spec
                .listeners
                .iter()
                .map(|l| {
                    let slot = Slot::of(&l.protocol, l.port);
                    let accepted = match slot {
                        Some(_) => Ok(()),
                        None => Err((
                            "UnsupportedProtocol",
                            format!("devingress serves HTTP and HTTPS listeners, not {}", l.protocol),
                        )),
                    };
                    if let Err((_, why)) = &accepted {
                        table.warnings.push(format!("Gateway {gw_key}: listener {:?} is not served: {why}", l.name));
                    }
                    let supported_kinds = if matches!(l.protocol.as_str(), "HTTP" | "HTTPS") {
                        RouteKind::ALL.into_iter().filter(|k| allows(l, *k)).map(RouteKind::name).collect()
                    } else {
                        vec![]
                    };
                    let mut certificate_secret = None;
                    let resolved = certificate(l, &gw_key, &objects.reference_grants).map(|cert| {
                        if let Some((host, secret)) = cert {
                            certificate_secret = Some(secret.clone());
                            table.tls.push(crate::routes::TlsHost {
                                host,
                                secret: Some(secret),
                                redirect: false,
                                owner: format!("Gateway {gw_key} listener {}", l.name),
                            });
                        }
                    });
                    if let Err((_, why)) = &resolved {
                        table
                            .warnings
                            .push(format!("Gateway {gw_key}: listener {:?}: tls.certificateRefs: {why}", l.name));
                    }
                    let conflicted = conflict(l, &g.spec.listeners);
                    if let Some((_, why)) = &conflicted {
                        table.warnings.push(format!("Gateway {gw_key}: listener {:?} is not served: {why}", l.name));
                    }
                    let unknown: Vec<String> = l
                        .allowed_routes
                        .iter()
                        .flat_map(|a| a.kinds.iter().flatten())
                        .filter(|k| {
                            k.group.as_deref().is_some_and(|g| g != GROUP)
                                || !RouteKind::ALL.iter().any(|rk| rk.name() == k.kind)
                        })
                        .map(|k| format!("{}/{}", k.group.as_deref().unwrap_or(GROUP), k.kind))
                        .collect();
                    let invalid_kinds = (slot.is_some() && !unknown.is_empty()).then(|| {
                        let why = format!(
                            "allowedRoutes.kinds: {} cannot attach to an {} listener",
                            unknown.join(", "),
                            l.protocol
                        );
                        table.warnings.push(format!("Gateway {gw_key}: listener {:?}: {why}", l.name));
                        ("InvalidRouteKinds", why)
                    });
                    ListenerReport {
                        name: l.name.clone(),
                        slot,
                        supported_kinds,
                        attached_routes: 0,
                        accepted,
                        resolved,
                        conflicted,
                        certificate: certificate_secret,
                        invalid_kinds,
                    }
                })
                .collect();
            let invalid_parameters = g.spec.infrastructure.as_ref().and_then(|i| i.parameters_ref.as_ref()).map(|r| {
                let why = format!(
                    "infrastructure.parametersRef names {}/{} {:?}, but devingress takes no parameters",
                    r.group, r.kind, r.name
                );
                table.warnings.push(format!("Gateway {gw_key} is not served: {why}"));
                why
            });
            table.gateway_reports.push(GatewayReport {
                gateway: gw_key,
                generation: g.metadata.generation.unwrap_or(0),
                ours: ours.contains(&g.spec.gateway_class_name.as_str()),
                invalid_parameters,
                listeners,
            });
        }
        let mut shared: HashMap<(String, String, u16, Protocol), Arc<Backend>> = HashMap::new();
        let grpc: Vec<HttpRoute> = objects.grpc_routes.iter().filter_map(|r| grpc_as_http(r)).collect();
        let mut routes: Vec<(RouteKind, &HttpRoute)> = objects
            .http_routes
            .iter()
            .map(|r| (RouteKind::Http, &**r))
            .chain(grpc.iter().map(|r| (RouteKind::Grpc, r)))
            .collect();
        routes.sort_by_key(|(kind, r)| (r.metadata.creation_timestamp.as_ref().map(|t| t.0), ObjectKey::of(*r), *kind));
        for (kind, route) in routes {
            let route_key = ObjectKey::of(route);
            let route_ns = route_key.namespace.as_str();
            // The listeners this route attaches to, with its hostnames on each.
            let mut attached: Vec<(Slot, GatewayHost, ObjectKey, String)> = Vec::new();
            let mut parents = Vec::new();
            for (pi, parent) in route.spec.parent_refs.iter().flatten().enumerate() {
                if parent.group.as_deref().is_some_and(|g| g != GROUP)
                    || parent.kind.as_deref().is_some_and(|k| k != "Gateway")
                {
                    continue;
                }
                let gw_ns = parent.namespace.as_deref().unwrap_or(route_ns);
                let Some(gi) = served.iter().position(|g| {
                    g.metadata.namespace.as_deref() == Some(gw_ns)
                        && g.metadata.name.as_deref() == Some(parent.name.as_str())
                }) else {
                    continue;
                };
                let gw = served[gi];
                let gw_key = key(Some(gw_ns), &parent.name);
                if let Some(why) = &table.gateway_reports[gi].invalid_parameters {
                    parents.push(ParentReport {
                        parent_ref: serde_json::to_value(parent).unwrap_or_default(),
                        ours: table.gateway_reports[gi].ours,
                        accepted: Err(("NoMatchingParent", format!("Gateway {gw_key} is not accepted: {why}"))),
                        resolved: Ok(()),
                    });
                    continue;
                }
                let before = attached.len();
                let (mut named, mut allowed_somewhere) = (false, false);
                for (li, l) in gw.spec.listeners.iter().enumerate() {
                    if parent.section_name.as_deref().is_some_and(|s| s != l.name)
                        || parent.port.is_some_and(|p| p != l.port)
                    {
                        continue;
                    }
                    named = true;
                    if table.gateway_reports[gi].listeners[li].conflicted.is_some() {
                        continue;
                    }
                    let Some(slot) = Slot::of(&l.protocol, l.port) else { continue };
                    if !allows(l, kind) {
                        continue;
                    }
                    let namespaces = l.allowed_routes.as_ref().and_then(|a| a.namespaces.as_ref());
                    let allowed = match namespaces.and_then(|n| n.from.clone()) {
                        None | Some(GatewayListenersAllowedRoutesNamespacesFrom::Same) => gw_ns == route_ns,
                        Some(GatewayListenersAllowedRoutesNamespacesFrom::All) => true,
                        Some(GatewayListenersAllowedRoutesNamespacesFrom::Selector) => {
                            let selector = namespaces.and_then(|n| n.selector.as_ref());
                            let labels = objects
                                .namespaces
                                .iter()
                                .find(|n| n.metadata.name.as_deref() == Some(route_ns))
                                .and_then(|n| n.metadata.labels.clone())
                                .unwrap_or_default();
                            if objects.namespaces.is_empty() {
                                table.warnings.push(format!(
                                    "Gateway {gw_key}: listener {:?}: allowedRoutes.namespaces.selector needs the \
                                     cluster's Namespaces, which devingress cannot list; {} {route_key} \
                                     (spec.parentRefs[{pi}]) is not attached",
                                    l.name,
                                    kind.name()
                                ));
                            }
                            selector.is_some_and(|s| selects(s, &labels))
                        }
                    };
                    if !allowed {
                        continue;
                    }
                    allowed_somewhere = true;
                    let listener_host = GatewayHost::parse(l.hostname.as_deref());
                    let route_hosts: Vec<GatewayHost> = match route.spec.hostnames.as_deref() {
                        None | Some([]) => vec![GatewayHost::Any],
                        Some(hs) => hs.iter().map(|h| GatewayHost::parse(Some(h))).collect(),
                    };
                    let mut on_listener = false;
                    let listener_secret = match listener_host {
                        GatewayHost::Any => table.gateway_reports[gi].listeners[li].certificate.clone(),
                        _ => None,
                    };
                    for rh in route_hosts {
                        if let Some(host) = GatewayHost::intersect(&listener_host, &rh) {
                            // A listener without a hostname serves its
                            // certificate for its routes' hostnames.
                            let pattern = match &host {
                                GatewayHost::Exact(h) => Some(crate::routes::HostPattern::Exact(h.clone())),
                                GatewayHost::Wildcard(s) => Some(crate::routes::HostPattern::Wildcard(s.clone())),
                                GatewayHost::Any => None,
                            };
                            if let (Some(secret), Some(host)) = (&listener_secret, pattern) {
                                table.tls.push(crate::routes::TlsHost {
                                    host,
                                    secret: Some(secret.clone()),
                                    redirect: false,
                                    owner: format!("Gateway {gw_key} listener {}", l.name),
                                });
                            }
                            attached.push((slot, host, gw_key.clone(), l.name.clone()));
                            on_listener = true;
                        }
                    }
                    if on_listener {
                        table.gateway_reports[gi].listeners[li].attached_routes += 1;
                    }
                }
                let accepted = if attached.len() > before {
                    Ok(())
                } else if !named {
                    Err(("NoMatchingParent", format!("Gateway {gw_key} has no listener that the parentRef names")))
                } else if allowed_somewhere {
                    Err((
                        "NoMatchingListenerHostname",
                        format!("no hostname of the route matches a listener of Gateway {gw_key}"),
                    ))
                } else {
                    Err(("NotAllowedByListeners", format!("no listener of Gateway {gw_key} allows this route")))
                };
                parents.push(ParentReport {
                    parent_ref: serde_json::to_value(parent).unwrap_or_default(),
                    ours: table.gateway_reports[gi].ours,
                    accepted,
                    resolved: Ok(()),
                });
            }
            let mut report = RouteReport {
                kind,
                route: route_key.clone(),
                generation: route.metadata.generation.unwrap_or(0),
                parents,
            };
            if attached.is_empty() {
                table.route_reports.push(report);
                continue;
            }
            let mut unresolved: Option<Unmet> = None;
            for (ri, rule) in route.spec.rules.iter().flatten().enumerate() {
                let raw: Vec<serde_json::Value> =
                    rule.filters.iter().flatten().filter_map(|f| serde_json::to_value(f).ok()).collect();
                let has_backends = rule.backend_refs.as_ref().is_some_and(|b| !b.is_empty());
                let timeout = rule
                    .timeouts
                    .iter()
                    .flat_map(|t| [("request", &t.request), ("backendRequest", &t.backend_request)])
                    .filter_map(|(field, v)| v.as_deref().map(|v| (field, v)))
                    .map(|(field, v)| super::filters::duration(v).map_err(|why| (format!("timeouts.{field}"), why)))
                    .collect::<Result<Vec<_>, _>>();
                let timeout = match timeout {
                    Ok(all) => all.into_iter().flatten().min(),
                    Err((field, why)) => {
                        table.warnings.push(format!(
                            "{} {route_key}: spec.rules[{ri}].{field}: {why}; the rule is not served",
                            kind.name()
                        ));
                        continue;
                    }
                };
                let filters = match super::filters::parse(&raw, has_backends) {
                    Ok(mut f) => {
                        for filter in &mut f {
                            if let Filter::Mirror { reference: (ns, name, port), backend: slot, .. } = filter {
                                let r: HttpRouteRulesBackendRefs = serde_json::from_value(
                                    serde_json::json!({"name": name, "namespace": ns, "port": port}),
                                )
                                .expect("a valid backendRef");
                                match backend(&r, kind, route_ns, services, slices_by_ns, &objects.reference_grants, &mut shared) {
                                    WeightedBackend::Service { backend, .. } => *slot = Some(backend),
                                    WeightedBackend::Invalid { message, .. } => table.warnings.push(format!(
                                        "{} {route_key}: spec.rules[{ri}] RequestMirror: {message}; nothing is mirrored",
                                        kind.name()
                                    )),
                                }
                            }
                        }
                        Arc::new(f)
                    }
                    Err((field, why)) => {
                        table.warnings.push(format!(
                            "{} {route_key}: spec.rules[{ri}].{field}: {why}; the rule is not served",
                            kind.name()
                        ));
                        continue;
                    }
                };
                let matches: Result<Vec<HttpMatch>, String> = match rule.matches.as_deref() {
                    None | Some([]) => Ok(vec![HttpMatch::everything()]),
                    Some(ms) => ms
                        .iter()
                        .enumerate()
                        .map(|(mi, m)| {
                            HttpMatch::from_api(m)
                                .map_err(|e| format!("spec.rules[{ri}].matches[{mi}].{}: {}", e.field, e.reason))
                        })
                        .collect(),
                };
                let matches = match matches {
                    Ok(m) => m,
                    Err(why) => {
                        table.warnings.push(format!("{} {route_key}: {why}; the rule is not served", kind.name()));
                        continue;
                    }
                };
                let mut backends: Vec<WeightedBackend> = Vec::new();
                for (bi, b) in rule.backend_refs.iter().flatten().enumerate() {
                    let mut found =
                        backend(b, kind, route_ns, services, slices_by_ns, &objects.reference_grants, &mut shared);
                    let raw: Vec<serde_json::Value> =
                        b.filters.iter().flatten().filter_map(|f| serde_json::to_value(f).ok()).collect();
                    if let (WeightedBackend::Service { filters, .. }, false) = (&mut found, raw.is_empty()) {
                        match super::filters::parse(&raw, true) {
                            Ok(parsed) => {
                                let (kept, dropped): (Vec<Filter>, Vec<Filter>) = parsed
                                    .into_iter()
                                    .partition(|f| matches!(f, Filter::RequestHeaders(_) | Filter::ResponseHeaders(_)));
                                if !dropped.is_empty() {
                                    table.warnings.push(format!(
                                        "{} {route_key}: spec.rules[{ri}].backendRefs[{bi}].filters: only header \
                                         modifiers are applied per backend; the others are left out",
                                        kind.name()
                                    ));
                                }
                                *filters = Arc::new(kept);
                            }
                            Err((field, why)) => table.warnings.push(format!(
                                "{} {route_key}: spec.rules[{ri}].backendRefs[{bi}].{field}: {why}; left out",
                                kind.name()
                            )),
                        }
                    }
                    backends.push(found);
                }
                if unresolved.is_none() {
                    unresolved = backends.iter().find_map(|b| match b {
                        WeightedBackend::Invalid { reason, message, .. } => Some((*reason, message.clone())),
                        WeightedBackend::Service { .. } => None,
                    });
                }
                let backends = Arc::new(backends);
                let cursor = Arc::new(AtomicUsize::new(0));
                for (slot, host, gw, listener) in &attached {
                    let hosts = table.slots.entry(*slot).or_default();
                    let entry = match hosts.iter_mut().position(|(h, _)| h == host) {
                        Some(i) => &mut hosts[i].1,
                        None => {
                            hosts.push((host.clone(), HostRules::default()));
                            &mut hosts.last_mut().expect("just pushed").1
                        }
                    };
                    for m in &matches {
                        entry.rules.push(GatewayRule {
                            matched: m.clone(),
                            backends: backends.clone(),
                            filters: filters.clone(),
                            timeout,
                            cursor: cursor.clone(),
                            route: route_key.clone(),
                            rule: ri,
                            via: (gw.clone(), listener.clone()),
                            created: route.metadata.creation_timestamp.as_ref().map(|t| t.0),
                        });
                    }
                }
            }
            if let Some(unmet) = unresolved {
                for p in &mut report.parents {
                    p.resolved = Err(unmet.clone());
                }
            }
            table.route_reports.push(report);
        }
        // A hostname-less listener's certificate, once per host and Secret.
        let mut seen = std::collections::HashSet::new();
        table.tls.retain(|t| seen.insert((t.host.to_string(), t.secret.clone())));
        // Most specific hostname first (rule 9); within one, by precedence (rule 13).
        for hosts in table.slots.values_mut() {
            hosts.sort_by(|a, b| a.0.cmp_specific(&b.0));
            for (_, h) in hosts.iter_mut() {
                h.rules.sort_by(|a, b| {
                    a.matched
                        .cmp_precedence(&b.matched)
                        .then_with(|| a.created.cmp(&b.created))
                        .then_with(|| a.route.cmp(&b.route))
                        .then_with(|| a.rule.cmp(&b.rule))
                });
            }
        }
        table
    }

    /// The route for a request on `slot` with normalised `host`, or `None`
    /// when no Gateway route serves that host there.
    pub fn route(&self, slot: Slot, host: &str, req: &RequestParts<'_>) -> Option<GatewayAction<'_>> {
        let hosts = self.slots.get(&slot)?;
        let (_, rules) = hosts.iter().find(|(h, _)| h.matches(host))?;
        let Some(rule) = rules.rules.iter().find(|r| r.matched.matches(req)) else {
            return Some(GatewayAction::NoRule);
        };
        if rule.filters.iter().any(|f| matches!(f, Filter::Redirect { .. })) {
            return Some(GatewayAction::Redirect(rule));
        }
        let total: usize = rule.backends.iter().map(|b| weight(b) as usize).sum();
        if total == 0 {
            return Some(GatewayAction::Fail(
                format!("HTTPRoute {} rule {} has no backend to send to", rule.route, rule.rule),
                rule,
            ));
        }
        // Smooth weighted round robin: exactly in proportion over each cycle.
        let mut n = rule.cursor.fetch_add(1, Ordering::Relaxed) % total;
        for b in rule.backends.iter() {
            let w = weight(b) as usize;
            if n < w {
                return Some(match b {
                    WeightedBackend::Service { backend, filters, .. } => GatewayAction::Forward(backend, rule, filters),
                    WeightedBackend::Invalid { message, .. } => GatewayAction::Fail(message.clone(), rule),
                });
            }
            n -= w;
        }
        None
    }

    /// One row per rule match, for `devingress routes` and `status`: slot,
    /// hostname, match, what it does, and where it came from, in lookup order.
    pub fn rows(&self) -> Vec<GatewayRow> {
        let mut out = Vec::new();
        for (slot, hosts) in &self.slots {
            for (host, rules) in hosts {
                for r in &rules.rules {
                    let action = if r.filters.iter().any(|f| matches!(f, Filter::Redirect { .. })) {
                        "redirect".to_string()
                    } else if r.backends.is_empty() {
                        "500 (no backend)".to_string()
                    } else {
                        r.backends
                            .iter()
                            .map(|b| match b {
                                WeightedBackend::Service { backend, weight, .. } => {
                                    let (ready, total) = backend.target.pod_counts();
                                    format!(
                                        "{}/{} w{weight} {ready}/{total}",
                                        backend.namespace,
                                        backend.display_name()
                                    )
                                }
                                WeightedBackend::Invalid { weight, reason, .. } => format!("500 ({reason}) w{weight}"),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    out.push(GatewayRow {
                        listener: slot.to_string(),
                        host: host.to_string(),
                        matched: r.matched.to_string(),
                        action,
                        route: format!("{} rule {}", r.route, r.rule),
                        via: format!("{} {}", r.via.0, r.via.1),
                    });
                }
            }
        }
        out
    }

    /// Every Service backend in the table, mirrors included.
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        let rules = self.slots.values().flatten().flat_map(|(_, h)| h.rules.iter());
        rules.flat_map(|r| {
            let weighted = r.backends.iter().filter_map(|b| match b {
                WeightedBackend::Service { backend, .. } => Some(backend),
                WeightedBackend::Invalid { .. } => None,
            });
            let mirrors = r.filters.iter().filter_map(|f| match f {
                Filter::Mirror { backend, .. } => backend.as_ref(),
                _ => None,
            });
            weighted.chain(mirrors)
        })
    }

    /// The hostnames Gateway routes serve on `slot`, most specific first.
    pub fn hosts(&self, slot: Slot) -> Vec<&GatewayHost> {
        self.slots.get(&slot).map(|h| h.iter().map(|(h, _)| h).collect()).unwrap_or_default()
    }

    /// Every slot with routes.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.slots.keys().copied()
    }

    /// The ports of their own that served listeners ask for (accepted and
    /// not conflicted), each once, with the listeners that want it.
    pub fn own_ports(&self) -> BTreeMap<Slot, Vec<(ObjectKey, String)>> {
        let mut out: BTreeMap<Slot, Vec<(ObjectKey, String)>> = BTreeMap::new();
        for g in self.gateway_reports.iter().filter(|g| g.invalid_parameters.is_none()) {
            for l in &g.listeners {
                if let Some(slot) = l.own_port() {
                    out.entry(slot).or_default().push((g.gateway.clone(), l.name.clone()));
                }
            }
        }
        out
    }
}

fn weight(b: &WeightedBackend) -> u32 {
    match b {
        WeightedBackend::Service { weight, .. } | WeightedBackend::Invalid { weight, .. } => *weight,
    }
}

/// One backendRef, resolved (rules 20 to 22).
fn backend(
    b: &HttpRouteRulesBackendRefs,
    kind: RouteKind,
    route_ns: &str,
    services: &HashMap<(&str, &str), &Service>,
    slices_by_ns: &HashMap<&str, Vec<&EndpointSlice>>,
    grants: &[Arc<ReferenceGrant>],
    shared: &mut HashMap<(String, String, u16, Protocol), Arc<Backend>>,
) -> WeightedBackend {
    let weight = u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
    let invalid = |reason, message: String| WeightedBackend::Invalid { weight, reason, message };
    if b.group.as_deref().is_some_and(|g| !g.is_empty()) || b.kind.as_deref().is_some_and(|k| k != "Service") {
        return invalid(
            "InvalidKind",
            format!("backendRef {} is a {}, not a Service", b.name, b.kind.as_deref().unwrap_or("Service")),
        );
    }
    let ns = b.namespace.as_deref().unwrap_or(route_ns);
    if ns != route_ns && !granted(grants, (kind.name(), route_ns), ("Service", ns, &b.name)) {
        return invalid(
            "RefNotPermitted",
            format!("no ReferenceGrant in namespace {ns} allows Service {ns}/{}", b.name),
        );
    }
    let Some(port) = b.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) else {
        return invalid("BackendNotFound", format!("backendRef Service {ns}/{} has no port", b.name));
    };
    let Some(svc) = services.get(&(ns, b.name.as_str())) else {
        return invalid("BackendNotFound", format!("Service {ns}/{} does not exist", b.name));
    };
    let sp = match find_service_port(svc, &PortRef::Number(port)) {
        Ok(sp) => sp,
        Err(e) => return invalid("BackendNotFound", e.reason),
    };
    // gRPC needs HTTP/2 to the pod whatever the Service port says.
    let protocol = if kind == RouteKind::Grpc || sp.app_protocol.as_deref() == Some(H2C_APP_PROTOCOL) {
        Protocol::H2c
    } else {
        Protocol::Http1
    };
    let backend = shared
        .entry((ns.to_string(), b.name.clone(), port, protocol))
        .or_insert_with(|| {
            let slices = slices_by_ns.get(ns).map(Vec::as_slice).unwrap_or_default();
            let target = resolve_target(svc, sp.name.as_deref(), slices.iter().copied());
            Arc::new(Backend::new(ns, &b.name, PortRef::Number(port), protocol, target))
        })
        .clone();
    if let Target::Unsupported(why) = &backend.target {
        return invalid("BackendNotFound", why.clone());
    }
    WeightedBackend::Service { backend, weight, filters: Arc::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Objects from JSON: Gateways (namespace `gw` unless given), routes and grants.
    fn objects(gateways: serde_json::Value, routes: serde_json::Value) -> GatewayObjects {
        let class = serde_json::from_value(json!({"metadata": {"name": "devingress"},
            "spec": {"controllerName": CONTROLLER}}))
        .unwrap();
        let foreign = serde_json::from_value(json!({"metadata": {"name": "other"},
            "spec": {"controllerName": "example.com/other"}}))
        .unwrap();
        GatewayObjects {
            synced: true,
            classes: vec![Arc::new(class), Arc::new(foreign)],
            gateways: gateways
                .as_array()
                .unwrap()
                .iter()
                .map(|g| Arc::new(serde_json::from_value(g.clone()).unwrap()))
                .collect(),
            http_routes: routes
                .as_array()
                .unwrap()
                .iter()
                .map(|r| Arc::new(serde_json::from_value(r.clone()).unwrap()))
                .collect(),
            ..Default::default()
        }
    }

    fn gateway(name: &str, class: &str, listeners: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": name, "namespace": "gw"}, "spec": {"gatewayClassName": class, "listeners": listeners}})
    }

    fn route(ns: &str, name: &str, created: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": name, "namespace": ns, "creationTimestamp": created}, "spec": spec})
    }

    fn svc(ns: &str, name: &str) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": 80}]}}))
        .unwrap()
    }

    /// Which route answers `host` + `path` on `slot` (`route/rule`), `404`, `500`, or `-` for no Gateway route.
    fn who(t: &GatewayTable, slot: Slot, host: &str, path: &str) -> String {
        let headers = http::HeaderMap::new();
        let req = RequestParts { path, method: "GET", headers: &headers, query: None };
        match t.route(slot, host, &req) {
            None => "-".into(),
            Some(GatewayAction::NoRule) => "404".into(),
            Some(GatewayAction::Redirect(r)) => format!("redirect {}/{}", r.route.name, r.rule),
            Some(GatewayAction::Fail(..)) => "500".into(),
            Some(GatewayAction::Forward(_, r, _)) => format!("{}/{}", r.route.name, r.rule),
        }
    }

    fn build(o: &GatewayObjects, services: &[Service]) -> GatewayTable {
        let by_key: HashMap<(&str, &str), &Service> = services
            .iter()
            .map(|s| ((s.metadata.namespace.as_deref().unwrap(), s.metadata.name.as_deref().unwrap()), s))
            .collect();
        GatewayTable::build(o, &[], &by_key, &HashMap::new())
    }

    const HTTP: &str = r#"[{"name": "http", "port": 80, "protocol": "HTTP"},
                            {"name": "apps", "port": 80, "protocol": "HTTP", "hostname": "*.apps.test",
                             "allowedRoutes": {"namespaces": {"from": "All"}}},
                            {"name": "https", "port": 443, "protocol": "HTTPS"}]"#;

    #[test]
    fn routes_attach_by_section_name_and_port_within_the_allowed_namespaces() {
        let listeners: serde_json::Value = serde_json::from_str(HTTP).unwrap();
        let backend = json!([{"backendRefs": [{"name": "s", "port": 80}]}]);
        let o = objects(
            json!([gateway("web", "devingress", listeners.clone()), gateway("theirs", "other", listeners)]),
            json!([
                route(
                    "gw",
                    "all-listeners",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web"}], "hostnames": ["a.test"], "rules": backend})
                ),
                route(
                    "gw",
                    "by-port",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web", "port": 443}], "hostnames": ["b.test"], "rules": backend})
                ),
                route(
                    "team",
                    "same-only",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web", "namespace": "gw", "sectionName": "http"}], "hostnames": ["c.test"], "rules": backend})
                ),
                route(
                    "team",
                    "from-all",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web", "namespace": "gw", "sectionName": "apps"}], "rules": backend})
                ),
                route(
                    "gw",
                    "foreign",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "theirs"}], "hostnames": ["d.test"], "rules": backend})
                ),
            ]),
        );
        let t = build(&o, &[svc("gw", "s"), svc("team", "s")]);
        // Reports for status: attached counts per listener, and why a parentRef did not attach.
        let web = t.gateway_reports.iter().find(|g| g.gateway.name == "web").unwrap();
        let counts: Vec<(&str, usize)> = web.listeners.iter().map(|l| (l.name.as_str(), l.attached_routes)).collect();
        assert_eq!(counts, [("http", 1), ("apps", 1), ("https", 2)], "a.test is not under *.apps.test");
        assert!(web.ours);
        let reason = |name: &str| {
            let r = t.route_reports.iter().find(|r| r.route.name == name).unwrap();
            r.parents[0].accepted.as_ref().err().map(|e| e.0).unwrap_or("Accepted")
        };
        assert_eq!(reason("all-listeners"), "Accepted");
        assert_eq!(reason("same-only"), "NotAllowedByListeners");
        assert_eq!(reason("from-all"), "Accepted");
        assert!(t.route_reports.iter().find(|r| r.route.name == "foreign").unwrap().parents.is_empty());
        assert_eq!(who(&t, Slot::Http, "a.test", "/"), "all-listeners/0");
        assert_eq!(who(&t, Slot::Https, "a.test", "/"), "all-listeners/0");
        assert_eq!(who(&t, Slot::Http, "b.test", "/"), "-", "port 443 only");
        assert_eq!(who(&t, Slot::Https, "b.test", "/"), "by-port/0");
        assert_eq!(who(&t, Slot::Http, "c.test", "/"), "-", "the listener allows its own namespace only");
        assert_eq!(who(&t, Slot::Http, "x.y.apps.test", "/"), "from-all/0", "the listener's wildcard, any depth");
        assert_eq!(who(&t, Slot::Http, "d.test", "/"), "-", "another controller's Gateway");
        assert_eq!(t.gateways.iter().map(ToString::to_string).collect::<Vec<_>>(), ["gw/web"]);
    }

    #[test]
    fn the_most_specific_hostname_wins_then_match_precedence_then_the_oldest_route() {
        let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP"}]);
        let to = |path: &str| json!({"matches": [{"path": {"type": "PathPrefix", "value": path}}], "backendRefs": [{"name": "s", "port": 80}]});
        let o = objects(
            json!([gateway("web", "devingress", listeners)]),
            json!([
                route(
                    "gw",
                    "young",
                    "2026-03-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web"}], "hostnames": ["*.example.com"], "rules": [to("/")]})
                ),
                route(
                    "gw",
                    "old",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web"}], "hostnames": ["*.example.com"], "rules": [to("/")]})
                ),
                route(
                    "gw",
                    "longer",
                    "2026-04-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web"}], "hostnames": ["*.example.com"], "rules": [to("/api")]})
                ),
                route(
                    "gw",
                    "exact-host",
                    "2026-05-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web"}], "hostnames": ["foo.example.com"], "rules": [to("/other")]})
                ),
            ]),
        );
        let t = build(&o, &[svc("gw", "s")]);
        assert_eq!(who(&t, Slot::Http, "bar.example.com", "/x"), "old/0", "same match: the oldest route");
        assert_eq!(who(&t, Slot::Http, "bar.example.com", "/api/v1"), "longer/0", "the longer prefix");
        assert_eq!(who(&t, Slot::Http, "foo.example.com", "/other"), "exact-host/0");
        assert_eq!(
            who(&t, Slot::Http, "foo.example.com", "/x"),
            "404",
            "the exact host does not fall through to the wildcard"
        );
        assert_eq!(who(&t, Slot::Http, "example.com", "/x"), "-");
    }

    #[test]
    fn a_mirror_share_stays_exact_across_rebuilds_of_the_table() {
        let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP"}]);
        let o = objects(
            json!([gateway("web", "devingress", listeners)]),
            json!([route(
                "gw",
                "r",
                "2026-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "web"}], "hostnames": ["a.test", "b.test"], "rules": [
                    {"backendRefs": [{"name": "s", "port": 80}],
                     "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s", "port": 80}, "percent": 50}}]}]})
            )]),
        );
        let copied = |t: &GatewayTable, host: &str| {
            let headers = http::HeaderMap::new();
            let req = RequestParts { path: "/", method: "GET", headers: &headers, query: None };
            let Some(GatewayAction::Forward(_, rule, _)) = t.route(Slot::Http, host, &req) else { panic!("forwarded") };
            rule.filters.iter().any(|f| matches!(f, Filter::Mirror { share, .. } if share.take()))
        };
        // A table rebuilt after every request (any change in the cluster
        // does that), across both of the rule's hosts: still every other one.
        let mut t = build(&o, &[svc("gw", "s")]);
        let mut seen = Vec::new();
        for i in 0..10 {
            seen.push(copied(&t, if i % 3 == 0 { "a.test" } else { "b.test" }));
            let mut next = build(&o, &[svc("gw", "s")]);
            next.continue_from(&t);
            t = next;
        }
        assert_eq!(seen.iter().filter(|c| **c).count(), 5, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] != w[1]), "alternating: {seen:?}");
        // Without carrying the count over, each new table starts the spread again.
        let fresh: Vec<bool> = (0..4).map(|_| copied(&build(&o, &[svc("gw", "s")]), "a.test")).collect();
        assert_eq!(fresh, [false; 4]);
    }

    #[test]
    fn weights_split_in_proportion_and_invalid_refs_take_their_share_as_500() {
        let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP"}]);
        let o = objects(
            json!([gateway("web", "devingress", listeners)]),
            json!([route(
                "gw",
                "r",
                "2026-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "web"}], "rules": [
                {"matches": [{"path": {"type": "Exact", "value": "/split"}}],
                 "backendRefs": [{"name": "s", "port": 80, "weight": 2}, {"name": "gone", "port": 80, "weight": 1},
                                 {"name": "s", "port": 80, "weight": 0}, {"name": "s", "namespace": "elsewhere", "port": 80},
                                 {"name": "s", "kind": "Pod", "port": 80, "weight": 0}]},
                {"matches": [{"path": {"type": "Exact", "value": "/zero"}}],
                 "backendRefs": [{"name": "s", "port": 80, "weight": 0}]}]})
            )]),
        );
        let t = build(&o, &[svc("gw", "s"), svc("elsewhere", "s")]);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..400 {
            *counts.entry(who(&t, Slot::Http, "any.test", "/split")).or_default() += 1;
        }
        // s:2, gone:1 (not found), elsewhere:1 (no ReferenceGrant) → 200 forwarded, 200 failed.
        assert_eq!(counts, [("500".to_string(), 200), ("r/0".to_string(), 200)].into());
        assert_eq!(who(&t, Slot::Http, "any.test", "/zero"), "500", "every backend at weight 0");
    }

    #[test]
    fn listeners_devingress_cannot_serve_yet_and_filters_are_named_in_warnings() {
        let listeners =
            json!([{"name": "tcp", "port": 5432, "protocol": "TCP"}, {"name": "http", "port": 80, "protocol": "HTTP"}]);
        let o = objects(
            json!([gateway("web", "devingress", listeners)]),
            json!([route(
                "gw",
                "r",
                "2026-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "web"}], "rules": [
                {"filters": [{"type": "ExtensionRef", "extensionRef": {"group": "x.test", "kind": "K", "name": "n"}}]},
                {"matches": [{"path": {"type": "RegularExpression", "value": "("}}]}]})
            )]),
        );
        let t = build(&o, &[]);
        assert!(
            t.warnings.iter().any(|w| w.contains(
                "Gateway gw/web: listener \"tcp\" is not served: devingress serves HTTP and HTTPS listeners, not TCP"
            )),
            "{:?}",
            t.warnings
        );
        assert!(
            t.warnings
                .iter()
                .any(|w| w.contains("HTTPRoute gw/r: spec.rules[0].filters[0].type: ExtensionRef is not supported yet")),
            "{:?}",
            t.warnings
        );
        assert!(
            t.warnings
                .iter()
                .any(|w| w.contains("HTTPRoute gw/r: spec.rules[1].matches[0].path.value: not a regular expression")),
            "{:?}",
            t.warnings
        );
    }

    #[test]
    fn grpc_routes_match_service_and_method_and_always_speak_h2c() {
        assert_eq!(
            grpc_path(&json!({"service": "echo.Echo", "method": "Chat"})),
            Some(json!({"type": "Exact", "value": "/echo.Echo/Chat"}))
        );
        assert_eq!(
            grpc_path(&json!({"service": "echo.Echo"})),
            Some(json!({"type": "PathPrefix", "value": "/echo.Echo"}))
        );
        assert_eq!(
            grpc_path(&json!({"method": "Chat"})),
            Some(json!({"type": "RegularExpression", "value": "/[^/]+/Chat"}))
        );
        assert_eq!(
            grpc_path(&json!({"type": "RegularExpression", "service": "echo\\..*"})),
            Some(json!({"type": "RegularExpression", "value": "/(?:echo\\..*)/(?:[^/]+)"}))
        );
        let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP"}]);
        let mut o = objects(json!([gateway("web", "devingress", listeners)]), json!([]));
        o.grpc_routes = vec![Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "g", "namespace": "gw", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"parentRefs": [{"name": "web"}], "rules": [
                    {"matches": [{"method": {"service": "echo.Echo", "method": "Chat"}}], "backendRefs": [{"name": "s", "port": 80}]},
                    {"matches": [{"method": {"service": "echo.Echo"}}], "backendRefs": [{"name": "s", "port": 80, "weight": 0}]}]}}))
            .unwrap(),
        )];
        let t = build(&o, &[svc("gw", "s")]);
        assert_eq!(who(&t, Slot::Http, "any.test", "/echo.Echo/Chat"), "g/0", "the exact method beats the service");
        assert_eq!(who(&t, Slot::Http, "any.test", "/echo.Echo/Other"), "500");
        assert_eq!(who(&t, Slot::Http, "any.test", "/other.Svc/Chat"), "404");
        assert!(t.backends().all(|b| b.protocol == Protocol::H2c), "gRPC backends speak h2c");
        assert_eq!(t.route_reports[0].kind, RouteKind::Grpc);
        assert_eq!(t.gateway_reports[0].listeners[0].supported_kinds, ["HTTPRoute", "GRPCRoute"]);
    }

    #[test]
    fn a_namespace_selector_admits_routes_from_the_namespaces_it_selects() {
        let listeners = json!([{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {
            "from": "Selector", "selector": {"matchLabels": {"team": "a"},
                                              "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}}}}]);
        let backend = json!([{"backendRefs": [{"name": "s", "port": 80}]}]);
        let mut o = objects(
            json!([gateway("web", "devingress", listeners)]),
            json!([
                route(
                    "team-a",
                    "in",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web", "namespace": "gw"}], "hostnames": ["in.test"], "rules": backend})
                ),
                route(
                    "team-a-prod",
                    "prod",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web", "namespace": "gw"}], "hostnames": ["prod.test"], "rules": backend})
                ),
                route(
                    "other",
                    "out",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web", "namespace": "gw"}], "hostnames": ["out.test"], "rules": backend})
                ),
            ]),
        );
        let ns = |name: &str, labels: serde_json::Value| {
            Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap())
        };
        o.namespaces = vec![
            ns("team-a", json!({"team": "a"})),
            ns("team-a-prod", json!({"team": "a", "env": "prod"})),
            ns("other", json!({})),
        ];
        let t = build(&o, &[svc("team-a", "s"), svc("team-a-prod", "s"), svc("other", "s")]);
        assert_eq!(who(&t, Slot::Http, "in.test", "/"), "in/0");
        assert_eq!(who(&t, Slot::Http, "prod.test", "/"), "-");
        assert_eq!(who(&t, Slot::Http, "out.test", "/"), "-");
        let reason = |name: &str| {
            t.route_reports.iter().find(|r| r.route.name == name).unwrap().parents[0]
                .accepted
                .clone()
                .err()
                .map(|e| e.0)
        };
        assert_eq!(reason("out"), Some("NotAllowedByListeners"));
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn listeners_on_other_ports_get_ports_of_their_own_and_other_protocols_are_refused() {
        let listeners = json!([
            {"name": "web", "port": 80, "protocol": "HTTP"},
            {"name": "alt", "port": 8081, "protocol": "HTTP"},
            {"name": "alt-tls", "port": 8443, "protocol": "HTTPS"},
            {"name": "tcp", "port": 5432, "protocol": "TCP"},
        ]);
        let o = objects(
            json!([gateway("web", "devingress", listeners)]),
            json!([
                route(
                    "gw",
                    "alt-only",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web", "port": 8081}], "hostnames": ["a.test"],
                           "rules": [{"backendRefs": [{"name": "s", "port": 80}]}]})
                ),
                route(
                    "gw",
                    "everywhere",
                    "2026-01-01T00:00:00Z",
                    json!({"parentRefs": [{"name": "web"}], "hostnames": ["b.test"],
                           "rules": [{"backendRefs": [{"name": "s", "port": 80}]}]})
                ),
            ]),
        );
        let t = build(&o, &[svc("gw", "s")]);
        let alt = Slot::Port { port: 8081, tls: false };
        let alt_tls = Slot::Port { port: 8443, tls: true };
        assert_eq!(who(&t, alt, "a.test", "/"), "alt-only/0");
        assert_eq!(who(&t, Slot::Http, "a.test", "/"), "-", "attached by port 8081 only");
        assert_eq!(who(&t, alt_tls, "b.test", "/"), "everywhere/0");
        assert_eq!(who(&t, Slot::Http, "b.test", "/"), "everywhere/0");
        let ports: Vec<(Slot, Vec<String>)> = t
            .own_ports()
            .into_iter()
            .map(|(s, ls)| (s, ls.iter().map(|(g, l)| format!("{g} {l}")).collect()))
            .collect();
        assert_eq!(ports, [(alt, vec!["gw/web alt".to_string()]), (alt_tls, vec!["gw/web alt-tls".to_string()])]);
        let web = &t.gateway_reports[0];
        let tcp = web.listeners.iter().find(|l| l.name == "tcp").unwrap();
        assert_eq!(tcp.accepted.as_ref().unwrap_err().0, "UnsupportedProtocol");
        assert!(tcp.supported_kinds.is_empty());
        assert!(web.listeners.iter().filter(|l| l.name != "tcp").all(|l| l.accepted.is_ok()));
        let listeners: Vec<String> = t.rows().into_iter().map(|r| format!("{} {}", r.listener, r.host)).collect();
        assert_eq!(listeners, ["http b.test", "http:8081 a.test", "http:8081 b.test", "https:8443 b.test"]);
        assert!(web.invalid_parameters.is_none());
        assert_eq!(Slot::of("HTTPS", 443), Some(Slot::Https));
        assert_eq!(Slot::of("HTTP", 0), None);
        assert_eq!(Slot::of("TLS", 443), None);
    }

    #[test]
    fn listener_isolation_a_host_is_answered_only_by_its_most_specific_listener() {
        // As the conformance test GatewayHTTPListenerIsolation sets it up.
        let listeners = json!([
            {"name": "empty-hostname", "port": 80, "protocol": "HTTP"},
            {"name": "wildcard-example-com", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"},
            {"name": "wildcard-foo-example-com", "port": 80, "protocol": "HTTP", "hostname": "*.foo.example.com"},
            {"name": "abc-foo-example-com", "port": 80, "protocol": "HTTP", "hostname": "abc.foo.example.com"},
        ]);
        let routes: Vec<serde_json::Value> =
            ["empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com"]
                .iter()
                .map(|l| {
                    route(
                        "gw",
                        l,
                        "2026-01-01T00:00:00Z",
                        json!({"parentRefs": [{"name": "web", "sectionName": l}],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": format!("/{l}")}}],
                           "backendRefs": [{"name": "s", "port": 80}]}]}),
                    )
                })
                .collect();
        let o = objects(json!([gateway("web", "devingress", listeners)]), json!(routes));
        let t = build(&o, &[svc("gw", "s")]);
        for (host, own) in [
            ("bar.com", "empty-hostname"),
            ("bar.example.com", "wildcard-example-com"),
            ("bar.foo.example.com", "wildcard-foo-example-com"),
            ("abc.foo.example.com", "abc-foo-example-com"),
        ] {
            for path in ["empty-hostname", "wildcard-example-com", "wildcard-foo-example-com", "abc-foo-example-com"] {
                let want = if path == own { format!("{own}/0") } else { "404".to_string() };
                assert_eq!(who(&t, Slot::Http, host, &format!("/{path}")), want, "{host} /{path}");
            }
        }
    }

    #[test]
    fn unknown_route_kinds_and_gateway_parameters_are_reported() {
        let kinds = json!([{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "k.test",
                            "allowedRoutes": {"kinds": [{"kind": "TCPRoute"}, {"kind": "HTTPRoute"}]}}]);
        let mut with_params = gateway(
            "params",
            "devingress",
            json!([{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "p.test"}]),
        );
        with_params["spec"]["infrastructure"] =
            json!({"parametersRef": {"group": "invalid.io", "kind": "Params", "name": "x"}});
        let backend = json!([{"backendRefs": [{"name": "s", "port": 80}]}]);
        let o = objects(
            json!([gateway("kinds", "devingress", kinds), with_params]),
            json!([
                route("gw", "k", "2026-01-01T00:00:00Z", json!({"parentRefs": [{"name": "kinds"}], "rules": backend})),
                route("gw", "p", "2026-01-01T00:00:00Z", json!({"parentRefs": [{"name": "params"}], "rules": backend})),
            ]),
        );
        let t = build(&o, &[svc("gw", "s")]);
        let kinds = &t.gateway_reports[0].listeners[0];
        assert_eq!(kinds.invalid_kinds.as_ref().unwrap().0, "InvalidRouteKinds");
        assert_eq!(kinds.supported_kinds, ["HTTPRoute"]);
        assert_eq!(who(&t, Slot::Http, "k.test", "/"), "k/0", "the valid kind still attaches");
        let params = &t.gateway_reports[1];
        assert!(params.invalid_parameters.as_ref().unwrap().contains("invalid.io/Params"));
        assert_eq!(who(&t, Slot::Http, "p.test", "/"), "-", "a Gateway that is not accepted serves nothing");
        let p = t.route_reports.iter().find(|r| r.route.name == "p").unwrap();
        assert_eq!(p.parents[0].accepted.as_ref().unwrap_err().0, "NoMatchingParent");
    }

    #[test]
    fn rule_6_conflicting_listeners_are_not_served() {
        let listeners = json!([
            {"name": "a", "port": 80, "protocol": "HTTP", "hostname": "same.test"},
            {"name": "b", "port": 80, "protocol": "HTTP", "hostname": "Same.test"},
            {"name": "c", "port": 80, "protocol": "HTTP", "hostname": "other.test"},
            {"name": "d", "port": 8443, "protocol": "HTTPS"},
            {"name": "e", "port": 8443, "protocol": "TLS"}]);
        let o = objects(
            json!([gateway("web", "devingress", listeners)]),
            json!([route(
                "gw",
                "r",
                "2026-01-01T00:00:00Z",
                json!({"parentRefs": [{"name": "web"}],
                "rules": [{"backendRefs": [{"name": "s", "port": 80}]}]})
            )]),
        );
        let t = build(&o, &[svc("gw", "s")]);
        let reasons: Vec<Option<&str>> =
            t.gateway_reports[0].listeners.iter().map(|l| l.conflicted.as_ref().map(|c| c.0)).collect();
        assert_eq!(
            reasons,
            [
                Some("HostnameConflict"),
                Some("HostnameConflict"),
                None,
                Some("ProtocolConflict"),
                Some("ProtocolConflict")
            ]
        );
        assert_eq!(who(&t, Slot::Http, "same.test", "/"), "-", "conflicted listeners take no routes");
        assert_eq!(who(&t, Slot::Http, "other.test", "/"), "r/0");
    }
}
