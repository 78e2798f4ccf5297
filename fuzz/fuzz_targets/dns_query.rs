//! DNS packets through devingress's DNS handler, as hickory-server hands
//! them on. The checks are in checks.rs.

#![no_main]

#[path = "checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dns_query(data));
