//! `devingress up`: watch the cluster and serve its Ingresses.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{oneshot, watch};

use crate::cli::UpArgs;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;

use crate::cluster::{
    ADDRESS, ClusterWatch, GatewayClassWriter, GatewayStatusWriter, SecretWatch, StatusWriter, current_entries,
    ensure_class,
};
use crate::control::server::{ControlServer, Handles};
use crate::control::{Action, ControlError};
use crate::lb::{LbReport, LoadBalancers};
use crate::listen::{self, PortChoice};
use crate::paths::Paths;
use crate::progress::Progress;
use crate::proxy::{self, OwnPorts, OwnPortsReport, Proxy};
use crate::resolver::{OsResolver, ResolverKind};
use crate::routes::gateway::Slot;
use crate::routes::gateway::table::GatewayReport;
use crate::routes::{self, ClassPolicy, RouteTable, SecretRef, Target};
use crate::status::StatusHub;
use crate::status::model::{DnsStatus, Listeners};
use crate::tls::{self, LeafStore, LocalCa, SecretCerts};
use crate::upstream::{Key, Upstream};

/// Bursts of watch events (the first list delivers one per object) are
/// folded into one rebuild this long after the first of them.
const REBUILD_DELAY: Duration = Duration::from_millis(20);

/// How long a clean exit waits to take devingress's address out of statuses.
const STATUS_CLEANUP: Duration = Duration::from_secs(5);

/// How `up` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Stopped (signal, or `devingress down`).
    Stopped,
    /// Another daemon runs already; nothing was started.
    AlreadyRunning,
    /// Stopped to start again on this context.
    SwitchContext(String),
}

