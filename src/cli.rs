//! The command line.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::kubeclient::KubeOptions;

/// Serve every Ingress of a local Kubernetes cluster on its real host name,
/// through pod port-forward. Nothing is installed in the cluster.
#[derive(Debug, Parser)]
#[command(name = "devingress", version, about)]
pub struct Cli {
    /// Where devingress keeps its CA and certificates [default: the user's data dir].
    #[arg(long, global = true, env = crate::paths::DATA_DIR_ENV, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch the cluster and serve its Ingresses until Ctrl-C.
    Up(UpArgs),
    /// Print the routing table the cluster produces right now, and the skipped Ingresses.
    Routes(RoutesArgs),
    /// The local certificate authority that signs devingress's certificates.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Install the local CA into the system's and browsers' trust stores.
    Trust,
    /// Remove the local CA from every trust store `trust` installed it in.
    Untrust,
    /// Check each part devingress depends on, with a fix for each failure.
    Doctor(DoctorArgs),
    /// Do the one-time privileged set-up (ports 80/443, the OS resolver),
    /// explaining each step first; `--undo` takes it back.
    Setup(SetupArgs),
    /// Show what the running daemon serves and how it is doing.
    Status(StatusArgs),
    /// Stop the running daemon cleanly.
    Down,
    /// Print the running daemon's log.
    Logs(LogsArgs),
    /// Make the running daemon answer every request with 503 until `resume`.
    Pause,
    /// Serve again after `pause`.
    Resume,
    /// Make the running daemon watch another kubeconfig context (it restarts).
    UseContext {
        /// The context's name.
        context: String,
    },
}

/// Settings of `devingress status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print the status model as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Settings of `devingress logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Keep printing new lines until the daemon stops.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How many past lines to print first.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub lines: usize,
}

/// Settings of `devingress setup`.
#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// Only explain what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Go ahead without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Take back everything setup changed.
    #[arg(long)]
    pub undo: bool,
    /// Only the steps that are not for one user (ports, the resolver's
    /// link): what a package's install script runs.
    #[arg(long)]
    pub system_only: bool,
    /// The plan was already printed (setup running itself through sudo).
    #[arg(long, hide = true)]
    pub explained: bool,
}

/// Settings of `devingress doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Which cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The HTTP port `up` serves on [default: 80, else 8080].
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// The HTTPS port `up` serves on [default: 443, else 8443].
    #[arg(long, value_name = "PORT")]
    pub https_port: Option<u16>,
    /// The DNS port `up` answers on.
    #[arg(long, value_name = "PORT")]
    pub dns_port: Option<u16>,
}

/// `devingress ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the path of the CA certificate (PEM), and nothing else.
    Path,
    /// Print the CA's name, SHA-256 fingerprint, expiry and where it is trusted.
    Show,
}

/// Settings of `devingress routes`.
#[derive(Debug, Clone, Args)]
pub struct RoutesArgs {
    /// Which cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Which Ingresses, by class.
    #[command(flatten)]
    pub class: ClassArgs,
    /// How long to wait for the cluster's objects before giving up.
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub wait: Duration,
}

/// Which cluster to watch.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context [default: the current context].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Watch only this namespace (repeatable) [default: all namespaces].
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
}

impl ClusterArgs {
    /// The kubeconfig part of these settings.
    pub fn kube_options(&self) -> KubeOptions {
        KubeOptions { kubeconfig: self.kubeconfig.clone(), context: self.context.clone() }
    }
}

/// Settings of `devingress up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Which cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The address to listen on. Keep it on loopback unless you mean to
    /// share your cluster's Ingresses with your network.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub listen: IpAddr,
    /// The HTTP port [default: 80, or 8080 when 80 needs privileges or is taken].
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// The HTTPS port [default: 443, or 8443 when 443 needs privileges or is taken].
    #[arg(long, value_name = "PORT")]
    pub https_port: Option<u16>,
    /// Serve plain HTTP only.
    #[arg(long)]
    pub no_https: bool,
    /// The port of the DNS server that answers for served hosts (UDP and TCP, on loopback).
    #[arg(long, value_name = "PORT")]
    pub dns_port: Option<u16>,
    /// Do not answer DNS.
    #[arg(long)]
    pub no_dns: bool,
    /// Do not serve `type: LoadBalancer` Services on the listen address.
    #[arg(long)]
    pub no_load_balancers: bool,
    /// How the OS is made to resolve served hosts to devingress; every
    /// change is taken back on exit (and at the next start after a crash).
    #[arg(long, value_enum, default_value = "auto", value_name = "HOW")]
    pub resolver: crate::resolver::ResolverKind,
    /// List the served hosts in a managed block of this hosts file (e.g.
    /// /etc/hosts, which needs root), removed again on exit. Wildcard hosts
    /// cannot be listed there.
    #[arg(long, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// How long Ctrl-C waits for requests in flight to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_timeout: Duration,
    /// Which Ingresses, by class.
    #[command(flatten)]
    pub class: ClassArgs,
    /// Run without the tray icon, even in a build with the `tray` feature
    /// and a display.
    #[arg(long)]
    pub no_tray: bool,
    /// Make the devingress IngressClass the cluster's default class.
    #[arg(long)]
    pub default_class: bool,
    /// Connection pool limits.
    #[command(flatten)]
    pub pool: PoolArgs,
    /// When the kubeconfig's current context changes while running
    /// (`kubectl config use-context`), start again on the new one. Without
    /// it, devingress keeps serving its context and says that it changed.
    #[arg(long)]
    pub follow_context: bool,
}

