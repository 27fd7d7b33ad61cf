//! Kubernetes contexts of one run: the kubeconfig (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`),
//! in-cluster config, contexts added in memory by `aks::credentials`, and one `kube::Client` per
//! context, built on first use and reused by every later call of the run.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::client::retry::RetryPolicy;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::{CallCx, Settings, Shared};

/// Retries of a request answered 429, 503 or 504, and their backoff.
const RETRIES: u32 = 3;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// The context name used for a pod's own service-account config.
pub const IN_CLUSTER: &str = "in-cluster";

/// Where the service account's namespace is, inside a pod.
const IN_CLUSTER_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The kubeconfig files read, in merge order, and the merged result.
struct FileConfig {
    paths: Vec<PathBuf>,
    merged: Option<Kubeconfig>,
}

/// Every context a run can reach, and the clients built so far.
#[derive(Default)]
pub struct KubeClients {
    /// The kubeconfig files, read once on first use (the error is kept as text to report again).
    file: Mutex<Option<Result<Arc<FileConfig>, String>>>,
    /// Contexts added by `aks::credentials`: context name → a kubeconfig holding it. Never written to disk.
    memory: Mutex<BTreeMap<String, Kubeconfig>>,
    /// Context name → its client, built once even when many calls ask for it at the same time
    /// (a `parallel` batch starting 50 items would otherwise build 50 clients and 50 pools).
    /// Shared, not copied, by the calls using it (its stack is a dozen layers to clone).
    clients: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<KubeClient>>>>>,
}

/// A context's service stack without kube's request buffer in front of it.
type Direct = tower::util::BoxCloneSyncService<
    http::Request<kube::client::Body>,
    http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, tower::BoxError>>,
    tower::BoxError,
>;

/// One context's client: kube's, and, where rollbook built the stack itself, that same stack
/// reachable without the request buffer `kube::Client` puts in front of it. The buffer is a task
/// that every request passes through, one more task hop per request: a fleet rollback sends
/// tens of thousands.
#[derive(Clone)]
pub struct KubeClient {
    /// kube's client, for everything that is not [`KubeClient::request`].
    pub client: Client,
    direct: Option<Direct>,
}

impl KubeClient {
    /// What `kube::Client::request` does (send, turn an error status into `Error::Api`, decode
    /// the JSON answer), on the stack without the buffer when there is one.
    pub async fn request<T: serde::de::DeserializeOwned>(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<T, kube::Error> {
        use http_body_util::BodyExt as _;
        use tower::{Service as _, ServiceExt as _};
        let Some(direct) = &self.direct else {
            return self.client.request(request).await;
        };
        let mut service = direct.clone();
        // As `kube::Client::send` sorts a failure of the stack.
        let answer = service
            .ready()
            .await
            .map_err(kube::Error::Service)?
            .call(request.map(kube::client::Body::from))
            .await
            // (kube also looks for a bare `hyper::Error`; hyper's pooled client under this stack
            // reports its own error type, which kube files under `Service` as here.)
            .map_err(|err| err.downcast::<kube::Error>().map(|e| *e).unwrap_or_else(kube::Error::Service))?;
        let status = answer.status();
        // kube reads the body into a `String`; read in place, it is copied only to report bad UTF-8.
        let body = answer.into_body().collect().await.map_err(kube::Error::Service)?.to_bytes();
        let text = match std::str::from_utf8(&body) {
            Ok(text) => text,
            Err(_) => {
                return Err(String::from_utf8(body.to_vec())
                    .map_err(kube::Error::FromUtf8)
                    .err()
                    .unwrap_or_else(|| kube::Error::Service("the answer is not UTF-8".into())));
            }
        };
        if status.is_client_error() || status.is_server_error() {
            // As kube's `handle_api_errors`: the server's `Status`, else one made of the text.
            let status = match serde_json::from_str::<kube::core::Status>(text) {
                Ok(s) => s,
                Err(_) => kube::core::Status::failure(text.trim(), "Failed to parse error data")
                    .with_code(status.as_u16()),
            };
            return Err(kube::Error::Api(status.boxed()));
        }
        serde_json::from_str(text).map_err(kube::Error::SerdeError)
    }
}

/// A context resolved to a concrete name and its default namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The context name.
    pub context: String,
    /// The context's namespace, else `default`.
    pub namespace: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KubeClients {
    /// The run's contexts (one per run, in the shared client cache).
    pub fn of(shared: &Shared) -> Result<Arc<KubeClients>, PrimitiveError> {
        shared.get_or_init(|_| Ok(KubeClients::default()))
    }

