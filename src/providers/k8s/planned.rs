//! The planned state of a Deployment under dry-run: what the controller would make of it once a
//! planned mutation took effect (a new revision, the rollout complete), so that the reads and
//! waits after it (`k8s::get`, `k8s::history`, `k8s::status`, and the plans of later mutations)
//! see the planned world instead of waiting for a rollout that never happens.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde_json::json;

use super::rollout;
use crate::model::PrimitiveError;
use crate::providers::CallCx;

/// A Deployment and its ReplicaSets as the planned mutations so far would leave them.
#[derive(Debug, Clone)]
pub struct PlannedDeployment {
    /// The Deployment, with its rollout complete.
    pub deployment: Deployment,
    /// Every ReplicaSet of the Deployment's selector, renumbered as the controller would.
    pub replica_sets: Vec<ReplicaSet>,
}

/// Records that a planned mutation leaves `deployment` (the read one with the mutation applied
/// to its spec) over `replica_sets` (as read): the controller's work is then done at once — a
/// template that changed becomes a new revision (an old ReplicaSet with that template is
/// renumbered, else a new one is made) and the rollout is complete.
pub(crate) fn record(
    cx: &CallCx,
    key: &str,
    mut deployment: Deployment,
    mut replica_sets: Vec<ReplicaSet>,
) -> Result<(), PrimitiveError> {
    let owned_uids: Vec<Option<String>> =
        rollout::owned(&deployment, &replica_sets).iter().map(|rs| rs.metadata.uid.clone()).collect();
    let current = rollout::find_new(&deployment, &rollout::owned(&deployment, &replica_sets))
        .and_then(|rs| rs.metadata.uid.clone());
    let revision_now = super::revision_of(&deployment);
    let template_changed = match &current {
        Some(uid) => {
            replica_sets
                .iter()
                .find(|rs| rs.metadata.uid.as_ref() == Some(uid))
                .and_then(|rs| rollout::revision(rs.metadata.annotations.as_ref()))
                != Some(revision_now)
        }
        None => true,
    };
    if template_changed {
        let max = replica_sets
            .iter()
            .filter(|rs| owned_uids.contains(&rs.metadata.uid))
            .filter_map(|rs| rollout::revision(rs.metadata.annotations.as_ref()))
            .max()
            .unwrap_or(0);
        let next = max + 1;
        match &current {
            Some(uid) => {
                if let Some(rs) = replica_sets.iter_mut().find(|rs| rs.metadata.uid.as_ref() == Some(uid)) {
                    let annotations = rs.metadata.annotations.get_or_insert_with(Default::default);
                    let old = annotations.get(rollout::REVISION).cloned().unwrap_or_default();
                    let history = match annotations.get("deployment.kubernetes.io/revision-history") {
                        Some(h) if !h.is_empty() => format!("{h},{old}"),
                        _ => old,
                    };
                    annotations.insert("deployment.kubernetes.io/revision-history".into(), history);
                    annotations.insert(rollout::REVISION.into(), next.to_string());
                }
            }
            None => replica_sets.push(new_replica_set(&deployment, next)?),
        }
        deployment
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(rollout::REVISION.into(), next.to_string());
    }
    let generation = deployment.metadata.generation.unwrap_or(0) + 1;
    deployment.metadata.generation = Some(generation);
    let want = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deployment.status.get_or_insert_with(Default::default);
    status.observed_generation = Some(generation);
    status.replicas = Some(want);
    status.updated_replicas = Some(want);
    status.ready_replicas = Some(want);
    status.available_replicas = Some(want);
    status.unavailable_replicas = None;
    // The planned rollout completes: no progress deadline is exceeded in the planned world.
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != "Progressing");
    }
    cx.shared.set_planned(key, PlannedDeployment { deployment, replica_sets });
    Ok(())
}

/// The ReplicaSet the controller would create for the Deployment's new template.
fn new_replica_set(d: &Deployment, revision: i64) -> Result<ReplicaSet, PrimitiveError> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let value = json!({
        "metadata": {
            "name": format!("{name}-planned-{revision}"),
            "namespace": d.metadata.namespace,
            "uid": format!("planned-{name}-{revision}"),
            "creationTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "annotations": { rollout::REVISION: revision.to_string() },
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
                "uid": d.metadata.uid.clone().unwrap_or_default(),
                "controller": true,
            }],
        },
        "spec": {
            "replicas": d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            "selector": d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default(),
            "template": template,
        },
    });
    serde_json::from_value(value)
        .map_err(|e| PrimitiveError::invalid(format!("cannot build the planned ReplicaSet of `{name}`: {e}")))
}

/// Applies a strategic-merge-like patch of the template's containers (kubectl set image's
/// patch) or any JSON patch to a copy of `d`, for the planned state.
pub(crate) fn apply_json_patch(
    d: &Deployment,
    patch: &json_patch::Patch,
) -> Result<Deployment, PrimitiveError> {
    let mut value = serde_json::to_value(d)
        .map_err(|e| PrimitiveError::invalid(format!("cannot plan the change: {e}")))?;
    json_patch::patch(&mut value, patch)
        .map_err(|e| PrimitiveError::invalid(format!("cannot plan the change: {e}")))?;
    serde_json::from_value(value).map_err(|e| PrimitiveError::invalid(format!("cannot plan the change: {e}")))
}

/// Records the planned state of `place` once `changed` (the Deployment as read, with the
/// mutation applied to its spec) takes effect.
pub(crate) async fn record_change(
    cx: &CallCx,
    place: &super::DeploymentTarget,
    changed: Deployment,
) -> Result<(), PrimitiveError> {
    let replica_sets = super::replica_sets(place, &changed).await?;
    record(cx, &place.key(), changed, replica_sets)
}
