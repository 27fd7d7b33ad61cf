//! `k8s::undo`: `kubectl rollout undo [--to-revision]` — the same revision picked, the same
//! JSON patch (template and annotations) sent, the same refusals, in fewer requests (one GET,
//! one LIST, one PATCH; kubectl also GETs twice and runs discovery).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::errors::is_conflict;
use super::request::CONFLICT_ATTEMPTS;
use super::rollout::{self, PickError};
use super::{
    Addressed, addressed, paused, read, read_revision, replica_set_revisions, replica_sets, revision_of,
};
use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::k8s::DeploymentTarget;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Shared, Verified};

/// `k8s::undo`.
pub struct Undo;

/// Keys of `k8s::undo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
    /// The revision to go back to; 0 (the default) means the previous one.
    #[serde(default)]
    pub to_revision: i64,
    /// `"ignore"`: change it even when a GitOps owner would revert the change.
    #[serde(default)]
    pub gitops: Option<String>,
}
addressed!(UndoArgs);

/// Result of `k8s::undo`.
#[derive(Debug, Clone, Serialize)]
pub struct UndoOutput {
    /// The revision running before the call.
    pub from_revision: i64,
    /// The revision whose template was restored (the cluster records it under a new number).
    pub to_revision: i64,
    /// False where kubectl says "skipped rollback" (the template already matches).
    pub changed: bool,
    /// Container name → image of the restored template.
    pub images: BTreeMap<String, String>,
}

/// What undo would do, decided from one GET and one LIST.
struct Decision {
    from_revision: i64,
    to_revision: i64,
    skip: bool,
    from_images: BTreeMap<String, String>,
    to_images: BTreeMap<String, String>,
    /// kubectl's JSON patch: the template, then the annotations.
    patch: json_patch::Patch,
    /// The Deployment and ReplicaSets the decision was made on.
    deployment: k8s_openapi::api::apps::v1::Deployment,
    replica_sets: Vec<k8s_openapi::api::apps::v1::ReplicaSet>,
}

fn place_suffix(place: &DeploymentTarget) -> String {
    format!(" (namespace `{}`, context `{}`)", place.namespace, place.context)
}

/// How much of the Deployment and its ReplicaSets [`decide`] reads.
#[derive(Clone, Copy)]
enum Read {
    /// The whole objects: a plan builds the planned state from them.
    Whole,
    /// What undo looks at (no status, no strategy): a fleet rollback reads thousands.
    Revisions,
}

/// The checks and the patch of kubectl's `DeploymentRollbacker.Rollback`, in its order.
async fn decide(place: &DeploymentTarget, to_revision: i64, how: Read) -> Result<Decision, PrimitiveError> {
    if to_revision < 0 {
        return Err(PrimitiveError::new(
            ErrorKind::NotFound,
            format!("{}{}", PickError::NoSuchRevision(to_revision), place_suffix(place)),
        )
        .with_target(place.key()));
    }
    let (d, all) = match how {
        Read::Whole => {
            let d = read(place).await?;
            let all = replica_sets(place, &d).await?;
            (d, all)
        }
        Read::Revisions => {
            let d = read_revision(place).await?;
            let all = replica_set_revisions(place, &d).await?;
            (d, all)
        }
    };
    let owned = rollout::owned(&d, &all);
    let rs = rollout::pick(&d, &owned, to_revision).map_err(|e| {
        PrimitiveError::new(ErrorKind::NotFound, format!("{e}{}", place_suffix(place)))
            .with_target(place.key())
    })?;
    if paused(&d) {
        return Err(PrimitiveError::new(
            ErrorKind::Conflict,
            format!(
                "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again{}",
                place_suffix(place)
            ),
        )
        .with_target(place.key()));
    }
    // Both templates are read where they are, not copied (each is most of its object).
    let none = PodTemplateSpec::default();
    let rs_template = rs.spec.as_ref().and_then(|s| s.template.as_ref()).unwrap_or(&none);
    let template = d.spec.as_ref().map(|s| &s.template).unwrap_or(&none);
    let picked = rollout::revision(rs.metadata.annotations.as_ref()).unwrap_or(0);
    let from_images = rollout::images(Some(template));
    let to_images = rollout::images(Some(rs_template));
    let skip = rollout::equal_ignore_hash(rs_template, template);
    let annotations =
        rollout::undo_annotations(d.metadata.annotations.as_ref(), rs.metadata.annotations.as_ref());
    let patch = undo_patch(rollout::template_without_hash(rs_template), json!(annotations));
    Ok(Decision {
        from_revision: revision_of(&d),
        to_revision: picked,
        skip,
        from_images,
        to_images,
        patch,
        deployment: d,
        replica_sets: all,
    })
}

/// kubectl's undo patch, two `replace` operations: the pod template, then the annotations. Built
/// as `json_patch`'s type, not read from JSON: serde reads a `PatchOperation` (an enum tagged by
/// `op`) by copying it into an untyped buffer first, the whole pod template once per Deployment.
fn undo_patch(template: serde_json::Value, annotations: serde_json::Value) -> json_patch::Patch {
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{PatchOperation, ReplaceOperation};
    let replace = |path: &[&str], value| {
        PatchOperation::Replace(ReplaceOperation {
            path: PointerBuf::from_tokens(path.iter().copied()),
            value,
        })
    };
    json_patch::Patch(vec![
        replace(&["spec", "template"], template),
        replace(&["metadata", "annotations"], annotations),
    ])
}

