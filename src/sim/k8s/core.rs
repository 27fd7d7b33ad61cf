//! The core (`v1`) API of the simulated clusters: Pods derived from the ReplicaSets (names with
//! the `pod-template-hash`, phase, Ready condition, container states with `CrashLoopBackOff` or
//! `ImagePullBackOff` for broken images, restart counts, a log line per container),
//! Namespaces (created and deleted), Services, ConfigMaps and Secrets (stored as given),
//! Events, the server-side tables `kubectl get` prints for them, and the
//! `SelfSubjectAccessReview` behind `kubectl auth can-i`.

// Handlers short-circuit with the finished error answer; boxing it would buy nothing here.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{Value, json};

use super::K8sWorld;
use super::api::{json_response, status_error};
use super::controller::pod_template_hash;
use super::select::LabelSelector;
use super::store::{At, Key, Kind, Store, controller_owner, int_at, str_at};
use super::table::{human_duration, wants_table};

/// `GET /`: the paths the API server serves, as a real one lists them.
pub fn root_paths() -> Value {
    json!({"paths": [
        "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1",
        "/apis/authorization.k8s.io", "/apis/authorization.k8s.io/v1",
        "/apis/coordination.k8s.io", "/apis/coordination.k8s.io/v1",
        "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version",
    ]})
}

/// The namespaces every cluster starts with.
const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-node-lease", "kube-public", "kube-system"];

/// The node every simulated pod runs on.
const NODE: &str = "sim-node-1";

/// How a broken image fails its pods (`broken_reason` of a scenario Deployment).
pub const CRASH_LOOP: &str = "CrashLoopBackOff";
/// The other way a broken image fails: its pull fails.
pub const IMAGE_PULL: &str = "ImagePullBackOff";

/// The part of a request the core handlers need.
pub struct CoreReq<'a> {
    /// Simulated context.
    pub ctx: &'a str,
    /// HTTP method.
    pub method: &'a Method,
    /// A query parameter.
    pub query: &'a dyn Fn(&str) -> Option<String>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request body.
    pub body: &'a [u8],
}

impl CoreReq<'_> {
    fn q(&self, k: &str) -> Option<String> {
        (self.query)(k)
    }
    fn accept(&self) -> &str {
        self.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    fn dry_run(&self) -> bool {
        self.q("dryRun").is_some_and(|v| v == "All")
    }
}

/// Stored core objects: (context, resource, namespace, name).
pub type CoreKey = (String, &'static str, String, String);

/// The stored core resources and their kinds.
const STORED: &[(&str, &str)] = &[
    ("services", "Service"),
    ("configmaps", "ConfigMap"),
    ("secrets", "Secret"),
    ("namespaces", "Namespace"),
];

fn stored_kind(resource: &str) -> Option<(&'static str, &'static str)> {
    STORED.iter().find(|(r, _)| *r == resource).copied()
}

/// A lowercase RFC 1123 label (namespace names), as the API server checks it.
pub fn rfc1123_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        return Ok(());
    }
    Err(format!(
        "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    ))
}

/// A lowercase RFC 1123 subdomain (names of most objects), as the API server checks it.
pub fn rfc1123_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        return Ok(());
    }
    Err(format!(
        "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ))
}

/// The namespaces of a context: the usual ones, every namespace holding an object, and the
/// ones created through the API.
pub fn namespaces(store: &Store, ctx: &str) -> Vec<String> {
    let mut out: Vec<String> = DEFAULT_NAMESPACES.iter().map(|s| s.to_string()).collect();
    for k in store.objects.keys().filter(|k| k.ctx == ctx) {
        if !out.contains(&k.ns) {
            out.push(k.ns.clone());
        }
    }
    for (c, res, _, name) in store.core.keys() {
        if c == ctx && *res == "namespaces" && !out.contains(name) {
            out.push(name.clone());
        }
    }
    out.sort();
    out
}

/// Whether a namespace exists in a context.
pub fn namespace_exists(store: &Store, ctx: &str, ns: &str) -> bool {
    namespaces(store, ctx).iter().any(|n| n == ns)
}

/// The 404 of a missing namespace.
pub fn namespace_not_found(ns: &str) -> Response {
    status_error(
        404,
        "NotFound",
        &format!("namespaces \"{ns}\" not found"),
        Some(json!({"name": ns, "kind": "namespaces"})),
    )
}

fn namespace_object(store: &Store, ctx: &str, name: &str) -> Value {
    if let Some(ns) = store.core.get(&(ctx.to_string(), "namespaces", String::new(), name.to_string())) {
        return Value::clone(ns);
    }
    json!({"kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": name, "uid": format!("00000000-0000-4000-8000-{:012x}", fnv(name) & 0xffff_ffff_ffff),
            "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn fnv(text: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Five characters of the alphabet Kubernetes uses for generated name suffixes.
fn suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = fnv(seed);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(h % 27) as usize] as char;
            h /= 27;
            c
        })
        .collect()
}

