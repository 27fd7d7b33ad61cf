//! The simulated Kubernetes API fails where a real cluster fails and serves what standard tools
//! ask of one: progress deadlines, watches the official Python client can follow, the API at the
//! root of each cluster's own port, OpenAPI, Pods. Driven by the real kubectl and the real
//! Python `kubernetes` client.

use serde_json::{Value, json};

use crate::k8s::{kubectl, start};
use crate::pyvenv_k8s::run_script;

const WEB: &str = "context: \"prod\", namespace: \"shop\", deployment: \"web\"";

/// A bad rollout that began twenty minutes ago: past the default ten-minute deadline.
const STUCK: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.4.0", "shop/web:9.9.9"]
broken = ["shop/web:9.9.9"]
rollout_age = "20m"
"#;

/// Two Deployments: the scenario writes `web` before `api`, so `web`'s resourceVersion is older
/// than the last one the scenario wrote.
const TWO: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]

[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "api"
revisions = ["shop/api:1.0.0"]
"#;

fn progressing(d: &Value) -> Value {
    d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rollout_dated_back_beyond_its_deadline_starts_out_exceeded() {
    let w = start(STUCK).await;
    let k = kubectl(&w.kubeconfig, &["rollout", "status", "deploy/web", "--timeout=60s"]).await;
    assert_eq!(k.code, 1, "{}{}", k.stdout, k.stderr);
    assert_eq!(k.stderr, "error: deployment \"web\" exceeded its progress deadline\n");

    let d: Value =
        serde_json::from_str(&kubectl(&w.kubeconfig, &["get", "deploy/web", "-o", "json"]).await.stdout)
            .expect("json");
    let cond = progressing(&d);
    assert_eq!(
        (&cond["status"], &cond["reason"]),
        (&json!("False"), &json!("ProgressDeadlineExceeded")),
        "{d}"
    );
    let msg = cond["message"].as_str().unwrap_or("");
    assert!(msg.starts_with("ReplicaSet \"web-") && msg.ends_with("\" has timed out progressing."), "{msg}");
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);

    let r = w.value(&format!("k8s::status(#{{ {WEB}, timeout: \"1m\" }})")).await;
    assert_eq!(
        (&r["complete"], &r["timed_out"], &r["reason"]),
        (&json!(false), &json!(false), &json!("ProgressDeadlineExceeded")),
        "{r}"
    );
    assert_eq!(r["message"], "deployment \"web\" exceeded its progress deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_stops_progressing_exceeds_its_own_deadline() {
    let toml = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0"]
broken = ["shop/web:9.9.9"]
progress_deadline_seconds = 1
"#;
    let w = start(toml).await;
    let r = w.value(&format!("k8s::status(#{{ {WEB} }})")).await;
    assert_eq!((&r["complete"], &r["reason"]), (&json!(true), &json!("NewReplicaSetAvailable")), "{r}");
    assert_eq!(kubectl(&w.kubeconfig, &["set", "image", "deploy/web", "web=shop/web:9.9.9"]).await.code, 0);
    // The controller looks again once the second has passed, without anything else changing.
    let k = kubectl(&w.kubeconfig, &["rollout", "status", "deploy/web", "--timeout=60s"]).await;
    assert_eq!(k.stderr, "error: deployment \"web\" exceeded its progress deadline\n", "{}", k.stdout);
    assert_eq!(k.code, 1);
    let r = w.value(&format!("k8s::status(#{{ {WEB}, timeout: \"1m\" }})")).await;
    assert_eq!(r["reason"], "ProgressDeadlineExceeded", "{r}");

    // A new rollout starts the clock again: the good image completes.
    assert_eq!(kubectl(&w.kubeconfig, &["set", "image", "deploy/web", "web=shop/web:1.5.0"]).await.code, 0);
    let k = kubectl(&w.kubeconfig, &["rollout", "status", "deploy/web", "--timeout=60s"]).await;
    assert_eq!(k.code, 0, "{}{}", k.stdout, k.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_bad_rollout_has_not_exceeded_the_default_deadline() {
    let w = start(&STUCK.replace("rollout_age = \"20m\"\n", "")).await;
    let r = w.value(&format!("k8s::status(#{{ {WEB}, timeout: \"1s\" }})")).await;
    assert_eq!(
        (&r["complete"], &r["timed_out"], &r["reason"]),
        (&json!(false), &json!(true), &json!("ReplicaSetUpdated")),
        "{r}"
    );
}

#[test]
fn a_progress_deadline_below_one_second_is_a_scenario_error() {
    let text = "[[k8s.deployments]]\nname = \"web\"\nrevisions = [\"a\"]\nprogress_deadline_seconds = 0\n";
    let err = rollbook::sim::Scenario::parse(std::path::Path::new("t.toml"), text).expect_err("rejected");
    assert!(
        err.to_string().contains("progress_deadline_seconds must be between 1 and 2147483647, not 0"),
        "{err}"
    );
}

const PY_WATCH: &str = r#"
import json, signal, sys
from kubernetes import client, config, watch
signal.alarm(120)  # a watch that never yields would otherwise hang the test
config.load_kube_config(config_file=sys.argv[1], context="prod")
apps = client.AppsV1Api()
d = apps.read_namespaced_deployment("web", "shop")
rv = d.metadata.resource_version
apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 5}})
def follow(**kw):
    w = watch.Watch()
    seen = []
    for ev in w.stream(apps.list_namespaced_deployment, "shop", resource_version=rv,
                       field_selector="metadata.name=web", **kw):
        seen.append([ev["type"], ev["object"].spec.replicas])
        if ev["object"].spec.replicas == 5:
            w.stop()
    return seen
print(json.dumps({"bounded": follow(timeout_seconds=60), "unbounded": follow()}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_watches_from_an_objects_own_resource_version() {
    let w = start(TWO).await;
    let n = w.sim.requests().len();
    let out = run_script(&w.kubeconfig, PY_WATCH).await;
    let got: Value = serde_json::from_str(out.trim()).expect("json line");
    for run in ["bounded", "unbounded"] {
        assert_eq!(got[run].as_array().and_then(|s| s.last()), Some(&json!(["MODIFIED", 5])), "{run}: {got}");
    }
    let watches = w
        .requests_since(n)
        .iter()
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("watch=True") || q.contains("watch=true")))
        .count();
    assert_eq!(watches, 2, "one watch each, no request storm: {:?}", w.requests_since(n).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_ends_its_error_event_with_a_newline() {
    let w = start(TWO).await;
    let base = w.sim.k8s_server_url("prod").expect("served");
    let url = format!("{base}/apis/apps/v1/namespaces/shop/deployments?watch=true&resourceVersion=1");
    let body = reqwest::get(&url).await.expect("GET").text().await.expect("body");
    assert!(body.ends_with('\n'), "{body:?}");
    let ev: Value = serde_json::from_str(body.trim_end()).expect("one event");
    assert_eq!(
        (&ev["type"], &ev["object"]["code"], &ev["object"]["reason"]),
        (&json!("ERROR"), &json!(410), &json!("Expired"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_answers_at_the_root_of_its_own_port() {
    let w = start(STUCK).await;
    let url = w.sim.k8s_cluster_url("prod").expect("served");
    let config = std::fs::read_to_string(&w.kubeconfig).expect("kubeconfig");
    assert!(config.contains(&format!("server: \"{url}\"")), "{config}");
    let raw = |path: &'static str| {
        let kc = w.kubeconfig.clone();
        async move {
            let out = kubectl(&kc, &["get", "--raw", path]).await;
            assert_eq!(out.code, 0, "get --raw {path}: {}{}", out.stdout, out.stderr);
            out.stdout
        }
    };
    let version: Value = serde_json::from_str(&raw("/version").await).expect("version json");
    assert_eq!(version["major"], "1", "{version}");
    let apis: Value = serde_json::from_str(&raw("/apis").await).expect("apis json");
    assert!(apis["groups"].as_array().is_some_and(|g| g.iter().any(|g| g["name"] == "apps")), "{apis}");
    assert_eq!(raw("/healthz").await, "ok");
    assert_eq!(raw("/readyz").await, "ok");

    // kubectl proxy serves the cluster on a port of its own, as against a real one.
    let cache = tempfile::tempdir().expect("cache dir");
    let mut proxy = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&w.kubeconfig)
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["proxy", "--port=0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl proxy starts");
    let stdout = proxy.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout);
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await.expect("proxy line");
    let addr = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    assert!(line.starts_with("Starting to serve on 127.0.0.1:"), "{line}");
    let d: Value = reqwest::get(format!("http://{addr}/apis/apps/v1/namespaces/shop/deployments/web"))
        .await
        .expect("GET through the proxy")
        .json()
        .await
        .expect("json");
    assert_eq!(d["metadata"]["name"], "web", "{d}");
    proxy.kill().await.expect("proxy stopped");

    // The path-prefixed address on the main port serves the same API, and requests on the
    // cluster's port are recorded under it.
    let prefixed = w.sim.k8s_server_url("prod").expect("served");
    let v: Value =
        reqwest::get(format!("{prefixed}/version")).await.expect("GET").json().await.expect("json");
    assert_eq!(v, version);
    assert!(w.sim.requests().iter().any(|r| r.path == "/k8s/prod/healthz"), "{:?}", w.sim.requests());
}

const NEW_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: cart}
  template:
    metadata:
      labels: {app: cart}
    spec:
      containers:
      - name: cart
        image: shop/cart:1.0.0
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_creates_and_explains_with_validation_on() {
    let w = start(STUCK).await;
    let file = w.dir.path().join("cart.yaml");
    std::fs::write(&file, NEW_DEPLOYMENT).expect("manifest written");
    let f = file.to_str().expect("utf-8 path");
    let out = kubectl(&w.kubeconfig, &["apply", "-f", f]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "deployment.apps/cart created\n"), "{}", out.stderr);
    let state = w.sim.resource_state("k8s/prod/shop/cart").expect("created");
    assert_eq!(state["image"], "shop/cart:1.0.0");

    // A server-side dry run of a change leaves the object as it was.
    let changed = NEW_DEPLOYMENT.replace("replicas: 2", "replicas: 4");
    std::fs::write(&file, changed).expect("manifest written");
    let out = kubectl(&w.kubeconfig, &["apply", "--dry-run=server", "-f", f]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "deployment.apps/cart configured (server dry run)\n"),
        "{}",
        out.stderr
    );
    assert_eq!(w.sim.resource_state("k8s/prod/shop/cart").expect("cart")["replicas"], 2);

    let other = NEW_DEPLOYMENT.replace("cart", "till");
    std::fs::write(&file, other).expect("manifest written");
    let out = kubectl(&w.kubeconfig, &["create", "-f", f]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "deployment.apps/till created\n"), "{}", out.stderr);

    let out = kubectl(&w.kubeconfig, &["explain", "deployment.spec"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("FIELD: spec <DeploymentSpec>"), "{}", out.stdout);
    assert!(out.stdout.contains("progressDeadlineSeconds\t<integer>"), "{}", out.stdout);
    let out = kubectl(&w.kubeconfig, &["explain", "pods.spec.containers.image"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FIELD: image <string>"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_the_broken_pods_of_a_bad_rollout() {
    let w = start(STUCK).await;
    let out = kubectl(&w.kubeconfig, &["get", "pods"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{}",
        out.stdout
    );
    let d: Value = serde_json::from_str(&kubectl(&w.kubeconfig, &["get", "rs", "-o", "json"]).await.stdout)
        .expect("json");
    let rss = d["items"].as_array().cloned().unwrap_or_default();
    let bad = rss
        .iter()
        .find(|rs| rs["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/web:9.9.9")
        .expect("bad rs");
    let good = rss
        .iter()
        .find(|rs| rs["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/web:1.4.0")
        .expect("good rs");
    let (bad_name, good_name) =
        (bad["metadata"]["name"].as_str().unwrap_or(""), good["metadata"]["name"].as_str().unwrap_or(""));
    let crashing: Vec<&&str> = lines.iter().filter(|l| l.starts_with(&format!("{bad_name}-"))).collect();
    let running: Vec<&&str> = lines.iter().filter(|l| l.starts_with(&format!("{good_name}-"))).collect();
    assert_eq!(crashing.len() as i64, bad["status"]["replicas"].as_i64().unwrap_or(-1), "{}", out.stdout);
    assert_eq!(running.len() as i64, good["status"]["replicas"].as_i64().unwrap_or(-1), "{}", out.stdout);
    assert!(!crashing.is_empty() && !running.is_empty(), "{}", out.stdout);
    for l in &crashing {
        assert!(l.contains(" 0/1 ") && l.contains("CrashLoopBackOff"), "{l}");
    }
    for l in &running {
        assert!(l.contains(" 1/1 ") && l.contains("Running"), "{l}");
    }

    // The pod itself: its hash label, owner, Ready condition and container state.
    let pod_name = crashing[0].split_whitespace().next().unwrap_or("");
    let pod: Value =
        serde_json::from_str(&kubectl(&w.kubeconfig, &["get", "pod", pod_name, "-o", "json"]).await.stdout)
            .expect("pod json");
    assert_eq!(
        pod["metadata"]["labels"]["pod-template-hash"],
        bad["metadata"]["labels"]["pod-template-hash"]
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], bad_name);
    let ready = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned();
    assert_eq!(ready.map(|c| c["status"].clone()), Some(json!("False")), "{pod}");
    assert_eq!(pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert!(pod["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) > 0, "{pod}");

    let out = kubectl(&w.kubeconfig, &["describe", "pod", pod_name]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Reason:       CrashLoopBackOff"), "{}", out.stdout);
    assert!(out.stdout.contains("Back-off restarting failed container web"), "{}", out.stdout);
    let out = kubectl(&w.kubeconfig, &["logs", pod_name]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("web") && out.stdout.ends_with('\n'), "{}", out.stdout);

    let out = kubectl(&w.kubeconfig, &["get", "events"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let header = out.stdout.lines().next().unwrap_or("");
    assert!(
        header.starts_with("LAST SEEN   TYPE      REASON")
            && header.contains("OBJECT")
            && header.ends_with("MESSAGE"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("BackOff"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_leaves_its_pods_pending() {
    let w = start(&STUCK.replace("rollout_age = \"20m\"\n", "broken_reason = \"ImagePullBackOff\"\n")).await;
    let out = kubectl(&w.kubeconfig, &["get", "pods"]).await;
    assert!(
        out.stdout.lines().any(|l| l.contains(" 0/1 ") && l.contains("ImagePullBackOff")),
        "{}",
        out.stdout
    );
    let pod = out
        .stdout
        .lines()
        .find(|l| l.contains("ImagePullBackOff"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_string();
    let logs = kubectl(&w.kubeconfig, &["logs", &pod]).await;
    assert_eq!(logs.code, 1);
    assert!(logs.stderr.contains("is waiting to start: trying and failing to pull image"), "{}", logs.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_services_configmaps_and_access_reviews_answer_kubectl() {
    let w = start(STUCK).await;
    let ok = |args: &'static [&'static str]| {
        let kc = w.kubeconfig.clone();
        async move {
            let out = kubectl(&kc, args).await;
            assert_eq!(out.code, 0, "kubectl {args:?}: {}{}", out.stdout, out.stderr);
            out.stdout
        }
    };
    assert_eq!(ok(&["create", "ns", "team-a"]).await, "namespace/team-a created\n");
    assert!(ok(&["get", "ns"]).await.lines().any(|l| l.starts_with("team-a") && l.contains("Active")));
    let bad = kubectl(&w.kubeconfig, &["create", "ns", "Team_A"]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("a lowercase RFC 1123 label must consist of"), "{}", bad.stderr);

    // An object in a namespace that does not exist is refused, as a real server refuses it.
    let file = w.dir.path().join("cart.yaml");
    std::fs::write(&file, NEW_DEPLOYMENT.replace("namespace: shop", "namespace: nosuch")).expect("written");
    let out = kubectl(&w.kubeconfig, &["apply", "-n", "nosuch", "-f", file.to_str().unwrap_or("")]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("namespaces \"nosuch\" not found"), "{}", out.stderr);

    assert_eq!(
        ok(&["create", "configmap", "settings", "--from-literal=a=1"]).await,
        "configmap/settings created\n"
    );
    let cms = ok(&["get", "cm"]).await;
    assert!(cms.starts_with("NAME       DATA   AGE\nsettings   1"), "{cms}");
    let svcs = ok(&["get", "svc", "-n", "default"]).await;
    assert!(svcs.starts_with("NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE\nkubernetes   ClusterIP   10.0.0.1"), "{svcs}");
    assert_eq!(ok(&["auth", "can-i", "get", "pods"]).await, "yes\n");

    // kubectl's typed create commands send protobuf bodies, as to a real server.
    assert_eq!(
        ok(&["create", "deployment", "nginx", "--image=nginx:1.27", "--replicas=2"]).await,
        "deployment.apps/nginx created\n"
    );
    let nginx = w.sim.resource_state("k8s/prod/shop/nginx").expect("created");
    assert_eq!((&nginx["image"], &nginx["replicas"]), (&json!("nginx:1.27"), &json!(2)), "{nginx}");
    assert_eq!(
        ok(&["create", "secret", "generic", "token", "--from-literal=a=b"]).await,
        "secret/token created\n"
    );
    assert_eq!(
        ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]).await,
        "service/web created\n"
    );
    let svc =
        ok(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].port}/{.spec.ports[0].targetPort}"]).await;
    assert_eq!(svc, "80/8080");
    let info = ok(&["cluster-info"]).await;
    assert!(info.contains("Kubernetes control plane is running at"), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_with_limit_and_continue() {
    let w = start(STUCK).await;
    let base = w.sim.k8s_cluster_url("prod").expect("served");
    let url = format!("{base}/apis/apps/v1/namespaces/shop/replicasets?limit=1");
    let first: Value = reqwest::get(&url).await.expect("GET").json().await.expect("json");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1), "{first}");
    let token = first["metadata"]["continue"].as_str().expect("a continue token").to_string();
    let second: Value =
        reqwest::get(format!("{url}&continue={token}")).await.expect("GET").json().await.expect("json");
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1), "{second}");
    assert!(second["metadata"]["continue"].is_null(), "{second}");
    assert_ne!(first["items"][0]["metadata"]["name"], second["items"][0]["metadata"]["name"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_refused_under_strict_validation_and_dropped_with_a_warning_otherwise() {
    let w = start(STUCK).await;
    let file = w.dir.path().join("typo.yaml");
    std::fs::write(&file, NEW_DEPLOYMENT.replace("  replicas: 2", "  replica: 2")).expect("written");
    let out = kubectl(&w.kubeconfig, &["apply", "-f", file.to_str().unwrap_or("")]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("strict decoding error: unknown field \"spec.replica\""), "{}", out.stderr);
    assert!(w.sim.resource_state("k8s/prod/shop/cart").is_none(), "nothing was created");

    let base = w.sim.k8s_cluster_url("prod").expect("served");
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cart", "namespace": "shop"},
        "spec": {"replica": 2, "selector": {"matchLabels": {"app": "cart"}},
            "template": {"metadata": {"labels": {"app": "cart"}},
                "spec": {"containers": [{"name": "cart", "image": "shop/cart:1", "imagePull": "x"}]}}}});
    let resp = reqwest::Client::new()
        .post(format!("{base}/apis/apps/v1/namespaces/shop/deployments"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 201);
    let warnings: Vec<String> =
        resp.headers().get_all("warning").iter().filter_map(|v| v.to_str().ok().map(String::from)).collect();
    assert_eq!(
        warnings,
        [
            "299 - \"unknown field \\\"spec.replica\\\"\"",
            "299 - \"unknown field \\\"spec.template.spec.containers[0].imagePull\\\"\""
        ]
    );
    let created: Value = resp.json().await.expect("json");
    assert!(created["spec"].get("replica").is_none() && created["spec"]["replicas"] == 1, "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_then_updates() {
    let w = start(STUCK).await;
    let file = w.dir.path().join("cart.yaml");
    std::fs::write(&file, NEW_DEPLOYMENT).expect("written");
    let f = file.to_str().unwrap_or("");
    let out = kubectl(&w.kubeconfig, &["apply", "--server-side", "-f", f]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "deployment.apps/cart serverside-applied\n"),
        "{}",
        out.stderr
    );
    std::fs::write(&file, NEW_DEPLOYMENT.replace("replicas: 2", "replicas: 3")).expect("written");
    let out = kubectl(&w.kubeconfig, &["apply", "--server-side", "-f", f]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "deployment.apps/cart serverside-applied\n"),
        "{}",
        out.stderr
    );
    assert_eq!(w.sim.resource_state("k8s/prod/shop/cart").expect("cart")["replicas"], 3);
}