/// Runs until `shutdown` resolves (or `devingress down`), then shuts down gracefully.
pub async fn run(args: UpArgs, data_dir: Option<PathBuf>, shutdown: impl Future<Output = ()>) -> anyhow::Result<Exit> {
    // The kubeconfig first: a missing or broken one ends the run before
    // anything is created.
    let kubeconfig = super::load_kubeconfig(&args.cluster)?;
    // One daemon per user: a second `up` says so instead of failing on a port.
    let socket = crate::control::socket_path();
    if let Some(running) = crate::control::client::already_running(&socket).await {
        return Ok(already_running(running));
    }
    // Credentials the API server refuses end the run here too.
    let (client, info) = super::connect_loaded(kubeconfig).await?;
    let control = match ControlServer::bind(&socket).await {
        Ok(c) => Some(c),
        Err(e @ (ControlError::AlreadyRunning { .. } | ControlError::Starting { .. })) => {
            return Ok(already_running(e));
        }
        Err(e) => {
            tracing::warn!("{e}; `devingress status`, `down` and `logs` cannot reach this daemon");
            None
        }
    };
    if let Some(warning) = listen::exposure_warning(args.listen) {
        tracing::warn!("{warning}");
    }
    // Bind first: a port problem should end the run before anything else.
    let http_choice = PortChoice { explicit: args.http_port, default: 80, fallback: 8080, flag: "--http-port" };
    let listener = listen::bind(args.listen, http_choice).await.context("cannot serve HTTP")?;
    let https = if args.no_https {
        None
    } else {
        let choice = PortChoice { explicit: args.https_port, default: 443, fallback: 8443, flag: "--https-port" };
        let listener = listen::bind(args.listen, choice).await.context("cannot serve HTTPS")?;
        let paths = Paths::resolve(data_dir)?;
        let (ca, created) = LocalCa::load_or_create(&paths).context("cannot set up the local CA")?;
        if created {
            tracing::info!("created the local CA {} at {}", ca.subject, paths.ca_cert().display());
        }
        if !crate::truststore::is_trusted(&ca, &paths.ca_cert()) {
            tracing::warn!("browsers do not trust the local CA yet: run `devingress trust` once");
        }
        let ca = Arc::new(ca);
        Some((listener, Arc::new(LeafStore::new(ca.clone(), paths.leaves_dir())), ca, paths.ca_cert()))
    };

    let watch = Arc::new(ClusterWatch::start(client.clone(), &args.cluster.namespaces, &info));
    let policy = args.class.policy();

    let (table_tx, table_rx) = watch::channel(Arc::new(RouteTable::default()));
    let hub = Arc::new(StatusHub::new(table_rx.clone(), watch.health(), info.clone()));
    let (action_tx, mut actions) = tokio::sync::mpsc::unbounded_channel();
    if let Some(control) = control {
        tracing::debug!("control socket at {}", control.path().display());
        let handles = Handles { hub: hub.clone(), actions: action_tx, contexts: info.contexts.clone() };
        tokio::spawn(control.serve(handles));
    }
    let kubeconfig_watch = crate::kubeconfig_watch::KubeconfigWatch {
        files: info.kubeconfig.clone(),
        serving: info.context.clone(),
        explicit_context: args.cluster.context.is_some(),
        follow: args.follow_context,
    };
    let mut followed = tokio::spawn(kubeconfig_watch.run(hub.kubeconfig_changed.clone()));
    tokio::spawn(build_tables(watch.clone(), policy, table_tx));
    tokio::spawn(ensure_class_once_synced(client.clone(), watch.clone(), table_rx.clone(), args.default_class));
    let (stop_gateways, gateways_stop_rx) = oneshot::channel();
    let (own_ports_tx, own_ports_rx) = watch::channel(Arc::new(OwnPortsReport::default()));
    let (invalid_secrets_tx, invalid_secrets_rx) = watch::channel(Arc::new(InvalidSecrets::new()));
    let gateway_status = tokio::spawn(follow_gateway_api(
        GatewayClassWriter::new(client.clone()),
        GatewayStatusWriter::new(client.clone()),
        watch.clone(),
        table_rx.clone(),
        own_ports_rx,
        invalid_secrets_rx,
        gateways_stop_rx,
    ));
    let (stop_status, stop_rx) = oneshot::channel();
    let (lb_tx, lb_rx) = watch::channel(Arc::new(LbReport::default()));
    let lb_report = (!args.no_load_balancers).then(|| lb_rx.clone());
    let status = tokio::spawn(write_status(client.clone(), watch.clone(), table_rx.clone(), lb_report, stop_rx));

    // DNS for served hosts; a port the user chose must work, the default may not.
    let dns = if args.no_dns {
        None
    } else {
        match crate::dns::serve(args.dns_port.unwrap_or(crate::dns::DEFAULT_PORT), table_rx.clone()).await {
            Ok(server) => {
                let addrs: Vec<String> = server.addrs.iter().map(|a| a.to_string()).collect();
                tracing::info!("answering DNS for served hosts on {} (UDP and TCP)", addrs.join(" and "));
                Some(server)
            }
            Err(e) if args.dns_port.is_none() => {
                tracing::warn!("{e}");
                None
            }
            Err(e) => return Err(e).context("cannot serve DNS"),
        }
    };

    // The OS resolver: take back what a crashed run left, then follow the table.
    let (stop_resolver, resolver_stop_rx) = oneshot::channel();
    let dns_port = dns.as_ref().and_then(|d| d.addrs.first()).map(|a| a.port());
    let (resolver, dns_status) = start_resolver(&args, dns_port).await?;
    hub.set_dns(dns_status);
    let resolver_task = resolver.map(|r| tokio::spawn(follow_resolver(r, table_rx.clone(), resolver_stop_rx)));

    let upstream = Upstream::new(client.clone(), args.pool.settings());
    tokio::spawn(follow_endpoints(table_rx.clone(), upstream.clone()));

    // One shutdown signal for every listener.
    let (stop_tx, stop) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let mut servers = Vec::new();
    let mut https_port = None;
    let mut tls_acceptor = None;
    let mut listeners = Listeners {
        http: Some(listener.local_addr()?.to_string()),
        https: None,
        dns: dns.as_ref().and_then(|d| d.addrs.first()).map(|a| a.to_string()),
    };
    let http_port = listener.local_addr()?.port();
    if let Some((listener, leaves, ca, ca_path)) = https {
        let addr = listener.local_addr()?;
        https_port = Some(addr.port());
        listeners.https = Some(addr.to_string());
        hub.set_ca(ca, ca_path);
        let secret_certs = Arc::new(RwLock::new(SecretCerts::default()));
        tokio::spawn(follow_secrets(
            SecretWatch::new(client.clone()),
            table_rx.clone(),
            secret_certs.clone(),
            invalid_secrets_tx,
        ));
        let acceptor = tls::acceptor(table_rx.clone(), leaves, secret_certs);
        tls_acceptor = Some(acceptor.clone());
        let proxy = Arc::new(Proxy {
            table: table_rx.clone(),
            upstream: upstream.clone(),
            health: watch.health(),
            slot: Slot::Https,
            https_port: None,
            http_port,
            status: hub.clone(),
        });
        tracing::info!("serving HTTPS on https://{addr}");
        servers.push(tokio::spawn(proxy::serve(
            listener,
            Some(acceptor),
            proxy,
            stopped(stop.clone()),
            args.shutdown_timeout,
        )));
    }
    let addr = listener.local_addr()?;
    // LoadBalancer Services and Gateway listeners on ports of their own take
    // every port but devingress's own.
    let mut reserved = vec![(http_port, "devingress's own HTTP port".to_string())];
    reserved.extend(https_port.map(|p| (p, "devingress's own HTTPS port".to_string())));
    reserved.extend(dns_port.map(|p| (p, "devingress's own DNS port".to_string())));
    if !args.no_load_balancers {
        let lbs = LoadBalancers {
            listen: args.listen,
            reserved: reserved.clone(),
            table: table_rx.clone(),
            upstream: upstream.clone(),
            stats: hub.lb_stats(),
        };
        hub.set_lb_report(lb_rx);
        servers.push(tokio::spawn(lbs.run(lb_tx, stop.clone())));
    }
    hub.set_listeners(listeners);
    tracing::info!("serving HTTP on http://{addr}");
    tracing::info!("status page: http://{}:{}/", crate::status::STATUS_HOST, addr.port());
    let proxy = Arc::new(Proxy {
        table: table_rx,
        upstream,
        health: watch.health(),
        slot: Slot::Http,
        https_port,
        http_port,
        status: hub,
    });
    let own_ports = OwnPorts {
        listen: args.listen,
        reserved,
        proxy: proxy.clone(),
        tls: tls_acceptor,
        grace: args.shutdown_timeout,
    };
    servers.push(tokio::spawn(own_ports.run(own_ports_tx, stop.clone())));
    servers.push(tokio::spawn(proxy::serve(listener, None, proxy, stopped(stop), args.shutdown_timeout)));
    let exit = tokio::select! {
        () = shutdown => Exit::Stopped,
        Ok(context) = &mut followed => Exit::SwitchContext(context),
        action = actions.recv() => match action {
            Some(Action::SwitchContext(context)) => Exit::SwitchContext(context),
            Some(Action::Down) | None => {
                tracing::info!("stopping: asked by `devingress down`");
                Exit::Stopped
            }
        },
    };
    followed.abort();
    tracing::info!("shutting down: waiting up to {:?} for requests in flight", args.shutdown_timeout);
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    let _ = stop_resolver.send(());
    if let Some(task) = resolver_task {
        let _ = task.await;
    }
    let _ = stop_status.send(());
    let _ = stop_gateways.send(());
    let _ = tokio::time::timeout(STATUS_CLEANUP, gateway_status).await;
    if tokio::time::timeout(STATUS_CLEANUP, status).await.is_err() {
        tracing::warn!("could not remove devingress's address from statuses within {STATUS_CLEANUP:?}");
    }
    tracing::info!("stopped");
    Ok(exit)
}

