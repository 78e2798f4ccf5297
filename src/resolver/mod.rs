//! Making the OS resolve served hosts to devingress: the hosts-file
//! fallback, which works everywhere but cannot express wildcard hosts, and
//! macOS's per-domain resolver files pointing at devingress's DNS server.
//! (Wiring the per-OS integrations into `up`, and systemd-resolved,
//! NetworkManager and Windows NRPT, come next.)

pub mod hosts;
pub mod resolver_dir;

pub use hosts::HostsFile;
pub use resolver_dir::ResolverDir;
