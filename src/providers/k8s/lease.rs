//! The Kubernetes `Lease` lock backend (`rollbook run --lock k8s:<context>/<namespace>`): each
//! target's lock is a `coordination.k8s.io/v1` Lease in one namespace of one cluster, so runners
//! on different machines exclude each other. Every write is a create or a replace at the read
//! `resourceVersion`, so two runners racing for one lease never both win.
//!
//! Holders are told apart by a holder identity with a random per-process nonce
//! (`<run id>@<host>/<pid>/<nonce>`), never by looking at processes: a runner in another PID
//! namespace may share a host name and a pid. Expiry is judged as client-go's leader election
//! does: a lease whose record stays unchanged (same `resourceVersion`) for its whole duration,
//! measured on this machine's clock, is taken over; the holder's own timestamps only decide
//! whether to start watching (a lease renewed recently by its holder's clock is reported as held
//! at once). Held leases are renewed by their own task, each request with a short timeout; a
//! lease that could not be renewed within its duration, or that another runner took, is *lost*:
//! [`LockBackend::lost`] says so and the run refuses every further mutation.
//!
//! The backend runs its own small runtime on its own thread: the run takes locks from the script
//! thread and releases them from async code, and neither may block a runtime it is inside.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::KubeClients;
use crate::model::Settings;
use crate::model::lock::{Holder, LockBackend, LockError, LockOpener, TakenOver};

/// How long a lease lasts without renewal, unless `ROLLBOOK_LEASE_SECONDS` says otherwise.
const LEASE_SECONDS: i32 = 15;
/// Longest wait for one request to the cluster (renewals must not starve behind a slow one).
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an apparently expired lease is looked at again while it is watched.
const OBSERVE_EVERY: Duration = Duration::from_millis(250);

/// Where `--lock k8s:` keeps leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStore {
    /// Kubeconfig context.
    pub context: String,
    /// Namespace of the leases.
    pub namespace: String,
}

impl LeaseStore {
    /// Parses `k8s:<context>/<namespace>` (the part after `k8s:`); the context may itself hold `/`.
    pub fn parse(spec: &str) -> Result<LeaseStore, String> {
        match spec.rsplit_once('/') {
            Some((context, namespace)) if !context.is_empty() && !namespace.is_empty() => {
                Ok(LeaseStore { context: context.into(), namespace: namespace.into() })
            }
            _ => Err(format!("--lock k8s:`{spec}`: write it as k8s:<context>/<namespace>")),
        }
    }

    fn describe(&self) -> String {
        format!("leases of namespace `{}` in context `{}`", self.namespace, self.context)
    }
}

/// The Lease name of a target: readable, DNS-safe, and unique through a hash of the full key.
pub fn lease_name(target: &str) -> String {
    let mut readable: String = target
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    readable.truncate(200);
    let readable = readable.trim_matches('-');
    let hash = hex::encode(Sha256::digest(target.as_bytes()));
    format!("rollbook-{readable}-{}", &hash[..10])
}

/// The lease duration: `ROLLBOOK_LEASE_SECONDS` (1–3600), else 15 s.
pub fn lease_seconds(settings: &Settings) -> Result<i32, String> {
    match settings.var("ROLLBOOK_LEASE_SECONDS") {
        None => Ok(LEASE_SECONDS),
        Some(v) => v.trim().parse::<i32>().ok().filter(|n| (1..=3600).contains(n)).ok_or_else(|| {
            format!("ROLLBOOK_LEASE_SECONDS `{v}` must be a whole number of seconds from 1 to 3600")
        }),
    }
}

/// The `holderIdentity` of a run in this process: `<run id>@<host>/<pid>/<nonce>`.
fn identity(h: &Holder, nonce: &str) -> String {
    format!("{}@{}/{}/{nonce}", h.run_id, h.host, h.pid)
}

/// A random nonce, new for every backend opened, so two processes never share an identity.
fn new_nonce() -> String {
    format!("{:016x}", fastrand::u64(..))
}

