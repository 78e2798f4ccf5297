//! What the tray shows for a status: the icon, its tooltip and the menu.
//! Pure, so that it is tested without a display; `icon.rs` draws it.

use crate::status::{STATUS_HOST, State, Status};

/// What a menu item does when clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Open this URL in the browser.
    Open(String),
    /// Install the local CA into the trust stores (`devingress trust`).
    TrustCa,
    /// Restart on this kubeconfig context.
    UseContext(String),
    /// Answer 503 until resumed.
    Pause,
    /// Serve again.
    Resume,
    /// Stop the daemon.
    Quit,
}

/// One entry of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A clickable (or greyed-out) item.
    Item {
        /// Its text.
        label: String,
        /// What it does; `None` is a greyed-out line of information.
        action: Option<MenuAction>,
    },
    /// A line between groups.
    Separator,
    /// A submenu.
    Submenu {
        /// Its text.
        label: String,
        /// Its entries.
        entries: Vec<Entry>,
    },
}

fn info(label: impl Into<String>) -> Entry {
    Entry::Item { label: label.into(), action: None }
}

fn item(label: impl Into<String>, action: MenuAction) -> Entry {
    Entry::Item { label: label.into(), action: Some(action) }
}

/// The icon for a status (`None`: no daemon answers).
pub fn icon_state(status: Option<&Status>) -> State {
    match status.map(|s| s.state) {
        None | Some(State::Stopped) => State::Stopped,
        Some(State::Connected) => State::Connected,
        Some(State::Connecting | State::Degraded | State::Paused) => State::Degraded,
    }
}

/// The tooltip.
pub fn tooltip(status: Option<&Status>) -> String {
    match status {
        None => "devingress: stopped".into(),
        Some(s) => {
            let mut t = format!("devingress: {} ({}), {} host(s)", s.state.word(), s.cluster.context, s.hosts.len());
            if let Some(r) = s.reasons.first() {
                t.push_str(&format!("\n{r}"));
            }
            t
        }
    }
}

/// The URL a host item opens: HTTPS when the CA is trusted, else HTTP.
fn host_url(s: &Status, urls: &[String]) -> Option<String> {
    let https = urls.iter().find(|u| u.starts_with("https://"));
    let http = urls.iter().find(|u| u.starts_with("http://"));
    if s.tls.ca_trusted { https.or(http) } else { http.or(https) }.cloned()
}

