//! The simulator's Kubernetes API against the real kubectl (v1.32 via the dispatcher), its
//! faults, its request record and its scenario errors; all over loopback HTTP.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rollbook::sim::{Scenario, ScenarioError, Sim, SimError, SimHandle};
use serde_json::{Value, json};

const WEB: &str = r#"
name = "web history"

[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.3.0", "shop/web:1.4.0", "shop/web:1.5.0"]
broken = ["shop/web:9.9.9"]

[[health]]
url = "https://shop.example.com/healthz"
follows = "k8s/prod/shop/web"
"#;

async fn start(toml: &str) -> (SimHandle, tempfile::TempDir, PathBuf) {
    let scenario = Scenario::parse(Path::new("test.toml"), toml).expect("scenario parses");
    let sim = Sim::start(scenario, None).await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, sim.kubeconfig_yaml()).expect("kubeconfig written");
    (sim, dir, kc)
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the installed kubectl with a fresh discovery cache, as a real user would.
async fn kubectl(kc: &Path, args: &[&str]) -> Out {
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

async fn ok(kc: &Path, args: &[&str]) -> String {
    let out = kubectl(kc, args).await;
    assert_eq!(
        out.code, 0,
        "kubectl {args:?} failed: {}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

async fn fails(kc: &Path, args: &[&str]) -> String {
    let out = kubectl(kc, args).await;
    assert_eq!(
        out.code, 1,
        "kubectl {args:?} should fail: {}{}",
        out.stdout, out.stderr
    );
    out.stderr
}

fn history(revisions: &[u32]) -> String {
    let mut s = String::from("deployment.apps/web \nREVISION  CHANGE-CAUSE\n");
    for r in revisions {
        s += &format!("{r:<10}<none>\n");
    }
    s + "\n"
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("json")
}

/// Waits (simulated rollouts take a few 20 ms ticks) until the key's state satisfies `pred`.
async fn wait_state(sim: &SimHandle, key: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = sim.resource_state(key).expect("known key");
        if pred(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "state never settled: {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const KEY: &str = "k8s/prod/shop/web";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_commands_match_a_real_cluster() {
    let (sim, _dir, kc) = start(WEB).await;
    let kc = kc.as_path();

    // History 1..3 from the scenario, the last live and rolled out.
    assert_eq!(
        ok(kc, &["rollout", "history", "deploy/web"]).await,
        history(&[1, 2, 3])
    );
    assert_eq!(
        ok(kc, &["rollout", "status", "deployment/web"]).await,
        "deployment \"web\" successfully rolled out\n"
    );
    let s = sim.resource_state(KEY).unwrap();
    assert_eq!(s["image"], "shop/web:1.5.0");
    assert_eq!(
        (s["revision"].as_i64(), s["ready"].as_i64()),
        (Some(3), Some(3))
    );

    // undo: revision 2 comes back as revision 4.
    assert_eq!(
        ok(kc, &["rollout", "undo", "deploy/web"]).await,
        "deployment.apps/web rolled back\n"
    );
    let s = sim.resource_state(KEY).unwrap();
    assert_eq!(
        (s["image"].as_str(), s["revision"].as_i64()),
        (Some("shop/web:1.4.0"), Some(4))
    );
    assert_eq!(
        ok(kc, &["rollout", "history", "deploy/web"]).await,
        history(&[1, 3, 4])
    );
    let rs = get_json(&format!(
        "{}/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dweb",
        sim.k8s_server_url("prod").unwrap()
    ))
    .await;
    let reused = rs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4")
        .expect("the reused ReplicaSet");
    assert_eq!(
        reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "2"
    );
    assert_eq!(
        reused["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/web:1.4.0"
    );

    assert_eq!(
        ok(kc, &["rollout", "undo", "deploy/web", "--to-revision=4"]).await,
        "deployment.apps/web skipped rollback (current template already matches revision 4)\n"
    );
    assert_eq!(
        fails(kc, &["rollout", "undo", "deploy/web", "--to-revision=5"]).await,
        "error: unable to find specified revision 5 in history\n"
    );
    assert_eq!(
        ok(kc, &["rollout", "undo", "deploy/web", "--to-revision=1"]).await,
        "deployment.apps/web rolled back\n"
    );
    assert_eq!(
        ok(kc, &["rollout", "history", "deploy/web"]).await,
        history(&[3, 4, 5])
    );
    let out = ok(kc, &["rollout", "status", "deploy/web", "--timeout=5s"]).await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    let s = sim.resource_state(KEY).unwrap();
    assert_eq!(
        (s["image"].as_str(), s["ready"].as_i64()),
        (Some("shop/web:1.3.0"), Some(3))
    );

    // pause / resume / restart and their client-side refusals.
    assert_eq!(
        ok(kc, &["rollout", "pause", "deploy/web"]).await,
        "deployment.apps/web paused\n"
    );
    assert_eq!(sim.resource_state(KEY).unwrap()["paused"], true);
    assert_eq!(
        fails(kc, &["rollout", "pause", "deploy/web"]).await,
        "error: deployments.apps \"web\" is already paused\n"
    );
    assert_eq!(
        fails(kc, &["rollout", "undo", "deploy/web"]).await,
        "error: you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again\n"
    );
    assert_eq!(
        fails(kc, &["rollout", "restart", "deploy/web"]).await,
        "error: deployments.apps \"web\" can't restart paused deployment (run rollout resume first)\n"
    );
    let paused = get_json(&format!(
        "{}/apis/apps/v1/namespaces/shop/deployments/web",
        sim.k8s_server_url("prod").unwrap()
    ))
    .await;
    let progressing = paused["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["reason"].as_str()
        ),
        (Some("Unknown"), Some("DeploymentPaused"))
    );
    assert_eq!(
        ok(kc, &["rollout", "resume", "deploy/web"]).await,
        "deployment.apps/web resumed\n"
    );
    assert_eq!(
        fails(kc, &["rollout", "resume", "deploy/web"]).await,
        "error: deployments.apps \"web\" is not paused\n"
    );
    assert_eq!(
        ok(kc, &["rollout", "restart", "deploy/web"]).await,
        "deployment.apps/web restarted\n"
    );
    let out = ok(kc, &["rollout", "status", "deploy/web", "--timeout=5s"]).await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    assert_eq!(
        ok(kc, &["rollout", "history", "deploy/web"]).await,
        history(&[3, 4, 5, 6])
    );

    let yaml = ok(kc, &["get", "deploy", "web", "-o", "yaml"]).await;
    for needle in [
        "apiVersion: apps/v1\nkind: Deployment\n",
        "deployment.kubernetes.io/revision: \"6\"",
        "kubectl.kubernetes.io/restartedAt: \"",
        "- image: shop/web:1.3.0\n",
        "observedGeneration: ",
        "reason: NewReplicaSetAvailable",
        "message: Deployment has minimum availability.",
    ] {
        assert!(yaml.contains(needle), "`{needle}` missing from\n{yaml}");
    }
    let d: Value =
        serde_json::from_str(&ok(kc, &["get", "deploy", "web", "-o", "json"]).await).unwrap();
    assert_eq!(
        d["metadata"]["generation"],
        d["status"]["observedGeneration"]
    );
    assert_eq!(d["status"]["updatedReplicas"], 3);
    assert_eq!(
        fails(kc, &["get", "deploy", "nosuch"]).await,
        "Error from server (NotFound): deployments.apps \"nosuch\" not found\n"
    );

    // A broken image never becomes ready: status waits, then times out like on a cluster.
    assert!(sim.healthy(KEY).unwrap());
    ok(kc, &["set", "image", "deploy/web", "web=shop/web:9.9.9"]).await;
    let out = kubectl(kc, &["rollout", "status", "deploy/web", "--timeout=2s"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stderr, "error: timed out waiting for the condition\n");
    assert!(!sim.healthy(KEY).unwrap());
    let (rewritten_from, to) = sim.url_rewrites().remove(0);
    assert_eq!(rewritten_from, "https://shop.example.com/healthz");
    assert_eq!(reqwest::get(&to).await.unwrap().status(), 503);
    // Rolling back the broken revision heals it.
    ok(kc, &["rollout", "undo", "deploy/web"]).await;
    wait_state(&sim, KEY, |s| {
        s["healthy"] == true && s["ready"] == 3 && s["updated"] == 3
    })
    .await;
    assert_eq!(reqwest::get(&to).await.unwrap().status(), 200);
    sim.shutdown().await;
}
