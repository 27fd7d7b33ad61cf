//! `aks::credentials` against the simulated ARM: the kubeconfig fetched through ARM becomes a
//! context `k8s::*` can use in the same run, never written to disk.

use std::path::Path;

use rollbook::engine::{Engine, RunOptions};
use rollbook::providers::Settings;
use rollbook::run::journal::RunStatus;
use rollbook::sim::{Scenario, Sim, SimHandle};
use serde_json::{Value, json};

const AKS: &str = r#"
[[k8s.deployments]]
context = "aks-prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
broken = ["shop/web:1.5.0"]

[[aks.clusters]]
group = "rg-shop"
name = "aks-prod"
context = "aks-prod"
"#;

async fn run(
    sim: &SimHandle,
    script: &str,
    token: bool,
) -> (RunStatus, Option<Value>, Option<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runbook.rhai");
    std::fs::write(&path, script).expect("write");
    let engine = Engine::new();
    let runbook = engine.load(&path).expect("loads");
    let mut opts = RunOptions::new(dir.path().join("state"));
    let mut settings = Settings::default();
    settings.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), sim.arm_endpoint());
    settings.env.insert("AZURE_SUBSCRIPTION_ID".into(), "00000000-0000-0000-0000-000000000000".into());
    if token {
        settings.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "test-token".into());
    }
    opts.settings = settings;
    let report = engine.run(&runbook, &[], opts).await.expect("run starts");
    (report.status, report.value, report.error, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_then_undo_works_end_to_end() {
    let scenario = Scenario::parse(Path::new("aks.toml"), AKS).expect("parses");
    let sim = Sim::start(scenario, None).await.expect("starts");
    let script = r#"
let ctx = aks::credentials(#{ group: "rg-shop", cluster: "aks-prod" });
let before = k8s::status(#{ context: ctx, deployment: "web", namespace: "shop", timeout: "1s" });
let undone = k8s::undo(#{ context: ctx, namespace: "shop", deployment: "web" });
let after = k8s::status(#{ context: ctx, namespace: "shop", deployment: "web", timeout: "20s" });
let admin = aks::credentials(#{ group: "rg-shop", cluster: "aks-prod", admin: true });
#{ ctx: ctx, before: before.complete, undone: undone, after: after.complete, admin: admin,
   same: k8s::get(#{ context: admin, namespace: "shop", deployment: "web" }).images }
"#;
    let (status, value, error, dir) = run(&sim, script, true).await;
    assert_eq!(status, RunStatus::Succeeded, "{error:?}");
    let v = value.expect("value");
    assert_eq!(
        v,
        json!({"ctx": "aks-prod", "before": false, "after": true, "admin": "aks-prod-admin",
               "undone": {"from_revision": 2, "to_revision": 1, "changed": true, "images": {"web": "shop/web:1.4.0"}},
               "same": {"web": "shop/web:1.4.0"}})
    );
    let state = sim.resource_state("k8s/aks-prod/shop/web").expect("key");
    assert_eq!((state["image"].as_str(), state["healthy"].as_bool()), (Some("shop/web:1.4.0"), Some(true)));
    let posts: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.rsplit('/').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(posts, ["listClusterUserCredential", "listClusterAdminCredential"]);
    // Held in memory only: nothing like a kubeconfig was written next to the run.
    let written: Vec<String> = walk(dir.path());
    assert!(written.iter().all(|f| !f.contains("kubeconfig") && !f.ends_with("config")), "{written:?}");
    sim.shutdown().await;
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_failures_are_catchable_errors() {
    let scenario = Scenario::parse(Path::new("aks.toml"), AKS).expect("parses");
    let sim = Sim::start(scenario, None).await.expect("starts");
    let catch = |call: &str| format!("let r = (); try {{ r = {call}; }} catch (e) {{ r = e; }} r");
    let (_, v, _, _) =
        run(&sim, &catch("aks::credentials(#{ group: \"rg-shop\", cluster: \"nope\" })"), true).await;
    let v = v.expect("value");
    assert_eq!(v["kind"], "not_found", "{v}");
    assert!(v["message"].as_str().unwrap().contains("cluster `nope` in resource group `rg-shop`"), "{v}");
    let (_, v, _, _) =
        run(&sim, &catch("aks::credentials(#{ group: \"rg-shop\", cluster: \"aks-prod\" })"), false).await;
    assert_eq!(v.expect("value")["kind"], "unauthorized");
    // A context that was never fetched is not known.
    let (_, v, _, _) =
        run(&sim, &catch("k8s::get(#{ context: \"aks-prod\", deployment: \"web\" })"), true).await;
    assert_eq!(v.expect("value")["kind"], "not_found");
    sim.shutdown().await;
}
