//! The HTTP proxy: accepts connections, routes each request by the current
//! table, and passes it to a pod through the upstream client.

mod headers;
mod mirror;
mod pages;
mod ports;
mod screen;

pub use headers::{ClientInfo, client_ip, set_forwarded, strip_hop_by_hop, upgrade_protocol};
pub use ports::{OwnPorts, OwnPortsReport};

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::cluster::Health;
use crate::routes::gateway::{self, CorsAnswer, Filter, GatewayAction, Origin, RequestParts, Slot};
use crate::routes::{RouteTable, normalize_request_host};
use crate::status::{STATUS_HOST, StatusHub};
use crate::upstream::{BodyError, RequestHead, Upstream, UpstreamError};

/// The body of responses the proxy sends to clients.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// What every request handler reads.
#[derive(Clone)]
pub struct Proxy {
    /// The current routing table.
    pub table: watch::Receiver<Arc<RouteTable>>,
    /// Where requests go.
    pub upstream: Upstream,
    /// The API server's state, for the "not loaded yet" page.
    pub health: Arc<Health>,
    /// Which Gateway listeners this listener serves: devingress's HTTP or
    /// HTTPS port (Gateway ports 80 and 443, and every Ingress), or a
    /// listener's port of its own (Gateway routes only).
    pub slot: Slot,
    /// The HTTPS port, when HTTPS is served: `spec.tls` hosts on the HTTP
    /// listener are redirected there (rule 19).
    pub https_port: Option<u16>,
    /// The HTTP port, for redirects of Gateway routes.
    pub http_port: u16,
    /// The status model: counters, pause, and the status page.
    pub status: Arc<StatusHub>,
}

/// Serves `listener` until `shutdown` resolves, then lets in-flight requests
/// finish for up to `grace`. With `tls`, connections are TLS first.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // A client that never finishes its headers is dropped (slowloris).
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(256 * 1024);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let ip = client_ip(peer.ip());
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            let ip = ip.clone();
            async move { Ok::<_, Infallible>(handle(&proxy, ip, local_port, req).await) }
        });
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        let span = tracing::debug_span!("conn", %peer);
        tokio::spawn(
            async move {
                let result = match tls {
                    None => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    },
                };
                if let Err(e) = result {
                    tracing::debug!("connection ended with error: {e}");
                }
            }
            .instrument(span),
        );
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {grace:?}; closing them");
    }
}

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers one request from the client at `ip` ([`client_ip`]): the status
/// page, or the route's pod; counts it. Never fails: problems become pages.
pub async fn handle(proxy: &Proxy, ip: HeaderValue, local_port: u16, req: Request<Incoming>) -> Response<ProxyBody> {
    if let Some(refused) = screen::refuse(&req) {
        return refused;
    }
    let host_value = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    let host = host_value.as_deref().map(normalize_request_host).unwrap_or_default();
    if host == STATUS_HOST {
        return status_page(proxy, req.method(), req.uri().path());
    }
    // One table per request: it routes the request and says what it counts under.
    let table = proxy.table.borrow().clone();
    let res = if proxy.status.paused() {
        pages::paused()
    } else {
        forward(proxy, &table, ip, local_port, req, host_value, &host).await
    };
    let status = res.status();
    let reason = match res.extensions().get::<pages::ErrorReason>() {
        Some(r) => Some(r.0.clone()),
        None if status.is_server_error() => Some(format!("the pod answered {status}")),
        None => None,
    };
    // Counted under the served host (a wildcard's pattern, `*` for the default backend).
    let counted_as = table.served_as(&host).unwrap_or(host);
    proxy.status.stats.record(&counted_as, status.as_u16(), reason.as_deref());
    res
}

