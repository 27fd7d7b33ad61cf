//! The guard of `k8s::undo`, `set_image`, `scale` and `restart`: a change to a Deployment whose
//! GitOps owner would put git's state back (Argo CD with automated sync and self-heal, Flux not
//! suspended) is refused with `gitops_managed`, unless the owner is suspended (by this run, or
//! planned to be under dry-run) or the call says `gitops: "ignore"`.

use k8s_openapi::api::apps::v1::Deployment;

use super::{PlannedReconcile, Tool, find, mark_of, reconciling};
use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::CallCx;
use crate::providers::k8s::DeploymentTarget;

/// Checks the `gitops` key of a k8s call and, unless it is `"ignore"`, whether the owner of `d`
/// would revert a change to it. Sends no request for an unmarked Deployment.
pub(crate) async fn check(
    cx: &CallCx,
    place: &DeploymentTarget,
    d: &Deployment,
    mode: Option<&str>,
    what: &str,
) -> Result<(), PrimitiveError> {
    match mode {
        None => {}
        Some("ignore") => return Ok(()),
        Some(other) => {
            return Err(PrimitiveError::invalid(format!(
                "{what}: `gitops` must be \"ignore\" (or left out), not `{other}`"
            ))
            .with_target(place.key()));
        }
    }
    let Some(mark) = mark_of(d) else { return Ok(()) };
    let Some((o, obj)) =
        find(cx, &place.client.client, &place.context, &mark, (&place.namespace, &place.deployment)).await?
    else {
        return Ok(());
    };
    let on = match cx.shared.planned::<PlannedReconcile>(&o.key()) {
        Some(p) => !p.suspended && reconciling(o.tool, &obj),
        None => reconciling(o.tool, &obj),
    };
    if !on {
        return Ok(());
    }
    let how = match o.tool {
        Tool::Argo => "with an automated sync policy and self-heal",
        Tool::Kustomization | Tool::HelmRelease => "not suspended",
    };
    let rollback = match o.tool {
        Tool::Argo => {
            format!("roll back in git (or with gitops::rollback to a history id of application `{}`)", o.name)
        }
        _ => "roll back in git (revert the commit that brought this version)".to_string(),
    };
    Err(PrimitiveError::new(
        ErrorKind::GitopsManaged,
        format!(
            "{what} refused: {} is managed by {} ({how}), which would set it back to git's state within its reconcile interval; \
             either {rollback}, or suspend reconciliation first (gitops::suspend(gitops::owner(...)), or std/gitops undo_managed, \
             which suspends, undoes and resumes on failure) — or pass `gitops: \"ignore\"` to change it anyway",
            place.describe(),
            o.describe(),
        ),
    )
    .with_target(place.key()))
}
