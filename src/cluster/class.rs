//! The `devingress` IngressClass (rule 1): created when no class of
//! devingress's controller exists, made the cluster default only on request.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::IngressClass;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::kubeclient::describe_error;
use crate::routes::{CLASS_NAME, CONTROLLER, DEFAULT_CLASS_ANNOTATION};

/// Makes sure an IngressClass of devingress's controller exists (and is the
/// default when `make_default`). Problems are logged, not fatal: Ingresses
/// are served either way.
pub async fn ensure_class(client: Client, classes: &[Arc<IngressClass>], make_default: bool) {
    let api: Api<IngressClass> = Api::all(client);
    let ours: Vec<&IngressClass> = classes
        .iter()
        .map(|c| &**c)
        .filter(|c| c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER))
        .collect();
    if let Some(class) = ours.first() {
        let name = class.metadata.name.clone().unwrap_or_default();
        let is_default = class.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            == Some(&"true".to_string());
        tracing::debug!("IngressClass {name} of controller {CONTROLLER} exists");
        if make_default && !is_default {
            let patch = json!({"metadata": {"annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => tracing::info!("made IngressClass {name} the cluster's default class"),
                Err(e) => tracing::warn!("cannot make IngressClass {name} the default: {}", describe_error(&e)),
            }
        }
        return;
    }
    let mut class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                           "metadata": {"name": CLASS_NAME}, "spec": {"controller": CONTROLLER}});
    if make_default {
        class["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
    }
    let class: IngressClass = serde_json::from_value(class).expect("valid IngressClass");
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => tracing::info!(
            "created IngressClass {CLASS_NAME} (controller {CONTROLLER}){}",
            if make_default { ", the cluster's default class" } else { "" }
        ),
        Err(kube::Error::Api(s)) if s.code == 409 => tracing::warn!(
            "an IngressClass named {CLASS_NAME} exists but belongs to another controller; \
             Ingresses of class {CLASS_NAME} are served only without --strict"
        ),
        Err(e) => tracing::warn!(
            "cannot create IngressClass {CLASS_NAME}: {}; Ingresses are served anyway",
            describe_error(&e)
        ),
    }
}
