//! `k8s::*` against the simulator over loopback: conformance with kubectl 1.32 (two simulators
//! from one scenario, kubectl on one, rollbook on the other, the results compared), request
//! counts, dry-run leaving the world unchanged, and faults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollbook::engine::{Engine, RunOptions, RunReport};
use rollbook::providers::Settings;
use rollbook::run::journal::RunStatus;
use rollbook::sim::{RecordedRequest, Scenario, Sim, SimHandle};
use serde_json::{Value, json};

/// A simulator with its kubeconfig written to a temp dir.
pub struct World {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub async fn start(toml: &str) -> World {
    let scenario = Scenario::parse(Path::new("test.toml"), toml).expect("scenario parses");
    let sim = Sim::start(scenario, None).await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig_yaml()).expect("kubeconfig written");
    World { sim, dir, kubeconfig }
}

impl World {
    /// Runs a runbook through the engine with `--kubeconfig` pointing at the simulator.
    pub async fn run(&self, script: &str, dry_run: bool) -> RunReport {
        self.run_with(script, |o| o.dry_run = dry_run).await
    }

    pub async fn run_with(&self, script: &str, tweak: impl FnOnce(&mut RunOptions)) -> RunReport {
        let path = self.dir.path().join("runbook.rhai");
        std::fs::write(&path, script).expect("runbook written");
        let engine = Engine::new();
        let runbook = engine.load(&path).expect("runbook loads");
        let mut opts = RunOptions::new(self.dir.path().join("state"));
        opts.settings = Settings { kubeconfig: Some(self.kubeconfig.clone()), ..Settings::default() };
        tweak(&mut opts);
        engine.run(&runbook, &[], opts).await.expect("run starts")
    }

    /// Runs a script whose last expression is the value wanted; panics unless it succeeded.
    pub async fn value(&self, script: &str) -> Value {
        let report = self.run(script, false).await;
        assert_eq!(report.status, RunStatus::Succeeded, "{script}\n{:?}", report.error);
        report.value.unwrap_or(Value::Null)
    }

    pub fn state(&self, key: &str) -> Value {
        self.sim.resource_state(key).expect("known key")
    }

    pub fn requests_since(&self, n: usize) -> Vec<RecordedRequest> {
        self.sim.requests()[n..].to_vec()
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The installed kubectl with a fresh discovery cache.
pub async fn kubectl(kc: &Path, args: &[&str]) -> Out {
    let cache = tempfile::tempdir().expect("cache dir");
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["-n", "shop"])
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Drops what differs between two servers for reasons unrelated to the commands compared.
fn scrub(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "lastUpdateTime",
            "lastTransitionTime",
        ] {
            m.remove(k);
        }
        for (_, x) in m.iter_mut() {
            scrub(x);
        }
    } else if let Some(a) = v.as_array_mut() {
        for x in a {
            scrub(x);
        }
    }
}

/// The Deployment (metadata, spec) and its ReplicaSets, scrubbed, as the server stores them.
pub async fn snapshot(sim: &SimHandle, ctx: &str) -> Value {
    let api = sim.k8s_server_url(ctx).expect("context served");
    let ns = format!("{api}/apis/apps/v1/namespaces/shop");
    let mut d: Value = reqwest::get(format!("{ns}/deployments/web"))
        .await
        .expect("GET deployment")
        .json()
        .await
        .expect("json");
    let mut rs: Value = reqwest::get(format!("{ns}/replicasets"))
        .await
        .expect("LIST replicasets")
        .json()
        .await
        .expect("json");
    d.as_object_mut().map(|m| m.remove("status"));
    let mut items: Vec<Value> = rs["items"].as_array_mut().map(std::mem::take).unwrap_or_default();
    for i in &mut items {
        i.as_object_mut().map(|m| m.remove("status"));
    }
    let mut out = json!({ "deployment": d, "replicasets": items });
    scrub(&mut out);
    // A restart's timestamp differs by the second between two runs, and with it the template
    // hash; name each hash after its revision and check the timestamp's format instead.
    let mut text = out.to_string();
    for rs in out["replicasets"].as_array().into_iter().flatten() {
        if let (Some(hash), Some(rev)) = (
            rs["metadata"]["labels"]["pod-template-hash"].as_str(),
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str(),
        ) {
            text = text.replace(hash, &format!("hash-of-revision-{rev}"));
        }
    }
    let stamp = regex_lite_stamp(&text);
    for s in stamp {
        text = text.replace(&s, "<restartedAt>");
    }
    let mut out: Value = serde_json::from_str(&text).expect("json");
    if let Some(items) = out["replicasets"].as_array_mut() {
        items.sort_by_key(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string());
    }
    out
}

/// The values of `kubectl.kubernetes.io/restartedAt` in a JSON text, each checked to be
/// RFC 3339 with whole seconds (Go's `time.RFC3339`).
fn regex_lite_stamp(text: &str) -> Vec<String> {
    let key = "\"kubectl.kubernetes.io/restartedAt\":\"";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(key) {
        rest = &rest[i + key.len()..];
        let value: String = rest.chars().take_while(|c| *c != '"').collect();
        let b = value.as_bytes();
        let ok = b.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && (&value[19..] == "Z" || (value.len() == 25 && (b[19] == b'+' || b[19] == b'-')));
        assert!(ok, "restartedAt `{value}` is not RFC 3339 with whole seconds");
        out.push(value);
    }
    out
}

