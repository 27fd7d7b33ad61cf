//! Recovery primitives: what a primitive is, the context a call runs in, and the built-in registry.
//!
//! A primitive is only its domain call: typed args in, typed output out. Journaling, dry-run,
//! scope, approvals and undo happen once, in the engine's invoke wrapper.

pub mod aks;
pub mod appservice;
pub mod arm;
pub(crate) mod cloud;
/// The former name of [`cloud`], kept while branches that name it are merged.
#[allow(unused_imports)]
pub(crate) use cloud as azure;
pub mod gitops;
pub mod health;
pub(crate) mod introspect;
pub mod k8s;
pub mod logicapp;
pub mod write_ahead;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::model::{ErrorKind, PrimitiveError};

pub use crate::model::BoxFuture;
pub use crate::model::clock::{Clock, RealClock, ScaledClock, SkipClock};
pub use crate::model::progress::{Progress, Silent};

pub use crate::model::{Access, Settings};
pub use write_ahead::{WriteAhead, before_change};

/// What `rollbook docs` and `rollbook check` know about a primitive.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// Namespace in scripts (`health`).
    pub namespace: &'static str,
    /// Function name (`http`).
    pub name: &'static str,
    /// One line saying what it does.
    pub doc: &'static str,
    /// The keys it takes, with defaults, in words (markdown).
    pub keys_doc: &'static str,
    /// What it returns (markdown).
    pub returns: &'static str,
    /// Read or mutate.
    pub access: Access,
}

impl Meta {
    /// `namespace::name`.
    pub fn full_name(&self) -> String {
        format!("{}::{}", self.namespace, self.name)
    }
}

/// What a mutating call would do, for the dry-run plan.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// The change in words ("swap slot `staging` into `production` of site `shop-web`").
    pub effect: String,
    /// What the script receives instead of a real result.
    pub output: serde_json::Value,
}

/// Everything a primitive call may use: shared HTTP client, cancellation, progress, settings.
#[derive(Clone)]
pub struct CallCx {
    /// The run's HTTP client (connections are reused across calls), built on first use.
    pub http: LazyHttp,
    /// Cancelled on Ctrl-C or when the run's time is up; every wait must watch it.
    pub cancel: CancellationToken,
    /// Progress and log output.
    pub progress: Arc<dyn Progress>,
    /// URL prefixes rewritten before a request (the sandbox points scenario URLs at the simulator).
    pub url_rewrites: Arc<Vec<(String, String)>>,
    /// Every wait goes through this clock, so tests can make time pass without sleeping.
    pub clock: Arc<dyn Clock>,
    /// Connection settings and clients shared by the calls of one run.
    pub shared: Arc<Shared>,
}

impl CallCx {
    /// A context with a fresh client, no cancellation, silent progress, the real clock and
    /// settings from the environment (for embedding and tests).
    pub fn standalone() -> Self {
        CallCx {
            http: LazyHttp::default(),
            cancel: CancellationToken::new(),
            progress: Arc::new(Silent),
            url_rewrites: Arc::new(Vec::new()),
            clock: Arc::new(RealClock),
            shared: Arc::new(Shared::new(Settings::from_env())),
        }
    }

    /// Waits for `d` on the run's clock unless the run is cancelled first (then `cancelled`).
    pub async fn sleep(&self, d: Duration) -> Result<(), PrimitiveError> {
        tokio::select! {
            _ = self.clock.sleep(d) => Ok(()),
            _ = self.cancel.cancelled() => Err(PrimitiveError::new(ErrorKind::Cancelled, "cancelled while waiting")),
        }
    }

    /// Runs `fut` for at most `limit` of the run's clock; `None` when time ran out.
    pub async fn timeout<T>(&self, limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            r = fut => Some(r),
            _ = self.clock.sleep(limit) => None,
        }
    }

    /// Applies the configured URL rewrites (longest matching prefix wins).
    pub fn rewrite_url(&self, url: &str) -> String {
        self.url_rewrites
            .iter()
            .filter(|(from, _)| url.starts_with(from.as_str()))
            .max_by_key(|(from, _)| from.len())
            .map(|(from, to)| format!("{to}{}", &url[from.len()..]))
            .unwrap_or_else(|| url.to_string())
    }
}

