//! The status page at `http://devingress.localhost/`: the model as one
//! self-contained HTML page (no external assets), with request counts and
//! the state refreshed from `/status.json` every two seconds.

use super::model::{State, Status};
use super::text::{bytes, uptime};

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:70rem;\
padding:0 1rem;color:#1d2230}h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:2rem 0 .5rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e3e6ee;\
vertical-align:top}th{font-weight:600;color:#5a6275}code{font:13px ui-monospace,monospace;background:#f2f4f8;\
padding:.1rem .3rem;border-radius:4px}.state{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff;\
font-weight:600}.connected{background:#1f9d55}.degraded{background:#d97706}.connecting,.paused{background:#6b7280}\
.stopped{background:#b91c1c}.bad{color:#b91c1c}.ok{color:#1f9d55}.muted{color:#5a6275}ul{padding-left:1.2rem}";

const SCRIPT: &str = "setInterval(async()=>{try{const r=await fetch('/status.json',{cache:'no-store'});\
const s=await r.json();const st=document.getElementById('state');st.textContent=s.state;st.className='state '+s.state;\
document.getElementById('requests-total').textContent=s.requests.total;\
const hosts=s.hosts.map(h=>h.host).join(' ');if(hosts!==document.body.dataset.hosts){location.reload();return}\
for(const h of s.hosts){const e=document.querySelector('[data-requests=\"'+CSS.escape(h.host)+'\"]');\
if(e)e.textContent=h.requests;const f=document.querySelector('[data-errors=\"'+CSS.escape(h.host)+'\"]');\
if(f)f.textContent=h.errors}}catch(e){const st=document.getElementById('state');st.textContent='stopped';\
st.className='state stopped'}},2000);";

/// The page.
pub fn html(s: &Status) -> String {
    let mut o = String::new();
    let hosts: Vec<&str> = s.hosts.iter().map(|h| h.host.as_str()).collect();
    o.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>devingress: {}</title><style>{STYLE}</style></head>\
         <body data-hosts=\"{}\">",
        s.state.word(),
        esc(&hosts.join(" "))
    ));
    o.push_str(&format!(
        "<h1>devingress <span id=\"state\" class=\"state {w}\">{w}</span></h1>\
         <p class=\"muted\">cluster <b>{}</b> (context <b>{}</b>) at <code>{}</code>{} · version {} · pid {} · up {}</p>",
        esc(&s.cluster.cluster),
        esc(&s.cluster.context),
        esc(&s.cluster.server),
        s.cluster.version.as_deref().map(|v| format!(", Kubernetes {}", esc(v))).unwrap_or_default(),
        esc(&s.version),
        s.pid,
        uptime(s.uptime_secs),
        w = s.state.word(),
    ));
    if !s.reasons.is_empty() {
        o.push_str("<ul class=\"bad\">");
        for r in &s.reasons {
            o.push_str(&format!("<li>{}</li>", esc(r)));
        }
        o.push_str("</ul>");
    }

    o.push_str(&format!("<h2>Hosts ({})</h2>", s.hosts.len()));
    if s.hosts.is_empty() {
        o.push_str("<p class=\"muted\">No Ingress is served yet.</p>");
    } else {
        o.push_str(
            "<table id=\"hosts\"><thead><tr><th>Host</th><th>Path</th><th>Backend</th><th>Pods ready</th>\
             <th>Requests</th><th>5xx</th><th>Ingress</th></tr></thead><tbody>",
        );
        for h in &s.hosts {
            let rows = h.routes.len().max(1);
            let links: Vec<String> = h.urls.iter().map(|u| format!("<a href=\"{0}\">{0}</a>", esc(u))).collect();
            let first_cell = if links.is_empty() {
                format!("<code>{}</code>", esc(&h.host))
            } else {
                format!("<b>{}</b><br>{}", esc(&h.host), links.join("<br>"))
            };
            for (i, r) in h.routes.iter().enumerate() {
                o.push_str("<tr class=\"host-row\">");
                if i == 0 {
                    o.push_str(&format!("<td rowspan=\"{rows}\" class=\"host\">{first_cell}</td>"));
                }
                let pods = match &r.problem {
                    Some(p) => format!("<span class=\"bad\">{}/{}: {}</span>", r.ready, r.total, esc(p)),
                    None => format!("<span class=\"ok\">{}/{}</span>", r.ready, r.total),
                };
                o.push_str(&format!(
                    "<td><code>{}</code> <span class=\"muted\">{}</span></td><td>{}</td><td>{pods}</td>",
                    esc(&r.path),
                    esc(&r.path_type),
                    esc(&r.backend)
                ));
                if i == 0 {
                    o.push_str(&format!(
                        "<td rowspan=\"{rows}\" data-requests=\"{h0}\">{}</td><td rowspan=\"{rows}\" \
                         data-errors=\"{h0}\">{}</td>",
                        h.requests,
                        h.errors,
                        h0 = esc(&h.host)
                    ));
                }
                o.push_str(&format!("<td>{}</td></tr>", esc(&r.ingress)));
            }
        }
        o.push_str("</tbody></table>");
    }
    if !s.gateway_routes.is_empty() {
        o.push_str(&format!("<h2>Gateway routes ({})</h2>", s.gateway_routes.len()));
        o.push_str(
            "<table id=\"gateway-routes\"><thead><tr><th>Listener</th><th>Host</th><th>Match</th><th>Backends</th>\
             <th>Route</th><th>Gateway</th></tr></thead><tbody>",
        );
        for r in &s.gateway_routes {
            o.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.listener),
                esc(&r.host),
                esc(&r.matched),
                esc(&r.action),
                esc(&r.route),
                esc(&r.via)
            ));
        }
        o.push_str("</tbody></table>");
    }
    if !s.load_balancers.is_empty() {
        o.push_str(&format!("<h2>Load balancers ({})</h2>", s.load_balancers.len()));
        o.push_str(
            "<table id=\"load-balancers\"><thead><tr><th>Service</th><th>Address</th><th>Pods ready</th>\
             <th>Open</th><th>Connections</th><th>Bytes in / out</th><th>Errors</th></tr></thead><tbody>",
        );
        for lb in &s.load_balancers {
            for p in &lb.ports {
                let pods = if lb.ready == 0 {
                    format!("<span class=\"bad\">{}/{}</span>", lb.ready, lb.total)
                } else {
                    format!("<span class=\"ok\">{}/{}</span>", lb.ready, lb.total)
                };
                match &p.error {
                    None => o.push_str(&format!(
                        "<tr><td>{}</td><td><code>{}:{}</code></td><td>{pods}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                        esc(&lb.service),
                        esc(&lb.address),
                        p.port,
                        p.open,
                        p.connections,
                        bytes(p.bytes_in),
                        bytes(p.bytes_out),
                        p.errors
                    )),
                    Some(e) => o.push_str(&format!(
                        "<tr><td>{}</td><td><code>{}/{}</code></td><td colspan=\"5\"><span class=\"bad\">not served</span>: {}</td></tr>",
                        esc(&lb.service),
                        p.port,
                        esc(&p.protocol),
                        esc(e)
                    )),
                }
            }
        }
        o.push_str("</tbody></table>");
    }
    o.push_str(&format!(
        "<p>Requests answered: <b id=\"requests-total\">{}</b> <span class=\"muted\">(2xx {} · 3xx {} · 4xx {} · 5xx {})</span></p>",
        s.requests.total,
        s.requests.classes.ok,
        s.requests.classes.redirect,
        s.requests.classes.client_error,
        s.requests.classes.server_error
    ));

    o.push_str("<h2>Set-up</h2><table><tbody>");
    let https = if s.tls.enabled {
        match (&s.tls.ca_subject, s.tls.ca_trusted) {
            (Some(subject), true) => format!("<span class=\"ok\">trusted</span>: {}", esc(subject)),
            (Some(subject), false) => {
                format!("<span class=\"bad\">not trusted</span>: {}; run <code>devingress trust</code>", esc(subject))
            }
            (None, _) => "on".into(),
        }
    } else {
        "off (<code>--no-https</code>)".into()
    };
    o.push_str(&format!("<tr><th>HTTPS certificates</th><td id=\"ca\">{https}</td></tr>"));
    let dns = match (&s.dns.resolver, &s.dns.problem) {
        (Some(r), _) => format!("<span class=\"ok\">set up</span>: {}", esc(r)),
        (None, Some(p)) => format!("<span class=\"bad\">not set up</span>: {}", esc(p)),
        (None, None) => "off".into(),
    };
    o.push_str(&format!("<tr><th>DNS</th><td id=\"dns\">{dns}</td></tr>"));
    for (what, addr) in [("HTTP", &s.listeners.http), ("HTTPS", &s.listeners.https), ("DNS server", &s.listeners.dns)] {
        if let Some(a) = addr {
            o.push_str(&format!("<tr><th>{what}</th><td><code>{}</code></td></tr>", esc(a)));
        }
    }
    o.push_str("</tbody></table>");

    o.push_str("<h2>Recent errors</h2>");
    if s.requests.recent_errors.is_empty() {
        o.push_str("<p class=\"muted\" id=\"errors\">None.</p>");
    } else {
        o.push_str("<ul id=\"errors\">");
        for e in s.requests.recent_errors.iter().rev().take(20) {
            o.push_str(&format!(
                "<li><code>{}</code> {} <b>{}</b> {}</li>",
                esc(&e.at),
                esc(&e.host),
                e.status,
                esc(&e.message)
            ));
        }
        o.push_str("</ul>");
    }
    if !s.skipped.is_empty() {
        o.push_str("<h2>Skipped Ingresses</h2><ul>");
        for k in &s.skipped {
            o.push_str(&format!("<li>{}</li>", esc(k)));
        }
        o.push_str("</ul>");
    }
    if s.state != State::Stopped {
        o.push_str(&format!("<script>{SCRIPT}</script>"));
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Stats;
    use crate::status::model::{Facts, Listeners, build};

    #[test]
    fn the_page_links_hosts_and_escapes_everything() {
        let table = crate::routes::table_for_hosts(&["alpaca.example.com", "*.apps.test"]);
        let stats = Stats::default();
        stats.record("alpaca.example.com", 502, Some("<script>alert(1)</script>"));
        let facts = Facts {
            listeners: Listeners { http: Some("127.0.0.1:8080".into()), ..Listeners::default() },
            ..Facts::default()
        };
        let page = html(&build(&table, &stats, facts));
        assert!(page.contains("<a href=\"http://alpaca.example.com:8080/\">http://alpaca.example.com:8080/</a>"));
        assert!(page.contains("<code>*.apps.test</code>"), "wildcards are not links");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains("<script>alert"));
        assert!(!page.contains("http://") || !page.contains("src=\"http"), "no external assets");
        assert!(page.contains("data-hosts=\"alpaca.example.com *.apps.test\""));
    }

    #[test]
    fn load_balancers_show_their_address_counters_and_why_a_port_is_not_served() {
        use crate::status::model::{LbPortStatus, LoadBalancerStatus};
        let table = crate::routes::table_for_hosts(&["alpaca.example.com"]);
        let facts = Facts {
            load_balancers: vec![LoadBalancerStatus {
                service: "data/redis".into(),
                address: "127.0.0.1".into(),
                ready: 0,
                total: 1,
                ports: vec![
                    LbPortStatus {
                        port: 6379,
                        protocol: "TCP".into(),
                        connections: 3,
                        bytes_in: 2048,
                        ..Default::default()
                    },
                    LbPortStatus {
                        port: 80,
                        protocol: "TCP".into(),
                        error: Some("port 80 is devingress's own <HTTP> port".into()),
                        ..Default::default()
                    },
                ],
            }],
            ..Facts::default()
        };
        let page = html(&build(&table, &Stats::default(), facts));
        assert!(page.contains("<h2>Load balancers (1)</h2>"), "{page}");
        assert!(page.contains(
            "<tr><td>data/redis</td><td><code>127.0.0.1:6379</code></td><td><span class=\"bad\">0/1</span></td>\
             <td>0</td><td>3</td><td>2.0 KiB / 0 B</td><td>0</td></tr>"
        ));
        assert!(page.contains("not served</span>: port 80 is devingress&#39;s own &lt;HTTP&gt; port"), "{page}");
    }

    #[test]
    fn gateway_routes_get_a_table() {
        let table = crate::routes::table_for_hosts(&["alpaca.example.com"]);
        let mut s = build(&table, &Stats::default(), Facts::default());
        s.gateway_routes = vec![crate::routes::gateway::table::GatewayRow {
            listener: "http".into(),
            host: "shop.example.com".into(),
            matched: "/ x-canary=<yes>".into(),
            action: "default/bandicoot:8080 w1 1/1".into(),
            route: "default/shop rule 0".into(),
            via: "default/web http".into(),
        }];
        let page = html(&s);
        assert!(page.contains("<h2>Gateway routes (1)</h2>"), "{page}");
        assert!(page.contains(
            "<tr><td>http</td><td><code>shop.example.com</code></td><td><code>/ x-canary=&lt;yes&gt;</code></td>\
             <td>default/bandicoot:8080 w1 1/1</td><td>default/shop rule 0</td><td>default/web http</td></tr>"
        ));
    }
}
