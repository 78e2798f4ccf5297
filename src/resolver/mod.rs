//! Making the OS resolve served hosts to devingress. So far: the hosts-file
//! fallback, which works everywhere but cannot express wildcard hosts.
//! (Per-OS integrations with the DNS server come next.)

pub mod hosts;

pub use hosts::HostsFile;