fn holder_of(lease: &Lease) -> Option<Holder> {
    let spec = lease.spec.as_ref()?;
    let id = spec.holder_identity.as_deref().filter(|s| !s.is_empty())?;
    let (run_id, rest) = id.split_once('@').unwrap_or((id, ""));
    let mut parts: Vec<&str> = rest.rsplitn(3, '/').collect();
    parts.reverse();
    let (host, pid) = match parts.as_slice() {
        [host, pid, _nonce] => (*host, *pid),
        [host, pid] => (*host, *pid),
        _ => (rest, "0"),
    };
    let since = spec.acquire_time.as_ref().and_then(|t| to_chrono(&t.0)).unwrap_or_else(chrono::Utc::now);
    Some(Holder {
        run_id: run_id.into(),
        host: if host.is_empty() { "unknown".into() } else { host.into() },
        pid: pid.parse().unwrap_or(0),
        since,
    })
}

fn to_chrono(t: &k8s_openapi::jiff::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(t.as_microsecond())
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// The lease's duration as its holder wrote it (one second to an hour, so a hostile record
/// cannot make a taker watch it forever).
fn duration_of(lease: &Lease) -> Duration {
    let secs = lease.spec.as_ref().and_then(|s| s.lease_duration_seconds).unwrap_or(LEASE_SECONDS);
    Duration::from_secs(u64::try_from(secs.clamp(1, 3600)).unwrap_or(1))
}

/// A hint only, from the holder's own timestamps compared with this machine's clock: whether
/// the lease looks unrenewed for longer than its duration. Clocks may disagree, so this never
/// decides a takeover; it decides whether watching the record is worth it.
fn looks_expired(lease: &Lease) -> bool {
    let Some(spec) = lease.spec.as_ref() else { return true };
    let last = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).and_then(|t| to_chrono(&t.0));
    match last {
        Some(at) => {
            let d = chrono::TimeDelta::from_std(duration_of(lease)).unwrap_or(chrono::TimeDelta::MAX);
            at.checked_add_signed(d).is_none_or(|end| chrono::Utc::now() > end)
        }
        None => true,
    }
}

fn is_free(lease: &Lease) -> bool {
    lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_none_or(str::is_empty)
}

enum Cmd {
    Acquire(String, std_mpsc::Sender<Result<Option<TakenOver>, LockError>>),
    ReleaseAll(std_mpsc::Sender<()>),
}

/// What the worker, its renewal task and the run share.
#[derive(Default)]
struct State {
    /// Target → (lease name, when it was last written by us, on this machine's clock).
    held: Mutex<HashMap<String, (String, Instant)>>,
    /// Why a held lease was lost, once one was.
    lost: Mutex<Option<String>>,
    /// The Lease API, once reached.
    api: Mutex<Option<Api<Lease>>>,
}

impl State {
    fn api(&self) -> Option<Api<Lease>> {
        self.api.lock().ok().and_then(|a| a.clone())
    }
    fn mark_lost(&self, why: String) {
        tracing::error!("{why}");
        if let Ok(mut lost) = self.lost.lock()
            && lost.is_none()
        {
            *lost = Some(why);
        }
    }
}

/// The Lease locks of one run.
pub struct LeaseLocks {
    store: LeaseStore,
    tx: mpsc::UnboundedSender<Cmd>,
    state: Arc<State>,
    reply_within: Duration,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The `--lock k8s:<context>/<namespace>` backend, as the engine opens it for each run.
pub fn opener(settings: Settings, store: LeaseStore) -> LockOpener {
    std::sync::Arc::new(move |run_id: &str| {
        LeaseLocks::open(settings.clone(), store.clone(), Holder::me(run_id))
            .map(|l| Box::new(l) as Box<dyn LockBackend>)
    })
}

impl LeaseLocks {
    /// Starts the backend for `me`; the cluster is first reached on the first lock.
    pub fn open(settings: Settings, store: LeaseStore, me: Holder) -> Result<LeaseLocks, String> {
        let seconds = lease_seconds(&settings)?;
        let duration = Duration::from_secs(u64::try_from(seconds).unwrap_or(15));
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State::default());
        let worker = Worker {
            settings,
            store: store.clone(),
            id: identity(&me, &new_nonce()),
            seconds,
            duration,
            state: state.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("rollbook-leases".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("cannot start the lease runtime: {e}");
                        return;
                    }
                };
                rt.block_on(worker.serve(rx));
            })
            .map_err(|e| format!("cannot start the lease lock thread: {e}"))?;
        // An acquire may watch a lease whose holder went quiet for up to the longest duration
        // a holder can write, plus a few requests.
        let reply_within = Duration::from_secs(3600) + 4 * API_TIMEOUT;
        Ok(LeaseLocks { store, tx, state, reply_within, thread: Some(thread) })
    }

    fn unavailable(&self, target: &str) -> LockError {
        LockError::Store {
            target: target.into(),
            store: self.store.describe(),
            message: "the lease lock thread stopped".into(),
        }
    }
}

