//! The packaging, checked without a Docker engine or a cluster: the Kubernetes manifests in
//! `deploy/kubernetes/` go through the real `kubectl create --dry-run=client` (against a loopback
//! server that only answers API discovery), the Dockerfile is linted, and the Role is checked
//! against the requests rollbook actually sends: every Kubernetes primitive and every ready
//! runbook's scenario run against the simulator, each recorded request mapped to its RBAC verb.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::routing::get;
use rollbook::engine::{Engine, RunOptions};
use rollbook::providers::k8s::lease::{LeaseStore, opener};
use rollbook::providers::{ScaledClock, Settings};
use rollbook::run::journal::RunStatus;
use rollbook::sim::{RecordedRequest, Scenario, Sim};
use serde_json::{Value, json};

use crate::support::{serve, write};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/)")
    })
}

/// An API resource as discovery lists it: (name, kind, namespaced).
type Res = (&'static str, &'static str, bool);

/// The API groups the manifests use, as a real API server's legacy discovery lists them.
const GROUPS: &[(&str, &str, &[Res])] = &[
    (
        "",
        "v1",
        &[
            ("namespaces", "Namespace", false),
            ("serviceaccounts", "ServiceAccount", true),
            ("configmaps", "ConfigMap", true),
            ("secrets", "Secret", true),
            ("services", "Service", true),
            ("persistentvolumeclaims", "PersistentVolumeClaim", true),
        ],
    ),
    ("apps", "v1", &[("deployments", "Deployment", true)]),
    ("batch", "v1", &[("cronjobs", "CronJob", true), ("jobs", "Job", true)]),
    ("rbac.authorization.k8s.io", "v1", &[("roles", "Role", true), ("rolebindings", "RoleBinding", true)]),
    ("coordination.k8s.io", "v1", &[("leases", "Lease", true)]),
];

fn resource_list(group_version: &str, resources: &[Res]) -> Value {
    let list: Vec<Value> = resources
        .iter()
        .map(|(name, kind, namespaced)| {
            json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list})
}

/// A loopback server that answers API discovery for [`GROUPS`] and nothing else (a client-side
/// dry-run needs only the REST mapping).
async fn discovery_server() -> String {
    let mut router = axum::Router::new()
        .route("/api", get(|| async { axum::Json(json!({"kind": "APIVersions", "versions": ["v1"]})) }))
        .route(
            "/apis",
            get(|| async {
                let groups: Vec<Value> = GROUPS
                    .iter()
                    .filter(|(g, _, _)| !g.is_empty())
                    .map(|(g, v, _)| {
                        let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                        json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                    })
                    .collect();
                axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
            }),
        );
    for (g, v, res) in GROUPS {
        let (path, gv) = if g.is_empty() {
            (format!("/api/{v}"), v.to_string())
        } else {
            (format!("/apis/{g}/{v}"), format!("{g}/{v}"))
        };
        let body = resource_list(&gv, res);
        router = router.route(&path, get(move || async move { axum::Json(body) }));
    }
    serve(router).await
}

