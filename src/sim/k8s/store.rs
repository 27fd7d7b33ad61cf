//! The object store of the simulated clusters: JSON objects keyed by context, kind, namespace and
//! name, a resourceVersion counter, and the watch event log and broadcast.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// How many past events a watch can resume from.
const LOG_CAP: usize = 4096;

/// The kinds of object the simulator stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `coordination.k8s.io/v1` Lease.
    Lease,
}

impl Kind {
    /// The kind for a URL resource segment and API group.
    pub fn from_resource(group: &str, resource: &str) -> Option<Kind> {
        match (group, resource) {
            ("apps", "deployments") => Some(Kind::Deployment),
            ("apps", "replicasets") => Some(Kind::ReplicaSet),
            ("coordination.k8s.io", "leases") => Some(Kind::Lease),
            _ => None,
        }
    }
    /// `kind` of a single object.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Lease => "Lease",
        }
    }
    /// `apiVersion` of its objects.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet => "apps/v1",
            Kind::Lease => "coordination.k8s.io/v1",
        }
    }
    /// The plural resource name (URL segment).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::Lease => "leases",
        }
    }
    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet => "apps",
            Kind::Lease => "coordination.k8s.io",
        }
    }
}

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Simulated context (cluster).
    pub ctx: String,
    /// Kind.
    pub kind: Kind,
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
}

impl Key {
    /// A key from its parts.
    pub fn new(ctx: &str, kind: Kind, ns: &str, name: &str) -> Key {
        Key { ctx: ctx.into(), kind, ns: ns.into(), name: name.into() }
    }
}

/// One watch event.
#[derive(Debug)]
pub struct Event {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// The object's key.
    pub key: Key,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the change (before, for `DELETED`).
    pub object: Value,
}

/// Every simulated cluster's objects.
pub struct Store {
    /// The last resourceVersion handed out.
    pub rv: u64,
    /// The objects.
    pub objects: BTreeMap<Key, Value>,
    /// Recent events, oldest first.
    pub log: VecDeque<Arc<Event>>,
    /// Watches may resume from this resourceVersion or later; older ones get 410 Gone.
    pub log_start: u64,
    /// Live watches.
    pub tx: broadcast::Sender<Arc<Event>>,
    /// Broken images per Deployment key.
    pub broken: BTreeMap<Key, BTreeSet<String>>,
    /// Controller ticks since each ReplicaSet's pods were created (readiness delay).
    pub pod_age: BTreeMap<Key, u32>,
    /// A fixed clock while the scenario's history is being built.
    pub clock: Option<DateTime<Utc>>,
    /// Core `v1` Events the controller recorded, oldest first (capped).
    pub events: VecDeque<(String, Value)>,
    /// Ticks a pod takes to become ready.
    pub rollout_steps: u32,
    /// The resourceVersion after the last whole-world tick that changed nothing: while nothing
    /// changed since and every ReplicaSet is settled, the next tick has nothing to do.
    pub quiet_rv: Option<u64>,
    uid_seq: u64,
}

impl Store {
    /// An empty store.
    pub fn new(rollout_steps: u32) -> Store {
        let (tx, _) = broadcast::channel(4096);
        Store {
            rv: 1000,
            objects: BTreeMap::new(),
            log: VecDeque::new(),
            log_start: 0,
            events: VecDeque::new(),
            tx,
            broken: BTreeMap::new(),
            pod_age: BTreeMap::new(),
            clock: None,
            rollout_steps: rollout_steps.max(1),
            quiet_rv: None,
            uid_seq: 0,
        }
    }

