//! The Deployment controller and pod lifecycle of the simulated clusters (reference §5):
//! ReplicaSet per pod template, revision bookkeeping, rolling updates, history cleanup and status.

use std::sync::Arc;

use serde_json::{Value, json};

use super::progress;
use super::store::{
    At, Key, Kind, Store, annotation, controller_owner, int_at, obj_mut, set_annotation, str_at,
};

/// Deployment annotations that are not copied to ReplicaSets nor restored by a rollback.
pub const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const HASH: &str = "pod-template-hash";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Drops nulls and empty maps/lists, as Go's semantic equality treats nil and empty alike.
pub fn normalize(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let out: serde_json::Map<String, Value> =
                m.iter().filter_map(|(k, v)| normalize(v).map(|v| (k.clone(), v))).collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(a) => (!a.is_empty())
            .then(|| Value::Array(a.iter().map(|x| normalize(x).unwrap_or(Value::Null)).collect())),
        other => Some(other.clone()),
    }
}

/// A pod template without its `pod-template-hash` label, normalised.
fn template_key(template: &Value) -> Option<Value> {
    let mut t = template.clone();
    if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH);
    }
    normalize(&t)
}

/// kubectl's and the controller's `EqualIgnoreHash`: `template_key(a) == template_key(b)`,
/// compared in place (every sync asks it of every ReplicaSet of the Deployment).
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    same_normalized(Some(a), Some(b), Level::Template)
}

/// Where in a pod template a comparison is: the hash label is ignored in `metadata.labels` only.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Template,
    Metadata,
    Labels,
    Inner,
}

impl Level {
    fn below(self, key: &str) -> Level {
        match (self, key) {
            (Level::Template, "metadata") => Level::Metadata,
            (Level::Metadata, "labels") => Level::Labels,
            _ => Level::Inner,
        }
    }
    fn skips(self, key: &str) -> bool {
        self == Level::Labels && key == HASH
    }
}

/// Whether [`normalize`] would drop the value (at `level`, where the hash label does not count).
fn vanishes(v: Option<&Value>, level: Level) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.iter().all(|(k, v)| level.skips(k) || vanishes(Some(v), level.below(k))),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// `normalize(a) == normalize(b)` (at `level`), without building either.
fn same_normalized(a: Option<&Value>, b: Option<&Value>, level: Level) -> bool {
    let (gone_a, gone_b) = (vanishes(a, level), vanishes(b, level));
    if gone_a || gone_b {
        return gone_a && gone_b;
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => x
            .keys()
            .chain(y.keys().filter(|k| !x.contains_key(*k)))
            .filter(|k| !level.skips(k))
            .all(|k| same_normalized(x.get(k), y.get(k), level.below(k))),
        // Array elements that vanish become nulls, which are all alike.
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| same_normalized(Some(p), Some(q), Level::Inner))
        }
        (a, b) => a == b,
    }
}

/// A stable `pod-template-hash`: FNV-1a-32 of the normalised template, its decimal digits
/// mapped onto the alphabet Kubernetes uses (so it looks like a real one, e.g. `78449c65d4`).
pub fn pod_template_hash(template: &Value) -> String {
    let text = template_key(template).map(|v| v.to_string()).unwrap_or_default();
    let mut h: u32 = 0x811c9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string().bytes().map(|d| ALPHABET[(usize::from(d)) % 27] as char).collect()
}

/// Images of a pod template's containers, in order.
pub fn template_images(template: &Value) -> Vec<String> {
    template
        .at("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter().filter_map(|c| c.get("image").and_then(Value::as_str).map(String::from)).collect()
        })
        .unwrap_or_default()
}

/// The revision annotation as kubectl parses it (missing = 0, unparsable = None).
pub fn revision_of(obj: &Value) -> Option<i64> {
    match annotation(obj, REVISION) {
        None => Some(0),
        Some(s) => s.parse().ok(),
    }
}

/// Resolves an int-or-percent of `total`, rounding up or down.
fn int_or_percent(v: Option<&Value>, total: i64, default_pct: i64, round_up: bool) -> i64 {
    const MAX: i64 = i32::MAX as i64;
    let pct = match v {
        Some(Value::Number(n)) => return n.as_i64().unwrap_or(0).clamp(0, MAX),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => p.clamp(0, 100_000),
            None => return s.parse::<i64>().unwrap_or(0).clamp(0, MAX),
        },
        _ => default_pct,
    };
    let scaled = pct.saturating_mul(total.clamp(0, MAX));
    if round_up { (scaled + 99) / 100 } else { scaled / 100 }
}

