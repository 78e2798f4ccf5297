//! Request handling of the fake API server: list, watch, get, create,
//! delete, status patch, each answering as kube-apiserver does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Shared;
use super::resources::{ApiPath, GATEWAY_GROUP, INGRESSES, ResourceType, discovery, parse_path};
use super::store::{Event, Store};

/// Response bodies; an error breaks the connection mid-body (a cut watch).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Query parameters, parsed leniently (kube-rs sends `?&limit=500`).
pub fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.replace("%2C", ",").replace("%2F", "/").replace("%3D", "=").replace("%3d", "="))
        })
        .collect()
}

/// The headers every API response carries. Requests that API priority and
/// fairness classifies carry its flow schema headers; a port-forward's
/// failure answers without them, as recorded.
pub fn api_headers(res: &mut http::response::Builder, audit_id: &str, priority_headers: bool) {
    let h = res.headers_mut().expect("builder");
    h.insert("audit-id", HeaderValue::from_str(audit_id).expect("ascii"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if priority_headers {
        h.insert("x-kubernetes-pf-flowschema-uid", HeaderValue::from_static("0b2c832f-ea70-4f1a-9e10-7cabc194c5fb"));
        h.insert("x-kubernetes-pf-prioritylevel-uid", HeaderValue::from_static("d1c6142f-dab4-43ac-a3b3-ac380e34b312"));
    }
    h.insert(header::DATE, HeaderValue::from_str(&super::store::now_http_date()).expect("ascii"));
}

/// A plain JSON answer: compact, followed by one newline.
pub fn json_response(shared: &Shared, status: StatusCode, body: &Value) -> Response<Body> {
    json_answer(shared, status, body, true)
}

/// A plain JSON answer, with or without the priority-and-fairness headers.
pub fn json_answer(shared: &Shared, status: StatusCode, body: &Value, priority_headers: bool) -> Response<Body> {
    let mut b = Response::builder().status(status);
    api_headers(&mut b, &shared.audit_id(), priority_headers);
    let mut text = serde_json::to_vec(body).expect("json");
    text.push(b'\n');
    b.body(Full::new(Bytes::from(text)).map_err(|n: Infallible| match n {}).boxed()).expect("response")
}

/// A `kind: Status` failure.
pub fn status_error(shared: &Shared, code: u16, reason: &str, message: &str, details: Option<Value>) -> Response<Body> {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason});
    if let Some(d) = details {
        body["details"] = d;
    }
    body["code"] = json!(code);
    json_response(shared, StatusCode::from_u16(code).expect("code"), &body)
}

fn details(r: &ResourceType, name: Option<&str>) -> Value {
    let mut d = serde_json::Map::new();
    if let Some(n) = name {
        d.insert("name".into(), json!(n));
    }
    if !r.group.is_empty() {
        d.insert("group".into(), json!(r.group));
    }
    d.insert("kind".into(), json!(r.plural));
    Value::Object(d)
}

fn not_found(shared: &Shared, r: &ResourceType, name: &str) -> Response<Body> {
    status_error(
        shared,
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", r.qualified()),
        Some(details(r, Some(name))),
    )
}

