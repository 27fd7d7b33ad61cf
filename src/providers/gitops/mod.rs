//! GitOps-aware rollback: who manages a Deployment (Argo CD or Flux, found through the marks those
//! tools put on what they manage), suspending and resuming their reconciliation as their own
//! CLIs do, an Argo CD rollback to a history entry, and the guard that keeps `k8s::*` changes
//! from being silently reverted by a controller that puts git's state back.

mod guard;
mod owner;
mod rollback;
mod suspend;

pub(crate) use guard::check as guard;
pub use owner::{Owner, OwnerArgs, OwnerOutput};
pub use rollback::{Rollback, RollbackArgs, RollbackOutput};
pub use suspend::{Resume, Suspend, SuspendArgs};

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use super::k8s::KubeClients;
use super::{CallCx, DynPrimitive, Shared, erase};
use crate::model::{ErrorKind, PrimitiveError};

/// The gitops primitives, alphabetical.
pub fn register() -> Vec<Arc<dyn DynPrimitive>> {
    vec![
        erase(Owner),    // who reconciles a Deployment: Argo CD, Flux, or nobody
        erase(Resume),   // restore reconciliation (`argocd app set --sync-policy automated`, `flux resume`)
        erase(Rollback), // `argocd app rollback APP ID`
        erase(Suspend),  // stop reconciliation (`argocd app set --sync-policy none`, `flux suspend`)
    ]
}

/// Argo CD's resource-tracking annotation (`<app>:<group>/<Kind>:<namespace>/<name>`).
pub const ARGO_TRACKING: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's label tracking (the Application's name).
pub const ARGO_INSTANCE: &str = "app.kubernetes.io/instance";
/// Where Argo CD keeps its Applications unless configured otherwise.
pub const ARGO_NAMESPACE: &str = "argocd";
/// Flux kustomize-controller's owner label.
pub const KS_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
/// Flux kustomize-controller's owner namespace label.
pub const KS_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// Flux helm-controller's owner label.
pub const HR_NAME: &str = "helm.toolkit.fluxcd.io/name";
/// Flux helm-controller's owner namespace label.
pub const HR_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
/// Where `gitops::suspend` keeps an Application's automated sync policy for `gitops::resume`.
pub const SUSPENDED_POLICY: &str = "rollbook.dev/suspended-automated-sync";
/// The annotation `flux resume` and `flux reconcile` set to ask for a reconciliation now.
pub const FLUX_REQUESTED: &str = "reconcile.fluxcd.io/requestedAt";

/// The GitOps tools rollbook knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// An Argo CD Application.
    Argo,
    /// A Flux Kustomization.
    Kustomization,
    /// A Flux HelmRelease.
    HelmRelease,
}

