//! Test support: a fake API server, pod servers, and the devingress binary.
#![allow(dead_code)]

pub mod apiserver;
pub mod bench;
pub mod cluster;
pub mod devingress;
pub mod kubectl;
pub mod pods;
pub mod transcript;