/// Routes one request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let line = format!("{} {}", req.method(), req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""));
    shared.requests.lock().unwrap().push(line);
    let authorised = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", shared.token.lock().unwrap()));
    if !authorised {
        return status_error(&shared, 401, "Unauthorized", "Unauthorized", None);
    }
    if let Some(resp) = failing(&shared, &req) {
        return resp;
    }
    let gateway_api = shared.gateway_api.load(Ordering::Relaxed);
    let ap = parse_path(req.uri().path()).filter(|ap| gateway_api || ap.resource.group != GATEWAY_GROUP);
    let Some(ap) = ap else {
        // Discovery (kubectl's, before it maps `pod/NAME`). A CRD-defined
        // group only once its CRDs are installed.
        let doc = match req.uri().path().trim_matches('/').split('/').collect::<Vec<_>>()[..] {
            ["api"] => Some(json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("")}]})),
            ["apis"] => Some(super::resources::group_list(gateway_api)),
            ["api", version] => discovery("", version),
            ["apis", group, version] => discovery(group, version).filter(|_| gateway_api || group != GATEWAY_GROUP),
            _ => None,
        };
        if let Some(doc) = doc {
            return json_response(&shared, StatusCode::OK, &doc);
        }
        if req.uri().path() == "/version" {
            let v = json!({"major": "1", "minor": "36", "gitVersion": "v1.36.2-fake", "gitCommit": "fake",
                           "gitTreeState": "clean", "buildDate": "2026-11-01T00:00:00Z", "goVersion": "go1.25",
                           "compiler": "gc", "platform": "linux/amd64"});
            return json_response(&shared, StatusCode::OK, &v);
        }
        return status_error(
            &shared,
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        );
    };
    let q = parse_query(req.uri().query());
    let verb = match (req.method(), &ap.name, q.get("watch").map(String::as_str)) {
        (&Method::GET, None, Some("true" | "1")) => "watch",
        (&Method::GET, None, _) => "list",
        (&Method::GET, Some(_), _) => "get",
        (&Method::POST, _, _) => "create",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, _, _) => "delete",
        _ => "other",
    };
    if let Some(resp) = forbidden(&shared, &ap, verb) {
        return resp;
    }
    match (verb, ap.subresource.as_deref()) {
        ("watch", None) => watch(shared, ap, q),
        ("list", None) => list(&shared, &ap, &q),
        ("get", None) => get(&shared, &ap),
        ("get" | "create", Some("portforward")) if ap.resource.plural == "pods" => {
            super::portforward::handle(shared, ap, q, req).await
        }
        ("create", None) => create(&shared, &ap, &q, req).await,
        ("patch", Some("status")) => patch_status(&shared, &ap, &q, req).await,
        ("delete", None) => {
            let name = ap.name.clone().unwrap_or_default();
            let ns = ap.namespace.clone().unwrap_or_default();
            match shared.store.lock().unwrap().delete(ap.resource, &ns, &name) {
                Some(obj) => json_response(&shared, StatusCode::OK, &obj),
                None => not_found(&shared, &ap.resource, &name),
            }
        }
        _ => status_error(
            &shared,
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        ),
    }
}

/// The answer of an API server that is overloaded (429, with
/// `Retry-After` as API priority and fairness sends it) or failing (500,
/// 503), while a test has it so; port-forwards still pass.
fn failing(shared: &Shared, req: &Request<Incoming>) -> Option<Response<Body>> {
    let (until, code, retry_after) = (*shared.failing.lock().unwrap())?;
    if std::time::Instant::now() >= until || req.uri().path().ends_with("/portforward") {
        return None;
    }
    let (reason, message) = match code {
        429 => ("TooManyRequests", "Too many requests, please try again later."),
        500 => ("InternalError", "Internal error occurred: etcdserver: request timed out"),
        503 => ("ServiceUnavailable", "The server is currently unable to handle the request"),
        _ => ("Unknown", "an error on the server has prevented the request from succeeding"),
    };
    let details = retry_after.map(|s| json!({"retryAfterSeconds": s}));
    let mut res = status_error(shared, code, reason, message, details);
    if let Some(s) = retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    Some(res)
}

fn forbidden(shared: &Shared, ap: &ApiPath, verb: &str) -> Option<Response<Body>> {
    if !shared.forbidden.lock().unwrap().contains(ap.resource.plural) {
        return None;
    }
    let (verb, what) = match ap.subresource.as_deref() {
        // A WebSocket upgrade is a GET; SPDY's is a POST, RBAC's "create".
        Some("portforward") => {
            (if verb == "create" { "create" } else { "get" }, format!("{}/portforward", ap.resource.plural))
        }
        Some(sub) => (verb, format!("{}/{sub}", ap.resource.plural)),
        None => (verb, ap.resource.plural.to_string()),
    };
    let subject = match &ap.name {
        Some(n) => format!("{} \"{n}\"", ap.resource.qualified()),
        None => ap.resource.qualified(),
    };
    let scope = match &ap.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let msg = format!(
        "{subject} is forbidden: User \"devingress-restricted\" cannot {verb} resource \"{what}\" in API group \"{}\" {scope}",
        ap.resource.group
    );
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": msg,
                      "reason": "Forbidden", "details": details(&ap.resource, ap.name.as_deref()), "code": 403});
    // Port-forwards are answered without the priority-and-fairness headers.
    let classified = ap.subresource.as_deref() != Some("portforward");
    let mut res = json_answer(shared, StatusCode::FORBIDDEN, &body, classified);
    res.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    Some(res)
}

fn matches_scope(ap: &ApiPath, key_ns: &str) -> bool {
    ap.namespace.as_deref().is_none_or(|ns| ns == key_ns)
}