/// Says that another daemon runs, and how to reach it.
fn already_running(e: ControlError) -> Exit {
    eprintln!("{e}: `devingress status` shows it, `devingress down` stops it");
    Exit::AlreadyRunning
}

/// Starts `devingress up` again in this process's place, on `context`.
pub fn restart_with_context(context: &str) -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut skip = false;
    for a in std::env::args_os().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        match a.to_str() {
            Some("--context") => skip = true,
            Some(s) if s.starts_with("--context=") => {}
            _ => args.push(a),
        }
    }
    args.push("--context".into());
    args.push(context.into());
    let exe = std::env::current_exe().context("cannot find the devingress binary")?;
    tracing::info!("starting again on context {context}");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(cmd.exec()).context("cannot start devingress again")
    }
    #[cfg(not(unix))]
    {
        cmd.spawn().context("cannot start devingress again")?;
        Ok(())
    }
}

/// Rebuilds the routing table after every change in the cluster, and says
/// what changed.
async fn build_tables(watch: Arc<ClusterWatch>, policy: ClassPolicy, table_tx: watch::Sender<Arc<RouteTable>>) {
    let changed = watch.changed();
    let mut progress = Progress::default();
    loop {
        let mut table = routes::build_with(&watch.snapshot(), &policy);
        table.gateway.continue_from(&table_tx.borrow().gateway);
        progress.report(&table);
        if table_tx.send(Arc::new(table)).is_err() {
            return;
        }
        changed.notified().await;
        tokio::time::sleep(REBUILD_DELAY).await;
    }
}

