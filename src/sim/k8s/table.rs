//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for, with the
//! columns a real API server prints for Deployments and ReplicaSets.

use std::borrow::Borrow;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::controller::template_images;
use super::select::selector_string;
use super::store::{At, Kind, int_at, str_at};

/// Whether the `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
}

/// Go's `duration.HumanDuration`, as kubectl's AGE column shows it.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{d}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(obj: &Value, now: DateTime<Utc>) -> String {
    str_at(obj, "/metadata/creationTimestamp")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_duration((now - t.with_timezone(&Utc)).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

fn column(name: &str, kind: &str, priority: i64, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

fn containers(obj: &Value) -> (String, String) {
    let names: Vec<&str> = obj
        .at("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let images = obj.at("/spec/template").map(template_images).unwrap_or_default();
    (names.join(","), images.join(","))
}

/// Renders one object's cells.
type RowFn = Box<dyn Fn(&Value) -> Vec<Value>>;

/// A Table of `objects` of `kind`, or None for kinds printed by the client.
pub fn table<T: Borrow<Value>>(
    kind: Kind,
    objects: &[T],
    resource_version: &str,
    now: DateTime<Utc>,
) -> Option<Value> {
    let name_col = column("Name", "string", 0, "Name must be unique within a namespace.");
    let (columns, cells): (Vec<Value>, RowFn) = match kind {
        Kind::Deployment => (
            vec![
                name_col,
                column("Ready", "string", 0, "Number of the pod with ready state"),
                column(
                    "Up-to-date",
                    "string",
                    0,
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                column(
                    "Available",
                    "string",
                    0,
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                column(
                    "Age",
                    "string",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
                column("Containers", "string", 1, "Names of each container in the template."),
                column("Images", "string", 1, "Images referenced by each container in the template."),
                column(
                    "Selector",
                    "string",
                    1,
                    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                ),
            ],
            Box::new(move |d: &Value| {
                let (names, images) = containers(d);
                vec![
                    json!(str_at(d, "/metadata/name").unwrap_or("")),
                    json!(format!("{}/{}", int_at(d, "/status/readyReplicas"), int_at(d, "/spec/replicas"))),
                    json!(int_at(d, "/status/updatedReplicas")),
                    json!(int_at(d, "/status/availableReplicas")),
                    json!(age(d, now)),
                    json!(names),
                    json!(images),
                    json!(d.at("/spec/selector").map(selector_string).unwrap_or_default()),
                ]
            }),
        ),
        Kind::ReplicaSet => (
            vec![
                name_col,
                column("Desired", "integer", 0, "Replicas is the number of desired replicas."),
                column("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
                column("Ready", "integer", 0, "The number of ready replicas for this replica set."),
                column(
                    "Age",
                    "string",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
                column("Containers", "string", 1, "Names of each container in the template."),
                column("Images", "string", 1, "Images referenced by each container in the template."),
                column(
                    "Selector",
                    "string",
                    1,
                    "Selector is a label query over pods that should match the replica count.",
                ),
            ],
            Box::new(move |rs: &Value| {
                let (names, images) = containers(rs);
                vec![
                    json!(str_at(rs, "/metadata/name").unwrap_or("")),
                    json!(int_at(rs, "/spec/replicas")),
                    json!(int_at(rs, "/status/replicas")),
                    json!(int_at(rs, "/status/readyReplicas")),
                    json!(age(rs, now)),
                    json!(names),
                    json!(images),
                    json!(rs.at("/spec/selector").map(selector_string).unwrap_or_default()),
                ]
            }),
        ),
        Kind::Lease => return None,
        Kind::Gitops(super::gitops::GitopsKind::Application) => (
            vec![
                name_col,
                column("Sync Status", "string", 0, ""),
                column("Health Status", "string", 0, ""),
                column("Revision", "string", 10, ""),
                column("Project", "string", 10, ""),
            ],
            Box::new(move |a: &Value| {
                let s = |p: &str| json!(str_at(a, p).unwrap_or(""));
                vec![
                    s("/metadata/name"),
                    s("/status/sync/status"),
                    s("/status/health/status"),
                    s("/status/sync/revision"),
                    s("/spec/project"),
                ]
            }),
        ),
        Kind::Gitops(_) => (
            vec![
                name_col,
                column("Age", "date", 0, ""),
                column("Ready", "string", 0, ""),
                column("Status", "string", 0, ""),
            ],
            Box::new(move |f: &Value| {
                let ready = f.at("/status/conditions").and_then(Value::as_array).and_then(|cs| {
                    cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                });
                let field =
                    |k: &str| json!(ready.and_then(|c| c.get(k)).and_then(Value::as_str).unwrap_or(""));
                vec![
                    json!(str_at(f, "/metadata/name").unwrap_or("")),
                    json!(age(f, now)),
                    field("status"),
                    field("message"),
                ]
            }),
        ),
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let o = o.borrow();
            json!({"cells": cells(o), "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))}})
        })
        .collect();
    Some(json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version}, "columnDefinitions": columns, "rows": rows}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(35 * 60), "35m");
        assert_eq!(human_duration(5 * 3600 + 60), "5h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
    }
}