/// `maxSurge` and `maxUnavailable` of a Deployment, resolved as the controller does.
pub fn surge_and_unavailable(d: &Value) -> (i64, i64) {
    let desired = int_at(d, "/spec/replicas");
    let ru = d.at("/spec/strategy/rollingUpdate");
    let surge = int_or_percent(ru.and_then(|r| r.get("maxSurge")), desired, 25, true);
    let mut unavailable = int_or_percent(ru.and_then(|r| r.get("maxUnavailable")), desired, 25, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(desired))
}

/// Whether a ReplicaSet's pods run an image its owner's scenario calls broken.
pub fn rs_broken(store: &Store, rs: &Value, ctx: &str) -> bool {
    let Some(owner) = controller_owner(rs) else {
        return false;
    };
    let ns = str_at(rs, "/metadata/namespace").unwrap_or("default");
    let key = Key::new(ctx, Kind::Deployment, ns, owner);
    let Some(broken) = store.broken.get(&key) else {
        return false;
    };
    rs.at("/spec/template").map(template_images).unwrap_or_default().iter().any(|i| broken.contains(i))
}

fn owner_uid(rs: &Value) -> Option<&str> {
    rs.at("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?
        .get("uid")?
        .as_str()
}

/// The ReplicaSets a Deployment controls, oldest first (creationTimestamp, then name), shared
/// with the store: a sync copies only the ones it changes.
pub fn owned_replicasets(store: &Store, dkey: &Key, uid: &str) -> Vec<(Key, Arc<Value>)> {
    let mut rss: Vec<(Key, Arc<Value>)> = store
        .owned_by(dkey)
        .filter(|(_, rs)| owner_uid(rs) == Some(uid))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    rss.sort_by(|a, b| {
        let ta = str_at(&a.1, "/metadata/creationTimestamp").unwrap_or("");
        let tb = str_at(&b.1, "/metadata/creationTimestamp").unwrap_or("");
        (ta, &a.0.name).cmp(&(tb, &b.0.name))
    });
    rss
}

/// Scales a ReplicaSet, stamping the Deployment's size on it as the controller does
/// (`desired-replicas`, `max-replicas`), as `ann`; copies it only if that changes it.
fn set_replicas(rs: &mut Arc<Value>, n: i64, ann: (i64, i64)) {
    let stamped = |k: &str, v: i64| annotation(rs, k).and_then(|s| s.parse::<i64>().ok()) == Some(v);
    if int_at(rs, "/spec/replicas") == n && stamped(DESIRED, ann.0) && stamped(MAX_REPLICAS, ann.1) {
        return;
    }
    let rs = Arc::make_mut(rs);
    if int_at(rs, "/spec/replicas") != n {
        obj_mut(rs, &["spec"]).insert("replicas".into(), json!(n));
        let generation = int_at(rs, "/metadata/generation") + 1;
        obj_mut(rs, &["metadata"]).insert("generation".into(), json!(generation));
    }
    set_annotation(rs, DESIRED, &ann.0.to_string());
    set_annotation(rs, MAX_REPLICAS, &ann.1.to_string());
}

/// Whether the Deployment's size changed since its active ReplicaSets were scaled.
fn is_scaling_event(rss: &[(Key, Arc<Value>)], desired: i64) -> bool {
    rss.iter()
        .filter(|(_, rs)| int_at(rs, "/spec/replicas") > 0)
        .filter_map(|(_, rs)| annotation(rs, DESIRED)?.parse::<i64>().ok())
        .any(|d| d != desired)
}

/// The controller's `scale()`: the one active (or latest) ReplicaSet takes the whole size;
/// otherwise a saturated new one ends the old ones; otherwise a rolling Deployment spreads
/// the change over the active ReplicaSets in proportion to their size.
fn scale(
    rss: &mut [(Key, Arc<Value>)],
    new_idx: Option<usize>,
    d: &Value,
    desired: i64,
    surge: i64,
    rolling: bool,
) {
    let ann = (desired, desired + surge);
    let spec = |rs: &Value| int_at(rs, "/spec/replicas");
    let active: Vec<usize> = (0..rss.len()).filter(|&i| spec(&rss[i].1) > 0).collect();
    let only = match active.len() {
        0 => new_idx.or_else(|| (0..rss.len()).rev().find(|&i| Some(i) != new_idx)),
        1 => Some(active[0]),
        _ => None,
    };
    if let Some(i) = only {
        if spec(&rss[i].1) != desired {
            set_replicas(&mut rss[i].1, desired, ann);
        }
        return;
    }
    if let Some(ni) = new_idx {
        let rs = &rss[ni].1;
        let saturated = spec(rs) == desired
            && annotation(rs, DESIRED).and_then(|v| v.parse::<i64>().ok()) == Some(desired)
            && int_at(rs, "/status/availableReplicas") == desired;
        if saturated {
            for &i in active.iter().filter(|&&i| i != ni) {
                set_replicas(&mut rss[i].1, 0, ann);
            }
            return;
        }
    }
    if !rolling {
        return;
    }
    let total: i64 = active.iter().map(|&i| spec(&rss[i].1)).sum();
    let allowed = if desired > 0 { desired + surge } else { 0 };
    let to_add = allowed - total;
    let mut order = active.clone();
    // Larger first; ties go to the newer one when adding and the older one when removing.
    order.sort_by(|&a, &b| {
        let by_size = spec(&rss[b].1).cmp(&spec(&rss[a].1));
        by_size.then(if to_add > 0 { b.cmp(&a) } else { a.cmp(&b) })
    });
    let status_replicas = int_at(d, "/status/replicas");
    let mut added = 0;
    let mut sizes = Vec::with_capacity(order.len());
    for &i in &order {
        let rs = &rss[i].1;
        let s = spec(rs);
        let mut p = 0;
        if to_add != 0 && to_add != added {
            let fraction = if desired == 0 {
                -s
            } else {
                let annotated = annotation(rs, MAX_REPLICAS)
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(status_replicas);
                if annotated > 0 {
                    ((s * (desired + surge)) as f64 / annotated as f64).round() as i64 - s
                } else {
                    0
                }
            };
            let left = to_add - added;
            p = if to_add > 0 { fraction.min(left) } else { fraction.max(left) };
        }
        sizes.push(s + p);
        added += p;
    }
    for (k, &i) in order.iter().enumerate() {
        let mut size = sizes[k];
        if k == 0 && to_add != 0 {
            size = (size + to_add - added).max(0);
        }
        set_replicas(&mut rss[i].1, size, ann);
    }
}

fn set_condition(d: &mut Value, kind: &str, status: &str, reason: &str, message: &str, now: &str) {
    let status_obj = obj_mut(d, &["status"]);
    let conds = status_obj.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return;
    };
    let fresh = json!({"type": kind, "status": status, "lastUpdateTime": now,
        "lastTransitionTime": now, "reason": reason, "message": message});
    match list.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)) {
        Some(c) => {
            let same_status = c.get("status").and_then(Value::as_str) == Some(status);
            let same = same_status
                && c.get("reason").and_then(Value::as_str) == Some(reason)
                && c.get("message").and_then(Value::as_str) == Some(message);
            if same {
                return;
            }
            let transition = if same_status {
                c.get("lastTransitionTime").cloned().unwrap_or(json!(now))
            } else {
                json!(now)
            };
            *c = fresh;
            c["lastTransitionTime"] = transition;
        }
        None => {
            // Available comes first, as on a real cluster.
            if kind == "Available" {
                list.insert(0, fresh);
            } else {
                list.push(fresh);
            }
        }
    }
}

