//! End-to-end tests: the real devingress binary against the fake API server.

mod controller;
mod replay;
mod serving;
mod support;
