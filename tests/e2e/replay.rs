//! The fake API server replays the recorded kube-apiserver exchanges: the
//! same requests get answers of the same shape, status, headers and events.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::support::apiserver::FakeApiServer;
use crate::support::apiserver::resources::{
    ENDPOINT_SLICES, INGRESS_CLASSES, INGRESSES, PODS, ResourceType, SECRETS, SERVICES,
};
use crate::support::transcript::{Exchange, load};

/// Values that differ between any two servers (ids, versions, clocks).
const VOLATILE: &[&str] = &["uid", "resourceVersion", "creationTimestamp", "time", "continue", "generation"];

/// Asserts that `got` has the recorded shape: the same keys everywhere,
/// the same values except volatile ones, and managedFields present.
fn assert_same_shape(want: &Value, got: &Value, at: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<&String> = w.keys().collect();
            let gk: Vec<&String> = g.keys().collect();
            let mut ws = wk.clone();
            ws.sort();
            let mut gs = gk.clone();
            gs.sort();
            assert_eq!(ws, gs, "keys at {at}");
            for (k, wv) in w {
                if VOLATILE.contains(&k.as_str()) {
                    continue;
                }
                if k == "managedFields" {
                    assert!(g[k].is_array(), "managedFields at {at}");
                    continue;
                }
                assert_same_shape(wv, &g[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "length at {at}");
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                assert_same_shape(wv, gv, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "value at {at}"),
    }
}

/// Header names of a response, without the volatile `date`, with
/// content-length and chunked framing counted as the same thing.
fn header_names(headers: impl Iterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = headers
        .map(|h| h.to_lowercase())
        .map(|h| if h == "transfer-encoding" { "content-length".into() } else { h })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Stores an object from a recording as it was (minus server-set fields).
fn seed(api: &FakeApiServer, resource: ResourceType, obj: &Value) {
    let mut obj = obj.clone();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["uid", "resourceVersion", "managedFields", "generation"] {
            m.remove(k);
        }
    }
    api.apply(resource, obj);
}

/// The objects of the recording: Services, EndpointSlice, Secret and pods in `demo`.
async fn recorded_cluster() -> FakeApiServer {
    let api = FakeApiServer::start().await;
    for item in load("02")[0].body.as_ref().unwrap()["items"].as_array().unwrap() {
        seed(&api, SERVICES, item);
    }
    for item in load("03")[0].body.as_ref().unwrap()["items"].as_array().unwrap() {
        seed(&api, ENDPOINT_SLICES, item);
    }
    seed(&api, SECRETS, load("54")[0].body.as_ref().unwrap());
    for pod in ["web-0", "web-1", "refuse-0"] {
        api.apply(PODS, json!({"metadata": {"name": pod, "namespace": "demo"}, "spec": {"containers": []}}));
    }
    api
}

/// Sends the recorded request and checks status, headers and body.
async fn replay(api: &FakeApiServer, ex: &Exchange, exact_body: bool) -> Value {
    let res = api.raw(&ex.method, &ex.target, &ex.request_headers, ex.request_body.clone()).await;
    assert_eq!(res.status().as_u16(), ex.status, "{} {}", ex.method, ex.target);
    let want = header_names(ex.response_headers.iter().map(|(k, _)| k.clone()));
    let got = header_names(res.headers().keys().map(|k| k.to_string()));
    assert_eq!(want, got, "headers of {} {}", ex.method, ex.target);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "no-cache, private");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes.last(), Some(&b'\n'), "compact JSON and one newline");
    assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1, "compact JSON");
    let got: Value = serde_json::from_slice(&bytes).unwrap();
    let want = ex.body.as_ref().expect("recorded body");
    if exact_body {
        assert_eq!(&got, want, "{} {}", ex.method, ex.target);
    } else {
        assert_same_shape(want, &got, "$");
    }
    got
}

#[tokio::test]
async fn lists_match_the_recordings() {
    let api = recorded_cluster().await;
    replay(&api, &load("01")[0], false).await;
    replay(&api, &load("02")[0], false).await;
    replay(&api, &load("03")[0], false).await;
    replay(&api, &load("04")[0], false).await;
    // Pagination: the recorded Ingresses, one per page, with the recorded continue token.
    let page1 = &load("05a")[0];
    let page2 = &load("05b")[0];
    seed(&api, INGRESSES, &page1.body.as_ref().unwrap()["items"][0]);
    seed(&api, INGRESSES, &page2.body.as_ref().unwrap()["items"][0]);
    let got = replay(&api, page1, false).await;
    assert_eq!(got["metadata"]["remainingItemCount"], 1);
    replay(&api, page2, false).await;
    replay(&api, &load("05c")[0], true).await;
}

