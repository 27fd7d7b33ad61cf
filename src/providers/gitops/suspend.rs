//! `gitops::suspend` and `gitops::resume`: stop and restore reconciliation as the tools' own CLIs
//! do. Argo CD: `argocd app set APP --sync-policy none` removes `spec.syncPolicy.automated`
//! (rollbook keeps the removed policy in an annotation so resume restores it exactly); Flux:
//! `flux suspend` sets `spec.suspend: true`, `flux resume` sets it false and asks for a
//! reconciliation now (`reconcile.fluxcd.io/requestedAt`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    FLUX_REQUESTED, Object, PlannedReconcile, SUSPENDED_POLICY, Tool, automated, flux_suspended, target_key,
};
use crate::model::PrimitiveError;
use crate::providers::k8s::Changed;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Shared, Verified};

/// `gitops::suspend`.
pub struct Suspend;
/// `gitops::resume`.
pub struct Resume;

/// Keys of `gitops::suspend` and `gitops::resume`: the map `gitops::owner` returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendArgs {
    /// `argocd`, `flux-kustomization` or `flux-helmrelease`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The object's namespace.
    pub namespace: String,
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Argo CD, resume only: whether to set an automated policy when no suspended one was kept.
    #[serde(default)]
    pub auto_sync: Option<bool>,
    /// Argo CD, resume only: self-heal of that policy.
    #[serde(default)]
    pub self_heal: Option<bool>,
    /// Informational (as `gitops::owner` returns it); not used.
    #[serde(default)]
    pub suspended: Option<bool>,
}

fn tool_of(args: &SuspendArgs, verb: &str) -> Result<Tool, PrimitiveError> {
    if args.kind.is_empty() {
        return Err(PrimitiveError::invalid(format!(
            "gitops::{verb}: `kind` is \"\": nothing reconciles this Deployment, so there is nothing to {verb}"
        )));
    }
    Tool::from_word(&args.kind).ok_or_else(|| {
        PrimitiveError::invalid(format!(
            "gitops::{verb}: unknown `kind` `{}`; expected `argocd`, `flux-kustomization` or `flux-helmrelease`",
            args.kind
        ))
    })
}

async fn object(cx: &CallCx, args: &SuspendArgs, verb: &str) -> Result<Object, PrimitiveError> {
    let tool = tool_of(args, verb)?;
    Object::of(cx, tool, args.context.as_deref(), &args.namespace, &args.name).await
}

/// The merge patch that suspends, or None when already suspended.
fn suspend_patch(tool: Tool, obj: &Value) -> Option<Value> {
    match tool {
        Tool::Argo => {
            let policy = automated(obj)?;
            Some(json!({
                "metadata": {"annotations": {SUSPENDED_POLICY: policy.to_string()}},
                "spec": {"syncPolicy": {"automated": null}},
            }))
        }
        _ => (!flux_suspended(obj)).then(|| json!({"spec": {"suspend": true}})),
    }
}

/// The merge patch that resumes, or None when already reconciling. Argo CD: the kept policy,
/// else `auto_sync`/`self_heal` from the args.
fn resume_patch(tool: Tool, obj: &Value, args: &SuspendArgs) -> Result<Option<Value>, PrimitiveError> {
    match tool {
        Tool::Argo => {
            let kept = obj.pointer(&format!("/metadata/annotations/{}", SUSPENDED_POLICY.replace('/', "~1")));
            if automated(obj).is_some() {
                return Ok(kept.map(|_| json!({"metadata": {"annotations": {SUSPENDED_POLICY: null}}})));
            }
            let policy = match kept
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
            {
                Some(p) => p,
                None => match args.auto_sync {
                    Some(true) => json!({"prune": false, "selfHeal": args.self_heal.unwrap_or(false)}),
                    Some(false) => return Ok(None),
                    None => {
                        return Err(PrimitiveError::invalid(format!(
                            "gitops::resume: application `{}` has no automated sync policy and none was kept by gitops::suspend; \
                             pass `auto_sync: true` (and `self_heal`) to set one",
                            args.name
                        )));
                    }
                },
            };
            Ok(Some(json!({
                "metadata": {"annotations": {SUSPENDED_POLICY: null}},
                "spec": {"syncPolicy": {"automated": policy}},
            })))
        }
        _ => Ok(flux_suspended(obj).then(|| {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            json!({"metadata": {"annotations": {FLUX_REQUESTED: now}}, "spec": {"suspend": false}})
        })),
    }
}

fn what_suspend(tool: Tool, o: &Object) -> String {
    match tool {
        Tool::Argo => format!(
            "remove the automated sync policy of {} (as `{}`)",
            o.describe(),
            tool.suspend_cli(&o.name)
        ),
        _ => format!("set `spec.suspend: true` on {} (as `{}`)", o.describe(), tool.suspend_cli(&o.name)),
    }
}

fn what_resume(tool: Tool, o: &Object) -> String {
    match tool {
        Tool::Argo => format!(
            "restore the automated sync policy of {} (as `argocd app set {} --sync-policy automated`); it then puts git's state back",
            o.describe(),
            o.name
        ),
        Tool::Kustomization => format!(
            "set `spec.suspend: false` on {} (as `flux resume kustomization {}`); it then applies git's state again",
            o.describe(),
            o.name
        ),
        Tool::HelmRelease => format!(
            "set `spec.suspend: false` on {} (as `flux resume helmrelease {}`); it then applies git's state again",
            o.describe(),
            o.name
        ),
    }
}

/// The object as planned mutations left it (dry-run): reads see the planned suspension.
fn planned_suspended(shared: &Shared, o: &Object, obj: &Value) -> bool {
    shared
        .planned::<PlannedReconcile>(&o.key())
        .map(|p| p.suspended)
        .unwrap_or_else(|| super::suspended(o.tool, obj))
}