/// Whether an object passes a `fieldSelector` of `metadata.name=` /
/// `metadata.namespace=` terms (with `==` and `!=`), as the API server
/// supports for every resource.
fn fields_match(q: &BTreeMap<String, String>, obj: &Value) -> bool {
    let Some(sel) = q.get("fieldSelector").filter(|s| !s.is_empty()) else { return true };
    sel.split(',').all(|term| {
        let (field, want, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return false;
        };
        let got = obj.pointer(&format!("/{}", field.replace('.', "/"))).and_then(Value::as_str).unwrap_or("");
        (got == want) == equal
    })
}

fn list(shared: &Shared, ap: &ApiPath, q: &BTreeMap<String, String>) -> Response<Body> {
    let store = shared.store.lock().unwrap();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (rv, start) = match q.get("continue").filter(|c| !c.is_empty()) {
        None => (store.rv, String::new()),
        Some(token) => {
            // Go's base64 names the offset of the first symbol it cannot use;
            // a lone symbol in the last quad is unusable.
            let bad_at = token.bytes().position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_')).or((token
                .len()
                % 4
                == 1)
                .then(|| token.len() - 1));
            let decoded = match bad_at {
                Some(i) => Err(format!("illegal base64 data at input byte {i}")),
                None => engine.decode(token).map_err(|e| e.to_string()),
            }
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
            match decoded {
                Ok(v) => (
                    v["rv"].as_u64().unwrap_or(store.rv),
                    v["start"].as_str().unwrap_or("").trim_end_matches('\0').to_string(),
                ),
                Err(e) => {
                    drop(store);
                    return status_error(
                        shared,
                        400,
                        "BadRequest",
                        &format!("invalid continue token: continue key is not valid: {e}"),
                        None,
                    );
                }
            }
        }
    };
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).filter(|&l| l > 0).unwrap_or(usize::MAX);
    let all: Vec<(String, &Value)> = store
        .objects
        .iter()
        .filter(|((plural, ns, _), v)| *plural == ap.resource.plural && matches_scope(ap, ns) && fields_match(q, v))
        .map(|((_, ns, name), v)| (format!("/{ns}/{name}").replace("//", "/"), v))
        .filter(|(k, _)| start.is_empty() || k.as_str() > start.as_str())
        .collect();
    let page: Vec<Value> = all.iter().take(limit).map(|(_, v)| Store::without_type(v)).collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if all.len() > page.len() {
        let last = &all[page.len() - 1].0;
        let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last}\u{0}")});
        meta["continue"] = json!(engine.encode(serde_json::to_vec(&token).expect("json")));
        meta["remainingItemCount"] = json!(all.len() - page.len());
    }
    let body = json!({"kind": format!("{}List", ap.resource.kind), "apiVersion": ap.resource.api_version(),
                      "metadata": meta, "items": page});
    drop(store);
    json_response(shared, StatusCode::OK, &body)
}

fn get(shared: &Shared, ap: &ApiPath) -> Response<Body> {
    let name = ap.name.clone().unwrap_or_default();
    let key = Store::key(&ap.resource, ap.namespace.as_deref().unwrap_or(""), &name);
    let obj = shared.store.lock().unwrap().objects.get(&key).cloned();
    match obj {
        Some(o) => json_response(shared, StatusCode::OK, &Store::with_type(&ap.resource, &o)),
        None => not_found(shared, &ap.resource, &name),
    }
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("json");
    line.push(b'\n');
    Bytes::from(line)
}

