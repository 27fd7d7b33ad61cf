//! The simulator: Azure Resource Manager, Kubernetes API and health endpoints on loopback HTTP.
//!
//! [`Sim::start`] builds the world of a [`Scenario`] and serves it on one port: Kubernetes under
//! `/k8s/<context>`, health under `/health/<resource key>` (and the world's Prometheus metrics at
//! `/health/metrics`), ARM everywhere else; each simulated cluster also answers at the root of a
//! port of its own (the one the kubeconfig names). Faults,
//! latency and the request record wrap every route.

pub mod aks;
pub mod appservice;
pub mod arm;
pub(crate) mod arm_api;
mod arm_identity;
pub mod arm_router;
mod arm_template;
pub mod faults;
pub mod health;
pub mod k8s;
pub mod logicapp;
pub mod metrics;
pub mod record;
pub mod scenario;
pub mod server;
mod tls;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::any;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use record::RecordedRequest;
pub use scenario::{Scenario, ScenarioError};

use arm_router::{AzureWorld, KubeServerFor};
use health::HealthWorld;
use k8s::K8sWorld;

/// How often simulated pods and the Deployment controller make progress.
const TICK: Duration = Duration::from_millis(20);

/// Why the simulator could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file is unreadable or invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The simulator only listens on loopback.
    #[error("refusing to listen on `{addr}`: the simulator serves loopback only (use 127.0.0.1 or [::1])")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The kubeconfig could not be written.
    #[error("cannot write kubeconfig `{path}`: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate could not be made.
    #[error("{0}")]
    Tls(String),
    /// The CA file could not be written.
    #[error("cannot write the CA certificate `{path}`: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Standard output or a signal handler failed.
    #[error("simulator i/o failed: {0}")]
    Io(#[source] std::io::Error),
}

/// Starts simulators.
pub struct Sim;

struct Inner {
    addr: SocketAddr,
    scheme: &'static str,
    ca_pem: Option<String>,
    k8s: Arc<K8sWorld>,
    health: Arc<HealthWorld>,
    record: Arc<record::Recorder>,
    rewrites: Vec<(String, String)>,
    /// The own port of each simulated cluster, in scenario order.
    cluster_addrs: Vec<(String, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A running simulator. Clones share it; it stops at [`SimHandle::shutdown`] or when the last
/// clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Inner>,
}

impl Sim {
    /// Builds the scenario's world and serves it on `listen` (default `127.0.0.1:0`, a free
    /// port) on the current tokio runtime.
    pub async fn start(scenario: Scenario, listen: Option<SocketAddr>) -> Result<SimHandle, SimError> {
        Sim::start_with(scenario, listen, false).await
    }

    /// [`Sim::start`], serving HTTPS when `tls` is set: a CA is generated for this simulator
    /// ([`SimHandle::ca_pem`]) and every endpoint is `https://`.
    pub async fn start_with(
        scenario: Scenario,
        listen: Option<SocketAddr>,
        tls: bool,
    ) -> Result<SimHandle, SimError> {
        let tls = if tls { Some(tls::generate().map_err(SimError::Tls)?) } else { None };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let addr = listen.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        if !addr.ip().is_loopback() {
            return Err(SimError::NotLoopback { addr });
        }
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| SimError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind { addr, source })?;
        let base = format!("{scheme}://{addr}");

