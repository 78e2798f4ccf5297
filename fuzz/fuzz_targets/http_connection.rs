//! One HTTP/1.1 client connection's bytes through devingress's proxy, with
//! the fake API server and the pods in this process. The world and the
//! check are in http_world.rs.

#![no_main]

// The fake cluster of tests/e2e/support: the API server and its helpers,
// under the names the e2e tests give them.
#[path = "../../tests/e2e/support/apiserver/mod.rs"]
#[allow(dead_code, unused_imports)]
mod apiserver;
#[path = "../../tests/e2e/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[path = "../../tests/e2e/support/pods.rs"]
#[allow(dead_code)]
mod pods;
mod support {
    pub(crate) use super::cluster;
}

#[allow(dead_code)]
mod http_world;

libfuzzer_sys::fuzz_target!(|data: &[u8]| http_world::http_connection(data));