/// Settings plus clients built once per run and reused by every call (ARM client, kube clients).
pub struct Shared {
    /// Connection settings.
    pub settings: Settings,
    clients: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    /// Under dry-run, the state each planned mutation would leave, by resource key: later
    /// reads and waits on that target see it instead of the real one.
    planned: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

impl Shared {
    /// Shared state over `settings`, with no clients yet.
    pub fn new(settings: Settings) -> Shared {
        Shared { settings, clients: Mutex::new(HashMap::new()), planned: Mutex::new(HashMap::new()) }
    }

    /// The state a planned mutation left on `key` (dry-run only), if it is a `T`.
    pub fn planned<T: Any + Send + Sync + Clone>(&self, key: &str) -> Option<T> {
        let planned = self.planned.lock().ok()?;
        planned.get(key)?.clone().downcast::<T>().ok().map(|t| (*t).clone())
    }

    /// Records the state a planned mutation would leave on `key`, for later reads of it.
    pub fn set_planned<T: Any + Send + Sync>(&self, key: &str, state: T) {
        if let Ok(mut planned) = self.planned.lock() {
            planned.insert(key.to_string(), Arc::new(state));
        }
    }

    /// Whether any planned mutation left a state (dry-run only).
    pub fn has_planned(&self) -> bool {
        self.planned.lock().map(|p| !p.is_empty()).unwrap_or(false)
    }

    /// The run's `T`, built by `make` on first use.
    pub fn get_or_init<T: Any + Send + Sync>(
        &self,
        make: impl FnOnce(&Settings) -> Result<T, PrimitiveError>,
    ) -> Result<Arc<T>, PrimitiveError> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| PrimitiveError::new(ErrorKind::Server, "client cache is unavailable"))?;
        if let Some(existing) = clients.get(&TypeId::of::<T>())
            && let Ok(typed) = existing.clone().downcast::<T>()
        {
            return Ok(typed);
        }
        let made = Arc::new(make(&self.settings)?);
        clients.insert(TypeId::of::<T>(), made.clone());
        Ok(made)
    }
}

/// The HTTP client every run starts with: rustls, HTTP/2 when offered, pooled connections.
/// Redirects are followed only within one origin (scheme, host and port): a token or a probe
/// never follows a server's redirect to another host, and a rehearsal never leaves the simulator.
pub fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("rollbook/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(same_origin_redirects())
        .build()
        .unwrap_or_default()
}

/// Follows at most 10 redirects, each within the origin of the request before it; otherwise
/// the redirect answer itself is returned to the caller.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt.previous().last().is_some_and(|prev| prev.origin() == attempt.url().origin());
        if attempt.previous().len() > 10 || !same { attempt.stop() } else { attempt.follow() }
    })
}

/// Refuses `url` when the run is a rehearsal and `url` is not the simulator's: a sandbox
/// reaches nothing its scenario does not map (deny by default).
pub fn sandbox_check(settings: &Settings, url: &reqwest::Url) -> Result<(), PrimitiveError> {
    let Some(origin) = settings.sandbox.as_deref() else { return Ok(()) };
    let allowed = reqwest::Url::parse(origin).map(|o| o.origin() == url.origin()).unwrap_or(false);
    if allowed {
        return Ok(());
    }
    let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
    Err(PrimitiveError::new(
        ErrorKind::Denied,
        format!(
            "sandbox: `{shown}` is not part of the scenario, and a rehearsal reaches only the simulator; \
             name the URL in a [[health]] or [[prometheus]] entry of the scenario"
        ),
    )
    .with_target(shown))
}

