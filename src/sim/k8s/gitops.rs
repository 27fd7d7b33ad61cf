//! GitOps controllers in the simulated clusters: Argo CD Applications
//! (`applications.argoproj.io/v1alpha1`), Flux Kustomizations
//! (`kustomizations.kustomize.toolkit.fluxcd.io/v1`) and HelmReleases
//! (`helmreleases.helm.toolkit.fluxcd.io/v2`) served as custom resources, the marks those tools
//! put on what they manage, and a reconciler that sets a drifted managed Deployment back to the
//! image git names once it has drifted for `interval` while reconciliation is on (Argo CD:
//! automated sync with self-heal; Flux: not suspended). A pending Argo CD `operation` (what
//! `argocd app rollback` writes) is carried out on the next tick.
//!
//! Reconciliation runs on the simulator's own GitOps clock: every tick moves it by the real time
//! passed times a scale (1 by default; rehearsals run it as fast as their runbook clock; tests
//! stop it and move it with [`K8sWorld::gitops_advance`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::K8sWorld;
use super::api::{collection, create, no_route, object};
use super::controller::{sync_deployment, template_images};
use super::store::{At, Key, Kind, Store, int_at, str_at};
use crate::model::Dur;

/// Argo CD's resource-tracking annotation (`<app>:<group>/<Kind>:<namespace>/<name>`).
pub const ARGO_TRACKING: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's label-tracking label (the Application's name).
pub const ARGO_INSTANCE: &str = "app.kubernetes.io/instance";
/// Flux kustomize-controller's owner labels.
pub const KS_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
/// See [`KS_NAME`].
pub const KS_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// Flux helm-controller's owner labels.
pub const HR_NAME: &str = "helm.toolkit.fluxcd.io/name";
/// See [`HR_NAME`].
pub const HR_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
/// The annotation `flux reconcile` and `flux resume` set to ask for a reconciliation now.
pub const FLUX_REQUESTED: &str = "reconcile.fluxcd.io/requestedAt";

/// The custom resources the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GitopsKind {
    /// Argo CD `Application`.
    Application,
    /// Flux `Kustomization`.
    Kustomization,
    /// Flux `HelmRelease`.
    HelmRelease,
}

impl GitopsKind {
    /// Every kind.
    pub const ALL: [GitopsKind; 3] =
        [GitopsKind::Application, GitopsKind::Kustomization, GitopsKind::HelmRelease];

    /// `kind` of an object.
    pub fn name(self) -> &'static str {
        match self {
            GitopsKind::Application => "Application",
            GitopsKind::Kustomization => "Kustomization",
            GitopsKind::HelmRelease => "HelmRelease",
        }
    }
    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            GitopsKind::Application => "argoproj.io",
            GitopsKind::Kustomization => "kustomize.toolkit.fluxcd.io",
            GitopsKind::HelmRelease => "helm.toolkit.fluxcd.io",
        }
    }
    /// The served version.
    pub fn version(self) -> &'static str {
        match self {
            GitopsKind::Application => "v1alpha1",
            GitopsKind::Kustomization => "v1",
            GitopsKind::HelmRelease => "v2",
        }
    }
    /// `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            GitopsKind::Application => "argoproj.io/v1alpha1",
            GitopsKind::Kustomization => "kustomize.toolkit.fluxcd.io/v1",
            GitopsKind::HelmRelease => "helm.toolkit.fluxcd.io/v2",
        }
    }
    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            GitopsKind::Application => "applications",
            GitopsKind::Kustomization => "kustomizations",
            GitopsKind::HelmRelease => "helmreleases",
        }
    }
    /// The singular resource name.
    pub fn singular(self) -> &'static str {
        match self {
            GitopsKind::Application => "application",
            GitopsKind::Kustomization => "kustomization",
            GitopsKind::HelmRelease => "helmrelease",
        }
    }
    /// Short names, as the tools' CRDs declare them.
    pub fn short(self) -> &'static [&'static str] {
        match self {
            GitopsKind::Application => &["app", "apps"],
            GitopsKind::Kustomization => &["ks"],
            GitopsKind::HelmRelease => &["hr"],
        }
    }
    /// The kind served at `group`/`resource`.
    pub fn from_resource(group: &str, resource: &str) -> Option<GitopsKind> {
        GitopsKind::ALL.into_iter().find(|k| k.group() == group && k.plural() == resource)
    }
    /// Whether `group`/`version` is one of these.
    pub fn serves(group: &str, version: &str) -> bool {
        GitopsKind::ALL.into_iter().any(|k| k.group() == group && k.version() == version)
    }
}

