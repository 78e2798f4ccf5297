//! Arbitrary Ingress, IngressClass, Service, EndpointSlice and Gateway API
//! objects (a JSON array) through the routing table builder. The checks are in checks.rs.

#![no_main]

#[path = "checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::routing_table(data));
