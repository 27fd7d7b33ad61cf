//! The HTTP front of the simulator: its own accept loop (so a fault can close a connection with
//! no answer at all), global and per-fault latency, injected faults and the request record,
//! wrapped around every route (Kubernetes, health and ARM alike).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::sim::faults::{Faults, fault_body};
use crate::sim::record::Recorder;

/// Everything a request passes through.
pub struct Front {
    /// All routes.
    pub router: axum::Router,
    /// Injected faults.
    pub faults: Faults,
    /// The request record.
    pub record: Arc<Recorder>,
    /// `[sim] latency`, added to every answer.
    pub latency: Duration,
    /// `http` or `https`: what clients use to reach this server.
    pub scheme: &'static str,
}

/// The scheme a request came in with, as a request extension (for absolute URLs).
#[derive(Debug, Clone, Copy)]
pub struct Scheme(pub &'static str);

/// Returned by the service to make hyper close the connection without writing an answer.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections until `shutdown` turns true (or its sender is gone).
pub async fn accept_loop(
    listener: TcpListener,
    front: Arc<Front>,
    shutdown: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    prefix: Option<Arc<str>>,
) {
    let mut stopped = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let front = front.clone();
                let mut stop = shutdown.clone();
                let (tls, prefix) = (tls.clone(), prefix.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let req = match &prefix {
                            Some(prefix) => {
                                let (mut parts, body) = req.into_parts();
                                parts.uri = prefixed(prefix, &parts.uri);
                                Request::from_parts(parts, body)
                            }
                            None => req,
                        };
                        handle(front.clone(), req)
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            // A client that fails the handshake (or never sends one) is dropped.
                            let Ok(Ok(stream)) =
                                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                            else {
                                return;
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            tokio::select! {
                                _ = conn => {}
                                _ = stopped_signal(&mut stop) => {}
                            }
                        }
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            tokio::select! {
                                _ = conn => {}
                                _ = stopped_signal(&mut stop) => {}
                            }
                        }
                    }
                });
            }
            _ = stopped_signal(&mut stopped) => break,
        }
    }
}

/// `uri` with its path under `prefix` (the query kept).
pub(crate) fn prefixed(prefix: &str, uri: &axum::http::Uri) -> axum::http::Uri {
    let path = uri.path();
    let text = match uri.query() {
        Some(q) => format!("{prefix}{path}?{q}"),
        None => format!("{prefix}{path}"),
    };
    text.parse().unwrap_or_else(|_| uri.clone())
}

/// Resolves once the shutdown flag is set or its sender is gone.
pub async fn stopped_signal(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// The largest request body the simulator reads; a larger one is answered 413.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

fn too_large() -> Response<Body> {
    let body = serde_json::json!({"error": {"code": "RequestEntityTooLarge",
        "message": format!("the request body is larger than the simulator's limit of {MAX_BODY} bytes")}});
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

pub(crate) async fn handle(
    front: Arc<Front>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(Scheme(front.scheme));
    // A client that joins an endpoint ending in `/` with a path starting with `/` sends `//…`
    // (the Azure CLI's endpoint discovery does); the front door reads it as `/…`.
    if parts.uri.path().starts_with("//") {
        let path = format!("/{}", parts.uri.path().trim_start_matches('/'));
        let rebuilt = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(uri) = rebuilt.parse() {
            parts.uri = uri;
        }
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Ok(too_large());
    }
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Ok(too_large()),
        Err(_) => return Err(DropConnection),
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let index = front.record.start(&method, &path, parts.uri.query(), &bytes);
    let injection = front.faults.take(&method, &path);
    let delay = front.latency + injection.as_ref().map(|i| i.latency).unwrap_or_default();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    match injection {
        Some(i) if i.drop || i.status.is_some() => {
            if i.applied {
                // The request takes effect; its answer is lost.
                let _ = front.router.clone().oneshot(req).await;
            }
            if i.drop {
                front.record.finish(index, None, true, true);
                return Err(DropConnection);
            }
            let status = i.status.unwrap_or(500);
            let mut resp = Response::new(Body::from(fault_body(&path, status).to_string()));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Some(secs) = i.retry_after {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            front.record.finish(index, Some(status), true, false);
            Ok(resp)
        }
        other => {
            let resp = match front.router.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            front.record.finish(index, Some(resp.status().as_u16()), other.is_some(), false);
            Ok(resp)
        }
    }
}
