//! Table-driven tests of the routing table: every scenario of the routing
//! rules, the examples of the issue, and edge cases.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn ingress(name: &str, created: &str, spec: Value) -> Arc<Ingress> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": spec,
        }))
        .unwrap(),
    )
}

/// A Service with ports `(name, port)`; an empty name is an unnamed port.
fn service(name: &str, ports: &[(&str, i32)]) -> Arc<Service> {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p)| if n.is_empty() { json!({"port": p}) } else { json!({"name": n, "port": p}) })
        .collect();
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"ports": ports}}))
            .unwrap(),
    )
}

/// An EndpointSlice of `svc` whose port `port_name` resolves to `port`, with `(pod, ready)` endpoints.
fn slice(name: &str, svc: &str, port_name: &str, port: i32, pods: &[(&str, Option<bool>)]) -> Arc<EndpointSlice> {
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|(pod, ready)| {
            json!({"addresses": ["10.0.0.1"], "conditions": {"ready": ready},
                   "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}})
        })
        .collect();
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": port_name, "port": port}],
        }))
        .unwrap(),
    )
}

fn backend(svc: &str, port: Value) -> Value {
    json!({"service": {"name": svc, "port": port}})
}

fn path(p: &str, kind: &str, svc: &str) -> Value {
    json!({"path": p, "pathType": kind, "backend": backend(svc, json!({"number": 8080}))})
}

/// Services `svc-a` … that each listen on 8080, with one ready pod named after them.
fn world(svcs: &[&str], ingresses: Vec<Arc<Ingress>>) -> Snapshot {
    Snapshot {
        ingresses,
        services: svcs.iter().map(|s| service(s, &[("", 8080)])).collect(),
        endpoint_slices: svcs.iter().map(|s| slice(&format!("{s}-x"), s, "", 8080, &[(s, Some(true))])).collect(),
        synced: true,
        ..Snapshot::default()
    }
}

/// Asserts where each `(host, path)` goes: `Some(service)` or `None` for 404.
fn assert_routes(table: &RouteTable, cases: &[(&str, &str, Option<&str>)]) {
    for (host, p, want) in cases {
        let got = table.route(&normalize_request_host(host), p).map(|m| m.backend.service.clone());
        assert_eq!(got.as_deref(), *want, "request {host}{p}");
    }
}

fn example_ingresses() -> Vec<Arc<Ingress>> {
    vec![
        ingress(
            "host-ingress",
            "2026-01-01T00:00:00Z",
            json!({
                "defaultBackend": backend("be-default", json!({"number": 8080})),
                "rules": [{"host": "alpaca.example.com", "http": {"paths": [path("/", "Prefix", "alpaca")]}}],
            }),
        ),
        ingress(
            "path-ingress",
            "2026-01-01T00:00:01Z",
            json!({"rules": [{"host": "bandicoot.example.com", "http": {"paths": [
                path("/", "Prefix", "bandicoot"),
                path("/a/", "Prefix", "alpaca"),
            ]}}]}),
        ),
    ]
}

#[test]
fn issue_examples_route_as_stated() {
    let table = build(&world(&["alpaca", "bandicoot", "be-default"], example_ingresses()));
    assert!(table.skipped.is_empty(), "{:?}", table.skipped);
    assert_eq!(table.ingress_count, 2);
    assert_eq!(table.hosts(), ["alpaca.example.com", "bandicoot.example.com"]);
    assert_routes(
        &table,
        &[
            ("alpaca.example.com", "/anything", Some("alpaca")),
            ("alpaca.example.com", "/", Some("alpaca")),
            ("ALPACA.example.com:8080", "/x", Some("alpaca")),
            ("bandicoot.example.com", "/", Some("bandicoot")),
            ("bandicoot.example.com", "/a/x", Some("alpaca")),
            ("bandicoot.example.com", "/a", Some("alpaca")),
            ("bandicoot.example.com", "/ab", Some("bandicoot")),
            ("other.example.com", "/", Some("be-default")),
            ("127.0.0.1", "/", Some("be-default")),
        ],
    );
}