fn condition_reason(d: &Value, kind: &str) -> Option<String> {
    d.at("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?
        .get("reason")?
        .as_str()
        .map(String::from)
}

fn new_replicaset(store: &mut Store, d: &Value, dkey: &Key, revision: i64, ann: (i64, i64)) -> (Key, Value) {
    let template = d.at("/spec/template").cloned().unwrap_or(json!({}));
    let hash = pod_template_hash(&template);
    let name = format!("{}-{hash}", dkey.name);
    let mut t = template;
    obj_mut(&mut t, &["metadata", "labels"]).insert(HASH.into(), json!(hash));
    let mut labels = t.at("/metadata/labels").cloned().unwrap_or(json!({}));
    labels[HASH] = json!(hash);
    let mut selector = d.at("/spec/selector").cloned().unwrap_or(json!({}));
    obj_mut(&mut selector, &["matchLabels"]).insert(HASH.into(), json!(hash));
    let mut annotations = serde_json::Map::new();
    if let Some(Value::Object(a)) = d.at("/metadata/annotations") {
        for (k, v) in a {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    annotations.insert(REVISION.into(), json!(revision.to_string()));
    annotations.insert(DESIRED.into(), json!(ann.0.to_string()));
    annotations.insert(MAX_REPLICAS.into(), json!(ann.1.to_string()));
    let uid = store.uid();
    let mut rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": dkey.ns,
            "uid": uid,
            "generation": 1,
            "creationTimestamp": store.timestamp(),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": dkey.name,
                "uid": str_at(d, "/metadata/uid").unwrap_or(""), "controller": true,
                "blockOwnerDeletion": true}],
        },
        "spec": {"replicas": 0, "selector": selector, "template": t},
        "status": {"replicas": 0, "observedGeneration": 1},
    });
    if let Some(m) = d.at("/spec/minReadySeconds") {
        rs["spec"]["minReadySeconds"] = m.clone();
    }
    (Key::new(&dkey.ctx, Kind::ReplicaSet, &dkey.ns, &name), rs)
}

