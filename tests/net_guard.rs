//! Network isolation of rehearsals and dry-runs, and the three health verdicts.
//!
//! A plain TCP listener on 127.0.0.1 stands for the real world: it counts the connections it
//! accepts. Under `--sandbox` and `rollbook test` nothing may reach it; under `--dry-run` a GET
//! probe may (reads are real) but a probe with any other method is refused before sending.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use rollbook::engine::{Engine, RunOptions};
use rollbook::providers::Settings;
use serde_json::{Value, json};

use crate::support::{Outcome, Rollbook, World, serve, write};

/// A listener standing for a real server: counts connections, answers `200 ok` to each.
struct RealWorld {
    port: u16,
    hits: Arc<AtomicUsize>,
    marker_seen: Arc<AtomicBool>,
}

impl RealWorld {
    fn start() -> RealWorld {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let marker_seen = Arc::new(AtomicBool::new(false));
        let (h, m) = (hits.clone(), marker_seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                if buf[..n].starts_with(b"MARKER") {
                    m.store(true, Ordering::SeqCst);
                    continue;
                }
                h.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        RealWorld { port, hits, marker_seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Connections accepted so far, counted only once every earlier connection was accepted
    /// (a marker connection goes through the same FIFO accept queue).
    fn connections(&self) -> usize {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("marker connects");
        let _ = s.write_all(b"MARKER");
        let began = Instant::now();
        while !self.marker_seen.load(Ordering::SeqCst) {
            assert!(began.elapsed() < Duration::from_secs(20), "the listener never saw the marker");
            std::thread::sleep(Duration::from_millis(5));
        }
        self.marker_seen.store(false, Ordering::SeqCst);
        self.hits.load(Ordering::SeqCst)
    }
}

const WORLD: &str = r#"
name = "net guard"

[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
broken = ["shop/web:1.5.0"]

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0" }

[[health]]
url = "https://shop.example.com/healthz"
follows = "appservice/rg-shop/shop-web"
"#;

/// A rehearsal of `source` in WORLD.
fn sandboxed(source: &str) -> Outcome {
    Rollbook::new().script(source).world(World::toml(WORLD)).sandbox().run()
}

#[test]
fn sandbox_runs_reach_nothing_the_scenario_does_not_map() {
    let real = RealWorld::start();
    for (name, call) in [
        ("get", format!(r#"health::http(#{{ url: "{}" }})"#, real.url("/real"))),
        ("head", format!(r#"health::http(#{{ url: "{}", method: "HEAD" }})"#, real.url("/real"))),
        ("prometheus", format!(r#"health::prometheus(#{{ url: "{}", query: "up", min: 1 }})"#, real.url(""))),
    ] {
        let out = sandboxed(&format!("let r = {call};\ninfo(`${{r}}`);\n"));
        let text = out.both();
        assert_ne!(out.code(), Some(0), "{name}: {text}");
        assert!(text.contains("sandbox"), "{name}: the error says sandbox: {text}");
        assert_eq!(real.connections(), 0, "{name}: nothing reached the real world: {text}");
    }
    // Other methods are refused before anything is sent, in a rehearsal too.
    for method in ["POST", "DELETE"] {
        let out = sandboxed(&format!(
            "health::http(#{{ url: \"{}\", method: \"{method}\" }});\n",
            real.url("/real")
        ));
        let text = out.both();
        assert_ne!(out.code(), Some(0), "{method}: {text}");
        assert!(text.contains("GET or HEAD"), "{method}: {text}");
        assert_eq!(real.connections(), 0, "{method}: nothing reached the real world: {text}");
    }
    // What the scenario maps still answers from the simulator.
    sandboxed(
        "let r = health::http(#{ url: \"https://shop.example.com/healthz\" });\nif !r.ok { fail(`mapped probe failed: ${r}`) }\n",
    )
    .succeeds();
}

#[test]
fn sandbox_ignores_real_arm_and_kubernetes_settings() {
    let real = RealWorld::start();
    let run = Rollbook::new();
    let kubeconfig = run.file(
        "real-kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster:\n    server: {}\ncontexts:\n- name: real-prod\n  context:\n    cluster: real\n    user: real\nusers:\n- name: real\n  user:\n    token: t\ncurrent-context: real-prod\n",
            real.url("")
        ),
    );
    let out = run
        .script_named(
            "reach.rhai",
            r#"
try { k8s::get(#{ context: "real-prod", namespace: "shop", deployment: "web" }); } catch (e) { info(`k8s: ${e.message}`); }
try { appservice::slots(#{ group: "rg-elsewhere", site: "x" }); } catch (e) { info(`arm: ${e.message}`); }
"#,
        )
        .world(World::toml(WORLD))
        .sandbox()
        .env("ROLLBOOK_ARM_ENDPOINT", &real.url(""))
        .env("KUBECONFIG", &kubeconfig.display().to_string())
        .run();
    assert_eq!(real.connections(), 0, "{}", out.both());
}

#[test]
fn rollbook_test_reaches_nothing_the_scenario_does_not_map() {
    let real = RealWorld::start();
    let run = Rollbook::new();
    run.file("probe.rhai", &format!("health::http(#{{ url: \"{}\" }});\n", real.url("/x")));
    let out = run
        .command(&["test"])
        .world(World::toml(&format!(
            "{WORLD}\n[test]\nrunbook = \"probe.rhai\"\n[test.expect]\noutcome = \"succeeded\"\n"
        )))
        .scenario_file("probe.toml")
        .run();
    let text = out.both();
    assert_eq!(real.connections(), 0, "{text}");
    assert!(text.contains("sandbox"), "{text}");
}

#[test]
fn dry_run_sends_get_probes_but_refuses_any_other_method_before_sending() {
    let real = RealWorld::start();
    for method in ["DELETE", "POST", "PUT", "PATCH"] {
        let out = Rollbook::new()
            .script(&format!(
                "health::http(#{{ url: \"{}\", method: \"{method}\" }});\n",
                real.url("/orders/1")
            ))
            .dry_run()
            .run();
        let text = out.both();
        assert_ne!(out.code(), Some(0), "{method}: {text}");
        assert!(text.contains("GET or HEAD"), "{method}: says what is allowed: {text}");
        assert_eq!(real.connections(), 0, "{method}: nothing was sent: {text}");
    }
    Rollbook::new()
        .script(&format!("health::http(#{{ url: \"{}\" }});\n", real.url("/x")))
        .dry_run()
        .run()
        .succeeds();
    assert_eq!(real.connections(), 1, "a GET probe is a real read under dry-run");
}

async fn eval_with(script: &str, settings: Settings) -> Result<Value, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "probe.rhai", script);
    let engine = Engine::new();
    let runbook = engine.load(&path).map_err(|e| e.to_string())?;
    let mut opts = RunOptions::new(dir.path().join("state"));
    opts.settings = settings;
    let report = engine.run(&runbook, &[], opts).await.map_err(|e| e.to_string())?;
    match report.error {
        Some(e) => Err(e),
        None => Ok(report.value.unwrap_or(Value::Null)),
    }
}

async fn eval(script: &str) -> Result<Value, String> {
    eval_with(script, Settings::default()).await
}

async fn prom(
    headers: HeaderMap,
    q: axum::extract::Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let sample = |v: &str| json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, v]}]}});
    let known = ["Bearer prom-secret", "Bearer team-a", "Bearer aad-token"];
    match q.get("query").map(String::as_str) {
        Some("auth") => (StatusCode::OK, axum::Json(sample(if known.contains(&auth) { "1" } else { "0" }))),
        Some("rate") => (StatusCode::OK, axum::Json(sample("0.2"))),
        Some("empty") => (
            StatusCode::OK,
            axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": []}})),
        ),
        Some("down") => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "error", "error": "overloaded"})))
        }
        _ => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "error", "errorType": "bad_data", "error": "parse error"})),
        ),
    }
}