/// `[gitops]` of a scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitopsSection {
    /// `[[gitops.argocd]]`.
    #[serde(default)]
    pub argocd: Vec<ArgoApp>,
    /// `[[gitops.flux]]`.
    #[serde(default)]
    pub flux: Vec<FluxObject>,
}

fn default_context() -> String {
    "sim".into()
}
fn default_argocd_namespace() -> String {
    "argocd".into()
}
fn default_flux_namespace() -> String {
    "flux-system".into()
}
fn yes() -> bool {
    true
}
fn default_interval() -> Dur {
    Dur::secs(10)
}

/// `[[gitops.argocd]]`: an Argo CD Application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoApp {
    /// The context it lives in (default `sim`).
    #[serde(default = "default_context")]
    pub context: String,
    /// Its namespace (default `argocd`).
    #[serde(default = "default_argocd_namespace")]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Resource keys (`k8s/<context>/<namespace>/<deployment>`) of the Deployments it manages.
    pub manages: Vec<String>,
    /// Deployment name → the image git names for it.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Automated sync policy on (default true).
    #[serde(default = "yes")]
    pub auto_sync: bool,
    /// Self-heal on (default true).
    #[serde(default = "yes")]
    pub self_heal: bool,
    /// How long drift lasts before self-heal reverts it (default 10s).
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Sync history, oldest first.
    #[serde(default)]
    pub history: Vec<ArgoHistory>,
}

/// One entry of an Application's history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoHistory {
    /// History id.
    pub id: i64,
    /// Git revision.
    pub revision: String,
    /// Deployment name → image at that revision.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
}

/// `[[gitops.flux]]`: a Flux Kustomization or HelmRelease.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FluxObject {
    /// `Kustomization` (default) or `HelmRelease`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The context it lives in (default `sim`).
    #[serde(default = "default_context")]
    pub context: String,
    /// Its namespace (default `flux-system`).
    #[serde(default = "default_flux_namespace")]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Resource keys of the Deployments it manages.
    pub manages: Vec<String>,
    /// Deployment name → the image git names for it.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// `spec.suspend` at the start.
    #[serde(default)]
    pub suspended: bool,
    /// `spec.interval` (default 10s).
    #[serde(default = "default_interval")]
    pub interval: Dur,
}

impl FluxObject {
    fn gitops_kind(&self) -> Option<GitopsKind> {
        match self.kind.as_deref().unwrap_or("Kustomization") {
            "Kustomization" => Some(GitopsKind::Kustomization),
            "HelmRelease" => Some(GitopsKind::HelmRelease),
            _ => None,
        }
    }
}

/// The resource keys of a `[gitops]` section (`gitops/<context>/<namespace>/<name>`).
pub fn resource_keys(section: &GitopsSection) -> Vec<String> {
    let argo = section.argocd.iter().map(|a| (&a.context, &a.namespace, &a.name));
    let flux = section.flux.iter().map(|f| (&f.context, &f.namespace, &f.name));
    argo.chain(flux).map(|(c, n, m)| format!("gitops/{c}/{n}/{m}")).collect()
}

/// Name, context, managed keys and git images of one GitOps object of a scenario.
type Managing<'a> = (&'a str, &'a str, &'a Vec<String>, &'a BTreeMap<String, String>);

/// Checks a `[gitops]` section against the scenario's Kubernetes keys; the error names the
/// offending value (for the line lookup) and says what is wrong.
pub fn validate(section: &GitopsSection, k8s_keys: &[String]) -> Result<(), (String, String)> {
    let mut all: Vec<Managing<'_>> = Vec::new();
    for a in &section.argocd {
        all.push((&a.name, &a.context, &a.manages, &a.images));
        for h in &a.history {
            if a.history.iter().filter(|o| o.id == h.id).count() > 1 {
                return Err((
                    a.name.clone(),
                    format!("argocd application `{}`: history id {} appears twice", a.name, h.id),
                ));
            }
        }
    }
    for f in &section.flux {
        if f.gitops_kind().is_none() {
            return Err((
                f.kind.clone().unwrap_or_default(),
                format!("flux object `{}`: kind must be `Kustomization` or `HelmRelease`", f.name),
            ));
        }
        all.push((&f.name, &f.context, &f.manages, &f.images));
    }
    for (name, ctx, manages, images) in all {
        for key in manages {
            if !k8s_keys.iter().any(|k| k == key) {
                return Err((
                    key.clone(),
                    format!(
                        "gitops object `{name}` manages `{key}`, which is not a [[k8s.deployments]] entry"
                    ),
                ));
            }
            if !key.starts_with(&format!("k8s/{ctx}/")) {
                return Err((
                    key.clone(),
                    format!(
                        "gitops object `{name}` in context `{ctx}` cannot manage `{key}` of another context"
                    ),
                ));
            }
        }
        for dep in images.keys() {
            if !manages.iter().any(|k| k.rsplit('/').next() == Some(dep.as_str())) {
                return Err((
                    dep.clone(),
                    format!("gitops object `{name}`: `images` names `{dep}`, which it does not manage"),
                ));
            }
        }
    }
    Ok(())
}