impl LockBackend for LeaseLocks {
    fn acquire(&self, target: &str) -> Result<Option<TakenOver>, LockError> {
        let (reply, answer) = std_mpsc::channel();
        self.tx.send(Cmd::Acquire(target.into(), reply)).map_err(|_| self.unavailable(target))?;
        answer.recv_timeout(self.reply_within).map_err(|_| self.unavailable(target))?
    }

    fn release_all(&self) {
        let (reply, answer) = std_mpsc::channel();
        if self.tx.send(Cmd::ReleaseAll(reply)).is_ok() {
            let _ = answer.recv_timeout(4 * API_TIMEOUT);
        }
    }

    fn lost(&self) -> Option<String> {
        self.state.lost.lock().ok().and_then(|l| l.clone())
    }
}

impl Drop for LeaseLocks {
    fn drop(&mut self) {
        self.release_all();
        // Closing the channel ends the worker.
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    settings: Settings,
    store: LeaseStore,
    /// This process's holder identity.
    id: String,
    seconds: i32,
    duration: Duration,
    state: Arc<State>,
}

/// Runs one request to the cluster with the short per-request timeout.
async fn within<T>(fut: impl std::future::Future<Output = Result<T, kube::Error>>) -> Result<T, String> {
    match tokio::time::timeout(API_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", API_TIMEOUT.as_secs())),
    }
}

/// A conflict (someone else wrote first) or another failure.
enum WriteError {
    Conflict,
    Other(String),
}

async fn write(
    fut: impl std::future::Future<Output = Result<Lease, kube::Error>>,
) -> Result<Lease, WriteError> {
    match tokio::time::timeout(API_TIMEOUT, fut).await {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(kube::Error::Api(s))) if s.code == 409 => Err(WriteError::Conflict),
        Ok(Err(e)) => Err(WriteError::Other(e.to_string())),
        Err(_) => Err(WriteError::Other(format!("no answer within {}s", API_TIMEOUT.as_secs()))),
    }
}

