//! `k8s::*` against the simulator over loopback: conformance with kubectl 1.32 (two simulators
//! from one scenario, kubectl on one, rollbook on the other, the results compared), request
//! counts, dry-run leaving the world unchanged, and faults.

use std::path::{Path, PathBuf};
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
    World {
        sim,
        dir,
        kubeconfig,
    }
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
        opts.settings = Settings {
            kubeconfig: Some(self.kubeconfig.clone()),
            ..Settings::default()
        };
        tweak(&mut opts);
        engine.run(&runbook, &[], opts).await.expect("run starts")
    }

    /// Runs a script whose last expression is the value wanted; panics unless it succeeded.
    pub async fn value(&self, script: &str) -> Value {
        let report = self.run(script, false).await;
        assert_eq!(
            report.status,
            RunStatus::Succeeded,
            "{script}\n{:?}",
            report.error
        );
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
    let mut items: Vec<Value> = rs["items"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default();
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
        assert!(
            ok,
            "restartedAt `{value}` is not RFC 3339 with whole seconds"
        );
        out.push(value);
    }
    out
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
            let (xs, ys) = (
                serde_json::to_string_pretty(&x).unwrap(),
                serde_json::to_string_pretty(&y).unwrap(),
            );
            let first = xs
                .lines()
                .zip(ys.lines())
                .position(|(l, r)| l != r)
                .unwrap_or(0);
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
    let to = to_revision
        .map(|n| format!(", to_revision: {n}"))
        .unwrap_or_default();
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
    assert_same_world(&theirs.sim, &ours.sim, "prod", &format!("{name}: before")).await;
    let flag = to_revision.map(|n| format!("--to-revision={n}"));
    let mut args = vec!["rollout", "undo", "deploy/web"];
    if let Some(f) = &flag {
        args.push(f);
    }
    let k = kubectl(&theirs.kubeconfig, &args).await;
    let r = ours.value(&undo_script(to_revision)).await;

    if k.code == 0 {
        assert!(
            r.get("kind").is_none(),
            "{name}: kubectl succeeded, rollbook threw {r}"
        );
        if k.stdout.contains("skipped rollback") {
            assert_eq!(r["changed"], false, "{name}: {r}");
        } else {
            assert_eq!(k.stdout, "deployment.apps/web rolled back\n", "{name}");
            assert_eq!(r["changed"], true, "{name}: {r}");
        }
    } else {
        let msg = k
            .stderr
            .trim_end()
            .strip_prefix("error: ")
            .unwrap_or(&k.stderr)
            .to_string();
        assert!(
            r["message"].as_str().unwrap_or("").starts_with(&msg),
            "{name}: kubectl said `{msg}`, rollbook `{r}`"
        );
    }
    assert_same_world(&theirs.sim, &ours.sim, "prod", name).await;
    let (h1, h2) = (
        history_of(&theirs.kubeconfig).await,
        history_of(&ours.kubeconfig).await,
    );
    assert_eq!(h1.stdout, h2.stdout, "{name}: rollout history");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_matches_kubectl_on_every_history() {
    let r = conformance("three revisions", THREE, &[], None).await;
    assert_eq!(
        (r["from_revision"].as_i64(), r["to_revision"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(r["images"], json!({"web": "shop/web:1.4.0"}));

    let r = conformance("to revision 1", THREE, &[], Some(1)).await;
    assert_eq!(r["to_revision"], 1);

    let undone: &[&str] = &["rollout", "undo", "deploy/web"];
    conformance("a rollback already done once", THREE, &[undone], None).await;
    conformance(
        "to a revision of a rollback done once",
        THREE,
        &[undone],
        Some(3),
    )
    .await;

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
    assert_eq!(
        r["images"],
        json!({"web": "shop/web:1.4.0", "proxy": "envoy:1.30"})
    );

    let annotated: &[&str] = &[
        "annotate",
        "deploy/web",
        "kubernetes.io/change-cause=hotfix",
        "team=shop",
    ];
    let image: &[&str] = &["set", "image", "deploy/web", "web=shop/web:1.6.0"];
    conformance(
        "annotations dropped and restored",
        THREE,
        &[annotated, image],
        None,
    )
    .await;
}

/// Runs `setup` on two simulators, then kubectl's command on one and the script on the other;
/// compares worlds and history; returns both answers.
async fn compare(
    name: &str,
    toml: &str,
    setup: &[&[&str]],
    args: &[&str],
    script: &str,
) -> (Out, Value) {
    let (theirs, ours) = (start(toml).await, start(toml).await);
    for a in setup {
        for w in [&theirs, &ours] {
            let out = kubectl(&w.kubeconfig, a).await;
            assert_eq!(out.code, 0, "{name}: setup {a:?}: {}", out.stderr);
        }
    }
    let k = kubectl(&theirs.kubeconfig, args).await;
    let wrapped = format!("let r = (); try {{ r = {script}; }} catch (e) {{ r = e; }} r");
    let r = ours.value(&wrapped).await;
    assert_same_world(&theirs.sim, &ours.sim, "prod", name).await;
    let (h1, h2) = (
        history_of(&theirs.kubeconfig).await,
        history_of(&ours.kubeconfig).await,
    );
    assert_eq!(h1.stdout, h2.stdout, "{name}: rollout history");
    (k, r)
}

fn kubectl_error(out: &Out) -> String {
    assert_eq!(out.code, 1, "kubectl should have failed: {}", out.stdout);
    out.stderr
        .trim_end()
        .strip_prefix("error: ")
        .unwrap_or(&out.stderr)
        .to_string()
}

const WEB: &str = "context: \"prod\", namespace: \"shop\", deployment: \"web\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_restart_set_image_and_scale_match_kubectl() {
    let pause: &[&str] = &["rollout", "pause", "deploy/web"];
    let (k, r) = compare(
        "pause",
        THREE,
        &[],
        pause,
        &format!("k8s::pause(#{{ {WEB} }})"),
    )
    .await;
    assert_eq!(
        (k.stdout.as_str(), &r),
        ("deployment.apps/web paused\n", &json!({"changed": true}))
    );
    let (k, r) = compare(
        "pause twice",
        THREE,
        &[pause],
        pause,
        &format!("k8s::pause(#{{ {WEB} }})"),
    )
    .await;
    assert_eq!(
        kubectl_error(&k),
        "deployments.apps \"web\" is already paused"
    );
    assert_eq!(
        r,
        json!({"changed": false}),
        "idempotent where kubectl refuses"
    );

    let resume: &[&str] = &["rollout", "resume", "deploy/web"];
    let (k, r) = compare(
        "resume",
        THREE,
        &[pause],
        resume,
        &format!("k8s::resume(#{{ {WEB} }})"),
    )
    .await;
    assert_eq!(
        (k.stdout.as_str(), &r),
        ("deployment.apps/web resumed\n", &json!({"changed": true}))
    );
    let (k, r) = compare(
        "resume unpaused",
        THREE,
        &[],
        resume,
        &format!("k8s::resume(#{{ {WEB} }})"),
    )
    .await;
    assert_eq!(kubectl_error(&k), "deployments.apps \"web\" is not paused");
    assert_eq!(r, json!({"changed": false}));

    let restart: &[&str] = &["rollout", "restart", "deploy/web"];
    let (k, r) = compare(
        "restart",
        THREE,
        &[],
        restart,
        &format!("k8s::restart(#{{ {WEB} }})"),
    )
    .await;
    assert_eq!(
        (k.stdout.as_str(), &r),
        ("deployment.apps/web restarted\n", &json!({"changed": true}))
    );
    let (k, r) = compare(
        "restart paused",
        THREE,
        &[pause],
        restart,
        &format!("k8s::restart(#{{ {WEB} }})"),
    )
    .await;
    let msg = kubectl_error(&k);
    assert_eq!(
        msg,
        "deployments.apps \"web\" can't restart paused deployment (run rollout resume first)"
    );
    assert_eq!(r["kind"], "conflict");
    assert!(r["message"].as_str().unwrap().starts_with(&msg), "{r}");

    let set: &[&str] = &["set", "image", "deploy/web", "web=shop/web:1.6.0"];
    let script = format!("k8s::set_image(#{{ {WEB}, image: \"shop/web:1.6.0\" }})");
    let (k, r) = compare("set image", THREE, &[], set, &script).await;
    assert_eq!(k.stdout, "deployment.apps/web image updated\n");
    assert_eq!(
        r,
        json!({"changed": true, "from_image": "shop/web:1.5.0", "to_image": "shop/web:1.6.0"})
    );
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
    assert!(
        r["message"].as_str().unwrap().starts_with(&msg),
        "{msg} / {r}"
    );
    let w = start(&two).await;
    let r = w
        .value(&format!("let r = (); try {{ r = k8s::set_image(#{{ {WEB}, image: \"x:1\" }}); }} catch (e) {{ r = e; }} r"))
        .await;
    assert_eq!(r["kind"], "invalid");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("has 2 containers (web, proxy)"),
        "{r}"
    );

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
