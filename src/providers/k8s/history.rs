//! `k8s::history`: the revisions of a Deployment, oldest first, as `kubectl rollout history`
//! finds them (owned ReplicaSets, their revision and change-cause annotations).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Addressed, COMMON_KEYS, addressed, read, replica_sets, rollout};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Primitive, Shared};

/// `k8s::history`.
pub struct History;

/// Keys of `k8s::history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
}
addressed!(HistoryArgs);

/// One revision of `k8s::history`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// The revision number.
    pub revision: i64,
    /// `kubernetes.io/change-cause` of that revision, if any.
    pub change_cause: Option<String>,
    /// Container name → image.
    pub images: BTreeMap<String, String>,
    /// The ReplicaSet holding it.
    pub replicaset: String,
    /// Whether the Deployment's template is this revision's.
    pub current: bool,
    /// Under dry-run, true when this shows the state planned mutations would leave.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub planned: bool,
}

impl Primitive for History {
    type Args = HistoryArgs;
    type Output = Vec<HistoryEntry>;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "history",
            doc: "Lists a Deployment's revisions, oldest first, as `kubectl rollout history` shows them; empty when there is no history.",
            keys_doc: COMMON_KEYS,
            returns: "array, oldest first: `#{ revision, change_cause, images, replicaset, current }`",
            access: Access::Read,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &HistoryArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: HistoryArgs) -> Result<Vec<HistoryEntry>, PrimitiveError> {
        let place = args.place(cx).await?;
        let d = read(&place).await?;
        let all = replica_sets(&place, &d).await?;
        let owned = rollout::owned(&d, &all);
        let new_uid = rollout::find_new(&d, &owned).and_then(|rs| rs.metadata.uid.clone());
        // kubectl keys the history by revision, so a repeated revision shows once (the last).
        let mut by_revision: BTreeMap<i64, HistoryEntry> = BTreeMap::new();
        for rs in owned {
            let Some(revision) = rollout::revision(rs.metadata.annotations.as_ref()) else {
                continue;
            };
            by_revision.insert(
                revision,
                HistoryEntry {
                    revision,
                    change_cause: rs
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(rollout::CHANGE_CAUSE))
                        .filter(|c| !c.is_empty())
                        .cloned(),
                    images: rollout::images(rs.spec.as_ref().and_then(|s| s.template.as_ref())),
                    replicaset: rs.metadata.name.clone().unwrap_or_default(),
                    current: new_uid.is_some() && rs.metadata.uid == new_uid,
                    planned: place.planned.is_some() && new_uid.is_some() && rs.metadata.uid == new_uid,
                },
            );
        }
        Ok(by_revision.into_values().collect())
    }
}
