//! Lines of the control-socket protocol. The checks are in checks.rs.

#![no_main]

#[path = "checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::control_line(data));