fn age_secs(ts: Option<&str>, now: DateTime<Utc>) -> i64 {
    ts.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (now - t.with_timezone(&Utc)).num_seconds().max(0))
        .unwrap_or(0)
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The broken images of the Deployment owning `rs`, and how they fail.
fn broken_of<'a>(store: &'a Store, rs: &Value, ctx: &str) -> (Vec<&'a str>, &'a str) {
    let Some(owner) = controller_owner(rs) else {
        return (Vec::new(), CRASH_LOOP);
    };
    let ns = str_at(rs, "/metadata/namespace").unwrap_or("default");
    let key = Key::new(ctx, Kind::Deployment, ns, owner);
    let images = store.broken.get(&key).map(|b| b.iter().map(String::as_str).collect()).unwrap_or_default();
    let reason = store.broken_reason.get(&key).map(String::as_str).unwrap_or(CRASH_LOOP);
    (images, reason)
}

/// The Pods of one ReplicaSet: `status.replicas` of them, the first `status.readyReplicas`
/// ready; pods of a broken image crash-loop (or fail their pull), the others start.
pub fn pods_of(store: &Store, ctx: &str, rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let rs_name = str_at(rs, "/metadata/name").unwrap_or("");
    let ns = str_at(rs, "/metadata/namespace").unwrap_or("default");
    let rs_uid = str_at(rs, "/metadata/uid").unwrap_or("");
    let count = int_at(rs, "/status/replicas").max(0);
    let ready = int_at(rs, "/status/readyReplicas");
    let (broken, broken_reason) = broken_of(store, rs, ctx);
    let template = rs.at("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template
        .at("/metadata/labels/pod-template-hash")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| pod_template_hash(&template));
    let created = str_at(rs, "/metadata/creationTimestamp").unwrap_or("").to_string();
    let started = DateTime::parse_from_rfc3339(&created).map(|t| t.with_timezone(&Utc)).unwrap_or(now);
    let age = age_secs(Some(&created), now);
    let containers = template.at("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    (0..count)
        .map(|i| {
            let name = format!("{rs_name}-{}", suffix(&format!("{rs_uid}/{i}")));
            let is_ready = i < ready;
            let mut statuses = Vec::new();
            let mut all_ready = true;
            let mut pending = false;
            for c in &containers {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let image_id = format!("{image}@sha256:{:016x}{:016x}", fnv(image), fnv(&format!("{image}#")));
                let mut st = json!({"name": cname, "image": image, "imageID": image_id,
                    "containerID": format!("containerd://{:016x}{:016x}", fnv(&name), fnv(cname)),
                    "restartCount": 0, "started": true, "ready": true,
                    "state": {"running": {"startedAt": ts(started)}}});
                if broken.contains(&image) {
                    all_ready = false;
                    st["ready"] = json!(false);
                    st["started"] = json!(false);
                    if broken_reason == IMAGE_PULL {
                        pending = true;
                        st["imageID"] = json!("");
                        st.as_object_mut().map(|m| m.remove("containerID"));
                        st["state"] = json!({"waiting": {"reason": IMAGE_PULL,
                            "message": format!("Back-off pulling image \"{image}\"")}});
                    } else {
                        // A restart every five minutes once the back-off is at its cap.
                        let restarts = 1 + age / 300;
                        st["restartCount"] = json!(restarts);
                        st["state"] = json!({"waiting": {"reason": CRASH_LOOP,
                            "message": format!("back-off 5m0s restarting failed container={cname} pod={name}_{ns}({rs_uid})")}});
                        let finished = now - ChronoDuration::seconds(age.min(40));
                        st["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                            "startedAt": ts(finished - ChronoDuration::seconds(1)), "finishedAt": ts(finished),
                            "containerID": st["containerID"].clone()}});
                    }
                } else if !is_ready {
                    all_ready = false;
                    pending = true;
                    st["ready"] = json!(false);
                    st["started"] = json!(false);
                    st["imageID"] = json!("");
                    st.as_object_mut().map(|m| m.remove("containerID"));
                    st["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
                }
                statuses.push(st);
            }
            let ready_now = all_ready && is_ready;
            let flag = |b: bool| if b { "True" } else { "False" };
            let mut conditions = vec![
                json!({"type": "PodReadyToStartContainers", "status": flag(!pending || broken_reason == IMAGE_PULL), "lastTransitionTime": created}),
                json!({"type": "Initialized", "status": "True", "lastTransitionTime": created}),
                json!({"type": "Ready", "status": flag(ready_now), "lastTransitionTime": created}),
                json!({"type": "ContainersReady", "status": flag(ready_now), "lastTransitionTime": created}),
                json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": created}),
            ];
            if !ready_now {
                let unready: Vec<&str> = statuses
                    .iter()
                    .filter(|s| s["ready"] == false)
                    .filter_map(|s| s["name"].as_str())
                    .collect();
                let message = format!("containers with unready status: [{}]", unready.join(" "));
                for c in conditions.iter_mut().filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady") {
                    c["reason"] = json!("ContainersNotReady");
                    c["message"] = json!(message);
                }
            }
            let mut labels = template.at("/metadata/labels").cloned().unwrap_or(json!({}));
            labels["pod-template-hash"] = json!(hash);
            let mut spec = template.at("/spec").cloned().unwrap_or(json!({}));
            spec["nodeName"] = json!(NODE);
            spec["serviceAccountName"] = json!("default");
            spec["serviceAccount"] = json!("default");
            spec["enableServiceLinks"] = json!(true);
            spec["priority"] = json!(0);
            spec["preemptionPolicy"] = json!("PreemptLowerPriority");
            let ip = format!("10.244.0.{}", 2 + fnv(&name) % 250);
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "generateName": format!("{rs_name}-"), "namespace": ns,
                    "uid": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", fnv(&name) as u32, fnv(&name) >> 48, fnv(rs_uid) & 0xfff, i & 0xfff, fnv(&format!("{name}/")) & 0xffff_ffff_ffff),
                    "resourceVersion": rs.at("/metadata/resourceVersion").cloned().unwrap_or(json!("1")),
                    "creationTimestamp": created, "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                        "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]},
                "spec": spec,
                "status": {"phase": if pending { "Pending" } else { "Running" }, "conditions": conditions,
                    "hostIP": "10.224.0.4", "hostIPs": [{"ip": "10.224.0.4"}], "podIP": ip, "podIPs": [{"ip": ip}],
                    "startTime": created, "qosClass": "BestEffort", "containerStatuses": statuses}})
        })
        .collect()
}