/// The answer of a rule with a `RequestRedirect` filter (rule 16).
fn gateway_redirect(
    proxy: &Proxy,
    rule: &gateway::table::GatewayRule,
    slot: Slot,
    local_port: u16,
    host: &str,
    req: &Request<Incoming>,
) -> Response<ProxyBody> {
    let Some(Filter::Redirect { scheme, hostname, port, path, status }) =
        rule.filters.iter().find(|f| matches!(f, Filter::Redirect { .. }))
    else {
        return pages::page(StatusCode::INTERNAL_SERVER_ERROR, "A redirect rule without a redirect.", "");
    };
    let origin = Origin {
        scheme: slot.scheme(),
        host,
        listener_port: slot.listener_port(),
        http_port: if slot == Slot::Http { local_port } else { proxy.http_port },
        https_port: if slot == Slot::Https { Some(local_port) } else { proxy.https_port },
    };
    let new_path = match path {
        Some(change) => gateway::filters::changed_path(change, req.uri().path(), &rule.matched.path),
        None => req.uri().path().to_string(),
    };
    let location = gateway::filters::redirect_location(
        scheme.as_deref(),
        hostname.as_deref(),
        *port,
        &new_path,
        req.uri().query(),
        origin,
    );
    let mut res = Response::new(http_body_util::Empty::new().map_err(|n| match n {}).boxed());
    *res.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The status page, its JSON, or a 404. They only show: nothing on them
/// changes devingress (pause, resume and stop go through the control socket,
/// which only the user can reach), and they send no CORS headers, so a web
/// page of another origin cannot read them.
fn status_page(proxy: &Proxy, method: &http::Method, path: &str) -> Response<ProxyBody> {
    if method != http::Method::GET && method != http::Method::HEAD {
        let mut res = pages::page(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("The status page only shows; {method} changes nothing here."),
            "Pause, resume and stop devingress from the tray menu or the CLI.",
        );
        res.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    match path {
        "/" => pages::document("text/html; charset=utf-8", crate::status::page::html(&proxy.status.snapshot())),
        "/status.json" => {
            let json = serde_json::to_string_pretty(&proxy.status.snapshot()).expect("status serializes");
            pages::document("application/json", json)
        }
        other => pages::page(StatusCode::NOT_FOUND, &format!("No page {other:?} here."), "The status page is at /."),
    }
}

/// Routes and forwards one request.
async fn forward(
    proxy: &Proxy,
    table: &RouteTable,
    ip: HeaderValue,
    local_port: u16,
    mut req: Request<Incoming>,
    host_value: Option<String>,
    host: &str,
) -> Response<ProxyBody> {
    let host = host.to_string();
    let path = req.uri().path().to_string();
    // A Gateway route takes its host before any Ingress does.
    let slot = proxy.slot;
    let parts =
        RequestParts { path: &path, method: req.method().as_str(), headers: req.headers(), query: req.uri().query() };
    let mut rule = None;
    let mut backend_filters: &[Filter] = &[];
    let backend = match table.gateway.route(slot, &host, &parts) {
        Some(GatewayAction::Forward(backend, r, own)) => {
            rule = Some(r);
            backend_filters = own;
            backend.clone()
        }
        Some(GatewayAction::Redirect(r)) => return gateway_redirect(proxy, r, slot, local_port, &host, &req),
        Some(GatewayAction::Fail(why, rule)) => {
            return pages::page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("HTTPRoute {} (rule {}) cannot send this request to a backend.", rule.route, rule.rule),
                &why,
            );
        }
        Some(GatewayAction::NoRule) => {
            return pages::not_found(table, &host, &path, pages::may_list_hosts(table, &host, true));
        }
        // A listener's port of its own serves its Gateway routes only.
        None if matches!(slot, Slot::Port { .. }) => {
            return pages::page(
                StatusCode::NOT_FOUND,
                &format!("No Gateway route serves {host:?} on port {}.", slot.listener_port()),
                "`devingress routes` lists the routes of each listener.",
            );
        }
        None => {
            if let (Some(port), Slot::Http) = (proxy.https_port, slot) {
                if table.tls_for(&host).is_some_and(|t| t.redirect) {
                    return pages::redirect_to_https(
                        &host,
                        port,
                        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
                    );
                }
            }
            let Some(matched) = table.route(&host, &path) else {
                if !table.synced {
                    return pages::loading(proxy.health.problem());
                }
                return pages::not_found(table, &host, &path, pages::may_list_hosts(table, &host, false));
            };
            matched.backend.clone()
        }
    };
    // CORS: a preflight is answered here, pods or not.
    let cors = rule.and_then(|r| {
        r.filters.iter().find_map(|f| match f {
            Filter::Cors(c) => Some(c.answer(req.method().as_str(), req.headers())),
            _ => None,
        })
    });
    let cors_headers = match cors {
        Some(CorsAnswer::Preflight(Some(headers))) => return pages::preflight(headers),
        Some(CorsAnswer::Preflight(None)) => {
            let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or_default();
            let r = rule.expect("a CORS answer comes from a rule");
            return pages::page(
                StatusCode::FORBIDDEN,
                &format!("Origin {origin:?} may not make cross-origin requests here."),
                &format!(
                    "HTTPRoute {} rule {} has a CORS filter whose allowOrigins does not list it.",
                    r.route, r.rule
                ),
            );
        }
        Some(CorsAnswer::Actual(headers)) => headers,
        Some(CorsAnswer::None) | None => None,
    };
    let Some(ep) = backend.pick().cloned() else {
        // Before every watcher has its first list, a Service or its
        // endpoints may just not be loaded yet: say that, not "missing".
        if !table.synced {
            return pages::loading(proxy.health.problem());
        }
        return pages::unavailable(&backend);
    };
    let span = tracing::debug_span!("request", %host, %path, backend = %backend.display_name());
    async move {
        let client_upgrade = upgrade_protocol(req.headers());
        let on_client_upgrade = client_upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let body = match screen::checked_body(parts.version, body).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let mut headers = parts.headers;
        let info = ClientInfo {
            ip,
            proto: proxy.slot.scheme(),
            port: local_port,
            host: host_value.as_deref().and_then(|h| header::HeaderValue::from_str(h).ok()),
        };
        strip_hop_by_hop(&mut headers, client_upgrade.clone());
        // The pod sees the host the request was routed by: in the absolute
        // form (and HTTP/2), the target's authority, whatever a Host header says
        // (RFC 9112 §3.2.2).
        if parts.uri.authority().is_some() || !headers.contains_key(header::HOST) {
            if let Some(h) = &info.host {
                headers.insert(header::HOST, h.clone());
            }
        }
        set_forwarded(&mut headers, &info);
        let mut path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
        // The rule's filters, then the backendRef's own.
        for filter in rule.iter().flat_map(|r| r.filters.iter()).chain(backend_filters) {
            match filter {
                Filter::RequestHeaders(edits) => edits.apply(&mut headers),
                Filter::Rewrite { hostname, path: change } => {
                    if let Some(h) = hostname.as_deref().and_then(|h| header::HeaderValue::from_str(h).ok()) {
                        headers.insert(header::HOST, h);
                    }
                    if let (Some(change), Some(r)) = (change, rule) {
                        let new = gateway::filters::changed_path(change, &path, &r.matched.path);
                        path_and_query = match parts.uri.query() {
                            Some(q) => format!("{new}?{q}"),
                            None => new,
                        };
                    }
                }
                Filter::ResponseHeaders(_) | Filter::Redirect { .. } | Filter::Mirror { .. } | Filter::Cors(_) => {}
            }
        }
        let head = RequestHead { method: parts.method, path_and_query, headers };
        // Mirrors get a copy, body and all; their answers are dropped and
        // never delay this one.
        let has_body = !hyper::body::Body::is_end_stream(&body);
        let copies: Vec<mirror::Copy> = rule
            .iter()
            .flat_map(|r| r.filters.iter())
            .filter_map(|f| match f {
                Filter::Mirror { backend: Some(m), share, .. } if share.take() => {
                    mirror::start(&proxy.upstream, m, &head, has_body)
                }
                _ => None,
            })
            .collect();
        let body = if copies.is_empty() || !has_body {
            body.map_err(BodyError::from).boxed()
        } else {
            mirror::Tee::new(body, copies).map_err(BodyError::from).boxed()
        };
        let sent = proxy.upstream.send(&backend, ep, &head, body);
        let answered = match rule.and_then(|r| r.timeout.map(|t| (r, t))) {
            Some((r, limit)) => match tokio::time::timeout(limit, sent).await {
                Ok(answered) => answered,
                Err(_) => {
                    return pages::page(
                        StatusCode::GATEWAY_TIMEOUT,
                        &format!("The backend did not answer within {limit:?}."),
                        &format!("HTTPRoute {} rule {} sets that timeout.", r.route, r.rule),
                    );
                }
            },
            None => sent.await,
        };
        let mut res = match answered {
            Ok(answer) => {
                tracing::debug!(pod = %answer.endpoint, status = answer.response.status().as_u16(), "answered");
                answer.response
            }
            Err(e @ UpstreamError::ClientBody { .. }) => {
                tracing::debug!("{e}");
                return screen::bad_body(&e.to_string());
            }
            Err(e) => {
                tracing::warn!("{e}");
                return pages::bad_gateway(&e);
            }
        };
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(on_client) = on_client_upgrade {
                let on_upstream = hyper::upgrade::on(&mut res);
                tokio::spawn(
                    async move {
                        match tokio::try_join!(on_client, on_upstream) {
                            Ok((client, upstream)) => {
                                let mut client = TokioIo::new(client);
                                let mut upstream = TokioIo::new(upstream);
                                match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                                    Ok((to_pod, to_client)) => {
                                        tracing::debug!(to_pod, to_client, "upgraded connection closed")
                                    }
                                    Err(e) => tracing::debug!("upgraded connection ended: {e}"),
                                }
                            }
                            Err(e) => tracing::debug!("upgrade failed: {e}"),
                        }
                    }
                    .in_current_span(),
                );
                let (parts, _) = res.into_parts();
                return Response::from_parts(parts, http_body_util::Empty::new().map_err(|n| match n {}).boxed());
            }
        }
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers, None);
        for filter in rule.iter().flat_map(|r| r.filters.iter()).chain(backend_filters) {
            if let Filter::ResponseHeaders(edits) = filter {
                edits.apply(&mut parts.headers);
            }
        }
        for (name, value) in cors_headers.iter().flatten() {
            if name == header::VARY {
                parts.headers.append(name, value.clone());
            } else {
                parts.headers.insert(name, value.clone());
            }
        }
        Response::from_parts(parts, body.boxed())
    }
    .instrument(span)
    .await
}