        let k8s = Arc::new(K8sWorld::from_scenario(&scenario));
        // Each simulated cluster also answers at the root of its own port.
        let mut cluster_listeners = Vec::new();
        let mut cluster_addrs = Vec::new();
        for ctx in k8s.contexts() {
            let at = SocketAddr::new(addr.ip(), 0);
            let l = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|source| SimError::Bind { addr: at, source })?;
            let bound = l.local_addr().map_err(|source| SimError::Bind { addr: at, source })?;
            cluster_addrs.push((ctx.clone(), bound));
            cluster_listeners.push((format!("/k8s/{}", k8s::encode_context(ctx)), l));
        }
        let azure = Arc::new(AzureWorld::from_scenario(&scenario));
        let prometheus_urls = health::prometheus_urls(&scenario.prometheus);
        let health = Arc::new(HealthWorld {
            k8s: k8s.clone(),
            azure: azure.clone(),
            keys: scenario.resource_keys(),
            prometheus: scenario.prometheus.clone(),
            prometheus_urls: prometheus_urls.clone(),
            metrics: metrics::SimMetrics::from_scenario(&scenario),
        });
        // The API server AKS credentials name: the cluster's own port.
        let kube_for: KubeServerFor = {
            let addrs = cluster_addrs.clone();
            Arc::new(move |ctx: &str| {
                addrs.iter().find(|(c, _)| c == ctx).map(|(_, a)| format!("{scheme}://{a}"))
            })
        };
        let k8s_routes = k8s.clone();
        let router = Router::new()
            .route("/k8s/{*rest}", any(move |req: Request| k8s::api::handle(k8s_routes.clone(), req)))
            .merge(health::router(health.clone()))
            .fallback_service(azure.clone().router(kube_for));
        let record = Arc::new(record::Recorder::default());
        let front = Arc::new(server::Front {
            router,
            faults: faults::Faults::new(&scenario.faults),
            record: record.clone(),
            latency: scenario.sim.latency.map(|d| d.get()).unwrap_or_default(),
            scheme,
        });
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for (prefix, l) in cluster_listeners {
            let tls = tls.as_ref().map(|t| t.acceptor.clone());
            tasks.push(tokio::spawn(k8s::ports::serve_cluster(l, front.clone(), prefix, rx.clone(), tls)));
        }
        let serving =
            tokio::spawn(server::accept_loop(listener, front, rx.clone(), tls.map(|t| t.acceptor), None));
        let ticking = {
            let k8s = k8s.clone();
            let mut rx = rx;
            tokio::spawn(async move {
                let mut every = tokio::time::interval(TICK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = every.tick() => { k8s.tick_in_slices().await; k8s.gitops_tick(); }
                        _ = server::stopped_signal(&mut rx) => break,
                    }
                }
            })
        };
        let rewrites = scenario
            .health
            .iter()
            .map(|h| (h.url.clone(), format!("{base}/health/{}", h.follows)))
            .chain(
                prometheus_urls
                    .iter()
                    .enumerate()
                    .map(|(n, u)| (u.clone(), format!("{base}/prometheus-scenario/{n}"))),
            )
            .collect();
        Ok(SimHandle {
            inner: Arc::new(Inner {
                addr,
                scheme,
                ca_pem,
                k8s,
                health,
                record,
                rewrites,
                shutdown,
                cluster_addrs,
                tasks: Mutex::new({
                    tasks.extend([serving, ticking]);
                    tasks
                }),
            }),
        })
    }
}

fn yaml_str(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::Value::String(s.to_string()).to_string()
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.inner.addr)
            .field("contexts", &self.inner.k8s.contexts())
            .finish()
    }
}

impl SimHandle {
    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The ARM endpoint (`ROLLBOOK_ARM_ENDPOINT`): `http://127.0.0.1:PORT` (`https` with TLS).
    pub fn arm_endpoint(&self) -> String {
        format!("{}://{}", self.inner.scheme, self.inner.addr)
    }