#[test]
fn host_rules_conformance() {
    let table = build(&world(
        &["exact", "wild", "any"],
        vec![ingress(
            "hosts",
            "2026-01-01T00:00:00Z",
            json!({"rules": [
                {"host": "foo.bar.com", "http": {"paths": [path("/", "Prefix", "exact")]}},
                {"host": "*.foo.com", "http": {"paths": [path("/", "Prefix", "wild")]}},
                {"host": "", "http": {"paths": [path("/", "Prefix", "any")]}},
            ]}),
        )],
    ));
    assert_routes(
        &table,
        &[
            ("foo.bar.com", "/", Some("exact")),
            ("FOO.BAR.COM", "/", Some("exact")),
            ("bar.foo.com", "/", Some("wild")),
            ("baz.bar.foo.com", "/", Some("any")),
            ("foo.com", "/", Some("any")),
            ("unknown", "/", Some("any")),
        ],
    );
}

#[test]
fn precise_host_beats_wildcard_and_no_fall_through() {
    let table = build(&world(
        &["exact", "wild", "any"],
        vec![
            ingress(
                "wild",
                "2026-01-01T00:00:00Z",
                json!({"rules": [{"host": "*.example.com", "http": {"paths": [path("/", "Prefix", "wild")]}}]}),
            ),
            ingress(
                "exact",
                "2026-01-01T00:00:01Z",
                json!({"rules": [{"host": "api.example.com", "http": {"paths": [path("/v1", "Prefix", "exact")]}}]}),
            ),
        ],
    ));
    assert_routes(
        &table,
        &[
            ("api.example.com", "/v1/users", Some("exact")),
            // The exact host's group is chosen; its paths do not match, and
            // there is no default backend: 404, not the wildcard.
            ("api.example.com", "/other", None),
            ("www.example.com", "/other", Some("wild")),
        ],
    );
}

#[test]
fn path_types_and_precedence() {
    let table = build(&world(
        &["root", "foo-prefix", "foo-exact", "foobar", "impl", "deep"],
        vec![ingress(
            "paths",
            "2026-01-01T00:00:00Z",
            json!({"rules": [{"host": "p.test", "http": {"paths": [
                path("/", "Prefix", "root"),
                path("/foo", "Prefix", "foo-prefix"),
                path("/foo", "Exact", "foo-exact"),
                path("/foobar", "Exact", "foobar"),
                path("/impl", "ImplementationSpecific", "impl"),
                path("/foo/bar/baz", "Prefix", "deep"),
            ]}}]}),
        )],
    ));
    assert_routes(
        &table,
        &[
            ("p.test", "/foo", Some("foo-exact")),
            ("p.test", "/foo/", Some("foo-prefix")),
            ("p.test", "/foo/x", Some("foo-prefix")),
            ("p.test", "/foobar", Some("foobar")),
            ("p.test", "/foobar/", Some("root")),
            ("p.test", "/foobaz", Some("root")),
            ("p.test", "/impl/x", Some("impl")),
            ("p.test", "/implx", Some("root")),
            ("p.test", "/foo/bar/baz/q", Some("deep")),
            ("p.test", "/foo/bar/bazz", Some("foo-prefix")),
            ("p.test", "/FOO", Some("root")),
        ],
    );
}

#[test]
fn exact_only_host_without_default_is_404() {
    let table = build(&world(
        &["a"],
        vec![ingress(
            "e",
            "2026-01-01T00:00:00Z",
            json!({"rules": [{"host": "e.test", "http": {"paths": [path("/foo", "Exact", "a")]}}]}),
        )],
    ));
    assert_routes(&table, &[("e.test", "/foo", Some("a")), ("e.test", "/foo/", None), ("x.test", "/foo", None)]);
}

#[test]
fn per_host_default_beats_cluster_default() {
    let table = build(&world(
        &["a", "host-default", "global"],
        vec![
            ingress(
                "global",
                "2026-01-01T00:00:00Z",
                json!({"defaultBackend": backend("global", json!({"number": 8080}))}),
            ),
            ingress(
                "hosted",
                "2026-01-01T00:00:01Z",
                json!({
                    "defaultBackend": backend("host-default", json!({"number": 8080})),
                    "rules": [{"host": "h.test", "http": {"paths": [path("/app", "Prefix", "a")]}}],
                }),
            ),
        ],
    ));
    assert_routes(
        &table,
        &[("h.test", "/app", Some("a")), ("h.test", "/other", Some("host-default")), ("x.test", "/", Some("global"))],
    );
    // The rule-less Ingress is the cluster-wide default; the other one's
    // defaultBackend is a competing candidate, and that is reported.
    assert_eq!(table.default_backend.as_ref().unwrap().ingress.name, "global");
    assert!(table.warnings.iter().any(|w| w.contains("cluster-wide default")), "{:?}", table.warnings);
}