#[tokio::test]
async fn gets_creates_and_errors_match_the_recordings() {
    let api = recorded_cluster().await;
    replay(&api, &load("53")[0], true).await;
    replay(&api, &load("54")[0], false).await;
    replay(&api, &load("50")[0], false).await;
    replay(&api, &load("51")[0], true).await;
    replay(&api, &load("52")[0], true).await;
    replay(&api, &load("72")[0], true).await;
    let denied = FakeApiServer::start().await;
    for plural in ["ingresses", "secrets", "pods"] {
        denied.forbid(plural);
    }
    denied.apply(INGRESSES, json!({"metadata": {"name": "web", "namespace": "demo"}, "spec": {}}));
    for file in ["60", "61", "62", "63", "64"] {
        replay(&denied, &load(file)[0], true).await;
    }
}

#[tokio::test]
async fn status_patches_match_the_recordings() {
    let api = recorded_cluster().await;
    let merged = &load("40")[0];
    let mut web = merged.body.clone().unwrap();
    web.as_object_mut().unwrap().remove("status");
    seed(&api, INGRESSES, &web);
    let got = replay(&api, merged, false).await;
    assert_eq!(got["status"], json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}));
    // devingress applying the same field: conflict with manager "unknown", then forced.
    replay(&api, &load("41")[0], true).await;
    let forced = &load("42")[0];
    let got = replay(&api, forced, false).await;
    assert_eq!(got["status"], forced.body.as_ref().unwrap()["status"]);
}

/// Reads watch events until `n` have arrived (or the stream ends).
async fn read_events(body: &mut hyper::body::Incoming, n: usize) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut events = Vec::new();
    while events.len() < n {
        let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(10), body.frame()).await else { break };
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            buf.extend_from_slice(data);
        }
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            events.push(serde_json::from_slice(&line).unwrap());
        }
    }
    events
}

/// Applies a recorded watch event to the fake as the change that caused it.
fn perform(api: &FakeApiServer, resource: ResourceType, ev: &Value) {
    let obj = &ev["object"];
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    let name = obj["metadata"]["name"].as_str().unwrap();
    match ev["type"].as_str().unwrap() {
        "DELETED" => {
            api.delete(resource, ns, name).expect("exists");
        }
        _ => {
            let before = api.get(resource, ns, name);
            let mut spec_only = obj.clone();
            spec_only.as_object_mut().unwrap().remove("status");
            if before.as_ref().map(|b| Value::Null != b["metadata"]["name"]).unwrap_or(false)
                && before.as_ref().unwrap().get("status") != obj.get("status")
                && before.as_ref().unwrap().get("spec") == obj.get("spec")
            {
                let key = crate::support::apiserver::store::Store::key(&resource, ns, name);
                api.shared.store.lock().unwrap().set_status(&key, resource, obj["status"].clone());
            } else {
                seed(api, resource, &spec_only);
                if let Some(status) =
                    obj.get("status").filter(|s| before.is_some() || **s != json!({"loadBalancer": {}}))
                {
                    let key = crate::support::apiserver::store::Store::key(&resource, ns, name);
                    let now = api.get(resource, ns, name).unwrap();
                    if now.get("status") != Some(status) {
                        api.shared.store.lock().unwrap().set_status(&key, resource, status.clone());
                    }
                }
            }
        }
    }
}

/// What must match between a recorded and a replayed event.
fn essence(ev: &Value) -> Value {
    let o = &ev["object"];
    let mut annotations = o["metadata"]["annotations"].clone();
    if let Some(a) = annotations.as_object_mut() {
        a.remove("endpoints.kubernetes.io/last-change-trigger-time");
    }
    json!({"type": ev["type"], "kind": o["kind"], "apiVersion": o["apiVersion"],
           "name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"], "annotations": annotations,
           "spec": o["spec"], "status": o["status"], "endpoints": o["endpoints"], "ports": o["ports"]})
}

