//! `World`: a scenario built in code, written out as the TOML the simulator reads.
//!
//! ```ignore
//! let world = World::new("web 1.5.0 is stuck")
//!     .deployment(Deployment::new("prod", "shop", "web").revisions(["shop/web:1.4.0", "shop/web:1.5.0"]).broken(["shop/web:1.5.0"]))
//!     .site(Site::new("rg-shop", "shop-web").slot("production", "1.5.0").slot("staging", "1.4.0"))
//!     .health("https://shop.example.com/healthz", "appservice/rg-shop/shop-web")
//!     .fault(Fault::new("*/slotsswap").method("POST").status(500).applied());
//! ```

use serde_json::{Map, Value, json};

/// A simulated world: every section of a scenario file, built in code.
#[derive(Clone, Debug, Default)]
pub struct World {
    root: Map<String, Value>,
    /// Raw TOML appended after the built sections (for keys the builder has no method for).
    extra: String,
}

fn push(root: &mut Map<String, Value>, path: &[&str], item: Value) {
    let (last, parents) = path.split_last().expect("a section path");
    let mut table = root;
    for p in parents {
        table = table.entry(p.to_string()).or_insert_with(|| json!({})).as_object_mut().expect("a table");
    }
    table.entry(last.to_string()).or_insert_with(|| json!([])).as_array_mut().expect("an array").push(item);
}

fn strings<I, S>(items: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
}

impl World {
    /// An empty world named `name` (the name `rollbook test` and `--sandbox` show).
    pub fn new(name: &str) -> World {
        let mut root = Map::new();
        root.insert("name".into(), json!(name));
        World { root, extra: String::new() }
    }

    /// A world from scenario TOML as it is (a test that keeps its scenario text).
    pub fn toml(text: &str) -> World {
        World { root: Map::new(), extra: text.to_string() }
    }

    /// Adds a Kubernetes Deployment (`[[k8s.deployments]]`).
    pub fn deployment(mut self, d: Deployment) -> World {
        push(&mut self.root, &["k8s", "deployments"], d.0);
        self
    }

    /// Adds an AKS cluster (`[[aks.clusters]]`) whose credentials reach `context`.
    pub fn aks(mut self, group: &str, name: &str, context: &str) -> World {
        push(
            &mut self.root,
            &["aks", "clusters"],
            json!({ "group": group, "name": name, "context": context }),
        );
        self
    }

    /// Adds an App Service site (`[[appservice.sites]]`).
    pub fn site(mut self, s: Site) -> World {
        push(&mut self.root, &["appservice", "sites"], s.0);
        self
    }

    /// Adds an entry of a resource group's ARM deployment history (`[[arm.deployments]]`).
    pub fn arm(mut self, d: ArmDeployment) -> World {
        push(&mut self.root, &["arm", "deployments"], d.0);
        self
    }

    /// Adds a Logic Apps workflow (`[[logicapp.workflows]]`).
    pub fn workflow(mut self, w: Workflow) -> World {
        push(&mut self.root, &["logicapp", "workflows"], w.0);
        self
    }

    /// A health URL that answers as the resource `follows` is (`[[health]]`).
    pub fn health(mut self, url: &str, follows: &str) -> World {
        push(&mut self.root, &["health"], json!({ "url": url, "follows": follows }));
        self
    }

    /// A Prometheus series (`[[prometheus]]`).
    pub fn prometheus(mut self, p: Prometheus) -> World {
        push(&mut self.root, &["prometheus"], p.0);
        self
    }

    /// A fault injected into the simulator's answers (`[[faults]]`).
    pub fn fault(mut self, f: Fault) -> World {
        push(&mut self.root, &["faults"], f.0);
        self
    }

    /// `[sim] key = value` (`lro_polls`, `latency`, `rollout_steps`).
    pub fn sim(mut self, key: &str, value: impl Into<Value>) -> World {
        let sim = self.root.entry("sim").or_insert_with(|| json!({}));
        sim.as_object_mut().expect("[sim] is a table").insert(key.into(), value.into());
        self
    }

    /// `[test]`: the runbook `rollbook test` runs, relative to the scenario file, and its params.
    pub fn test(mut self, runbook: &str, params: &[(&str, &str)]) -> World {
        let params: Map<String, Value> = params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let test = self.root.entry("test").or_insert_with(|| json!({}));
        let test = test.as_object_mut().expect("[test] is a table");
        test.insert("runbook".into(), json!(runbook));
        test.insert("params".into(), Value::Object(params));
        self
    }

    /// `[test.expect] key = value` (`outcome`, `mutations`, `state`, …).
    pub fn expect(mut self, key: &str, value: impl Into<Value>) -> World {
        let test = self.root.entry("test").or_insert_with(|| json!({}));
        let expect =
            test.as_object_mut().expect("[test] is a table").entry("expect").or_insert_with(|| json!({}));
        expect.as_object_mut().expect("[test.expect] is a table").insert(key.into(), value.into());
        self
    }

    /// The scenario file's text.
    pub fn to_toml(&self) -> String {
        let built = if self.root.is_empty() {
            String::new()
        } else {
            toml::to_string(&Value::Object(self.root.clone())).expect("a world serializes to TOML")
        };
        format!("{built}\n{}", self.extra)
    }
}

/// A Kubernetes Deployment of a [`World`].
#[derive(Clone, Debug)]
pub struct Deployment(Value);