    /// The kubeconfig paths the settings point at, in kubectl's order of precedence.
    fn paths(settings: &Settings) -> Vec<PathBuf> {
        if let Some(p) = &settings.kubeconfig {
            return vec![p.clone()];
        }
        if let Some(v) = settings.var("KUBECONFIG") {
            return std::env::split_paths(v).filter(|p| !p.as_os_str().is_empty()).collect();
        }
        // Only the settings' HOME: a run (or test) given explicit settings reads nothing else.
        settings
            .var("HOME")
            .map(|home| vec![PathBuf::from(home).join(".kube").join("config")])
            .unwrap_or_default()
    }

    fn file(&self, settings: &Settings) -> Result<Arc<FileConfig>, PrimitiveError> {
        let mut slot = lock(&self.file);
        if slot.is_none() {
            *slot = Some(Self::read_files(settings).map(Arc::new));
        }
        match slot.as_ref() {
            Some(Ok(f)) => Ok(f.clone()),
            Some(Err(why)) => Err(PrimitiveError::invalid(why.clone())),
            None => Err(PrimitiveError::invalid("kubeconfig could not be read")),
        }
    }

    fn read_files(settings: &Settings) -> Result<FileConfig, String> {
        let paths = Self::paths(settings);
        let explicit = settings.kubeconfig.is_some();
        let mut merged: Option<Kubeconfig> = None;
        for path in &paths {
            // kubectl skips missing files in KUBECONFIG, but not a missing --kubeconfig.
            if !path.exists() && !explicit {
                continue;
            }
            let one = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig `{}`: {e}", path.display()))?;
            merged = Some(match merged {
                None => one,
                Some(m) => {
                    m.merge(one).map_err(|e| format!("cannot merge kubeconfig `{}`: {e}", path.display()))?
                }
            });
        }
        Ok(FileConfig { paths, merged })
    }

    fn in_cluster(settings: &Settings) -> bool {
        settings.var("KUBERNETES_SERVICE_HOST").is_some()
    }

    /// Resolves `context` (or the current one) to a name and its default namespace, without
    /// any request.
    pub fn resolve(&self, settings: &Settings, context: Option<&str>) -> Result<Resolved, PrimitiveError> {
        let namespace_of = |kc: &Kubeconfig, name: &str| -> Option<String> {
            kc.contexts
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.context.as_ref())
                .and_then(|c| c.namespace.clone())
                .filter(|n| !n.is_empty())
        };
        if let Some(name) = context
            && let Some(kc) = lock(&self.memory).get(name)
        {
            return Ok(Resolved {
                context: name.to_string(),
                namespace: namespace_of(kc, name).unwrap_or_else(|| "default".into()),
            });
        }
        let file = self.file(settings)?;
        let known: Vec<String> = file
            .merged
            .iter()
            .flat_map(|k| k.contexts.iter().map(|c| c.name.clone()))
            .chain(lock(&self.memory).keys().cloned())
            .collect();
        let name = match context {
            Some(n) => n.to_string(),
            None => match file.merged.as_ref().and_then(|k| k.current_context.clone()) {
                Some(c) if !c.is_empty() => c,
                _ if Self::in_cluster(settings) => IN_CLUSTER.to_string(),
                _ => {
                    return Err(PrimitiveError::invalid(format!(
                        "no current Kubernetes context in {}; pass `context` (known: {})",
                        describe_paths(&file.paths),
                        list_or_none(&known)
                    )));
                }
            },
        };
        if let Some(kc) = &file.merged
            && kc.contexts.iter().any(|c| c.name == name)
        {
            return Ok(Resolved {
                namespace: namespace_of(kc, &name).unwrap_or_else(|| "default".into()),
                context: name,
            });
        }
        if name == IN_CLUSTER && Self::in_cluster(settings) {
            let namespace = std::fs::read_to_string(IN_CLUSTER_NAMESPACE_FILE)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".into());
            return Ok(Resolved { context: name, namespace });
        }
        let hint = crate::model::nearest(&name, known.iter().map(String::as_str))
            .map(|b| format!("; did you mean `{b}`?"))
            .unwrap_or_else(|| format!("; known contexts: {}", list_or_none(&known)));
        Err(PrimitiveError::new(
            ErrorKind::NotFound,
            format!("context `{name}` not found in {}{hint}", describe_paths(&file.paths)),
        ))
    }

