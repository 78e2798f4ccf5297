//! The short pages devingress answers with when it cannot pass a request on.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::ProxyBody;
use crate::routes::{Backend, RouteTable, Target};
use crate::status::STATUS_HOST;

/// Why devingress answered with an error of its own, for the status model.
#[derive(Debug, Clone)]
pub struct ErrorReason(pub String);

/// A plain-text page: what happened, then details.
pub fn page(status: StatusCode, headline: &str, details: &str) -> Response<ProxyBody> {
    let mut text = format!("{} {}\n\n{headline}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    if !details.is_empty() {
        text.push('\n');
        text.push_str(details);
        if !details.ends_with('\n') {
            text.push('\n');
        }
    }
    text.push_str("\n-- devingress\n");
    let mut res = Response::new(Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status.is_server_error() {
        let reason = if details.is_empty() { headline.to_string() } else { format!("{headline} {details}") };
        res.extensions_mut().insert(ErrorReason(reason.replace('\n', " ")));
    }
    res
}

/// 503: the user paused devingress.
pub fn paused() -> Response<ProxyBody> {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "devingress is paused.",
        "Resume it from the tray menu or with `devingress resume`.",
    )
}

/// A page of the given type (the status page and its JSON).
pub fn document(content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut res = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// 404: nothing routes this host and path. Lists the hosts that are served
/// when `list_hosts` (see [`may_list_hosts`]).
pub fn not_found(table: &RouteTable, host: &str, path: &str, list_hosts: bool) -> Response<ProxyBody> {
    let hosts = table.hosts();
    let details = if !list_hosts {
        format!(
            "devingress serves no route for {host:?}. `devingress routes` and http://{STATUS_HOST}/ list the hosts it serves."
        )
    } else if hosts.is_empty() {
        "No Ingress is served yet. Create one with `kubectl apply`, or see `devingress routes`.".to_string()
    } else {
        let list: Vec<String> = hosts.iter().map(|h| format!("  {h}")).collect();
        format!("Hosts served:\n{}", list.join("\n"))
    };
    page(StatusCode::NOT_FOUND, &format!("No Ingress rule matches host {host:?} and path {path:?}."), &details)
}

/// Whether a 404 for `host` may list the served hosts: only for a loopback
/// name or address, or a host that is served (its path matched nothing).
///
/// Why: under DNS rebinding, a web page on any site can point its own name
/// at 127.0.0.1 and read what devingress answers for that name. Such a name
/// is never loopback and never served, so the page learns nothing about the
/// cluster; someone who types a loopback name or a served host gets the list.
pub fn may_list_hosts(table: &RouteTable, host: &str, served: bool) -> bool {
    served
        || table.served_as(host).is_some()
        || host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// 503: the table is not loaded yet.
pub fn loading(problem: Option<String>) -> Response<ProxyBody> {
    let details = problem.unwrap_or_else(|| "Try again in a moment.".into());
    page(StatusCode::SERVICE_UNAVAILABLE, "devingress has not loaded the routes from the cluster yet.", &details)
}

/// 204: a CORS preflight allowed by a rule's `CORS` filter, with its headers.
pub fn preflight(headers: http::HeaderMap) -> Response<ProxyBody> {
    let mut res = Response::new(http_body_util::Empty::new().map_err(|n| match n {}).boxed());
    *res.status_mut() = StatusCode::NO_CONTENT;
    *res.headers_mut() = headers;
    res
}

/// 503: the route's backend has nowhere to send the request.
pub fn unavailable(backend: &Backend) -> Response<ProxyBody> {
    let svc = format!("{}/{}", backend.namespace, backend.service);
    let (headline, details) = match &backend.target {
        Target::ServiceMissing => (format!("Service {svc} does not exist."), String::new()),
        Target::Unsupported(why) => (format!("Backend {svc} cannot be served."), why.clone()),
        Target::Pods { not_ready, without_pod, .. } => (
            format!("Service {svc} (port {}) has no ready pods.", backend.port),
            match (not_ready, without_pod) {
                (0, 0) => "It has no endpoints: check the Service's selector and that its pods are running.".into(),
                (0, n) => format!(
                    "Its {n} endpoint(s) name no pod (no targetRef) and no pod has their IP; \
                     devingress forwards only to pods."
                ),
                (n, _) => format!("{n} endpoint(s) exist but are not ready."),
            },
        ),
    };
    page(StatusCode::SERVICE_UNAVAILABLE, &headline, &details)
}

/// 502: the pod could not be reached or failed mid-exchange.
pub fn bad_gateway(error: &crate::upstream::UpstreamError) -> Response<ProxyBody> {
    let headline = match error {
        crate::upstream::UpstreamError::Forbidden { .. } => "devingress may not port-forward to the pod (RBAC).",
        _ => "The upstream pod did not answer.",
    };
    page(StatusCode::BAD_GATEWAY, headline, &error.to_string())
}

/// 308: a `spec.tls` host asked for over plain HTTP (rule 19).
pub fn redirect_to_https(host: &str, https_port: u16, path_and_query: &str) -> Response<ProxyBody> {
    let authority = if https_port == 443 { host.to_string() } else { format!("{host}:{https_port}") };
    let location = format!("https://{authority}{path_and_query}");
    let mut res = page(StatusCode::PERMANENT_REDIRECT, &format!("This host is served over HTTPS: {location}"), "");
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}
