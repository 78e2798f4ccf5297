//! The routing table as text, for `devingress routes`.

use std::fmt::Write;

use super::{Backend, LbPortState, RouteTable};

/// Renders the table: one row per path or default backend, then the skipped
/// Ingresses and warnings.
pub fn render(table: &RouteTable) -> String {
    let mut rows: Vec<[String; 6]> = vec![["HOST", "PATH", "TYPE", "BACKEND", "READY", "INGRESS"].map(String::from)];
    let ready = |b: &Backend| match &b.target {
        t @ super::Target::Pods { .. } => {
            let (ready, total) = t.pod_counts();
            format!("{ready}/{total}")
        }
        super::Target::ServiceMissing => "no service".into(),
        super::Target::Unsupported(_) => "unsupported".into(),
    };
    for g in &table.groups {
        for p in &g.paths {
            rows.push([
                g.host.to_string(),
                p.rule.path.clone(),
                p.rule.kind.to_string(),
                p.backend.display_name(),
                ready(&p.backend),
                p.ingress.to_string(),
            ]);
        }
        if let Some(d) = &g.default_backend {
            rows.push([
                g.host.to_string(),
                "*".into(),
                "default".into(),
                d.backend.display_name(),
                ready(&d.backend),
                d.ingress.to_string(),
            ]);
        }
    }
    if let Some(d) = &table.default_backend {
        rows.push([
            "*".into(),
            "*".into(),
            "default".into(),
            d.backend.display_name(),
            ready(&d.backend),
            d.ingress.to_string(),
        ]);
    }
    let mut out = String::new();
    if rows.len() == 1 {
        out.push_str("No routes: no Ingress is served.\n");
    } else {
        out.push_str(&columns(&rows));
    }
    let gateway_rows = table.gateway.rows();
    if !gateway_rows.is_empty() {
        let mut rows = vec![["LISTENER", "HOST", "MATCH", "BACKENDS", "HTTPROUTE", "GATEWAY"].map(String::from)];
        for r in gateway_rows {
            rows.push([r.listener, r.host, r.matched, r.action, r.route, r.via]);
        }
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    if !table.load_balancers.is_empty() {
        let mut lb_rows = vec![["LOADBALANCER", "PORT", "READY", "SERVED"].map(String::from)];
        for lb in &table.load_balancers {
            for p in &lb.ports {
                let served = match &p.state {
                    LbPortState::Serve => format!("on the listen address, port {}", p.port),
                    LbPortState::UnsupportedProtocol => {
                        format!("no: {} cannot go through a pod port-forward", p.protocol)
                    }
                    LbPortState::Conflict(holder) => {
                        format!("no: port {} is served for {holder}, which is older", p.port)
                    }
                };
                lb_rows.push([lb.service.to_string(), format!("{}/{}", p.port, p.protocol), ready(&p.backend), served]);
            }
        }
        out.push('\n');
        out.push_str(&columns(&lb_rows));
    }
    if !table.skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped Ingresses:");
        for s in &table.skipped {
            let _ = writeln!(out, "  {}: {}: {}", s.ingress, s.field, s.reason);
        }
    }
    if !table.other_class.is_empty() {
        let _ = writeln!(out, "\nNot served (IngressClass):");
        for (ingress, why) in &table.other_class {
            let _ = writeln!(out, "  {ingress}: {why}");
        }
    }
    if !table.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &table.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

/// Rows as left-aligned columns two spaces apart, without trailing blanks.
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}