impl Tool {
    /// The word scripts see in `kind`.
    pub fn word(self) -> &'static str {
        match self {
            Tool::Argo => "argocd",
            Tool::Kustomization => "flux-kustomization",
            Tool::HelmRelease => "flux-helmrelease",
        }
    }

    /// The tool from its word.
    pub fn from_word(word: &str) -> Option<Tool> {
        [Tool::Argo, Tool::Kustomization, Tool::HelmRelease].into_iter().find(|t| t.word() == word)
    }

    /// "Argo CD application", "Flux Kustomization", "Flux HelmRelease".
    pub fn title(self) -> &'static str {
        match self {
            Tool::Argo => "Argo CD application",
            Tool::Kustomization => "Flux Kustomization",
            Tool::HelmRelease => "Flux HelmRelease",
        }
    }

    fn resource(self) -> ApiResource {
        let (g, v, k, plural) = match self {
            Tool::Argo => ("argoproj.io", "v1alpha1", "Application", "applications"),
            Tool::Kustomization => ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
            Tool::HelmRelease => ("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural)
    }

    /// The CLI command that suspends, for messages.
    fn suspend_cli(self, name: &str) -> String {
        match self {
            Tool::Argo => format!("argocd app set {name} --sync-policy none"),
            Tool::Kustomization => format!("flux suspend kustomization {name}"),
            Tool::HelmRelease => format!("flux suspend helmrelease {name}"),
        }
    }
}

/// A GitOps object addressed by a call: its context, namespace, name, tool and client.
#[derive(Clone)]
pub(crate) struct Object {
    pub(crate) tool: Tool,
    pub(crate) context: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
    client: kube::Client,
    request_timeout: std::time::Duration,
}

impl Object {
    /// Resolves the context's client for the object.
    pub(crate) async fn of(
        cx: &CallCx,
        tool: Tool,
        context: Option<&str>,
        namespace: &str,
        name: &str,
    ) -> Result<Object, PrimitiveError> {
        let clients = KubeClients::of(&cx.shared)?;
        let resolved = clients.resolve(&cx.shared.settings, context)?;
        let client = clients.client(&cx.shared.settings, &resolved.context).await?;
        Ok(Object::with_client(tool, resolved.context, namespace, name, client, cx))
    }

    /// The object in a context whose client is already at hand.
    pub(crate) fn with_client(
        tool: Tool,
        context: String,
        namespace: &str,
        name: &str,
        client: kube::Client,
        cx: &CallCx,
    ) -> Object {
        Object {
            tool,
            context,
            namespace: namespace.to_string(),
            name: name.to_string(),
            client,
            request_timeout: cx
                .shared
                .settings
                .var("ROLLBOOK_KUBE_REQUEST_TIMEOUT")
                .and_then(|v| crate::model::parse_duration(v).ok())
                .unwrap_or(super::k8s::request::REQUEST_TIMEOUT),
        }
    }

    /// `gitops/<context>/<namespace>/<name>`.
    pub(crate) fn key(&self) -> String {
        key(&self.context, &self.namespace, &self.name)
    }

    /// "Argo CD application `shop` in namespace `argocd` of context `prod`".
    pub(crate) fn describe(&self) -> String {
        if self.namespace.is_empty() {
            return format!("{} `{}` of context `{}`", self.tool.title(), self.name, self.context);
        }
        format!(
            "{} `{}` in namespace `{}` of context `{}`",
            self.tool.title(),
            self.name,
            self.namespace,
            self.context
        )
    }

    fn api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &self.tool.resource())
    }

    async fn send<T>(
        &self,
        doing: &str,
        fut: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, PrimitiveError> {
        match tokio::time::timeout(self.request_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(status))) => {
                let kind = super::k8s::errors::kind_of_status(status.code, &status.reason);
                let text =
                    if status.message.is_empty() { status.reason.clone() } else { status.message.clone() };
                Err(PrimitiveError::new(
                    kind,
                    format!("{text} ({}) while {doing} {}", status.code, self.describe()),
                )
                .with_target(self.key()))
            }
            Ok(Err(e)) => Err(PrimitiveError::new(
                ErrorKind::Transport,
                format!(
                    "request to context `{}` failed while {doing} {}: {e}",
                    self.context,
                    self.describe()
                ),
            )
            .with_target(self.key())),
            Err(_) => Err(PrimitiveError::new(
                ErrorKind::Timeout,
                format!(
                    "no answer within {} while {doing} {}",
                    crate::model::format_duration(self.request_timeout),
                    self.describe()
                ),
            )
            .with_target(self.key())),
        }
    }

    /// Reads the object as JSON.
    pub(crate) async fn read(&self) -> Result<Value, PrimitiveError> {
        let obj = self.send("reading", self.api().get(&self.name)).await?;
        serde_json::to_value(obj).map_err(|e| {
            PrimitiveError::new(ErrorKind::Server, format!("cannot read {}: {e}", self.describe()))
        })
    }

    /// Reads the object, or `None` when it does not exist.
    pub(crate) async fn read_opt(&self) -> Result<Option<Value>, PrimitiveError> {
        match self.read().await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a JSON merge patch (as `kubectl patch --type merge`, `flux suspend` and the Argo CD
    /// API server's spec updates write), with `field_manager`.
    pub(crate) async fn merge_patch(
        &self,
        doing: &str,
        field_manager: &str,
        body: Value,
    ) -> Result<Value, PrimitiveError> {
        let params = PatchParams { field_manager: Some(field_manager.to_string()), ..Default::default() };
        let obj = self.send(doing, self.api().patch(&self.name, &params, &Patch::Merge(body))).await?;
        serde_json::to_value(obj).map_err(|e| {
            PrimitiveError::new(ErrorKind::Server, format!("cannot read {}: {e}", self.describe()))
        })
    }
}

/// The resource key of a GitOps object.
pub fn key(context: &str, namespace: &str, name: &str) -> String {
    format!("gitops/{context}/{namespace}/{name}")
}

/// The resource key of a call, resolving the default context as `k8s::*` do.
pub(crate) fn target_key(shared: &Shared, context: Option<&str>, namespace: &str, name: &str) -> String {
    let ctx = KubeClients::of(shared)
        .and_then(|c| c.resolve(&shared.settings, context))
        .map(|r| r.context)
        .ok()
        .or_else(|| context.map(String::from))
        .unwrap_or_default();
    key(&ctx, namespace, name)
}

/// Under dry-run, what planned suspends and resumes left on a GitOps object.
#[derive(Debug, Clone)]
pub(crate) struct PlannedReconcile {
    /// Whether reconciliation would be suspended.
    pub suspended: bool,
}

/// Whether the object's controller puts drift back: Argo CD with an automated sync policy and
/// self-heal, Flux when not suspended.
pub(crate) fn reconciling(tool: Tool, obj: &Value) -> bool {
    match tool {
        Tool::Argo => automated(obj).is_some() && self_heal(obj),
        Tool::Kustomization | Tool::HelmRelease => !flux_suspended(obj),
    }
}

/// The Application's automated sync policy, if any.
pub(crate) fn automated(obj: &Value) -> Option<&Value> {
    obj.pointer("/spec/syncPolicy/automated").filter(|v| !v.is_null())
}

fn self_heal(obj: &Value) -> bool {
    obj.pointer("/spec/syncPolicy/automated/selfHeal").and_then(Value::as_bool) == Some(true)
}

pub(crate) fn flux_suspended(obj: &Value) -> bool {
    obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
}

/// Whether reconciliation is suspended in the sense of `gitops::suspend`: Argo CD with no
/// automated sync policy, Flux with `spec.suspend: true`.
pub(crate) fn suspended(tool: Tool, obj: &Value) -> bool {
    match tool {
        Tool::Argo => automated(obj).is_none(),
        Tool::Kustomization | Tool::HelmRelease => flux_suspended(obj),
    }
}

/// The owner a Deployment's marks name, before looking it up: tool, namespace (when the mark
/// says), name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    pub tool: Tool,
    pub namespace: Option<String>,
    pub name: String,
    /// Whether the mark is only Argo CD's instance label (which Helm charts set too).
    pub weak: bool,
}