/// The menu.
pub fn menu(status: Option<&Status>) -> Vec<Entry> {
    let Some(s) = status else {
        return vec![info("devingress is stopped"), Entry::Separator, item("Quit", MenuAction::Quit)];
    };
    let mut m = vec![info(format!("devingress: {} · context {}", s.state.word(), s.cluster.context))];
    for r in s.reasons.iter().take(3) {
        m.push(info(format!("⚠ {r}")));
    }
    m.push(Entry::Separator);
    let mut any = false;
    for h in s.hosts.iter().filter(|h| h.host != "*") {
        any = true;
        match host_url(s, &h.urls) {
            Some(url) => m.push(item(h.host.clone(), MenuAction::Open(url))),
            None => m.push(info(format!("{} (wildcard)", h.host))),
        }
    }
    // Hosts of Gateway routes, once each.
    let mut gateway_hosts: Vec<&str> = Vec::new();
    for r in &s.gateway_routes {
        if r.host.starts_with('*')
            || gateway_hosts.contains(&r.host.as_str())
            || s.hosts.iter().any(|h| h.host == r.host)
        {
            continue;
        }
        gateway_hosts.push(&r.host);
        let addr = if r.listener == "https" { &s.listeners.https } else { &s.listeners.http };
        if let Some(addr) = addr {
            any = true;
            m.push(item(r.host.clone(), MenuAction::Open(crate::status::model::url(&r.listener, &r.host, addr))));
        }
    }
    if !any {
        m.push(info("No Ingress served yet"));
    }
    // LoadBalancer Services: what to connect to (nothing to open in a browser).
    for lb in &s.load_balancers {
        for p in &lb.ports {
            m.push(info(match &p.error {
                None => format!("{} · {}:{} · {}/{} pods", lb.service, lb.address, p.port, lb.ready, lb.total),
                Some(_) => format!("{} · port {}/{} not served", lb.service, p.port, p.protocol),
            }));
        }
    }
    m.push(Entry::Separator);
    if let Some(port) = s.listeners.http.as_deref().and_then(|a| a.rsplit(':').next()) {
        let url = if port == "80" { format!("http://{STATUS_HOST}/") } else { format!("http://{STATUS_HOST}:{port}/") };
        m.push(item("Open status page", MenuAction::Open(url)));
    }
    if s.tls.enabled && !s.tls.ca_trusted {
        m.push(item("Trust the local CA…", MenuAction::TrustCa));
    }
    if s.cluster.contexts.len() > 1 {
        let entries = s
            .cluster
            .contexts
            .iter()
            .map(|c| {
                if *c == s.cluster.context {
                    info(format!("✓ {c}"))
                } else {
                    item(c.clone(), MenuAction::UseContext(c.clone()))
                }
            })
            .collect();
        m.push(Entry::Submenu { label: "Switch context".into(), entries });
    }
    m.push(if s.paused { item("Resume", MenuAction::Resume) } else { item("Pause", MenuAction::Pause) });
    m.push(Entry::Separator);
    m.push(item("Quit devingress", MenuAction::Quit));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Stats;
    use crate::status::model::{Facts, Listeners, TlsStatus, build};

    fn status(trusted: bool, paused: bool) -> Status {
        let table = crate::routes::table_for_hosts(&["alpaca.example.com", "*.apps.test"]);
        let mut facts = Facts {
            listeners: Listeners {
                http: Some("127.0.0.1:8080".into()),
                https: Some("127.0.0.1:443".into()),
                dns: None,
            },
            tls: TlsStatus { enabled: true, ca_subject: Some("ca".into()), ca_path: None, ca_trusted: trusted },
            paused,
            ..Facts::default()
        };
        facts.cluster.context = "kind-dev".into();
        facts.cluster.contexts = vec!["kind-dev".into(), "minikube".into()];
        build(&table, &Stats::default(), facts)
    }

    fn labels(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Item { label, action: Some(_) } => label.clone(),
                Entry::Item { label, action: None } => format!("({label})"),
                Entry::Separator => "--".into(),
                Entry::Submenu { label, entries } => format!("{label} > {}", labels(entries).join(", ")),
            })
            .collect()
    }

    #[test]
    fn menu_lists_hosts_and_offers_what_is_missing() {
        let s = status(false, false);
        assert_eq!(
            labels(&menu(Some(&s))),
            [
                "(devingress: degraded · context kind-dev)",
                "(⚠ alpaca.example.com → default/s:80: the Service does not exist)",
                "(⚠ *.apps.test → default/s:80: the Service does not exist)",
                "--",
                "alpaca.example.com",
                "(*.apps.test (wildcard))",
                "--",
                "Open status page",
                "Trust the local CA…",
                "Switch context > (✓ kind-dev), minikube",
                "Pause",
                "--",
                "Quit devingress",
            ]
        );
        let m = menu(Some(&s));
        assert!(m.contains(&item("alpaca.example.com", MenuAction::Open("http://alpaca.example.com:8080/".into()))));
        assert!(m.contains(&item("Open status page", MenuAction::Open("http://devingress.localhost:8080/".into()))));
    }

    #[test]
    fn a_trusted_ca_opens_https_and_paused_offers_resume() {
        let s = status(true, true);
        let m = menu(Some(&s));
        assert!(m.contains(&item("alpaca.example.com", MenuAction::Open("https://alpaca.example.com/".into()))));
        assert!(!labels(&m).contains(&"Trust the local CA…".to_string()));
        assert!(m.contains(&item("Resume", MenuAction::Resume)));
        assert_eq!(icon_state(Some(&s)), State::Degraded);
        assert!(tooltip(Some(&s)).starts_with("devingress: paused (kind-dev), 2 host(s)"));
    }

    #[test]
    fn load_balancers_are_listed_with_their_address_or_why_not() {
        use crate::status::model::{LbPortStatus, LoadBalancerStatus};
        let mut s = status(true, false);
        s.load_balancers = vec![LoadBalancerStatus {
            service: "data/redis".into(),
            address: "127.0.0.1".into(),
            ready: 2,
            total: 3,
            ports: vec![
                LbPortStatus { port: 6379, protocol: "TCP".into(), ..Default::default() },
                LbPortStatus { port: 53, protocol: "UDP".into(), error: Some("UDP …".into()), ..Default::default() },
            ],
        }];
        let l = labels(&menu(Some(&s)));
        let i = l.iter().position(|e| e == "(*.apps.test (wildcard))").unwrap();
        assert_eq!(
            l[i + 1..i + 3],
            ["(data/redis · 127.0.0.1:6379 · 2/3 pods)", "(data/redis · port 53/UDP not served)"]
        );
    }

    #[test]
    fn gateway_route_hosts_open_in_the_browser_once_each() {
        let mut s = status(false, false);
        let row = |listener: &str, host: &str| crate::routes::gateway::table::GatewayRow {
            listener: listener.into(),
            host: host.into(),
            matched: "/".into(),
            action: String::new(),
            route: String::new(),
            via: String::new(),
        };
        s.gateway_routes =
            vec![row("http", "shop.example.com"), row("http", "shop.example.com"), row("http", "*.apps.test")];
        let m = menu(Some(&s));
        let shop: Vec<&Entry> =
            m.iter().filter(|e| matches!(e, Entry::Item { label, .. } if label == "shop.example.com")).collect();
        assert_eq!(shop, [&item("shop.example.com", MenuAction::Open("http://shop.example.com:8080/".into()))]);
    }

    #[test]
    fn no_daemon_means_stopped() {
        assert_eq!(icon_state(None), State::Stopped);
        assert_eq!(labels(&menu(None)), ["(devingress is stopped)", "--", "Quit"]);
    }
}