impl Worker {
    async fn serve(self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let renewing = tokio::spawn(renew_loop(self.state.clone(), self.id.clone(), self.duration));
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Acquire(target, reply) => {
                    let result = self.acquire(&target).await;
                    let _ = reply.send(result);
                }
                Cmd::ReleaseAll(reply) => {
                    self.release_all().await;
                    let _ = reply.send(());
                }
            }
        }
        renewing.abort();
        self.release_all().await;
    }

    fn error(&self, target: &str, message: impl Into<String>) -> LockError {
        LockError::Store { target: target.into(), store: self.store.describe(), message: message.into() }
    }

    async fn api(&self, target: &str) -> Result<Api<Lease>, LockError> {
        if let Some(api) = self.state.api() {
            return Ok(api);
        }
        let clients = KubeClients::default();
        let client = tokio::time::timeout(API_TIMEOUT, clients.client(&self.settings, &self.store.context))
            .await
            .map_err(|_| self.error(target, "the cluster did not answer in time"))?
            .map_err(|e| self.error(target, e.message))?;
        let api = Api::<Lease>::namespaced(client, &self.store.namespace);
        if let Ok(mut slot) = self.state.api.lock() {
            *slot = Some(api.clone());
        }
        Ok(api)
    }

    fn mine(&self, lease: &Lease) -> bool {
        lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.id.as_str())
    }

    fn spec(&self, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.id.clone()),
            lease_duration_seconds: Some(self.seconds),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    fn hold(&self, target: &str, name: String) {
        if let Ok(mut held) = self.state.held.lock() {
            held.insert(target.to_string(), (name, Instant::now()));
        }
    }

    async fn acquire(&self, target: &str) -> Result<Option<TakenOver>, LockError> {
        if self.state.held.lock().map(|h| h.contains_key(target)).unwrap_or(false) {
            return Ok(None);
        }
        let api = self.api(target).await?;
        let name = lease_name(target);
        let failed = |e: String| self.error(target, format!("lease `{name}`: {e}"));
        let current = within(api.get_opt(&name)).await.map_err(failed)?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    annotations: Some([("rollbook.dev/target".to_string(), target.to_string())].into()),
                    ..Default::default()
                },
                spec: Some(self.spec(0)),
            };
            return match write(api.create(&PostParams::default(), &lease)).await {
                Ok(_) => {
                    self.hold(target, name);
                    Ok(None)
                }
                // Another runner created it first: it holds it.
                Err(WriteError::Conflict) => Err(self.held_by_current(&api, target).await),
                Err(WriteError::Other(e)) => Err(failed(e)),
            };
        };
        let previous = holder_of(&lease);
        if !is_free(&lease) && !self.mine(&lease) {
            if !looks_expired(&lease) {
                return Err(self.held_error(target, &lease));
            }
            // Its holder looks quiet: watch the record; only one left unchanged for its whole
            // duration, on this machine's clock, is taken over.
            let watched_since = Instant::now();
            let wait = duration_of(&lease).max(self.duration);
            let version = lease.metadata.resource_version.clone();
            tracing::info!(
                "lease `{name}` looks expired; watching it for {}s before taking it over",
                wait.as_secs()
            );
            loop {
                tokio::time::sleep(OBSERVE_EVERY).await;
                let seen = within(api.get_opt(&name)).await.map_err(failed)?;
                let Some(seen) = seen else {
                    // Deleted meanwhile: start again from scratch.
                    return Box::pin(self.acquire(target)).await;
                };
                if seen.metadata.resource_version != version {
                    if is_free(&seen) {
                        lease = seen;
                        break;
                    }
                    return Err(self.held_error(target, &seen));
                }
                if watched_since.elapsed() >= wait {
                    lease = seen;
                    break;
                }
            }
        }
        let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
        let mut next = lease.clone();
        next.spec = Some(self.spec(transitions + 1));
        match write(api.replace(&name, &PostParams::default(), &next)).await {
            Ok(_) => {
                self.hold(target, name);
                let taken_from_another = !is_free(&lease) && !self.mine(&lease);
                Ok(previous.filter(|_| taken_from_another).map(|previous| TakenOver { previous }))
            }
            // Someone else wrote it since we read it: they hold it now.
            Err(WriteError::Conflict) => Err(self.held_by_current(&api, target).await),
            Err(WriteError::Other(e)) => Err(failed(e)),
        }
    }

    fn held_error(&self, target: &str, lease: &Lease) -> LockError {
        match holder_of(lease) {
            Some(holder) => LockError::Held { target: target.into(), holder },
            None => self.error(target, "the lease changed while it was being taken; try again"),
        }
    }

    async fn held_by_current(&self, api: &Api<Lease>, target: &str) -> LockError {
        let name = lease_name(target);
        match within(api.get_opt(&name)).await {
            Ok(Some(lease)) => self.held_error(target, &lease),
            Ok(None) => {
                self.error(target, format!("lease `{name}` vanished while it was being taken; try again"))
            }
            Err(e) => self.error(target, format!("lease `{name}`: {e}")),
        }
    }

    /// Clears the holder of every held lease, so the next run takes them without waiting.
    async fn release_all(&self) {
        let Some(api) = self.state.api() else { return };
        let held: Vec<(String, String)> = self
            .state
            .held
            .lock()
            .map(|mut h| h.drain().map(|(t, (n, _))| (t, n)).collect())
            .unwrap_or_default();
        for (target, name) in held {
            let result = async {
                let mut lease = within(api.get(&name)).await?;
                if !self.mine(&lease) {
                    return Ok(());
                }
                if let Some(spec) = lease.spec.as_mut() {
                    spec.holder_identity = None;
                    spec.renew_time = None;
                    spec.acquire_time = None;
                }
                within(api.replace(&name, &PostParams::default(), &lease)).await.map(|_| ())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!("cannot release lease `{name}` for `{target}`: {e}");
            }
        }
    }
}