/// One pass of the Deployment controller over one Deployment; writes what changed.
pub fn sync_deployment(store: &mut Store, dkey: &Key) {
    let Some(mut d) = store.objects.get(dkey).map(|d| Value::clone(d)) else {
        return;
    };
    let now = store.timestamp();
    let uid = str_at(&d, "/metadata/uid").unwrap_or("").to_string();
    let mut rss = owned_replicasets(store, dkey, &uid);
    let template = d.at("/spec/template").cloned().unwrap_or(json!({}));
    let paused = d.at("/spec/paused").and_then(Value::as_bool) == Some(true);
    let desired = int_at(&d, "/spec/replicas");
    let (surge, max_unavailable) = surge_and_unavailable(&d);
    let mut new_idx = rss
        .iter()
        .position(|(_, rs)| rs.at("/spec/template").is_some_and(|t| equal_ignore_hash(t, &template)));
    let mut created = false;

    // Pause and resume conditions come first (checkPausedConditions).
    let progressing = condition_reason(&d, "Progressing");
    if paused && progressing.as_deref() != Some("DeploymentPaused") {
        set_condition(&mut d, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", &now);
    } else if !paused && progressing.as_deref() == Some("DeploymentPaused") {
        set_condition(&mut d, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", &now);
    }

    // Revision bookkeeping of an existing new ReplicaSet (getNewReplicaSet), even when paused.
    let max_old = rss
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .filter_map(|(_, (_, rs))| revision_of(rs))
        .max()
        .unwrap_or(0);
    let new_revision = max_old + 1;
    if let Some(i) = new_idx {
        let rs = &mut rss[i].1;
        if let Some(Value::Object(a)) = d.at("/metadata/annotations") {
            for (k, v) in a {
                let copied = rs.at("/metadata/annotations").and_then(|r| r.get(k)) == Some(v);
                if !copied && !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                    obj_mut(Arc::make_mut(rs), &["metadata", "annotations"]).insert(k.clone(), v.clone());
                }
            }
        }
        let old = revision_of(rs).unwrap_or(0);
        if old < new_revision {
            let rs = Arc::make_mut(rs);
            if annotation(rs, REVISION).is_some() {
                let history = match annotation(rs, REVISION_HISTORY) {
                    Some(h) if !h.is_empty() => format!("{h},{old}"),
                    _ => old.to_string(),
                };
                let history =
                    if history.len() > 2000 { history[history.len() - 2000..].to_string() } else { history };
                set_annotation(rs, REVISION_HISTORY, &history);
            }
            set_annotation(rs, REVISION, &new_revision.to_string());
        }
    }

    let recreate = str_at(&d, "/spec/strategy/type") == Some("Recreate");
    let ann = (desired, desired + surge);
    if paused || is_scaling_event(&rss, desired) {
        // sync(): scaling only, proportionally across the active ReplicaSets; no new one.
        scale(&mut rss, new_idx, &d, desired, surge, !recreate);
    } else {
        let ni = match new_idx {
            Some(i) => i,
            None => {
                let (key, rs) = new_replicaset(store, &d, dkey, new_revision, ann);
                rss.push((key, Arc::new(rs)));
                created = true;
                rss.len() - 1
            }
        };
        new_idx = Some(ni);
        if created {
            let name = rss[ni].0.name.clone();
            set_condition(
                &mut d,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                &format!("Created new replica set \"{name}\""),
                &now,
            );
        }
        if recreate {
            let old_pods: i64 = rss
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != ni)
                .map(|(_, (_, rs))| int_at(rs, "/status/replicas"))
                .sum();
            for (i, (_, rs)) in rss.iter_mut().enumerate() {
                if i != ni && int_at(rs, "/spec/replicas") != 0 {
                    set_replicas(rs, 0, ann);
                }
            }
            if old_pods == 0 && int_at(&rss[ni].1, "/spec/replicas") != desired {
                set_replicas(&mut rss[ni].1, desired, ann);
            }
        } else {
            rolling(&mut rss, ni, desired, surge, max_unavailable);
        }
    }
    if let Some(ni) = new_idx
        && let Some(rev) = annotation(&rss[ni].1, REVISION).map(String::from)
    {
        set_annotation(&mut d, REVISION, &rev);
    }

    // Status.
    let sum =
        |ptr: &str, rss: &[(Key, Arc<Value>)]| -> i64 { rss.iter().map(|(_, rs)| int_at(rs, ptr)).sum() };
    let total_spec = sum("/spec/replicas", &rss);
    let replicas = sum("/status/replicas", &rss);
    let ready = sum("/status/readyReplicas", &rss);
    let available = sum("/status/availableReplicas", &rss);
    let updated = new_idx.map(|i| int_at(&rss[i].1, "/status/replicas")).unwrap_or(0);
    let unavailable = (total_spec - available).max(0);
    let before_status = d.get("status").cloned();
    {
        let st = obj_mut(&mut d, &["status"]);
        for (k, v) in [
            ("replicas", replicas),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("unavailableReplicas", unavailable),
        ] {
            if v > 0 {
                st.insert(k.into(), json!(v));
            } else {
                st.remove(k);
            }
        }
    }
    let generation = int_at(&d, "/metadata/generation");
    obj_mut(&mut d, &["status"]).insert("observedGeneration".into(), json!(generation));
    if available >= desired - max_unavailable {
        set_condition(
            &mut d,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &now,
        );
    } else {
        set_condition(
            &mut d,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &now,
        );
    }
    let complete = updated == desired && replicas == desired && available == desired;
    if !paused
        && !created
        && let Some(ni) = new_idx
    {
        let name = rss[ni].0.name.clone();
        let reason = condition_reason(&d, "Progressing");
        if complete {
            set_condition(
                &mut d,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{name}\" has successfully progressed."),
                &now,
            );
        } else if progress::progressed(before_status.as_ref(), d.get("status")) || reason.is_none() {
            progress::mark_progress(&mut d, &name, &now);
        } else if progress::timed_out(&d, store.now()) {
            set_condition(
                &mut d,
                "Progressing",
                "False",
                progress::DEADLINE_EXCEEDED,
                &progress::exceeded_message(&name),
                &now,
            );
        }
    }
    // A rollout still in progress is looked at again when its deadline passes.
    match progress::due(&d).filter(|_| !paused && !progress::complete(&d)) {
        Some(at) => store.deadlines.insert(dkey.clone(), at),
        None => store.deadlines.remove(dkey),
    };

    // History cleanup, when complete or paused.
    let mut delete = Vec::new();
    if complete || paused {
        let limit = d.at("/spec/revisionHistoryLimit").and_then(Value::as_i64).unwrap_or(10);
        let mut old: Vec<usize> = (0..rss.len()).filter(|&i| Some(i) != new_idx).collect();
        old.sort_by_key(|&i| revision_of(&rss[i].1).unwrap_or(0));
        let diff = old.len() as i64 - limit;
        for &i in old.iter().take(diff.max(0) as usize) {
            let rs = &rss[i].1;
            if int_at(rs, "/spec/replicas") == 0 && int_at(rs, "/status/replicas") == 0 {
                delete.push(rss[i].0.clone());
            }
        }
    }

    for (key, rs) in rss {
        if !delete.contains(&key) {
            let before = store.objects.get(&key).map(|old| int_at(old, "/spec/replicas")).unwrap_or(0);
            let after = int_at(&rs, "/spec/replicas");
            if before != after {
                let way = if after > before { "up" } else { "down" };
                let message = format!("Scaled {way} replica set {} from {before} to {after}", key.name);
                store.record_event(&dkey.ctx, &d, "Normal", "ScalingReplicaSet", &message);
            }
            store.put(&key, rs);
        }
    }
    for key in delete {
        store.delete(&key);
    }
    store.put(dkey, d);
}