/// Every Pod of a context (and namespace), in ReplicaSet order.
pub fn pods(store: &Store, ctx: &str, ns: Option<&str>, now: DateTime<Utc>) -> Vec<Value> {
    store.iter_of(ctx, Kind::ReplicaSet, ns).flat_map(|(_, rs)| pods_of(store, ctx, rs, now)).collect()
}

/// Events about Pods, as the kubelet and scheduler would have recorded them.
fn pod_events(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = str_at(pod, "/metadata/name").unwrap_or("");
    let ns = str_at(pod, "/metadata/namespace").unwrap_or("default");
    let created = str_at(pod, "/metadata/creationTimestamp").unwrap_or("").to_string();
    let mut out = Vec::new();
    let mut ev = |kind: &str, reason: &str, message: String, source: &str, count: i64, last: String| {
        let involved = json!({"kind": "Pod", "namespace": ns, "name": name,
            "uid": pod.at("/metadata/uid"), "apiVersion": "v1",
            "resourceVersion": pod.at("/metadata/resourceVersion")});
        out.push(json!({"kind": "Event", "apiVersion": "v1",
            "metadata": {"name": format!("{name}.{:016x}", fnv(&format!("{name}/{reason}"))), "namespace": ns,
                "uid": format!("00000000-0000-4000-8000-{:012x}", fnv(&format!("{name}/{reason}/uid")) & 0xffff_ffff_ffff),
                "resourceVersion": "1", "creationTimestamp": created},
            "involvedObject": involved, "reason": reason, "message": message,
            "source": {"component": source, "host": if source == "kubelet" { NODE } else { "" }},
            "firstTimestamp": created, "lastTimestamp": last, "count": count, "type": kind,
            "eventTime": null, "reportingComponent": source, "reportingInstance": if source == "kubelet" { NODE } else { "" }}));
    };
    ev(
        "Normal",
        "Scheduled",
        format!("Successfully assigned {ns}/{name} to {NODE}"),
        "default-scheduler",
        1,
        created.clone(),
    );
    for c in pod.at("/status/containerStatuses").and_then(Value::as_array).into_iter().flatten() {
        let cname = c["name"].as_str().unwrap_or("");
        let image = c["image"].as_str().unwrap_or("");
        match c.at("/state/waiting/reason").and_then(Value::as_str) {
            Some(IMAGE_PULL) => {
                ev("Normal", "Pulling", format!("Pulling image \"{image}\""), "kubelet", 4, ts(now));
                ev(
                    "Warning",
                    "Failed",
                    format!(
                        "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
                    ),
                    "kubelet",
                    4,
                    ts(now),
                );
                ev("Warning", "Failed", "Error: ErrImagePull".into(), "kubelet", 4, ts(now));
                ev("Normal", "BackOff", format!("Back-off pulling image \"{image}\""), "kubelet", 6, ts(now));
                ev("Warning", "Failed", "Error: ImagePullBackOff".into(), "kubelet", 6, ts(now));
            }
            Some(CRASH_LOOP) => {
                let n = int_at(c, "/restartCount") + 1;
                ev(
                    "Normal",
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                    "kubelet",
                    n,
                    ts(now),
                );
                ev("Normal", "Created", format!("Created container: {cname}"), "kubelet", n, ts(now));
                ev("Normal", "Started", format!("Started container {cname}"), "kubelet", n, ts(now));
                ev(
                    "Warning",
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {cname} in pod {name}_{ns}({})",
                        pod.at("/metadata/ownerReferences/0/uid").and_then(Value::as_str).unwrap_or("")
                    ),
                    "kubelet",
                    n * 4,
                    ts(now),
                );
            }
            Some(_) => {}
            None => {
                ev(
                    "Normal",
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                    "kubelet",
                    1,
                    created.clone(),
                );
                ev("Normal", "Created", format!("Created container: {cname}"), "kubelet", 1, created.clone());
                ev("Normal", "Started", format!("Started container {cname}"), "kubelet", 1, created.clone());
            }
        }
    }
    out
}