async fn replay_watch(api: &FakeApiServer, file: &str, resource: ResourceType) {
    let ex = &load(file)[0];
    let recorded: Vec<&Value> = ex.events.iter().filter(|e| e["type"] != "BOOKMARK").collect();
    let rv = api.shared.store.lock().unwrap().rv;
    let target =
        ex.target.replace(&format!("resourceVersion={}", target_rv(&ex.target)), &format!("resourceVersion={rv}"));
    let res = api.raw(&ex.method, &target, &ex.request_headers, None).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        header_names(res.headers().keys().map(|k| k.to_string())),
        header_names(ex.response_headers.iter().map(|(k, _)| k.clone()))
    );
    assert!(res.headers().get("content-length").is_none(), "a watch is chunked");
    let mut body = res.into_body();
    for ev in &recorded {
        perform(api, resource, ev);
    }
    let got = read_events(&mut body, recorded.len()).await;
    assert_eq!(got.len(), recorded.len(), "{file}: {got:#?}");
    let mut last_rv = rv;
    for (want, got) in recorded.iter().zip(&got) {
        assert_eq!(essence(want), essence(got), "{file}");
        let got_rv: u64 = got["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        assert!(got_rv > last_rv, "resourceVersions increase");
        last_rv = got_rv;
    }
}

fn target_rv(target: &str) -> String {
    target.split("resourceVersion=").nth(1).unwrap_or("").split('&').next().unwrap_or("").to_string()
}

#[tokio::test]
async fn watch_events_match_the_recordings() {
    let api = recorded_cluster().await;
    replay_watch(&api, "10", INGRESSES).await;
    // 11 starts from the recorded slice with both pods ready.
    replay_watch(&api, "11", ENDPOINT_SLICES).await;
    replay_watch(&api, "12", INGRESS_CLASSES).await;
}

#[tokio::test]
async fn streaming_lists_send_initial_events_then_the_annotated_bookmark() {
    let api = recorded_cluster().await;
    for (file, resource) in [("21", SERVICES), ("22", ENDPOINT_SLICES)] {
        let ex = &load(file)[0];
        let res = api.raw(&ex.method, &ex.target, &ex.request_headers, None).await;
        assert_eq!(res.status().as_u16(), 200);
        let mut body = res.into_body();
        let initial: Vec<&Value> = ex.events.iter().take_while(|e| e["type"] == "ADDED").collect();
        let got = read_events(&mut body, initial.len() + 1).await;
        for (want, got) in initial.iter().zip(&got) {
            assert_eq!(want["object"]["metadata"]["name"], got["object"]["metadata"]["name"], "{file}");
            assert_eq!(got["type"], "ADDED");
            assert_eq!(got["object"]["kind"], resource.kind);
        }
        let bookmark = &got[initial.len()];
        assert_eq!(bookmark["type"], "BOOKMARK", "{file}");
        assert_eq!(bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    }
}

#[tokio::test]
async fn watches_end_at_their_timeout_and_too_old_versions_get_410_in_stream() {
    let api = recorded_cluster().await;
    let ex = &load("14")[0];
    let rv = api.shared.store.lock().unwrap().rv;
    let target = format!(
        "/apis/networking.k8s.io/v1/ingresses?&watch=true&timeoutSeconds=1&allowWatchBookmarks=true&resourceVersion={rv}"
    );
    let res = api.raw("GET", &target, &ex.request_headers, None).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), res.into_body().collect()).await;
    assert!(ended.expect("ends at timeoutSeconds").is_ok(), "ends with the terminating chunk");

    let ex = &load("30")[0];
    api.shared.store.lock().unwrap().compact();
    let res = api.raw(&ex.method, &ex.target, &ex.request_headers, None).await;
    assert_eq!(res.status().as_u16(), 200, "a 410 comes in the stream, not as the HTTP status");
    let bytes =
        tokio::time::timeout(Duration::from_secs(10), res.into_body().collect()).await.unwrap().unwrap().to_bytes();
    let got: Value = serde_json::from_slice(&bytes).unwrap();
    let mut want = ex.events[0].clone();
    let now = api.shared.store.lock().unwrap().oldest_rv;
    want["object"]["message"] = json!(format!("too old resource version: 1 ({now})"));
    assert_eq!(got, want);
}

