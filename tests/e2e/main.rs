//! End-to-end tests: the real devingress binary against the fake API server.

mod controller;
mod daemon;
mod dataplane;
mod dns;
mod faults;
mod fuzz_corpus;
mod gateway;
mod https;
mod installers;
mod kubeconfig;
mod kubectl;
mod loadbalancer;
mod real_cluster;
mod replay;
mod resolver;
mod security;
mod serving;
mod soak;
mod support;
#[cfg(all(feature = "tray", target_os = "linux"))]
mod tray;
