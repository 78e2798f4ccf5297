//! The resource types the fake API server knows, and how their paths look.

/// One API resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceType {
    /// Plural name in URLs, e.g. `ingresses`.
    pub plural: &'static str,
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// `kind` of one object.
    pub kind: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl ResourceType {
    /// `apiVersion` of objects of this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural.group`, as in messages (`ingresses.networking.k8s.io`).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// `Kind.group`, as in 422 messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() { self.kind.to_string() } else { format!("{}.{}", self.kind, self.group) }
    }
}

pub const INGRESSES: ResourceType =
    ResourceType { plural: "ingresses", group: "networking.k8s.io", version: "v1", kind: "Ingress", namespaced: true };
pub const INGRESS_CLASSES: ResourceType = ResourceType {
    plural: "ingressclasses",
    group: "networking.k8s.io",
    version: "v1",
    kind: "IngressClass",
    namespaced: false,
};
pub const SERVICES: ResourceType =
    ResourceType { plural: "services", group: "", version: "v1", kind: "Service", namespaced: true };
pub const ENDPOINT_SLICES: ResourceType = ResourceType {
    plural: "endpointslices",
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    namespaced: true,
};
pub const SECRETS: ResourceType =
    ResourceType { plural: "secrets", group: "", version: "v1", kind: "Secret", namespaced: true };
pub const PODS: ResourceType = ResourceType { plural: "pods", group: "", version: "v1", kind: "Pod", namespaced: true };

/// The Gateway API's group: its resources exist only once its CRDs are
/// installed ([`super::FakeApiServer::install_gateway_api`]).
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
pub const GATEWAY_CLASSES: ResourceType = ResourceType {
    plural: "gatewayclasses",
    group: GATEWAY_GROUP,
    version: "v1",
    kind: "GatewayClass",
    namespaced: false,
};
pub const GATEWAYS: ResourceType =
    ResourceType { plural: "gateways", group: GATEWAY_GROUP, version: "v1", kind: "Gateway", namespaced: true };
pub const HTTP_ROUTES: ResourceType =
    ResourceType { plural: "httproutes", group: GATEWAY_GROUP, version: "v1", kind: "HTTPRoute", namespaced: true };
pub const GRPC_ROUTES: ResourceType =
    ResourceType { plural: "grpcroutes", group: GATEWAY_GROUP, version: "v1", kind: "GRPCRoute", namespaced: true };
pub const REFERENCE_GRANTS: ResourceType = ResourceType {
    plural: "referencegrants",
    group: GATEWAY_GROUP,
    version: "v1beta1",
    kind: "ReferenceGrant",
    namespaced: true,
};

pub const CUSTOM_RESOURCE_DEFINITIONS: ResourceType = ResourceType {
    plural: "customresourcedefinitions",
    group: "apiextensions.k8s.io",
    version: "v1",
    kind: "CustomResourceDefinition",
    namespaced: false,
};

pub const NAMESPACES: ResourceType =
    ResourceType { plural: "namespaces", group: "", version: "v1", kind: "Namespace", namespaced: false };

pub const ALL: [ResourceType; 13] = [
    INGRESSES,
    INGRESS_CLASSES,
    SERVICES,
    ENDPOINT_SLICES,
    SECRETS,
    PODS,
    GATEWAY_CLASSES,
    GATEWAYS,
    HTTP_ROUTES,
    GRPC_ROUTES,
    REFERENCE_GRANTS,
    CUSTOM_RESOURCE_DEFINITIONS,
    NAMESPACES,
];

/// The discovery document of `group/version` (`GET /apis/{group}/{version}`),
/// as kube-apiserver serves it for a group its CRDs define: each resource
/// and its status subresource.
pub fn discovery(group: &str, version: &str) -> Option<serde_json::Value> {
    let resources: Vec<serde_json::Value> = ALL
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| {
            let singular = r.kind.to_lowercase();
            let mut main = serde_json::json!({"name": r.plural, "singularName": singular, "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]});
            if r.group == GATEWAY_GROUP {
                main["categories"] = serde_json::json!(["gateway-api"]);
            }
            let mut all = vec![
                main,
                serde_json::json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            ];
            if *r == PODS {
                all.push(serde_json::json!({"name": "pods/portforward", "singularName": "", "namespaced": true,
                    "group": "", "version": "v1", "kind": "PodPortForwardOptions", "verbs": ["create", "get"]}));
            }
            all
        })
        .collect();
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    (!resources.is_empty()).then(|| {
        serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1",
                           "groupVersion": group_version, "resources": resources})
    })
}

/// `GET /apis`: every named group and its versions (the first listed is
/// preferred). `with_gateway`: whether the Gateway API's CRDs are installed.
pub fn group_list(with_gateway: bool) -> serde_json::Value {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in ALL.iter().filter(|r| !r.group.is_empty() && (with_gateway || r.group != GATEWAY_GROUP)) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => groups.push((r.group, vec![r.version])),
        }
    }
    let groups: Vec<serde_json::Value> = groups
        .into_iter()
        .map(|(g, mut versions)| {
            versions.sort_by_key(|v| *v != "v1");
            let list: Vec<serde_json::Value> = versions
                .iter()
                .map(|v| serde_json::json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            serde_json::json!({"name": g, "versions": list, "preferredVersion": list[0]})
        })
        .collect();
    serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// A request path, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath {
    pub resource: ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` paths.
pub fn parse_path(path: &str) -> Option<ApiPath> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    let resource = *ALL.iter().find(|r| r.plural == plural && r.group == group && r.version == version)?;
    if !resource.namespaced && namespace.is_some() {
        return None;
    }
    Some(ApiPath { resource, namespace, name, subresource: sub })
}