/// Waits until the Deployment `shop/web` of `ctx` has finished its rollout, or is paused. A setup
/// that changes it starts a rollout, and a command sent while one is under way lands on a
/// different step of it in each world (kubectl starts a process first, rollbook does not), so
/// the two worlds would end up rightly different: ReplicaSets scaled in other steps have other
/// generations.
pub async fn settle(sim: &SimHandle, ctx: &str, why: &str) {
    let api = sim.k8s_server_url(ctx).expect("context served");
    let url = format!("{api}/apis/apps/v1/namespaces/shop/deployments/web");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = reqwest::get(&url).await.and_then(|a| a.error_for_status()).expect("GET deployment");
        let d: Value = answer.json().await.expect("json");
        let (status, want) = (&d["status"], d["spec"]["replicas"].as_i64().unwrap_or(1));
        let observed = status["observedGeneration"].as_i64().unwrap_or(0)
            >= d["metadata"]["generation"].as_i64().unwrap_or(0);
        let rolled_out = ["updatedReplicas", "replicas", "availableReplicas"]
            .iter()
            .all(|k| status[*k].as_i64().unwrap_or(0) == want);
        if observed && (rolled_out || d["spec"]["paused"] == true) {
            return;
        }
        assert!(Instant::now() < deadline, "{why}: the rollout of web did not finish: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until both worlds have the same Deployment and ReplicaSets (rollouts take a few ticks).
pub async fn assert_same_world(a: &SimHandle, b: &SimHandle, ctx: &str, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (x, y) = (snapshot(a, ctx).await, snapshot(b, ctx).await);
        if x == y {
            return;
        }
        if Instant::now() > deadline {
            let (xs, ys) =
                (serde_json::to_string_pretty(&x).unwrap(), serde_json::to_string_pretty(&y).unwrap());
            let first = xs.lines().zip(ys.lines()).position(|(l, r)| l != r).unwrap_or(0);
            panic!(
                "{why}: kubectl's world and rollbook's differ from line {first}\n--- kubectl\n{xs}\n--- rollbook\n{ys}"
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn history_of(sim_kc: &Path) -> impl std::future::Future<Output = Out> + '_ {
    kubectl(sim_kc, &["rollout", "history", "deploy/web"])
}

const THREE: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.3.0", "shop/web:1.4.0", "shop/web:1.5.0"]
"#;

const KEY: &str = "k8s/prod/shop/web";

fn undo_script(to_revision: Option<i64>) -> String {
    let to = to_revision.map(|n| format!(", to_revision: {n}")).unwrap_or_default();
    format!(
        "let r = (); try {{ r = k8s::undo(#{{ context: \"prod\", namespace: \"shop\", deployment: \"web\"{to} }}); }} catch (e) {{ r = e; }} r"
    )
}

/// Starts two simulators from `toml`, runs `setup` kubectl commands on both, then kubectl's
/// undo on one and `k8s::undo` on the other; compares worlds, history and messages.
async fn conformance(name: &str, toml: &str, setup: &[&[&str]], to_revision: Option<i64>) -> Value {
    let (theirs, ours) = (start(toml).await, start(toml).await);
    for args in setup {
        for w in [&theirs, &ours] {
            let out = kubectl(&w.kubeconfig, args).await;
            assert_eq!(out.code, 0, "{name}: setup {args:?}: {}", out.stderr);
        }
    }
    for w in [&theirs, &ours] {
        settle(&w.sim, "prod", &format!("{name}: setup")).await;
    }
    assert_same_world(&theirs.sim, &ours.sim, "prod", &format!("{name}: before")).await;
    let flag = to_revision.map(|n| format!("--to-revision={n}"));
    let mut args = vec!["rollout", "undo", "deploy/web"];
    if let Some(f) = &flag {
        args.push(f);
    }
    let (t0, o0) = (theirs.sim.requests().len(), ours.sim.requests().len());
    let k = kubectl(&theirs.kubeconfig, &args).await;
    let r = ours.value(&undo_script(to_revision)).await;
    assert_fewer_requests(name, &theirs.requests_since(t0), &ours.requests_since(o0));

    if k.code == 0 {
        assert!(r.get("kind").is_none(), "{name}: kubectl succeeded, rollbook threw {r}");
        if k.stdout.contains("skipped rollback") {
            assert_eq!(r["changed"], false, "{name}: {r}");
        } else {
            assert_eq!(k.stdout, "deployment.apps/web rolled back\n", "{name}");
            assert_eq!(r["changed"], true, "{name}: {r}");
        }
    } else {
        let msg = k.stderr.trim_end().strip_prefix("error: ").unwrap_or(&k.stderr).to_string();
        assert!(
            r["message"].as_str().unwrap_or("").starts_with(&msg),
            "{name}: kubectl said `{msg}`, rollbook `{r}`"
        );
    }
    assert_same_world(&theirs.sim, &ours.sim, "prod", name).await;
    let (h1, h2) = (history_of(&theirs.kubeconfig).await, history_of(&ours.kubeconfig).await);
    assert_eq!(h1.stdout, h2.stdout, "{name}: rollout history");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_matches_kubectl_on_every_history() {
    let r = conformance("three revisions", THREE, &[], None).await;
    assert_eq!((r["from_revision"].as_i64(), r["to_revision"].as_i64()), (Some(3), Some(2)));
    assert_eq!(r["images"], json!({"web": "shop/web:1.4.0"}));

    let r = conformance("to revision 1", THREE, &[], Some(1)).await;
    assert_eq!(r["to_revision"], 1);

    let undone: &[&str] = &["rollout", "undo", "deploy/web"];
    conformance("a rollback already done once", THREE, &[undone], None).await;
    conformance("to a revision of a rollback done once", THREE, &[undone], Some(3)).await;

    let r = conformance("to the current revision", THREE, &[], Some(3)).await;
    assert_eq!(r["changed"], false);

    let r = conformance("a revision that is not there", THREE, &[], Some(9)).await;
    assert_eq!(r["kind"], "not_found");
    assert_eq!(
        r["message"],
        "unable to find specified revision 9 in history (namespace `shop`, context `prod`)"
    );
    let r = conformance("a negative revision", THREE, &[], Some(-1)).await;
    assert_eq!(r["kind"], "not_found");

    let paused = format!("{THREE}paused = true\n");
    let r = conformance("a paused deployment", &paused, &[], None).await;
    assert_eq!(r["kind"], "conflict");

    let single = "[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nrevisions = [\"shop/web:1.0.0\"]\n";
    let r = conformance("no history", single, &[], None).await;
    assert_eq!(r["kind"], "not_found");
    assert_eq!(
        r["message"],
        "no rollout history found for deployment \"web\" (namespace `shop`, context `prod`)"
    );

    let two = format!("{THREE}sidecars = {{ proxy = \"envoy:1.30\" }}\n");
    let r = conformance("two containers", &two, &[], None).await;
    assert_eq!(r["images"], json!({"web": "shop/web:1.4.0", "proxy": "envoy:1.30"}));

    let annotated: &[&str] = &["annotate", "deploy/web", "kubernetes.io/change-cause=hotfix", "team=shop"];
    let image: &[&str] = &["set", "image", "deploy/web", "web=shop/web:1.6.0"];
    conformance("annotations dropped and restored", THREE, &[annotated, image], None).await;
}

/// Runs `setup` on two simulators, then kubectl's command on one and the script on the other;
/// compares worlds and history; returns both answers.
async fn compare(name: &str, toml: &str, setup: &[&[&str]], args: &[&str], script: &str) -> (Out, Value) {
    let (theirs, ours) = (start(toml).await, start(toml).await);
    for a in setup {
        for w in [&theirs, &ours] {
            let out = kubectl(&w.kubeconfig, a).await;
            assert_eq!(out.code, 0, "{name}: setup {a:?}: {}", out.stderr);
        }
    }
    for w in [&theirs, &ours] {
        settle(&w.sim, "prod", &format!("{name}: setup")).await;
    }
    let (t0, o0) = (theirs.sim.requests().len(), ours.sim.requests().len());
    let k = kubectl(&theirs.kubeconfig, args).await;
    let wrapped = format!("let r = (); try {{ r = {script}; }} catch (e) {{ r = e; }} r");
    let r = ours.value(&wrapped).await;
    assert_fewer_requests(name, &theirs.requests_since(t0), &ours.requests_since(o0));
    assert_same_world(&theirs.sim, &ours.sim, "prod", name).await;
    let (h1, h2) = (history_of(&theirs.kubeconfig).await, history_of(&ours.kubeconfig).await);
    assert_eq!(h1.stdout, h2.stdout, "{name}: rollout history");
    (k, r)
}

fn kubectl_error(out: &Out) -> String {
    assert_eq!(out.code, 1, "kubectl should have failed: {}", out.stdout);
    out.stderr.trim_end().strip_prefix("error: ").unwrap_or(&out.stderr).to_string()
}

const WEB: &str = "context: \"prod\", namespace: \"shop\", deployment: \"web\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_restart_set_image_and_scale_match_kubectl() {
    let pause: &[&str] = &["rollout", "pause", "deploy/web"];
    let (k, r) = compare("pause", THREE, &[], pause, &format!("k8s::pause(#{{ {WEB} }})")).await;
    assert_eq!((k.stdout.as_str(), &r), ("deployment.apps/web paused\n", &json!({"changed": true})));
    let (k, r) = compare("pause twice", THREE, &[pause], pause, &format!("k8s::pause(#{{ {WEB} }})")).await;
    assert_eq!(kubectl_error(&k), "deployments.apps \"web\" is already paused");
    assert_eq!(r, json!({"changed": false}), "idempotent where kubectl refuses");

    let resume: &[&str] = &["rollout", "resume", "deploy/web"];
    let (k, r) = compare("resume", THREE, &[pause], resume, &format!("k8s::resume(#{{ {WEB} }})")).await;
    assert_eq!((k.stdout.as_str(), &r), ("deployment.apps/web resumed\n", &json!({"changed": true})));
    let (k, r) = compare("resume unpaused", THREE, &[], resume, &format!("k8s::resume(#{{ {WEB} }})")).await;
    assert_eq!(kubectl_error(&k), "deployments.apps \"web\" is not paused");
    assert_eq!(r, json!({"changed": false}));

    let restart: &[&str] = &["rollout", "restart", "deploy/web"];
    let (k, r) = compare("restart", THREE, &[], restart, &format!("k8s::restart(#{{ {WEB} }})")).await;
    assert_eq!((k.stdout.as_str(), &r), ("deployment.apps/web restarted\n", &json!({"changed": true})));
    let (k, r) =
        compare("restart paused", THREE, &[pause], restart, &format!("k8s::restart(#{{ {WEB} }})")).await;
    let msg = kubectl_error(&k);
    assert_eq!(msg, "deployments.apps \"web\" can't restart paused deployment (run rollout resume first)");
    assert_eq!(r["kind"], "conflict");
    assert!(r["message"].as_str().unwrap().starts_with(&msg), "{r}");

    let set: &[&str] = &["set", "image", "deploy/web", "web=shop/web:1.6.0"];
    let script = format!("k8s::set_image(#{{ {WEB}, image: \"shop/web:1.6.0\" }})");
    let (k, r) = compare("set image", THREE, &[], set, &script).await;
    assert_eq!(k.stdout, "deployment.apps/web image updated\n");
    assert_eq!(r, json!({"changed": true, "from_image": "shop/web:1.5.0", "to_image": "shop/web:1.6.0"}));
    let (_, r) = compare("set the same image", THREE, &[set], set, &script).await;
    assert_eq!(r["changed"], false);
    let two = format!("{THREE}sidecars = {{ proxy = \"envoy:1.30\" }}\n");
    let (_, r) = compare(
        "set image of a named container",
        &two,
        &[],
        &["set", "image", "deploy/web", "proxy=envoy:1.31"],
        &format!("k8s::set_image(#{{ {WEB}, container: \"proxy\", image: \"envoy:1.31\" }})"),
    )
    .await;
    assert_eq!(r["from_image"], "envoy:1.30");
    let (k, r) = compare(
        "set image of a missing container",
        THREE,
        &[],
        &["set", "image", "deploy/web", "nosuch=x:1"],
        &format!("k8s::set_image(#{{ {WEB}, container: \"nosuch\", image: \"x:1\" }})"),
    )
    .await;
    let msg = kubectl_error(&k);
    assert_eq!(r["kind"], "not_found");
    assert!(r["message"].as_str().unwrap().starts_with(&msg), "{msg} / {r}");
    let w = start(&two).await;
    let r = w
        .value(&format!(
            "let r = (); try {{ r = k8s::set_image(#{{ {WEB}, image: \"x:1\" }}); }} catch (e) {{ r = e; }} r"
        ))
        .await;
    assert_eq!(r["kind"], "invalid");
    assert!(r["message"].as_str().unwrap().contains("has 2 containers (web, proxy)"), "{r}");

    let (k, r) = compare(
        "scale",
        THREE,
        &[],
        &["scale", "deploy/web", "--replicas=5"],
        &format!("k8s::scale(#{{ {WEB}, replicas: 5 }})"),
    )
    .await;
    assert_eq!(k.stdout, "deployment.apps/web scaled\n");
    assert_eq!(r, json!({"changed": true, "from": 3, "to": 5}));
}

/// rollbook sends no discovery and no more API requests than kubectl did for the same command.
fn assert_fewer_requests(name: &str, theirs: &[RecordedRequest], ours: &[RecordedRequest]) {
    let work = theirs.iter().filter(|r| !is_discovery(r)).count();
    assert!(ours.iter().all(|r| !is_discovery(r)), "{name}: rollbook sent discovery: {ours:?}");
    assert!(
        ours.len() <= work,
        "{name}: rollbook sent {} requests, kubectl {work} (+{} discovery): {ours:?}",
        ours.len(),
        theirs.len() - work
    );
}

fn is_discovery(r: &RecordedRequest) -> bool {
    let tail = r.path.splitn(4, '/').nth(3).unwrap_or("");
    matches!(tail, "api" | "apis" | "version" | "api/v1" | "apis/apps/v1")
        || tail.starts_with("openapi")
        || (tail.starts_with("apis/") && tail.matches('/').count() <= 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_undo_sends_fewer_requests_than_kubectl_and_no_discovery() {
    let (theirs, ours) = (start(THREE).await, start(THREE).await);
    let k = kubectl(&theirs.kubeconfig, &["rollout", "undo", "deploy/web"]).await;
    assert_eq!(k.code, 0, "{}", k.stderr);
    let n = ours.sim.requests().len();
    let r = ours.value(&format!("k8s::undo(#{{ {WEB} }})")).await;
    assert_eq!(r["changed"], true);
    let kubectl_all = theirs.sim.requests();
    let kubectl_work: Vec<_> = kubectl_all.iter().filter(|r| !is_discovery(r)).collect();
    let mine = ours.requests_since(n);
    let shape: Vec<(String, String)> = mine
        .iter()
        .map(|r| (r.method.clone(), r.path.rsplit('/').next().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("GET".to_string(), "web".to_string()),
            ("GET".to_string(), "replicasets".to_string()),
            ("PATCH".to_string(), "web".to_string())
        ]
    );
    assert!(mine.iter().all(|r| !is_discovery(r)), "no discovery: {mine:?}");
    assert!(mine[1].query.as_deref().unwrap_or("").ends_with("labelSelector=app%3Dweb"));
    assert!(
        mine.len() < kubectl_work.len() && kubectl_work.len() < kubectl_all.len(),
        "rollbook {} requests; kubectl {} (+{} discovery)",
        mine.len(),
        kubectl_work.len(),
        kubectl_all.len() - kubectl_work.len()
    );
    // Same patch body as kubectl, apart from Go's `creationTimestamp: null`.
    let body = |r: &RecordedRequest| -> Value { serde_json::from_str(r.body.as_deref().unwrap()).unwrap() };
    let theirs_patch = kubectl_all.iter().find(|r| r.method == "PATCH").unwrap();
    let mut want = body(theirs_patch);
    want[0]["value"]["metadata"].as_object_mut().unwrap().remove("creationTimestamp");
    assert_eq!(body(&mine[2]), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_completes_on_a_healthy_rollout_and_times_out_on_a_broken_image_with_a_watch() {
    let toml = format!("{THREE}broken = [\"shop/web:9.9.9\"]\n");
    let w = start(&toml).await;
    let n = w.sim.requests().len();
    let r = w.value(&format!("k8s::status(#{{ {WEB} }})")).await;
    assert_eq!(
        r,
        json!({"complete": true, "timed_out": false, "message": "deployment \"web\" successfully rolled out",
               "reason": "NewReplicaSetAvailable", "replicas": 3, "updated": 3, "ready": 3, "available": 3})
    );
    assert_eq!(w.requests_since(n).len(), 1, "a finished rollout needs one GET");

    // A good new image: the wait follows one watch to completion.
    let n = w.sim.requests().len();
    let r = w
        .value(&format!(
            "k8s::set_image(#{{ {WEB}, image: \"shop/web:1.6.0\" }}); k8s::status(#{{ {WEB}, timeout: \"20s\" }})"
        ))
        .await;
    assert_eq!(r["complete"], true, "{r}");
    let watches = w
        .requests_since(n)
        .iter()
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("watch=true")))
        .count();
    assert!(watches >= 1, "waited on a watch");

    // A broken image never becomes ready: kubectl and rollbook give up with the same message.
    let twin = start(&toml).await;
    let set = ["set", "image", "deploy/web", "web=shop/web:9.9.9"];
    assert_eq!(kubectl(&w.kubeconfig, &set).await.code, 0);
    assert_eq!(kubectl(&twin.kubeconfig, &set).await.code, 0);
    let k = kubectl(&twin.kubeconfig, &["rollout", "status", "deploy/web", "--timeout=2s"]).await;
    assert_eq!(k.stderr, "error: timed out waiting for the condition\n");
    let last = k.stdout.lines().last().unwrap().to_string();
    let n = w.sim.requests().len();
    let started = Instant::now();
    let r = w.value(&format!("k8s::status(#{{ {WEB}, timeout: \"2s\" }})")).await;
    let took = started.elapsed();
    assert_eq!((r["complete"].as_bool(), r["timed_out"].as_bool()), (Some(false), Some(true)), "{r}");
    assert_eq!(r["message"], last.as_str());
    assert_eq!(r["updated"], 1);
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(5), "{took:?}");
    let seen = w.requests_since(n);
    let gets = seen.iter().filter(|r| r.query.is_none()).count();
    let watches =
        seen.iter().filter(|r| r.query.as_deref().is_some_and(|q| q.contains("watch=true"))).count();
    assert_eq!((gets, watches, seen.len()), (1, 1, 2), "one GET, one watch, no polling: {seen:?}");
    let q = seen[1].query.as_deref().unwrap();
    assert!(q.contains("fieldSelector=metadata.name%3Dweb"), "{q}");
}

/// Runs `script` under dry-run and checks that nothing changed anywhere; returns the plan effects.
async fn dry_run_changes_nothing(w: &World, script: &str) -> (Vec<String>, Value) {
    let before = (w.state(KEY), snapshot(&w.sim, "prod").await);
    let n = w.sim.requests().len();
    let report = w.run(script, true).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!((w.state(KEY), snapshot(&w.sim, "prod").await), before, "dry-run left the world unchanged");
    let writes: Vec<_> = w.requests_since(n).into_iter().filter(|r| r.method != "GET").collect();
    assert!(writes.is_empty(), "no write was sent: {writes:?}");
    (report.plan.iter().map(|p| p.effect.clone()).collect(), report.value.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_every_mutation_with_its_effect_and_touches_nothing() {
    let toml = format!("{THREE}sidecars = {{ proxy = \"envoy:1.30\" }}\n");
    let w = start(&toml).await;
    let (plan, value) = dry_run_changes_nothing(&w, &format!("k8s::undo(#{{ {WEB} }})")).await;
    assert_eq!(
        plan,
        vec![
            "roll back deployment `web` in namespace `shop` of context `prod` from revision 3 to revision 2 (web: shop/web:1.5.0 → shop/web:1.4.0)"
        ]
    );
    assert_eq!(value["to_revision"], 2);
    let (plan, _) = dry_run_changes_nothing(&w, &format!("k8s::undo(#{{ {WEB}, to_revision: 3 }})")).await;
    assert!(plan[0].contains("skipped rollback (current template already matches revision 3)"), "{plan:?}");
    let (plan, value) = dry_run_changes_nothing(
        &w,
        &format!("k8s::set_image(#{{ {WEB}, container: \"web\", image: \"shop/web:2.0.0\" }})"),
    )
    .await;
    assert_eq!(
        plan,
        vec![
            "set the image of container `web` of deployment `web` in namespace `shop` of context `prod`: shop/web:1.5.0 → shop/web:2.0.0"
        ]
    );
    assert_eq!(value["from_image"], "shop/web:1.5.0");
    let (plan, value) = dry_run_changes_nothing(&w, &format!("k8s::scale(#{{ {WEB}, replicas: 1 }})")).await;
    assert_eq!(
        plan,
        vec!["scale deployment `web` in namespace `shop` of context `prod` from 3 to 1 replicas"]
    );
    assert_eq!(value, json!({"changed": true, "from": 3, "to": 1, "planned": true}));
    let (plan, _) = dry_run_changes_nothing(&w, &format!("k8s::pause(#{{ {WEB} }})")).await;
    assert_eq!(plan, vec!["pause the rollout of deployment `web` in namespace `shop` of context `prod`"]);
    let (plan, _) = dry_run_changes_nothing(&w, &format!("k8s::resume(#{{ {WEB} }})")).await;
    assert_eq!(
        plan,
        vec!["leave deployment `web` in namespace `shop` of context `prod` running (not paused)"]
    );
    let (plan, _) = dry_run_changes_nothing(&w, &format!("k8s::restart(#{{ {WEB} }})")).await;
    assert_eq!(
        plan,
        vec![
            "restart the pods of deployment `web` in namespace `shop` of context `prod` (annotation kubectl.kubernetes.io/restartedAt)"
        ]
    );
    // Reads run for real under dry-run.
    let (plan, value) = dry_run_changes_nothing(&w, &format!("k8s::get(#{{ {WEB} }})")).await;
    assert!(plan.is_empty());
    assert_eq!(value["images"], json!({"web": "shop/web:1.5.0", "proxy": "envoy:1.30"}));
    assert_eq!(value["revision"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_report_the_deployment_and_its_history() {
    let w = start(THREE).await;
    let got = w.value(&format!("k8s::get(#{{ {WEB} }})")).await;
    assert_eq!(
        got,
        json!({"revision": 3, "images": {"web": "shop/web:1.5.0"}, "replicas": 3, "ready": 3,
               "updated": 3, "available": 3, "paused": false, "generation": got["generation"]})
    );
    kubectl(&w.kubeconfig, &["annotate", "deploy/web", "kubernetes.io/change-cause=pin 1.6.0"]).await;
    kubectl(&w.kubeconfig, &["set", "image", "deploy/web", "web=shop/web:1.6.0"]).await;
    let h = w.value(&format!("k8s::history(#{{ {WEB} }})")).await;
    let rows: Vec<(i64, Value, String, bool)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["revision"].as_i64().unwrap(),
                e["change_cause"].clone(),
                e["images"]["web"].as_str().unwrap().to_string(),
                e["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, Value::Null, "shop/web:1.3.0".into(), false),
            (2, Value::Null, "shop/web:1.4.0".into(), false),
            // The controller copies the Deployment's annotations to its current ReplicaSet.
            (3, json!("pin 1.6.0"), "shop/web:1.5.0".into(), false),
            (4, json!("pin 1.6.0"), "shop/web:1.6.0".into(), true),
        ]
    );
    assert!(h[3]["replicaset"].as_str().unwrap().starts_with("web-"));
    let single = start("[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nrevisions = [\"a:1\"]\n").await;
    assert_eq!(single.value(&format!("k8s::history(#{{ {WEB} }}).len()")).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_come_from_the_kubeconfig_and_make_concrete_scope_keys() {
    let w = start(THREE).await;
    // No context and no namespace: the current context (prod) and its namespace (none: default).
    let r = w.value("let r = (); try { k8s::get(#{ deployment: \"web\" }); } catch (e) { r = e; } r").await;
    assert_eq!(r["kind"], "not_found");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("deployments.apps \"web\" not found (namespace `default`, context `prod`)"),
        "{r}"
    );
    assert_eq!(r["target"], "k8s/prod/default/web");
    // A scope naming the resolved context lets the call through; another context's does not.
    let allowed = "const RUNBOOK = #{ name: \"t\", version: \"1.0.0\", scope: [\"k8s/prod/shop/*\"] };\nk8s::pause(#{ namespace: \"shop\", deployment: \"web\" })";
    assert_eq!(w.value(allowed).await, json!({"changed": true}));
    let denied = "const RUNBOOK = #{ name: \"t\", version: \"1.0.0\", scope: [\"k8s/staging/shop/*\"] };\nk8s::resume(#{ namespace: \"shop\", deployment: \"web\" })";
    let report = w.run(denied, false).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.error.as_deref().unwrap_or("").contains("k8s/prod/shop/web"), "{:?}", report.error);
    assert_eq!(w.state(KEY)["paused"], true, "the refused resume sent nothing");
    let r = w
        .value("let r = (); try { k8s::get(#{ context: \"prdo\", deployment: \"web\" }); } catch (e) { r = e; } r")
        .await;
    assert_eq!(r["kind"], "not_found");
    assert!(r["message"].as_str().unwrap().contains("did you mean `prod`"), "{r}");
}

async fn fault_error(faults: &str, script: &str, tweak: impl FnOnce(&mut RunOptions)) -> (World, Value) {
    let w = start(&format!("{THREE}\n{faults}")).await;
    let r = w.run_with(&format!("let r = (); try {{ r = {script}; }} catch (e) {{ r = e; }} r"), tweak).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
    let v = r.value.unwrap_or(Value::Null);
    (w, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_become_catchable_errors_and_conflicts_are_retried_with_a_fresh_read() {
    // 409 on the PATCH: undo reads again and patches again; the world is as after one undo.
    let (w, r) = fault_error(
        "[[faults]]\nmethod = \"PATCH\"\npath = \"*/deployments/web\"\nstatus = 409\n",
        &format!("k8s::undo(#{{ {WEB} }})"),
        |_| {},
    )
    .await;
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(w.state(KEY)["image"], "shop/web:1.4.0");
    let methods: Vec<String> = w.sim.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["GET", "GET", "PATCH", "GET", "GET", "PATCH"]);

    for (verb, script) in [
        ("pause", format!("k8s::pause(#{{ {WEB} }})")),
        ("set_image", format!("k8s::set_image(#{{ {WEB}, image: \"x:2\" }})")),
        ("scale", format!("k8s::scale(#{{ {WEB}, replicas: 2 }})")),
    ] {
        let (_, r) = fault_error(
            "[[faults]]\nmethod = \"PATCH\"\npath = \"*/deployments/web*\"\nstatus = 409\ntimes = 2\n",
            &script,
            |_| {},
        )
        .await;
        assert_eq!(r["changed"], true, "{verb}: {r}");
    }
    let (_, r) = fault_error(
        "[[faults]]\nmethod = \"PATCH\"\npath = \"*/deployments/web\"\nstatus = 409\ntimes = 10\n",
        &format!("k8s::pause(#{{ {WEB} }})"),
        |_| {},
    )
    .await;
    assert_eq!(r["kind"], "conflict", "bounded: {r}");

    let (_, r) = fault_error(
        "[[faults]]\nmethod = \"GET\"\npath = \"*/deployments/web\"\nstatus = 403\n",
        &format!("k8s::undo(#{{ {WEB} }})"),
        |_| {},
    )
    .await;
    assert_eq!(r["kind"], "forbidden");
    let m = r["message"].as_str().unwrap();
    assert!(m.contains("context `prod`") && m.contains("namespace `shop`"), "{m}");
    assert_eq!(r["target"], KEY);

    let (_, r) = fault_error(
        "[[faults]]\nmethod = \"GET\"\npath = \"*/deployments/web\"\nstatus = 401\n",
        &format!("k8s::get(#{{ {WEB} }})"),
        |_| {},
    )
    .await;
    assert_eq!(r["kind"], "unauthorized");
    assert!(r["message"].as_str().unwrap().contains("context `prod`"), "{r}");

    let (_, r) = fault_error(
        "[[faults]]\nmethod = \"GET\"\npath = \"*/replicasets\"\nstatus = 500\n",
        &format!("k8s::history(#{{ {WEB} }})"),
        |_| {},
    )
    .await;
    assert_eq!(r["kind"], "server", "{r}");

    let (_, r) = fault_error(
        "[[faults]]\nmethod = \"GET\"\npath = \"*/deployments/web\"\ndrop = true\n",
        &format!("k8s::get(#{{ {WEB} }})"),
        |_| {},
    )
    .await;
    assert_eq!(r["kind"], "transport", "{r}");

    let (_, r) = fault_error(
        "[[faults]]\nmethod = \"GET\"\npath = \"*/deployments/web\"\nlatency = \"3s\"\n",
        &format!("k8s::get(#{{ {WEB} }})"),
        |o| {
            o.settings.env.insert("ROLLBOOK_KUBE_REQUEST_TIMEOUT".into(), "300ms".into());
        },
    )
    .await;
    assert_eq!(r["kind"], "timeout", "{r}");

    // 429 is retried a few times (Retry-After honoured), then reported as throttled.
    let (w, r) = fault_error(
        "[[faults]]\nmethod = \"PATCH\"\npath = \"*/deployments/web/scale\"\nstatus = 429\nretry_after = \"1s\"\n",
        &format!("k8s::scale(#{{ {WEB}, replicas: 1 }})"),
        |_| {},
    )
    .await;
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(w.sim.requests().iter().filter(|r| r.method == "PATCH").count(), 2);
    let (w, r) = fault_error(
        "[[faults]]\nmethod = \"PATCH\"\npath = \"*/deployments/web/scale\"\nstatus = 429\ntimes = 100\n",
        &format!("k8s::scale(#{{ {WEB}, replicas: 1 }})"),
        |_| {},
    )
    .await;
    assert_eq!(r["kind"], "throttled", "{r}");
    assert_eq!(
        w.sim.requests().iter().filter(|r| r.method == "PATCH").count(),
        4,
        "one try and three retries"
    );

    // An unreachable API server is a transport error naming the context.
    let w = start(THREE).await;
    let dead = w.dir.path().join("dead");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: gone\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: gone\n",
    )
    .unwrap();
    let r = w
        .run_with("let r = (); try { r = k8s::get(#{ deployment: \"web\" }); } catch (e) { r = e; } r", |o| {
            o.settings.kubeconfig = Some(dead.clone())
        })
        .await
        .value
        .unwrap();
    assert_eq!(r["kind"], "transport", "{r}");
    assert!(r["message"].as_str().unwrap().contains("context `gone`"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdlib_undoes_an_unhealthy_rollout_and_stages_know_their_inverse() {
    let broken = "[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nreplicas = 2\nrevisions = [\"shop/web:1.4.0\", \"shop/web:1.5.0\"]\nbroken = [\"shop/web:1.5.0\", \"shop/web:6.6.6\"]\n";
    let w = start(broken).await;
    let script = format!(
        "import \"std/k8s\" as rollout;\nrollout::undo_if_unhealthy(#{{ {WEB}, timeout: \"1s\", undo_timeout: \"20s\" }})"
    );
    let r = w.value(&script).await;
    assert_eq!(r["undone"], true, "{r}");
    assert_eq!(r["undo"]["to_revision"], 1);
    assert_eq!(r["status"]["complete"], true);
    assert_eq!(w.state(KEY)["image"], "shop/web:1.4.0");
    let r = w.value(&script).await;
    assert_eq!(r["undone"], false, "healthy now: {r}");

    // A staged roll forward is undone when the run fails later.
    let report = w
        .run(
            &format!(
                "import \"std/k8s\" as rollout;\nrollout::set_image_staged(\"roll forward\", #{{ {WEB}, image: \"shop/web:6.6.6\" }});\nrollout::scale_staged(\"scale up\", #{{ {WEB}, replicas: 4 }});\nrollout::require_rolled_out(#{{ {WEB}, timeout: \"1s\" }});"
            ),
            false,
        )
        .await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.error.as_deref().unwrap_or("").contains("Waiting for deployment"), "{:?}", report.error);
    assert_eq!(report.undone, vec!["scale up", "roll forward"]);
    let s = w.state(KEY);
    assert_eq!((s["image"].as_str(), s["replicas"].as_i64()), (Some("shop/web:1.4.0"), Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_kubeconfig_and_prints_the_plan() {
    let w = start(THREE).await;
    let rb = w.dir.path().join("undo.rhai");
    std::fs::write(&rb, "k8s::undo(#{ namespace: \"shop\", deployment: \"web\" })").unwrap();
    let state = w.dir.path().join("state");
    let run = |extra: &'static [&'static str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbook"));
        c.arg("run").arg(&rb).arg("--kubeconfig").arg(&w.kubeconfig).arg("--state-dir").arg(&state);
        c.args(["--output", "json"]).args(extra).env("NO_COLOR", "1").env_remove("KUBECONFIG");
        c
    };
    let out = run(&["--dry-run"]).output().await.unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["plan"][0]["target"], KEY);
    assert!(
        report["plan"][0]["effect"].as_str().unwrap().contains("from revision 3 to revision 2"),
        "{report}"
    );
    assert_eq!(w.state(KEY)["image"], "shop/web:1.5.0");
    let out = run(&[]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.state(KEY)["image"], "shop/web:1.4.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_context_uses_the_one_crypto_provider_and_fails_cleanly() {
    // The simulator speaks plain HTTP, so a TLS handshake with it fails: a transport error,
    // not a rustls panic about choosing between crypto providers.
    let w = start(THREE).await;
    let kc = w.dir.path().join("tls");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}/k8s/prod\ncontexts:\n- name: tls\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: tls\n",
            w.sim.addr()
        ),
    )
    .unwrap();
    let report = w
        .run_with("let r = (); try { r = k8s::get(#{ deployment: \"web\" }); } catch (e) { r = e; } r", |o| {
            o.settings.kubeconfig = Some(kc.clone())
        })
        .await;
    let r = report.value.unwrap();
    assert_eq!(r["kind"], "transport", "{r}");
    assert!(r["message"].as_str().unwrap().contains("context `tls`"), "{r}");
    // And reqwest, with the same provider, still works in the same process.
    assert_eq!(reqwest::get(format!("{}/k8s/prod/sim", w.sim.health_base())).await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_tells_resume_whether_a_call_in_doubt_took_effect() {
    use rollbook::providers::k8s::{
        Pause, PauseArgs, Restart, RestartArgs, Resume, ResumeArgs, Scale, ScaleArgs, SetImage, SetImageArgs,
        Undo, UndoArgs,
    };
    use rollbook::providers::{CallCx, Primitive, Shared, Verified};
    let w = start(THREE).await;
    let mut cx = CallCx::standalone();
    cx.shared = std::sync::Arc::new(Shared::new(Settings {
        kubeconfig: Some(w.kubeconfig.clone()),
        ..Settings::default()
    }));
    let (ctx, ns, dep) = (Some("prod".to_string()), Some("shop".to_string()), "web".to_string());
    let applied = |v: &Verified| matches!(v, Verified::Applied(_));
    let not_applied = |v: &Verified| matches!(v, Verified::NotApplied);
    let sent = chrono::Utc::now() - chrono::Duration::seconds(1);

    let a = UndoArgs {
        context: ctx.clone(),
        namespace: ns.clone(),
        deployment: dep.clone(),
        to_revision: 1,
        gitops: None,
    };
    assert!(not_applied(&Undo.verify(&cx, &a, sent).await.unwrap()));
    Undo.call(&cx, a.clone()).await.unwrap();
    assert!(applied(&Undo.verify(&cx, &a, sent).await.unwrap()), "revision 1 came back as 4");
    let previous = UndoArgs { to_revision: 0, ..a.clone() };
    assert!(matches!(Undo.verify(&cx, &previous, sent).await.unwrap(), Verified::Unknown(_)));

    let a = SetImageArgs {
        context: ctx.clone(),
        namespace: ns.clone(),
        deployment: dep.clone(),
        image: "shop/web:2.0.0".into(),
        container: None,
        gitops: None,
    };
    assert!(not_applied(&SetImage.verify(&cx, &a, sent).await.unwrap()));
    SetImage.call(&cx, a.clone()).await.unwrap();
    assert!(applied(&SetImage.verify(&cx, &a, sent).await.unwrap()));

    let a = ScaleArgs {
        context: ctx.clone(),
        namespace: ns.clone(),
        deployment: dep.clone(),
        replicas: 1,
        gitops: None,
    };
    assert!(not_applied(&Scale.verify(&cx, &a, sent).await.unwrap()));
    Scale.call(&cx, a.clone()).await.unwrap();
    assert!(applied(&Scale.verify(&cx, &a, sent).await.unwrap()));

    let a =
        RestartArgs { context: ctx.clone(), namespace: ns.clone(), deployment: dep.clone(), gitops: None };
    assert!(not_applied(&Restart.verify(&cx, &a, sent).await.unwrap()));
    Restart.call(&cx, a.clone()).await.unwrap();
    assert!(applied(&Restart.verify(&cx, &a, sent).await.unwrap()));

    let a = PauseArgs { context: ctx.clone(), namespace: ns.clone(), deployment: dep.clone() };
    assert!(not_applied(&Pause.verify(&cx, &a, sent).await.unwrap()));
    Pause.call(&cx, a.clone()).await.unwrap();
    assert!(applied(&Pause.verify(&cx, &a, sent).await.unwrap()));
    let a = ResumeArgs { context: ctx, namespace: ns, deployment: dep };
    assert!(not_applied(&Resume.verify(&cx, &a, sent).await.unwrap()));
    Resume.call(&cx, a.clone()).await.unwrap();
    assert!(applied(&Resume.verify(&cx, &a, sent).await.unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_undo_runbook_is_rehearsed_against_its_scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let check = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .arg("check")
        .arg(root.join("k8s-rollout-undo.rhai"))
        .output()
        .await
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .arg("test")
        .args(["incident", "healthy", "undo"].map(|c| root.join(format!("k8s-rollout-undo.{c}.toml"))))
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("3 passed, 0 failed"), "{text}");
}

/// Every primitive the engine lets start before its write-ahead journal event is fsynced
/// (`k8s::CHANGES_ONLY_BY_PATCH`) sends no change while that fsync has not happened: held
/// back, it reads and then waits; released, it sends its change; failed, it sends nothing and
/// says why. A primitive that changed anything some other way would be caught here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waits_for_its_write_ahead_event_and_is_not_sent_when_that_fails() {
    use rollbook::providers::{CallCx, Shared, WriteAhead};
    let args = |name: &str| -> Value {
        let mut a = json!({"context": "prod", "namespace": "shop", "deployment": "web"});
        if name == "k8s::set_image" {
            a["image"] = json!("shop/web:9.9.9");
        }
        a
    };
    let listed = rollbook::providers::k8s::CHANGES_ONLY_BY_PATCH;
    let builtin = rollbook::providers::builtin();
    for name in listed {
        let primitive =
            builtin.iter().find(|p| p.meta().full_name() == name).expect("listed primitives exist");
        assert_eq!(primitive.meta().access, rollbook::providers::Access::Mutate, "{name}");
        // resume changes only a paused Deployment.
        let toml = if name == "k8s::resume" { format!("{THREE}paused = true\n") } else { THREE.to_string() };
        for released in [true, false] {
            let w = start(&toml).await;
            let settings = Settings { kubeconfig: Some(w.kubeconfig.clone()), ..Settings::default() };
            let cx = CallCx { shared: Arc::new(Shared::new(settings)), ..CallCx::standalone() };
            let decoded = primitive.decode(args(name), &cx.shared).expect("args decode");
            let (open, opened) = tokio::sync::watch::channel(None::<bool>);
            let barrier = WriteAhead::new(move || {
                let mut opened = opened.clone();
                async move {
                    let verdict = *opened.wait_for(|v| v.is_some()).await.expect("the test holds the gate");
                    if verdict == Some(true) {
                        Ok(())
                    } else {
                        Err("cannot write the journal: test".to_string())
                    }
                }
            });
            let before = w.sim.requests().len();
            let call = tokio::spawn(barrier.scope(decoded.call(cx)));
            // The call reads (GET, LIST) and then waits at the barrier.
            let deadline = Instant::now() + Duration::from_secs(10);
            while w.requests_since(before).iter().filter(|r| r.method == "GET").count() == 0 {
                assert!(Instant::now() < deadline, "{name}: never read");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let writes =
                |w: &World| w.requests_since(before).into_iter().filter(|r| r.method != "GET").count();
            assert_eq!(writes(&w), 0, "{name}: a change was sent before its journal event was durable");
            assert!(!call.is_finished(), "{name}: the call did not wait for its write-ahead event");
            open.send(Some(released)).expect("the call holds the gate");
            let outcome = call.await.expect("the call ends");
            if released {
                let output = outcome.unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert_ne!(output["changed"], json!(false), "{name}: {output}");
                assert_eq!(writes(&w), 1, "{name}: its change, once released");
            } else {
                let e = outcome.expect_err("no durable journal event, no change");
                assert_eq!(e.message, "cannot write the journal: test; the change was not sent", "{name}");
                assert_eq!(writes(&w), 0, "{name}: a change was sent though its journal event was lost");
            }
        }
    }
}
