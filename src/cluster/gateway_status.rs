//! The status of served Gateways and their HTTPRoutes (rules 26 to 29 of
//! the Gateway rules), from the routing table's reports, by server-side
//! apply as field manager `devingress`.
//!
//! A Gateway of devingress's class is devingress's alone, so its status is
//! applied with force. A route's `status.parents` is an atomic list shared
//! with other controllers: devingress applies it whole, with the other
//! controllers' entries as they are and its own replaced. Nothing is
//! written when it would not change, and on a clean exit the Gateways lose
//! their address and become `Programmed=False` (`Pending`).

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::gateway_class::{GATEWAY_CONTROLLER, condition};
use super::{ADDRESS, FIELD_MANAGER, GatewayObjects};
use crate::gateway::api::{Gateway, GrpcRoute, HttpRoute};
use crate::kubeclient::describe_error;
use crate::routes::ObjectKey;
use crate::routes::gateway::table::{GatewayReport, RouteKind, RouteReport, Unmet};

/// The conditions of a Gateway, its listeners and its routes' parents.
fn cond(
    kind: &str,
    r: &Result<(), Unmet>,
    ok_reason: &str,
    ok_msg: &str,
    generation: i64,
    old: &[Value],
    now: &str,
) -> Value {
    match r {
        Ok(()) => condition(kind, true, ok_reason, ok_msg, generation, old, now),
        Err((reason, msg)) => condition(kind, false, reason, msg, generation, old, now),
    }
}

/// The conditions listed in `v` (an object with `conditions`).
fn conditions_of(v: Option<&Value>) -> Vec<Value> {
    v.and_then(|v| v["conditions"].as_array()).cloned().unwrap_or_default()
}

/// What devingress writes into a served Gateway's status.
pub fn gateway_status(report: &GatewayReport, current: Option<&Value>, now: &str) -> Value {
    let generation = report.generation;
    let old = conditions_of(current);
    let valid = report.listeners.iter().filter(|l| l.valid()).count();
    // Accepted: False without parameters devingress can use or without a
    // valid listener, True with ListenersNotValid when some are invalid.
    let accepted = match &report.invalid_parameters {
        Some(why) => condition("Accepted", false, "InvalidParameters", why, generation, &old, now),
        None if valid == 0 => {
            condition("Accepted", false, "ListenersNotValid", "no listener is valid", generation, &old, now)
        }
        None if valid < report.listeners.len() => {
            let invalid: Vec<&str> = report.listeners.iter().filter(|l| !l.valid()).map(|l| l.name.as_str()).collect();
            let why = format!("listeners not valid: {}", invalid.join(", "));
            condition("Accepted", true, "ListenersNotValid", &why, generation, &old, now)
        }
        None => condition("Accepted", true, "Accepted", "served by devingress", generation, &old, now),
    };
    let programmed = report.invalid_parameters.is_none() && report.listeners.iter().any(|l| l.accepted.is_ok());
    let gw_programmed: Result<(), Unmet> =
        if programmed { Ok(()) } else { Err(("Invalid", "no listener of this Gateway can be served".into())) };
    let listeners: Vec<Value> = report
        .listeners
        .iter()
        .map(|l| {
            let old_l = current
                .and_then(|c| c["listeners"].as_array())
                .and_then(|ls| ls.iter().find(|x| x["name"] == l.name.as_str()));
            let old = conditions_of(old_l);
            let programmed: Result<(), Unmet> = match (&l.accepted, &l.resolved, &l.conflicted) {
                (Ok(()), Ok(()), None) => Ok(()),
                (Err(_), ..) => Err(("Invalid", "the listener is not accepted".into())),
                (_, Err(_), _) => Err(("Invalid", "the listener's certificate references do not resolve".into())),
                (.., Some(_)) => Err(("Invalid", "the listener conflicts with another".into())),
            };
            let conflicted = match &l.conflicted {
                Some((reason, why)) => condition("Conflicted", true, reason, why, generation, &old, now),
                None => condition("Conflicted", false, "NoConflicts", "no conflicts", generation, &old, now),
            };
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds.iter().map(|k| json!({"group": "gateway.networking.k8s.io", "kind": k})).collect::<Vec<_>>(),
                "attachedRoutes": l.attached_routes,
                "conditions": [
                    cond("Accepted", &l.accepted, "Accepted", "served by devingress", generation, &old, now),
                    cond("Programmed", &programmed, "Programmed", "served by devingress", generation, &old, now),
                    cond(
                        "ResolvedRefs",
                        &l.resolved.clone().and_then(|()| l.invalid_kinds.clone().map_or(Ok(()), Err)),
                        "ResolvedRefs",
                        "all references resolved",
                        generation,
                        &old,
                        now
                    ),
                    conflicted,
                ],
            })
        })
        .collect();
    json!({
        "addresses": [{"type": "IPAddress", "value": ADDRESS}],
        "conditions": [
            accepted,
            cond("Programmed", &gw_programmed, "Programmed", &format!("served on {ADDRESS}"), generation, &old, now),
        ],
        "listeners": listeners,
    })
}