    /// The PEM of the CA that signed the simulator's certificate, when it serves TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.inner.ca_pem.as_deref()
    }

    /// Base of the health endpoints: `http://127.0.0.1:PORT/health`.
    pub fn health_base(&self) -> String {
        format!("{}://{}/health", self.inner.scheme, self.inner.addr)
    }

    /// The API server of a simulated context at the root of its own port
    /// (`http://127.0.0.1:PORT`), as the kubeconfig names it; None for an unknown context.
    pub fn k8s_cluster_url(&self, context: &str) -> Option<String> {
        self.inner
            .cluster_addrs
            .iter()
            .find(|(c, _)| c == context)
            .map(|(_, a)| format!("{}://{a}", self.inner.scheme))
    }

    /// The own server URL of every simulated cluster, in scenario order.
    pub fn k8s_cluster_urls(&self) -> Vec<String> {
        self.inner.cluster_addrs.iter().map(|(_, a)| format!("{}://{a}", self.inner.scheme)).collect()
    }

    /// The API server URL of a simulated context under the main port
    /// (`http://127.0.0.1:PORT/k8s/<context>`), if it is one; the same API as
    /// [`SimHandle::k8s_cluster_url`].
    pub fn k8s_server_url(&self, context: &str) -> Option<String> {
        self.inner.k8s.has_context(context).then(|| {
            format!("{}://{}/k8s/{}", self.inner.scheme, self.inner.addr, k8s::encode_context(context))
        })
    }

    /// A kubeconfig with one cluster, user and context per simulated context (named after it);
    /// the current context is the first. Any bearer token is accepted.
    pub fn kubeconfig_yaml(&self) -> String {
        let contexts = self.inner.k8s.contexts();
        let mut y = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for c in contexts {
            let url = self.k8s_cluster_url(c).unwrap_or_default();
            y += &format!("- name: {}\n  cluster:\n    server: {}\n", yaml_str(c), yaml_str(&url));
            if let Some(ca) = &self.inner.ca_pem {
                use base64::Engine;
                let data = base64::engine::general_purpose::STANDARD.encode(ca);
                y += &format!("    certificate-authority-data: {data}\n");
            }
        }
        y += "contexts:\n";
        for c in contexts {
            y += &format!("- name: {n}\n  context:\n    cluster: {n}\n    user: {n}\n", n = yaml_str(c));
        }
        y += "users:\n";
        for c in contexts {
            y += &format!("- name: {}\n  user:\n    token: \"rollbook-sim\"\n", yaml_str(c));
        }
        let current = contexts.first().map(|c| yaml_str(c)).unwrap_or_else(|| "\"\"".into());
        y += &format!("current-context: {current}\npreferences: {{}}\n");
        y
    }

    /// Each scenario `[[health]]` and `[[prometheus]]` URL and the simulator URL that answers for it.
    pub fn url_rewrites(&self) -> Vec<(String, String)> {
        self.inner.rewrites.clone()
    }

    /// Every request served so far, in arrival order (faulted and dropped ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.record.all()
    }

    /// Observable state of a resource key (§6 keys). Kubernetes keys give `image`, `images`,
    /// `revision`, `replicas`, `ready`, `updated`, `available`, `paused`, `generation`, `healthy`.
    pub fn resource_state(&self, key: &str) -> Option<serde_json::Value> {
        if key.starts_with("gitops/") {
            return self.inner.k8s.gitops_state(key);
        }
        if key.starts_with("k8s/") { self.inner.k8s.state(key) } else { self.inner.health.azure.state(key) }
    }

    /// Moves the GitOps controllers' clock by `by` at once: drift that lasted `interval` by then
    /// is reverted, as it would be after that much time.
    pub fn advance_gitops(&self, by: Duration) {
        self.inner.k8s.gitops_advance(by);
    }

    /// Sets how fast the GitOps controllers' clock runs against real time (1 by default; 0 stops
    /// it, so only [`SimHandle::advance_gitops`] moves it).
    pub fn set_gitops_time_scale(&self, scale: f64) {
        self.inner.k8s.set_gitops_time_scale(scale);
    }

    /// Health of a resource key, as `<health_base>/<key>` answers it.
    pub fn healthy(&self, key: &str) -> Option<bool> {
        self.inner.health.healthy(key)
    }

    /// Stops serving and waits for the server tasks to end.
    pub async fn shutdown(self) {
        let _ = self.inner.shutdown.send(true);
        let tasks: Vec<JoinHandle<()>> = {
            let mut t = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
            t.drain(..).collect()
        };
        for t in tasks {
            let _ = t.await;
        }
    }
}

