//! GitOps-aware rollback against the simulator: Argo CD Applications and Flux Kustomizations
//! and HelmReleases served as custom resources (real kubectl reads and patches them), their
//! reconciler reverting drift after `interval`, the `gitops::*` primitives, the guard on
//! `k8s::*`, `std/gitops`'s `undo_managed` and the ready runbook `k8s-gitops-undo`.
//!
//! The simulator's GitOps clock is stopped in these tests and moved with `advance_gitops`, so
//! "after the interval" needs no sleeping.

use std::path::Path;
use std::time::{Duration, Instant};

use rollbook::run::journal::RunStatus;
use serde_json::{Value, json};

use crate::k8s::{World, kubectl, start};
use crate::support::{rollbook, texts};

const ARGO: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]

[[gitops.argocd]]
context = "prod"
namespace = "argocd"
name = "shop"
manages = ["k8s/prod/shop/web"]
images = { web = "shop/web:1.5.0" }
auto_sync = true
self_heal = true
interval = "10s"
history = [{ id = 1, revision = "a1b2c3d", images = { web = "shop/web:1.4.0" } },
           { id = 2, revision = "e4f5a6b", images = { web = "shop/web:1.5.0" } }]
"#;

/// A Flux object of `kind` managing `shop/web`, reconciling.
fn flux(kind: &str) -> String {
    format!(
        r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]

[[gitops.flux]]
kind = "{kind}"
context = "prod"
namespace = "flux-system"
name = "shop"
manages = ["k8s/prod/shop/web"]
images = {{ web = "shop/web:1.5.0" }}
interval = "10s"
"#
    )
}

const ADDR: &str = r#"#{ context: "prod", namespace: "shop", deployment: "web" }"#;

async fn world(toml: &str) -> World {
    let w = start(toml).await;
    w.sim.set_gitops_time_scale(0.0);
    w
}

fn image(w: &World) -> String {
    w.state("k8s/prod/shop/web")["image"].as_str().unwrap_or_default().to_string()
}

/// The live object as `kubectl get <resource> <name> -n <namespace> -o json` prints it.
async fn get_json(w: &World, resource: &str, namespace: &str, name: &str) -> Value {
    let out = kubectl(&w.kubeconfig, &["get", resource, name, "-n", namespace, "-o", "json"]).await;
    assert_eq!(out.code, 0, "kubectl get {resource} {name}: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("kubectl prints JSON")
}

/// Waits (on real time, bounded) until the simulated Deployment's rollout is complete.
async fn rolled_out(w: &World) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = w.state("k8s/prod/shop/web");
        if s["ready"] == s["replicas"] && s["updated"] == s["replicas"] && s["healthy"] == json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "the rollout did not complete: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error map a script caught from `call`.
async fn caught(w: &World, call: &str, dry_run: bool) -> Value {
    let script = format!("let r = #{{ kind: \"none\" }};\ntry {{ {call}; }} catch (e) {{ r = e; }}\nr");
    let report = w.run(&script, dry_run).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{script}: {:?}", report.error);
    report.value.unwrap_or(Value::Null)
}

/// Every journal line of a run, as JSON.
fn journal(report: &rollbook::engine::RunReport) -> Vec<Value> {
    std::fs::read_to_string(&report.journal)
        .expect("journal readable")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|mut v| v.get_mut("event").map(Value::take).unwrap_or(v))
        .collect()
}

// (1) The simulator reproduces the real problem.