    /// Adds a context held in memory only (from `aks::credentials`); a client built earlier
    /// for the same name is dropped so the new credentials are used.
    pub fn add_in_memory(&self, kubeconfig: Kubeconfig) -> Result<String, PrimitiveError> {
        let name = kubeconfig
            .current_context
            .clone()
            .or_else(|| kubeconfig.contexts.first().map(|c| c.name.clone()))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| PrimitiveError::invalid("the kubeconfig names no context"))?;
        lock(&self.memory).insert(name.clone(), kubeconfig);
        lock(&self.clients).remove(&name);
        Ok(name)
    }

    /// The client of a resolved context, built on first use.
    pub async fn client(&self, settings: &Settings, context: &str) -> Result<Client, PrimitiveError> {
        Ok(self.kube_client(settings, context).await?.client.clone())
    }

    /// [`KubeClients::client`], with the direct stack when there is one.
    pub async fn kube_client(
        &self,
        settings: &Settings,
        context: &str,
    ) -> Result<Arc<KubeClient>, PrimitiveError> {
        let cell = {
            let mut clients = lock(&self.clients);
            match clients.get(context) {
                Some(cell) => cell.clone(),
                None => clients.entry(context.to_string()).or_default().clone(),
            }
        };
        cell.get_or_try_init(|| async { self.build(settings, context).await.map(Arc::new) }).await.cloned()
    }

    async fn build(&self, settings: &Settings, context: &str) -> Result<KubeClient, PrimitiveError> {
        let mut config = self.config(settings, context).await?;
        if settings.sandbox.is_some() {
            // A rehearsal reaches only the simulator, whatever a kubeconfig says.
            let server = config.cluster_url.to_string();
            let allowed = settings.sandbox_allows(&server) && config.proxy_url.is_none();
            if !allowed {
                return Err(PrimitiveError::new(
                    ErrorKind::Denied,
                    format!(
                        "sandbox: context `{context}` points at `{server}`, which is not the simulator; a rehearsal reaches only the simulator"
                    ),
                ));
            }
        }
        let unusable = |e: &dyn std::fmt::Display| {
            PrimitiveError::invalid(format!("cannot build a Kubernetes client for context `{context}`: {e}"))
        };
        // kube's own retry of 429/503/504 tries 15 times with backoff up to 1000 s; a runbook
        // wants a few quick tries (honouring Retry-After) and then a `throttled` error it can
        // act on, so the default is replaced.
        config.default_retry = false;
        // A plain-HTTP API server (`kubectl proxy`, the simulator) never uses TLS: an empty
        // trust store spares loading the platform's roots, which cost more than the call itself.
        if config.cluster_url.scheme_str() == Some("http") && config.root_cert.is_none() {
            config.root_cert = Some(Vec::new());
        }
        let retry =
            RetryPolicy::new(RETRY_MIN_DELAY, RETRY_MAX_DELAY, RETRIES, true).map_err(|e| unusable(&e))?;
        if config.proxy_url.is_some() {
            // Through a proxy (`proxy-url` in the kubeconfig) kube's own stack is used: it knows
            // the SOCKS5 and HTTP CONNECT tunnels, but speaks HTTP/1.1 only.
            let client = kube::client::ClientBuilder::try_from(config)
                .map_err(|e| unusable(&e))?
                .with_layer(
                    &tower::ServiceBuilder::new()
                        .layer(tower::retry::RetryLayer::new(retry))
                        // Retry needs a cloneable service; the buffer makes kube's boxed stack one.
                        .buffer(1024)
                        .into_inner(),
                )
                .build();
            return Ok(KubeClient { client, direct: None });
        }
        direct_client(config, retry).map_err(|e| unusable(&e))
    }

    async fn config(&self, settings: &Settings, context: &str) -> Result<Config, PrimitiveError> {
        let options = KubeConfigOptions { context: Some(context.to_string()), ..Default::default() };
        let bad = |e: &dyn std::fmt::Display| {
            PrimitiveError::invalid(format!("context `{context}` is not usable: {e}"))
        };
        let in_memory = lock(&self.memory).get(context).cloned();
        if let Some(kc) = in_memory {
            return Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| bad(&e));
        }
        let file = self.file(settings)?;
        if let Some(kc) = &file.merged
            && kc.contexts.iter().any(|c| c.name == context)
        {
            return Config::from_custom_kubeconfig(kc.clone(), &options).await.map_err(|e| bad(&e));
        }
        if context == IN_CLUSTER && Self::in_cluster(settings) {
            return Config::incluster().map_err(|e| bad(&e));
        }
        Err(PrimitiveError::new(
            ErrorKind::NotFound,
            format!("context `{context}` not found in {}", describe_paths(&file.paths)),
        ))
    }
}