/// An HTTP client built on first use and then shared by every clone: building one loads the
/// platform's TLS roots, which cost more than a whole Kubernetes-only run otherwise spends
/// before its first request.
#[derive(Clone, Default)]
pub struct LazyHttp(Arc<std::sync::OnceLock<reqwest::Client>>);

impl LazyHttp {
    /// A lazy handle already holding `client`.
    pub fn from_client(client: reqwest::Client) -> LazyHttp {
        LazyHttp(Arc::new(std::sync::OnceLock::from(client)))
    }

    /// The client ([`default_http_client`] on first use).
    pub fn client(&self) -> &reqwest::Client {
        self.0.get_or_init(default_http_client)
    }
}

impl std::ops::Deref for LazyHttp {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        self.client()
    }
}

/// A recovery primitive: typed args in, typed output out.
pub trait Primitive: Send + Sync + 'static {
    /// The object-map argument, deserialised with unknown keys refused.
    type Args: DeserializeOwned + Serialize + Clone + Send + Sync + 'static;
    /// The object-map result.
    type Output: Serialize + Send + 'static;

    /// Name, doc line, keys and access.
    fn meta(&self) -> Meta;

    /// The resource key this call targets, for scope, locks and the journal.
    fn target(&self, _args: &Self::Args) -> Option<String> {
        None
    }

    /// The resource key when finding it needs the run's settings or clients (for example the
    /// kubeconfig's current context); defaults to [`Primitive::target`].
    fn resolve_target(&self, _shared: &Shared, args: &Self::Args) -> Option<String> {
        self.target(args)
    }

    /// Performs the call.
    fn call(
        &self,
        cx: &CallCx,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, PrimitiveError>> + Send;

    /// What the call would do, for dry-run (mutating primitives; reads may run for real first).
    fn plan(
        &self,
        _cx: &CallCx,
        args: &Self::Args,
    ) -> impl Future<Output = Result<Planned, PrimitiveError>> + Send {
        let effect =
            format!("{} {}", self.meta().full_name(), serde_json::to_string(args).unwrap_or_default());
        async move { Ok(Planned { effect, output: serde_json::json!({ "planned": true }) }) }
    }

    /// Whether this call, sent at `sent` by a run that was interrupted before it could journal
    /// the outcome, took effect. Resume asks this before it resends anything; the default is
    /// that no check is possible, so resume stops and asks a person.
    fn verify(
        &self,
        _cx: &CallCx,
        _args: &Self::Args,
        _sent: DateTime<Utc>,
    ) -> impl Future<Output = Result<Verified, PrimitiveError>> + Send {
        async { Ok(Verified::Unknown("this primitive has no way to check".into())) }
    }
}

/// What a primitive's check found about a call in doubt.
#[derive(Debug, Clone)]
pub enum Verified {
    /// It took effect; this is what the call would have returned.
    Applied(serde_json::Value),
    /// It did not take effect; it is safe to send it.
    NotApplied,
    /// No check can tell; the words say what a person should look at.
    Unknown(String),
}

/// A primitive with its types erased, as the registry keeps it.
pub trait DynPrimitive: Send + Sync {
    /// Name, doc line, keys and access.
    fn meta(&self) -> Meta;
    /// The keys its args accept, derived from the args type.
    fn keys(&self) -> &[&'static str];
    /// Checks and decodes the args; the error names a bad key and suggests the nearest valid one.
    /// `shared` lets the target key be resolved against the run's settings.
    fn decode(&self, args: serde_json::Value, shared: &Shared) -> Result<Decoded, PrimitiveError>;
}

/// Decoded args bound to their primitive, ready to call, plan, verify or target.
pub struct Decoded {
    /// The resource key, if any.
    pub target: Option<String>,
    bound: Box<dyn BoundCall>,
}

impl Decoded {
    /// Performs the call.
    pub fn call(&self, cx: CallCx) -> BoxFuture<'static, Result<serde_json::Value, PrimitiveError>> {
        self.bound.call(cx)
    }
    /// Plans the call.
    pub fn plan(&self, cx: CallCx) -> BoxFuture<'static, Result<Planned, PrimitiveError>> {
        self.bound.plan(cx)
    }
    /// Checks whether this call, sent at `sent` by an interrupted run, took effect.
    pub fn verify(
        &self,
        cx: CallCx,
        sent: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Verified, PrimitiveError>> {
        self.bound.verify(cx, sent)
    }
}

