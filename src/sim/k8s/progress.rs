//! The Deployment controller's progress deadline (`spec.progressDeadlineSeconds`), as the real
//! controller's `syncRolloutStatus` keeps it: every bit of progress refreshes the `Progressing`
//! condition's `lastUpdateTime`; a rollout that makes none for the deadline gets
//! `Progressing=False, reason=ProgressDeadlineExceeded`.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{Value, json};

use super::store::{At, int_at, obj_mut, str_at};

/// The reason of a rollout that passed its progress deadline.
pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// `util.DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones,
/// than `before` (the status the pass started from) had.
pub fn progressed(before: Option<&Value>, after: Option<&Value>) -> bool {
    let get = |s: Option<&Value>, k: &str| s.and_then(|s| s.get(k)).and_then(Value::as_i64).unwrap_or(0);
    let old_old = get(before, "replicas") - get(before, "updatedReplicas");
    let new_old = get(after, "replicas") - get(after, "updatedReplicas");
    get(after, "updatedReplicas") > get(before, "updatedReplicas")
        || new_old < old_old
        || get(after, "readyReplicas") > get(before, "readyReplicas")
        || get(after, "availableReplicas") > get(before, "availableReplicas")
}

/// The deadline in seconds, when the Deployment has one (`util.HasProgressDeadline`).
pub fn deadline_seconds(d: &Value) -> Option<i64> {
    d.at("/spec/progressDeadlineSeconds").and_then(Value::as_i64).filter(|s| *s != i64::from(i32::MAX))
}

fn progressing(d: &Value) -> Option<&Value> {
    d.at("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Progressing"))
}

/// When the rollout runs out of time: the `Progressing` condition's `lastUpdateTime` plus the
/// deadline; None without a deadline or a `Progressing=True` condition.
pub fn due(d: &Value) -> Option<DateTime<Utc>> {
    let secs = deadline_seconds(d)?;
    let cond = progressing(d)?;
    if cond.get("status").and_then(Value::as_str) != Some("True") {
        return None;
    }
    let at = DateTime::parse_from_rfc3339(str_at(cond, "/lastUpdateTime")?).ok()?.with_timezone(&Utc);
    Some(at + ChronoDuration::seconds(secs.clamp(0, i64::from(i32::MAX))))
}

/// `util.DeploymentTimedOut`: the condition already says so, or its last progress is older
/// than the deadline.
pub fn timed_out(d: &Value, now: DateTime<Utc>) -> bool {
    if deadline_seconds(d).is_none() {
        return false;
    }
    if progressing(d).and_then(|c| c.get("reason")).and_then(Value::as_str) == Some(DEADLINE_EXCEEDED) {
        return true;
    }
    due(d).is_some_and(|t| t < now)
}

/// Writes `Progressing=True, reason=ReplicaSetUpdated` with `lastUpdateTime` now, keeping the
/// transition time of a condition that already was true (the real controller's special case).
pub fn mark_progress(d: &mut Value, rs_name: &str, now: &str) {
    let fresh = json!({"type": "Progressing", "status": "True", "lastUpdateTime": now,
        "lastTransitionTime": now, "reason": "ReplicaSetUpdated",
        "message": format!("ReplicaSet \"{rs_name}\" is progressing.")});
    let status = obj_mut(d, &["status"]);
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("Progressing")) {
        Some(c) => {
            let transition = (c.get("status").and_then(Value::as_str) == Some("True"))
                .then(|| c.get("lastTransitionTime").cloned())
                .flatten();
            *c = fresh;
            if let Some(t) = transition {
                c["lastTransitionTime"] = t;
            }
        }
        None => list.push(fresh),
    }
}

/// The message of an exceeded deadline.
pub fn exceeded_message(rs_name: &str) -> String {
    format!("ReplicaSet \"{rs_name}\" has timed out progressing.")
}

/// Whether a Deployment's rollout is complete (`util.DeploymentComplete`).
pub fn complete(d: &Value) -> bool {
    let want = int_at(d, "/spec/replicas");
    int_at(d, "/status/updatedReplicas") == want
        && int_at(d, "/status/replicas") == want
        && int_at(d, "/status/availableReplicas") == want
        && int_at(d, "/status/observedGeneration") >= int_at(d, "/metadata/generation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_more_new_or_fewer_old_replicas() {
        let a = json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3});
        assert!(!progressed(Some(&a), Some(&a)));
        let fewer_old =
            json!({"replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3});
        assert!(progressed(Some(&a), Some(&fewer_old)));
        let less_ready =
            json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2});
        assert!(!progressed(Some(&a), Some(&less_ready)));
        assert!(progressed(None, Some(&a)));
    }

    #[test]
    fn a_deadline_passes_after_the_last_progress() {
        let d = json!({"spec": {"progressDeadlineSeconds": 600}, "status": {"conditions": [
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
             "lastUpdateTime": "2026-01-01T00:00:00Z"}]}});
        let at = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).ok();
        assert_eq!(due(&d), at("2026-01-01T00:10:00Z"));
        assert!(!timed_out(&d, at("2026-01-01T00:10:00Z").unwrap_or_default()));
        assert!(timed_out(&d, at("2026-01-01T00:10:01Z").unwrap_or_default()));
        let mut none = d.clone();
        none["spec"]["progressDeadlineSeconds"] = json!(i32::MAX);
        assert!(!timed_out(&none, at("2027-01-01T00:00:00Z").unwrap_or_default()));
    }
}
