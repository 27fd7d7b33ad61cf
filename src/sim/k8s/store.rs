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
    /// The object after the change (before, for `DELETED`), shared with the store.
    pub object: Arc<Value>,
}

/// Every simulated cluster's objects.
pub struct Store {
    /// The last resourceVersion handed out.
    pub rv: u64,
    /// The objects, shared with the watch log and with the controller's working copies: an
    /// object is copied only when something changes it.
    pub objects: BTreeMap<Key, Arc<Value>>,
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
    /// Deployments whose objects (themselves or a ReplicaSet they own) changed since the
    /// controller last synced them: the next tick syncs these and only these.
    pub dirty_deployments: BTreeSet<Key>,
    /// ReplicaSets written since the last tick: the next tick steps their pods.
    pub dirty_replicasets: BTreeSet<Key>,
    /// ReplicaSets whose pods are still starting (status behind spec): stepped every tick.
    pub unsettled: BTreeSet<Key>,
    /// ReplicaSets by the Deployment named as their controlling owner (an index: a sync reads a
    /// Deployment's own ReplicaSets, not every one of its namespace).
    owned: BTreeMap<Key, BTreeSet<Key>>,
    /// Objects by one of their labels: (context, kind, namespace, label, value) → keys. Lists
    /// with a `key=value` selector read these instead of every object of the namespace.
    labelled: BTreeMap<LabelKey, BTreeSet<Key>>,
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
            dirty_deployments: BTreeSet::new(),
            dirty_replicasets: BTreeSet::new(),
            unsettled: BTreeSet::new(),
            owned: BTreeMap::new(),
            labelled: BTreeMap::new(),
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
    /// bumping the resourceVersion and emitting an event. Returns whether it did.
    pub fn put(&mut self, key: &Key, obj: impl Into<Arc<Value>>) -> bool {
        let mut obj = obj.into();
        let old = self.objects.get(key);
        if let Some(old) = old
            && (Arc::ptr_eq(old, &obj) || same_ignoring_rv(old, &obj))
        {
            return false;
        }
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        if old.and_then(|o| o.at("/metadata/labels")) != obj.at("/metadata/labels") {
            let (was, is) = (labels_of(old.map(|o| &**o)), labels_of(Some(&obj)));
            self.index_labels(key, was, is);
        }
        let old = self.objects.get(key);
        let old_owner = old.and_then(|o| controller_owner(o));
        if key.kind == Kind::ReplicaSet && old_owner != controller_owner(&obj) {
            let old_owner = old_owner.map(String::from);
            self.unindex_owner(key, old_owner.as_deref());
            if let Some(owner) = controller_owner(&obj) {
                let dkey = Key::new(&key.ctx, Kind::Deployment, &key.ns, owner);
                self.owned.entry(dkey).or_default().insert(key.clone());
            }
        }
        self.rv += 1;
        if let Some(meta) = Arc::make_mut(&mut obj).get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        self.mark_dirty(key, &obj);
        self.objects.insert(key.clone(), obj.clone());
        self.emit(key, kind, obj);
        true
    }

    /// Notes a written or deleted object for the controller: a Deployment is synced again, a
    /// ReplicaSet has its pods stepped and its owning Deployment synced again.
    fn mark_dirty(&mut self, key: &Key, obj: &Value) {
        match key.kind {
            Kind::Deployment => {
                self.dirty_deployments.insert(key.clone());
            }
            Kind::ReplicaSet => {
                self.dirty_replicasets.insert(key.clone());
                if let Some(owner) = controller_owner(obj) {
                    self.dirty_deployments.insert(Key::new(&key.ctx, Kind::Deployment, &key.ns, owner));
                }
            }
            Kind::Lease => {}
        }
    }

    /// Removes an object, emitting `DELETED`.
    pub fn delete(&mut self, key: &Key) -> Option<Arc<Value>> {
        let mut obj = self.objects.remove(key)?;
        self.pod_age.remove(key);
        self.unsettled.remove(key);
        self.mark_dirty(key, &obj);
        if key.kind == Kind::ReplicaSet {
            self.unindex_owner(key, controller_owner(&obj));
        }
        self.index_labels(key, labels_of(Some(&obj)), Vec::new());
        self.rv += 1;
        if let Some(meta) = Arc::make_mut(&mut obj).get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        self.emit(key, "DELETED", obj.clone());
        Some(obj)
    }

    /// Moves `key` in the label index from its `old` labels to its `new` ones.
    fn index_labels(&mut self, key: &Key, old: Vec<(String, String)>, new: Vec<(String, String)>) {
        let at = |(k, v): (String, String)| (key.ctx.clone(), key.kind, key.ns.clone(), k, v);
        for pair in old.iter().filter(|p| !new.contains(p)) {
            unindex(&mut self.labelled, &at(pair.clone()), key);
        }
        for pair in new.into_iter().filter(|p| !old.contains(p)) {
            self.labelled.entry(at(pair)).or_default().insert(key.clone());
        }
    }