impl Deployment {
    /// `context`/`namespace`/`name`, one replica, no revisions yet.
    pub fn new(context: &str, namespace: &str, name: &str) -> Deployment {
        Deployment(json!({ "context": context, "namespace": namespace, "name": name }))
    }

    /// The image of each revision, oldest first; the last is live.
    pub fn revisions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, images: I) -> Deployment {
        self.0["revisions"] = strings(images);
        self
    }

    /// Images whose pods never become ready.
    pub fn broken<I: IntoIterator<Item = S>, S: Into<String>>(mut self, images: I) -> Deployment {
        self.0["broken"] = strings(images);
        self
    }

    /// Desired replicas.
    pub fn replicas(mut self, n: u32) -> Deployment {
        self.0["replicas"] = json!(n);
        self
    }

    /// Starts paused.
    pub fn paused(mut self) -> Deployment {
        self.0["paused"] = json!(true);
        self
    }
}

/// An App Service site of a [`World`].
#[derive(Clone, Debug)]
pub struct Site(Value);

impl Site {
    /// `group`/`name` with no slots yet (add `production`).
    pub fn new(group: &str, name: &str) -> Site {
        Site(json!({ "group": group, "name": name, "slots": {} }))
    }

    /// A slot and the build it runs; `production` is the site itself.
    pub fn slot(mut self, slot: &str, build: &str) -> Site {
        self.0["slots"][slot] = json!(build);
        self
    }

    /// Builds that make health fail.
    pub fn broken<I: IntoIterator<Item = S>, S: Into<String>>(mut self, builds: I) -> Site {
        self.0["broken"] = strings(builds);
        self
    }
}

/// One entry of a resource group's ARM deployment history in a [`World`].
#[derive(Clone, Debug)]
pub struct ArmDeployment(Value);

impl ArmDeployment {
    /// A deployment `name` in `group`, in `state` (`Succeeded`, `Failed`, `Canceled`) at `timestamp`.
    pub fn new(group: &str, name: &str, state: &str, timestamp: &str) -> ArmDeployment {
        ArmDeployment(json!({ "group": group, "name": name, "state": state, "timestamp": timestamp }))
    }

    /// Its template (JSON-shaped).
    pub fn template(mut self, template: Value) -> ArmDeployment {
        self.0["template"] = template;
        self
    }

    /// Its parameters, `{ name = { value = … } }`.
    pub fn parameters(mut self, parameters: Value) -> ArmDeployment {
        self.0["parameters"] = parameters;
        self
    }

    /// This deployment's content makes health fail.
    pub fn broken(mut self) -> ArmDeployment {
        self.0["broken"] = json!(true);
        self
    }
}

/// A Logic Apps workflow of a [`World`].
#[derive(Clone, Debug)]
pub struct Workflow(Value);

impl Workflow {
    /// `group`/`name` with its version ids, oldest first; the last is current.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(group: &str, name: &str, versions: I) -> Workflow {
        Workflow(json!({ "group": group, "name": name, "versions": strings(versions) }))
    }

    /// Versions whose definition makes health fail.
    pub fn broken<I: IntoIterator<Item = S>, S: Into<String>>(mut self, versions: I) -> Workflow {
        self.0["broken"] = strings(versions);
        self
    }

    /// Starts disabled.
    pub fn disabled(mut self) -> Workflow {
        self.0["state"] = json!("Disabled");
        self
    }
}

/// A Prometheus series of a [`World`].
#[derive(Clone, Debug)]
pub struct Prometheus(Value);

impl Prometheus {
    /// The server at `url` answers `query` with `value`.
    pub fn new(url: &str, query: &str, value: f64) -> Prometheus {
        Prometheus(json!({ "url": url, "query": query, "value": value }))
    }

    /// Answers `broken_value` while the resource `key` is unhealthy.
    pub fn follows(mut self, key: &str, broken_value: f64) -> Prometheus {
        self.0["follows"] = json!(key);
        self.0["broken_value"] = json!(broken_value);
        self
    }
}

/// A fault injected into the simulator's answers in a [`World`].
#[derive(Clone, Debug)]
pub struct Fault(Value);

impl Fault {
    /// A fault on requests whose path matches the glob `path` (any method, once).
    pub fn new(path: &str) -> Fault {
        Fault(json!({ "path": path }))
    }

    /// Only requests with this method.
    pub fn method(mut self, method: &str) -> Fault {
        self.0["method"] = json!(method);
        self
    }

    /// Answer this status instead.
    pub fn status(mut self, status: u16) -> Fault {
        self.0["status"] = json!(status);
        self
    }

    /// The `Retry-After` to send ("2s").
    pub fn retry_after(mut self, d: &str) -> Fault {
        self.0["retry_after"] = json!(d);
        self
    }

    /// Close the connection without an answer.
    pub fn dropped(mut self) -> Fault {
        self.0["drop"] = json!(true);
        self
    }

    /// How many matching requests get the fault.
    pub fn times(mut self, n: u32) -> Fault {
        self.0["times"] = json!(n);
        self
    }

    /// The request takes effect, then the fault is answered (a lost answer).
    pub fn applied(mut self) -> Fault {
        self.0["applied"] = json!(true);
        self
    }

    /// Extra delay for matching answers ("150ms").
    pub fn latency(mut self, d: &str) -> Fault {
        self.0["latency"] = json!(d);
        self
    }
}
