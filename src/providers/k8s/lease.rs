//! The Kubernetes `Lease` lock backend (`rollbook run --lock k8s:<context>/<namespace>`): each
//! target's lock is a `coordination.k8s.io/v1` Lease in one namespace of one cluster, so runners
//! on different machines exclude each other. A held lease is renewed while the run lives and
//! released at its end; one whose holder stopped renewing it (a dead run) is taken over once it
//! has expired, with a warning. Every write is a create or a replace at the read
//! `resourceVersion`, so two runners racing for one lease never both win.
//!
//! The backend runs its own small runtime on its own thread: the run takes locks from the script
//! thread and releases them from async code, and neither may block a runtime it is inside.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::KubeClients;
use crate::model::Settings;
use crate::run::locks::{Holder, LockBackend, LockError, LockOpener, TakenOver};

/// How long a lease lasts without renewal.
const LEASE_SECONDS: i32 = 15;
/// How often held leases are renewed.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for one lock request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The `holderIdentity` of a run: `<run id>@<host>/<pid>`.
fn identity(h: &Holder) -> String {
    format!("{}@{}/{}", h.run_id, h.host, h.pid)
}

fn holder_of(lease: &Lease) -> Option<Holder> {
    let spec = lease.spec.as_ref()?;
    let id = spec.holder_identity.as_deref().filter(|s| !s.is_empty())?;
    let (run_id, rest) = id.split_once('@').unwrap_or((id, ""));
    let (host, pid) = rest.rsplit_once('/').unwrap_or((rest, "0"));
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

/// Whether the lease's holder stopped renewing it more than its duration ago.
fn expired(lease: &Lease) -> bool {
    let Some(spec) = lease.spec.as_ref() else { return true };
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    let last = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).and_then(|t| to_chrono(&t.0));
    match last {
        Some(at) => chrono::Utc::now() > at + chrono::TimeDelta::seconds(seconds),
        None => true,
    }
}

/// Whether `holder` is a process of this machine that no longer exists (a dead run: its lease
/// need not expire before it is taken over). Elsewhere only expiry tells.
fn gone(holder: &Holder, me: &Holder) -> bool {
    cfg!(target_os = "linux")
        && holder.host == me.host
        && holder.pid != 0
        && holder.pid != me.pid
        && !std::path::Path::new("/proc").join(holder.pid.to_string()).exists()
}

enum Cmd {
    Acquire(String, std_mpsc::Sender<Result<Option<TakenOver>, LockError>>),
    ReleaseAll(std_mpsc::Sender<()>),
}

/// The Lease locks of one run.
pub struct LeaseLocks {
    store: LeaseStore,
    tx: mpsc::UnboundedSender<Cmd>,
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
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker { settings, store: store.clone(), me, api: None, held: HashMap::new() };
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
        Ok(LeaseLocks { store, tx, thread: Some(thread) })
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
        answer.recv_timeout(REQUEST_TIMEOUT + Duration::from_secs(5)).map_err(|_| self.unavailable(target))?
    }

    fn release_all(&self) {
        let (reply, answer) = std_mpsc::channel();
        if self.tx.send(Cmd::ReleaseAll(reply)).is_ok() {
            let _ = answer.recv_timeout(REQUEST_TIMEOUT);
        }
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
    me: Holder,
    api: Option<Api<Lease>>,
    /// Target → the name of the lease held for it.
    held: HashMap<String, String>,
}