/// What a route's `status.parents` becomes: other controllers' entries as
/// they are, then devingress's, one per parentRef to a Gateway of its class.
pub fn route_parents(report: &RouteReport, current: &[Value], now: &str) -> Vec<Value> {
    let mut out: Vec<Value> = current.iter().filter(|p| p["controllerName"] != GATEWAY_CONTROLLER).cloned().collect();
    for p in report.parents.iter().filter(|p| p.ours) {
        let old = current
            .iter()
            .find(|c| c["controllerName"] == GATEWAY_CONTROLLER && c["parentRef"] == p.parent_ref)
            .map(|c| conditions_of(Some(c)))
            .unwrap_or_default();
        let g = report.generation;
        out.push(json!({
            "parentRef": p.parent_ref,
            "controllerName": GATEWAY_CONTROLLER,
            "conditions": [
                cond("Accepted", &p.accepted, "Accepted", "attached", g, &old, now),
                cond("ResolvedRefs", &p.resolved, "ResolvedRefs", "all references resolved", g, &old, now),
            ],
        }));
    }
    out
}

/// Keeps the status of served Gateways and their routes current.
pub struct GatewayStatusWriter {
    client: Client,
    /// Gateways whose status devingress wrote.
    written: HashSet<ObjectKey>,
    /// Failed writes, said once each.
    failures: super::status::Failures,
}

impl GatewayStatusWriter {
    /// A writer that talks through `client`.
    pub fn new(client: Client) -> Self {
        GatewayStatusWriter { client, written: HashSet::new(), failures: Default::default() }
    }

    /// Whether some write failed and should be tried again.
    pub fn needs_retry(&self) -> bool {
        self.failures.any()
    }