fn column(name: &str, kind: &str, priority: i64, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

const AGE: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";

/// The server-side Table of a core resource, with the columns a real API server prints.
fn table(resource: &str, items: &[Value], rv: &str, now: DateTime<Utc>) -> Value {
    let name = column("Name", "string", 0, "Name must be unique within a namespace.");
    let age = move |o: &Value| json!(human_duration(age_secs(str_at(o, "/metadata/creationTimestamp"), now)));
    type Cells<'a> = Box<dyn Fn(&Value) -> Vec<Value> + 'a>;
    let (columns, cells): (Vec<Value>, Cells<'_>) = match resource {
        "pods" => (
            vec![
                name,
                column(
                    "Ready",
                    "string",
                    0,
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                column("Status", "string", 0, "The aggregate status of the containers in this pod."),
                column(
                    "Restarts",
                    "string",
                    0,
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
                column("Age", "string", 0, AGE),
                column(
                    "IP",
                    "string",
                    1,
                    "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                ),
                column(
                    "Node",
                    "string",
                    1,
                    "NodeName is a request to schedule this pod onto a specific node.",
                ),
                column(
                    "Nominated Node",
                    "string",
                    1,
                    "nominatedNodeName is set only when this pod preempts other pods on the node.",
                ),
                column(
                    "Readiness Gates",
                    "string",
                    1,
                    "If specified, all readiness gates will be evaluated for pod readiness.",
                ),
            ],
            Box::new(move |p: &Value| {
                let cs =
                    p.at("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
                let ready = cs.iter().filter(|c| c["ready"] == true).count();
                let status = cs
                    .iter()
                    .find_map(|c| c.at("/state/waiting/reason").and_then(Value::as_str).map(String::from))
                    .unwrap_or_else(|| str_at(p, "/status/phase").unwrap_or("Unknown").to_string());
                let restarts: i64 = cs.iter().map(|c| int_at(c, "/restartCount")).sum();
                let last = cs
                    .iter()
                    .filter_map(|c| c.at("/lastState/terminated/finishedAt").and_then(Value::as_str))
                    .max()
                    .map(|t| format!(" ({} ago)", human_duration(age_secs(Some(t), now))))
                    .unwrap_or_default();
                vec![
                    json!(str_at(p, "/metadata/name").unwrap_or("")),
                    json!(format!("{ready}/{}", cs.len())),
                    json!(status),
                    json!(format!("{restarts}{last}")),
                    age(p),
                    json!(str_at(p, "/status/podIP").unwrap_or("<none>")),
                    json!(str_at(p, "/spec/nodeName").unwrap_or("<none>")),
                    json!("<none>"),
                    json!("<none>"),
                ]
            }),
        ),
        "events" => (
            vec![
                column("Last Seen", "string", 0, "Time when this Event was last seen"),
                column(
                    "Type",
                    "string",
                    0,
                    "Type of this event (Normal, Warning), new types could be added in the future.",
                ),
                column(
                    "Reason",
                    "string",
                    0,
                    "This should be a short, machine understandable string that gives the reason for this event being generated.",
                ),
                column("Object", "string", 0, "The object that this event is about."),
                column("Subobject", "string", 1, "The field of the object that this event is about."),
                column(
                    "Source",
                    "string",
                    1,
                    "The component reporting this event. Should be a short machine understandable string.",
                ),
                column(
                    "Message",
                    "string",
                    0,
                    "A human-readable description of the status of this operation.",
                ),
                column(
                    "First Seen",
                    "string",
                    1,
                    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
                ),
                column("Count", "string", 1, "The number of times this event has occurred."),
                column("Name", "string", 1, "Name must be unique within a namespace."),
            ],
            Box::new(move |e: &Value| {
                let seen = |p: &str| json!(human_duration(age_secs(str_at(e, p), now)));
                let obj = format!(
                    "{}/{}",
                    str_at(e, "/involvedObject/kind").unwrap_or("").to_lowercase(),
                    str_at(e, "/involvedObject/name").unwrap_or("")
                );
                let source = match (str_at(e, "/source/component"), str_at(e, "/source/host")) {
                    (Some(c), Some(h)) if !h.is_empty() => format!("{c}, {h}"),
                    (Some(c), _) => c.to_string(),
                    _ => String::new(),
                };
                vec![
                    seen("/lastTimestamp"),
                    json!(str_at(e, "/type").unwrap_or("")),
                    json!(str_at(e, "/reason").unwrap_or("")),
                    json!(obj),
                    json!(str_at(e, "/involvedObject/fieldPath").unwrap_or("")),
                    json!(source),
                    json!(str_at(e, "/message").unwrap_or("")),
                    seen("/firstTimestamp"),
                    json!(int_at(e, "/count").to_string()),
                    json!(str_at(e, "/metadata/name").unwrap_or("")),
                ]
            }),
        ),
        "namespaces" => (
            vec![
                name,
                column("Status", "string", 0, "The status of the namespace"),
                column("Age", "string", 0, AGE),
            ],
            Box::new(move |n: &Value| {
                vec![
                    json!(str_at(n, "/metadata/name").unwrap_or("")),
                    json!(str_at(n, "/status/phase").unwrap_or("Active")),
                    age(n),
                ]
            }),
        ),
        "services" => (
            vec![
                name,
                column("Type", "string", 0, "The type of the service."),
                column("Cluster-IP", "string", 0, "The cluster IP of the service."),
                column("External-IP", "string", 0, "The external IP of the service."),
                column("Port(s)", "string", 0, "The ports of the service."),
                column("Age", "string", 0, AGE),
                column("Selector", "string", 1, "The selector of the service."),
            ],
            Box::new(move |s: &Value| {
                let ports: Vec<String> = s
                    .at("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let node = p
                            .get("nodePort")
                            .and_then(Value::as_i64)
                            .map(|n| format!(":{n}"))
                            .unwrap_or_default();
                        format!(
                            "{}{node}/{}",
                            int_at(p, "/port"),
                            p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        )
                    })
                    .collect();
                let selector: Vec<String> = s
                    .at("/spec/selector")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
                    .unwrap_or_default();
                vec![
                    json!(str_at(s, "/metadata/name").unwrap_or("")),
                    json!(str_at(s, "/spec/type").unwrap_or("ClusterIP")),
                    json!(str_at(s, "/spec/clusterIP").unwrap_or("<none>")),
                    json!("<none>"),
                    json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") }),
                    age(s),
                    json!(if selector.is_empty() { "<none>".to_string() } else { selector.join(",") }),
                ]
            }),
        ),
        "configmaps" | "secrets" => {
            let secrets = resource == "secrets";
            let mut cols = vec![name];
            if secrets {
                cols.push(column("Type", "string", 0, "The type of the secret"));
            }
            cols.push(column("Data", "string", 0, "Number of data entries"));
            cols.push(column("Age", "string", 0, AGE));
            (
                cols,
                Box::new(move |o: &Value| {
                    let count = |p: &str| o.at(p).and_then(Value::as_object).map(|m| m.len()).unwrap_or(0);
                    let mut row = vec![json!(str_at(o, "/metadata/name").unwrap_or(""))];
                    if secrets {
                        row.push(json!(str_at(o, "/type").unwrap_or("Opaque")));
                    }
                    row.push(json!(count("/data") + count("/binaryData")));
                    row.push(age(o));
                    row
                }),
            )
        }
        _ => (
            vec![name, column("Age", "string", 0, AGE)],
            Box::new(move |o: &Value| vec![json!(str_at(o, "/metadata/name").unwrap_or("")), age(o)]),
        ),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({"cells": cells(o), "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv}, "columnDefinitions": columns, "rows": rows})
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "events" => "Event",
        _ => stored_kind(resource).map(|(_, k)| k).unwrap_or("Unknown"),
    }
}

fn not_found(resource: &str, name: &str) -> Response {
    status_error(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(json!({"name": name, "kind": resource})),
    )
}

/// The built-in objects each cluster has: the `kubernetes` Service in `default`.
fn builtin(ctx: &str, resource: &str) -> Vec<Value> {
    let _ = ctx;
    if resource != "services" {
        return Vec::new();
    }
    vec![json!({"kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "kubernetes", "namespace": "default", "uid": "00000000-0000-4000-8000-00000000c0de",
            "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}})]
}

/// Every object of a core resource in a context (and namespace), as the API lists them.
fn list_of(store: &Store, ctx: &str, resource: &str, ns: Option<&str>, now: DateTime<Utc>) -> Vec<Value> {
    match resource {
        "pods" => pods(store, ctx, ns, now),
        "events" => {
            let mut evs: Vec<Value> = store
                .events
                .iter()
                .filter(|(c, e)| c == ctx && ns.is_none_or(|n| str_at(e, "/metadata/namespace") == Some(n)))
                .map(|(_, e)| e.clone())
                .collect();
            for p in pods(store, ctx, ns, now) {
                evs.extend(pod_events(&p, now));
            }
            evs
        }
        "namespaces" => namespaces(store, ctx).iter().map(|n| namespace_object(store, ctx, n)).collect(),
        _ => {
            let mut out: Vec<Value> = builtin(ctx, resource)
                .into_iter()
                .filter(|o| ns.is_none_or(|n| str_at(o, "/metadata/namespace") == Some(n)))
                .collect();
            out.extend(
                store
                    .core
                    .iter()
                    .filter(|((c, r, n, _), _)| c == ctx && *r == resource && ns.is_none_or(|want| n == want))
                    .map(|(_, v)| Value::clone(v)),
            );
            out
        }
    }
}

/// A field selector on any string field (`involvedObject.name=web,type=Warning`), as events
/// and pods are filtered.
fn field_filter(text: &str) -> Result<Vec<(String, bool, String)>, Response> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, true, v)
        } else {
            return Err(status_error(400, "BadRequest", &format!("invalid selector: '{part}'"), None));
        };
        out.push((format!("/{}", k.replace('.', "/")), eq, v.to_string()));
    }
    Ok(out)
}

/// `limit` / `continue` over a list: the page and the token of the next one.
pub fn paginate<T>(
    items: Vec<T>,
    limit: Option<&str>,
    token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), Response> {
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match decode_token(t) {
            Some(n) => n,
            None => {
                return Err(status_error(
                    400,
                    "BadRequest",
                    "continue key is not valid: the continue token is malformed",
                    None,
                ));
            }
        },
    };
    let limit = limit.and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let rest: Vec<T> = items.into_iter().skip(start).collect();
    match limit {
        Some(l) if rest.len() > l => {
            let page: Vec<T> = rest.into_iter().take(l).collect();
            Ok((page, Some(encode_token(start + l))))
        }
        _ => Ok((rest, None)),
    }
}

fn encode_token(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{{\"v\":\"meta.k8s.io/v1\",\"offset\":{offset}}}"))
}

fn decode_token(token: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("offset")?.as_u64().map(|n| n as usize)
}

fn list_response(r: &CoreReq, resource: &str, items: Vec<Value>, rv: &str, now: DateTime<Utc>) -> Response {
    let (items, next) = match paginate(items, r.q("limit").as_deref(), r.q("continue").as_deref()) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if wants_table(r.accept()) {
        let mut t = table(resource, &items, rv, now);
        if let Some(n) = next {
            t["metadata"]["continue"] = json!(n);
        }
        return json_response(StatusCode::OK, &t);
    }
    let mut meta = json!({"resourceVersion": rv});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", kind_of(resource)), "apiVersion": "v1", "metadata": meta, "items": items}),
    )
}

fn one(r: &CoreReq, resource: &str, obj: Value, rv: &str, now: DateTime<Utc>) -> Response {
    if wants_table(r.accept()) {
        return json_response(StatusCode::OK, &table(resource, std::slice::from_ref(&obj), rv, now));
    }
    json_response(StatusCode::OK, &obj)
}

/// Serves `/api/v1/<rest>`; None for a path it does not know.
pub fn route(world: &K8sWorld, r: &CoreReq, rest: &[&str]) -> Option<Response> {
    let get = *r.method == Method::GET;
    let (ns, resource, name, sub): (Option<&str>, &str, Option<&str>, Option<&str>) = match rest {
        ["namespaces"] => (None, "namespaces", None, None),
        ["namespaces", n] => (None, "namespaces", Some(n), None),
        ["namespaces", n, "status" | "finalize"] if get => (None, "namespaces", Some(n), None),
        [res] => (None, res, None, None),
        ["namespaces", ns, res] => (Some(ns), res, None, None),
        ["namespaces", ns, res, name] => (Some(ns), res, Some(name), None),
        ["namespaces", ns, res, name, sub] => (Some(ns), res, Some(name), Some(sub)),
        _ => return None,
    };
    if !matches!(resource, "pods" | "events") && stored_kind(resource).is_none() {
        return None;
    }
    let mut store = world.lock();
    let now = Utc::now();
    let rv = store.rv.to_string();
    if let Some(n) = ns
        && !namespace_exists(&store, r.ctx, n)
        && *r.method != Method::GET
    {
        return Some(namespace_not_found(n));
    }
    match (r.method.clone(), name, sub) {
        (Method::GET, None, None) => {
            if matches!(r.q("watch").as_deref(), Some("1" | "true")) {
                return Some(status_error(
                    405,
                    "MethodNotAllowed",
                    &format!("the simulator does not watch {resource}"),
                    None,
                ));
            }
            let labels = match LabelSelector::parse(r.q("labelSelector").as_deref().unwrap_or("")) {
                Ok(s) => s,
                Err(e) => {
                    return Some(status_error(
                        400,
                        "BadRequest",
                        &format!("unable to parse requirement: {e}"),
                        None,
                    ));
                }
            };
            let fields = match field_filter(r.q("fieldSelector").as_deref().unwrap_or("")) {
                Ok(f) => f,
                Err(e) => return Some(e),
            };
            let items: Vec<Value> = list_of(&store, r.ctx, resource, ns, now)
                .into_iter()
                .filter(|o| labels.matches(o))
                .filter(|o| fields.iter().all(|(p, eq, v)| (str_at(o, p).unwrap_or("") == v) == *eq))
                .collect();
            drop(store);
            Some(list_response(r, resource, items, &rv, now))
        }
        (Method::GET, Some(name), None) => {
            let found = list_of(&store, r.ctx, resource, ns, now)
                .into_iter()
                .find(|o| str_at(o, "/metadata/name") == Some(name));
            drop(store);
            Some(match found {
                Some(o) => one(r, resource, o, &rv, now),
                None => not_found(resource, name),
            })
        }
        (Method::GET, Some(name), Some("log")) if resource == "pods" => {
            let pod = list_of(&store, r.ctx, resource, ns, now)
                .into_iter()
                .find(|o| str_at(o, "/metadata/name") == Some(name));
            Some(match pod {
                Some(p) => log(&p, r.q("container").as_deref()),
                None => not_found(resource, name),
            })
        }
        (Method::POST, None, None) if stored_kind(resource).is_some() => {
            Some(create(&mut store, r, resource, ns))
        }
        (Method::DELETE, Some(name), None) if stored_kind(resource).is_some() => {
            let key = (
                r.ctx.to_string(),
                stored_kind(resource).map(|(r, _)| r).unwrap_or(""),
                ns.unwrap_or("").to_string(),
                name.to_string(),
            );
            if resource == "namespaces" && DEFAULT_NAMESPACES.contains(&name) {
                return Some(status_error(
                    403,
                    "Forbidden",
                    &format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
                    None,
                ));
            }
            if r.dry_run() {
                return Some(match store.core.get(&key) {
                    Some(o) => json_response(StatusCode::OK, o),
                    None => not_found(resource, name),
                });
            }
            Some(match store.core.remove(&key) {
                Some(o) => {
                    store.rv += 1;
                    json_response(StatusCode::OK, &o)
                }
                None => not_found(resource, name),
            })
        }
        _ => Some(status_error(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        )),
    }
}

/// A plausible log of one container: its start, and its crash for a crash-looping one.
fn log(pod: &Value, container: Option<&str>) -> Response {
    let name = str_at(pod, "/metadata/name").unwrap_or("");
    let statuses = pod.at("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
    let names: Vec<&str> = statuses.iter().filter_map(|c| c["name"].as_str()).collect();
    let chosen = match container {
        Some(c) => c,
        None if names.len() == 1 => names[0],
        None => {
            return status_error(
                400,
                "BadRequest",
                &format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                ),
                None,
            );
        }
    };
    let Some(c) = statuses.iter().find(|c| c["name"] == chosen) else {
        return status_error(
            400,
            "BadRequest",
            &format!("container {chosen} is not valid for pod {name}"),
            None,
        );
    };
    let image = c["image"].as_str().unwrap_or("");
    let started = str_at(pod, "/status/startTime").unwrap_or("");
    let text = match c.at("/state/waiting/reason").and_then(Value::as_str) {
        Some(CRASH_LOOP) => {
            format!(
                "{started} INFO starting {chosen} ({image})\n{started} FATAL {chosen}: exiting with status 1\n"
            )
        }
        Some(reason) => {
            let why = if reason == IMAGE_PULL { "trying and failing to pull image" } else { reason };
            return status_error(
                400,
                "BadRequest",
                &format!("container \"{chosen}\" in pod \"{name}\" is waiting to start: {why}"),
                None,
            );
        }
        None => {
            format!("{started} INFO starting {chosen} ({image})\n{started} INFO {chosen} is ready to serve\n")
        }
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

fn create(store: &mut Store, r: &CoreReq, resource: &str, ns: Option<&str>) -> Response {
    let Some((res, kind)) = stored_kind(resource) else {
        return status_error(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        );
    };
    let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parsed = if ct.starts_with("application/vnd.kubernetes.protobuf") {
        super::protobuf::decode(r.body).map_err(|e| {
            status_error(
                415,
                "UnsupportedMediaType",
                &format!("the simulator cannot decode this protobuf body: {e}"),
                None,
            )
        })
    } else {
        serde_json::from_slice(r.body).map_err(|e| {
            status_error(
                400,
                "BadRequest",
                &format!("the body of the request was in an unknown format: {e}"),
                None,
            )
        })
    };
    let mut obj: Value = match parsed {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(name) = str_at(&obj, "/metadata/name").map(String::from) else {
        return status_error(
            422,
            "Invalid",
            &format!(
                "{kind} \"\" is invalid: metadata.name: Required value: name or generateName is required"
            ),
            Some(json!({"kind": kind})),
        );
    };
    let check = if res == "namespaces" || res == "services" {
        rfc1123_label(&name)
    } else {
        rfc1123_subdomain(&name)
    };
    if let Err(e) = check {
        return status_error(
            422,
            "Invalid",
            &format!("{kind} \"{name}\" is invalid: metadata.name: {e}"),
            Some(
                json!({"name": name, "kind": kind, "causes": [{"reason": "FieldValueInvalid", "message": e, "field": "metadata.name"}]}),
            ),
        );
    }
    let key = (r.ctx.to_string(), res, ns.unwrap_or("").to_string(), name.clone());
    let exists = if res == "namespaces" {
        namespace_exists(store, r.ctx, &name)
    } else {
        store.core.contains_key(&key)
            || builtin(r.ctx, res)
                .iter()
                .any(|o| str_at(o, "/metadata/name") == Some(&name) && str_at(o, "/metadata/namespace") == ns)
    };
    if exists {
        return status_error(
            409,
            "AlreadyExists",
            &format!("{res} \"{name}\" already exists"),
            Some(json!({"name": name, "kind": res})),
        );
    }
    let uid = store.uid();
    let rv = store.rv + 1;
    {
        let meta = super::store::obj_mut(&mut obj, &["metadata"]);
        if let Some(n) = ns {
            meta.insert("namespace".into(), json!(n));
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(store.timestamp()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if res == "namespaces" {
            let labels = meta.entry("labels").or_insert(json!({}));
            if labels.is_object() {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
        }
    }
    obj["kind"] = json!(kind);
    obj["apiVersion"] = json!("v1");
    match res {
        "namespaces" => {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "services" => {
            let spec = super::store::obj_mut(&mut obj, &["spec"]);
            spec.entry("type").or_insert(json!("ClusterIP"));
            let ip = format!("10.0.{}.{}", fnv(&name) % 250, 2 + fnv(&uid) % 250);
            spec.entry("clusterIP").or_insert(json!(ip.clone()));
            spec.entry("clusterIPs").or_insert(json!([ip]));
            spec.entry("sessionAffinity").or_insert(json!("None"));
            obj["status"] = json!({"loadBalancer": {}});
        }
        "secrets" => {
            let m = obj.as_object_mut();
            if let Some(m) = m {
                m.entry("type").or_insert(json!("Opaque"));
            }
        }
        _ => {}
    }
    if r.dry_run() {
        return json_response(StatusCode::CREATED, &obj);
    }
    store.rv = rv;
    store.core.insert(key, Arc::new(obj.clone()));
    json_response(StatusCode::CREATED, &obj)
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: the simulator's single user
/// may do everything (any token is accepted), so every review is allowed.
pub fn self_subject_access_review(headers: &HeaderMap, body: &[u8]) -> Response {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parsed = if ct.starts_with("application/vnd.kubernetes.protobuf") {
        super::protobuf::decode(body)
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    let mut review: Value = match parsed {
        Ok(v) => v,
        Err(e) => {
            return status_error(
                400,
                "BadRequest",
                &format!("the body of the request was in an unknown format: {e}"),
                None,
            );
        }
    };
    if review.at("/spec/resourceAttributes").is_none() && review.at("/spec/nonResourceAttributes").is_none() {
        return status_error(
            422,
            "Invalid",
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            None,
        );
    }
    review["kind"] = json!("SelfSubjectAccessReview");
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = json!({"allowed": true, "reason": "the simulator's user may do everything"});
    json_response(StatusCode::CREATED, &review)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_rfc_1123() {
        assert!(rfc1123_label("team-a").is_ok());
        assert!(rfc1123_label("Team_A").is_err());
        assert!(rfc1123_label("-a").is_err());
        assert!(rfc1123_subdomain("web.v2").is_ok());
        assert!(rfc1123_subdomain("web..v2").is_err());
    }

    #[test]
    fn pages_follow_their_continue_tokens() {
        let items: Vec<i32> = (0..5).collect();
        let (page, next) = paginate(items.clone(), Some("2"), None).unwrap_or_default();
        assert_eq!(page, vec![0, 1]);
        let (page, next) = paginate(items.clone(), Some("2"), next.as_deref()).unwrap_or_default();
        assert_eq!(page, vec![2, 3]);
        let (page, next) = paginate(items, Some("2"), next.as_deref()).unwrap_or_default();
        assert_eq!((page, next), (vec![4], None));
    }

    #[test]
    fn pod_suffixes_use_the_kubernetes_alphabet() {
        let s = suffix("uid/0");
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{s}");
        assert_ne!(suffix("uid/0"), suffix("uid/1"));
    }
}