impl Primitive for Undo {
    type Args = UndoArgs;
    type Output = UndoOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "undo",
            doc: "Rolls a Deployment back to the previous revision (or `to_revision`) exactly as `kubectl rollout undo` does; \
                  `changed: false` where kubectl says \"skipped rollback\". Twice without `to_revision` flips back again, \
                  as kubectl does; with `to_revision` a second call changes nothing.",
            keys_doc: "`context`, `namespace`, `deployment` as every k8s primitive; `to_revision` (0: the previous revision); `gitops` (`\"ignore\"`: change it even when its GitOps owner would revert it; otherwise such a Deployment is refused with `gitops_managed`)",
            returns: "`#{ from_revision, to_revision, changed, images }` — `images` of the restored template; errors `not_found` (\"unable to find specified revision N in history\", \"no rollout history found for deployment\") and `conflict` (paused)",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &UndoArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: UndoArgs) -> Result<UndoOutput, PrimitiveError> {
        let place = args.place(cx).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let decision = decide(&place, args.to_revision, Read::Revisions).await?;
            let output = UndoOutput {
                from_revision: decision.from_revision,
                to_revision: decision.to_revision,
                changed: !decision.skip,
                images: decision.to_images.clone(),
            };
            if decision.skip {
                return Ok(output);
            }
            crate::providers::gitops::guard(
                cx,
                &place,
                &decision.deployment,
                args.gitops.as_deref(),
                "k8s::undo",
            )
            .await?;
            let doing = format!("restoring revision {} of", decision.to_revision);
            let sent =
                super::patch(&place, &doing, &PatchParams::default(), &Patch::Json::<()>(decision.patch))
                    .await;
            match sent {
                Ok(_) => return Ok(output),
                Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn plan(&self, cx: &CallCx, args: &UndoArgs) -> Result<Planned, PrimitiveError> {
        let place = args.place(cx).await?;
        let decision = decide(&place, args.to_revision, Read::Whole).await?;
        if !decision.skip {
            crate::providers::gitops::guard(
                cx,
                &place,
                &decision.deployment,
                args.gitops.as_deref(),
                "k8s::undo",
            )
            .await?;
            let changed = super::planned::apply_json_patch(&decision.deployment, &decision.patch)?;
            super::planned::record(cx, &place.key(), changed, decision.replica_sets.clone())?;
        }
        let effect = if decision.skip {
            format!(
                "leave {} at revision {}: skipped rollback (current template already matches revision {})",
                place.describe(),
                decision.from_revision,
                args.to_revision
            )
        } else {
            format!(
                "roll back {} from revision {} to revision {} ({})",
                place.describe(),
                decision.from_revision,
                decision.to_revision,
                rollout::image_changes(&decision.from_images, &decision.to_images)
            )
        };
        Ok(Planned {
            effect,
            output: super::planned_output(&UndoOutput {
                from_revision: decision.from_revision,
                to_revision: decision.to_revision,
                changed: !decision.skip,
                images: decision.to_images,
            }),
        })
    }

    /// An undo to `to_revision` in doubt took effect when the current ReplicaSet carries that
    /// revision in its `revision-history` (the controller renumbers a restored revision), and
    /// did not when that revision is still there and differs from the template. An undo to the
    /// previous revision cannot be told apart from an earlier one: a person checks `k8s::history`.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &UndoArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        if args.to_revision <= 0 {
            return Ok(Verified::Unknown(format!(
                "an undo to the previous revision of deployment `{}` may have run; compare `k8s::history` with the journal before sending it again",
                args.deployment
            )));
        }
        let place = args.place(cx).await?;
        let d = read_revision(&place).await?;
        let all = replica_set_revisions(&place, &d).await?;
        let owned = rollout::owned(&d, &all);
        let Some(current) = rollout::find_new(&d, &owned) else {
            return Ok(Verified::Unknown(format!("{} has no current ReplicaSet", place.describe())));
        };
        let annotations = current.metadata.annotations.as_ref();
        let history = annotations
            .and_then(|a| a.get("deployment.kubernetes.io/revision-history"))
            .map(|h| h.split(',').any(|r| r.trim() == args.to_revision.to_string()))
            .unwrap_or(false);
        let is_it = rollout::revision(annotations) == Some(args.to_revision);
        if history || is_it {
            return Ok(Verified::Applied(
                serde_json::to_value(UndoOutput {
                    from_revision: 0,
                    to_revision: args.to_revision,
                    changed: history,
                    images: rollout::images(current.spec.as_ref().and_then(|s| s.template.as_ref())),
                })
                .unwrap_or_default(),
            ));
        }
        Ok(Verified::NotApplied)
    }
}

#[cfg(test)]
mod tests {
    /// Built directly, the patch is the one serde reads from kubectl's JSON, and it is sent as
    /// that JSON.
    #[test]
    fn the_undo_patch_is_the_one_serde_reads() {
        let template = serde_json::json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]}});
        let annotations = serde_json::json!({"a/b~c": "1"});
        let json = serde_json::json!([
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]);
        let ours = super::undo_patch(template, annotations);
        let serdes: json_patch::Patch = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(ours, serdes);
        assert_eq!(serde_json::to_value(&ours).unwrap(), json);
    }
}