/// Reads the owner marks of a Deployment, Flux's labels first, then Argo CD's annotation, then
/// Argo CD's instance label.
pub(crate) fn mark_of(d: &Deployment) -> Option<Mark> {
    let labels = d.metadata.labels.clone().unwrap_or_default();
    let annotations = d.metadata.annotations.clone().unwrap_or_default();
    for (tool, name, ns) in
        [(Tool::Kustomization, KS_NAME, KS_NAMESPACE), (Tool::HelmRelease, HR_NAME, HR_NAMESPACE)]
    {
        if let Some(n) = labels.get(name).filter(|n| !n.is_empty()) {
            return Some(Mark { tool, namespace: labels.get(ns).cloned(), name: n.clone(), weak: false });
        }
    }
    if let Some(id) = annotations.get(ARGO_TRACKING) {
        let app = id.split(':').next().unwrap_or("");
        // With applications in any namespace, the id is `<namespace>_<name>`.
        let (ns, name) = match app.split_once('_') {
            Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
            None => (None, app.to_string()),
        };
        if !name.is_empty() {
            return Some(Mark { tool: Tool::Argo, namespace: ns, name, weak: false });
        }
    }
    labels.get(ARGO_INSTANCE).filter(|n| !n.is_empty()).map(|n| Mark {
        tool: Tool::Argo,
        namespace: None,
        name: n.clone(),
        weak: true,
    })
}