/// Which Ingresses are served, by IngressClass.
#[derive(Debug, Clone, Args)]
pub struct ClassArgs {
    /// Serve only Ingresses of this IngressClass (repeatable) [default: every Ingress, whatever its class].
    #[arg(long = "class", value_name = "NAME")]
    pub classes: Vec<String>,
    /// Behave as a conformant Ingress controller: serve only classes whose
    /// controller is devingress (and class-less Ingresses when such a class
    /// is the cluster default).
    #[arg(long)]
    pub strict: bool,
    /// Also route the Gateways of this GatewayClass of another controller
    /// (repeatable), writing no status on them.
    #[arg(long = "gateway-class", value_name = "NAME")]
    pub gateway_classes: Vec<String>,
}

impl ClassArgs {
    /// The class policy these flags give.
    pub fn policy(&self) -> crate::routes::ClassPolicy {
        crate::routes::ClassPolicy {
            classes: self.classes.clone(),
            strict: self.strict,
            gateway_classes: self.gateway_classes.clone(),
        }
    }
}

/// Limits of the pool of port-forward connections to pods.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection pool")]
pub struct PoolArgs {
    /// Open a new port-forward for every request instead of pooling
    /// (slow; for comparison and troubleshooting).
    #[arg(long)]
    pub no_pool: bool,
    /// Idle connections kept per pod port. Below the number of
    /// connections a load keeps busy, connections are closed and opened
    /// again all the time (measured: 13,882 port-forward connections in 5 s
    /// at 256 clients with 64; 219 with 1024).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub pool_max_idle: usize,
    /// Idle connections beyond the warm ones are closed after this long.
    #[arg(long, default_value = "90s", value_parser = parse_duration, value_name = "DURATION")]
    pub pool_idle_timeout: Duration,
    /// Connections kept open ahead of need per ready pod port.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub warm_connections: usize,
    /// Port-forward upgrades under way at once, at most.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_upgrades: u16,
    /// Port-forward protocol: `auto` runs many connections per upgrade
    /// (SPDY/3.1 straight after `Upgrade: SPDY/3.1`; SPDY in a WebSocket,
    /// then `v4`, where the API server or a proxy turns that down),
    /// `websocket` starts at SPDY in a WebSocket (kubectl's default since
    /// 1.31), `v4` runs one WebSocket per connection.
    #[arg(long, default_value = "auto", value_name = "PROTOCOL", value_parser = ["auto", "websocket", "v4"])]
    pub port_forward: String,
}

impl PoolArgs {
    /// The pool settings these flags give.
    pub fn settings(&self) -> crate::upstream::PoolSettings {
        crate::upstream::PoolSettings {
            enabled: !self.no_pool,
            max_idle_per_endpoint: self.pool_max_idle,
            idle_timeout: self.pool_idle_timeout,
            warm_per_endpoint: self.warm_connections,
            max_concurrent_upgrades: usize::from(self.max_concurrent_upgrades),
            protocol: match self.port_forward.as_str() {
                "v4" => crate::upstream::PortForwardProtocol::V4,
                "websocket" => crate::upstream::PortForwardProtocol::WebSocket,
                _ => crate::upstream::PortForwardProtocol::Auto,
            },
        }
    }
}

/// Parses `10s`, `500ms`, `2m` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, ""), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration such as 10s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?} has an unknown unit; use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn cli_parses() {
        Cli::command_for_test();
        let cli =
            Cli::try_parse_from(["devingress", "up", "--http-port", "0", "-n", "a", "-n", "b", "--context", "kind"])
                .unwrap();
        let Command::Up(up) = cli.command else { panic!() };
        assert_eq!(up.http_port, Some(0));
        assert_eq!(up.cluster.namespaces, ["a", "b"]);
        assert_eq!(up.cluster.context.as_deref(), Some("kind"));
        assert_eq!(up.listen.to_string(), "127.0.0.1");
    }

    impl Cli {
        fn command_for_test() {
            use clap::CommandFactory;
            Cli::command().debug_assert();
        }
    }
}
