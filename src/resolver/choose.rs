//! Which way of resolving fits this machine, and where its files are.

use std::path::{Path, PathBuf};

use super::dnsmasq::Dnsmasq;
use super::nrpt::Nrpt;
use super::systemd_resolved::{LINK, Resolved};
use super::{HostsFile, OsResolver, Program, ResolverDir};

/// Moves every system file devingress reads or writes under this root
/// (tests point it at a temporary directory).
pub const SYSTEM_ROOT_ENV: &str = "DEVINGRESS_SYSTEM_ROOT";

/// Which way of making the OS resolve served hosts `up` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResolverKind {
    /// The first that works here: /etc/resolver on macOS; systemd-resolved,
    /// then NetworkManager's dnsmasq on Linux; NRPT on Windows; then a
    /// hosts file that devingress may write.
    Auto,
    /// macOS: a file per domain in /etc/resolver.
    Macos,
    /// Linux: routing domains on devingress's link in systemd-resolved.
    SystemdResolved,
    /// Linux: NetworkManager's dnsmasq.
    Dnsmasq,
    /// Windows: NRPT rules (needs --dns-port 53).
    Nrpt,
    /// A managed block in the hosts file (--hosts-file, else the system's).
    Hosts,
    /// Leave the OS resolver alone.
    Off,
}

/// Where the system's files are: under `/`, or under a test root.
#[derive(Debug, Clone)]
pub struct SystemPaths {
    /// The root the absolute paths below are taken from.
    pub root: PathBuf,
}

impl SystemPaths {
    /// The real system, or the root that [`SYSTEM_ROOT_ENV`] names.
    pub fn from_env() -> Self {
        let root = std::env::var_os(SYSTEM_ROOT_ENV).filter(|r| !r.is_empty()).map(PathBuf::from);
        SystemPaths { root: root.unwrap_or_else(|| PathBuf::from("/")) }
    }

    /// Whether these are the real system's paths.
    pub fn is_real(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The absolute path `abs` under the root.
    pub fn file(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// macOS's per-domain resolver directory.
    pub fn resolver_dir(&self) -> PathBuf {
        self.file("/etc/resolver")
    }

    /// The hosts file.
    pub fn hosts(&self) -> PathBuf {
        if self.is_real() { super::hosts::system_path() } else { self.file("/etc/hosts") }
    }

    /// Present while systemd-resolved runs.
    pub fn resolved_runtime_dir(&self) -> PathBuf {
        self.file("/run/systemd/resolve")
    }

    /// Present when the network link `link` exists.
    pub fn link(&self, link: &str) -> PathBuf {
        self.file("/sys/class/net").join(link)
    }

    /// The NetworkManager dnsmasq drop-in that `setup` adds.
    pub fn dnsmasq_dropin(&self) -> PathBuf {
        self.file("/etc/NetworkManager/dnsmasq.d/devingress.conf")
    }

    /// The directory `setup` gives the user for files root's services read.
    pub fn state_dir(&self) -> PathBuf {
        self.file("/var/lib/devingress")
    }

    /// The dnsmasq servers file the drop-in names. It is named by its
    /// real path in the drop-in, whatever the root.
    pub fn dnsmasq_servers(&self) -> PathBuf {
        self.state_dir().join("dnsmasq-servers")
    }
}

/// Whether this process may create files in `dir`.
pub fn dir_writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".devingress-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => std::fs::remove_file(&probe).is_ok(),
        Err(_) => false,
    }
}

/// The way to resolve, or why there is none (with what to do about it).
/// `dns_port` is the port devingress's DNS server answers on, if any;
/// `hosts_file` is `--hosts-file`.
pub fn choose(
    kind: ResolverKind,
    hosts_file: Option<&Path>,
    dns_port: Option<u16>,
    sys: &SystemPaths,
) -> Result<Box<dyn OsResolver>, String> {
    let hosts = || -> Box<dyn OsResolver> {
        Box::new(HostsFile::new(hosts_file.map(Path::to_path_buf).unwrap_or_else(|| sys.hosts())))
    };
    let need_dns = |what: &str| format!("{what} sends names to devingress's DNS server, which is off");
    match kind {
        ResolverKind::Off => Err("the OS resolver is left alone (--resolver off)".into()),
        ResolverKind::Hosts => Ok(hosts()),
        ResolverKind::Macos => {
            let port = dns_port.ok_or_else(|| need_dns("/etc/resolver"))?;
            Ok(Box::new(ResolverDir::new(sys.resolver_dir(), port)))
        }
        ResolverKind::SystemdResolved => {
            let port = dns_port.ok_or_else(|| need_dns("systemd-resolved"))?;
            Ok(Box::new(Resolved::new(Program::new("resolvectl"), LINK, port)))
        }
        ResolverKind::Dnsmasq => {
            let port = dns_port.ok_or_else(|| need_dns("dnsmasq"))?;
            Ok(Box::new(Dnsmasq::new(sys.dnsmasq_servers(), Program::new("nmcli"), port)))
        }
        ResolverKind::Nrpt => {
            let port = dns_port.ok_or_else(|| need_dns("NRPT"))?;
            Ok(Box::new(Nrpt::new(Program::new("powershell"), port)))
        }
        ResolverKind::Auto => auto(hosts_file, dns_port, sys),
    }
}

