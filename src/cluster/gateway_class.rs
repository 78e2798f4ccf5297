//! devingress's GatewayClasses: the class `devingress` is created when the
//! Gateway API's CRDs exist and no class of that name does, and every class
//! whose `controllerName` is devingress's gets `Accepted` and
//! `SupportedVersion` conditions (rules 1 and 25 of the Gateway rules).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::FIELD_MANAGER;
use crate::gateway::api::GatewayClass;
use crate::kubeclient::describe_error;

/// The controller name devingress answers to.
pub const GATEWAY_CONTROLLER: &str = "devingress.dev/gateway-controller";
/// The GatewayClass `up` creates.
pub const GATEWAY_CLASS_NAME: &str = "devingress";
/// The CRD annotation that names the Gateway API release installed.
const BUNDLE_VERSION: &str = "gateway.networking.k8s.io/bundle-version";

/// Whether devingress supports the Gateway API release `bundle` (the CRDs'
/// bundle version): every v1 release, and development builds. Unknown (the
/// CRDs cannot be read) counts as supported.
pub fn supports(bundle: Option<&str>) -> bool {
    match bundle {
        None => true,
        Some(v) => v.starts_with("v1.") || v.starts_with("v0.0.0-"),
    }
}

/// One condition as the API wants it, keeping `lastTransitionTime` from
/// `old` when the status did not change (rule 28).
pub fn condition(
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: i64,
    old: &[Value],
    now: &str,
) -> Value {
    let status = if status { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c["type"] == kind && c["status"] == status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": since})
}

/// The conditions of one of devingress's classes.
pub fn class_conditions(generation: i64, bundle: Option<&str>, old: &[Value], now: &str) -> Vec<Value> {
    let version = bundle.unwrap_or("unknown");
    if supports(bundle) {
        vec![
            condition("Accepted", true, "Accepted", "devingress serves Gateways of this class", generation, old, now),
            condition(
                "SupportedVersion",
                true,
                "SupportedVersion",
                &format!("Gateway API {version} is supported"),
                generation,
                old,
                now,
            ),
        ]
    } else {
        let why = format!("devingress supports Gateway API v1.x; the CRDs installed are {version}");
        vec![
            condition("Accepted", false, "UnsupportedVersion", &why, generation, old, now),
            condition("SupportedVersion", false, "UnsupportedVersion", &why, generation, old, now),
        ]
    }
}

/// Now, as a condition's `lastTransitionTime` (RFC 3339, whole seconds).
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Keeps devingress's GatewayClasses present and their status current.
pub struct GatewayClassWriter {
    client: Client,
    /// Whether creating the class was tried already.
    created: bool,
    /// The bundle version, once read (`Some(None)`: could not be read).
    bundle: Option<Option<String>>,
    /// Failed writes, said once each.
    failures: super::status::Failures,
}

impl GatewayClassWriter {
    /// A writer that talks through `client`.
    pub fn new(client: Client) -> Self {
        GatewayClassWriter { client, created: false, bundle: None, failures: Default::default() }
    }

    /// Whether some write failed and should be tried again.
    pub fn needs_retry(&self) -> bool {
        self.failures.any()
    }

    /// Creates the `devingress` class if no class has that name, then
    /// brings the status of every class of devingress's controller up to date.
    pub async fn sync(&mut self, classes: &[Arc<GatewayClass>]) {
        self.failures.start();
        let api: Api<GatewayClass> = Api::all(self.client.clone());
        if !self.created && !classes.iter().any(|c| c.metadata.name.as_deref() == Some(GATEWAY_CLASS_NAME)) {
            self.created = true;
            let class: GatewayClass = serde_json::from_value(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": GATEWAY_CLASS_NAME},
                "spec": {"controllerName": GATEWAY_CONTROLLER,
                         "description": "Gateways served on this machine by devingress, through pod port-forward"}}))
            .expect("valid GatewayClass");
            match api.create(&PostParams::default(), &class).await {
                Ok(_) => tracing::info!("created GatewayClass {GATEWAY_CLASS_NAME} (controller {GATEWAY_CONTROLLER})"),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => tracing::warn!(
                    "cannot create GatewayClass {GATEWAY_CLASS_NAME}: {}; Gateways of classes naming \
                     {GATEWAY_CONTROLLER} are served all the same",
                    describe_error(&e)
                ),
            }
        }
        let ours: Vec<&GatewayClass> =
            classes.iter().map(|c| &**c).filter(|c| c.spec.controller_name == GATEWAY_CONTROLLER).collect();
        if ours.is_empty() {
            return;
        }
        let bundle = match &self.bundle {
            Some(b) => b.clone(),
            None => {
                let b = self.bundle_version().await;
                self.bundle = Some(b.clone());
                b
            }
        };
        let now = now();
        let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
        for class in ours {
            let name = class.metadata.name.clone().unwrap_or_default();
            let generation = class.metadata.generation.unwrap_or(0);
            let old: Vec<Value> = class
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|c| c.iter().filter_map(|c| serde_json::to_value(c).ok()).collect())
                .unwrap_or_default();
            let want = class_conditions(generation, bundle.as_deref(), &old, &now);
            let current: Vec<Value> =
                old.iter().filter(|c| c["type"] == "Accepted" || c["type"] == "SupportedVersion").cloned().collect();
            if same_conditions(&current, &want) {
                continue;
            }
            by_name.insert(name, json!({"conditions": want}));
        }
        for (name, status) in by_name {
            let body = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                              "metadata": {"name": name}, "status": status});
            match api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body)).await {
                Ok(_) => tracing::debug!("GatewayClass {name}: status written"),
                Err(e) => {
                    self.failures
                        .fail(format!("cannot write the status of GatewayClass {name}: {}", describe_error(&e)));
                }
            }
        }
    }

    /// The Gateway API release the cluster's CRDs come from, if readable.
    async fn bundle_version(&self) -> Option<String> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        match api.get("gatewayclasses.gateway.networking.k8s.io").await {
            Ok(crd) => crd.metadata.annotations.and_then(|a| a.get(BUNDLE_VERSION).cloned()),
            Err(e) => {
                tracing::debug!("cannot read the Gateway API CRDs' version: {}", describe_error(&e));
                None
            }
        }
    }
}

