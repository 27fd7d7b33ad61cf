//! Partial decoding of the API server's answers on a fleet's hot path. A fleet rollback reads
//! thousands of Deployments and ReplicaSet lists; decoding each whole, typed, was a sixth of the
//! run's CPU. These types read only what the primitives look at and skip the rest unread (serde
//! skips an unknown field without allocating), then fill the typed objects the rest of the code
//! works on, so the decisions stay written once, on `k8s_openapi`'s types.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

/// The `items` of a list answer, and nothing else of it. kube's `ObjectList` flattens the list's
/// type fields, which makes serde buffer the whole answer as untyped content before decoding it
/// a second time; this reads it once.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct Items<T> {
    /// The objects, in the server's order (`null` and absent are empty, as kube reads them).
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub items: Vec<T>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// What `kubectl rollout status` looks at of a Deployment: its name, generation and
/// resourceVersion, `spec.replicas`, and its status (of the conditions, their type and reason).
/// The pod template, the largest part of the object, is not read.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RolloutView {
    #[serde(default)]
    metadata: ViewMeta,
    #[serde(default)]
    spec: Option<ViewSpec>,
    #[serde(default)]
    status: Option<ViewStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    resource_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ViewSpec {
    #[serde(default)]
    replicas: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewStatus {
    #[serde(default)]
    observed_generation: Option<i64>,
    #[serde(default)]
    replicas: Option<i32>,
    #[serde(default)]
    updated_replicas: Option<i32>,
    #[serde(default)]
    ready_replicas: Option<i32>,
    #[serde(default)]
    available_replicas: Option<i32>,
    #[serde(default)]
    conditions: Option<Vec<ViewCondition>>,
}

#[derive(Debug, Default, Deserialize)]
struct ViewCondition {
    #[serde(default, rename = "type")]
    type_: String,
    #[serde(default)]
    reason: Option<String>,
}

impl From<RolloutView> for Deployment {
    fn from(v: RolloutView) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: v.metadata.name,
                namespace: v.metadata.namespace,
                generation: v.metadata.generation,
                resource_version: v.metadata.resource_version,
                ..ObjectMeta::default()
            },
            spec: v.spec.map(|s| DeploymentSpec { replicas: s.replicas, ..DeploymentSpec::default() }),
            status: v.status.map(|s| DeploymentStatus {
                observed_generation: s.observed_generation,
                replicas: s.replicas,
                updated_replicas: s.updated_replicas,
                ready_replicas: s.ready_replicas,
                available_replicas: s.available_replicas,
                conditions: s.conditions.map(|cs| {
                    cs.into_iter()
                        .map(|c| DeploymentCondition {
                            type_: c.type_,
                            reason: c.reason,
                            ..DeploymentCondition::default()
                        })
                        .collect()
                }),
                ..DeploymentStatus::default()
            }),
        }
    }
}

/// What `k8s::undo` looks at of a Deployment or of a ReplicaSet: the metadata it compares and
/// copies (no `managedFields`), the selector, `paused`, `replicas` and the pod template. The
/// status, the strategy and the rest of the spec are not read. Under dry-run the whole object is
/// read instead, as the planned state is built from it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RevisionView {
    #[serde(default)]
    metadata: RevisionMeta,
    #[serde(default)]
    spec: Option<RevisionSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevisionMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Debug, Default, Deserialize)]
struct RevisionSpec {
    #[serde(default)]
    replicas: Option<i32>,
    #[serde(default)]
    paused: Option<bool>,
    #[serde(default)]
    selector: Option<LabelSelector>,
    #[serde(default)]
    template: Option<PodTemplateSpec>,
}

impl From<RevisionMeta> for ObjectMeta {
    fn from(m: RevisionMeta) -> ObjectMeta {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            labels: m.labels,
            annotations: m.annotations,
            owner_references: m.owner_references,
            ..ObjectMeta::default()
        }
    }
}

impl From<RevisionView> for Deployment {
    fn from(v: RevisionView) -> Deployment {
        Deployment {
            metadata: v.metadata.into(),
            spec: v.spec.map(|s| DeploymentSpec {
                replicas: s.replicas,
                paused: s.paused,
                selector: s.selector.unwrap_or_default(),
                template: s.template.unwrap_or_default(),
                ..DeploymentSpec::default()
            }),
            status: None,
        }
    }
}