    async fn apply<K>(&mut self, key: &ObjectKey, status: Value) -> bool
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &key.namespace);
        let body = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()),
                          "metadata": {"name": key.name, "namespace": key.namespace}, "status": status});
        match api.patch_status(&key.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body)).await {
            Ok(_) => true,
            Err(e) => {
                self.failures.fail(format!(
                    "cannot write the status of {} {key}: {}",
                    K::kind(&()),
                    describe_error(&e)
                ));
                false
            }
        }
    }

    /// Writes what changed since the objects' current status.
    pub async fn sync(&mut self, objects: &GatewayObjects, gateways: &[GatewayReport], routes: &[RouteReport]) {
        self.failures.start();
        let now = super::gateway_class::now();
        for report in gateways.iter().filter(|g| g.ours) {
            let current = find(&objects.gateways, &report.gateway)
                .and_then(|g| g.status.as_ref())
                .and_then(|s| serde_json::to_value(s).ok());
            let want = gateway_status(report, current.as_ref(), &now);
            if current.as_ref().is_some_and(|c| same(c, &want, &["addresses", "conditions", "listeners"])) {
                self.written.insert(report.gateway.clone());
                continue;
            }
            if self.apply::<Gateway>(&report.gateway, want).await {
                tracing::debug!("Gateway {}: status written", report.gateway);
                self.written.insert(report.gateway.clone());
            }
        }
        for report in routes.iter().filter(|r| r.parents.iter().any(|p| p.ours)) {
            let status = match report.kind {
                RouteKind::Http => {
                    find(&objects.http_routes, &report.route).and_then(|r| serde_json::to_value(&r.status).ok())
                }
                RouteKind::Grpc => {
                    find(&objects.grpc_routes, &report.route).and_then(|r| serde_json::to_value(&r.status).ok())
                }
            };
            let current: Vec<Value> = status.and_then(|v| v["parents"].as_array().cloned()).unwrap_or_default();
            let want = route_parents(report, &current, &now);
            if current == want {
                continue;
            }
            let written = match report.kind {
                RouteKind::Http => self.apply::<HttpRoute>(&report.route, json!({"parents": want})).await,
                RouteKind::Grpc => self.apply::<GrpcRoute>(&report.route, json!({"parents": want})).await,
            };
            if written {
                tracing::debug!("{} {}: status written", report.kind.name(), report.route);
            }
        }
    }

    /// On a clean exit: the Gateways devingress served lose their address
    /// and are `Programmed=False` (`Pending`): nothing serves them now.
    pub async fn clear_all(&mut self, objects: Option<&GatewayObjects>) {
        let now = super::gateway_class::now();
        let keys: Vec<ObjectKey> = self.written.drain().collect();
        for key in &keys {
            let gw = objects.and_then(|o| find(&o.gateways, key));
            let current = gw.and_then(|g| g.status.as_ref()).and_then(|s| serde_json::to_value(s).ok());
            let old = conditions_of(current.as_ref());
            let generation = gw.and_then(|g| g.metadata.generation).unwrap_or(0);
            let mut conditions: Vec<Value> = old.iter().filter(|c| c["type"] != "Programmed").cloned().collect();
            conditions.push(condition(
                "Programmed",
                false,
                "Pending",
                "devingress has stopped",
                generation,
                &old,
                &now,
            ));
            let listeners = current.as_ref().map(|c| c["listeners"].clone()).unwrap_or(json!([]));
            if self.apply::<Gateway>(key, json!({"conditions": conditions, "listeners": listeners})).await {
                tracing::info!("Gateway {key}: no longer served (Programmed=False, address removed)");
            }
        }
    }
}

/// The object with `key` among `objects`.
fn find<'a, K: Resource>(objects: &'a [Arc<K>], key: &ObjectKey) -> Option<&'a K> {
    objects.iter().map(|o| &**o).find(|o| ObjectKey::of(*o) == *key)
}