impl Worker {
    async fn serve(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Acquire(target, reply)) => {
                        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.acquire(&target))
                            .await
                            .unwrap_or_else(|_| Err(self.error(&target, "the cluster did not answer in time")));
                        let _ = reply.send(result);
                    }
                    Some(Cmd::ReleaseAll(reply)) => {
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.release_all()).await;
                        let _ = reply.send(());
                    }
                    None => {
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.release_all()).await;
                        return;
                    }
                },
                _ = renew.tick() => self.renew().await,
            }
        }
    }

    fn error(&self, target: &str, message: impl Into<String>) -> LockError {
        LockError::Store { target: target.into(), store: self.store.describe(), message: message.into() }
    }

    async fn api(&mut self, target: &str) -> Result<Api<Lease>, LockError> {
        if let Some(api) = &self.api {
            return Ok(api.clone());
        }
        let clients = KubeClients::default();
        let client = clients
            .client(&self.settings, &self.store.context)
            .await
            .map_err(|e| self.error(target, e.message))?;
        let api = Api::<Lease>::namespaced(client, &self.store.namespace);
        self.api = Some(api.clone());
        Ok(api)
    }

    fn mine(&self, lease: &Lease) -> bool {
        lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(identity(&self.me).as_str())
    }

    fn spec(&self, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(identity(&self.me)),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    async fn acquire(&mut self, target: &str) -> Result<Option<TakenOver>, LockError> {
        if self.held.contains_key(target) {
            return Ok(None);
        }
        let api = self.api(target).await?;
        let name = lease_name(target);
        let failed = |e: kube::Error| self.error(target, format!("lease `{name}`: {e}"));
        let current = api.get_opt(&name).await.map_err(failed)?;
        let taken = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        annotations: Some([("rollbook.dev/target".to_string(), target.to_string())].into()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(0)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => None,
                    // Another runner created it first: it holds it.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        return Err(self.held_by_current(&api, target).await);
                    }
                    Err(e) => return Err(failed(e)),
                }
            }
            Some(lease) => {
                let previous = holder_of(&lease);
                if let Some(holder) = &previous
                    && !self.mine(&lease)
                    && !expired(&lease)
                    && !gone(holder, &self.me)
                {
                    return Err(LockError::Held { target: target.into(), holder: holder.clone() });
                }
                let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0);
                let mut next = lease.clone();
                next.spec = Some(self.spec(transitions + 1));
                match api.replace(&name, &PostParams::default(), &next).await {
                    Ok(_) => {
                        previous.filter(|p| p.run_id != self.me.run_id).map(|previous| TakenOver { previous })
                    }
                    // Someone else wrote it since we read it: they hold it now.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        return Err(self.held_by_current(&api, target).await);
                    }
                    Err(e) => return Err(failed(e)),
                }
            }
        };
        self.held.insert(target.to_string(), name);
        Ok(taken)
    }

    async fn held_by_current(&self, api: &Api<Lease>, target: &str) -> LockError {
        let name = lease_name(target);
        match api.get_opt(&name).await {
            Ok(Some(lease)) => match holder_of(&lease) {
                Some(holder) => LockError::Held { target: target.into(), holder },
                None => {
                    self.error(target, format!("lease `{name}` changed while it was being taken; try again"))
                }
            },
            Ok(None) => {
                self.error(target, format!("lease `{name}` vanished while it was being taken; try again"))
            }
            Err(e) => self.error(target, format!("lease `{name}`: {e}")),
        }
    }

    /// Renews every held lease; one lost to another runner is reported and forgotten.
    async fn renew(&mut self) {
        let Some(api) = self.api.clone() else { return };
        let mut lost = Vec::new();
        for (target, name) in &self.held {
            let result = async {
                let mut lease = api.get(name).await?;
                if !self.mine(&lease) {
                    return Ok(false);
                }
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = Some(now());
                }
                api.replace(name, &PostParams::default(), &lease).await.map(|_| true)
            }
            .await;
            match result {
                Ok(true) => {}
                Ok(false) => lost.push(target.clone()),
                Err(e) => tracing::warn!("cannot renew lease `{name}` for `{target}`: {e}"),
            }
        }
        for target in lost {
            tracing::error!("the lease on `{target}` was taken by another runner");
            self.held.remove(&target);
        }
    }

    /// Clears the holder of every held lease, so the next run takes them without waiting.
    async fn release_all(&mut self) {
        let Some(api) = self.api.clone() else { return };
        for (target, name) in self.held.drain() {
            let result = async {
                let mut lease = api.get(&name).await?;
                if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                    != Some(identity(&self.me).as_str())
                {
                    return Ok(());
                }
                if let Some(spec) = lease.spec.as_mut() {
                    spec.holder_identity = None;
                    spec.renew_time = None;
                    spec.acquire_time = None;
                }
                api.replace(&name, &PostParams::default(), &lease).await.map(|_| ())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!("cannot release lease `{name}` for `{target}`: {e}");
            }
        }
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
            spec: Some(LeaseSpec { holder_identity: Some(identity(&me)), ..Default::default() }),
            ..Default::default()
        };
        let back = holder_of(&lease).unwrap();
        assert_eq!((back.run_id, back.host, back.pid), (me.run_id, me.host, me.pid));
    }
}