fn watch(shared: Arc<Shared>, ap: ApiPath, q: BTreeMap<String, String>) -> Response<Body> {
    let timeout = Duration::from_secs(q.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800));
    let send_initial = q.get("sendInitialEvents").map(String::as_str) == Some("true");
    let from_rv: Option<u64> = q.get("resourceVersion").and_then(|r| r.parse().ok()).filter(|&r| r > 0);
    // An empty message cuts the watch: the body ends in an error.
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let cuts = shared.watch_cuts.subscribe();
    let mut initial = Vec::new();
    let mut ends_at_once = false;
    let store = shared.store.lock().unwrap();
    let live = store.feed.subscribe();
    let current = |store: &Store| -> Vec<Bytes> {
        store
            .objects
            .iter()
            .filter(|((plural, ns, _), v)| {
                *plural == ap.resource.plural && matches_scope(&ap, ns) && fields_match(&q, v)
            })
            .map(|(_, v)| watch_line("ADDED", &Store::with_type(&ap.resource, v)))
            .collect()
    };
    if send_initial {
        initial = current(&store);
        let mut bookmark = json!({"kind": ap.resource.kind, "apiVersion": ap.resource.api_version(),
            "metadata": {"resourceVersion": store.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
        if ap.resource.plural == INGRESSES.plural {
            bookmark["spec"] = json!({});
            bookmark["status"] = json!({"loadBalancer": {}});
        }
        initial.push(watch_line("BOOKMARK", &bookmark));
    } else {
        match from_rv {
            None => initial = current(&store),
            Some(rv) if rv < store.oldest_rv => {
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("too old resource version: {rv} ({})", store.oldest_rv), "reason": "Expired", "code": 410});
                initial.push(watch_line("ERROR", &status));
                ends_at_once = true;
            }
            Some(rv) => {
                for ev in store
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.resource == ap.resource && matches_scope(&ap, &e.namespace))
                {
                    initial.push(watch_line(ev.kind, &ev.object));
                }
            }
        }
    }
    drop(store);
    let task =
        tokio::spawn(pump_watch(ap.clone(), q.clone(), tx, initial, Feeds { live, cuts }, ends_at_once, timeout));
    shared.track(task.abort_handle());
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        let b = rx.recv().await?;
        if b.is_empty() {
            return Some((Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "watch cut")), rx));
        }
        Some((Ok(Frame::data(b)), rx))
    }));
    let mut b = Response::builder().status(StatusCode::OK);
    api_headers(&mut b, &shared.audit_id(), true);
    b.body(BodyExt::boxed(body)).expect("response")
}

/// What a watch sends: changes as they happen, and when a test cuts it.
struct Feeds {
    live: broadcast::Receiver<Event>,
    cuts: tokio::sync::watch::Receiver<u64>,
}