/// Watches the Secrets that `spec.tls` names and keeps their certificates
/// current; says once what is wrong with each one that cannot be used.
async fn follow_secrets(
    mut secrets: SecretWatch,
    mut table: watch::Receiver<Arc<RouteTable>>,
    certs: Arc<RwLock<SecretCerts>>,
    invalid: watch::Sender<Arc<InvalidSecrets>>,
) {
    let changed = secrets.changed();
    let mut said: BTreeSet<String> = BTreeSet::new();
    loop {
        let t = table.borrow_and_update().clone();
        let wanted: BTreeSet<SecretRef> = t.tls.iter().filter_map(|h| h.secret.clone()).collect();
        secrets.set_wanted(&wanted);
        let (current, listed) = secrets.snapshot();
        let loaded = tls::secret::load(&t.tls, &current, time::OffsetDateTime::now_utc());
        // A Secret is judged once its first list is in, not before.
        let now: BTreeSet<String> =
            loaded.problems.iter().filter(|(r, _)| listed.contains(r)).map(|(_, p)| p.clone()).collect();
        for p in now.difference(&said) {
            tracing::warn!("{p}");
        }
        for host in loaded.by_host.keys() {
            tracing::debug!("serving the Secret's certificate for {host}");
        }
        said = now;
        let listed: InvalidSecrets =
            loaded.invalid.iter().filter(|(r, _)| listed.contains(r)).map(|(r, w)| (r.clone(), w.clone())).collect();
        crate::publish::if_changed(&invalid, listed);
        *certs.write().expect("secret certs") = loaded;
        tokio::select! {
            r = table.changed() => if r.is_err() { return },
            () = changed.notified() => {}
        }
    }
}

/// The OS resolver integration `args` asks for, with whatever an earlier
/// run left behind taken back, and how it stands for the status model. An
/// integration the user chose must work; the automatic choice may fail
/// with a warning that says what to do.
async fn start_resolver(
    args: &UpArgs,
    dns_port: Option<u16>,
) -> anyhow::Result<(Option<Box<dyn OsResolver>>, DnsStatus)> {
    let chosen = args.resolver != ResolverKind::Auto || args.hosts_file.is_some();
    let sys = crate::resolver::SystemPaths::from_env();
    let not_set_up = |problem: String| DnsStatus { resolver: None, problem: Some(problem) };
    let mut resolver = match crate::resolver::choose(args.resolver, args.hosts_file.as_deref(), dns_port, &sys) {
        Ok(r) => r,
        Err(why) => {
            if args.resolver == ResolverKind::Off {
                tracing::debug!("{why}");
            } else {
                tracing::warn!("{why}");
            }
            return Ok((None, not_set_up(why)));
        }
    };
    let what = resolver.describe();
    let (resolver, repaired) = tokio::task::spawn_blocking(move || {
        let r = resolver.remove();
        (resolver, r)
    })
    .await?;
    match repaired {
        Ok(true) => tracing::info!("took back what an earlier run left in the OS resolver ({what})"),
        Ok(false) => {}
        Err(e) if chosen => return Err(e).with_context(|| format!("cannot use {what}")),
        Err(e) => {
            let why = format!("cannot use {what}: {e}; run `devingress setup`, or choose another with --resolver");
            tracing::warn!("{why}");
            return Ok((None, not_set_up(why)));
        }
    }
    tracing::info!("the OS resolves served hosts through {what}");
    Ok((Some(resolver), DnsStatus { resolver: Some(what), problem: None }))
}