/// `kubectl create --dry-run=client -f deploy/kubernetes/ -o <output>` against the discovery
/// server; returns stdout, failing the test with kubectl's stderr.
async fn dry_run(output: &str) -> String {
    let base = discovery_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write(
        dir.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {base}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user: {{}}\ncurrent-context: c\n"
        ),
    );
    let manifests = repo().join("deploy/kubernetes");
    let output = output.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["create", "--dry-run=client", "--validate=false", "-f"])
            .arg(&manifests)
            .args(["-o", &output])
            .output()
            .expect("run kubectl")
    })
    .await
    .expect("kubectl thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl create --dry-run=client failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every object of `deploy/kubernetes/`, as kubectl parsed it.
async fn objects() -> Vec<Value> {
    let text = dry_run("json").await;
    // kubectl prints one JSON document per object (or a List), one after another.
    let mut out = Vec::new();
    for doc in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
        let v = doc.expect("kubectl prints JSON");
        match v["kind"].as_str() {
            Some("List") => out.extend(v["items"].as_array().cloned().unwrap_or_default()),
            _ => out.push(v),
        }
    }
    out
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} `{name}` in deploy/kubernetes"))
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_parse_with_kubectl_create_dry_run() {
    let names: BTreeSet<String> = dry_run("name").await.lines().map(str::to_string).collect();
    let want = [
        "configmap/rollbook-serve",
        "cronjob.batch/rollbook-rehearse",
        "deployment.apps/rollbook",
        "namespace/rollbook",
        "persistentvolumeclaim/rollbook-state",
        "role.rbac.authorization.k8s.io/rollbook-argocd",
        "role.rbac.authorization.k8s.io/rollbook-deployments",
        "role.rbac.authorization.k8s.io/rollbook-flux",
        "role.rbac.authorization.k8s.io/rollbook-locks",
        "rolebinding.rbac.authorization.k8s.io/rollbook-argocd",
        "rolebinding.rbac.authorization.k8s.io/rollbook-deployments",
        "rolebinding.rbac.authorization.k8s.io/rollbook-flux",
        "rolebinding.rbac.authorization.k8s.io/rollbook-locks",
        "service/rollbook",
        "serviceaccount/rollbook",
    ];
    assert_eq!(names, want.iter().map(|s| s.to_string()).collect(), "the objects of deploy/kubernetes");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deployment_runs_two_locked_replicas_unprivileged_on_a_read_only_root() {
    let objs = objects().await;
    let d = find(&objs, "Deployment", "rollbook");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "rollbook");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(args.first(), Some(&"serve"), "{args:?}");
    let lock =
        args.iter().find_map(|a| a.strip_prefix("--lock=k8s:")).expect("--lock=k8s:<context>/<namespace>");
    let store = LeaseStore::parse(lock).expect("the lock spec parses as rollbook parses it");
    let _ = store;
    let lock_ns = lock.rsplit_once('/').map(|(_, ns)| ns).unwrap_or_default();
    assert_eq!(lock_ns, "rollbook", "the Leases live where the Role for them is");
    assert!(args.contains(&"--state-dir=/var/lib/rollbook"), "{args:?}");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    let mounts: BTreeMap<&str, &str> = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["mountPath"].as_str()?, m["name"].as_str()?)))
        .collect();
    // The only writable paths are volumes: the state directory (the claim) and /tmp.
    assert_eq!(mounts.get("/var/lib/rollbook"), Some(&"state"));
    assert_eq!(mounts.get("/tmp"), Some(&"tmp"));
    assert_eq!(mounts.get("/etc/rollbook"), Some(&"config"));
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    let vol = |name: &str| volumes.iter().find(|v| v["name"] == name).cloned().unwrap_or_default();
    assert_eq!(vol("state")["persistentVolumeClaim"]["claimName"], "rollbook-state");
    assert_eq!(vol("config")["configMap"]["name"], "rollbook-serve");
    let pvc = find(&objs, "PersistentVolumeClaim", "rollbook-state");
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany", "two replicas share the state directory");
    // The probes are the server's.
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");

    // The serve config is TOML that names a listen address explicitly (not loopback in a pod).
    let config =
        find(&objs, "ConfigMap", "rollbook-serve")["data"]["serve.toml"].as_str().unwrap_or_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "serve.toml", config);
    let loaded = rollbook::serve::config::Config::parse(&path, config, &dir.path().join("state"))
        .unwrap_or_else(|e| panic!("the ConfigMap's serve.toml is refused by rollbook serve: {e}"));
    assert_eq!(loaded.server.listen.to_string(), "0.0.0.0:9095");
    assert!(loaded.server.resume_on_start, "a replaced replica's runs are resumed");
    assert!(!loaded.routes.is_empty());
    let svc = find(&objs, "Service", "rollbook");
    assert_eq!(svc["spec"]["ports"][0]["port"], 9095);

    let cron = find(&objs, "CronJob", "rollbook-rehearse");
    let job = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(job["args"][0], "test", "the nightly job rehearses with `rollbook test`");
    assert_eq!(job["securityContext"]["readOnlyRootFilesystem"], true);
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile at the repository root");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = t.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    out
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another() {
    let ins = dockerfile();
    let froms: Vec<&String> = ins.iter().filter(|(op, _)| op == "FROM").map(|(_, a)| a).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].starts_with("rust:") && froms[0].ends_with(" AS build"),
        "a Rust builder first: {froms:?}"
    );
    let last = froms.last().map(|s| s.as_str()).unwrap_or_default();
    assert!(last.contains("-slim"), "a slim runtime last: {last}");
    // The runtime stage: everything after the last FROM.
    let start = ins.iter().rposition(|(op, _)| op == "FROM").unwrap_or(0);
    let runtime = &ins[start..];
    let user = runtime
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.clone())
        .expect("USER in the runtime stage");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(uid != "root" && uid != "0" && !uid.is_empty(), "runs as a non-root user: {user}");
    let uid: u32 = uid.parse().expect("a numeric uid, so runAsNonRoot can check it");
    let deployment =
        std::fs::read_to_string(repo().join("deploy/kubernetes/deployment.yaml")).unwrap_or_default();
    assert!(deployment.contains(&format!("runAsUser: {uid}")), "the Deployment runs as the image's user");

    // The binary the runtime copies is the one the builder builds.
    let build =
        ins.iter().find(|(op, a)| op == "RUN" && a.contains("cargo build")).expect("a cargo build step");
    assert!(build.1.contains("--profile dist") && build.1.contains("--locked"), "{}", build.1);
    assert!(build.1.contains("target/dist/rollbook"), "the built binary is installed: {}", build.1);
    assert!(build.1.contains("/out/usr/local/bin/rollbook"), "{}", build.1);
    assert!(
        runtime.iter().any(|(op, a)| op == "COPY" && a.starts_with("--from=build /out/")),
        "the runtime copies the builder's /out"
    );
    let entry = runtime.iter().find(|(op, _)| op == "ENTRYPOINT").map(|(_, a)| a.clone()).unwrap_or_default();
    assert!(entry.contains("/usr/local/bin/rollbook"), "{entry}");
    // The state directory is a volume and the default state dir; nothing else needs writing.
    assert!(runtime.iter().any(|(op, a)| op == "VOLUME" && a.contains("/var/lib/rollbook")));
    assert!(runtime.iter().any(|(op, a)| op == "ENV" && a.contains("ROLLBOOK_STATE_DIR=/var/lib/rollbook")));
    // The binary embeds stdlib/ and runbooks/: the build context must keep them.
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    let ignored: Vec<&str> =
        ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for kept in ["src", "stdlib", "runbooks", "Cargo.toml", "Cargo.lock", "tests", "benches", "examples"] {
        assert!(!ignored.contains(&kept), "{kept} is needed by the build");
    }
    for gone in ["target", ".git"] {
        assert!(ignored.contains(&gone), "{gone} stays out of the build context");
    }
    // No secret is baked in.
    for (op, a) in &ins {
        let upper = a.to_ascii_uppercase();
        if op == "ENV" || op == "ARG" {
            for word in ["TOKEN", "SECRET", "PASSWORD", "CLIENT_SECRET"] {
                assert!(!upper.contains(word), "{op} {a} looks like a baked-in secret");
            }
        }
        assert!(!(op == "COPY" || op == "ADD") || !a.contains(".kube"), "{op} {a} copies credentials");
    }
    assert!(ins.iter().all(|(op, _)| op != "ADD"), "COPY, not ADD (no remote fetches)");
}