/// Whether `current` already holds `want`'s value for each of `fields`.
fn same(current: &Value, want: &Value, fields: &[&str]) -> bool {
    fields.iter().all(|f| current.get(*f) == want.get(*f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::gateway::table::{ListenerReport, ParentReport};

    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey { namespace: ns.into(), name: name.into() }
    }

    #[test]
    fn a_gateway_gets_its_address_conditions_and_listener_counts() {
        let report = GatewayReport {
            gateway: key("gw", "web"),
            generation: 2,
            ours: true,
            invalid_parameters: None,
            listeners: vec![
                ListenerReport {
                    name: "http".into(),
                    slot: Some(crate::routes::gateway::Slot::Http),
                    supported_kinds: vec!["HTTPRoute"],
                    attached_routes: 3,
                    accepted: Ok(()),
                    resolved: Err(("RefNotPermitted", "no grant".into())),
                    conflicted: None,
                    certificate: None,
                    invalid_kinds: None,
                },
                ListenerReport {
                    name: "tcp".into(),
                    slot: None,
                    supported_kinds: vec![],
                    attached_routes: 0,
                    accepted: Err(("UnsupportedProtocol", "no TCP".into())),
                    resolved: Ok(()),
                    conflicted: Some(("ProtocolConflict", "port 80 also has an HTTP listener".into())),
                    certificate: None,
                    invalid_kinds: None,
                },
            ],
        };
        let s = gateway_status(&report, None, "2026-11-30T10:00:00Z");
        assert_eq!(s["addresses"], json!([{"type": "IPAddress", "value": "127.0.0.1"}]));
        assert_eq!(s["conditions"][1]["type"], "Programmed");
        assert_eq!(s["conditions"][1]["status"], "True");
        assert_eq!(s["listeners"][0]["attachedRoutes"], 3);
        // A certificate reference that does not resolve: ResolvedRefs and Programmed false (rule 7).
        assert_eq!(s["listeners"][0]["conditions"][2]["reason"], "RefNotPermitted");
        assert_eq!(s["listeners"][0]["conditions"][1]["status"], "False");
        assert_eq!(
            s["listeners"][0]["supportedKinds"],
            json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
        );
        assert_eq!(s["listeners"][1]["conditions"][0]["reason"], "UnsupportedProtocol");
        assert_eq!(s["listeners"][1]["conditions"][0]["observedGeneration"], 2);
        assert_eq!(s["listeners"][1]["conditions"][3]["type"], "Conflicted");
        assert_eq!(
            (&s["listeners"][1]["conditions"][3]["status"], &s["listeners"][1]["conditions"][3]["reason"]),
            (&json!("True"), &json!("ProtocolConflict"))
        );
        assert_eq!(s["listeners"][0]["conditions"][3]["reason"], "NoConflicts");
        // No valid listener: the Gateway is not accepted.
        assert_eq!(
            (&s["conditions"][0]["status"], &s["conditions"][0]["reason"]),
            (&json!("False"), &json!("ListenersNotValid"))
        );
        // Unchanged: the same value, times included.
        let later = gateway_status(&report, Some(&s), "2026-11-30T11:00:00Z");
        assert!(same(&s, &later, &["addresses", "conditions", "listeners"]));
    }

    #[test]
    fn route_parents_keep_other_controllers_entries() {
        let theirs =
            json!({"parentRef": {"name": "envoy-gw"}, "controllerName": "example.com/other", "conditions": []});
        let report = RouteReport {
            kind: crate::routes::gateway::table::RouteKind::Http,
            route: key("app", "r"),
            generation: 1,
            parents: vec![
                ParentReport {
                    parent_ref: json!({"name": "web", "namespace": "gw"}),
                    ours: true,
                    accepted: Ok(()),
                    resolved: Err(("BackendNotFound", "Service app/x does not exist".into())),
                },
                ParentReport {
                    parent_ref: json!({"name": "borrowed"}),
                    ours: false,
                    accepted: Ok(()),
                    resolved: Ok(()),
                },
            ],
        };
        let parents = route_parents(&report, std::slice::from_ref(&theirs), "2026-11-30T10:00:00Z");
        assert_eq!(parents.len(), 2, "{parents:#?}");
        assert_eq!(parents[0], theirs);
        assert_eq!(parents[1]["controllerName"], GATEWAY_CONTROLLER);
        assert_eq!(parents[1]["conditions"][0]["reason"], "Accepted");
        assert_eq!(parents[1]["conditions"][1]["reason"], "BackendNotFound");
    }

    #[test]
    fn a_gateway_is_accepted_by_its_listeners_and_parameters() {
        let listener = |name: &str, invalid_kinds: Option<Unmet>| ListenerReport {
            name: name.into(),
            slot: Some(crate::routes::gateway::Slot::Http),
            supported_kinds: vec!["HTTPRoute"],
            attached_routes: 0,
            accepted: Ok(()),
            resolved: Ok(()),
            conflicted: None,
            certificate: None,
            invalid_kinds,
        };
        let mut report = GatewayReport {
            gateway: key("gw", "web"),
            generation: 1,
            ours: true,
            invalid_parameters: None,
            listeners: vec![listener("a", None), listener("b", Some(("InvalidRouteKinds", "TCPRoute".into())))],
        };
        let accepted = |r: &GatewayReport| {
            let s = gateway_status(r, None, "2026-11-30T10:00:00Z");
            let c = &s["conditions"][0];
            (c["status"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap().to_string())
        };
        assert_eq!(accepted(&report), ("True".into(), "ListenersNotValid".into()), "one of two is invalid");
        let s = gateway_status(&report, None, "2026-11-30T10:00:00Z");
        assert_eq!(s["listeners"][1]["conditions"][2]["reason"], "InvalidRouteKinds");
        assert_eq!(s["listeners"][1]["conditions"][1]["status"], "True", "its valid kinds are still served");
        report.listeners.pop();
        assert_eq!(accepted(&report), ("True".into(), "Accepted".into()));
        report.invalid_parameters = Some("no parameters".into());
        assert_eq!(accepted(&report), ("False".into(), "InvalidParameters".into()));
    }
}
