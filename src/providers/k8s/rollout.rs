//! kubectl's rollout logic, ported from kubectl 1.32 (`polymorphichelpers` and
//! `util/deployment`): owned ReplicaSets, revisions, template equality ignoring the hash, the
//! revision undo picks, the annotations it writes, and `DeploymentStatusViewer`. Pure functions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// The annotation holding a Deployment's or ReplicaSet's revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The annotation holding the change cause shown by `rollout history`.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// The template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The label the controller adds to a ReplicaSet's template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Annotations undo keeps from the Deployment instead of copying from the ReplicaSet
/// (`annotationsToSkip` in kubectl's rollback.go).
pub const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// A ReplicaSet's revision as kubectl reads it: a missing annotation is 0, an unparsable one
/// is `None` (that ReplicaSet is skipped).
pub fn revision(annotations: Option<&BTreeMap<String, String>>) -> Option<i64> {
    match annotations.and_then(|a| a.get(REVISION)) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// The ReplicaSets controlled by the Deployment (`metav1.IsControlledBy`), in list order.
pub fn owned<'a>(deployment: &Deployment, all: &'a [ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let Some(uid) = deployment.metadata.uid.as_deref() else {
        return Vec::new();
    };
    all.iter()
        .filter(|rs| {
            rs.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect()
}

/// Removes nulls and empty maps and lists, recursively: Go's semantic equality treats nil and
/// empty alike, and servers and clients differ in which they send.
fn normalize(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().map(|(k, v)| (k, normalize(v))).filter(|(_, v)| !is_empty(v)).collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A template without its `pod-template-hash` label, as JSON.
pub fn template_without_hash(t: &PodTemplateSpec) -> Value {
    // The label is taken out of the JSON, not out of a copy of the template made for it.
    let mut value = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(Value::Object(labels)) = value.pointer_mut("/metadata/labels") {
        labels.remove(POD_TEMPLATE_HASH);
    }
    value
}

/// `EqualIgnoreHash`: templates equal once the hash label is dropped from both.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    // Templates whose containers run other images differ whatever else they hold: the common
    // answer for the ReplicaSets of an undo, found without turning both into JSON.
    if container_images(a).ne(container_images(b)) {
        return false;
    }
    // The same pod spec and the same metadata but for the hash label: equal, also without
    // JSON (the other answer for the ReplicaSets of an undo). Anything else is compared as
    // kubectl does, with empty values and absent ones alike.
    if a.spec == b.spec && metadata_without_hash(a) == metadata_without_hash(b) {
        return true;
    }
    normalize(template_without_hash(a)) == normalize(template_without_hash(b))
}

/// A template's metadata without its `pod-template-hash` label.
fn metadata_without_hash(t: &PodTemplateSpec) -> Option<ObjectMeta> {
    let mut meta = t.metadata.clone();
    if let Some(labels) = meta.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    meta
}

/// Each container's name and image, in order.
fn container_images(t: &PodTemplateSpec) -> impl Iterator<Item = (&str, Option<&str>)> {
    t.spec.iter().flat_map(|s| s.containers.iter()).map(|c| (c.name.as_str(), c.image.as_deref()))
}

fn rs_template(rs: &ReplicaSet) -> Option<&PodTemplateSpec> {
    rs.spec.as_ref().and_then(|s| s.template.as_ref())
}

/// `FindNewReplicaSet`: the oldest owned ReplicaSet whose template equals the Deployment's.
pub fn find_new<'a>(deployment: &Deployment, owned: &[&'a ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = deployment.spec.as_ref().map(|s| &s.template)?;
    let mut sorted: Vec<&ReplicaSet> = owned.to_vec();
    sorted.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb).then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    sorted.into_iter().find(|rs| rs_template(rs).is_some_and(|t| equal_ignore_hash(t, template)))
}

/// Why undo found no ReplicaSet to go back to (kubectl's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickError {
    /// `--to-revision=N` names no revision.
    NoSuchRevision(i64),
    /// Only one revision (or none) exists.
    NoHistory(String),
}

impl std::fmt::Display for PickError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PickError::NoSuchRevision(n) => {
                write!(f, "unable to find specified revision {n} in history")
            }
            PickError::NoHistory(name) => {
                write!(f, "no rollout history found for deployment \"{name}\"")
            }
        }
    }
}