impl From<RevisionView> for ReplicaSet {
    fn from(v: RevisionView) -> ReplicaSet {
        ReplicaSet {
            metadata: v.metadata.into(),
            spec: v.spec.map(|s| ReplicaSetSpec {
                replicas: s.replicas,
                selector: s.selector.unwrap_or_default(),
                template: s.template,
                ..ReplicaSetSpec::default()
            }),
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::core::ObjectList;
    use serde_json::json;

    use super::*;
    use crate::providers::k8s::rollout;

    /// A Deployment as an API server sends it, mid-rollout and with every part filled in.
    fn deployment(generation: i64, observed: i64, updated: i32, reason: &str) -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps", "generation": generation, "resourceVersion": "42",
                "uid": "u-1", "labels": {"app": "web"}, "annotations": {"deployment.kubernetes.io/revision": "3"},
                "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:1.2", "ports": [{"containerPort": 80}]}]}}},
            "status": {"observedGeneration": observed, "replicas": 3, "updatedReplicas": updated, "readyReplicas": 2,
                "availableReplicas": 2, "unavailableReplicas": 1,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                     "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Progressing", "status": "True", "reason": reason, "message": "ReplicaSet \"web-1\" is progressing.",
                     "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        })
    }

    /// Whatever the object says, the partial read leads to the verdict and message the whole
    /// typed object leads to.
    #[test]
    fn a_rollout_seen_through_the_partial_read_is_seen_as_through_the_whole_object() {
        let cases = [
            deployment(4, 4, 3, "NewReplicaSetAvailable"),
            deployment(4, 4, 1, "ReplicaSetUpdated"),
            deployment(5, 4, 3, "NewReplicaSetAvailable"),
            deployment(4, 4, 1, "ProgressDeadlineExceeded"),
            json!({"metadata": {"name": "bare"}}),
            json!({"metadata": {"name": "nulls"}, "spec": {"replicas": null}, "status": {"conditions": null}}),
        ];
        for case in cases {
            let whole: Deployment = serde_json::from_value(case.clone()).unwrap();
            let lean: Deployment = serde_json::from_value::<RolloutView>(case.clone()).unwrap().into();
            let (w, l) = (rollout::view(&whole), rollout::view(&lean));
            assert_eq!((w.done, w.failed, &w.message), (l.done, l.failed, &l.message), "{case}");
            assert_eq!(whole.metadata.resource_version, lean.metadata.resource_version);
            assert_eq!(
                whole.spec.as_ref().and_then(|s| s.replicas),
                lean.spec.as_ref().and_then(|s| s.replicas)
            );
            let reasons = |d: &Deployment| {
                let s = d.status.clone().unwrap_or_default();
                (
                    s.conditions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| (c.type_, c.reason))
                        .collect::<Vec<_>>(),
                    (
                        s.replicas,
                        s.updated_replicas,
                        s.ready_replicas,
                        s.available_replicas,
                        s.observed_generation,
                    ),
                )
            };
            assert_eq!(reasons(&whole), reasons(&lean), "{case}");
        }
    }

    #[test]
    fn a_partial_read_refuses_what_the_typed_read_refuses() {
        let wrong = json!({"metadata": {"name": "web", "generation": "four"}});
        assert!(serde_json::from_value::<Deployment>(wrong.clone()).is_err());
        assert!(serde_json::from_value::<RolloutView>(wrong).is_err());
        let wrong = json!({"metadata": {"name": "web"}, "status": {"updatedReplicas": 1.5}});
        assert!(serde_json::from_value::<Deployment>(wrong.clone()).is_err());
        assert!(serde_json::from_value::<RolloutView>(wrong).is_err());
    }

    /// A ReplicaSet of `web` as the controller writes it, with every part filled in.
    fn replica_set(name: &str, revision: &str, image: &str, owner: &str) -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}"), "resourceVersion": "9",
                "generation": 2, "creationTimestamp": format!("2026-01-0{}T00:00:00Z", revision.len()),
                "labels": {"app": "web", "pod-template-hash": name},
                "annotations": {"deployment.kubernetes.io/revision": revision, "kubernetes.io/change-cause": "deploy",
                    "deployment.kubernetes.io/max-replicas": "4"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner,
                    "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "pod-template-hash": name}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name},
                        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}},
                    "spec": {"containers": [{"name": "web", "image": image, "resources": {},
                        "env": [{"name": "MODE", "value": "x"}], "ports": [{"containerPort": 80}]}],
                        "restartPolicy": "Always", "securityContext": {}}}},
            "status": {"replicas": 0, "observedGeneration": 2, "fullyLabeledReplicas": 0,
                "conditions": [{"type": "ReplicaFailure", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        })
    }

    /// What undo decides from the whole objects, it decides from the partial read: the
    /// ReplicaSets it owns, the revision it picks, whether it skips, the patch, the images, and
    /// what the GitOps guard and `paused` look at.
    #[test]
    fn an_undo_decided_on_the_partial_read_is_the_undo_decided_on_the_whole_objects() {
        let mut paused = deployment(4, 4, 3, "NewReplicaSetAvailable");
        paused["spec"]["paused"] = json!(true);
        paused["metadata"]["labels"]["argocd.argoproj.io/instance"] = json!("shop");
        let mut matching = deployment(4, 4, 3, "NewReplicaSetAvailable");
        matching["spec"]["template"] = replica_set("web-2", "2", "web:2", "u-1")["spec"]["template"].clone();
        let deployments = [deployment(4, 4, 3, "NewReplicaSetAvailable"), paused, matching];
        let sets = json!([
            replica_set("web-1", "1", "web:1", "u-1"),
            replica_set("web-2", "2", "web:2", "u-1"),
            replica_set("web-3", "3", "web:1.2", "u-1"),
            replica_set("other", "7", "web:7", "u-other"),
            {"metadata": {"name": "bare", "ownerReferences": null, "annotations": null}, "spec": {"selector": {}}},
        ]);
        let list = json!({"kind": "ReplicaSetList", "items": sets}).to_string();
        let whole_sets: Items<ReplicaSet> = serde_json::from_str(&list).unwrap();
        let lean_sets: Vec<ReplicaSet> = serde_json::from_str::<Items<RevisionView>>(&list)
            .unwrap()
            .items
            .into_iter()
            .map(Into::into)
            .collect();
        for d in deployments {
            let whole: Deployment = serde_json::from_value(d.clone()).unwrap();
            let lean: Deployment = serde_json::from_value::<RevisionView>(d.clone()).unwrap().into();
            assert_eq!(whole.metadata.labels, lean.metadata.labels);
            assert_eq!(whole.metadata.annotations, lean.metadata.annotations);
            assert_eq!(crate::providers::k8s::paused(&whole), crate::providers::k8s::paused(&lean));
            assert_eq!(whole.spec.as_ref().map(|s| &s.selector), lean.spec.as_ref().map(|s| &s.selector));
            assert_eq!(crate::providers::gitops::mark_of(&whole), crate::providers::gitops::mark_of(&lean));
            let (wo, lo) = (rollout::owned(&whole, &whole_sets.items), rollout::owned(&lean, &lean_sets));
            assert_eq!(wo.len(), lo.len());
            for to in [0, 1, 2, 3, 7, 9] {
                let (w, l) = (rollout::pick(&whole, &wo, to), rollout::pick(&lean, &lo, to));
                match (w, l) {
                    (Ok(w), Ok(l)) => {
                        assert_eq!(w.metadata.name, l.metadata.name, "to {to}");
                        let (wt, lt) = (
                            w.spec.as_ref().and_then(|s| s.template.as_ref()).unwrap(),
                            l.spec.as_ref().and_then(|s| s.template.as_ref()).unwrap(),
                        );
                        assert_eq!(wt, lt);
                        assert_eq!(
                            rollout::equal_ignore_hash(wt, &whole.spec.as_ref().unwrap().template),
                            rollout::equal_ignore_hash(lt, &lean.spec.as_ref().unwrap().template)
                        );
                        assert_eq!(rollout::template_without_hash(wt), rollout::template_without_hash(lt));
                        assert_eq!(
                            rollout::undo_annotations(
                                whole.metadata.annotations.as_ref(),
                                w.metadata.annotations.as_ref()
                            ),
                            rollout::undo_annotations(
                                lean.metadata.annotations.as_ref(),
                                l.metadata.annotations.as_ref()
                            )
                        );
                    }
                    (w, l) => assert_eq!(w.err(), l.err(), "to {to}"),
                }
            }
            let (wn, ln) = (rollout::find_new(&whole, &wo), rollout::find_new(&lean, &lo));
            assert_eq!(wn.map(|r| &r.metadata.name), ln.map(|r| &r.metadata.name));
        }
    }

    #[test]
    fn a_list_reads_to_the_items_kube_reads() {
        let list = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {"resourceVersion": "7"},
            "items": [
                {"metadata": {"name": "web-1", "annotations": {"deployment.kubernetes.io/revision": "1"}},
                 "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}},
                {"metadata": {"name": "web-2"}, "spec": {"selector": {}}}
            ]
        })
        .to_string();
        let kube: ObjectList<ReplicaSet> = serde_json::from_str(&list).unwrap();
        let ours: Items<ReplicaSet> = serde_json::from_str(&list).unwrap();
        assert_eq!(kube.items, ours.items);
        for empty in [r#"{"kind": "ReplicaSetList", "items": null}"#, r#"{"kind": "ReplicaSetList"}"#] {
            let ours: Items<ReplicaSet> = serde_json::from_str(empty).unwrap();
            assert!(ours.items.is_empty(), "{empty}");
        }
    }
}