#[test]
fn oldest_cluster_default_wins() {
    let table = build(&world(
        &["old", "new"],
        vec![
            ingress(
                "newer",
                "2026-02-01T00:00:00Z",
                json!({"defaultBackend": backend("new", json!({"number": 8080}))}),
            ),
            ingress(
                "older",
                "2026-01-01T00:00:00Z",
                json!({"defaultBackend": backend("old", json!({"number": 8080}))}),
            ),
        ],
    ));
    assert_routes(&table, &[("any.test", "/", Some("old"))]);
    let w = table.warnings.join("\n");
    assert!(w.contains("default/older") && w.contains("default/newer"), "{w}");
}

#[test]
fn rules_for_same_host_merge_and_conflicts_keep_oldest() {
    let table = build(&world(
        &["a", "b", "c"],
        vec![
            ingress(
                "first",
                "2026-01-01T00:00:00Z",
                json!({"rules": [{"host": "m.test", "http": {"paths": [path("/a", "Prefix", "a")]}}]}),
            ),
            ingress(
                "second",
                "2026-01-02T00:00:00Z",
                json!({"rules": [{"host": "M.test", "http": {"paths": [path("/b", "Prefix", "b"), path("/a", "Prefix", "c")]}}]}),
            ),
        ],
    ));
    assert_routes(&table, &[("m.test", "/a", Some("a")), ("m.test", "/b", Some("b"))]);
    assert_eq!(table.hosts(), ["m.test"]);
    assert!(table.warnings.iter().any(|w| w.contains("default/second") && w.contains("default/first")));
}