/// Renews every held lease every third of its duration, on its own task so a slow acquire
/// never delays it. A lease another runner holds now, or one not renewed within its duration
/// (by this machine's clock), is lost: reported through [`State::lost`] and forgotten.
async fn renew_loop(state: Arc<State>, id: String, duration: Duration) {
    let every = (duration / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let Some(api) = state.api() else { continue };
        let held: Vec<(String, String, Instant)> = state
            .held
            .lock()
            .map(|h| h.iter().map(|(t, (n, at))| (t.clone(), n.clone(), *at)).collect())
            .unwrap_or_default();
        for (target, name, last) in held {
            let outcome: Result<bool, String> = async {
                let mut lease = within(api.get(&name)).await?;
                if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(id.as_str()) {
                    return Ok(false);
                }
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = Some(now());
                }
                within(api.replace(&name, &PostParams::default(), &lease)).await.map(|_| true)
            }
            .await;
            match outcome {
                Ok(true) => {
                    if let Ok(mut h) = state.held.lock()
                        && let Some(entry) = h.get_mut(&target)
                    {
                        entry.1 = Instant::now();
                    }
                }
                Ok(false) => {
                    forget(&state, &target);
                    state.mark_lost(format!(
                        "the lease on `{target}` was taken by another runner; this run stops changing things"
                    ));
                }
                Err(e) if last.elapsed() >= duration => {
                    forget(&state, &target);
                    state.mark_lost(format!(
                        "the lease on `{target}` could not be renewed for {}s ({e}); another runner may hold it now, so this run stops changing things",
                        duration.as_secs()
                    ));
                }
                Err(e) => tracing::warn!("cannot renew lease `{name}` for `{target}`: {e}"),
            }
        }
    }
}

fn forget(state: &State, target: &str) {
    if let Ok(mut h) = state.held.lock() {
        h.remove(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_dns_safe_and_distinct() {
        let a = lease_name("k8s/prod/shop/web");
        assert!(a.starts_with("rollbook-k8s-prod-shop-web-"), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{a}");
        assert_ne!(a, lease_name("k8s/prod/shop-web"));
        assert!(lease_name(&"x".repeat(400)).len() <= 253);
    }

    #[test]
    fn lock_specs_parse_context_and_namespace() {
        let s = LeaseStore::parse("prod/locks").unwrap();
        assert_eq!((s.context.as_str(), s.namespace.as_str()), ("prod", "locks"));
        let s = LeaseStore::parse("arn:aws:eks/x/locks").unwrap();
        assert_eq!(s.context, "arn:aws:eks/x");
        assert!(LeaseStore::parse("prod").is_err());
    }

    #[test]
    fn a_holder_round_trips_through_its_identity() {
        let me = Holder::me("20261127T090012Z-3f9a1c");
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(identity(&me, &new_nonce())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let back = holder_of(&lease).unwrap();
        assert_eq!((back.run_id, back.host, back.pid), (me.run_id, me.host, me.pid));
    }

    #[test]
    fn two_processes_never_share_an_identity() {
        let me = Holder::me("run");
        assert_ne!(identity(&me, &new_nonce()), identity(&me, &new_nonce()));
    }

    #[test]
    fn lease_seconds_come_from_the_settings() {
        let mut s = Settings::default();
        assert_eq!(lease_seconds(&s), Ok(15));
        s.env.insert("ROLLBOOK_LEASE_SECONDS".into(), "3".into());
        assert_eq!(lease_seconds(&s), Ok(3));
        for bad in ["0", "-1", "99999", "x"] {
            s.env.insert("ROLLBOOK_LEASE_SECONDS".into(), bad.into());
            assert!(lease_seconds(&s).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_hints_never_overflow() {
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("x".into()),
                lease_duration_seconds: Some(i32::MAX),
                renew_time: Some(now()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!looks_expired(&lease));
    }
}
