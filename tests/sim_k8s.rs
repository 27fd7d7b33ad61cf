//! The simulator's Kubernetes API against the real kubectl (v1.32 via the dispatcher), its
//! faults, its request record and its scenario errors; all over loopback HTTP.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rollbook::sim::{Scenario, ScenarioError, Sim, SimError, SimHandle};
use serde_json::{Value, json};

use crate::k8s::kubectl;

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

async fn ok(kc: &Path, args: &[&str]) -> String {
    let out = kubectl(kc, args).await;
    assert_eq!(out.code, 0, "kubectl {args:?} failed: {}{}", out.stdout, out.stderr);
    out.stdout
}

async fn fails(kc: &Path, args: &[&str]) -> String {
    let out = kubectl(kc, args).await;
    assert_eq!(out.code, 1, "kubectl {args:?} should fail: {}{}", out.stdout, out.stderr);
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
    reqwest::get(url).await.expect("GET").json().await.expect("json")
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
    assert_eq!(ok(kc, &["rollout", "history", "deploy/web"]).await, history(&[1, 2, 3]));
    assert_eq!(
        ok(kc, &["rollout", "status", "deployment/web"]).await,
        "deployment \"web\" successfully rolled out\n"
    );
    let s = sim.resource_state(KEY).unwrap();
    assert_eq!(s["image"], "shop/web:1.5.0");
    assert_eq!((s["revision"].as_i64(), s["ready"].as_i64()), (Some(3), Some(3)));

    // undo: revision 2 comes back as revision 4.
    assert_eq!(ok(kc, &["rollout", "undo", "deploy/web"]).await, "deployment.apps/web rolled back\n");
    let s = sim.resource_state(KEY).unwrap();
    assert_eq!((s["image"].as_str(), s["revision"].as_i64()), (Some("shop/web:1.4.0"), Some(4)));
    assert_eq!(ok(kc, &["rollout", "history", "deploy/web"]).await, history(&[1, 3, 4]));
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
    assert_eq!(reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"], "2");
    assert_eq!(reused["spec"]["template"]["spec"]["containers"][0]["image"], "shop/web:1.4.0");

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
    assert_eq!(ok(kc, &["rollout", "history", "deploy/web"]).await, history(&[3, 4, 5]));
    let out = ok(kc, &["rollout", "status", "deploy/web", "--timeout=5s"]).await;
    assert!(out.ends_with("deployment \"web\" successfully rolled out\n"), "{out}");
    let s = sim.resource_state(KEY).unwrap();
    assert_eq!((s["image"].as_str(), s["ready"].as_i64()), (Some("shop/web:1.3.0"), Some(3)));

    // pause / resume / restart and their client-side refusals.
    assert_eq!(ok(kc, &["rollout", "pause", "deploy/web"]).await, "deployment.apps/web paused\n");
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
        (progressing["status"].as_str(), progressing["reason"].as_str()),
        (Some("Unknown"), Some("DeploymentPaused"))
    );
    assert_eq!(ok(kc, &["rollout", "resume", "deploy/web"]).await, "deployment.apps/web resumed\n");
    assert_eq!(
        fails(kc, &["rollout", "resume", "deploy/web"]).await,
        "error: deployments.apps \"web\" is not paused\n"
    );
    assert_eq!(ok(kc, &["rollout", "restart", "deploy/web"]).await, "deployment.apps/web restarted\n");
    let out = ok(kc, &["rollout", "status", "deploy/web", "--timeout=5s"]).await;
    assert!(out.ends_with("deployment \"web\" successfully rolled out\n"), "{out}");
    assert_eq!(ok(kc, &["rollout", "history", "deploy/web"]).await, history(&[3, 4, 5, 6]));

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
    let d: Value = serde_json::from_str(&ok(kc, &["get", "deploy", "web", "-o", "json"]).await).unwrap();
    assert_eq!(d["metadata"]["generation"], d["status"]["observedGeneration"]);
    assert_eq!(d["status"]["updatedReplicas"], 3);
    assert_eq!(
        fails(kc, &["get", "deploy", "nosuch"]).await,
        "Error from server (NotFound): deployments.apps \"nosuch\" not found\n"
    );

    let described = ok(kc, &["describe", "deploy", "web"]).await;
    for needle in [
        "Progressing    True    NewReplicaSetAvailable",
        "deployment-controller  Scaled up replica set web-",
        " from 0 to 1\n",
    ] {
        assert!(described.contains(needle), "`{needle}` missing from\n{described}");
    }

    // A broken image never becomes ready: status waits, then times out like on a cluster.
    assert!(sim.healthy(KEY).unwrap());
    ok(kc, &["set", "image", "deploy/web", "web=shop/web:9.9.9"]).await;
    let out = kubectl(kc, &["rollout", "status", "deploy/web", "--timeout=2s"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains(
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"
        ),
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
    wait_state(&sim, KEY, |s| s["healthy"] == true && s["ready"] == 3 && s["updated"] == 3).await;
    assert_eq!(reqwest::get(&to).await.unwrap().status(), 200);
    sim.shutdown().await;
}

const FAULTS: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
revisions = ["shop/web:1.0.0", "shop/web:1.1.0"]

[[faults]]
method = "GET"
path = "*/deployments/web"
status = 500
times = 2

[[faults]]
path = "/health/*"
status = 429
retry_after = "3s"

[[faults]]
method = "PATCH"
path = "*/deployments/web"
drop = true
applied = true

[[faults]]
method = "GET"
path = "*/version"
latency = "300ms"

[[faults]]
path = "/subscriptions/*"
status = 503

[[faults]]
method = "POST"
path = "*/leases"
status = 500
applied = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_is_answered_and_recorded() {
    let (sim, _dir, _kc) = start(FAULTS).await;
    let api = sim.k8s_server_url("prod").unwrap();
    let web = format!("{api}/apis/apps/v1/namespaces/shop/deployments/web");
    let http = reqwest::Client::new();

    // status, times = 2: two Kubernetes-style 500s, then the real answer.
    for _ in 0..2 {
        let r = http.get(&web).send().await.unwrap();
        assert_eq!(r.status(), 500);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            (body["kind"].as_str(), body["reason"].as_str(), body["code"].as_i64()),
            (Some("Status"), Some("InternalError"), Some(500))
        );
    }
    assert_eq!(http.get(&web).send().await.unwrap().status(), 200);

    // 429 with Retry-After in seconds, once (default times).
    let health = format!("{}/{KEY}", sim.health_base());
    let r = http.get(&health).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);

    // drop + applied: the client sees a transport error, yet the pause took effect.
    let fresh = reqwest::Client::new();
    let err = fresh
        .patch(&web)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"paused":true}}"#)
        .send()
        .await
        .expect_err("the connection is closed without an answer");
    assert!(err.is_request() || err.is_connect() || err.is_body(), "{err:?}");
    assert_eq!(sim.resource_state(KEY).unwrap()["paused"], true);

    // latency on one answer.
    let t = Instant::now();
    assert_eq!(http.get(format!("{api}/version")).send().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());

    // ARM paths get ARM's error envelope; 503 carries a Retry-After too.
    let r = http
        .get(format!(
            "{}/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups",
            sim.arm_endpoint()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ServiceUnavailable");

    // applied + status: the client is told it failed, yet the Lease exists.
    let leases = format!("{api}/apis/coordination.k8s.io/v1/namespaces/shop/leases");
    let lease = json!({"metadata": {"name": "lock"}, "spec": {"holderIdentity": "a"}});
    let r = http.post(&leases).json(&lease).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(http.get(format!("{leases}/lock")).send().await.unwrap().status(), 200);

    let seen: Vec<(String, String, Option<u16>, bool, bool)> = sim
        .requests()
        .into_iter()
        .map(|r| {
            let tail = r.path.rsplit('/').next().unwrap_or("").to_string();
            (r.method, tail, r.status, r.fault, r.dropped)
        })
        .collect();
    let want = [
        ("GET", "web", Some(500), true, false),
        ("GET", "web", Some(500), true, false),
        ("GET", "web", Some(200), false, false),
        ("GET", "web", Some(429), true, false),
        ("GET", "web", Some(200), false, false),
        ("PATCH", "web", None, true, true),
        ("GET", "version", Some(200), true, false),
        ("GET", "resourcegroups", Some(503), true, false),
        ("POST", "leases", Some(500), true, false),
        ("GET", "lock", Some(200), false, false),
    ];
    let want: Vec<_> =
        want.iter().map(|(m, t, s, f, d)| (m.to_string(), t.to_string(), *s, *f, *d)).collect();
    assert_eq!(seen, want);
    let patch = &sim.requests()[5];
    assert_eq!(patch.body.as_deref(), Some(r#"{"spec":{"paused":true}}"#));
    assert_eq!(sim.requests()[0].query, None);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_latency_delays_every_answer() {
    let (sim, _dir, _kc) =
        start("[sim]\nlatency = \"150ms\"\n[[k8s.deployments]]\nname = \"a\"\nrevisions = [\"a:1\"]\n").await;
    let t = Instant::now();
    let r = reqwest::get(format!("{}/k8s/a", sim.health_base())).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::get(format!("{}/k8s/sim/default/a", sim.health_base())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    assert!(sim.requests().iter().all(|r| !r.fault));
    sim.shutdown().await;
}

/// Reads a watch stream until `pred` holds for an event; returns the events read.
async fn watch_until(mut resp: reqwest::Response, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut buf = String::new();
    let mut events = Vec::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("a watch event in time")
            .expect("watch stream")
            .expect("watch still open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            let ev: Value = serde_json::from_str(&line).expect("a JSON watch event");
            let done = pred(&ev);
            events.push(ev);
            if done {
                return events;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_lists_watches_patches_dry_runs_conflicts_scale_and_leases() {
    let (sim, _dir, _kc) = start(WEB).await;
    let api = sim.k8s_server_url("prod").unwrap();
    let ns = format!("{api}/apis/apps/v1/namespaces/shop");
    let http = reqwest::Client::new();

    // Discovery honours Accept.
    let r = http
        .get(format!("{api}/apis"))
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let legacy = get_json(&format!("{api}/apis")).await;
    assert_eq!(legacy["kind"], "APIGroupList");
    assert_eq!(get_json(&format!("{api}/version")).await["minor"], "32");
    assert!(sim.k8s_server_url("nosuch").is_none());

    // List with a field selector, then watch from its resourceVersion.
    let list =
        get_json(&format!("{ns}/deployments?fieldSelector=metadata.name%3Dweb&limit=500&resourceVersion=0"))
            .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let watch = http
        .get(format!("{ns}/deployments?allowWatchBookmarks=true&fieldSelector=metadata.name%3Dweb&resourceVersion={rv}&timeoutSeconds=30&watch=true"))
        .send()
        .await
        .unwrap();

    // Merge patch (kube's default) scales; the watch sees it and the rollout settle.
    let r = http
        .patch(format!("{ns}/deployments/web"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"replicas":2}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = watch_until(watch, |e| e["object"]["status"]["replicas"] == 2).await;
    assert!(events.iter().all(|e| e["type"] == "MODIFIED"), "{events:?}");

    // dryRun=All returns the result and persists nothing.
    let r = http
        .patch(format!("{ns}/deployments/web?dryRun=All"))
        .header("content-type", "application/json-patch+json")
        .body(
            r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"shop/web:2.0.0"}]"#,
        )
        .send()
        .await
        .unwrap();
    let dry: Value = r.json().await.unwrap();
    assert_eq!(dry["spec"]["template"]["spec"]["containers"][0]["image"], "shop/web:2.0.0");
    assert_eq!(sim.resource_state(KEY).unwrap()["image"], "shop/web:1.5.0");

    // Strategic merge of a named container (kubectl set image) rolls forward to revision 4.
    let r = http
        .patch(format!("{ns}/deployments/web"))
        .header("content-type", "application/strategic-merge-patch+json")
        .body(r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],"containers":[{"image":"shop/web:1.6.0","name":"web"}]}}}}"#)
        .send()
        .await
        .unwrap();
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "4");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    wait_state(&sim, KEY, |s| s["image"] == "shop/web:1.6.0" && s["ready"] == 2 && s["updated"] == 2).await;

    // PUT with a stale resourceVersion is a conflict; with the current one it applies.
    let mut stale = d.clone();
    stale["spec"]["replicas"] = json!(1);
    let r = http.put(format!("{ns}/deployments/web")).json(&stale).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "Conflict");
    // The controller may update status between our GET and PUT: retry on conflict, as
    // client-go's RetryOnConflict does.
    let mut status = 0;
    for _ in 0..20 {
        let mut fresh = get_json(&format!("{ns}/deployments/web")).await;
        fresh["spec"]["replicas"] = json!(1);
        let r = http.put(format!("{ns}/deployments/web")).json(&fresh).send().await.unwrap();
        status = r.status().as_u16();
        if status != 409 {
            break;
        }
    }
    assert_eq!(status, 200);

    // The scale subresource.
    let scale = get_json(&format!("{ns}/deployments/web/scale")).await;
    assert_eq!((scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()), (Some("Scale"), Some(1)));
    assert_eq!(scale["status"]["selector"], "app=web");

    // Errors are Status objects with kubectl's wording.
    let r = http.get(format!("{ns}/deployments/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "deployments.apps \"nope\" not found");
    assert_eq!(body["details"], json!({"name": "nope", "group": "apps", "kind": "deployments"}));
    let r = http
        .patch(format!("{ns}/deployments/web"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"template":{"metadata":{"labels":{"app":"other"}}}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // Leases: create, conflict on create, update with and without the current version.
    let leases = format!("{api}/apis/coordination.k8s.io/v1/namespaces/shop/leases");
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "rollbook-lock"}, "spec": {"holderIdentity": "run-1", "leaseDurationSeconds": 60}});
    let r = http.post(&leases).json(&lease).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(http.post(&leases).json(&lease).send().await.unwrap().status(), 409);
    let mut renewed = created.clone();
    renewed["spec"]["holderIdentity"] = json!("run-2");
    let r = http.put(format!("{leases}/rollbook-lock")).json(&renewed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.put(format!("{leases}/rollbook-lock")).json(&renewed).send().await.unwrap();
    assert_eq!(r.status(), 409, "the first update changed the resourceVersion");
    assert_eq!(get_json(&format!("{leases}/rollbook-lock")).await["spec"]["holderIdentity"], "run-2");
    assert_eq!(http.delete(format!("{leases}/rollbook-lock")).send().await.unwrap().status(), 200);
    let gone = get_json(&format!("{leases}/rollbook-lock")).await;
    assert_eq!(gone["message"], "leases.coordination.k8s.io \"rollbook-lock\" not found");

    // The streaming list (sendInitialEvents) ends its initial ADDED events with a bookmark.
    let watch = http
        .get(format!("{ns}/deployments?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"))
        .send()
        .await
        .unwrap();
    let events = watch_until(watch, |e| e["type"] == "BOOKMARK").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0]["type"].as_str(), events[0]["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("web"))
    );
    assert_eq!(events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    sim.shutdown().await;
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test]
async fn malformed_scenarios_name_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = write(dir.path(), "bad.toml", "name = \"x\"\n[[k8s.deployments]]\nname = \n");
    match rollbook::sim::serve(&bad_toml, None, None).await {
        Err(SimError::Scenario(ScenarioError::Parse { line, .. })) => assert_eq!(line, 3),
        other => panic!("expected a parse error, got {:?}", other.err()),
    }
    let unknown_key =
        write(dir.path(), "key.toml", "[[k8s.deployments]]\nname = \"web\"\nrevisons = [\"a\"]\n");
    let err = rollbook::sim::serve(&unknown_key, None, None).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("key.toml:3:") && text.contains("revisons"), "{text}");
    let follows = write(
        dir.path(),
        "follows.toml",
        "[[k8s.deployments]]\nname = \"web\"\nrevisions = [\"a\"]\n\n[[health]]\nurl = \"http://x\"\nfollows = \"k8s/sim/default/wbe\"\n",
    );
    let text = rollbook::sim::serve(&follows, None, None).await.unwrap_err().to_string();
    assert!(text.contains("follows.toml:7:"), "{text}");
    assert!(text.contains("unknown `follows` target `k8s/sim/default/wbe`"), "{text}");
    assert!(text.contains("did you mean `k8s/sim/default/web`"), "{text}");

    let err = rollbook::sim::serve(&follows, Some("0.0.0.0:0".parse().unwrap()), None).await.unwrap_err();
    assert!(matches!(err, SimError::NotLoopback { .. }), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_health_and_prometheus_cover_every_context_and_key() {
    let (sim, _dir, kc) = start(&format!(
        "{WEB}\n[[aks.clusters]]\ngroup = \"rg-shop\"\nname = \"aks-prod\"\ncontext = \"aks-prod\"\n"
    ))
    .await;
    let yaml = sim.kubeconfig_yaml();
    assert!(yaml.contains("current-context: \"prod\"\n"), "{yaml}");
    let out = ok(&kc, &["config", "get-contexts", "-o", "name"]).await;
    assert_eq!(out, "aks-prod\nprod\n");
    let aks = sim.k8s_server_url("aks-prod").unwrap();
    assert_eq!(get_json(&format!("{aks}/apis/apps/v1/deployments")).await["items"], json!([]));
    let out = kubectl(&kc, &["--context", "aks-prod", "get", "deploy"]).await;
    assert_eq!((out.code, out.stderr.as_str()), (0, "No resources found in shop namespace.\n"));

    let q = get_json(&format!(
        "{}/prometheus/api/v1/query?query=error_rate%7Bresource%3D%22{KEY}%22%7D",
        sim.arm_endpoint()
    ))
    .await;
    assert_eq!(q["data"]["result"][0]["metric"]["resource"], KEY);
    assert_eq!(q["data"]["result"][0]["value"][1], "0");
    let r = reqwest::get(format!("{}/k8s/prod/shop/nosuch", sim.health_base())).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(sim.healthy("k8s/prod/shop/nosuch"), None);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_trimmed_to_the_limit_and_contexts_may_need_escaping() {
    let (sim, _dir, kc) = start(
        "[[k8s.deployments]]\ncontext = \"team/a:prod\"\nnamespace = \"shop\"\nname = \"web\"\nrevision_history_limit = 2\nrevisions = [\"w:1\", \"w:2\", \"w:3\", \"w:4\", \"w:5\"]\n",
    )
    .await;
    let url = sim.k8s_server_url("team/a:prod").unwrap();
    assert!(url.ends_with("/k8s/team/a:prod"), "{url}");
    assert_eq!(ok(&kc, &["rollout", "history", "deploy/web"]).await, history(&[3, 4, 5]));
    let s = sim.resource_state("k8s/team/a:prod/shop/web").unwrap();
    assert_eq!((s["image"].as_str(), s["revision"].as_i64()), (Some("w:5"), Some(5)));

    // A watch resuming from before what the server remembers is told 410 Gone.
    let r = reqwest::get(format!("{url}/apis/apps/v1/namespaces/shop/deployments?watch=1&resourceVersion=1"))
        .await
        .unwrap();
    let ev: Value = serde_json::from_str(r.text().await.unwrap().trim()).unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["code"].as_i64()), (Some("ERROR"), Some(410)));

    // Dropping the last handle stops the server.
    let addr = sim.addr();
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_client_errors_and_the_server_keeps_serving() {
    let (sim, _dir, _kc) = start(WEB).await;
    let web = format!("{}/apis/apps/v1/namespaces/shop/deployments/web", sim.k8s_server_url("prod").unwrap());
    let http = reqwest::Client::new();
    for (ct, body) in [
        ("application/merge-patch+json", r#"{"spec":"nope"}"#),
        ("application/merge-patch+json", r#"{"spec":{"strategy":7,"replicas":1}}"#),
        ("application/merge-patch+json", r#"{"spec":{"replicas":99999999999}}"#),
        ("application/merge-patch+json", r#"{"spec":{"replicas":"3"}}"#),
        (
            "application/strategic-merge-patch+json",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":null}]}}}}"#,
        ),
        ("application/json-patch+json", r#"[{"op":"remove","path":"/spec/template/spec/containers/9"}]"#),
        ("application/json-patch+json", r#"{"op":"bogus"}"#),
        ("application/merge-patch+json", "not json"),
        ("text/plain", "{}"),
    ] {
        let r = http.patch(&web).header("content-type", ct).body(body).send().await.unwrap();
        assert!(r.status().is_client_error() || r.status() == 200, "{body}: {}", r.status());
    }
    let r = http.put(&web).body("[1,2]").send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = http
        .get(format!("{}s?watch=1&labelSelector=a%20in%20(b", web.trim_end_matches("s/web")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The Deployment is still served and still healthy.
    assert_eq!(http.get(&web).send().await.unwrap().status(), 200);
    assert!(sim.healthy(KEY).unwrap());
    sim.shutdown().await;
}

/// `spec.replicas` of each owned ReplicaSet by image, once the controller has settled.
async fn rs_sizes(api: &str) -> Vec<(String, i64)> {
    let list = get_json(&format!("{api}/apis/apps/v1/namespaces/shop/replicasets")).await;
    let mut sizes: Vec<(String, i64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            let image =
                rs["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_string();
            (image, rs["spec"]["replicas"].as_i64().unwrap())
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    sizes.sort();
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_scales_proportionally_like_the_documented_example() {
    // kubernetes.io "Proportional scaling": 10 replicas, maxSurge 3, maxUnavailable 2, an image
    // that never becomes ready: 8 old + 5 new; scaling to 15 adds 3 to the old and 2 to the new.
    let (sim, _dir, _kc) = start(
        "[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nreplicas = 10\nrevisions = [\"w:1\"]\nbroken = [\"w:bad\"]\n",
    )
    .await;
    let api = sim.k8s_server_url("prod").unwrap();
    let web = format!("{api}/apis/apps/v1/namespaces/shop/deployments/web");
    let http = reqwest::Client::new();
    let patch = |body: &'static str| {
        http.patch(&web).header("content-type", "application/strategic-merge-patch+json").body(body).send()
    };
    assert_eq!(
        patch(r#"{"spec":{"strategy":{"rollingUpdate":{"maxSurge":3,"maxUnavailable":2}}}}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        patch(r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"w:bad"}]}}}}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    wait_state(&sim, KEY, |s| s["updated"] == 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rs_sizes(&api).await, vec![("w:1".to_string(), 8), ("w:bad".to_string(), 5)]);
    assert!(!sim.healthy(KEY).unwrap());

    assert_eq!(patch(r#"{"spec":{"replicas":15}}"#).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rs_sizes(&api).await, vec![("w:1".to_string(), 11), ("w:bad".to_string(), 7)]);
    sim.shutdown().await;
}

/// A writer that hands each write to the test.
struct Lines(tokio::sync::mpsc::UnboundedSender<Vec<u8>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_one_json_line_writes_the_kubeconfig_and_stops_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(dir.path(), "web.toml", WEB);
    let kc = dir.path().join("out").join("kubeconfig");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (scenario2, kc2) = (scenario.clone(), kc.clone());
    let server = tokio::spawn(async move {
        let mut out = Lines(tx);
        rollbook::sim::serve_until(&scenario2, None, Some(&kc2), &mut out, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let line = String::from_utf8(rx.recv().await.expect("the JSON line")).unwrap();
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line:?}");
    let v: Value = serde_json::from_str(&line).unwrap();
    let arm = v["arm_endpoint"].as_str().unwrap();
    assert!(arm.starts_with("http://127.0.0.1:"), "{arm}");
    assert_eq!(v["health_base"].as_str().unwrap(), format!("{arm}/health"));
    assert_eq!(v["kubeconfig"].as_str().unwrap(), kc.display().to_string());
    assert_eq!(ok(&kc, &["rollout", "history", "deploy/web"]).await, history(&[1, 2, 3]));
    let health = reqwest::get(format!("{arm}/health/{KEY}")).await.unwrap();
    assert_eq!(health.status(), 200);

    stop_tx.send(()).unwrap();
    server.await.unwrap().expect("serve ends cleanly");
    assert!(reqwest::get(format!("{arm}/health/{KEY}")).await.is_err());
}