/// `deploymentRevision`: the ReplicaSet with revision `to_revision`, or with the second-highest
/// revision when it is 0. Candidates are the old ReplicaSets in list order, then the new one.
pub fn pick<'a>(
    deployment: &Deployment,
    owned: &[&'a ReplicaSet],
    to_revision: i64,
) -> Result<&'a ReplicaSet, PickError> {
    if to_revision < 0 {
        return Err(PickError::NoSuchRevision(to_revision));
    }
    let new = find_new(deployment, owned);
    let new_uid = new.and_then(|n| n.metadata.uid.clone());
    let mut all: Vec<&ReplicaSet> =
        owned.iter().copied().filter(|rs| new.is_none() || rs.metadata.uid != new_uid).collect();
    if let Some(n) = new {
        all.push(n);
    }
    let (mut latest, mut previous): (Option<&ReplicaSet>, Option<&ReplicaSet>) = (None, None);
    let (mut latest_rev, mut previous_rev) = (-1_i64, -1_i64);
    for rs in all {
        let Some(v) = revision(rs.metadata.annotations.as_ref()) else {
            continue;
        };
        if to_revision == 0 {
            if latest_rev < v {
                previous_rev = latest_rev;
                previous = latest;
                latest_rev = v;
                latest = Some(rs);
            } else if previous_rev < v {
                previous_rev = v;
                previous = Some(rs);
            }
        } else if to_revision == v {
            return Ok(rs);
        }
    }
    if to_revision > 0 {
        return Err(PickError::NoSuchRevision(to_revision));
    }
    previous.ok_or_else(|| PickError::NoHistory(deployment.metadata.name.clone().unwrap_or_default()))
}

