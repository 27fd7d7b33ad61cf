//! HTTP/2 to the Kubernetes API server: a TLS-terminating proxy (ALPN `h2` and `http/1.1`, a
//! certificate made for the test) in front of the simulator records the HTTP version of every
//! request and the TCP connections it accepts, while a `parallel` batch of 20 `k8s::undo` runs
//! through it. kubectl, which negotiates HTTP/2 by itself, checks the proxy is a fair server.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Request, Uri, Version};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rollbook::run::journal::RunStatus;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::k8s::{kubectl, start};

/// What the proxy saw.
#[derive(Default)]
struct Seen {
    /// TCP connections accepted, TLS handshake done or not.
    accepted: AtomicUsize,
    /// Per request: the number of the connection it came over, and its HTTP version.
    requests: Mutex<Vec<(usize, Version)>>,
}

impl Seen {
    fn requests(&self) -> Vec<(usize, Version)> {
        self.requests.lock().expect("requests").clone()
    }
}

/// A TLS proxy on 127.0.0.1 forwarding every request to `upstream` (`http://host:port`) over
/// HTTP/1.1; returns its address and the PEM of the certificate it presents.
async fn tls_proxy(upstream: String, seen: Arc<Seen>) -> (SocketAddr, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .expect("server certificate");
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let client: HttpClient<HttpConnector, Incoming> =
        HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let conn = seen.accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, client, seen, upstream) =
                (acceptor.clone(), client.clone(), seen.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let forward = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    seen.requests.lock().expect("requests").push((conn, req.version()));
                    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                    let to: Uri = format!("{upstream}{path}").parse().expect("upstream URI");
                    *req.uri_mut() = to;
                    *req.version_mut() = Version::HTTP_11;
                    req.headers_mut().remove(hyper::header::HOST);
                    client.request(req)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), forward)
                    .await;
            });
        }
    });
    (addr, made.cert.pem())
}

const N: usize = 20;

fn fleet() -> String {
    (0..N)
        .map(|i| {
            format!(
                "[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"d{i}\"\n\
                 revisions = [\"shop/d{i}:1.0.0\", \"shop/d{i}:2.0.0\"]\n\n"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_undos_share_one_http2_connection_over_tls() {
    let mut world = start(&fleet()).await;
    let sim_url = world.sim.k8s_server_url("prod").expect("context served");
    // `http://127.0.0.1:PORT/k8s/prod`: the proxy gets the origin, the kubeconfig the path.
    let slash = sim_url.match_indices('/').nth(2).map(|(i, _)| i).expect("URL with a path");
    let (origin, prefix) = sim_url.split_at(slash);
    let seen = Arc::new(Seen::default());
    let (addr, pem) = tls_proxy(origin.to_string(), seen.clone()).await;

    let ca = base64::engine::general_purpose::STANDARD.encode(pem);
    let kubeconfig = world.dir.path().join("kubeconfig-tls");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://{addr}{prefix}\n    certificate-authority-data: {ca}\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: prod\nusers:\n- name: prod\n  user:\n    token: rollbook-sim\ncurrent-context: prod\n"
        ),
    )
    .expect("kubeconfig written");
    world.kubeconfig = kubeconfig.clone();

    let script = format!(
        "let targets = [];\nfor i in 0..{N} {{ targets.push(#{{ context: \"prod\", namespace: \"shop\", deployment: `d${{i}}` }}); }}\nparallel(targets, |t| k8s::undo(t).changed, #{{ concurrency: {N} }})\n"
    );
    let report = world.run(&script, false).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let results = report.value.expect("value").as_array().expect("array").clone();
    assert_eq!(results.len(), N);
    for (i, r) in results.iter().enumerate() {
        assert_eq!((&r["ok"], &r["value"]), (&true.into(), &true.into()), "item {i}: {r}");
        let state = world.state(&format!("k8s/prod/shop/d{i}"));
        assert_eq!(state["image"], format!("shop/d{i}:1.0.0"), "d{i} rolled back: {state}");
        assert_eq!(state["revision"], 3, "d{i}: the old template comes back as revision 3: {state}");
    }

    let requests = seen.requests();
    assert!(requests.len() >= N, "at least one request per undo, saw {}", requests.len());
    assert!(requests.iter().all(|(_, v)| *v == Version::HTTP_2), "every request over HTTP/2: {requests:?}");
    let carried: BTreeSet<usize> = requests.iter().map(|(c, _)| *c).collect();
    // hyper's pool would dial once per request that finds no connection (9 dials of 20 were
    // seen here); the client holds the batch back until its first answer, so it dials once.
    assert_eq!(seen.accepted.load(Ordering::SeqCst), 1, "one TCP connection, one TLS handshake");
    assert_eq!(carried.len(), 1, "all {} requests over one connection: {requests:?}", requests.len());

    // kubectl negotiates HTTP/2 through the same proxy and gets an answer.
    let before = requests.len();
    let out = kubectl(&kubeconfig, &["get", "deploy", "-o", "name"]).await;
    assert_eq!(out.code, 0, "kubectl through the TLS proxy: {}", out.stderr);
    assert_eq!(out.stdout.lines().count(), N, "{}", out.stdout);
    let by_kubectl = &seen.requests()[before..];
    assert!(!by_kubectl.is_empty());
    assert!(
        by_kubectl.iter().all(|(_, v)| *v == Version::HTTP_2),
        "kubectl speaks HTTP/2 too: {by_kubectl:?}"
    );
}