/// What a recorded request asks of RBAC: (API group, resource or resource/subresource, verb).
type Ask = (String, String, String);

/// Maps one request to the Kubernetes API to its RBAC verb; None for discovery and other
/// non-resource paths (granted to every authenticated user by `system:discovery`).
fn rbac(r: &RecordedRequest) -> Option<Ask> {
    let rest = r.path.strip_prefix("/k8s/")?;
    let at = rest.find("/api/").or_else(|| rest.find("/apis/"))?;
    let segs: Vec<&str> = rest[at + 1..].split('/').filter(|s| !s.is_empty()).collect();
    let (group, after) = match segs.as_slice() {
        ["api", _v, tail @ ..] => (String::new(), tail),
        ["apis", g, _v, tail @ ..] => (g.to_string(), tail),
        _ => return None,
    };
    let after: &[&str] = match after {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, name, sub) = match after {
        [res] => (*res, None, None),
        [res, name] => (*res, Some(*name), None),
        [res, name, sub] => (*res, Some(*name), Some(*sub)),
        _ => return None,
    };
    let watch =
        r.query.as_deref().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (r.method.as_str(), name) {
        ("GET", _) if watch => "watch",
        ("GET" | "HEAD", Some(_)) => "get",
        ("GET" | "HEAD", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return None,
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    Some((group, resource, verb.to_string()))
}

/// Every Kubernetes primitive, called once each, in an order that keeps each one meaningful.
const EVERY_K8S_PRIMITIVE: &str = r#"
let t = #{ context: "prod", namespace: "shop", deployment: "web" };
k8s::get(t);
k8s::history(t);
k8s::pause(t);
k8s::resume(t);
k8s::undo(t);
k8s::status(t + #{ timeout: "30s" });
k8s::set_image(t + #{ image: "shop/web:1.6.0" });
k8s::restart(t);
k8s::scale(t + #{ replicas: 3 });
"#;

const K8S_WORLD: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
"#;

/// A scenario param as `-p KEY=` gives it.
fn param_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(param_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Runs `runbook` with `params` against `scenario`, with Lease locks in `prod/rollbook` when the
/// world has that context; returns the run's report and the Kubernetes requests the simulator
/// recorded.
async fn record(
    scenario: Scenario,
    runbook: &Path,
    params: &[(String, String)],
    yes: bool,
) -> (rollbook::engine::RunReport, Vec<RecordedRequest>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let has_prod = scenario.k8s.deployments.iter().any(|d| d.context == "prod");
    let sim = Sim::start(scenario, None).await.expect("simulator starts");
    let kubeconfig = write(dir.path(), "kubeconfig", &sim.kubeconfig_yaml());
    let mut settings = Settings { kubeconfig: Some(kubeconfig), ..Settings::default() };
    settings.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), sim.arm_endpoint());
    settings.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "rbac-test".into());
    settings.env.insert("AZURE_SUBSCRIPTION_ID".into(), "00000000-0000-0000-0000-000000000000".into());
    let engine = Engine::new();
    let loaded = engine.load(runbook).unwrap_or_else(|e| panic!("{}: {e}", runbook.display()));
    let mut opts = RunOptions::new(dir.path().join("state"));
    opts.settings = settings.clone();
    opts.url_rewrites = sim.url_rewrites();
    // As `rollbook test` runs them: waits pass 50 times faster than real time, and the
    // simulated rollouts, which run in real time, still finish within them.
    opts.clock = Arc::new(ScaledClock::new(50.0));
    opts.yes = yes;
    if has_prod {
        // The namespace the Leases live in exists, as the manifests make it (made here, before
        // the record counts, since rollbook itself never creates it).
        let url = sim.k8s_cluster_url("prod").expect("prod is served");
        let made = reqwest::Client::new()
            .post(format!("{url}/api/v1/namespaces"))
            .json(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rollbook"}}))
            .send()
            .await
            .expect("create the rollbook namespace");
        assert!(made.status().is_success(), "namespace rollbook: {}", made.status());
        opts.locks = Some(opener(settings, LeaseStore::parse("prod/rollbook").expect("lock spec")));
    }
    let before = sim.requests().len();
    let report = engine.run(&loaded, params, opts).await.expect("run starts");
    assert!(report.journal.exists(), "{}: the run left a journal", runbook.display());
    let k8s: Vec<RecordedRequest> =
        sim.requests().into_iter().skip(before).filter(|r| r.path.starts_with("/k8s/")).collect();
    sim.shutdown().await;
    (report, k8s)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_role_grants_exactly_the_verbs_the_primitives_send() {
    // Every k8s primitive the binary documents is in the script (a new one must be added here).
    let docs = crate::support::rollbook(&["docs", "--format", "markdown"]);
    let docs = String::from_utf8_lossy(&docs.stdout);
    let documented: BTreeSet<String> = docs
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("k8s::") && w.len() > 5)
        .map(str::to_string)
        .collect();
    assert!(documented.len() >= 9, "k8s primitives in `rollbook docs`: {documented:?}");
    for p in &documented {
        assert!(EVERY_K8S_PRIMITIVE.contains(&format!("{p}(")), "{p} is not exercised by the Role test");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let script = write(dir.path(), "every-k8s.rhai", EVERY_K8S_PRIMITIVE);
    let world = Scenario::parse(Path::new("k8s.toml"), K8S_WORLD).expect("world parses");
    let (report, mut requests) = record(world, &script, &[], true).await;
    assert_eq!(report.status, RunStatus::Succeeded, "every primitive ran: {:?}", report.error);

    // And every ready runbook, against each of its scenarios.
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(repo().join("runbooks"))
        .expect("runbooks/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml") && p.file_name().is_some_and(|n| n != "rollbook.toml")
        })
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 10, "{scenarios:?}");
    for path in &scenarios {
        let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let Some(test) = scenario.test.clone() else { continue };
        let runbook = path.parent().unwrap_or(Path::new(".")).join(&test.runbook);
        let params: Vec<(String, String)> =
            test.params.iter().map(|(k, v)| (k.clone(), param_text(v))).collect();
        requests.extend(record(scenario, &runbook, &params, test.yes).await.1);
    }

    let asked: BTreeSet<Ask> = requests.iter().filter_map(rbac).collect();
    eprintln!("rbac asked by the record: {asked:#?}");
    // The record is the source: it must show reads, writes and the locks.
    assert!(asked.iter().any(|(g, r, v)| g == "apps" && r == "deployments" && v == "patch"), "{asked:?}");
    assert!(asked.iter().any(|(g, r, _)| g == "coordination.k8s.io" && r == "leases"), "{asked:?}");

    let objs = objects().await;
    let mut granted: BTreeSet<Ask> = BTreeSet::new();
    for role in objs.iter().filter(|o| o["kind"] == "Role") {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            };
            for g in list("apiGroups") {
                for r in list("resources") {
                    for v in list("verbs") {
                        assert!(
                            g != "*" && r != "*" && v != "*",
                            "no wildcards in {}",
                            role["metadata"]["name"]
                        );
                        granted.insert((g.clone(), r.clone(), v));
                    }
                }
            }
        }
    }
    let missing: Vec<&Ask> = asked.difference(&granted).collect();
    assert!(missing.is_empty(), "the Role lacks (group, resource, verb) that rollbook sends: {missing:?}");
    let unused: Vec<&Ask> = granted.difference(&asked).collect();
    assert!(unused.is_empty(), "the Role grants what rollbook never sends: {unused:?}");
}