#[tokio::test]
async fn a_plain_kubectl_rollout_undo_is_reverted_by_argo_cd_self_heal_after_the_interval() {
    let w = world(ARGO).await;
    let out = kubectl(&w.kubeconfig, &["rollout", "undo", "deploy/web"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(image(&w), "shop/web:1.4.0", "kubectl's undo took effect");
    w.sim.advance_gitops(Duration::from_secs(9));
    assert_eq!(image(&w), "shop/web:1.4.0", "before the interval, the undo is still there");
    w.sim.advance_gitops(Duration::from_secs(1));
    assert_eq!(image(&w), "shop/web:1.5.0", "self-heal put git's image back after the interval");
    rolled_out(&w).await;
    let app = get_json(&w, "application", "argocd", "shop").await;
    assert_eq!(app["status"]["sync"]["status"], "Synced", "{app}");
}

#[tokio::test]
async fn a_plain_kubectl_rollout_undo_is_reverted_by_flux_after_the_interval() {
    for kind in ["Kustomization", "HelmRelease"] {
        let w = world(&flux(kind)).await;
        let out = kubectl(&w.kubeconfig, &["rollout", "undo", "deploy/web"]).await;
        assert_eq!(out.code, 0, "{kind}: {}", out.stderr);
        w.sim.advance_gitops(Duration::from_secs(9));
        assert_eq!(image(&w), "shop/web:1.4.0", "{kind}: not yet");
        w.sim.advance_gitops(Duration::from_secs(1));
        assert_eq!(image(&w), "shop/web:1.5.0", "{kind}: Flux applied git's image again");
    }
}

#[tokio::test]
async fn kubectl_finds_lists_and_patches_the_gitops_custom_resources() {
    let w = world(ARGO).await;
    let out = kubectl(&w.kubeconfig, &["get", "applications", "-A"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("SYNC STATUS") && out.stdout.contains("HEALTH STATUS"), "{}", out.stdout);
    assert!(
        out.stdout.contains("argocd") && out.stdout.contains("shop") && out.stdout.contains("Synced"),
        "{}",
        out.stdout
    );
    let out = kubectl(
        &w.kubeconfig,
        &["get", "app", "shop", "-n", "argocd", "-o", "jsonpath={.status.history[*].id}"],
    )
    .await;
    assert_eq!(out.stdout, "1 2", "short name and history ids: {}", out.stderr);
    let d = get_json(&w, "deployment", "shop", "web").await;
    assert_eq!(
        d["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "shop:apps/Deployment:shop/web"
    );

    // `argocd app set shop --sync-policy none` done by hand: a merge patch, then a JSON patch back.
    let out = kubectl(
        &w.kubeconfig,
        &[
            "patch",
            "application",
            "shop",
            "-n",
            "argocd",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"syncPolicy":{"automated":null}}}"#,
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let app = get_json(&w, "application", "argocd", "shop").await;
    assert!(app["spec"]["syncPolicy"].get("automated").is_none(), "{app}");
    kubectl(&w.kubeconfig, &["rollout", "undo", "deploy/web"]).await;
    w.sim.advance_gitops(Duration::from_secs(60));
    assert_eq!(image(&w), "shop/web:1.4.0", "without an automated policy the undo holds");
    let out = kubectl(
        &w.kubeconfig,
        &[
            "patch",
            "application",
            "shop",
            "-n",
            "argocd",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/spec/syncPolicy/automated","value":{"selfHeal":true}}]"#,
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    w.sim.advance_gitops(Duration::from_secs(10));
    assert_eq!(image(&w), "shop/web:1.5.0", "self-heal is back on");

    let w = world(&flux("HelmRelease")).await;
    for (resource, short) in [("helmreleases", "hr")] {
        let out = kubectl(&w.kubeconfig, &["get", resource, "-A"]).await;
        assert!(out.stdout.contains("shop") && out.stdout.contains("True"), "{}{}", out.stdout, out.stderr);
        let out = kubectl(&w.kubeconfig, &["get", short, "-n", "flux-system", "-o", "name"]).await;
        assert_eq!(out.stdout.trim(), "helmrelease.helm.toolkit.fluxcd.io/shop", "{}", out.stderr);
    }
    let d = get_json(&w, "deployment", "shop", "web").await;
    assert_eq!(d["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"], "shop");
    assert_eq!(d["metadata"]["labels"]["helm.toolkit.fluxcd.io/namespace"], "flux-system");
}

// (2) The guard, and undo_managed under Argo CD.

#[tokio::test]
async fn k8s_undo_of_an_argo_cd_self_healed_deployment_is_refused_with_gitops_managed() {
    let w = world(ARGO).await;
    let e = caught(&w, &format!("k8s::undo({ADDR})"), false).await;
    assert_eq!(e["kind"], "gitops_managed", "{e}");
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(msg.contains("Argo CD application `shop`"), "names the owner: {msg}");
    assert!(
        msg.contains("gitops::rollback") && msg.contains("gitops::suspend"),
        "names both ways out: {msg}"
    );
    assert_eq!(e["target"], "k8s/prod/shop/web");
    assert_eq!(image(&w), "shop/web:1.5.0", "nothing was sent");
    for call in [
        format!(r#"k8s::set_image({ADDR} + #{{ image: "shop/web:1.4.0" }})"#),
        format!("k8s::scale({ADDR} + #{{ replicas: 5 }})"),
        format!("k8s::restart({ADDR})"),
    ] {
        let e = caught(&w, &call, false).await;
        assert_eq!(e["kind"], "gitops_managed", "{call}: {e}");
        let e = caught(&w, &call, true).await;
        assert_eq!(e["kind"], "gitops_managed", "dry-run shows it too: {call}: {e}");
    }
    // Dry-run: the plan shows the refusal.
    let report = w.run(&format!("k8s::undo({ADDR})"), true).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.error.as_deref().unwrap_or_default().contains("gitops_managed"), "{:?}", report.error);
    // The escape hatch.
    let v = w.value(&format!(r#"k8s::undo({ADDR} + #{{ gitops: "ignore" }})"#)).await;
    assert_eq!(v["changed"], true, "{v}");
    let e = caught(&w, &format!(r#"k8s::undo({ADDR} + #{{ gitops: "sometimes" }})"#), false).await;
    assert_eq!(e["kind"], "invalid", "{e}");
}

#[tokio::test]
async fn undo_managed_holds_under_argo_cd_and_the_application_has_no_automated_policy() {
    let w = world(ARGO).await;
    let v = w
        .value(&format!(
            "import \"std/gitops\" as managed;\nmanaged::undo_managed({ADDR} + #{{ timeout: \"1m\" }})"
        ))
        .await;
    assert_eq!(v["owner"]["kind"], "argocd", "{v}");
    assert_eq!(v["suspended"], true, "{v}");
    assert_eq!(v["status"]["complete"], true, "{v}");
    assert_eq!(image(&w), "shop/web:1.4.0");
    for _ in 0..5 {
        w.sim.advance_gitops(Duration::from_secs(10));
        assert_eq!(image(&w), "shop/web:1.4.0", "the rollback holds interval after interval");
    }
    let app = get_json(&w, "application", "argocd", "shop").await;
    assert!(app["spec"]["syncPolicy"].get("automated").is_none(), "no automated sync policy: {app}");
    assert_eq!(
        app["metadata"]["annotations"]["rollbook.dev/suspended-automated-sync"],
        json!({"prune": true, "selfHeal": true}).to_string(),
        "the policy is kept for resume: {app}"
    );
    assert_eq!(w.state("gitops/prod/argocd/shop")["suspended"], true);

    // Resuming (what the team does once git is fixed) restores the exact policy, and the
    // controller then applies git again.
    let v = w
        .value(r#"gitops::resume(gitops::owner(#{ context: "prod", namespace: "shop", deployment: "web" }))"#)
        .await;
    assert_eq!(v["changed"], true);
    let app = get_json(&w, "application", "argocd", "shop").await;
    assert_eq!(app["spec"]["syncPolicy"]["automated"], json!({"prune": true, "selfHeal": true}), "{app}");
    assert!(app["metadata"]["annotations"].get("rollbook.dev/suspended-automated-sync").is_none(), "{app}");
    w.sim.advance_gitops(Duration::from_secs(10));
    assert_eq!(image(&w), "shop/web:1.5.0");
}

// (3) Flux: the same, with spec.suspend.

#[tokio::test]
async fn undo_managed_holds_under_flux_with_spec_suspend() {
    for (kind, resource, word) in [
        ("Kustomization", "kustomization", "flux-kustomization"),
        ("HelmRelease", "helmrelease", "flux-helmrelease"),
    ] {
        let w = world(&flux(kind)).await;
        let e = caught(&w, &format!("k8s::undo({ADDR})"), false).await;
        assert_eq!(e["kind"], "gitops_managed", "{kind}: {e}");
        assert!(e["message"].as_str().unwrap_or_default().contains(&format!("Flux {kind} `shop`")), "{e}");
        let v = w
            .value(&format!(
                "import \"std/gitops\" as managed;\nmanaged::undo_managed({ADDR} + #{{ timeout: \"1m\" }})"
            ))
            .await;
        assert_eq!(v["owner"]["kind"], word, "{v}");
        for _ in 0..5 {
            w.sim.advance_gitops(Duration::from_secs(10));
            assert_eq!(image(&w), "shop/web:1.4.0", "{kind}: the rollback holds");
        }
        let obj = get_json(&w, resource, "flux-system", "shop").await;
        assert_eq!(obj["spec"]["suspend"], true, "{kind}: {obj}");
        assert_eq!(w.state("gitops/prod/flux-system/shop")["suspended"], true);
        // `flux resume`: suspend false, a reconcile asked for now — git's image comes back at once.
        let v = w.value(&format!("gitops::resume(gitops::owner({ADDR}))")).await;
        assert_eq!(v["changed"], true);
        let obj = get_json(&w, resource, "flux-system", "shop").await;
        assert_eq!(obj["spec"]["suspend"], false, "{kind}: {obj}");
        assert!(obj["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"].is_string(), "{obj}");
        w.sim.advance_gitops(Duration::ZERO);
        assert_eq!(image(&w), "shop/web:1.5.0", "{kind}: the requested reconcile applied git");
    }
}

// (4) gitops::rollback.

#[tokio::test]
async fn gitops_rollback_to_an_argo_cd_history_id_sets_that_entrys_images() {
    let w = world(ARGO).await;
    let e = caught(&w, r#"gitops::rollback(#{ context: "prod", app: "shop", id: 1 })"#, false).await;
    assert_eq!(e["kind"], "conflict", "refused while auto-sync is on: {e}");
    assert!(e["message"].as_str().unwrap_or_default().contains("auto-sync is enabled"), "{e}");

    // Dry-run after a planned suspend: planned, nothing changed.
    let script = format!(
        "gitops::suspend(gitops::owner({ADDR}));\ngitops::rollback(#{{ context: \"prod\", app: \"shop\", id: 1 }})"
    );
    let report = w.run(&script, true).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let calls: Vec<&str> = report.plan.iter().map(|p| p.call.as_str()).collect();
    assert_eq!(calls, ["gitops::suspend", "gitops::rollback"]);
    assert!(report.plan[1].effect.contains("argocd app rollback shop 1"), "{}", report.plan[1].effect);
    assert_eq!(report.value.as_ref().expect("value")["to_revision"], "a1b2c3d");
    assert_eq!(image(&w), "shop/web:1.5.0", "a dry-run changes nothing");
    assert_eq!(w.state("gitops/prod/argocd/shop")["suspended"], false);

    let v = w.value(&script).await;
    assert_eq!(v, json!({"changed": true, "from_revision": "e4f5a6b", "to_revision": "a1b2c3d"}));
    assert_eq!(w.state("k8s/prod/shop/web")["images"], json!(["shop/web:1.4.0"]), "the entry's images");
    let app = get_json(&w, "application", "argocd", "shop").await;
    assert_eq!(app["status"]["operationState"]["phase"], "Succeeded", "{app}");
    assert_eq!(app["status"]["operationState"]["operation"]["initiatedBy"]["username"], "rollbook", "{app}");
    assert_eq!(app["status"]["history"][2]["revision"], "a1b2c3d", "{app}");
    assert_eq!(app["status"]["sync"]["status"], "OutOfSync", "git still names 1.5.0: {app}");
    w.sim.advance_gitops(Duration::from_secs(60));
    assert_eq!(image(&w), "shop/web:1.4.0", "auto-sync is off: the rollback holds");

    let v = w.value(r#"gitops::rollback(#{ context: "prod", app: "shop", id: 1 })"#).await;
    assert_eq!(v["changed"], false, "twice: the second changes nothing: {v}");
    let e = caught(&w, r#"gitops::rollback(#{ context: "prod", app: "shop", id: 9 })"#, false).await;
    assert_eq!(e["kind"], "not_found", "{e}");
    assert!(e["message"].as_str().unwrap_or_default().contains("ids: 1, 2, 3"), "{e}");
}

// (5) A run that fails after suspending resumes reconciliation in its undo.

#[tokio::test]
async fn a_run_failing_after_the_suspend_resumes_reconciliation_in_its_undo() {
    for toml in [ARGO.to_string(), flux("Kustomization")] {
        let w = world(&toml).await;
        let script = format!(
            "import \"std/gitops\" as managed;\nmanaged::undo_managed({ADDR} + #{{ timeout: \"1m\" }});\nfail(\"health still failing\");"
        );
        let report = w.run(&script, false).await;
        assert_eq!(report.status, RunStatus::Failed, "{:?}", report.error);
        let key = if toml.contains("gitops.argocd") {
            "gitops/prod/argocd/shop"
        } else {
            "gitops/prod/flux-system/shop"
        };
        assert_eq!(w.state(key)["suspended"], false, "reconciliation restored: {}", w.state(key));
        let events = journal(&report);
        let undo_at = events
            .iter()
            .position(|e| {
                e["type"] == "undo_started" && e["stage"].as_str().is_some_and(|s| s.starts_with("suspend "))
            })
            .expect("the suspend stage was undone");
        let resumed = events[undo_at..]
            .iter()
            .find(|e| e["type"] == "call_finished" && e["primitive"] == "gitops::resume")
            .expect("the journal shows gitops::resume in the undo");
        assert_eq!(resumed["ok"], true, "{resumed}");
        assert_eq!(resumed["output"]["changed"], true, "{resumed}");
        assert!(
            events.iter().any(|e| e["type"] == "undo_finished"
                && e["ok"] == true
                && e["stage"].as_str().is_some_and(|s| s.starts_with("suspend "))),
            "the undo finished"
        );
        // Rolled forward again, and reconciling: git's image holds.
        w.sim.advance_gitops(Duration::from_secs(10));
        assert_eq!(image(&w), "shop/web:1.5.0");
    }
}

// (6) The ready runbook.

#[test]
fn the_ready_runbooks_dry_run_plans_suspend_undo_and_resume() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let state = tempfile::tempdir().expect("tempdir");
    let out = rollbook(&[
        "run",
        &root.join("k8s-gitops-undo.rhai").display().to_string(),
        "--dry-run",
        "--sandbox",
        &root.join("k8s-gitops-undo.incident.toml").display().to_string(),
        "--output",
        "json",
        "--state-dir",
        &state.path().display().to_string(),
        "-p",
        "context=prod",
        "-p",
        "namespace=shop",
        "-p",
        "deployment=web",
        "-p",
        "resume_reconciliation=true",
    ]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json report");
    let calls: Vec<&str> =
        report["plan"].as_array().expect("plan").iter().filter_map(|p| p["call"].as_str()).collect();
    assert_eq!(calls, ["gitops::suspend", "k8s::undo", "gitops::resume"], "{report}");
}

#[test]
fn rollbook_test_passes_every_ready_runbook_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let out = rollbook(&["test", &root.display().to_string()]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for case in ["incident", "healthy", "undo", "flux"] {
        assert!(stdout.contains(&format!("k8s-gitops-undo.{case}.toml")), "{case} rehearsed: {stdout}");
    }
}

// Each primitive: owner, suspend, resume — live, dry-run and a fault.

#[tokio::test]
async fn owner_finds_each_tool_and_nobody() {
    let w = world(ARGO).await;
    let v = w.value(&format!("gitops::owner({ADDR})")).await;
    assert_eq!(
        v,
        json!({"kind": "argocd", "name": "shop", "namespace": "argocd", "context": "prod",
            "auto_sync": true, "self_heal": true, "suspended": false})
    );
    // Label tracking (`app.kubernetes.io/instance`) instead of the annotation.
    kubectl(&w.kubeconfig, &["annotate", "deploy/web", "argocd.argoproj.io/tracking-id-"]).await;
    let out = kubectl(&w.kubeconfig, &["label", "deploy/web", "app.kubernetes.io/instance=shop"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = w.value(&format!("gitops::owner({ADDR})")).await;
    assert_eq!(v["kind"], "argocd", "{v}");
    // A chart's instance label naming no Application: nobody.
    kubectl(&w.kubeconfig, &["label", "--overwrite", "deploy/web", "app.kubernetes.io/instance=other"]).await;
    let v = w.value(&format!("gitops::owner({ADDR})")).await;
    assert_eq!(v["kind"], "", "{v}");
    let v = w.value(&format!("k8s::undo({ADDR})")).await;
    assert_eq!(v["changed"], true, "an unmanaged Deployment is undone as before");

    for (kind, word) in [("Kustomization", "flux-kustomization"), ("HelmRelease", "flux-helmrelease")] {
        let w = world(&flux(kind)).await;
        let v = w.value(&format!("gitops::owner({ADDR})")).await;
        assert_eq!(v["kind"], word);
        assert_eq!(v["namespace"], "flux-system");
        assert_eq!(v["suspended"], false);
    }
}

#[tokio::test]
async fn suspend_and_resume_are_idempotent_planned_and_checked_on_resume() {
    let w = world(ARGO).await;
    let owner = format!("gitops::owner({ADDR})");
    // Dry-run: planned, and reads after it see the planned state; nothing changes.
    let report =
        w.run(&format!("let o = {owner};\ngitops::suspend(o);\nlet after = {owner};\nafter"), true).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert!(
        report.plan[0].effect.contains("argocd app set shop --sync-policy none"),
        "{}",
        report.plan[0].effect
    );
    assert_eq!(report.plan[0].target.as_deref(), Some("gitops/prod/argocd/shop"));
    assert_eq!(report.value.as_ref().expect("value")["suspended"], true, "reads see the plan");
    assert_eq!(w.state("gitops/prod/argocd/shop")["suspended"], false, "a dry-run changes nothing");

    let v = w.value(&format!("let o = {owner}; [gitops::suspend(o), gitops::suspend(o)]")).await;
    assert_eq!(v, json!([{"changed": true}, {"changed": false}]), "idempotent");

    // A suspend or resume left in doubt is checked against the object.
    let cx = cx_for(&w);
    let args = json!({"kind": "argocd", "name": "shop", "namespace": "argocd", "context": "prod"});
    assert_eq!(verify(&cx, "suspend", &args).await, "applied");
    assert_eq!(verify(&cx, "resume", &args).await, "not applied");

    let v = w.value(&format!("let o = {owner}; [gitops::resume(o), gitops::resume(o)]")).await;
    assert_eq!(v, json!([{"changed": true}, {"changed": false}]), "idempotent");
    assert_eq!(verify(&cx, "resume", &args).await, "applied");

    // Scope: a runbook whose scope leaves out gitops/ may not suspend.
    let e = w
        .run(
            &format!("const RUNBOOK = #{{ name: \"x\", scope: [\"k8s/*/*/*\"] }};\ngitops::suspend({owner})"),
            false,
        )
        .await;
    assert_eq!(e.status, RunStatus::Failed);
    assert!(e.error.as_deref().unwrap_or_default().contains("denied"), "{:?}", e.error);

    // Nobody to suspend: a clear, catchable error.
    let e = caught(&w, r#"gitops::suspend(#{ kind: "", name: "", namespace: "" })"#, false).await;
    assert_eq!(e["kind"], "invalid", "{e}");
}

fn cx_for(w: &World) -> rollbook::providers::CallCx {
    let mut cx = rollbook::providers::CallCx::standalone();
    cx.shared = std::sync::Arc::new(rollbook::providers::Shared::new(rollbook::providers::Settings {
        kubeconfig: Some(w.kubeconfig.clone()),
        ..Default::default()
    }));
    cx
}

async fn verify(cx: &rollbook::providers::CallCx, verb: &str, args: &Value) -> &'static str {
    let p = rollbook::providers::builtin()
        .into_iter()
        .find(|p| p.meta().full_name() == format!("gitops::{verb}"))
        .expect("registered");
    let decoded = p.decode(args.clone(), &cx.shared).expect("args decode");
    match decoded.verify(cx.clone(), chrono::Utc::now()).await.expect("verify runs") {
        rollbook::providers::Verified::Applied(_) => "applied",
        rollbook::providers::Verified::NotApplied => "not applied",
        rollbook::providers::Verified::Unknown(_) => "unknown",
    }
}

#[tokio::test]
async fn a_failing_patch_is_a_catchable_error_and_changes_nothing() {
    let toml = format!(
        "{ARGO}\n[[faults]]\nmethod = \"PATCH\"\npath = \"*/applications/shop\"\nstatus = 500\ntimes = 10\n"
    );
    let w = world(&toml).await;
    let e = caught(&w, &format!("gitops::suspend(gitops::owner({ADDR}))"), false).await;
    assert_eq!(e["kind"], "server", "{e}");
    assert!(e["message"].as_str().unwrap_or_default().contains("Argo CD application `shop`"), "{e}");
    assert_eq!(e["target"], "gitops/prod/argocd/shop");
    assert_eq!(w.state("gitops/prod/argocd/shop")["suspended"], false);
    // undo_managed fails before its undo stage, and the guard still holds the k8s change back.
    let report =
        w.run(&format!("import \"std/gitops\" as managed;\nmanaged::undo_managed({ADDR})"), false).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(image(&w), "shop/web:1.5.0");

    let flux_fault = format!(
        "{}\n[[faults]]\nmethod = \"PATCH\"\npath = \"*/kustomizations/shop\"\nstatus = 503\ntimes = 10\n",
        flux("Kustomization")
    );
    let w = world(&flux_fault).await;
    let e = caught(&w, &format!("gitops::suspend(gitops::owner({ADDR}))"), false).await;
    assert_eq!(e["kind"], "server", "{e}");
    assert_eq!(w.state("gitops/prod/flux-system/shop")["suspended"], false);
}

#[tokio::test]
async fn owner_reads_the_argocd_namespace_when_listing_every_namespace_is_forbidden() {
    let toml = format!(
        "{ARGO}\n[[faults]]\nmethod = \"GET\"\npath = \"*/argoproj.io/v1alpha1/applications\"\nstatus = 403\ntimes = 100\n"
    );
    let w = world(&toml).await;
    let v = w.value(&format!("gitops::owner({ADDR})")).await;
    assert_eq!(v["kind"], "argocd", "{v}");
    assert_eq!(v["namespace"], "argocd", "{v}");
    let e = caught(&w, &format!("k8s::undo({ADDR})"), false).await;
    assert_eq!(e["kind"], "gitops_managed", "the guard still finds the owner: {e}");
}

#[tokio::test]
async fn rollback_and_resume_faults_are_catchable_and_change_nothing() {
    let toml = format!(
        "{}\n[[faults]]\nmethod = \"PATCH\"\npath = \"*/applications/shop\"\nstatus = 500\ntimes = 10\n",
        ARGO.replace("auto_sync = true", "auto_sync = false")
    );
    let w = world(&toml).await;
    let e = caught(&w, r#"gitops::rollback(#{ context: "prod", app: "shop", id: 1 })"#, false).await;
    assert_eq!(e["kind"], "server", "{e}");
    assert_eq!(e["target"], "gitops/prod/argocd/shop");
    assert_eq!(image(&w), "shop/web:1.5.0");
    assert_eq!(w.state("gitops/prod/argocd/shop")["revision"], "e4f5a6b", "no history entry was added");
    let e =
        caught(&w, &format!("gitops::resume(gitops::owner({ADDR}) + #{{ auto_sync: true }})"), false).await;
    assert_eq!(e["kind"], "server", "{e}");
    assert_eq!(w.state("gitops/prod/argocd/shop")["suspended"], true);

    let toml = format!(
        "{}\n[[faults]]\nmethod = \"PATCH\"\npath = \"*/kustomizations/shop\"\nstatus = 500\ntimes = 10\n",
        flux("Kustomization").replace("interval = \"10s\"", "interval = \"10s\"\nsuspended = true")
    );
    let w = world(&toml).await;
    let e = caught(&w, &format!("gitops::resume(gitops::owner({ADDR}))"), false).await;
    assert_eq!(e["kind"], "server", "{e}");
    assert_eq!(w.state("gitops/prod/flux-system/shop")["suspended"], true);
}

#[tokio::test]
async fn a_watch_on_applications_streams_the_changes_a_suspend_makes() {
    let w = world(ARGO).await;
    let base = w.sim.k8s_server_url("prod").expect("prod is simulated");
    let list_url = format!("{base}/apis/argoproj.io/v1alpha1/namespaces/argocd/applications");
    let list: Value = reqwest::get(&list_url).await.expect("list answers").json().await.expect("a list");
    assert_eq!(list["kind"], "ApplicationList", "{list}");
    let rv = list["metadata"]["resourceVersion"].as_str().expect("a resourceVersion").to_string();
    w.value(&format!("gitops::suspend(gitops::owner({ADDR}))")).await;
    // A watch from the list's resourceVersion replays what changed since, then ends.
    let url = format!("{list_url}?watch=1&resourceVersion={rv}&timeoutSeconds=1");
    let body = reqwest::get(url).await.expect("watch answers").text().await.expect("body");
    let events: Vec<Value> = body.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "MODIFIED" && e["object"]["spec"]["syncPolicy"].get("automated").is_none()),
        "the suspend arrives as a MODIFIED event: {body}"
    );
}
