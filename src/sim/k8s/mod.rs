//! The simulated Kubernetes API: one API server per simulated context, Deployments and
//! ReplicaSets with a Deployment controller, Leases, discovery and watches.

pub mod api;
pub mod controller;
pub mod core;
pub mod discovery;
pub mod gitops;
pub mod openapi;
pub mod patch;
pub mod ports;
pub mod progress;
pub mod protobuf;
pub mod select;
pub mod store;
pub mod table;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Duration as ChronoDuration;
use serde_json::{Value, json};

use crate::sim::Scenario;
use controller::{rs_broken, template_images};
use store::{At, Key, Kind, Store, int_at, str_at};

/// How many instant controller passes building a scenario's history may take per revision.
const CONVERGE_PASSES: usize = 200;

/// Objects the controller handles between two releases of the store in a served tick.
const TICK_SLICE: usize = 32;

/// Every simulated Kubernetes cluster.
pub struct K8sWorld {
    store: Mutex<Store>,
    contexts: Vec<String>,
}

impl K8sWorld {
    /// Builds the clusters of a scenario: each Deployment with its revision history (revisions
    /// 1..N from the scenario images, the last one live and rolled out as far as it can go).
    pub fn from_scenario(scenario: &Scenario) -> K8sWorld {
        let mut contexts: Vec<String> = Vec::new();
        for ctx in scenario
            .k8s
            .deployments
            .iter()
            .map(|d| &d.context)
            .chain(scenario.aks.clusters.iter().map(|c| &c.context))
        {
            if !contexts.contains(ctx) {
                contexts.push(ctx.clone());
            }
        }
        let mut store = Store::new(scenario.sim.rollout_steps.unwrap_or(1));
        store.start_history();
        let now = chrono::Utc::now();
        for dep in &scenario.k8s.deployments {
            let key = Key::new(&dep.context, Kind::Deployment, &dep.namespace, &dep.name);
            store.broken.insert(key.clone(), dep.broken.iter().cloned().collect::<BTreeSet<_>>());
            if let Some(reason) = &dep.broken_reason {
                store.broken_reason.insert(key.clone(), reason.clone());
            }
            let n = dep.revisions.len() as i64;
            // The live revision is rolled out `rollout_age` ago, the ones before ten minutes apart.
            let age = dep
                .rollout_age
                .and_then(|a| ChronoDuration::from_std(a.get()).ok())
                .unwrap_or_else(ChronoDuration::zero);
            let base = now - age - ChronoDuration::minutes(10 * (n - 1).max(0));
            store.clock = Some(base);
            let uid = store.uid();
            let mut containers =
                vec![json!({"name": dep.name, "image": dep.revisions.first().cloned().unwrap_or_default()})];
            for (name, image) in &dep.sidecars {
                containers.push(json!({"name": name, "image": image}));
            }
            let mut d = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": dep.name, "namespace": dep.namespace, "uid": uid,
                    "generation": 1, "creationTimestamp": store.timestamp(),
                    "labels": {"app": dep.name}, "annotations": {}},
                "spec": {"replicas": dep.replicas.clamp(0, i64::from(i32::MAX)), "selector": {"matchLabels": {"app": dep.name}},
                    "template": {"metadata": {"labels": {"app": dep.name}},
                        "spec": {"containers": containers}}},
                "status": {},
            });
            if let Some(limit) = dep.revision_history_limit {
                d["spec"]["revisionHistoryLimit"] = json!(limit);
            }
            if let Some(secs) = dep.progress_deadline_seconds {
                d["spec"]["progressDeadlineSeconds"] = json!(secs);
            }
            api::default_deployment(&mut d);
            store.put(&key, d);
            converge(&mut store, &key);
            for (i, image) in dep.revisions.iter().enumerate().skip(1) {
                store.clock = Some(base + ChronoDuration::minutes(10 * i as i64));
                let Some(mut d) = store.objects.get(&key).map(|d| Value::clone(d)) else {
                    continue;
                };
                d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
                api::default_deployment(&mut d);
                d["metadata"]["generation"] = json!(int_at(&d, "/metadata/generation") + 1);
                store.put(&key, d);
                converge(&mut store, &key);
            }
            if dep.paused
                && let Some(mut d) = store.objects.get(&key).map(|d| Value::clone(d))
            {
                d["spec"]["paused"] = json!(true);
                d["metadata"]["generation"] = json!(int_at(&d, "/metadata/generation") + 1);
                store.put(&key, d);
                controller::sync_deployment(&mut store, &key);
            }
        }
        gitops::build(&mut store, &scenario.gitops);
        // Now, a rollout dated back beyond its progress deadline has exceeded it.
        store.clock = Some(now);
        let keys: Vec<Key> = store.deadlines.keys().cloned().collect();
        for key in keys {
            controller::sync_deployment(&mut store, &key);
        }
        store.clock = None;
        store.finish_history();
        K8sWorld { store: Mutex::new(store), contexts }
    }

    /// The simulated contexts, in scenario order.
    pub fn contexts(&self) -> &[String] {
        &self.contexts
    }

    /// Whether `ctx` is a simulated context.
    pub fn has_context(&self, ctx: &str) -> bool {
        self.contexts.iter().any(|c| c == ctx)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One step of simulated time in one go: pods start and become ready, the controller
    /// reacts. (The served simulator uses [`K8sWorld::tick_in_slices`].)
    #[cfg(test)]
    pub fn tick(&self) -> bool {
        controller::tick(&mut self.lock(), false)
    }

    /// [`K8sWorld::tick`] in slices of [`TICK_SLICE`] objects, letting go of the store (and of
    /// the runtime's thread) between slices: when a fleet changes at once, requests are served
    /// between the controller's steps instead of waiting behind the whole tick. What changes
    /// while a tick runs is taken up by the next one.
    pub async fn tick_in_slices(&self) -> bool {
        let (replicasets, rv_before) = {
            let mut store = self.lock();
            store.wake_due_deadlines();
            let mut keys = std::mem::take(&mut store.dirty_replicasets);
            keys.append(&mut std::mem::take(&mut store.unsettled));
            (keys.into_iter().collect::<Vec<_>>(), store.rv)
        };
        for slice in replicasets.chunks(TICK_SLICE) {
            controller::step_pods(&mut self.lock(), false, slice.iter());
            tokio::task::yield_now().await;
        }
        let deployments: Vec<Key> = std::mem::take(&mut self.lock().dirty_deployments).into_iter().collect();
        for slice in deployments.chunks(TICK_SLICE) {
            {
                let mut store = self.lock();
                for key in slice {
                    controller::sync_deployment(&mut store, key);
                }
            }
            tokio::task::yield_now().await;
        }
        self.lock().rv != rv_before
    }

    fn deployment(&self, key: &str) -> Option<(Key, Value, Vec<Value>, bool)> {
        let rest = key.strip_prefix("k8s/")?;
        // The context may itself hold `/`: take the longest known one that prefixes the key.
        let ctx =
            self.contexts.iter().filter(|c| rest.starts_with(&format!("{c}/"))).max_by_key(|c| c.len())?;
        let (ns, name) = rest[ctx.len() + 1..].split_once('/')?;
        let store = self.lock();
        let dkey = Key::new(ctx, Kind::Deployment, ns, name);
        let d = Value::clone(store.objects.get(&dkey)?);
        let uid = str_at(&d, "/metadata/uid").unwrap_or("").to_string();
        let rss: Vec<Value> = controller::owned_replicasets(&store, &dkey, &uid)
            .into_iter()
            .map(|(_, rs)| Value::clone(&rs))
            .collect();
        let broken_running = rss.iter().any(|rs| {
            (int_at(rs, "/spec/replicas") > 0 || int_at(rs, "/status/replicas") > 0)
                && rs_broken(&store, rs, ctx)
        });
        let paused = d.at("/spec/paused").and_then(Value::as_bool) == Some(true);
        let template_broken = store.broken.get(&dkey).is_some_and(|b| {
            d.at("/spec/template").map(template_images).unwrap_or_default().iter().any(|i| b.contains(i))
        });
        let unhealthy = broken_running || (template_broken && !paused);
        Some((dkey, d, rss, unhealthy))
    }

    /// Health of `k8s/<context>/<namespace>/<deployment>`: healthy iff no pods of a broken image
    /// run or are being rolled out; None for an unknown key.
    pub fn healthy(&self, key: &str) -> Option<bool> {
        self.deployment(key).map(|(_, _, _, unhealthy)| !unhealthy)
    }

    /// Observable state of a Deployment key for test expectations.
    pub fn state(&self, key: &str) -> Option<Value> {
        let (_, d, _, unhealthy) = self.deployment(key)?;
        let images = d.at("/spec/template").map(template_images).unwrap_or_default();
        let revision: i64 = store::annotation(&d, "deployment.kubernetes.io/revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        Some(json!({
            "image": images.first().cloned().unwrap_or_default(),
            "images": images,
            "revision": revision,
            "replicas": int_at(&d, "/spec/replicas"),
            "ready": int_at(&d, "/status/readyReplicas"),
            "updated": int_at(&d, "/status/updatedReplicas"),
            "available": int_at(&d, "/status/availableReplicas"),
            "paused": d.at("/spec/paused").and_then(Value::as_bool).unwrap_or(false),
            "generation": int_at(&d, "/metadata/generation"),
            "healthy": !unhealthy,
        }))
    }
}