#[test]
fn a_request_maps_to_its_rbac_verb() {
    let req = |method: &str, path: &str, query: Option<&str>| RecordedRequest {
        method: method.into(),
        path: path.into(),
        query: query.map(String::from),
        status: Some(200),
        body: None,
        fault: false,
        dropped: false,
    };
    let ask = |g: &str, r: &str, v: &str| Some((g.to_string(), r.to_string(), v.to_string()));
    let d = "/k8s/prod/apis/apps/v1/namespaces/shop/deployments";
    assert_eq!(rbac(&req("GET", &format!("{d}/web"), None)), ask("apps", "deployments", "get"));
    assert_eq!(rbac(&req("GET", d, Some("fieldSelector=x&watch=true"))), ask("apps", "deployments", "watch"));
    assert_eq!(rbac(&req("GET", d, None)), ask("apps", "deployments", "list"));
    assert_eq!(
        rbac(&req("PATCH", &format!("{d}/web/scale"), None)),
        ask("apps", "deployments/scale", "patch")
    );
    assert_eq!(
        rbac(&req("PUT", "/k8s/a/b/apis/coordination.k8s.io/v1/namespaces/x/leases/l", None)),
        ask("coordination.k8s.io", "leases", "update")
    );
    assert_eq!(
        rbac(&req("DELETE", "/k8s/prod/api/v1/namespaces/x/configmaps/c", None)),
        ask("", "configmaps", "delete")
    );
    assert_eq!(rbac(&req("GET", "/k8s/prod/apis", None)), None, "discovery");
    assert_eq!(rbac(&req("GET", "/k8s/prod/apis/apps/v1", None)), None, "discovery");
    assert_eq!(rbac(&req("GET", "/health/metrics", None)), None);
}
