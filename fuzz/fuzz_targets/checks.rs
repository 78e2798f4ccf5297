//! The checks of the fuzz targets, shared with `cargo test`
//! (tests/fuzz_corpus.rs runs them over the corpus and every crash kept in
//! fuzz/regressions). Each takes the fuzzer's bytes and panics on a broken
//! property.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use devingress::cluster::{GatewayObjects, Snapshot};
use devingress::control::Request;
use devingress::dns::{Answer, answer};
use devingress::routes::RouteTable;
use hickory_proto::op::Message;
use serde_json::Value;

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Option<Arc<T>> {
    serde_json::from_value(v.clone()).ok().map(Arc::new)
}

fn snapshot(objects: &[Value]) -> Snapshot {
    let mut s = Snapshot { synced: true, ..Default::default() };
    let mut g = GatewayObjects { synced: true, ..Default::default() };
    for o in objects {
        match o["kind"].as_str() {
            Some("Ingress") => s.ingresses.extend(typed(o)),
            Some("IngressClass") => s.ingress_classes.extend(typed(o)),
            Some("Service") => s.services.extend(typed(o)),
            Some("EndpointSlice") => s.endpoint_slices.extend(typed(o)),
            Some("GatewayClass") => g.classes.extend(typed(o)),
            Some("Gateway") => g.gateways.extend(typed(o)),
            Some("HTTPRoute") => g.http_routes.extend(typed(o)),
            Some("GRPCRoute") => g.grpc_routes.extend(typed(o)),
            Some("ReferenceGrant") => g.reference_grants.extend(typed(o)),
            _ => {}
        }
    }
    if !(g.classes.is_empty() && g.gateways.is_empty()) {
        s.gateway = Some(g);
    }
    s
}

/// Every Service name the objects name as a backend, anywhere.
fn named_backends(v: &Value, under_backend: bool, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let backend = under_backend
                    || matches!(k.as_str(), "backend" | "defaultBackend" | "backendRefs" | "backendRef" | "service");
                if backend && k == "name" {
                    if let Some(n) = child.as_str() {
                        out.insert(n.to_string());
                    }
                }
                named_backends(child, backend, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| named_backends(i, under_backend, out)),
        _ => {}
    }
}

/// One object per kind, namespace and name, as in a cluster (the first).
fn unique(objects: Vec<Value>) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    objects
        .into_iter()
        .filter(|o| {
            let key =
                (o["kind"].to_string(), o["metadata"]["namespace"].to_string(), o["metadata"]["name"].to_string());
            seen.insert(key)
        })
        .collect()
}

/// Arbitrary objects (a JSON array) through the routing table builder: the
/// table is the same whatever order they arrive in, and never routes to a
/// Service that no rule names.
pub fn routing_table(data: &[u8]) {
    let Ok(Value::Array(objects)) = serde_json::from_slice::<Value>(data) else { return };
    let objects = unique(objects);
    let table = devingress::routes::build(&snapshot(&objects));
    let mut reversed = objects.clone();
    reversed.reverse();
    let again = devingress::routes::build(&snapshot(&reversed));
    assert_eq!(
        devingress::routes::render(&table),
        devingress::routes::render(&again),
        "the table depends on the order the objects arrive in"
    );
    let mut named = BTreeSet::new();
    named_backends(&Value::Array(objects), false, &mut named);
    for b in table.backends() {
        assert!(named.contains(&b.service), "routed to Service {} that no rule names", b.service);
    }
}

/// A table serving `alpaca.example.com` and `*.apps.test`.
fn served_table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let ingress = |host: &str| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": host.replace('*', "w"), "namespace": "default"},
                "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
            }))
            .map(Arc::new)
            .expect("an Ingress")
        };
        let snapshot = Snapshot {
            ingresses: vec![ingress("alpaca.example.com"), ingress("*.apps.test")],
            synced: true,
            ..Default::default()
        };
        devingress::routes::build(&snapshot)
    })
}

/// Whether `name` is served by [`served_table`], worked out apart from it.
fn served(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "alpaca.example.com"
        || name.strip_suffix(".apps.test").is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

/// DNS packets through devingress's answer: never an address for a name
/// that is not served.
pub fn dns_query(data: &[u8]) {
    let Ok(message) = Message::from_vec(data) else { return };
    for query in &message.queries {
        let name = query.name().to_ascii();
        if let Answer::Addresses(ips) = answer(served_table(), &name, query.query_type()) {
            assert!(served(&name), "an address for {name:?}, which is not served");
            assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
        }
    }
}

/// Lines of the control-socket protocol: whatever parses as a request
/// writes back, on one line, as the same request.
pub fn control_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(request) = serde_json::from_str::<Request>(text) else { return };
    let line = serde_json::to_string(&request).expect("a request serializes");
    assert!(!line.contains('\n'), "one line: {line:?}");
    let again: Request = serde_json::from_str(&line).expect("what was written reads back");
    assert_eq!(again, request);
}

/// A TLS ClientHello through the certificate choice by SNI: a certificate
/// only for a served host (or `localhost`), never for another name.
pub fn client_hello(data: &[u8]) {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut input = data;
    if acceptor.read_tls(&mut input).is_err() {
        return;
    }
    let Ok(Some(accepted)) = acceptor.accept() else { return };
    let sni = accepted.client_hello().server_name().map(str::to_string);
    if let Some((_, name)) = devingress::tls::resolver::choose(served_table(), sni.as_deref()) {
        let ok = name == "localhost" || name == "*.apps.test" || served(&name);
        assert!(ok, "a certificate for {name:?} (SNI {sni:?})");
    }
}