#[tokio::test]
async fn kube_watcher_relists_after_a_restart_as_recorded() {
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::runtime::{WatchStreamExt, watcher};
    let api = recorded_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let opts = devingress::kubeclient::KubeOptions { kubeconfig: Some(kubeconfig), context: None };
    let (client, _) = devingress::kubeclient::connect(&opts).await.unwrap();
    let ingresses: kube::Api<Ingress> = kube::Api::all(client);
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(ingresses, watcher::Config::default()).default_backoff().reflect(writer);
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    assert!(
        crate::support::devingress::eventually(Duration::from_secs(10), || async { api.requests().len() >= 2 }).await
    );
    let requests = api.requests();
    assert_eq!(requests[0], "GET /apis/networking.k8s.io/v1/ingresses?&limit=500", "{requests:?}");
    assert!(requests[1].starts_with("GET /apis/networking.k8s.io/v1/ingresses?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion="));

    api.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    seed(&api, INGRESSES, &load("05b")[0].body.as_ref().unwrap()["items"][0]);
    api.restart().await;
    let relisted =
        crate::support::devingress::eventually(Duration::from_secs(30), || async { reader.state().len() == 1 }).await;
    assert!(relisted, "watcher recovered the object created while the server was down");
    let after: Vec<String> = api.requests().into_iter().skip(requests.len()).collect();
    assert!(after.iter().any(|r| r.contains("watch=true") && r.contains("resourceVersion=")), "{after:?}");
    assert!(after.iter().any(|r| r == "GET /apis/networking.k8s.io/v1/ingresses?&limit=500"), "re-listed: {after:?}");
    task.abort();
}

async fn portforward_session(
    api: &FakeApiServer,
    ex: &Exchange,
) -> (http::Response<hyper::body::Incoming>, Vec<(bool, Vec<u8>)>) {
    let mut res = api.raw(&ex.method, &ex.target, &ex.request_headers, None).await;
    assert_eq!(res.status().as_u16(), 101);
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    let mut frames = Vec::new();
    for (to_client, _, payload) in &ex.frames {
        if !to_client {
            ws.send(Message::binary(payload.clone())).await.unwrap();
        }
    }
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match msg {
            Message::Binary(b) => frames.push((false, b.to_vec())),
            Message::Close(c) => {
                let c = c.expect("close frame with a code");
                assert_eq!(u16::from(c.code), 1000);
                assert_eq!(c.reason.as_str(), "");
                frames.push((true, Vec::new()));
                break;
            }
            _ => {}
        }
    }
    (res, frames)
}

#[tokio::test]
async fn portforward_frames_match_the_recordings() {
    let api = recorded_cluster().await;
    // A pod that answers like the recorded one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    api.set_backend("demo", "web-0", 8080, listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-type: text/plain\r\nContent-Length: 17\r\n\r\nhello from web-0\n")
            .await
            .unwrap();
    });
    let ex = &load("70")[0];
    let (res, frames) = portforward_session(&api, ex).await;
    for (k, v) in &ex.response_headers {
        assert_eq!(res.headers()[k.as_str()], v.as_str(), "{k}");
    }
    assert_eq!(
        header_names(res.headers().keys().map(|k| k.to_string())),
        header_names(ex.response_headers.iter().map(|(k, _)| k.clone()))
    );
    assert_eq!(frames[0].1, b"\x00\x90\x1f");
    assert_eq!(frames[1].1, b"\x01\x90\x1f");
    let data: Vec<u8> = frames[2..]
        .iter()
        .filter(|(close, _)| !close)
        .flat_map(|(_, b)| {
            assert_eq!(b[0], 0, "data on channel 0");
            b[1..].to_vec()
        })
        .collect();
    assert!(String::from_utf8_lossy(&data).ends_with("\r\n\r\nhello from web-0\n"));
    assert!(frames.last().unwrap().0, "ends with close 1000");

    // Nothing listens: the error channel says so, then close 1000.
    let ex = &load("71")[0];
    let (_, frames) = portforward_session(&api, ex).await;
    let uid = api.get(PODS, "demo", "refuse-0").unwrap()["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(frames.len(), 4, "{frames:?}");
    let text = String::from_utf8_lossy(&frames[2].1[1..]).into_owned();
    assert_eq!(frames[2].1[0], 1, "error channel");
    assert!(text.starts_with(&format!("error forwarding port 8080 to pod refuse-0, uid {uid}: ")), "{text}");
    let recorded = String::from_utf8_lossy(
        &ex.frames.iter().find(|f| f.0 && f.2.first() == Some(&1) && f.2.len() > 3).unwrap().2[1..],
    )
    .into_owned();
    assert!(recorded.starts_with("error forwarding port 8080 to pod refuse-0, uid "));
    assert!(frames[3].0);
}
