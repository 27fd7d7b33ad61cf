//! One port per simulated cluster: each context's API server answers at the root of its own
//! loopback port (`/version`, `/apis`, `/healthz`, as a real API server), so kubectl's
//! `get --raw` and `kubectl proxy` work unchanged. A request on a cluster's port is served,
//! faulted and recorded as the same request under `/k8s/<context>` on the main port.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::sim::server::{self, Front};

/// Accepts connections on a cluster's own port (over TLS when `tls` is given, as the main port)
/// until `shutdown` turns true; each request's path is served as `prefix` + path (`prefix` is
/// `/k8s/<encoded context>`).
pub async fn serve_cluster(
    listener: TcpListener,
    front: Arc<Front>,
    prefix: String,
    shutdown: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    server::accept_loop(listener, front, shutdown, tls, Some(prefix.into())).await;
}

#[cfg(test)]
mod tests {
    use axum::http::Uri;

    use crate::sim::server::prefixed;

    #[test]
    fn the_path_moves_under_the_prefix_and_the_query_stays() {
        let uri: Uri = "/apis/apps/v1?watch=1".parse().unwrap_or_default();
        assert_eq!(prefixed("/k8s/prod", &uri).to_string(), "/k8s/prod/apis/apps/v1?watch=1");
        let root: Uri = "/".parse().unwrap_or_default();
        assert_eq!(prefixed("/k8s/team/a:prod", &root).to_string(), "/k8s/team/a:prod/");
    }
}