fn default_kubeconfig_path(addr: SocketAddr) -> PathBuf {
    let dir = std::env::var_os("ROLLBOOK_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::state_dir().map(|d| d.join("rollbook")))
        .unwrap_or_else(|| std::env::temp_dir().join("rollbook"));
    dir.join("sim").join(format!("kubeconfig-{}", addr.port()))
}

/// `rollbook sim serve`: loads the scenario, starts the simulator, writes the kubeconfig, prints
/// one JSON line (`arm_endpoint`, `kubeconfig`, `health_base`) and serves until Ctrl-C or SIGTERM.
pub async fn serve(
    scenario_path: &Path,
    listen: Option<SocketAddr>,
    kubeconfig_out: Option<&Path>,
) -> Result<(), SimError> {
    // Listen for the signals before the JSON line tells anyone we are up.
    let stop = stop_signal().map_err(SimError::Io)?;
    serve_until(scenario_path, listen, kubeconfig_out, &mut std::io::stdout(), stop).await
}

/// [`serve`] with options (`--tls`).
pub async fn serve_opts(scenario_path: &Path, opts: &ServeOptions) -> Result<(), SimError> {
    let stop = stop_signal().map_err(SimError::Io)?;
    serve_with(scenario_path, opts, &mut std::io::stdout(), stop).await
}

/// [`serve`] with the JSON line written to `out` and serving until `stop` resolves (for
/// embedding and tests).
pub async fn serve_until<W, F>(
    scenario_path: &Path,
    listen: Option<SocketAddr>,
    kubeconfig_out: Option<&Path>,
    out: &mut W,
    stop: F,
) -> Result<(), SimError>
where
    W: Write + Send,
    F: std::future::Future<Output = ()> + Send,
{
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
    {
        return Err(SimError::NotLoopback { addr });
    }
    serve_with(
        scenario_path,
        &ServeOptions { listen, kubeconfig: kubeconfig_out.map(Path::to_path_buf), tls: false },
        out,
        stop,
    )
    .await
}

/// How `sim serve` serves.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Address (loopback only); default 127.0.0.1 on a free port.
    pub listen: Option<SocketAddr>,
    /// Where to write the kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// Serve HTTPS with a generated CA, written beside the kubeconfig as `<name>.ca.pem`.
    pub tls: bool,
}

/// `sim serve` with options, the JSON line written to `out`, until `stop` resolves.
pub async fn serve_with<W, F>(
    scenario_path: &Path,
    opts: &ServeOptions,
    out: &mut W,
    stop: F,
) -> Result<(), SimError>
where
    W: Write + Send,
    F: std::future::Future<Output = ()> + Send,
{
    let (listen, kubeconfig_out) = (opts.listen, opts.kubeconfig.as_deref());
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
    {
        return Err(SimError::NotLoopback { addr });
    }
    let scenario = Scenario::load(scenario_path)?;
    let sim = Sim::start_with(scenario, listen, opts.tls).await?;
    let path = kubeconfig_out.map(Path::to_path_buf).unwrap_or_else(|| default_kubeconfig_path(sim.addr()));
    let write = |path: &Path| -> std::io::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, sim.kubeconfig_yaml())
    };
    write(&path).map_err(|source| SimError::Kubeconfig { path: path.clone(), source })?;
    let mut line = serde_json::json!({
        "arm_endpoint": sim.arm_endpoint(),
        "kubeconfig": path.display().to_string(),
        "health_base": sim.health_base(),
    });
    if let Some(ca) = sim.ca_pem() {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".ca.pem");
        let ca_path = path.with_file_name(name);
        std::fs::write(&ca_path, ca).map_err(|source| SimError::CaFile { path: ca_path.clone(), source })?;
        line["ca_file"] = serde_json::Value::String(ca_path.display().to_string());
    }
    // One write, so a reader never sees half a line.
    out.write_all(format!("{line}\n").as_bytes()).map_err(SimError::Io)?;
    out.flush().map_err(SimError::Io)?;
    stop.await;
    sim.shutdown().await;
    Ok(())
}

/// Resolves at Ctrl-C or SIGTERM; the handlers are installed when this is called.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