/// Whether two condition lists say the same, `lastTransitionTime` aside.
fn same_conditions(a: &[Value], b: &[Value]) -> bool {
    let key = |v: &[Value]| {
        let mut k: Vec<(String, String, String, i64)> = v
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap_or("").to_string(),
                    c["status"].as_str().unwrap_or("").to_string(),
                    c["reason"].as_str().unwrap_or("").to_string(),
                    c["observedGeneration"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        k.sort();
        k
    };
    key(a) == key(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_releases_and_development_builds_are_supported() {
        for v in [None, Some("v1.0.0"), Some("v1.6.1"), Some("v0.0.0-dev")] {
            assert!(supports(v), "{v:?}");
        }
        for v in [Some("v0.8.1"), Some("v2.0.0")] {
            assert!(!supports(v), "{v:?}");
        }
    }

    #[test]
    fn conditions_carry_the_generation_and_keep_their_transition_time() {
        let first = class_conditions(3, Some("v1.6.1"), &[], "2026-11-30T10:00:00Z");
        assert_eq!(first[0]["type"], "Accepted");
        assert_eq!((&first[0]["status"], &first[0]["reason"]), (&json!("True"), &json!("Accepted")));
        assert_eq!(first[1]["reason"], "SupportedVersion");
        assert_eq!(first[0]["observedGeneration"], 3);
        // Same status later: the time stays; the generation follows.
        let again = class_conditions(4, Some("v1.6.1"), &first, "2026-11-30T11:00:00Z");
        assert_eq!(again[0]["lastTransitionTime"], "2026-11-30T10:00:00Z");
        assert_eq!(again[0]["observedGeneration"], 4);
        assert!(!same_conditions(&first, &again));
        // A changed status gets a new time.
        let rejected = class_conditions(4, Some("v2.0.0"), &first, "2026-11-30T12:00:00Z");
        assert_eq!((&rejected[0]["status"], &rejected[0]["reason"]), (&json!("False"), &json!("UnsupportedVersion")));
        assert_eq!(rejected[0]["lastTransitionTime"], "2026-11-30T12:00:00Z");
    }
}