/// Runs the controller with pods ready at once until nothing changes (building history).
fn converge(store: &mut Store, key: &Key) {
    controller::sync_deployment(store, key);
    for _ in 0..CONVERGE_PASSES {
        if !controller::tick_one(store, true, key) {
            break;
        }
    }
}

/// A context name as URL path text: characters that would end or escape a path (`%`, `?`,
/// `#`, spaces, non-ASCII) are percent-encoded; `/` and `:` stay, since clients such as
/// kubectl re-join server paths unescaped anyway.
pub fn encode_context(ctx: &str) -> String {
    let mut out = String::new();
    for b in ctx.bytes() {
        if b.is_ascii_graphic() && !b"%?#".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes URL path text (the inverse of [`encode_context`]); None for malformed escapes.
pub fn decode_context(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A shared handle to the clusters.
pub type SharedK8s = Arc<K8sWorld>;

#[cfg(test)]
mod tests {
    use super::*;

    fn world(text: &str) -> K8sWorld {
        let scenario = Scenario::parse(std::path::Path::new("t.toml"), text).expect("scenario parses");
        K8sWorld::from_scenario(&scenario)
    }

    const TWO: &str = r#"
[[k8s.deployments]]
name = "a"
revisions = ["app:1", "app:2"]
[[k8s.deployments]]
name = "b"
revisions = ["app:1", "app:2"]
"#;

    fn settle(w: &K8sWorld) {
        for _ in 0..50 {
            if !w.tick() {
                return;
            }
        }
        panic!("the world did not settle in 50 ticks");
    }

    #[test]
    fn a_settled_world_ticks_without_work() {
        let w = world(TWO);
        settle(&w);
        let store = w.lock();
        assert!(store.dirty_deployments.is_empty(), "{:?}", store.dirty_deployments);
        assert!(store.dirty_replicasets.is_empty());
        assert!(store.unsettled.is_empty());
    }

    #[test]
    fn a_change_resyncs_its_own_deployment_only() {
        let w = world(TWO);
        settle(&w);
        let a = Key::new("sim", Kind::Deployment, "default", "a");
        let b = Key::new("sim", Kind::Deployment, "default", "b");
        let b_before = w.lock().objects[&b].clone();
        {
            let mut store = w.lock();
            let mut d = Value::clone(&store.objects[&a]);
            d["spec"]["replicas"] = json!(5);
            d["metadata"]["generation"] = json!(int_at(&d, "/metadata/generation") + 1);
            store.put(&a, d);
            assert_eq!(store.dirty_deployments.iter().collect::<Vec<_>>(), vec![&a]);
        }
        settle(&w);
        let store = w.lock();
        assert_eq!(int_at(&store.objects[&a], "/status/readyReplicas"), 5, "{}", store.objects[&a]);
        assert_eq!(store.objects[&b], b_before, "an untouched Deployment is not rewritten");
    }

    #[test]
    fn the_label_index_follows_label_changes_and_deletes() {
        let w = world(TWO);
        settle(&w);
        let mut store = w.lock();
        let found = |s: &Store, kind, value| -> Vec<String> {
            s.labelled("sim", kind, "default", ("app", value)).map(|(k, _)| k.name.clone()).collect()
        };
        assert_eq!(found(&store, Kind::Deployment, "a"), vec!["a"]);
        assert_eq!(found(&store, Kind::ReplicaSet, "a").len(), 2, "both revisions of a");
        let a = Key::new("sim", Kind::Deployment, "default", "a");
        let mut d = Value::clone(&store.objects[&a]);
        d["metadata"]["labels"] = json!({"app": "b", "tier": "web"});
        store.put(&a, d);
        assert!(found(&store, Kind::Deployment, "a").is_empty(), "the old label is gone");
        assert_eq!(found(&store, Kind::Deployment, "b"), vec!["a", "b"]);
        assert_eq!(store.labelled("sim", Kind::Deployment, "default", ("tier", "web")).count(), 1);
        store.delete(&a);
        assert_eq!(found(&store, Kind::Deployment, "b"), vec!["b"]);
        assert_eq!(store.labelled("sim", Kind::Deployment, "default", ("tier", "web")).count(), 0);
    }

    #[tokio::test]
    async fn a_sliced_tick_converges_like_a_whole_one() {
        // Enough Deployments that the sliced tick lets go of the store several times.
        let many: String = (0..(TICK_SLICE * 2 + 5))
            .map(|i| format!("[[k8s.deployments]]\nname = \"d{i}\"\nrevisions = [\"app:1\", \"app:2\"]\n"))
            .collect();
        let (sliced, whole) = (world(&many), world(&many));
        for w in [&sliced, &whole] {
            let mut store = w.lock();
            let keys: Vec<Key> =
                store.objects.keys().filter(|k| k.kind == Kind::Deployment).cloned().collect();
            for key in keys {
                let mut d = Value::clone(&store.objects[&key]);
                d["spec"]["replicas"] = json!(3);
                d["metadata"]["generation"] = json!(int_at(&d, "/metadata/generation") + 1);
                store.put(&key, d);
            }
        }
        let mut ticks = 0;
        while sliced.tick_in_slices().await {
            ticks += 1;
            assert!(ticks < 50, "the sliced ticks settle");
        }
        settle(&whole);
        let (a, b) = (sliced.lock(), whole.lock());
        for (key, d) in a.objects.iter().filter(|(k, _)| k.kind == Kind::Deployment) {
            assert_eq!(int_at(d, "/status/readyReplicas"), 3, "{}", key.name);
            assert_eq!(d.at("/status/replicas"), b.objects[key].at("/status/replicas"));
        }
    }

    #[test]
    fn a_deleted_replicaset_is_noticed_through_its_owner() {
        let w = world(TWO);
        settle(&w);
        let a = Key::new("sim", Kind::Deployment, "default", "a");
        let live = {
            let mut store = w.lock();
            let uid = str_at(&store.objects[&a], "/metadata/uid").unwrap_or_default().to_string();
            let owned = controller::owned_replicasets(&store, &a, &uid);
            assert_eq!(owned.len(), 2, "two revisions, two ReplicaSets");
            let (key, _) =
                owned.iter().find(|(_, rs)| int_at(rs, "/spec/replicas") > 0).cloned().expect("live");
            store.delete(&key);
            assert!(store.dirty_deployments.contains(&a));
            key
        };
        settle(&w);
        let store = w.lock();
        // The controller made the ReplicaSet of the current template again, and scaled it up.
        let rs = store.objects.get(&live).expect("recreated");
        assert_eq!(int_at(rs, "/status/readyReplicas"), int_at(&store.objects[&a], "/spec/replicas"));
    }
}