/// The Deployment annotations after undo: the skipped keys from the Deployment, every other
/// key from the target ReplicaSet (so the Deployment's other annotations are dropped).
pub fn undo_annotations(
    deployment: Option<&BTreeMap<String, String>>,
    rs: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for k in ANNOTATIONS_TO_SKIP {
        if let Some(v) = deployment.and_then(|d| d.get(*k)) {
            out.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in rs.into_iter().flatten() {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Container name → image (init containers are not included).
pub fn images(t: Option<&PodTemplateSpec>) -> BTreeMap<String, String> {
    t.and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.iter().map(|c| (c.name.clone(), c.image.clone().unwrap_or_default())).collect())
        .unwrap_or_default()
}

/// "web: a → b, sidecar: c → d" for the containers whose image differs.
pub fn image_changes(from: &BTreeMap<String, String>, to: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    for (name, to_image) in to {
        match from.get(name) {
            Some(f) if f == to_image => {}
            Some(f) => parts.push(format!("{name}: {f} → {to_image}")),
            None => parts.push(format!("{name}: (none) → {to_image}")),
        }
    }
    for (name, f) in from {
        if !to.contains_key(name) {
            parts.push(format!("{name}: {f} → (removed)"));
        }
    }
    if parts.is_empty() { "no image changes".to_string() } else { parts.join(", ") }
}

/// What `DeploymentStatusViewer` says about a Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewed {
    /// kubectl's message, without the trailing newline.
    pub message: String,
    /// The rollout finished.
    pub done: bool,
    /// The progress deadline passed (kubectl fails with this message).
    pub failed: bool,
}

/// `DeploymentStatusViewer.Status` of kubectl 1.32 (without `--revision`).
pub fn view(d: &Deployment) -> Viewed {
    let name = d.metadata.name.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let waiting = |message: String| Viewed { message, done: false, failed: false };
    if d.metadata.generation.unwrap_or(0) <= status.observed_generation.unwrap_or(0) {
        let deadline = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        if deadline {
            return Viewed {
                message: format!("deployment \"{name}\" exceeded its progress deadline"),
                done: false,
                failed: true,
            };
        }
        let updated = status.updated_replicas.unwrap_or(0);
        let replicas = status.replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        if let Some(want) = d.spec.as_ref().and_then(|s| s.replicas)
            && updated < want
        {
            return waiting(format!(
                "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {want} new replicas have been updated..."
            ));
        }
        if replicas > updated {
            return waiting(format!(
                "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ));
        }
        if available < updated {
            return waiting(format!(
                "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."
            ));
        }
        return Viewed {
            message: format!("deployment \"{name}\" successfully rolled out"),
            done: true,
            failed: false,
        };
    }
    waiting("Waiting for deployment spec update to be observed...".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(name: &str, rev: Option<&str>, image: &str, uid: &str) -> ReplicaSet {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = rev {
            annotations.insert(REVISION.into(), json!(r));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": format!("rs-{name}"), "annotations": annotations,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid, "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                    "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    fn deployment(image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "uid": "d1", "generation": 2, "annotations": {REVISION: "3", "team": "shop"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}}},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
        }))
        .unwrap()
    }

    #[test]
    fn picks_the_second_highest_revision_or_the_named_one() {
        let d = deployment("w:3");
        let all = vec![
            rs("a", Some("1"), "w:1", "d1"),
            rs("b", Some("2"), "w:2", "d1"),
            rs("c", Some("3"), "w:3", "d1"),
            rs("x", Some("9"), "w:9", "other"),
            rs("bad", Some("x"), "w:7", "d1"),
        ];
        let owned = owned(&d, &all);
        assert_eq!(owned.len(), 4, "the foreign ReplicaSet is not ours");
        assert_eq!(pick(&d, &owned, 0).unwrap().metadata.name.as_deref(), Some("b"));
        assert_eq!(pick(&d, &owned, 1).unwrap().metadata.name.as_deref(), Some("a"));
        assert_eq!(
            pick(&d, &owned, 5).unwrap_err().to_string(),
            "unable to find specified revision 5 in history"
        );
        assert_eq!(
            pick(&d, &owned, -1).unwrap_err().to_string(),
            "unable to find specified revision -1 in history"
        );
        assert_eq!(find_new(&d, &owned).unwrap().metadata.name.as_deref(), Some("c"));
        let one = vec![rs("c", Some("3"), "w:3", "d1")];
        assert_eq!(
            pick(&d, &super::owned(&d, &one), 0).unwrap_err().to_string(),
            "no rollout history found for deployment \"web\""
        );
        let none = vec![rs("z", None, "w:0", "d1"), rs("c", Some("3"), "w:3", "d1")];
        assert_eq!(
            pick(&d, &super::owned(&d, &none), 0).unwrap().metadata.name.as_deref(),
            Some("z"),
            "a missing revision counts as 0"
        );
    }

    #[test]
    fn undo_keeps_skipped_keys_of_the_deployment_and_the_rest_of_the_replicaset() {
        let d: BTreeMap<String, String> =
            [(REVISION, "3"), ("team", "shop"), ("deprecated.deployment.rollback.to", "1")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let r: BTreeMap<String, String> =
            [(REVISION, "1"), (CHANGE_CAUSE, "initial"), ("deployment.kubernetes.io/max-replicas", "4")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let out = undo_annotations(Some(&d), Some(&r));
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(keys, vec![REVISION, "deprecated.deployment.rollback.to", CHANGE_CAUSE]);
        assert_eq!(out[REVISION], "3");
    }

    #[test]
    fn equality_ignores_the_hash_and_empty_values() {
        let a = rs("a", Some("1"), "w:1", "d1");
        let d = deployment("w:1");
        assert!(equal_ignore_hash(
            a.spec.as_ref().unwrap().template.as_ref().unwrap(),
            &d.spec.as_ref().unwrap().template
        ));
        let other = deployment("w:2");
        assert!(!equal_ignore_hash(
            a.spec.as_ref().unwrap().template.as_ref().unwrap(),
            &other.spec.as_ref().unwrap().template
        ));
    }

    #[test]
    fn the_status_viewer_speaks_kubectl() {
        let mut d = deployment("w:1");
        assert_eq!(view(&d).message, "deployment \"web\" successfully rolled out");
        assert!(view(&d).done);
        let s = d.status.as_mut().unwrap();
        s.updated_replicas = Some(1);
        assert_eq!(
            view(&d).message,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        );
        let s = d.status.as_mut().unwrap();
        s.updated_replicas = Some(3);
        s.replicas = Some(4);
        assert_eq!(
            view(&d).message,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
        );
        let s = d.status.as_mut().unwrap();
        s.replicas = Some(3);
        s.available_replicas = Some(2);
        assert_eq!(
            view(&d).message,
            "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available..."
        );
        d.metadata.generation = Some(3);
        assert_eq!(view(&d).message, "Waiting for deployment spec update to be observed...");
        d.metadata.generation = Some(2);
        d.status.as_mut().unwrap().conditions = Some(vec![
            serde_json::from_value(json!({
                "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"
            }))
            .unwrap(),
        ]);
        let v = view(&d);
        assert!(v.failed && !v.done);
        assert_eq!(v.message, "deployment \"web\" exceeded its progress deadline");
    }

    #[test]
    fn image_changes_name_each_container() {
        let from: BTreeMap<String, String> =
            [("web".to_string(), "a:1".to_string()), ("side".to_string(), "s:1".to_string())].into();
        let to: BTreeMap<String, String> =
            [("web".to_string(), "a:2".to_string()), ("side".to_string(), "s:1".to_string())].into();
        assert_eq!(image_changes(&from, &to), "web: a:1 → a:2");
        assert_eq!(image_changes(&from, &from), "no image changes");
    }
}