trait BoundCall: Send + Sync {
    fn call(&self, cx: CallCx) -> BoxFuture<'static, Result<serde_json::Value, PrimitiveError>>;
    fn plan(&self, cx: CallCx) -> BoxFuture<'static, Result<Planned, PrimitiveError>>;
    fn verify(&self, cx: CallCx, sent: DateTime<Utc>)
    -> BoxFuture<'static, Result<Verified, PrimitiveError>>;
}

struct Bound<P: Primitive> {
    primitive: Arc<P>,
    args: P::Args,
}

impl<P: Primitive> BoundCall for Bound<P> {
    fn call(&self, cx: CallCx) -> BoxFuture<'static, Result<serde_json::Value, PrimitiveError>> {
        let (p, args) = (self.primitive.clone(), self.args.clone());
        Box::pin(async move {
            let out = p.call(&cx, args).await?;
            serde_json::to_value(out)
                .map_err(|e| PrimitiveError::invalid(format!("cannot encode the result: {e}")))
        })
    }
    fn plan(&self, cx: CallCx) -> BoxFuture<'static, Result<Planned, PrimitiveError>> {
        let (p, args) = (self.primitive.clone(), self.args.clone());
        Box::pin(async move { p.plan(&cx, &args).await })
    }
    fn verify(
        &self,
        cx: CallCx,
        sent: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Verified, PrimitiveError>> {
        let (p, args) = (self.primitive.clone(), self.args.clone());
        Box::pin(async move { p.verify(&cx, &args, sent).await })
    }
}

struct Erased<P: Primitive> {
    inner: Arc<P>,
    keys: &'static [&'static str],
}

impl<P: Primitive> DynPrimitive for Erased<P> {
    fn meta(&self) -> Meta {
        self.inner.meta()
    }

    fn keys(&self) -> &[&'static str] {
        self.keys
    }

    fn decode(&self, args: serde_json::Value, shared: &Shared) -> Result<Decoded, PrimitiveError> {
        let name = self.inner.meta().full_name();
        let serde_json::Value::Object(map) = &args else {
            return Err(PrimitiveError::invalid(format!(
                "{name} takes one object map, like #{{ key: value }}"
            )));
        };
        for key in map.keys() {
            if !self.keys.contains(&key.as_str()) {
                let hint = match crate::model::nearest(key, self.keys.iter().copied()) {
                    Some(best) => format!("; did you mean `{best}`?"),
                    None => format!("; valid keys: {}", self.keys.join(", ")),
                };
                return Err(PrimitiveError::invalid(format!("{name}: unknown key `{key}`{hint}")));
            }
        }
        let typed: P::Args =
            serde_json::from_value(args).map_err(|e| PrimitiveError::invalid(format!("{name}: {e}")))?;
        let target = self.inner.resolve_target(shared, &typed);
        Ok(Decoded { target, bound: Box::new(Bound { primitive: self.inner.clone(), args: typed }) })
    }
}

/// Erases a primitive's types for the registry.
pub fn erase<P: Primitive>(primitive: P) -> Arc<dyn DynPrimitive> {
    let keys = introspect::struct_fields::<P::Args>();
    Arc::new(Erased { inner: Arc::new(primitive), keys })
}

/// Every primitive this build ships, alphabetical by namespace then name.
pub fn builtin() -> Vec<Arc<dyn DynPrimitive>> {
    let mut all = Vec::new();
    all.extend(aks::register());
    all.extend(appservice::register());
    all.extend(arm::register());
    all.extend(gitops::register());
    all.extend(health::register());
    all.extend(k8s::register());
    all.extend(logicapp::register());
    all
}