/// One simulated GitOps object and what only its controller knows (git's content).
#[derive(Debug, Clone)]
struct Owner {
    key: Key,
    kind: GitopsKind,
    manages: Vec<Key>,
    /// Deployment name → image at git HEAD.
    git: BTreeMap<String, String>,
    /// Git HEAD revision.
    head: String,
    /// Revision → Deployment name → image (Argo CD history).
    revisions: BTreeMap<String, BTreeMap<String, String>>,
    /// Argo CD's drift timeout (Flux reads `spec.interval` of the object).
    interval: Duration,
    /// When each managed Deployment was first seen drifted (GitOps clock).
    drift_since: BTreeMap<Key, Duration>,
}

/// The GitOps controllers' state: the objects, and the clock they reconcile on.
#[derive(Debug)]
pub struct GitopsState {
    owners: Vec<Owner>,
    /// GitOps clock: simulated time since the world was built.
    now: Duration,
    /// Simulated seconds per real second (0 stops the clock).
    scale: f64,
    last_tick: Option<Instant>,
}

impl Default for GitopsState {
    fn default() -> Self {
        GitopsState { owners: Vec::new(), now: Duration::ZERO, scale: 1.0, last_tick: None }
    }
}

fn deployment_key(resource_key: &str) -> Option<Key> {
    let rest = resource_key.strip_prefix("k8s/")?;
    let mut parts = rest.rsplitn(3, '/');
    let name = parts.next()?;
    let ns = parts.next()?;
    let ctx = parts.next()?;
    Some(Key::new(ctx, Kind::Deployment, ns, name))
}