/// Idle connections kept open to one API server (HTTP/1.1; over HTTP/2 one carries everything).
const MAX_IDLE_PER_CLUSTER: usize = 8;

/// A client for a directly reachable API server, built the way kube's default stack is (same
/// TLS configuration, timeouts and middleware) but with a connector that offers HTTP/2 as well
/// as HTTP/1.1 through ALPN. kube's own builder enables HTTP/1.1 only, so every concurrent
/// request of a `parallel` batch would need its own TLS connection; over HTTP/2 they share one.
/// Plain `http://` servers have no ALPN and keep HTTP/1.1.
fn direct_client(config: Config, retry: RetryPolicy) -> Result<KubeClient, String> {
    use http_body_util::BodyExt as _;
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::ConfigExt;
    use tower::{ServiceBuilder, ServiceExt as _};

    // What kube's builder does first: rustls needs a process-wide crypto provider. The only
    // error is another thread installing one in between, which is as good.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let tls = config.rustls_client_config().map_err(|e| e.to_string())?;
    let mut https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| format!("invalid tls-server-name `{name}`: {e}"))?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    let mut connector =
        hyper_timeout::TimeoutConnector::new(https.enable_http1().enable_http2().wrap_connector(tcp));
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    // A batch across a fleet opens up to `concurrency` connections to each cluster in turn;
    // kept idle, a fleet of 50 clusters held thousands of them (each with its buffers) to the
    // end of the run. A few idle ones per cluster carry the next request without a new dial.
    let http: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_CLUSTER)
            .build(connector);

    // Our retry, then kube's layers in kube's order. kube's tracing layer is left out;
    // `valid_until` (the expiry of a client certificate from an exec plugin) is not set, as
    // nothing in rollbook reads it. Unlike on kube's own stack, the retry needs no buffer under
    // it: every layer here is cheap to clone. `Client::new` puts one buffer (one task hop per
    // request) in front of the whole stack; the Deployment reads and writes of the k8s
    // primitives go around it, on a clone of the same stack (`KubeClient::request`).
    let service = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(retry))
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(|e| e.to_string())?)
        .layer(config.extra_headers_layer().map_err(|e| e.to_string())?)
        .map_err(tower::BoxError::from)
        .service(FirstAnswerGate::new(http));
    let direct = Direct::new(
        service.clone().map_response(|answer| answer.map(|body| body.map_err(tower::BoxError::from).boxed())),
    );
    Ok(KubeClient { client: Client::new(service, config.default_namespace), direct: Some(direct) })
}

