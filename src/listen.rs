//! Binding the listening ports, with a fallback for the default privileged
//! ports and a message that names the fix when binding fails.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

/// What a user must hear before devingress listens on `addr`, when it is
/// not a loopback address: everyone who can reach it can reach the cluster.
pub fn exposure_warning(addr: IpAddr) -> Option<String> {
    if addr.is_loopback() {
        return None;
    }
    let who = if addr.is_unspecified() {
        "anyone who can reach any address of this machine (every network it is on)".to_string()
    } else {
        format!("anyone who can reach {addr} (everyone on that network)")
    };
    Some(format!(
        "--listen {addr} is not a loopback address: {who} can reach the cluster through devingress, \
         every served host and every LoadBalancer Service, with your cluster credentials. \
         Leave --listen at 127.0.0.1 unless that is what you want."
    ))
}

/// Why a port could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another program listens there.
    #[error("{addr} is already in use by another program: stop it, or choose another port with {flag}")]
    InUse {
        /// The address.
        addr: SocketAddr,
        /// The flag that sets this port.
        flag: &'static str,
    },
    /// The port is below 1024 and the process may not bind it.
    #[error(
        "binding {addr} needs privileges: ports below 1024 need CAP_NET_BIND_SERVICE. \
         Grant it once with `devingress setup` (it runs `sudo setcap cap_net_bind_service=+ep {exe}`), \
         or choose a port of 1024 or above with {flag}"
    )]
    NeedsPrivilege {
        /// The address.
        addr: SocketAddr,
        /// The flag that sets this port.
        flag: &'static str,
        /// This executable, for the setcap command.
        exe: String,
    },
    /// The address is not on this machine.
    #[error("{addr} is not an address of this machine: choose another with --listen")]
    NotLocal {
        /// The address.
        addr: SocketAddr,
    },
    /// Anything else.
    #[error("cannot listen on {addr}: {source}")]
    Other {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl BindError {
    fn new(addr: SocketAddr, flag: &'static str, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::AddrInUse => BindError::InUse { addr, flag },
            io::ErrorKind::PermissionDenied => BindError::NeedsPrivilege { addr, flag, exe: current_exe() },
            io::ErrorKind::AddrNotAvailable => BindError::NotLocal { addr },
            _ => BindError::Other { addr, source },
        }
    }

    /// Whether the default port may be replaced by its fallback after this error.
    pub fn allows_fallback(&self) -> bool {
        matches!(self, BindError::InUse { .. } | BindError::NeedsPrivilege { .. })
    }
}

/// What went wrong binding a port that devingress takes while it runs (a
/// LoadBalancer Service's, a Gateway listener's), which it tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProblem {
    /// Another program (or devingress itself) has the port.
    InUse,
    /// A port below 1024 without the capability.
    NeedsPrivilege,
    /// Anything else.
    Other,
}

/// Binds `addr` now, for use on the running runtime.
pub fn bind_now(addr: SocketAddr) -> io::Result<TcpListener> {
    std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)).and_then(TcpListener::from_std)
}

/// A failure of [`bind_now`] in the user's words, with the fix.
pub fn port_problem(addr: SocketAddr, e: &io::Error) -> (PortProblem, String) {
    match e.kind() {
        io::ErrorKind::AddrInUse => (
            PortProblem::InUse,
            format!("{addr} is in use by another program; devingress takes it as soon as it is free"),
        ),
        io::ErrorKind::PermissionDenied => (
            PortProblem::NeedsPrivilege,
            format!(
                "port {} needs privileges: run `devingress setup` once (it lets devingress bind ports below 1024)",
                addr.port()
            ),
        ),
        _ => (PortProblem::Other, format!("cannot listen on {addr}: {e}")),
    }
}

fn current_exe() -> String {
    std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "$(command -v devingress)".into())
}

/// A port setting: what the user chose, or the default and its fallback.
#[derive(Debug, Clone, Copy)]
pub struct PortChoice {
    /// The port the user gave, if any. An explicit port never falls back.
    pub explicit: Option<u16>,
    /// The default port (80 for HTTP).
    pub default: u16,
    /// Where the default falls back to (8080 for HTTP).
    pub fallback: u16,
    /// The flag that sets the port, for messages.
    pub flag: &'static str,
}

/// Binds the port, falling back from the default when it is taken or needs
/// privileges, and saying so with the fix.
pub async fn bind(ip: IpAddr, choice: PortChoice) -> Result<TcpListener, BindError> {
    if let Some(port) = choice.explicit {
        let addr = SocketAddr::new(ip, port);
        return TcpListener::bind(addr).await.map_err(|e| BindError::new(addr, choice.flag, e));
    }
    let addr = SocketAddr::new(ip, choice.default);
    match TcpListener::bind(addr).await.map_err(|e| BindError::new(addr, choice.flag, e)) {
        Ok(l) => Ok(l),
        Err(e) if e.allows_fallback() => {
            let fallback = SocketAddr::new(ip, choice.fallback);
            let l = TcpListener::bind(fallback).await.map_err(|e| BindError::new(fallback, choice.flag, e))?;
            tracing::warn!("{e}. Using port {} instead for now.", choice.fallback);
            Ok(l)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_loopback_addresses_are_warned_about() {
        for quiet in ["127.0.0.1", "127.0.0.2", "::1"] {
            assert_eq!(exposure_warning(quiet.parse().unwrap()), None, "{quiet}");
        }
        let all = exposure_warning("0.0.0.0".parse().unwrap()).unwrap();
        assert!(all.contains("any address of this machine") && all.contains("cluster credentials"), "{all}");
        let lan = exposure_warning("192.168.1.20".parse().unwrap()).unwrap();
        assert!(lan.contains("anyone who can reach 192.168.1.20"), "{lan}");
        assert!(exposure_warning("::".parse().unwrap()).is_some());
    }

    #[tokio::test]
    async fn taken_explicit_port_names_the_cause() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let choice = PortChoice { explicit: Some(port), default: 80, fallback: 8080, flag: "--http-port" };
        let err = bind("127.0.0.1".parse().unwrap(), choice).await.unwrap_err();
        assert!(matches!(err, BindError::InUse { .. }));
        let msg = err.to_string();
        assert!(msg.contains("already in use") && msg.contains("--http-port"), "{msg}");
    }

    #[tokio::test]
    async fn taken_default_port_falls_back() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fallback = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fallback_port = fallback.local_addr().unwrap().port();
        drop(fallback);
        let choice = PortChoice {
            explicit: None,
            default: taken.local_addr().unwrap().port(),
            fallback: fallback_port,
            flag: "--http-port",
        };
        let l = bind("127.0.0.1".parse().unwrap(), choice).await.unwrap();
        assert_eq!(l.local_addr().unwrap().port(), fallback_port);
    }

    #[test]
    fn permission_denied_names_setcap() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let e = BindError::new(addr, "--http-port", io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(e.allows_fallback());
        let msg = e.to_string();
        assert!(msg.contains("setcap cap_net_bind_service=+ep") && msg.contains("--http-port"), "{msg}");
    }
}