/// A short, stable fake git revision for content that names no revision of its own.
fn revision_of(images: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in images {
        for b in k.bytes().chain(v.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{:07x}", h & 0xfff_ffff)
}

fn flux_revision(head: &str) -> String {
    let long: String = head.chars().chain(std::iter::repeat('0')).take(40).collect();
    format!("main@sha1:{long}")
}

/// Adds the GitOps objects of a scenario to the store (while its history clock is set) and marks
/// the Deployments they manage as those tools do.
pub(crate) fn build(store: &mut Store, section: &GitopsSection) {
    let mut owners = Vec::new();
    for a in &section.argocd {
        let key = Key::new(&a.context, Kind::Gitops(GitopsKind::Application), &a.namespace, &a.name);
        let manages: Vec<Key> = a.manages.iter().filter_map(|k| deployment_key(k)).collect();
        let mut revisions: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for h in &a.history {
            revisions.insert(h.revision.clone(), h.images.clone());
        }
        let head = a
            .history
            .iter()
            .rev()
            .find(|h| h.images == a.images)
            .map(|h| h.revision.clone())
            .unwrap_or_else(|| revision_of(&a.images));
        revisions.entry(head.clone()).or_insert_with(|| a.images.clone());
        for d in &manages {
            mark(store, d, |obj| {
                let id = format!("{}:apps/Deployment:{}/{}", a.name, d.ns, d.name);
                set_annotation(obj, ARGO_TRACKING, &id);
            });
        }
        let dest_ns = manages.first().map(|k| k.ns.clone()).unwrap_or_else(|| "default".into());
        let source = json!({"repoURL": format!("https://git.example.com/{}.git", a.name),
            "path": a.name, "targetRevision": "HEAD"});
        let mut spec = json!({"project": "default", "source": source,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": dest_ns}});
        if a.auto_sync {
            spec["syncPolicy"] = json!({"automated": {"prune": true, "selfHeal": a.self_heal}});
        }
        let ts = store.timestamp();
        let history: Vec<Value> = a
            .history
            .iter()
            .map(|h| {
                json!({"id": h.id, "revision": h.revision, "deployedAt": ts, "deployStartedAt": ts,
                "source": source, "initiatedBy": {"automated": true}})
            })
            .collect();
        let uid = store.uid();
        let obj = json!({"apiVersion": GitopsKind::Application.api_version(), "kind": "Application",
            "metadata": {"name": a.name, "namespace": a.namespace, "uid": uid, "generation": 1,
                "creationTimestamp": ts, "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
            "spec": spec,
            "status": {"sourceType": "Directory", "reconciledAt": ts, "history": history,
                "sync": {"status": "Synced", "revision": head,
                    "comparedTo": {"source": source, "destination": spec["destination"]}},
                "health": {"status": "Healthy"},
                "operationState": {"phase": "Succeeded", "message": "successfully synced (all tasks run)",
                    "startedAt": ts, "finishedAt": ts,
                    "operation": {"sync": {"revision": head}, "initiatedBy": {"automated": true}},
                    "syncResult": {"revision": head, "source": source}}}});
        store.put(&key, obj);
        owners.push(Owner {
            key,
            kind: GitopsKind::Application,
            manages,
            git: a.images.clone(),
            head,
            revisions,
            interval: a.interval.get(),
            drift_since: BTreeMap::new(),
        });
    }
    for f in &section.flux {
        let Some(kind) = f.gitops_kind() else { continue };
        let key = Key::new(&f.context, Kind::Gitops(kind), &f.namespace, &f.name);
        let manages: Vec<Key> = f.manages.iter().filter_map(|k| deployment_key(k)).collect();
        let head = revision_of(&f.images);
        for d in &manages {
            mark(store, d, |obj| {
                let (name, ns) = if kind == GitopsKind::HelmRelease {
                    (HR_NAME, HR_NAMESPACE)
                } else {
                    (KS_NAME, KS_NAMESPACE)
                };
                set_label(obj, name, &f.name);
                set_label(obj, ns, &f.namespace);
                if kind == GitopsKind::HelmRelease {
                    set_label(obj, "app.kubernetes.io/managed-by", "Helm");
                    set_annotation(obj, "meta.helm.sh/release-name", &f.name);
                    set_annotation(obj, "meta.helm.sh/release-namespace", &f.namespace);
                }
            });
        }
        let ts = store.timestamp();
        let interval = crate::model::format_duration(f.interval.get());
        let (spec, status) = if kind == GitopsKind::Kustomization {
            let rev = flux_revision(&head);
            (
                json!({"interval": interval, "path": format!("./{}", f.name), "prune": true,
                    "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, "suspend": f.suspended}),
                json!({"observedGeneration": 1, "lastAppliedRevision": rev, "lastAttemptedRevision": rev,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                        "message": format!("Applied revision: {rev}"), "lastTransitionTime": ts,
                        "observedGeneration": 1}],
                    "inventory": {"entries": manages.iter()
                        .map(|d| json!({"id": format!("{}_{}_apps_Deployment", d.ns, d.name), "v": "v1"}))
                        .collect::<Vec<_>>()}}),
            )
        } else {
            let chart_version = format!("1.0.0+{head}");
            (
                json!({"interval": interval, "releaseName": f.name,
                    "chart": {"spec": {"chart": f.name, "version": "*",
                        "sourceRef": {"kind": "HelmRepository", "name": f.name}}},
                    "driftDetection": {"mode": "enabled"}, "suspend": f.suspended, "values": {}}),
                json!({"observedGeneration": 1, "lastAttemptedRevision": chart_version,
                    "history": [{"name": f.name, "namespace": f.namespace, "version": 1, "status": "deployed",
                        "chartName": f.name, "chartVersion": chart_version, "firstDeployed": ts, "lastDeployed": ts}],
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "InstallSucceeded",
                         "message": format!("Helm install succeeded for release {}/{}.v1 with chart {}@{chart_version}", f.namespace, f.name, f.name),
                         "lastTransitionTime": ts, "observedGeneration": 1},
                        {"type": "Released", "status": "True", "reason": "InstallSucceeded",
                         "message": format!("Helm install succeeded for release {}/{}.v1 with chart {}@{chart_version}", f.namespace, f.name, f.name),
                         "lastTransitionTime": ts, "observedGeneration": 1}]}),
            )
        };
        let uid = store.uid();
        let obj = json!({"apiVersion": kind.api_version(), "kind": kind.name(),
            "metadata": {"name": f.name, "namespace": f.namespace, "uid": uid, "generation": 1,
                "creationTimestamp": ts, "finalizers": ["finalizers.fluxcd.io"]},
            "spec": spec, "status": status});
        store.put(&key, obj);
        owners.push(Owner {
            key,
            kind,
            manages,
            git: f.images.clone(),
            head: head.clone(),
            revisions: BTreeMap::from([(head, f.images.clone())]),
            interval: f.interval.get(),
            drift_since: BTreeMap::new(),
        });
    }
    store.gitops.owners = owners;
}

fn set_annotation(obj: &mut Value, k: &str, v: &str) {
    super::store::obj_mut(obj, &["metadata", "annotations"]).insert(k.into(), json!(v));
}

fn set_label(obj: &mut Value, k: &str, v: &str) {
    super::store::obj_mut(obj, &["metadata", "labels"]).insert(k.into(), json!(v));
}

/// Marks a Deployment and the ReplicaSets it owns (so a rollback to an old one keeps the mark,
/// as it does on a real cluster where the mark was there from the start).
fn mark(store: &mut Store, d: &Key, f: impl Fn(&mut Value)) {
    let Some(obj) = store.objects.get(d).map(|o| Value::clone(o)) else { return };
    let uid = str_at(&obj, "/metadata/uid").unwrap_or("").to_string();
    let mut marked = obj;
    f(&mut marked);
    // Labels go on the Deployment only; annotations are copied to its ReplicaSets.
    let annotations = marked.at("/metadata/annotations").cloned();
    store.put(d, marked);
    for (k, rs) in super::controller::owned_replicasets(store, d, &uid) {
        let mut rs = Value::clone(&rs);
        if let Some(Value::Object(a)) = &annotations {
            let target = super::store::obj_mut(&mut rs, &["metadata", "annotations"]);
            for (ak, av) in a {
                if !ak.starts_with("deployment.kubernetes.io/") {
                    target.insert(ak.clone(), av.clone());
                }
            }
        }
        store.put(&k, rs);
    }
}

/// The main container's image of a Deployment (the container named after it, else the first).
fn live_image(d: &Value, name: &str) -> Option<String> {
    let cs = d.at("/spec/template/spec/containers")?.as_array()?;
    let c = cs.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(name)).or_else(|| cs.first())?;
    c.get("image").and_then(Value::as_str).map(String::from)
}

/// Sets the main container's image as the GitOps tool's apply would; returns whether it changed.
fn apply_image(store: &mut Store, key: &Key, image: &str) -> bool {
    let Some(mut d) = store.objects.get(key).map(|d| Value::clone(d)) else { return false };
    let Some(Value::Array(cs)) = d.pointer_mut("/spec/template/spec/containers") else { return false };
    let idx =
        cs.iter().position(|c| c.get("name").and_then(Value::as_str) == Some(key.name.as_str())).unwrap_or(0);
    let Some(c) = cs.get_mut(idx) else { return false };
    if c.get("image").and_then(Value::as_str) == Some(image) {
        return false;
    }
    c["image"] = json!(image);
    d["metadata"]["generation"] = json!(int_at(&d, "/metadata/generation") + 1);
    store.put(key, d);
    sync_deployment(store, key);
    true
}

/// Whether this object's controller puts drift back now (ignoring the interval).
fn reconciling(kind: GitopsKind, obj: &Value) -> bool {
    match kind {
        GitopsKind::Application => {
            obj.at("/spec/syncPolicy/automated").is_some_and(|a| !a.is_null())
                && obj.at("/spec/syncPolicy/automated/selfHeal").and_then(Value::as_bool) == Some(true)
        }
        GitopsKind::Kustomization => obj.at("/spec/suspend").and_then(Value::as_bool) != Some(true),
        GitopsKind::HelmRelease => {
            obj.at("/spec/suspend").and_then(Value::as_bool) != Some(true)
                && obj.at("/spec/driftDetection/mode").and_then(Value::as_str) == Some("enabled")
        }
    }
}

fn deployment_healthy(d: &Value) -> bool {
    let want = int_at(d, "/spec/replicas");
    int_at(d, "/status/updatedReplicas") >= want
        && int_at(d, "/status/availableReplicas") >= want
        && int_at(d, "/status/replicas") <= want
        && int_at(d, "/status/observedGeneration") >= int_at(d, "/metadata/generation")
}

/// One controller pass over one object at GitOps time `now`.
fn reconcile_one(store: &mut Store, o: &mut Owner, now: Duration) {
    let Some(current) = store.objects.get(&o.key).cloned() else { return };
    let mut obj = Value::clone(&current);
    let ts = store.timestamp();
    // Argo CD: carry out a pending operation (a manual sync or a rollback) first.
    if o.kind == GitopsKind::Application
        && let Some(op) = obj.get("operation").filter(|v| !v.is_null()).cloned()
    {
        let revision = op.at("/sync/revision").and_then(Value::as_str).unwrap_or(&o.head).to_string();
        let mut state = json!({"operation": op, "startedAt": ts, "finishedAt": ts});
        match o.revisions.get(&revision).cloned() {
            Some(images) => {
                for d in o.manages.clone() {
                    if let Some(image) = images.get(&d.name) {
                        apply_image(store, &d, image);
                    }
                    o.drift_since.remove(&d);
                }
                let source = obj.at("/spec/source").cloned().unwrap_or(json!({}));
                let history = super::store::obj_mut(&mut obj, &["status"])
                    .entry("history")
                    .or_insert_with(|| json!([]));
                if let Value::Array(h) = history {
                    let id =
                        h.iter().filter_map(|e| e.get("id").and_then(Value::as_i64)).max().unwrap_or(-1) + 1;
                    h.push(json!({"id": id, "revision": revision, "deployedAt": ts, "deployStartedAt": ts,
                        "source": source, "initiatedBy": op.get("initiatedBy").cloned().unwrap_or(json!({}))}));
                    // Argo CD keeps the last 10 entries by default.
                    let excess = h.len().saturating_sub(10);
                    h.drain(..excess);
                }
                state["phase"] = json!("Succeeded");
                state["message"] = json!("successfully synced (all tasks run)");
                state["syncResult"] = json!({"revision": revision, "source": source});
            }
            None => {
                state["phase"] = json!("Error");
                state["message"] = json!(format!(
                    "rpc error: code = Unknown desc = unable to resolve '{revision}' to a commit SHA"
                ));
            }
        }
        obj["status"]["operationState"] = state;
        if let Some(m) = obj.as_object_mut() {
            m.remove("operation");
        }
    }
    // Flux: `flux reconcile` / `flux resume` ask for a pass now through an annotation.
    let requested = super::store::annotation(&obj, FLUX_REQUESTED).map(String::from);
    let forced = o.kind != GitopsKind::Application
        && requested.is_some()
        && requested.as_deref() != obj.at("/status/lastHandledReconcileAt").and_then(Value::as_str);
    let on = reconciling(o.kind, &obj);
    let interval = match o.kind {
        GitopsKind::Application => o.interval,
        _ => obj
            .at("/spec/interval")
            .and_then(Value::as_str)
            .and_then(|s| crate::model::parse_duration(s).ok())
            .unwrap_or(o.interval),
    };
    let mut in_sync = true;
    let mut healthy = true;
    let mut resources = Vec::new();
    let mut images = Vec::new();
    for d in o.manages.clone() {
        let Some(want) = o.git.get(&d.name).cloned() else { continue };
        let live = store.objects.get(&d).and_then(|v| live_image(v, &d.name));
        if live.is_some() && live.as_deref() != Some(want.as_str()) && on {
            let since = *o.drift_since.entry(d.clone()).or_insert(now);
            if forced || now.saturating_sub(since) >= interval {
                apply_image(store, &d, &want);
                o.drift_since.remove(&d);
            }
        } else {
            o.drift_since.remove(&d);
        }
        let Some(dep) = store.objects.get(&d).cloned() else { continue };
        let synced = live_image(&dep, &d.name).as_deref() == Some(want.as_str());
        let ok = deployment_healthy(&dep);
        in_sync &= synced;
        healthy &= ok;
        images.extend(dep.at("/spec/template").map(template_images).unwrap_or_default());
        resources.push(json!({"group": "apps", "version": "v1", "kind": "Deployment", "namespace": d.ns,
            "name": d.name, "status": if synced { "Synced" } else { "OutOfSync" },
            "health": {"status": if ok { "Healthy" } else { "Progressing" }}}));
    }
    images.sort();
    images.dedup();
    match o.kind {
        GitopsKind::Application => {
            let before = obj.get("status").cloned();
            obj["status"]["sync"]["status"] = json!(if in_sync { "Synced" } else { "OutOfSync" });
            obj["status"]["sync"]["revision"] = json!(o.head);
            obj["status"]["health"] = json!({"status": if healthy { "Healthy" } else { "Progressing" }});
            obj["status"]["resources"] = json!(resources);
            obj["status"]["summary"] = json!({"images": images});
            if obj.get("status").cloned() != before {
                obj["status"]["reconciledAt"] = json!(ts);
            }
        }
        _ => {
            if forced {
                obj["status"]["lastHandledReconcileAt"] = json!(requested);
            }
        }
    }
    if obj != *current {
        store.put(&o.key, obj);
    }
}

/// One pass of every GitOps controller after the GitOps clock moved by `by`.
fn reconcile(store: &mut Store, by: Duration) {
    let mut owners = std::mem::take(&mut store.gitops.owners);
    store.gitops.now += by;
    let now = store.gitops.now;
    for o in &mut owners {
        reconcile_one(store, o, now);
    }
    store.gitops.owners = owners;
}

/// The observable state of `gitops/<context>/<namespace>/<name>` for test expectations.
fn state_of(store: &Store, key: &str) -> Option<Value> {
    let rest = key.strip_prefix("gitops/")?;
    let o =
        store.gitops.owners.iter().find(|o| rest == format!("{}/{}/{}", o.key.ctx, o.key.ns, o.key.name))?;
    let obj = store.objects.get(&o.key)?;
    let auto_sync = obj.at("/spec/syncPolicy/automated").is_some_and(|a| !a.is_null());
    let self_heal = obj.at("/spec/syncPolicy/automated/selfHeal").and_then(Value::as_bool) == Some(true);
    let suspended = match o.kind {
        GitopsKind::Application => !auto_sync,
        _ => obj.at("/spec/suspend").and_then(Value::as_bool) == Some(true),
    };
    let mut out = json!({"kind": o.kind.name(), "suspended": suspended, "reconciling": reconciling(o.kind, obj),
        "git_images": o.git});
    if o.kind == GitopsKind::Application {
        out["auto_sync"] = json!(auto_sync);
        out["self_heal"] = json!(self_heal);
        out["sync_status"] = obj.at("/status/sync/status").cloned().unwrap_or(Value::Null);
        out["revision"] = obj
            .at("/status/history")
            .and_then(Value::as_array)
            .and_then(|h| h.last())
            .and_then(|e| e.get("revision"))
            .cloned()
            .unwrap_or(Value::Null);
    }
    Some(out)
}

impl K8sWorld {
    /// One tick of the GitOps controllers: the GitOps clock moves by the real time since the
    /// last tick times its scale, then every object is reconciled.
    pub fn gitops_tick(&self) {
        let mut store = self.lock();
        if store.gitops.owners.is_empty() {
            return;
        }
        let now = Instant::now();
        let real = store.gitops.last_tick.map(|t| now.duration_since(t)).unwrap_or_default();
        store.gitops.last_tick = Some(now);
        let by = real.mul_f64(store.gitops.scale);
        reconcile(&mut store, by);
    }

    /// Moves the GitOps clock by `by` at once (after a pass that notices drift made meanwhile),
    /// reconciling as the controllers would when that much time passed.
    pub fn gitops_advance(&self, by: Duration) {
        let mut store = self.lock();
        reconcile(&mut store, Duration::ZERO);
        reconcile(&mut store, by);
    }

    /// Sets how many simulated seconds pass on the GitOps clock per real second (0 stops it).
    pub fn set_gitops_time_scale(&self, scale: f64) {
        let mut store = self.lock();
        store.gitops.scale = if scale.is_finite() { scale.max(0.0) } else { 1.0 };
        store.gitops.last_tick = None;
    }

    /// Observable state of a `gitops/<context>/<namespace>/<name>` key: `suspended`, `kind`,
    /// `reconciling`, `git_images`, and for Argo CD `auto_sync`, `self_heal`, `sync_status`,
    /// `revision` (of the newest history entry).
    pub fn gitops_state(&self, key: &str) -> Option<Value> {
        state_of(&self.lock(), key)
    }
}

/// Serves `/apis/<group>/<version>/...` of the GitOps custom resources.
pub(super) async fn route(world: Arc<K8sWorld>, r: &super::api::Req, group: &str, rest: &[&str]) -> Response {
    use axum::http::Method;
    let kind_of = |res: &str| GitopsKind::from_resource(group, res).map(Kind::Gitops);
    let get = r.method == Method::GET;
    match rest {
        [res] => match kind_of(res) {
            Some(kind) if get => collection(world, r, kind, None).await,
            _ => no_route(),
        },
        ["namespaces", ns, res] => match kind_of(res) {
            Some(kind) if get => collection(world, r, kind, Some(ns)).await,
            Some(kind) if r.method == Method::POST => create(&world, r, kind, ns),
            _ => no_route(),
        },
        ["namespaces", ns, res, name] | ["namespaces", ns, res, name, "status"] => match kind_of(res) {
            Some(kind) => object(&world, r, kind, ns, name),
            None => no_route(),
        },
        _ => no_route(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Scenario;

    const ARGO: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]

[[gitops.argocd]]
context = "prod"
name = "shop"
manages = ["k8s/prod/shop/web"]
images = { web = "shop/web:1.5.0" }
interval = "10s"
history = [{ id = 1, revision = "a1b2c3d", images = { web = "shop/web:1.4.0" } },
           { id = 2, revision = "e4f5a6b", images = { web = "shop/web:1.5.0" } }]
"#;

    fn world(text: &str) -> K8sWorld {
        let scenario = Scenario::parse(std::path::Path::new("t.toml"), text).expect("scenario parses");
        K8sWorld::from_scenario(&scenario)
    }

    fn image(w: &K8sWorld) -> String {
        let key = Key::new("prod", Kind::Deployment, "shop", "web");
        live_image(&w.lock().objects[&key], "web").unwrap_or_default()
    }

    fn drift(w: &K8sWorld, to: &str) {
        let key = Key::new("prod", Kind::Deployment, "shop", "web");
        assert!(apply_image(&mut w.lock(), &key, to));
    }

    #[test]
    fn managed_deployments_carry_the_tracking_annotation() {
        let w = world(ARGO);
        let store = w.lock();
        let key = Key::new("prod", Kind::Deployment, "shop", "web");
        assert_eq!(
            super::super::store::annotation(&store.objects[&key], ARGO_TRACKING),
            Some("shop:apps/Deployment:shop/web")
        );
    }

    #[test]
    fn self_heal_reverts_drift_only_after_the_interval() {
        let w = world(ARGO);
        w.set_gitops_time_scale(0.0);
        drift(&w, "shop/web:1.4.0");
        w.gitops_advance(Duration::from_secs(9));
        assert_eq!(image(&w), "shop/web:1.4.0", "not yet");
        w.gitops_advance(Duration::from_secs(1));
        assert_eq!(image(&w), "shop/web:1.5.0", "reverted after the interval");
    }

    #[test]
    fn without_an_automated_policy_drift_stays() {
        let w = world(ARGO);
        let key = Key::new("prod", Kind::Gitops(GitopsKind::Application), "argocd", "shop");
        {
            let mut store = w.lock();
            let mut app = Value::clone(&store.objects[&key]);
            app["spec"].as_object_mut().map(|s| s.remove("syncPolicy"));
            store.put(&key, app);
        }
        drift(&w, "shop/web:1.4.0");
        w.gitops_advance(Duration::from_secs(60));
        assert_eq!(image(&w), "shop/web:1.4.0");
        let state = w.gitops_state("gitops/prod/argocd/shop").expect("state");
        assert_eq!(state["suspended"], json!(true));
        assert_eq!(state["sync_status"], json!("OutOfSync"));
    }

    #[test]
    fn a_rollback_operation_applies_the_history_entry_and_is_recorded() {
        let w = world(ARGO);
        let key = Key::new("prod", Kind::Gitops(GitopsKind::Application), "argocd", "shop");
        {
            let mut store = w.lock();
            let mut app = Value::clone(&store.objects[&key]);
            app["spec"].as_object_mut().map(|s| s.remove("syncPolicy"));
            app["operation"] = json!({"sync": {"revision": "a1b2c3d"}, "initiatedBy": {"username": "t"}});
            store.put(&key, app);
        }
        w.gitops_advance(Duration::ZERO);
        assert_eq!(image(&w), "shop/web:1.4.0");
        let store = w.lock();
        let app = &store.objects[&key];
        assert!(app.get("operation").is_none());
        assert_eq!(app.at("/status/operationState/phase"), Some(&json!("Succeeded")));
        assert_eq!(app.at("/status/history/2/revision"), Some(&json!("a1b2c3d")));
        assert_eq!(app.at("/status/history/2/id"), Some(&json!(3)));
    }

    #[test]
    fn a_flux_kustomization_reverts_unless_suspended() {
        let text = r#"
[[k8s.deployments]]
context = "prod"
namespace = "payments"
name = "api"
revisions = ["pay/api:1.0.0", "pay/api:2.0.0"]

[[gitops.flux]]
context = "prod"
name = "payments"
manages = ["k8s/prod/payments/api"]
images = { api = "pay/api:2.0.0" }
suspended = true
"#;
        let w = world(text);
        let key = Key::new("prod", Kind::Deployment, "payments", "api");
        assert!(apply_image(&mut w.lock(), &key, "pay/api:1.0.0"));
        w.gitops_advance(Duration::from_secs(60));
        assert_eq!(live_image(&w.lock().objects[&key], "api").as_deref(), Some("pay/api:1.0.0"));
        let ks = Key::new("prod", Kind::Gitops(GitopsKind::Kustomization), "flux-system", "payments");
        {
            let mut store = w.lock();
            let mut obj = Value::clone(&store.objects[&ks]);
            obj["spec"]["suspend"] = json!(false);
            store.put(&ks, obj);
        }
        w.gitops_advance(Duration::from_secs(10));
        assert_eq!(live_image(&w.lock().objects[&key], "api").as_deref(), Some("pay/api:2.0.0"));
    }

    #[test]
    fn scenario_validation_names_unknown_managed_deployments() {
        let bad = ARGO.replace("manages = [\"k8s/prod/shop/web\"]", "manages = [\"k8s/prod/shop/wbe\"]");
        let err = Scenario::parse(std::path::Path::new("t.toml"), &bad).expect_err("refused").to_string();
        assert!(err.contains("k8s/prod/shop/wbe"), "{err}");
    }
}
