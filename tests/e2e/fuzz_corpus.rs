//! The fuzz targets' checks (fuzz/fuzz_targets/checks.rs and, for
//! http_connection, http_world.rs) over their seed corpus and over every
//! input a fuzz run found to crash (fuzz/regressions), so that each crash
//! stays fixed.

#[path = "../../fuzz/fuzz_targets/checks.rs"]
mod checks;
#[path = "../../fuzz/fuzz_targets/http_world.rs"]
mod http_world;

use std::path::Path;

/// Runs `check` on every file of fuzz/corpus/`target` and
/// fuzz/regressions/`target`; returns how many.
fn run(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", e.path().display());
            n += 1;
        }
    }
    n
}

#[test]
fn routing_table_corpus_and_regressions() {
    assert!(run("routing_table", checks::routing_table) >= 4);
}

#[test]
fn dns_query_corpus() {
    assert!(run("dns_query", checks::dns_query) >= 7);
}

#[test]
fn control_line_corpus() {
    assert!(run("control_line", checks::control_line) >= 6);
}

#[test]
fn client_hello_corpus() {
    assert!(run("client_hello", checks::client_hello) >= 4);
}

/// The HTTP/1.1 connections, through the proxy in this process: the seeds
/// include requests each pod's rule serves, so both pods are reached.
#[test]
fn http_connection_corpus() {
    assert!(run("http_connection", http_world::http_connection) >= 20);
    let reached = http_world::reached();
    for service in ["web", "api"] {
        assert!(reached.contains(service), "no seed reached a pod of {service}: {reached:?}");
    }
}

/// Queries for a served name, a name under its domain and one under a
/// wildcard's domain two labels down: devingress answers only the served
/// one (the check panics on an address for a name not served).
#[test]
fn dns_answers_pass_the_check_for_served_and_unserved_names() {
    let query = |name: &str| {
        let mut m = hickory_proto::op::Message::query();
        m.add_query(hickory_proto::op::Query::query(name.parse().unwrap(), hickory_proto::rr::RecordType::A));
        m.to_vec().unwrap()
    };
    for name in ["alpaca.example.com.", "evil.example.com.", "a.b.apps.test.", "x.apps.test.", "apps.test."] {
        checks::dns_query(&query(name));
    }
    // Through the handler: two queries in one message get FORMERR, another
    // opcode NOTIMP (the check asserts the codes).
    let mut two = hickory_proto::op::Message::query();
    for name in ["alpaca.example.com.", "x.apps.test."] {
        two.add_query(hickory_proto::op::Query::query(name.parse().unwrap(), hickory_proto::rr::RecordType::A));
    }
    checks::dns_query(&two.to_vec().unwrap());
    let mut update = hickory_proto::op::Message::query();
    update.metadata.op_code = hickory_proto::op::OpCode::Update;
    checks::dns_query(&update.to_vec().unwrap());
    // A question whose name is a compression pointer into the header (to
    // offset 2, a zero byte in the query's flags: the root name). The
    // response's flags differ there, so a question echoed byte for byte
    // read as another name, or none (the fuzzer found it).
    checks::dns_query(&[0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x02, 0, 1, 0, 1]);
}