/// One rolling-update step: scale the new ReplicaSet up within `maxSurge`, then the old ones
/// down within `maxUnavailable` (rolling.go: reconcileNewReplicaSet, reconcileOldReplicaSets).
fn rolling(rss: &mut [(Key, Arc<Value>)], ni: usize, desired: i64, surge: i64, max_unavailable: i64) {
    let spec = |rs: &Value| int_at(rs, "/spec/replicas");
    let avail = |rs: &Value| int_at(rs, "/status/availableReplicas");
    let ann = (desired, desired + surge);
    // Scale up (or down, when the new one has more than wanted).
    let new_spec = spec(&rss[ni].1);
    if new_spec > desired {
        set_replicas(&mut rss[ni].1, desired, ann);
    } else if new_spec < desired {
        let all: i64 = rss.iter().map(|(_, rs)| spec(rs)).sum();
        let room = (desired + surge - all).min(desired - new_spec);
        if room > 0 {
            set_replicas(&mut rss[ni].1, new_spec + room, ann);
        }
    }
    // Scale down old ones.
    let old_pods: i64 = rss.iter().enumerate().filter(|(i, _)| *i != ni).map(|(_, (_, rs))| spec(rs)).sum();
    if old_pods == 0 {
        return;
    }
    let all: i64 = rss.iter().map(|(_, rs)| spec(rs)).sum();
    let min_available = desired - max_unavailable;
    let new_unavailable = spec(&rss[ni].1) - avail(&rss[ni].1);
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    // First the unhealthy replicas of old ReplicaSets.
    let mut cleaned = 0;
    for (i, (_, rs)) in rss.iter_mut().enumerate() {
        if i == ni || cleaned >= max_scaled_down {
            continue;
        }
        let (s, a) = (spec(rs), avail(rs));
        if s == a {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(s - a);
        set_replicas(rs, s - down, ann);
        cleaned += down;
    }
    // Then available ones, down to minAvailable.
    let available: i64 = rss.iter().map(|(_, rs)| avail(rs).min(spec(rs))).sum();
    if available <= min_available {
        return;
    }
    let total = available - min_available;
    let mut done = 0;
    for (i, (_, rs)) in rss.iter_mut().enumerate() {
        if i == ni || done >= total {
            continue;
        }
        let s = spec(rs);
        if s == 0 {
            continue;
        }
        let down = s.min(total - done);
        set_replicas(rs, s - down, ann);
        done += down;
    }
}

/// Pods start and become ready, and the controller reacts: one step of the pod lifecycle of
/// every ReplicaSet written since the last tick or still starting pods, then a controller pass
/// over every Deployment whose objects changed since its last pass. A Deployment's pass reads
/// nothing but the Deployment and its ReplicaSets, so one whose objects did not change would
/// write nothing: a fleet of thousands costs per tick only what moved. Returns whether anything
/// changed.
pub fn tick(store: &mut Store, instant: bool) -> bool {
    let rv_before = store.rv;
    store.wake_due_deadlines();
    let mut keys = std::mem::take(&mut store.dirty_replicasets);
    keys.append(&mut std::mem::take(&mut store.unsettled));
    step_pods(store, instant, keys.iter());
    for key in std::mem::take(&mut store.dirty_deployments) {
        sync_deployment(store, &key);
    }
    store.rv != rv_before
}

/// [`tick`] limited to one Deployment and its ReplicaSets (building a scenario's fleet converges
/// each Deployment alone).
pub fn tick_one(store: &mut Store, instant: bool, dkey: &Key) -> bool {
    let rv_before = store.rv;
    let uid =
        store.objects.get(dkey).and_then(|d| str_at(d, "/metadata/uid")).unwrap_or_default().to_string();
    let keys: Vec<Key> = store
        .owned_by(dkey)
        .filter(|(_, rs)| owner_uid(rs) == Some(uid.as_str()))
        .map(|(k, _)| k.clone())
        .collect();
    step_pods(store, instant, keys.iter());
    sync_deployment(store, dkey);
    store.rv != rv_before
}

/// One step of the pod lifecycle of each of `keys` (ReplicaSets): pods are created or removed
/// to match the spec, then become ready one tick at a time (at once when `instant`) unless
/// their image is broken. ReplicaSets left starting are noted in `store.unsettled`.
pub fn step_pods<'a>(store: &mut Store, instant: bool, keys: impl Iterator<Item = &'a Key>) {
    for key in keys {
        let Some(rs) = store.objects.get(key) else {
            continue;
        };
        // Settled ReplicaSets (the whole fleet, most of the time) are skipped without a copy.
        if settled(rs) {
            continue;
        }
        let mut rs = Value::clone(rs);
        let spec = int_at(&rs, "/spec/replicas");
        let have = int_at(&rs, "/status/replicas");
        let ready = int_at(&rs, "/status/readyReplicas");
        let generation = int_at(&rs, "/metadata/generation");
        let broken = rs_broken(store, &rs, &key.ctx);
        let mut new_ready = ready;
        let mut new_have = have;
        if have != spec {
            new_have = spec;
            new_ready = ready.min(spec);
            store.pod_age.insert(key.clone(), 0);
        } else if ready < have && !broken {
            let age = store.pod_age.entry(key.clone()).or_insert(0);
            *age += 1;
            if instant || *age >= store.rollout_steps {
                new_ready = have;
            }
        }
        let st = obj_mut(&mut rs, &["status"]);
        st.insert("observedGeneration".into(), json!(generation));
        for (k, v) in [
            ("replicas", new_have),
            ("fullyLabeledReplicas", new_have),
            ("readyReplicas", new_ready),
            ("availableReplicas", new_ready),
        ] {
            if v > 0 || k == "replicas" {
                st.insert(k.into(), json!(v));
            } else {
                st.remove(k);
            }
        }
        if !settled(&rs) {
            store.unsettled.insert(key.clone());
        }
        store.put(key, rs);
    }
}

