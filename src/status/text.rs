//! `devingress status` as text: a summary and a table of hosts.

use super::model::Status;

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
        let widths: Vec<usize> = (0..8).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for r in &rows {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            o.push_str(line.join("  ").trim_end());
            o.push('\n');
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