async fn server() -> String {
    serve(
        Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route("/down", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }))
            .route("/prom/api/v1/query", get(prom)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn http_probes_give_pass_fail_or_inconclusive() {
    let base = server().await;
    let v = eval(&format!(r#"health::http(#{{ url: "{base}/ok" }})"#)).await.unwrap();
    assert_eq!((v["ok"].clone(), v["verdict"].clone()), (json!(true), json!("pass")), "{v}");
    let v = eval(&format!(r#"health::http(#{{ url: "{base}/down" }})"#)).await.unwrap();
    assert_eq!((v["ok"].clone(), v["verdict"].clone()), (json!(false), json!("fail")), "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("503"), "{v}");
    let v = eval(r#"health::http(#{ url: "http://127.0.0.1:9/x" })"#).await.unwrap();
    assert_eq!((v["ok"].clone(), v["verdict"].clone()), (json!(false), json!("inconclusive")), "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("connection failed"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_gives_pass_fail_or_inconclusive() {
    let base = server().await;
    let q = |query: &str, bound: &str| {
        format!(r#"health::prometheus(#{{ url: "{base}/prom", query: "{query}", {bound} }})"#)
    };
    let v = eval(&q("rate", "max: 0.5")).await.unwrap();
    assert_eq!((v["ok"].clone(), v["verdict"].clone()), (json!(true), json!("pass")), "{v}");
    let v = eval(&q("rate", "max: 0.1")).await.unwrap();
    assert_eq!((v["ok"].clone(), v["verdict"].clone()), (json!(false), json!("fail")), "{v}");
    assert_eq!(v["reason"], "value 0.2 is above max 0.1");
    for (query, why) in [("empty", "no data"), ("bad(", "parse error"), ("down", "503")] {
        let v = eval(&q(query, "max: 1")).await.unwrap();
        assert_eq!(
            (v["ok"].clone(), v["verdict"].clone()),
            (json!(false), json!("inconclusive")),
            "{query}: {v}"
        );
        assert!(v["reason"].as_str().unwrap_or("").contains(why), "{query}: {v}");
    }
    let v = eval(r#"health::prometheus(#{ url: "http://127.0.0.1:9", query: "up", min: 1 })"#).await.unwrap();
    assert_eq!(v["verdict"], "inconclusive", "unreachable: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_sends_a_bearer_token_from_the_environment_or_azure() {
    let base = server().await;
    let call = |extra: &str| {
        format!(r#"let r = health::prometheus(#{{ url: "{base}/prom", query: "auth", min: 1{extra} }}); r"#)
    };
    let mut s = Settings::default();
    s.env.insert("ROLLBOOK_PROMETHEUS_TOKEN".into(), "prom-secret".into());
    let v = eval_with(&call(""), s).await.unwrap();
    assert_eq!(v["verdict"], "pass", "a token was sent: {v}");

    let mut s = Settings::default();
    s.env.insert("ROLLBOOK_PROMETHEUS_TOKEN_TEAM_A".into(), "team-a".into());
    let v = eval_with(&call(r#", token_env: "ROLLBOOK_PROMETHEUS_TOKEN_TEAM_A""#), s).await.unwrap();
    assert_eq!(v["verdict"], "pass", "the named token was sent: {v}");

    let mut s = Settings::default();
    s.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "aad-token".into());
    let v = eval_with(&call(r#", auth: "azure""#), s).await.unwrap();
    assert_eq!(v["verdict"], "pass", "an azure token was sent: {v}");

    // A runbook cannot send an arbitrary secret of the environment as a token.
    let mut s = Settings::default();
    s.env.insert("AZURE_CLIENT_SECRET".into(), "hunter2".into());
    let e = eval_with(&call(r#", token_env: "AZURE_CLIENT_SECRET""#), s).await.unwrap_err();
    assert!(e.contains("token_env"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_refuse_methods_other_than_get_and_head() {
    let real = RealWorld::start();
    for method in ["POST", "delete", "PUT", "OPTIONS"] {
        let e = eval(&format!(r#"health::http(#{{ url: "{}", method: "{method}" }})"#, real.url("/x")))
            .await
            .unwrap_err();
        assert!(e.contains("GET or HEAD"), "{method}: {e}");
    }
    let v =
        eval(&format!(r#"health::http(#{{ url: "{}", method: "head" }})"#, real.url("/x"))).await.unwrap();
    assert_eq!(v["verdict"], "pass", "{v}");
    assert_eq!(real.connections(), 1, "only the HEAD probe was sent");
}

const PROM_WORLD: &str = r#"
name = "web 1.5.0 raises the error rate"

[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
broken = ["shop/web:1.5.0"]

[[prometheus]]
url = "https://prometheus.example.com"
query = 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'
value = 0.001
follows = "k8s/prod/shop/web"
broken_value = 0.12

[test]
runbook = "gate.rhai"

[test.expect]
outcome = "succeeded"
mutations = ["k8s::undo"]
[test.expect.state]
"k8s/prod/shop/web" = { image = "shop/web:1.4.0" }
"#;

const GATE: &str = r#"
const RUNBOOK = #{ name: "prom-gate", version: "1.0.0", scope: ["k8s/prod/shop/web"] };
const Q = `sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))`;
let target = #{ context: "prod", namespace: "shop", deployment: "web" };
let unknown = health::prometheus(#{ url: "https://prometheus.example.com", query: "up", min: 1 });
if unknown.verdict != "inconclusive" { fail(`a query no entry names must be inconclusive: ${unknown}`); }
// Rehearsed without the real token (none is set here): the simulator accepts any.
let p = health::prometheus(#{ url: "https://prometheus.example.com", query: Q, max: 0.05, token_env: "ROLLBOOK_PROMETHEUS_TOKEN_SHOP" });
if p.verdict == "fail" {
    stage("undo", || k8s::undo(target));
    k8s::status(target + #{ timeout: "2m" });
    let after = health::prometheus(#{ url: "https://prometheus.example.com", query: Q, max: 0.05, attempts: 10, interval: "5s", auth: "azure" });
    if after.verdict != "pass" { fail(`still failing: ${after}`); }
} else {
    fail(`expected a failing verdict: ${p}`);
}
"#;

#[test]
fn a_prometheus_gated_runbook_is_rehearsed_from_the_scenario() {
    let run = Rollbook::new();
    run.file("gate.rhai", GATE);
    run.command(&["test"]).world(World::toml(PROM_WORLD)).scenario_file("gate.toml").run().succeeds();
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_follow_redirects_to_another_origin_without_their_credentials() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    let other = serve(Router::new().route(
        "/ok",
        get(move |headers: HeaderMap| {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
            if let Ok(mut s) = s.lock() {
                s.push(auth);
            }
            async { "fine" }
        }),
    ))
    .await;
    let target = format!("{other}/ok");
    let base = serve(Router::new().route(
        "/r",
        get(move || {
            let t = target.clone();
            async move { (StatusCode::FOUND, [("location", t)]) }
        }),
    ))
    .await;
    let v = eval(&format!(
        r#"health::http(#{{ url: "{base}/r", headers: #{{ authorization: "Bearer secret" }} }})"#
    ))
    .await
    .unwrap();
    assert_eq!(v["verdict"], "pass", "the redirect was followed and its target checked: {v}");
    assert_eq!(seen.lock().unwrap().clone(), vec!["-".to_string()], "the credential stayed behind");
    // Asked for the redirect itself: not followed.
    let v = eval(&format!(r#"health::http(#{{ url: "{base}/r", expect_status: 302 }})"#)).await.unwrap();
    assert_eq!((v["verdict"].clone(), v["status"].clone()), (json!("pass"), json!(302)), "{v}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}