fn auto(hosts_file: Option<&Path>, dns_port: Option<u16>, sys: &SystemPaths) -> Result<Box<dyn OsResolver>, String> {
    if let Some(path) = hosts_file {
        return Ok(Box::new(HostsFile::new(path)));
    }
    let mut setup_would = None;
    if let Some(port) = dns_port {
        if cfg!(target_os = "macos") {
            if dir_writable(&sys.resolver_dir()) {
                return choose(ResolverKind::Macos, None, Some(port), sys);
            }
            setup_would = Some("let you add files to /etc/resolver");
        } else if cfg!(windows) {
            if port == 53 {
                return choose(ResolverKind::Nrpt, None, Some(port), sys);
            }
            setup_would = Some("explain NRPT, which needs `devingress up --dns-port 53` as an administrator");
        } else if sys.resolved_runtime_dir().is_dir() {
            if sys.link(LINK).exists() {
                return choose(ResolverKind::SystemdResolved, None, Some(port), sys);
            }
            setup_would = Some("add the link devingress0 for systemd-resolved and let you set its DNS");
        } else if sys.dnsmasq_dropin().exists() && dir_writable(&sys.state_dir()) {
            return choose(ResolverKind::Dnsmasq, None, Some(port), sys);
        } else if sys.file("/etc/NetworkManager/dnsmasq.d").is_dir() {
            setup_would = Some("add a drop-in for NetworkManager's dnsmasq and let you reload it");
        }
    }
    let hosts = sys.hosts();
    if hosts.parent().is_some_and(dir_writable) && hosts.exists() {
        return Ok(Box::new(HostsFile::new(hosts)));
    }
    Err(match setup_would {
        Some(what) => format!(
            "the OS does not resolve served hosts to devingress yet: run `devingress setup` once (it would {what}), \
             or reach them with curl --resolve HOST:PORT:127.0.0.1"
        ),
        None => format!(
            "the OS does not resolve served hosts to devingress: no per-domain resolver was found and {} is not \
             writable; run `sudo devingress up --hosts-file {}`, or reach them with curl --resolve HOST:PORT:127.0.0.1",
            hosts.display(),
            hosts.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn auto_picks_resolved_with_the_link_else_says_what_setup_adds() {
        let root = tempfile::tempdir().unwrap();
        let sys = SystemPaths { root: root.path().to_path_buf() };
        std::fs::create_dir_all(sys.resolved_runtime_dir()).unwrap();
        let e = choose(ResolverKind::Auto, None, Some(10053), &sys).err().unwrap();
        assert!(e.contains("devingress setup") && e.contains("devingress0"), "{e}");
        std::fs::create_dir_all(sys.link(LINK)).unwrap();
        let r = choose(ResolverKind::Auto, None, Some(10053), &sys).unwrap();
        assert!(r.describe().contains("systemd-resolved"), "{}", r.describe());
        // Without a DNS server only a hosts file can work.
        std::fs::create_dir_all(sys.file("/etc")).unwrap();
        std::fs::write(sys.hosts(), "127.0.0.1 localhost\n").unwrap();
        let r = choose(ResolverKind::Auto, None, None, &sys).unwrap();
        assert!(r.describe().contains("etc/hosts") && !r.handles_wildcards(), "{}", r.describe());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn auto_picks_dnsmasq_after_setup() {
        let root = tempfile::tempdir().unwrap();
        let sys = SystemPaths { root: root.path().to_path_buf() };
        std::fs::create_dir_all(sys.dnsmasq_dropin().parent().unwrap()).unwrap();
        let e = choose(ResolverKind::Auto, None, Some(10053), &sys).err().unwrap();
        assert!(e.contains("dnsmasq"), "{e}");
        std::fs::write(sys.dnsmasq_dropin(), "servers-file=/var/lib/devingress/dnsmasq-servers\n").unwrap();
        std::fs::create_dir_all(sys.state_dir()).unwrap();
        let r = choose(ResolverKind::Auto, None, Some(10053), &sys).unwrap();
        assert!(r.describe().contains("dnsmasq"), "{}", r.describe());
    }

    #[test]
    fn an_explicit_hosts_file_wins_and_off_is_off() {
        let sys = SystemPaths { root: PathBuf::from("/nonexistent-root") };
        let r = choose(ResolverKind::Auto, Some(Path::new("/tmp/h")), Some(1), &sys).unwrap();
        assert_eq!(r.describe(), "a managed block in /tmp/h");
        assert!(choose(ResolverKind::Off, None, Some(1), &sys).is_err());
        assert!(choose(ResolverKind::Macos, None, None, &sys).err().unwrap().contains("DNS server"));
    }
}