/// Keeps the OS resolver sending exactly the served hosts to devingress,
/// and takes everything back when `stop` fires.
async fn follow_resolver(
    mut resolver: Box<dyn OsResolver>,
    mut table: watch::Receiver<Arc<RouteTable>>,
    mut stop: oneshot::Receiver<()>,
) {
    let what = resolver.describe();
    let mut said_wildcards = false;
    let mut failing: Option<String> = None;
    loop {
        let hosts: Vec<String> = table.borrow_and_update().served_hosts.iter().map(ToString::to_string).collect();
        let hosts = if resolver.handles_wildcards() {
            hosts
        } else {
            let (wild, exact): (Vec<String>, Vec<String>) = hosts.into_iter().partition(|h| h.starts_with("*."));
            if !wild.is_empty() && !said_wildcards {
                said_wildcards = true;
                tracing::warn!("{what} cannot list wildcard hosts ({}): use a per-domain resolver", wild.join(", "));
            }
            exact
        };
        let count = hosts.len();
        let (r, result) = match tokio::task::spawn_blocking(move || {
            let result = resolver.apply(&hosts);
            (resolver, result)
        })
        .await
        {
            Ok(done) => done,
            Err(_) => return,
        };
        resolver = r;
        match result {
            Ok(true) => tracing::info!("the OS resolver now sends {count} host(s) to devingress ({what})"),
            Ok(false) => {}
            Err(e) => {
                let e = e.to_string();
                if failing.as_ref() != Some(&e) {
                    tracing::warn!("cannot update the OS resolver: {e}");
                }
                failing = Some(e);
                // Retry on the next table, or in 5 s.
                tokio::select! {
                    r = table.changed() => if r.is_err() { break },
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = &mut stop => break,
                }
                continue;
            }
        }
        failing = None;
        tokio::select! {
            r = table.changed() => if r.is_err() { break },
            _ = &mut stop => break,
        }
    }
    let removed = tokio::task::spawn_blocking(move || resolver.remove()).await;
    match removed {
        Ok(Ok(true)) => tracing::info!("took devingress's hosts out of the OS resolver ({what})"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!("cannot take devingress's hosts out of the OS resolver: {e}"),
        Err(_) => {}
    }
}

/// Creates the devingress IngressClass once the cluster's classes are known.
async fn ensure_class_once_synced(
    client: kube::Client,
    watch: Arc<ClusterWatch>,
    mut table: watch::Receiver<Arc<RouteTable>>,
    make_default: bool,
) {
    while !table.borrow_and_update().synced {
        if table.changed().await.is_err() {
            return;
        }
    }
    ensure_class(client, &watch.snapshot().ingress_classes, make_default).await;
}

/// Once the Gateway API's objects are listed: creates the `devingress`
/// GatewayClass if needed, keeps devingress's classes `Accepted`, and keeps
/// the status of served Gateways and their HTTPRoutes current; when `stop`
/// fires, marks the Gateways no longer served.
async fn follow_gateway_api(
    mut classes: GatewayClassWriter,
    mut status: GatewayStatusWriter,
    watch: Arc<ClusterWatch>,
    mut table: watch::Receiver<Arc<RouteTable>>,
    mut own_ports: watch::Receiver<Arc<OwnPortsReport>>,
    mut invalid_secrets: watch::Receiver<Arc<InvalidSecrets>>,
    mut stop: oneshot::Receiver<()>,
) {
    // Without HTTPS nothing reads Secrets, and the sender is gone.
    let mut secrets_followed = true;
    loop {
        let objects = watch.snapshot().gateway.filter(|g| g.synced);
        if let Some(objects) = &objects {
            classes.sync(&objects.classes).await;
            let t = table.borrow_and_update().clone();
            let gateways = with_runtime_state(
                &t.gateway.gateway_reports,
                &own_ports.borrow_and_update(),
                &invalid_secrets.borrow_and_update(),
            );
            status.sync(objects, &gateways, &t.gateway.route_reports).await;
        }
        let retry = classes.needs_retry() || status.needs_retry();
        tokio::select! {
            changed = table.changed() => if changed.is_err() { break },
            changed = own_ports.changed() => if changed.is_err() { break },
            changed = invalid_secrets.changed(), if secrets_followed => secrets_followed = changed.is_ok(),
            () = tokio::time::sleep(Duration::from_secs(5)), if retry => {}
            _ = &mut stop => break,
        }
    }
    status.clear_all(watch.snapshot().gateway.as_ref()).await;
}

/// Secrets that cannot be used, with why.
type InvalidSecrets = std::collections::BTreeMap<SecretRef, String>;

/// The Gateways' reports with what the servers found: a listener's port of
/// its own that cannot be bound is `PortUnavailable` (one not tried yet
/// `Pending`), and a listener whose certificate Secret cannot be used is
/// `InvalidCertificateRef`.
fn with_runtime_state(
    reports: &[GatewayReport],
    ports: &OwnPortsReport,
    secrets: &InvalidSecrets,
) -> Vec<GatewayReport> {
    let mut out = reports.to_vec();
    for l in out.iter_mut().flat_map(|g| g.listeners.iter_mut()) {
        if let (Ok(()), Some(r)) = (&l.resolved, &l.certificate) {
            if let Some(why) = secrets.get(r) {
                l.resolved = Err(("InvalidCertificateRef", format!("Secret {r}: {why}")));
            }
        }
        if let Some(slot) = l.own_port() {
            match ports.ports.get(&slot) {
                Some(Ok(())) => {}
                Some(Err(why)) => l.accepted = Err(("PortUnavailable", why.clone())),
                None => {
                    let port = slot.listener_port();
                    l.accepted = Err(("Pending", format!("devingress has not bound port {port} yet")));
                }
            }
        }
    }
    out
}

/// Keeps the status of served Ingresses and LoadBalancer Services pointing
/// at devingress, and clears it when `stop` fires.
async fn write_status(
    client: kube::Client,
    watch: Arc<ClusterWatch>,
    mut table: watch::Receiver<Arc<RouteTable>>,
    mut lb_report: Option<watch::Receiver<Arc<LbReport>>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut ingresses: StatusWriter<Ingress> = StatusWriter::new(client.clone());
    let mut services: StatusWriter<Service> = StatusWriter::new(client);
    loop {
        let served = {
            let t = table.borrow_and_update();
            t.synced.then(|| t.served.clone())
        };
        if let Some(served) = served {
            let snapshot = watch.snapshot();
            let current = current_entries(snapshot.ingresses.iter().map(|i| &**i), |i| {
                i.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()
            });
            let ours = serde_json::json!([{"ip": ADDRESS}]);
            let desired = served.iter().map(|k| (k.clone(), ours.clone())).collect();
            ingresses.sync(&current, &desired).await;
            if let Some(report) = &mut lb_report {
                let report = report.borrow_and_update().clone();
                let current = current_entries(snapshot.services.iter().map(|s| &**s), |s| {
                    s.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()
                });
                let desired = report.services.iter().map(|s| (s.service.clone(), s.status_entries())).collect();
                services.sync(&current, &desired).await;
            }
        }
        let retry = ingresses.needs_retry() || services.needs_retry();
        let lb_changed = async {
            match &mut lb_report {
                Some(r) => r.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = table.changed() => if changed.is_err() { break },
            ok = lb_changed => if !ok { lb_report = None },
            () = tokio::time::sleep(Duration::from_secs(5)), if retry => {}
            _ = &mut stop => break,
        }
    }
    ingresses.clear_all().await;
    services.clear_all().await;
}

/// Tells the pool which pod ports the table routes to, after every change:
/// connections to pods that left are closed, new ones are warmed.
async fn follow_endpoints(mut table: watch::Receiver<Arc<RouteTable>>, upstream: Upstream) {
    loop {
        let keys: Vec<Key> = {
            let t = table.borrow_and_update();
            t.backends()
                .iter()
                .flat_map(|b| match &b.target {
                    Target::Pods { ready, .. } => {
                        ready.iter().map(|ep| Key { endpoint: ep.clone(), protocol: b.protocol }).collect()
                    }
                    _ => Vec::new(),
                })
                .collect()
        };
        upstream.pool().set_live(&keys);
        if table.changed().await.is_err() {
            return;
        }
    }
}