    /// Objects of one kind in a context and namespace labelled `label=value`, in key order.
    pub fn labelled<'a>(
        &'a self,
        ctx: &str,
        kind: Kind,
        ns: &str,
        (label, value): (&str, &str),
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        let lk = (ctx.to_string(), kind, ns.to_string(), label.to_string(), value.to_string());
        self.labelled.get(&lk).into_iter().flatten().filter_map(|k| self.objects.get_key_value(k))
    }

    fn unindex_owner(&mut self, key: &Key, owner: Option<&str>) {
        let Some(owner) = owner else {
            return;
        };
        unindex(&mut self.owned, &Key::new(&key.ctx, Kind::Deployment, &key.ns, owner), key);
    }

    /// The ReplicaSets whose controlling owner is named as the Deployment `dkey` (their owner
    /// uid is for the caller to check), in key order.
    pub fn owned_by<'a>(&'a self, dkey: &Key) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        self.owned.get(dkey).into_iter().flatten().filter_map(|k| self.objects.get_key_value(k))
    }

    fn emit(&mut self, key: &Key, kind: &'static str, object: Arc<Value>) {
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

    /// Records a core Event about `obj` in context `ctx` (as the deployment-controller does).
    pub fn record_event(&mut self, ctx: &str, obj: &Value, kind: &str, reason: &str, message: &str) {
        const EVENTS_CAP: usize = 1000;
        let ctx = ctx.to_string();
        let name = str_at(obj, "/metadata/name").unwrap_or("").to_string();
        let ns = str_at(obj, "/metadata/namespace").unwrap_or("default").to_string();
        let now = self.timestamp();
        self.rv += 1;
        let event = json!({
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": format!("{name}.{:016x}", fastrand::u64(..)), "namespace": ns,
                "uid": self.uid(), "resourceVersion": self.rv.to_string(), "creationTimestamp": now},
            "involvedObject": {"kind": obj.get("kind").cloned().unwrap_or(json!("Deployment")),
                "namespace": ns, "name": name, "uid": obj.at("/metadata/uid").cloned(),
                "apiVersion": obj.get("apiVersion").cloned().unwrap_or(json!("apps/v1")),
                "resourceVersion": obj.at("/metadata/resourceVersion").cloned()},
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

    /// Objects of one kind in a context (and namespace, when given), in key order, without
    /// copying: a key range (keys sort by context, kind, namespace), so a fleet of thousands of
    /// objects is not scanned whole for one namespace.
    pub fn iter_of<'a>(
        &'a self,
        ctx: &'a str,
        kind: Kind,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        let start = Key::new(ctx, kind, ns.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.ctx == ctx && k.kind == kind && ns.is_none_or(|n| k.ns == n))
    }
}

/// Takes `key` out of an index entry, and the entry out of the index once it is empty.
fn unindex<K: Ord>(index: &mut BTreeMap<K, BTreeSet<Key>>, entry: &K, key: &Key) {
    if let Some(set) = index.get_mut(entry) {
        set.remove(key);
        if set.is_empty() {
            index.remove(entry);
        }
    }
}

/// (context, kind, namespace, label, value): an entry of the label index.
type LabelKey = (String, Kind, String, String, String);

/// An object's string labels, in order (none for no object).
fn labels_of(obj: Option<&Value>) -> Vec<(String, String)> {
    obj.and_then(|o| o.at("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// Whether two objects are equal but for `metadata.resourceVersion` (compared in place: every
/// write of the controller asks this, and most of them change nothing).
fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    let without_rv = |m: &Map<String, Value>| m.len() - usize::from(m.contains_key("resourceVersion"));
    a.len() == b.len()
        && a.iter().all(|(k, va)| match (k.as_str(), va, b.get(k)) {
            ("metadata", Value::Object(ma), Some(Value::Object(mb))) => {
                without_rv(ma) == without_rv(mb)
                    && ma.iter().all(|(mk, mv)| mk == "resourceVersion" || mb.get(mk) == Some(mv))
            }
            (_, va, Some(vb)) => va == vb,
            (_, _, None) => false,
        })
}

/// The name of the object's controlling owner (`ownerReferences[controller=true]`).
pub fn controller_owner(obj: &Value) -> Option<&str> {
    obj.at("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?
        .get("name")?
        .as_str()
}

/// JSON pointer lookups without `Value::pointer`'s two string allocations per segment: the
/// controller and the list handlers look up thousands of fields per tick and per request.
pub trait At {
    /// The value at a JSON pointer (`~` escapes are honoured, through `Value::pointer`).
    fn at(&self, ptr: &str) -> Option<&Value>;
}

impl At for Value {
    fn at(&self, ptr: &str) -> Option<&Value> {
        if ptr.contains('~') {
            return self.pointer(ptr);
        }
        if ptr.is_empty() {
            return Some(self);
        }
        ptr.strip_prefix('/')?.split('/').try_fold(self, |v, seg| match v {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
    }
}

/// A string at a JSON pointer.
pub fn str_at<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.at(ptr).and_then(Value::as_str)
}

/// An integer at a JSON pointer, 0 when absent.
pub fn int_at(obj: &Value, ptr: &str) -> i64 {
    obj.at(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// An annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.at("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
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
