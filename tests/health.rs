//! `health::http` and `health::prometheus` against local servers, through runbooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use rollbook::engine::{Engine, RunOptions};
use rollbook::run::journal::RunStatus;
use serde_json::{Value, json};

use crate::support::{serve, write};

#[derive(Clone, Default)]
struct Hits {
    flaky: Arc<AtomicUsize>,
    seq: Arc<AtomicUsize>,
}

async fn flaky(State(h): State<Hits>) -> (StatusCode, &'static str) {
    // Fails twice, then passes.
    if h.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    } else {
        (StatusCode::OK, "up")
    }
}

async fn sequence(State(h): State<Hits>) -> StatusCode {
    const SEQ: [u16; 6] = [200, 503, 200, 200, 200, 200];
    let i = h.seq.fetch_add(1, Ordering::SeqCst);
    StatusCode::from_u16(SEQ[i.min(SEQ.len() - 1)]).unwrap_or(StatusCode::OK)
}

async fn prometheus(Query(q): Query<std::collections::HashMap<String, String>>) -> axum::Json<Value> {
    let sample = |v: &str| json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"job": "web"}, "value": [1_764_000_000.0, v]}]}});
    axum::Json(match q.get("query").map(String::as_str) {
        Some("error_rate") => sample("0.2"),
        Some("up") => {
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1_764_000_000.0, "1"]}})
        }
        Some("missing") => {
            json!({"status": "success", "data": {"resultType": "vector", "result": []}})
        }
        _ => json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 1"}),
    })
}

async fn server() -> String {
    let router = Router::new()
        .route("/flaky", get(flaky))
        .route("/seq", get(sequence))
        .route("/ok", get(|| async { "all good" }))
        .route("/teapot", get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                "late"
            }),
        )
        .route("/prom/api/v1/query", get(prometheus))
        .with_state(Hits::default());
    serve(router).await
}

async fn eval(script: &str) -> (RunStatus, Value, Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "probe.rhai", script);
    let engine = Engine::new();
    let runbook = engine.load(&path).expect("loads");
    let report = engine.run(&runbook, &[], RunOptions::new(dir.path().join("state"))).await.expect("starts");
    (report.status, report.value.unwrap_or(Value::Null), report.error)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_retries_until_it_passes() {
    let base = server().await;
    let (status, v, err) =
        eval(&format!(r#"health::http(#{{ url: "{base}/flaky", attempts: 5, interval: "10ms" }})"#)).await;
    assert_eq!(status, RunStatus::Succeeded, "{err:?}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["attempts"], 3);
    assert_eq!(v["status"], 200);
    assert_eq!(v["error"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_needs_consecutive_passes() {
    let base = server().await;
    // 200, 503, 200, 200, 200: three in a row first happen at the fifth probe.
    let (_, v, _) = eval(&format!(
        r#"health::http(#{{ url: "{base}/seq", attempts: 6, interval: "10ms", consecutive: 3 }})"#
    ))
    .await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["attempts"], 5);

    let base = server().await;
    // With 4 attempts, three in a row are impossible after the failure at the second probe.
    let (_, v, _) = eval(&format!(
        r#"health::http(#{{ url: "{base}/seq", attempts: 4, interval: "10ms", consecutive: 3 }})"#
    ))
    .await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["attempts"], 2, "stops as soon as success is out of reach");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_checks_status_and_body() {
    let base = server().await;
    let (_, v, _) = eval(&format!(r#"health::http(#{{ url: "{base}/teapot" }})"#)).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], 418);
    assert_eq!(v["error"], "status 418, expected 200–399");

    let (_, v, _) = eval(&format!(r#"health::http(#{{ url: "{base}/teapot", expect_status: 418 }})"#)).await;
    assert_eq!(v["ok"], true, "{v}");
    let (_, v, _) =
        eval(&format!(r#"health::http(#{{ url: "{base}/teapot", expect_status: [200, 418] }})"#)).await;
    assert_eq!(v["ok"], true, "{v}");

    let (_, v, _) = eval(&format!(r#"health::http(#{{ url: "{base}/ok", body_contains: "good" }})"#)).await;
    assert_eq!(v["ok"], true, "{v}");
    let (_, v, _) =
        eval(&format!(r#"health::http(#{{ url: "{base}/ok", body_contains: "degraded" }})"#)).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "body does not contain `degraded`");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_times_out_per_request_without_throwing() {
    let base = server().await;
    let (status, v, _) = eval(&format!(
        r#"health::http(#{{ url: "{base}/slow", timeout: "200ms", attempts: 2, interval: "10ms" }})"#
    ))
    .await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(v["ok"], false);
    assert_eq!(v["attempts"], 2);
    assert_eq!(v["error"], "no answer within 200ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_targets_are_unhealthy_but_bad_urls_throw() {
    let (status, v, _) = eval(r#"health::http(#{ url: "http://127.0.0.1:9/x" })"#).await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap_or("").starts_with("connection failed"), "{v}");

    let (status, _, err) = eval(r#"health::http(#{ url: "not a url" })"#).await;
    assert_eq!(status, RunStatus::Failed);
    assert!(err.as_deref().unwrap_or("").contains("malformed URL `not a url`"), "{err:?}");

    let (_, _, err) = eval(r#"health::http(#{ url: "ftp://example.com/x" })"#).await;
    assert!(err.as_deref().unwrap_or("").contains("must start with http:// or https://"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_checks_bounds() {
    let base = server().await;
    let (_, v, _) =
        eval(&format!(r#"health::prometheus(#{{ url: "{base}/prom", query: "error_rate", max: 0.5 }})"#))
            .await;
    assert_eq!(v, json!({ "ok": true, "verdict": "pass", "reason": null, "value": 0.2, "error": null }));
    let (_, v, _) =
        eval(&format!(r#"health::prometheus(#{{ url: "{base}/prom", query: "error_rate", max: 0.1 }})"#))
            .await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "value 0.2 is above max 0.1");
    let (_, v, _) =
        eval(&format!(r#"health::prometheus(#{{ url: "{base}/prom", query: "up", min: 1 }})"#)).await;
    assert_eq!(v["ok"], true, "{v}");
    let (_, v, _) = eval(&format!(r#"health::prometheus(#{{ url: "{base}/prom", query: "missing", max: 1, attempts: 2, interval: "10ms" }})"#)).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "query returned no data");
    let (_, v, _) =
        eval(&format!(r#"health::prometheus(#{{ url: "{base}/prom", query: "bad(", max: 1 }})"#)).await;
    assert_eq!(v["error"], "query failed: parse error at char 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdlib_wait_healthy_composes_the_probe() {
    let base = server().await;
    let (status, v, err) = eval(&format!(
        r#"import "std/health" as hg;
hg::wait_healthy_with(#{{ url: "{base}/flaky", within: "1s", interval: "10ms", consecutive: 2 }})"#
    ))
    .await;
    assert_eq!(status, RunStatus::Succeeded, "{err:?}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["attempts"], 4, "two failures, then two passes in a row");

    let (status, _, err) =
        eval(&format!("import \"std/health\" as hg;\nhg::require_healthy(\"{base}/teapot\")")).await;
    assert_eq!(status, RunStatus::Failed);
    assert!(err.as_deref().unwrap_or("").contains("is unhealthy: status 418"), "{err:?}");
}
