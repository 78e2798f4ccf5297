//! Which Ingresses devingress serves (rules 1 to 3 of the routing rules).

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// The controller name devingress's IngressClasses carry.
pub const CONTROLLER: &str = "devingress.dev/ingress-controller";
/// The name of the IngressClass `devingress up` creates.
pub const CLASS_NAME: &str = "devingress";
/// The annotation that makes an IngressClass the cluster default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The older way of naming an Ingress's class.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// How Ingresses are chosen by class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassPolicy {
    /// `--class`: serve only Ingresses of these classes (empty: no restriction).
    pub classes: Vec<String>,
    /// `--strict`: behave as a conformant controller, serving only classes
    /// whose controller is devingress.
    pub strict: bool,
    /// `--gateway-class`: foreign GatewayClasses whose Gateways devingress
    /// routes too (it writes no status on them).
    pub gateway_classes: Vec<String>,
}

/// The class an Ingress names: `spec.ingressClassName`, else the annotation.
pub fn class_of(ing: &Ingress) -> Option<&str> {
    ing.spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| ing.metadata.annotations.as_ref().and_then(|a| a.get(CLASS_ANNOTATION)).map(String::as_str))
        .filter(|c| !c.is_empty())
}

fn is_default(class: &IngressClass) -> bool {
    class.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION)).map(String::as_str)
        == Some("true")
}

fn is_ours(class: &IngressClass) -> bool {
    class.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
}

impl ClassPolicy {
    /// Whether devingress serves `ing`; `Err` says why not.
    pub fn admits<'a>(
        &self,
        ing: &Ingress,
        classes: impl Iterator<Item = &'a IngressClass> + Clone,
    ) -> Result<(), String> {
        let named = |name: &str| self.classes.is_empty() || self.classes.iter().any(|c| c == name);
        let find = |name: &str| classes.clone().find(|c| c.metadata.name.as_deref() == Some(name));
        match class_of(ing) {
            Some(class) => {
                if !named(class) {
                    return Err(format!("its class {class:?} is not one of --class {}", self.classes.join(", ")));
                }
                if self.strict {
                    match find(class) {
                        None => return Err(format!("its IngressClass {class:?} does not exist")),
                        Some(c) if !is_ours(c) => {
                            return Err(format!("its IngressClass {class:?} belongs to another controller"));
                        }
                        Some(_) => {}
                    }
                }
                Ok(())
            }
            None => {
                if !self.strict && self.classes.is_empty() {
                    return Ok(());
                }
                // A class-less Ingress belongs to the default class, if any.
                let default = classes.clone().find(|c| is_default(c));
                match default {
                    Some(d) if named(d.metadata.name.as_deref().unwrap_or("")) && (!self.strict || is_ours(d)) => {
                        Ok(())
                    }
                    _ => Err("it names no class, and the default IngressClass is not served".into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(class: Option<&str>, annotation: Option<&str>) -> Ingress {
        let mut v = json!({"metadata": {"name": "i", "namespace": "default"}, "spec": {}});
        if let Some(c) = class {
            v["spec"]["ingressClassName"] = json!(c);
        }
        if let Some(a) = annotation {
            v["metadata"]["annotations"] = json!({CLASS_ANNOTATION: a});
        }
        serde_json::from_value(v).unwrap()
    }

    fn class(name: &str, controller: &str, default: bool) -> IngressClass {
        let mut v = json!({"metadata": {"name": name}, "spec": {"controller": controller}});
        if default {
            v["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn class_policy_table() {
        let ours = class("devingress", CONTROLLER, false);
        let ours_default = class("devingress", CONTROLLER, true);
        let nginx = class("nginx", "k8s.io/ingress-nginx", false);
        let nginx_default = class("nginx", "k8s.io/ingress-nginx", true);
        let all = ClassPolicy::default();
        let strict = ClassPolicy { strict: true, ..ClassPolicy::default() };
        let only_nginx = ClassPolicy { classes: vec!["nginx".into()], ..ClassPolicy::default() };
        // (policy, ingress, classes in the cluster, served)
        let cases: Vec<(&ClassPolicy, Ingress, Vec<&IngressClass>, bool)> = vec![
            (&all, ingress(Some("nginx"), None), vec![&nginx], true),
            (&all, ingress(Some("missing"), None), vec![], true),
            (&all, ingress(None, None), vec![], true),
            (&strict, ingress(Some("devingress"), None), vec![&ours], true),
            (&strict, ingress(None, Some("devingress")), vec![&ours], true),
            (&strict, ingress(Some("nginx"), None), vec![&ours, &nginx], false),
            // Conformance: an unknown class is not routed.
            (&strict, ingress(Some("missing"), None), vec![&ours], false),
            (&strict, ingress(None, None), vec![&ours], false),
            (&strict, ingress(None, None), vec![&ours_default], true),
            (&strict, ingress(None, None), vec![&ours, &nginx_default], false),
            (&only_nginx, ingress(Some("nginx"), None), vec![&nginx], true),
            (&only_nginx, ingress(None, Some("nginx")), vec![&nginx], true),
            (&only_nginx, ingress(Some("devingress"), None), vec![&ours], false),
            (&only_nginx, ingress(None, None), vec![&nginx_default], true),
            (&only_nginx, ingress(None, None), vec![&nginx], false),
        ];
        for (i, (policy, ing, classes, want)) in cases.into_iter().enumerate() {
            let got = policy.admits(&ing, classes.into_iter());
            assert_eq!(got.is_ok(), want, "case {i}: {got:?}");
        }
    }
}