/// Whether a ReplicaSet's status already says what a tick would write.
fn settled(rs: &Value) -> bool {
    let spec = int_at(rs, "/spec/replicas");
    let have = int_at(rs, "/status/replicas");
    let ready = int_at(rs, "/status/readyReplicas");
    rs.at("/status/replicas").is_some()
        && have == spec
        && ready == have
        && int_at(rs, "/status/observedGeneration") == int_at(rs, "/metadata/generation")
        && int_at(rs, "/status/availableReplicas") == ready
        && int_at(rs, "/status/fullyLabeledReplicas") == have
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_comparison_agrees_with_normalizing() {
        let cases = [
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "x"}]}}),
            json!({"metadata": {"labels": {"app": "a", "pod-template-hash": "h"}}, "spec": {"containers": [{"name": "a", "image": "x"}]}}),
            json!({"metadata": {"labels": {"app": "a"}, "annotations": {}}, "spec": {"containers": [{"name": "a", "image": "x", "env": []}]}}),
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "y"}]}}),
            json!({"metadata": {"labels": {"pod-template-hash": "h"}}, "spec": {"containers": [{"name": "a", "image": "x"}]}}),
            json!({"metadata": {}, "spec": {"containers": [{"name": "a", "image": "x"}]}}),
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "x"}, {}]}}),
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "x"}, null]}}),
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [], "nodeSelector": {"a": null}}}),
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {}}),
            json!({"spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80.0}]}]}}),
            json!(null),
            json!({}),
        ];
        for a in &cases {
            for b in &cases {
                assert_eq!(equal_ignore_hash(a, b), template_key(a) == template_key(b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn hash_uses_the_kubernetes_alphabet_and_ignores_the_hash_label() {
        let a = json!({"metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
            "spec": {"containers": [{"name": "web", "image": "a", "resources": {}}]}});
        let b = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "x"}},
            "spec": {"containers": [{"name": "web", "image": "a"}]}});
        assert!(equal_ignore_hash(&a, &b));
        assert_eq!(pod_template_hash(&a), pod_template_hash(&b));
        assert_eq!(pod_template_hash(&a), pod_template_hash(&b));
        assert!(pod_template_hash(&a).chars().all(|c| "456789bcdf".contains(c)));
    }

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let d = json!({"spec": {"replicas": 3}});
        assert_eq!(surge_and_unavailable(&d), (1, 0));
        let d = json!({"spec": {"replicas": 10, "strategy": {"rollingUpdate": {"maxSurge": 2, "maxUnavailable": "50%"}}}});
        assert_eq!(surge_and_unavailable(&d), (2, 5));
    }
}