    /// Now, as the simulated clock says.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.unwrap_or_else(Utc::now)
    }

    /// Now as a Kubernetes timestamp (RFC 3339, whole seconds).
    pub fn timestamp(&self) -> String {
        self.now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// A fresh object uid.
    pub fn uid(&mut self) -> String {
        self.uid_seq += 1;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u16(..0x1000),
            fastrand::u16(..0x1000),
            self.uid_seq
        )
    }

    /// Stores `obj` under `key` if it differs from what is stored (ignoring resourceVersion),
    /// bumping the resourceVersion and emitting an event. Returns the stored object.
    pub fn put(&mut self, key: &Key, mut obj: Value) -> Value {
        let old = self.objects.get(key);
        if let Some(old) = old
            && same_ignoring_rv(old, &obj)
        {
            return old.clone();
        }
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.rv += 1;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        self.objects.insert(key.clone(), obj.clone());
        self.emit(key, kind, obj.clone());
        obj
    }

    /// Removes an object, emitting `DELETED`.
    pub fn delete(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.pod_age.remove(key);
        self.rv += 1;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        self.emit(key, "DELETED", obj.clone());
        Some(obj)
    }

    fn emit(&mut self, key: &Key, kind: &'static str, object: Value) {
        let ev = Arc::new(Event { rv: self.rv, key: key.clone(), kind, object });
        if self.log.len() >= LOG_CAP
            && let Some(old) = self.log.pop_front()
        {
            self.log_start = old.rv;
        }
        self.log.push_back(ev.clone());
        // No receivers is the normal case; nothing to do then.
        let _ = self.tx.send(ev);
    }

    /// Records a core Event about `obj` in its context (as the deployment-controller does).
    pub fn record_event(&mut self, obj: &Value, kind: &str, reason: &str, message: &str) {
        const EVENTS_CAP: usize = 1000;
        let Some(ctx) = self
            .objects
            .iter()
            .find(|(_, v)| v.pointer("/metadata/uid") == obj.pointer("/metadata/uid"))
            .map(|(k, _)| k.ctx.clone())
        else {
            return;
        };
        let name = str_at(obj, "/metadata/name").unwrap_or("").to_string();
        let ns = str_at(obj, "/metadata/namespace").unwrap_or("default").to_string();
        let now = self.timestamp();
        self.rv += 1;
        let event = json!({
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": format!("{name}.{:016x}", fastrand::u64(..)), "namespace": ns,
                "uid": self.uid(), "resourceVersion": self.rv.to_string(), "creationTimestamp": now},
            "involvedObject": {"kind": obj.get("kind").cloned().unwrap_or(json!("Deployment")),
                "namespace": ns, "name": name, "uid": obj.pointer("/metadata/uid").cloned(),
                "apiVersion": obj.get("apiVersion").cloned().unwrap_or(json!("apps/v1")),
                "resourceVersion": obj.pointer("/metadata/resourceVersion").cloned()},
            "reason": reason, "message": message,
            "source": {"component": "deployment-controller"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": kind,
            "eventTime": null, "reportingComponent": "deployment-controller", "reportingInstance": "",
        });
        if self.events.len() >= EVENTS_CAP {
            self.events.pop_front();
        }
        self.events.push_back((ctx, event));
    }

    /// Forgets past events (after building the scenario): watches start from now.
    pub fn clear_log(&mut self) {
        self.log.clear();
        self.log_start = self.rv;
    }

    /// Objects of one kind in a context (and namespace, when given), in key order.
    pub fn list(&self, ctx: &str, kind: Kind, ns: Option<&str>) -> Vec<(Key, Value)> {
        self.iter_of(ctx, kind, ns).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// [`Store::list`] without copying: a key range (keys sort by context, kind, namespace),
    /// so a fleet of thousands of objects is not scanned whole for one namespace.
    pub fn iter_of<'a>(
        &'a self,
        ctx: &'a str,
        kind: Kind,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let start = Key::new(ctx, kind, ns.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.ctx == ctx && k.kind == kind && ns.is_none_or(|n| k.ns == n))
    }
}

fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// A string at a JSON pointer.
pub fn str_at<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.pointer(ptr).and_then(Value::as_str)
}

/// An integer at a JSON pointer, 0 when absent.
pub fn int_at(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// An annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

/// The object map at `path` inside `obj`, created (replacing non-objects) as needed.
pub fn obj_mut<'a>(obj: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = obj;
    for seg in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Value::Object(m) = cur else { unreachable!("just made an object") };
        cur = m.entry(seg.to_string()).or_insert_with(|| json!({}));
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    match cur {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// Sets an annotation.
pub fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    obj_mut(obj, &["metadata", "annotations"]).insert(key.into(), Value::String(value.into()));
}

/// A Kubernetes `Status` failure object.
pub fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}