impl Primitive for Suspend {
    type Args = SuspendArgs;
    type Output = Changed;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "gitops",
            name: "suspend",
            doc: "Stops a GitOps object from reconciling, as the tools' own CLIs do. Argo CD (`argocd app set APP --sync-policy none`): \
                  a merge patch removes `spec.syncPolicy.automated` and keeps the removed policy as JSON in the \
                  `rollbook.dev/suspended-automated-sync` annotation for `gitops::resume`. Flux (`flux suspend`): a merge patch sets \
                  `spec.suspend: true`. Idempotent: already suspended, nothing is sent and `changed` is false. Undo it with `gitops::resume`.",
            keys_doc: "the map `gitops::owner` returns: `kind`, `name`, `namespace`, `context`",
            returns: "`#{ changed }`; errors `invalid` (no owner: `kind` is \"\"), `not_found`",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &SuspendArgs) -> Option<String> {
        Some(target_key(shared, args.context.as_deref(), &args.namespace, &args.name))
    }

    async fn call(&self, cx: &CallCx, args: SuspendArgs) -> Result<Changed, PrimitiveError> {
        let o = object(cx, &args, "suspend").await?;
        let obj = o.read().await?;
        let Some(patch) = suspend_patch(o.tool, &obj) else { return Ok(Changed { changed: false }) };
        o.merge_patch("suspending", "rollbook", patch).await?;
        Ok(Changed { changed: true })
    }

    async fn plan(&self, cx: &CallCx, args: &SuspendArgs) -> Result<Planned, PrimitiveError> {
        let o = object(cx, args, "suspend").await?;
        let obj = o.read().await?;
        let already = planned_suspended(&cx.shared, &o, &obj);
        cx.shared.set_planned(&o.key(), PlannedReconcile { suspended: true });
        Ok(Planned {
            effect: if already {
                format!("leave {} suspended (it does not reconcile now)", o.describe())
            } else {
                what_suspend(o.tool, &o)
            },
            output: json!({"changed": !already, "planned": true}),
        })
    }

    /// A suspend in doubt took effect when the object is suspended now.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &SuspendArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let o = object(cx, args, "suspend").await?;
        let obj = o.read().await?;
        Ok(if super::suspended(o.tool, &obj) {
            Verified::Applied(json!({"changed": true}))
        } else {
            Verified::NotApplied
        })
    }
}

impl Primitive for Resume {
    type Args = SuspendArgs;
    type Output = Changed;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "gitops",
            name: "resume",
            doc: "Restores reconciliation of a GitOps object, which then puts git's state back. Argo CD: a merge patch sets \
                  `spec.syncPolicy.automated` to the policy `gitops::suspend` kept (else `#{ prune: false, selfHeal: self_heal }` when \
                  the call says `auto_sync: true`) and removes the annotation. Flux (`flux resume`): a merge patch sets \
                  `spec.suspend: false` and `reconcile.fluxcd.io/requestedAt`. Idempotent: already reconciling, nothing is sent \
                  and `changed` is false. Checked after an interruption: reconciling again means it took effect.",
            keys_doc: "the map `gitops::owner` returns: `kind`, `name`, `namespace`, `context`; Argo CD: `auto_sync`, `self_heal` \
                       (used only when `gitops::suspend` kept no policy; `auto_sync: false` leaves it suspended)",
            returns: "`#{ changed }`; errors `invalid` (no owner, or no policy to restore), `not_found`",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &SuspendArgs) -> Option<String> {
        Some(target_key(shared, args.context.as_deref(), &args.namespace, &args.name))
    }

    async fn call(&self, cx: &CallCx, args: SuspendArgs) -> Result<Changed, PrimitiveError> {
        let o = object(cx, &args, "resume").await?;
        let obj = o.read().await?;
        let was_suspended = super::suspended(o.tool, &obj);
        let Some(patch) = resume_patch(o.tool, &obj, &args)? else { return Ok(Changed { changed: false }) };
        o.merge_patch("resuming", "rollbook", patch).await?;
        Ok(Changed { changed: was_suspended })
    }

    async fn plan(&self, cx: &CallCx, args: &SuspendArgs) -> Result<Planned, PrimitiveError> {
        let o = object(cx, args, "resume").await?;
        let obj = o.read().await?;
        let suspended = planned_suspended(&cx.shared, &o, &obj);
        // A planned suspend kept the policy: plan against the object as it would be then.
        let planned_obj = if suspended && o.tool == Tool::Argo && automated(&obj).is_some() {
            let mut p = obj.clone();
            if let Some(patch) = suspend_patch(o.tool, &obj) {
                json_patch::merge(&mut p, &patch);
            }
            p
        } else {
            obj.clone()
        };
        let changes = suspended && resume_patch(o.tool, &planned_obj, args)?.is_some();
        cx.shared.set_planned(&o.key(), PlannedReconcile { suspended: !changes && suspended });
        Ok(Planned {
            effect: if changes {
                what_resume(o.tool, &o)
            } else {
                format!("leave {} as it is (nothing to resume)", o.describe())
            },
            output: json!({"changed": changes, "planned": true}),
        })
    }

    /// A resume in doubt took effect when the object reconciles again.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &SuspendArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let o = object(cx, args, "resume").await?;
        let obj = o.read().await?;
        if !super::suspended(o.tool, &obj) {
            return Ok(Verified::Applied(json!({"changed": true})));
        }
        // Nothing to restore (the owner never reconciled): the call would change nothing either.
        if resume_patch(o.tool, &obj, args).ok().flatten().is_none() {
            return Ok(Verified::Applied(json!({"changed": false})));
        }
        Ok(Verified::NotApplied)
    }
}