/// Finds the object a mark names. Argo CD's mark does not say the Application's namespace: every
/// namespace is searched (one list), preferring an Application that lists the Deployment among
/// its resources; credentials that may not list across namespaces read `argocd` only.
pub(crate) async fn find(
    cx: &CallCx,
    client: &kube::Client,
    context: &str,
    mark: &Mark,
    deployment: (&str, &str),
) -> Result<Option<(Object, Value)>, PrimitiveError> {
    if let Some(ns) = &mark.namespace {
        let o = Object::with_client(mark.tool, context.to_string(), ns, &mark.name, client.clone(), cx);
        return Ok(o.read_opt().await?.map(|v| (o, v)));
    }
    let probe = Object::with_client(mark.tool, context.to_string(), "", &mark.name, client.clone(), cx);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &mark.tool.resource());
    let list = match probe.send("listing the Argo CD applications for", api.list(&Default::default())).await {
        Ok(l) => l,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        // Credentials limited to some namespaces: look where Argo CD keeps its Applications.
        Err(e) if e.kind == ErrorKind::Forbidden => {
            let o = Object::with_client(
                mark.tool,
                context.to_string(),
                ARGO_NAMESPACE,
                &mark.name,
                client.clone(),
                cx,
            );
            return Ok(o.read_opt().await?.map(|v| (o, v)));
        }
        Err(e) => return Err(e),
    };
    let mut candidates: Vec<Value> = list
        .items
        .into_iter()
        .filter(|o| o.metadata.name.as_deref() == Some(mark.name.as_str()))
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    let lists_it = |v: &Value| {
        v.pointer("/status/resources").and_then(Value::as_array).is_some_and(|rs| {
            rs.iter().any(|r| {
                r.get("kind").and_then(Value::as_str) == Some("Deployment")
                    && r.get("namespace").and_then(Value::as_str) == Some(deployment.0)
                    && r.get("name").and_then(Value::as_str) == Some(deployment.1)
            })
        })
    };
    candidates.sort_by_key(|v| !lists_it(v));
    Ok(candidates.into_iter().next().map(|v| {
        let ns = v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
        (Object::with_client(mark.tool, context.to_string(), &ns, &mark.name, client.clone(), cx), v)
    }))
}

/// What a script gets for an owner (also the args `suspend` and `resume` take).
#[derive(Debug, Clone, Serialize)]
pub struct OwnerView {
    /// `argocd`, `flux-kustomization`, `flux-helmrelease`, or `""` for none.
    pub kind: String,
    /// The object's name (`""` for none).
    pub name: String,
    /// The object's namespace (`""` for none).
    pub namespace: String,
    /// The context it lives in.
    pub context: String,
    /// Argo CD: an automated sync policy is set (Flux: true unless suspended).
    pub auto_sync: bool,
    /// Argo CD: self-heal is on (Flux: true unless suspended, as Flux always corrects drift).
    pub self_heal: bool,
    /// Reconciliation is suspended (Argo CD: no automated sync policy; Flux: `spec.suspend`).
    pub suspended: bool,
}

/// The view of an owner object, with any planned suspend or resume overlaid (dry-run).
pub(crate) fn view(shared: &Shared, o: &Object, obj: &Value) -> OwnerView {
    let mut v = match o.tool {
        Tool::Argo => OwnerView {
            kind: o.tool.word().into(),
            name: o.name.clone(),
            namespace: o.namespace.clone(),
            context: o.context.clone(),
            auto_sync: automated(obj).is_some(),
            self_heal: self_heal(obj),
            suspended: automated(obj).is_none(),
        },
        _ => {
            let s = flux_suspended(obj);
            OwnerView {
                kind: o.tool.word().into(),
                name: o.name.clone(),
                namespace: o.namespace.clone(),
                context: o.context.clone(),
                auto_sync: !s,
                self_heal: !s,
                suspended: s,
            }
        }
    };
    if let Some(p) = shared.planned::<PlannedReconcile>(&o.key()) {
        v.suspended = p.suspended;
        if o.tool != Tool::Argo {
            v.auto_sync = !p.suspended;
            v.self_heal = !p.suspended;
        } else if p.suspended {
            v.auto_sync = false;
        }
    }
    v
}
