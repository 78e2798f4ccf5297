//! `devingress status` as text: a summary and a table of hosts.

use super::model::Status;
use crate::routes::columns;

/// `512 B`, `1.5 KiB`, `3.0 MiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// `42s`, `3m 5s`, `2h 10m`.
pub fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// The text `devingress status` prints.
pub fn render(s: &Status) -> String {
    let mut o = String::new();
    o.push_str(&format!("devingress {}, pid {}, up {}: {}\n", s.version, s.pid, uptime(s.uptime_secs), s.state.word()));
    for r in &s.reasons {
        o.push_str(&format!("  ! {r}\n"));
    }
    o.push_str(&format!(
        "cluster   {} (context {}) at {}{}\n",
        s.cluster.cluster,
        s.cluster.context,
        s.cluster.server,
        s.cluster.version.as_deref().map(|v| format!(", Kubernetes {v}")).unwrap_or_default()
    ));
    if let Some(changed) = &s.cluster.kubeconfig_changed {
        o.push_str(&format!("          ! {changed}\n"));
    }
    let mut listen = Vec::new();
    if let Some(a) = &s.listeners.http {
        listen.push(format!("http://{a}"));
    }
    if let Some(a) = &s.listeners.https {
        listen.push(format!("https://{a}"));
    }
    if let Some(a) = &s.listeners.dns {
        listen.push(format!("dns {a}"));
    }
    o.push_str(&format!("listening {}\n", listen.join("  ")));
    let dns = match (&s.dns.resolver, &s.dns.problem) {
        (Some(r), _) => r.clone(),
        (None, Some(p)) => format!("not set up: {p}"),
        (None, None) => "off".into(),
    };
    o.push_str(&format!("resolver  {dns}\n"));
    let ca = match (&s.tls.ca_subject, s.tls.ca_trusted) {
        (_, _) if !s.tls.enabled => "HTTPS off".to_string(),
        (Some(c), true) => format!("{c}: trusted"),
        (Some(c), false) => format!("{c}: not trusted (run `devingress trust`)"),
        (None, _) => "HTTPS on".into(),
    };
    o.push_str(&format!("CA        {ca}\n"));
    let c = &s.requests.classes;
    o.push_str(&format!(
        "requests  {} (2xx {}, 3xx {}, 4xx {}, 5xx {}){}\n\n",
        s.requests.total,
        c.ok,
        c.redirect,
        c.client_error,
        c.server_error,
        if s.paused { ", paused" } else { "" }
    ));
    let mut rows = vec![["HOST", "PATH", "TYPE", "BACKEND", "READY", "REQUESTS", "5XX", "INGRESS"].map(String::from)];
    for h in &s.hosts {
        for (i, r) in h.routes.iter().enumerate() {
            let first = i == 0;
            rows.push([
                if first { h.host.clone() } else { String::new() },
                r.path.clone(),
                r.path_type.clone(),
                r.backend.clone(),
                format!("{}/{}", r.ready, r.total),
                if first { h.requests.to_string() } else { String::new() },
                if first { h.errors.to_string() } else { String::new() },
                r.ingress.clone(),
            ]);
        }
    }
    if s.hosts.is_empty() {
        o.push_str("no Ingress is served yet\n");
    } else {
        o.push_str(&columns(&rows));
    }
    if !s.gateway_routes.is_empty() {
        let mut rows = vec![["LISTENER", "HOST", "MATCH", "BACKENDS", "HTTPROUTE", "GATEWAY"].map(String::from)];
        for r in &s.gateway_routes {
            rows.push([
                r.listener.clone(),
                r.host.clone(),
                r.matched.clone(),
                r.action.clone(),
                r.route.clone(),
                r.via.clone(),
            ]);
        }
        o.push('\n');
        o.push_str(&columns(&rows));
    }
    if !s.load_balancers.is_empty() {
        let mut rows = vec![
            ["LOADBALANCER", "ADDRESS", "READY", "OPEN", "CONNECTIONS", "BYTES IN", "BYTES OUT", "ERRORS"]
                .map(String::from),
        ];
        let mut problems = Vec::new();
        for lb in &s.load_balancers {
            for p in &lb.ports {
                match &p.error {
                    None => rows.push([
                        lb.service.clone(),
                        format!("{}:{}", lb.address, p.port),
                        format!("{}/{}", lb.ready, lb.total),
                        p.open.to_string(),
                        p.connections.to_string(),
                        bytes(p.bytes_in),
                        bytes(p.bytes_out),
                        p.errors.to_string(),
                    ]),
                    Some(e) => {
                        problems.push(format!("  {} port {}/{} not served: {e}\n", lb.service, p.port, p.protocol))
                    }
                }
            }
        }
        o.push('\n');
        if rows.len() > 1 {
            o.push_str(&columns(&rows));
        }
        for p in problems {
            o.push_str(&p);
        }
    }
    if !s.requests.recent_errors.is_empty() {
        o.push_str("\nrecent errors:\n");
        for e in s.requests.recent_errors.iter().rev().take(10) {
            o.push_str(&format!("  {} {} {} {}\n", e.at, e.host, e.status, e.message));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Stats;
    use crate::status::model::{Facts, LbPortStatus, LoadBalancerStatus, build};

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(256 << 20), "256.0 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn load_balancers_get_a_table_and_ports_not_served_a_line_each() {
        let table = crate::routes::table_for_hosts(&["alpaca.example.com"]);
        let mut s = build(&table, &Stats::default(), Facts::default());
        s.load_balancers = vec![LoadBalancerStatus {
            service: "data/redis".into(),
            address: "127.0.0.1".into(),
            ready: 2,
            total: 2,
            ports: vec![
                LbPortStatus {
                    port: 6379,
                    protocol: "TCP".into(),
                    open: 1,
                    connections: 7,
                    bytes_in: 2048,
                    bytes_out: 100,
                    ..Default::default()
                },
                LbPortStatus {
                    port: 53,
                    protocol: "UDP".into(),
                    error: Some("UDP cannot go".into()),
                    ..Default::default()
                },
            ],
        }];
        let text = render(&s);
        assert!(
            text.contains("LOADBALANCER  ADDRESS         READY  OPEN  CONNECTIONS  BYTES IN  BYTES OUT  ERRORS\n"),
            "{text}"
        );
        assert!(
            text.contains("data/redis    127.0.0.1:6379  2/2    1     7            2.0 KiB   100 B      0\n"),
            "{text}"
        );
        assert!(text.contains("  data/redis port 53/UDP not served: UDP cannot go\n"), "{text}");
    }
}