/// Holds a client's requests back until its first request has an answer (or has failed), so
/// that a `parallel` batch starting on a new client dials once. hyper's pool dials for every
/// request that finds no connection; only after a TLS handshake does it learn that the server
/// speaks HTTP/2 and one connection can carry everything, and it closes the other dials unused.
/// Once the gate is open, requests pass straight through (over HTTP/1.1 they then open the
/// connections they need, as before). The cost is one round trip, once per client.
#[derive(Clone)]
struct FirstAnswerGate<S> {
    inner: S,
    gate: Arc<Gate>,
}

/// The shared state of a [`FirstAnswerGate`].
#[derive(Default)]
struct Gate {
    /// Set once a request has had its answer.
    open: std::sync::atomic::AtomicBool,
    /// Held by the one request in flight while the gate is closed.
    turn: tokio::sync::Mutex<()>,
}

impl<S> FirstAnswerGate<S> {
    /// `inner` behind a closed gate.
    fn new(inner: S) -> Self {
        FirstAnswerGate { inner, gate: Arc::default() }
    }
}

impl<S, R> tower::Service<R> for FirstAnswerGate<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        use std::sync::atomic::Ordering;
        // hyper's client does nothing before its future is polled: holding the future back
        // holds the request back.
        let send = self.inner.call(request);
        let gate = self.gate.clone();
        Box::pin(async move {
            if gate.open.load(Ordering::Acquire) {
                return send.await;
            }
            let turn = gate.turn.lock().await;
            if gate.open.load(Ordering::Acquire) {
                drop(turn);
                return send.await;
            }
            let answer = send.await;
            // A failure opens the gate too: holding the others back would only make them
            // fail one after another. A request dropped in flight leaves it closed for the next.
            gate.open.store(true, Ordering::Release);
            answer
        })
    }
}

