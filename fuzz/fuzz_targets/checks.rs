//! The checks of the fuzz targets, shared with `cargo test`
//! (tests/fuzz_corpus.rs runs them over the corpus and every crash kept in
//! fuzz/regressions). Each takes the fuzzer's bytes and panics on a broken
//! property.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use devingress::cluster::{GatewayObjects, Snapshot};
use devingress::control::Request;
use devingress::dns::{Answer, DnsHandler, answer};
use devingress::routes::RouteTable;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request as DnsRequest, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
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

/// A response handler that keeps the response, encoded as it would be sent.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Kept {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::new();
        let info = response.destructive_emit(&mut BinEncoder::new(&mut bytes))?;
        *self.0.lock().unwrap() = Some(bytes);
        Ok(info)
    }
}

/// devingress's DNS handler, reading [`served_table`].
fn dns_handler() -> &'static DnsHandler {
    static HANDLER: OnceLock<DnsHandler> = OnceLock::new();
    HANDLER.get_or_init(|| {
        let (table, reader) = tokio::sync::watch::channel(Arc::new(served_table().clone()));
        // The table never changes: its sender lives as long as the process.
        std::mem::forget(table);
        DnsHandler::new(reader)
    })
}

/// What devingress's DNS server sends back for the packet `data`, as
/// hickory-server hands it to the handler: `None` when hickory-server
/// itself answers or drops it (no header, an undecodable message, a
/// response).
fn dns_response(data: &[u8]) -> Option<(DnsRequest, Message)> {
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
    let request = DnsRequest::from_bytes(data.to_vec(), from, Protocol::Udp).ok()?;
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let kept = Kept::default();
    {
        let handled = dns_handler().handle_request::<_, TokioTime>(&request, kept.clone());
        let mut handled = std::pin::pin!(handled);
        // The handler reads the table and answers: it has nothing to wait for.
        let Poll::Ready(_) = handled.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
            panic!("the DNS handler waited on something");
        };
    }
    let bytes = kept.0.lock().unwrap().take().expect("the DNS handler sent no response");
    let response = Message::from_vec(&bytes).unwrap_or_else(|e| {
        panic!("the DNS handler's response does not decode ({e}): {bytes:02x?}, for {:?}", request.queries)
    });
    Some((request, response))
}

/// DNS packets through devingress's DNS handler (as hickory-server passes
/// them on): an answer for every query hickory-server passes on, the
/// request's id and the right error code; never an address for a name that
/// is not served, and always one for a served name.
pub fn dns_query(data: &[u8]) {
    if let Ok(message) = Message::from_vec(data) {
        for query in &message.queries {
            let name = query.name().to_ascii();
            if let Answer::Addresses(ips) = answer(served_table(), &name, query.query_type()) {
                assert!(served(&name), "an address for {name:?}, which is not served");
                assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
            }
        }
    }
    let Some((request, response)) = dns_response(data) else { return };
    assert_eq!(response.metadata.id, request.metadata.id, "the response's id");
    assert_eq!(response.metadata.message_type, MessageType::Response);
    let queries = request.queries.queries();
    let code = response.metadata.response_code;
    if request.metadata.op_code != OpCode::Query {
        assert_eq!(code, ResponseCode::NotImp, "a {:?} request", request.metadata.op_code);
    } else if queries.len() != 1 {
        assert_eq!(code, ResponseCode::FormErr, "a request with {} queries", queries.len());
    }
    for record in &response.answers {
        let name = record.name.to_ascii();
        assert!(served(&name), "an answer for {name:?}, which is not served: {record:?}");
        let loopback = match &record.data {
            RData::A(a) => a.0.is_loopback(),
            RData::AAAA(aaaa) => aaaa.0.is_loopback(),
            _ => false,
        };
        assert!(loopback, "an answer that is no loopback address: {record:?}");
    }
    if let ([query], OpCode::Query) = (queries, request.metadata.op_code) {
        let name = query.name().to_ascii();
        if served(&name) {
            assert_ne!(code, ResponseCode::NXDomain, "NXDOMAIN for {name:?}, which is served");
            if query.query_type() == RecordType::A {
                assert!(!response.answers.is_empty(), "no address for {name:?}, which is served");
            }
        } else {
            assert!(response.answers.is_empty(), "answers for {name:?}: {:?}", response.answers);
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