#[test]
fn no_match_no_default_is_404() {
    let table = build(&world(
        &["a"],
        vec![ingress(
            "x",
            "2026-01-01T00:00:00Z",
            json!({"rules": [{"host": "a.test", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
        )],
    ));
    assert_routes(&table, &[("b.test", "/", None), ("a.test", "/", Some("a"))]);
}

#[test]
fn malformed_ingresses_are_skipped_with_the_field_and_others_keep_working() {
    let mut snap = world(&["good"], vec![]);
    snap.services.push(service("named", &[("http", 80)]));
    let good = ingress(
        "good",
        "2026-01-01T00:00:00Z",
        json!({"rules": [{"host": "good.test", "http": {"paths": [path("/", "Prefix", "good")]}}]}),
    );
    let cases: Vec<(Arc<Ingress>, &str)> = vec![
        (
            ingress(
                "bad-port-name",
                "2026-01-01T00:00:01Z",
                json!({"rules": [{"host": "bad.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend("named", json!({"name": "web"}))}]}}]}),
            ),
            "spec.rules[0].http.paths[0].backend.service.port.name",
        ),
        (
            ingress(
                "bad-port-number",
                "2026-01-01T00:00:01Z",
                json!({"rules": [{"host": "bad.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend("named", json!({"number": 81}))}]}}]}),
            ),
            "spec.rules[0].http.paths[0].backend.service.port.number",
        ),
        (
            ingress(
                "no-backend",
                "2026-01-01T00:00:01Z",
                json!({"rules": [{"host": "bad.test", "http": {"paths": [
                path("/", "Prefix", "good"), {"path": "/x", "pathType": "Prefix", "backend": {}}]}}]}),
            ),
            "spec.rules[0].http.paths[1].backend",
        ),
        (
            ingress(
                "bad-path",
                "2026-01-01T00:00:01Z",
                json!({"rules": [{"host": "bad.test", "http": {"paths": [
                path("relative", "Prefix", "good")]}}]}),
            ),
            "spec.rules[0].http.paths[0].path",
        ),
        (
            ingress(
                "bad-type",
                "2026-01-01T00:00:01Z",
                json!({"rules": [{"host": "bad.test", "http": {"paths": [
                path("/", "Bogus", "good")]}}]}),
            ),
            "spec.rules[0].http.paths[0].pathType",
        ),
        (
            ingress(
                "bad-host",
                "2026-01-01T00:00:01Z",
                json!({"rules": [{"host": "foo.*.test", "http": {"paths": [
                path("/", "Prefix", "good")]}}]}),
            ),
            "spec.rules[0].host",
        ),
        (
            ingress("no-port", "2026-01-01T00:00:01Z", json!({"defaultBackend": {"service": {"name": "good"}}})),
            "spec.defaultBackend.service.port",
        ),
        (ingress("empty", "2026-01-01T00:00:01Z", json!({})), "spec"),
    ];
    for (bad, field) in cases {
        snap.ingresses = vec![good.clone(), bad.clone()];
        let table = build(&snap);
        assert_eq!(table.skipped.len(), 1, "{field}");
        let s = &table.skipped[0];
        assert_eq!(s.ingress, IngressKey::of(&*bad));
        assert_eq!(s.field, field);
        assert!(!s.reason.is_empty());
        assert_eq!(table.ingress_count, 1);
        assert_routes(&table, &[("good.test", "/", Some("good")), ("bad.test", "/", None)]);
    }
}

#[test]
fn named_service_port_and_named_target_port_differ_per_pod() {
    let snap = Snapshot {
        ingresses: vec![ingress(
            "named",
            "2026-01-01T00:00:00Z",
            json!({"rules": [{"host": "n.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend("web", json!({"name": "http"}))}]}}]}),
        )],
        services: vec![service("web", &[("http", 80), ("metrics", 9090)])],
        endpoint_slices: vec![
            slice("web-a", "web", "http", 8080, &[("web-0", Some(true)), ("web-1", None)]),
            slice("web-b", "web", "http", 8081, &[("web-2", Some(true)), ("web-3", Some(false))]),
            slice("web-m", "web", "metrics", 9090, &[("web-0", Some(true))]),
            slice("other", "other", "http", 1, &[("other-0", Some(true))]),
        ],
        synced: true,
        ..Snapshot::default()
    };
    let table = build(&snap);
    let m = table.route("n.test", "/").unwrap();
    let Target::Pods { ready, not_ready, .. } = &m.backend.target else { panic!("{:?}", m.backend.target) };
    let got: Vec<String> = ready.iter().map(|e| format!("{}:{}", e.pod, e.port)).collect();
    assert_eq!(got, ["web-0:8080", "web-1:8080", "web-2:8081"]);
    assert_eq!(*not_ready, 1);
}

#[test]
fn dual_stack_slices_do_not_double_count_pods() {
    let mut snap = world(
        &["a"],
        vec![ingress("x", "2026-01-01T00:00:00Z", json!({"defaultBackend": backend("a", json!({"number": 8080}))}))],
    );
    snap.endpoint_slices.push(slice("a-v6", "a", "", 8080, &[("a", Some(true))]));
    let table = build(&snap);
    assert_eq!(table.route("x", "/").unwrap().backend.ready_count(), 1);
}

#[test]
fn round_robin_spreads_over_all_ready_pods() {
    let pods: Vec<String> = (0..10).map(|i| format!("web-{i}")).collect();
    let eps: Vec<(&str, Option<bool>)> = pods.iter().map(|p| (p.as_str(), Some(true))).collect();
    let snap = Snapshot {
        ingresses: vec![ingress(
            "x",
            "2026-01-01T00:00:00Z",
            json!({"defaultBackend": backend("web", json!({"number": 8080}))}),
        )],
        services: vec![service("web", &[("", 8080)])],
        endpoint_slices: vec![slice("web-x", "web", "", 8080, &eps)],
        synced: true,
        ..Snapshot::default()
    };
    let table = build(&snap);
    let b = table.route("any", "/").unwrap().backend;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        seen.insert(b.pick().unwrap().pod.clone());
    }
    assert_eq!(seen.len(), 10);
}

#[test]
fn missing_service_unsupported_backends_and_no_ready_pods() {
    let mut snap = world(&[], vec![]);
    let mut ext = (*service("ext", &[("", 80)])).clone();
    ext.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
    ext.spec.as_mut().unwrap().external_name = Some("example.org".into());
    snap.services.push(Arc::new(ext));
    snap.services.push(service("idle", &[("", 8080)]));
    snap.endpoint_slices.push(slice("idle-x", "idle", "", 8080, &[("idle-0", Some(false))]));
    snap.ingresses = vec![ingress(
        "mixed",
        "2026-01-01T00:00:00Z",
        json!({"rules": [{"host": "m.test", "http": {"paths": [
            path("/missing", "Prefix", "nope"),
            {"path": "/ext", "pathType": "Prefix", "backend": backend("ext", json!({"number": 80}))},
            {"path": "/bucket", "pathType": "Prefix", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"}}},
            path("/idle", "Prefix", "idle"),
        ]}}]}),
    )];
    let table = build(&snap);
    assert!(table.skipped.is_empty());
    assert_eq!(table.route("m.test", "/missing").unwrap().backend.target, Target::ServiceMissing);
    assert!(
        matches!(&table.route("m.test", "/ext").unwrap().backend.target, Target::Unsupported(w) if w.contains("ExternalName"))
    );
    assert!(
        matches!(&table.route("m.test", "/bucket").unwrap().backend.target, Target::Unsupported(w) if w.contains("resource"))
    );
    let idle = table.route("m.test", "/idle").unwrap().backend;
    assert_eq!(idle.ready_count(), 0);
    assert!(idle.pick().is_none());
    assert_eq!(table.warnings.iter().filter(|w| w.contains("default/mixed")).count(), 2, "{:?}", table.warnings);
}

#[test]
fn host_without_http_uses_its_default_backend() {
    let table = build(&world(
        &["d"],
        vec![ingress(
            "h",
            "2026-01-01T00:00:00Z",
            json!({"defaultBackend": backend("d", json!({"number": 8080})), "rules": [{"host": "only.test"}]}),
        )],
    ));
    assert_eq!(table.hosts(), ["only.test"]);
    assert_routes(&table, &[("only.test", "/x", Some("d"))]);
}

#[test]
fn backends_are_shared_between_routes() {
    let table = build(&world(&["alpaca", "bandicoot", "be-default"], example_ingresses()));
    let a1 = table.route("alpaca.example.com", "/").unwrap().backend;
    let a2 = table.route("bandicoot.example.com", "/a/").unwrap().backend;
    assert!(Arc::ptr_eq(a1, a2));
    assert_eq!(table.backends().len(), 3);
}

#[test]
fn unsynced_snapshot_is_flagged() {
    let table = build(&Snapshot::default());
    assert!(!table.synced);
    assert!(table.route("a", "/").is_none());
}

#[test]
fn requests_count_under_the_served_host_pattern() {
    let t = crate::routes::table_for_hosts(&["alpaca.example.com", "*.apps.test"]);
    assert_eq!(t.served_as("alpaca.example.com").as_deref(), Some("alpaca.example.com"));
    assert_eq!(t.served_as("web.apps.test").as_deref(), Some("*.apps.test"));
    assert_eq!(t.served_as("deep.web.apps.test"), None, "a wildcard covers one label");
    assert_eq!(t.served_as("other.test"), None);
}

#[test]
fn served_hosts_merge_ingress_and_gateway_names_and_gateway_wildcards_reach_any_depth() {
    let ingress_wild = ServedHost::Wildcard { suffix: "apps.test".into(), any_depth: false };
    assert!(ingress_wild.matches("a.apps.test"));
    assert!(!ingress_wild.matches("a.b.apps.test"), "an Ingress wildcard covers one label");
    assert!(!ingress_wild.matches("apps.test"));
    let gateway_wild = ServedHost::Wildcard { suffix: "apps.test".into(), any_depth: true };
    assert!(gateway_wild.matches("a.b.apps.test"), "a Gateway wildcard covers any depth");
    assert!(!gateway_wild.matches("xapps.test"));
    assert_eq!(gateway_wild.to_string(), "*.apps.test");
    assert_eq!(gateway_wild.zone(), "apps.test");
    let t = table_for_hosts(&["alpaca.example.com", "*.apps.test", ""]);
    assert_eq!(
        t.served_hosts,
        [
            ServedHost::Exact("alpaca.example.com".into()),
            ServedHost::Wildcard { suffix: "apps.test".into(), any_depth: false }
        ],
        "the catch-all host names nothing"
    );
}