fn describe_paths(paths: &[PathBuf]) -> String {
    match paths {
        [] => "the kubeconfig (no file found)".to_string(),
        [one] => format!("kubeconfig `{}`", one.display()),
        many => format!(
            "kubeconfig files {}",
            many.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

/// A Deployment addressed by a call: its resolved context and namespace, and the client.
#[derive(Clone)]
pub struct DeploymentTarget {
    /// Context name.
    pub context: String,
    /// Namespace.
    pub namespace: String,
    /// Deployment name.
    pub deployment: String,
    /// The context's client.
    pub client: Arc<KubeClient>,
    /// The longest one request may take (`ROLLBOOK_KUBE_REQUEST_TIMEOUT`, default 30s).
    pub request_timeout: Duration,
    /// Under dry-run, the state planned mutations would leave here: reads see it.
    pub planned: Option<super::planned::PlannedDeployment>,
}

impl DeploymentTarget {
    /// Resolves the common keys of a call and fetches (or builds) the context's client.
    pub async fn of(
        cx: &CallCx,
        context: Option<&str>,
        namespace: Option<&str>,
        deployment: &str,
    ) -> Result<DeploymentTarget, PrimitiveError> {
        let clients = KubeClients::of(&cx.shared)?;
        let resolved = clients.resolve(&cx.shared.settings, context)?;
        let client = clients.kube_client(&cx.shared.settings, &resolved.context).await?;
        let namespace = namespace.filter(|n| !n.is_empty()).map(String::from).unwrap_or(resolved.namespace);
        let key = crate::model::ResourceKey::k8s(&resolved.context, &namespace, deployment).to_string();
        Ok(DeploymentTarget {
            planned: cx.shared.planned(&key),
            namespace,
            context: resolved.context,
            deployment: deployment.to_string(),
            client,
            request_timeout: cx
                .shared
                .settings
                .var("ROLLBOOK_KUBE_REQUEST_TIMEOUT")
                .and_then(|v| crate::model::parse_duration(v).ok())
                .unwrap_or(super::request::REQUEST_TIMEOUT),
        })
    }

    /// The resource key.
    pub fn key(&self) -> String {
        crate::model::ResourceKey::k8s(&self.context, &self.namespace, &self.deployment).to_string()
    }

    /// "deployment `web` in namespace `shop` of context `prod`".
    pub fn describe(&self) -> String {
        format!(
            "deployment `{}` in namespace `{}` of context `{}`",
            self.deployment, self.namespace, self.context
        )
    }
}

/// The resource key of a call, resolving the default context and namespace from the settings
/// (and contexts added in memory) so scope, locks and the journal see a concrete key.
pub fn target_key(
    shared: &Shared,
    context: Option<&str>,
    namespace: Option<&str>,
    deployment: &str,
) -> String {
    let resolved = KubeClients::of(shared).and_then(|c| c.resolve(&shared.settings, context)).ok();
    let ctx = resolved
        .as_ref()
        .map(|r| r.context.clone())
        .or_else(|| context.map(String::from))
        .unwrap_or_default();
    let ns = namespace
        .filter(|n| !n.is_empty())
        .map(String::from)
        .or_else(|| resolved.map(|r| r.namespace))
        .unwrap_or_else(|| "default".into());
    crate::model::ResourceKey::k8s(&ctx, &ns, deployment).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: http://127.0.0.1:1\n- name: b\n  cluster:\n    server: http://127.0.0.1:2\ncontexts:\n- name: prod\n  context:\n    cluster: a\n    user: u\n    namespace: shop\n- name: dev\n  context:\n    cluster: b\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: prod\n";

    fn settings_with(dir: &std::path::Path, text: &str) -> Settings {
        let path = dir.join("config");
        std::fs::write(&path, text).unwrap();
        Settings { kubeconfig: Some(path), ..Settings::default() }
    }

    #[test]
    fn resolves_current_and_named_contexts_with_their_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings_with(dir.path(), TWO);
        let c = KubeClients::default();
        assert_eq!(
            c.resolve(&s, None).unwrap(),
            Resolved { context: "prod".into(), namespace: "shop".into() }
        );
        assert_eq!(c.resolve(&s, Some("dev")).unwrap().namespace, "default");
        let e = c.resolve(&s, Some("prd")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("did you mean `prod`"), "{}", e.message);
    }

    #[test]
    fn kubeconfig_env_merges_files_and_skips_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one");
        std::fs::write(&one, TWO).unwrap();
        let joined = std::env::join_paths([dir.path().join("missing"), one]).unwrap();
        let mut s = Settings::default();
        s.env.insert("KUBECONFIG".into(), joined.to_string_lossy().into_owned());
        let c = KubeClients::default();
        assert_eq!(c.resolve(&s, None).unwrap().context, "prod");
    }

    #[test]
    fn in_memory_contexts_win_and_need_no_file() {
        let c = KubeClients::default();
        let s = Settings { kubeconfig: Some("/nonexistent/kubeconfig".into()), ..Settings::default() };
        let kc = Kubeconfig::from_yaml(TWO).unwrap();
        assert_eq!(c.add_in_memory(kc).unwrap(), "prod");
        assert_eq!(c.resolve(&s, Some("prod")).unwrap().namespace, "shop");
        let e = c.resolve(&s, None).unwrap_err();
        assert!(e.message.contains("/nonexistent/kubeconfig"), "{}", e.message);
    }

    #[tokio::test]
    async fn one_client_per_context_reused_across_calls() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings_with(dir.path(), TWO);
        let c = KubeClients::default();
        c.client(&s, "prod").await.unwrap();
        c.client(&s, "prod").await.unwrap();
        c.client(&s, "dev").await.unwrap();
        assert_eq!(lock(&c.clients).len(), 2);
        c.add_in_memory(Kubeconfig::from_yaml(TWO).unwrap()).unwrap();
        assert_eq!(lock(&c.clients).len(), 1, "new credentials replace the old client");
    }

    /// An HTTP/1.1 server on loopback that answers every request with `status`, `content_type`
    /// and `body`, then closes the connection.
    async fn answering(status: u16, content_type: &'static str, body: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body).await;
                });
            }
        });
        url
    }

    /// Requests that skip kube's buffer end as kube's own `Client::request` ends them, for
    /// every kind of answer: the same value, or the same error, down to its variant and text.
    #[tokio::test]
    async fn a_request_without_the_buffer_ends_as_kubes_own_request() {
        use k8s_openapi::api::apps::v1::Deployment;
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"deployments.apps \"web\" is forbidden","reason":"Forbidden","code":403}"#;
        let answers: [(u16, &str, &[u8]); 7] = [
            (200, "application/json", br#"{"metadata":{"name":"web","namespace":"shop"},"spec":{"replicas":2,"selector":{},"template":{}}}"#),
            (403, "application/json", status),
            (404, "application/json", br#"{"kind":"Status","code":404,"reason":"NotFound","message":"not found"}"#),
            (502, "text/html", b"<html>bad gateway</html>\n"),
            (500, "text/plain", b""),
            (200, "application/json", b"{\"metadata\": "),
            (200, "application/json", b"{\"metadata\":{\"name\":\"\xff\"}}"),
        ];
        for (code, content_type, body) in answers {
            let url = answering(code, content_type, body).await;
            let kubeconfig = TWO.replace("http://127.0.0.1:1", &url);
            let dir = tempfile::tempdir().unwrap();
            let s = settings_with(dir.path(), &kubeconfig);
            let c = KubeClients::default();
            let ours = c.kube_client(&s, "prod").await.unwrap();
            assert!(ours.direct.is_some(), "a plain-HTTP context is built on rollbook's own stack");
            let request = || {
                use kube::core::Resource as _;
                kube::core::Request::new(Deployment::url_path(&(), Some("shop")))
                    .get("web", &kube::api::GetParams::default())
                    .unwrap()
            };
            let direct = ours.request::<Deployment>(request()).await;
            let kubes = ours.client.request::<Deployment>(request()).await;
            match (&direct, &kubes) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => {
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "answer {code} {body:?}");
                    assert_eq!(a.to_string(), b.to_string());
                }
                _ => panic!("answer {code} {body:?}: without the buffer {direct:?}, through kube {kubes:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_first_request_goes_alone_then_the_rest_together() {
        use tower::{Service, ServiceExt};

        // Request `i` logs its start and end; request 0 fails.
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let mut gated = FirstAnswerGate::new(tower::service_fn(move |i: usize| {
            let l = l.clone();
            async move {
                lock(&l).push(format!("start {i}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                lock(&l).push(format!("end {i}"));
                if i == 0 { Err("refused") } else { Ok(i) }
            }
        }));
        // On this one-thread runtime the tasks start in the order they are spawned.
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let mut g = gated.clone();
                tokio::spawn(async move { g.ready().await?.call(i).await })
            })
            .collect();
        let answers: Vec<_> =
            futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(
            answers,
            vec![Err("refused"), Ok(1), Ok(2), Ok(3)],
            "a failed first answer opens the gate"
        );
        let log = lock(&log).clone();
        assert_eq!(log[..2], ["start 0", "end 0"], "nothing overlaps the first request: {log:?}");
        assert!(log[2..5].iter().all(|e| e.starts_with("start")), "then the rest together: {log:?}");
        assert_eq!(gated.ready().await.unwrap().call(9).await, Ok(9));
    }
}