async fn pump_watch(
    ap: ApiPath,
    q: BTreeMap<String, String>,
    tx: mpsc::Sender<Bytes>,
    initial: Vec<Bytes>,
    feeds: Feeds,
    ends_at_once: bool,
    timeout: Duration,
) {
    let Feeds { mut live, mut cuts } = feeds;
    for line in initial {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    if ends_at_once {
        return;
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = live.recv() => match ev {
                Ok(ev) if ev.resource == ap.resource && matches_scope(&ap, &ev.namespace) && fields_match(&q, &ev.object) => {
                    if tx.send(watch_line(ev.kind, &ev.object)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                // A watcher that falls behind is cut off; the client resumes from its last rv.
                Err(_) => return,
            },
            () = &mut deadline => return,
            () = tx.closed() => return,
            _ = cuts.changed() => {
                let _ = tx.send(Bytes::new()).await;
                return;
            }
        }
    }
}

async fn read_json(req: Request<Incoming>) -> Result<Value, String> {
    let bytes = req.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| format!("couldn't get version/kind; json parse error: {e}"))
}

fn validate_ingress(obj: &Value) -> Option<(String, String)> {
    let rules = obj.pointer("/spec/rules").and_then(Value::as_array)?;
    for (i, rule) in rules.iter().enumerate() {
        let paths = rule.pointer("/http/paths").and_then(Value::as_array).cloned().unwrap_or_default();
        for (j, p) in paths.iter().enumerate() {
            let pt = p.get("pathType").and_then(Value::as_str).unwrap_or("");
            if !matches!(pt, "Exact" | "Prefix" | "ImplementationSpecific") {
                return Some((
                    format!("spec.rules[{i}].http.paths[{j}].pathType"),
                    format!(
                        "Unsupported value: \"{pt}\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""
                    ),
                ));
            }
        }
    }
    None
}

async fn create(shared: &Shared, ap: &ApiPath, q: &BTreeMap<String, String>, req: Request<Incoming>) -> Response<Body> {
    let mut obj = match read_json(req).await {
        Ok(v) => v,
        Err(e) => return status_error(shared, 400, "BadRequest", &e, None),
    };
    if let Some(ns) = &ap.namespace {
        obj["metadata"]["namespace"] = json!(ns);
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    if ap.resource.plural == INGRESSES.plural {
        if let Some((field, message)) = validate_ingress(&obj) {
            let mut d = details(&ap.resource, Some(&name));
            d["kind"] = json!(ap.resource.kind);
            d["causes"] = json!([{"reason": "FieldValueNotSupported", "message": message, "field": field}]);
            let msg = format!("{} \"{name}\" is invalid: {field}: {message}", ap.resource.qualified_kind());
            return status_error(shared, 422, "Invalid", &msg, Some(d));
        }
    }
    let manager = q.get("fieldManager").cloned().unwrap_or_else(|| "unknown".into());
    let created = shared.store.lock().unwrap().create(ap.resource, obj, &manager);
    match created {
        Ok(o) => json_response(shared, StatusCode::CREATED, &o),
        Err(()) => status_error(
            shared,
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", ap.resource.qualified()),
            Some(details(&ap.resource, Some(&name))),
        ),
    }
}

/// Leaf field paths of a JSON object (`.status.loadBalancer.ingress`): lists
/// and scalars are atomic, as in server-side apply's default list type.
fn field_paths(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                field_paths(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn remove_path(target: &mut Value, path: &str) {
    let parts: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let mut cur = target;
    for p in &parts[..parts.len() - 1] {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(parts[parts.len() - 1]);
    }
}

async fn patch_status(
    shared: &Shared,
    ap: &ApiPath,
    q: &BTreeMap<String, String>,
    req: Request<Incoming>,
) -> Response<Body> {
    let ctype = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let name = ap.name.clone().unwrap_or_default();
    let patch = match read_json(req).await {
        Ok(v) => v,
        Err(e) => return status_error(shared, 400, "BadRequest", &e, None),
    };
    let key = Store::key(&ap.resource, ap.namespace.as_deref().unwrap_or(""), &name);
    let mut store = shared.store.lock().unwrap();
    let Some(obj) = store.objects.get(&key).cloned() else {
        drop(store);
        return not_found(shared, &ap.resource, &name);
    };
    let mut status = obj.get("status").cloned().unwrap_or(json!({}));
    let new_status = patch.get("status").cloned().unwrap_or(json!({}));
    let mut paths = Vec::new();
    field_paths(".status", &new_status, &mut paths);
    let mut owners = store.status_owners.get(&key).cloned().unwrap_or_default();
    match ctype.as_str() {
        "application/merge-patch+json" => {
            merge_patch(&mut status, &new_status);
            let manager = q.get("fieldManager").cloned().unwrap_or_else(|| "unknown".into());
            for p in paths {
                owners.insert(p, manager.clone());
            }
        }
        "application/apply-patch+yaml" => {
            let Some(manager) = q.get("fieldManager").cloned() else {
                drop(store);
                return status_error(
                    shared,
                    400,
                    "BadRequest",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    None,
                );
            };
            let force = q.get("force").map(String::as_str) == Some("true");
            let conflicts: Vec<(&String, &String)> =
                paths.iter().filter_map(|p| owners.get(p).filter(|o| **o != manager).map(|o| (p, o))).collect();
            if !conflicts.is_empty() && !force {
                let api = ap.resource.api_version();
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|(p, o)| json!({"reason": "FieldManagerConflict",
                        "message": format!("conflict with \"{o}\" with subresource \"status\" using {api}"), "field": p}))
                    .collect();
                let first = format!(
                    "conflict with \"{}\" with subresource \"status\" using {api}: {}",
                    conflicts[0].1, conflicts[0].0
                );
                let msg = if conflicts.len() == 1 {
                    format!("Apply failed with 1 conflict: {first}")
                } else {
                    format!("Apply failed with {} conflicts: {first}", conflicts.len())
                };
                drop(store);
                return status_error(shared, 409, "Conflict", &msg, Some(json!({"causes": causes})));
            }
            // Fields this manager owned and no longer applies are removed.
            let dropped: Vec<String> =
                owners.iter().filter(|(p, o)| **o == manager && !paths.contains(p)).map(|(p, _)| p.clone()).collect();
            for p in &dropped {
                remove_path(&mut status, p.trim_start_matches(".status"));
                owners.remove(p);
            }
            merge_patch(&mut status, &new_status);
            for p in paths {
                owners.insert(p, manager.clone());
            }
        }
        other => {
            drop(store);
            return status_error(
                shared,
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
                None,
            );
        }
    }
    store.status_owners.insert(key.clone(), owners);
    let updated = store.set_status(&key, ap.resource, status);
    drop(store);
    json_response(shared, StatusCode::OK, &updated)
}
