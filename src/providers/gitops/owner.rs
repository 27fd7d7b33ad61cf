//! `gitops::owner`: who reconciles a Deployment, found as the tools mark what they manage.

use serde::{Deserialize, Serialize};

use super::{OwnerView, find, mark_of, view};
use crate::model::PrimitiveError;
use crate::providers::k8s::{Addressed, DeploymentTarget, addressed, read};
use crate::providers::{Access, CallCx, Meta, Primitive, Shared};

/// `gitops::owner`.
pub struct Owner;

/// Keys of `gitops::owner`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace of the Deployment (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
}
addressed!(OwnerArgs);

/// Result of `gitops::owner`.
pub type OwnerOutput = OwnerView;

/// Finds the owner of the Deployment at `place` (`kind: ""` when nothing reconciles it).
pub(crate) async fn owner_of(cx: &CallCx, place: &DeploymentTarget) -> Result<OwnerView, PrimitiveError> {
    let d = read(place).await?;
    let none = OwnerView {
        kind: String::new(),
        name: String::new(),
        namespace: String::new(),
        context: place.context.clone(),
        auto_sync: false,
        self_heal: false,
        suspended: false,
    };
    let Some(mark) = mark_of(&d) else { return Ok(none) };
    match find(cx, &place.client.client, &place.context, &mark, (&place.namespace, &place.deployment)).await?
    {
        Some((o, obj)) => Ok(view(&cx.shared, &o, &obj)),
        // A mark whose object is gone (or only a chart's instance label): nothing reconciles it.
        None => Ok(none),
    }
}

impl Primitive for Owner {
    type Args = OwnerArgs;
    type Output = OwnerOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "gitops",
            name: "owner",
            doc: "Finds the GitOps object that reconciles a Deployment, from the marks the tools put on what they manage: \
                  Flux's `kustomize.toolkit.fluxcd.io/name` and `helm.toolkit.fluxcd.io/name` labels (with their \
                  `/namespace` twins), Argo CD's `argocd.argoproj.io/tracking-id` annotation or `app.kubernetes.io/instance` label \
                  (the Application is looked up in every namespace). A mark whose object does not exist counts as no owner.",
            keys_doc: "`context`, `namespace`, `deployment` as every k8s primitive",
            returns: "`#{ kind, name, namespace, context, auto_sync, self_heal, suspended }` — `kind` is `argocd`, \
                      `flux-kustomization`, `flux-helmrelease`, or `\"\"` when nothing reconciles the Deployment; pass the map to \
                      `gitops::suspend` and `gitops::resume`",
            access: Access::Read,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &OwnerArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: OwnerArgs) -> Result<OwnerOutput, PrimitiveError> {
        let place = args.place(cx).await?;
        owner_of(cx, &place).await
    }
}
