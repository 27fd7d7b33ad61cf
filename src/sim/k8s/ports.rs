//! One port per simulated cluster: each context's API server answers at the root of its own
//! loopback port (`/version`, `/apis`, `/healthz`, as a real API server), so kubectl's
//! `get --raw` and `kubectl proxy` work unchanged. A request on a cluster's port is served,
//! faulted and recorded as the same request under `/k8s/<context>` on the main port.

use std::sync::Arc;
use std::time::Duration;

use axum::http::Uri;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::sim::server::{self, Front};

/// Accepts connections on a cluster's own port until `shutdown` turns true; each request's path
/// is served as `prefix` + path (`prefix` is `/k8s/<encoded context>`).
pub async fn serve_cluster(
    listener: TcpListener,
    front: Arc<Front>,
    prefix: String,
    shutdown: watch::Receiver<bool>,
) {
    let prefix: Arc<str> = prefix.into();
    let mut stopped = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (front, prefix) = (front.clone(), prefix.clone());
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let (mut parts, body) = req.into_parts();
                        parts.uri = prefixed(&prefix, &parts.uri);
                        server::handle(front.clone(), hyper::Request::from_parts(parts, body))
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = server::stopped_signal(&mut stop) => {}
                    }
                });
            }
            _ = server::stopped_signal(&mut stopped) => break,
        }
    }
}

/// `uri` with its path under `prefix` (the query kept).
fn prefixed(prefix: &str, uri: &Uri) -> Uri {
    let path = uri.path();
    let text = match uri.query() {
        Some(q) => format!("{prefix}{path}?{q}"),
        None => format!("{prefix}{path}"),
    };
    text.parse().unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_moves_under_the_prefix_and_the_query_stays() {
        let uri: Uri = "/apis/apps/v1?watch=1".parse().unwrap_or_default();
        assert_eq!(prefixed("/k8s/prod", &uri).to_string(), "/k8s/prod/apis/apps/v1?watch=1");
        let root: Uri = "/".parse().unwrap_or_default();
        assert_eq!(prefixed("/k8s/team/a:prod", &root).to_string(), "/k8s/team/a:prod/");
    }
}
