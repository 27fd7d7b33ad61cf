//! Edges of the ARM client and the simulator: hostile `Retry-After` values, redirects to other
//! hosts, plain-HTTP endpoints, foreign operation links after an accepted write, oversized
//! request bodies and absurd watch timeouts — clear errors, never a panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, put};
use reqwest::Method;
use rollbook::azure::{ArmClient, ArmRequest, Idempotency};
use rollbook::model::{ErrorKind, PrimitiveError};
use rollbook::providers::{CallCx, Settings, SkipClock};
use rollbook::sim::{Scenario, Sim};

use crate::support::serve;

fn settings(endpoint: &str) -> Settings {
    let mut s = Settings::default();
    s.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), endpoint.into());
    s.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "t".into());
    s
}

fn skipping() -> CallCx {
    let mut cx = CallCx::standalone();
    cx.clock = Arc::new(SkipClock::default());
    cx
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_second_retry_after_is_an_error_not_a_panic() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let base = serve(Router::new().route(
        "/x",
        get(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                let wait = if n == 0 { "1" } else { "18446744073709551615" };
                let mut h = HeaderMap::new();
                h.insert("retry-after", HeaderValue::from_static(wait));
                (StatusCode::TOO_MANY_REQUESTS, h, "{}")
            }
        }),
    ))
    .await;
    let client = ArmClient::from_settings(reqwest::Client::new(), &settings(&base)).unwrap();
    let cx = skipping();
    let e = client.get(&cx, format!("{base}/x"), "thing `x`").await.unwrap_err();
    assert_eq!(PrimitiveError::from(e).kind, ErrorKind::Throttled);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_to_another_host_are_not_followed() {
    let elsewhere = Arc::new(AtomicUsize::new(0));
    let e2 = elsewhere.clone();
    let other = serve(Router::new().fallback(move || {
        e2.fetch_add(1, Ordering::SeqCst);
        async { "{}" }
    }))
    .await;
    let target = format!("{other}/stolen");
    let base = serve(Router::new().route(
        "/x",
        get(move || {
            let t = target.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", t)]).into_response() }
        }),
    ))
    .await;
    let client =
        ArmClient::from_settings(rollbook::providers::default_http_client(), &settings(&base)).unwrap();
    let e = client.get(&skipping(), format!("{base}/x"), "thing `x`").await.unwrap_err();
    assert!(e.to_string().contains("redirect") || e.to_string().contains("307"), "{e}");
    assert_eq!(elsewhere.load(Ordering::SeqCst), 0, "the other host got no request (and no token)");
}

#[test]
fn plain_http_is_refused_except_on_loopback() {
    for bad in ["http://management.example.com", "http://10.0.0.1:8080"] {
        let e = ArmClient::from_settings(reqwest::Client::new(), &settings(bad)).unwrap_err();
        assert!(e.to_string().contains("https"), "{bad}: {e}");
    }
    for good in
        ["https://management.azure.com", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2"]
    {
        assert!(ArmClient::from_settings(reqwest::Client::new(), &settings(good)).is_ok(), "{good}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_operation_link_after_an_accepted_write_leaves_the_outcome_unknown() {
    let base = serve(Router::new().route(
        "/site",
        put(|| async {
            (StatusCode::CREATED, [("azure-asyncoperation", "https://evil.example.com/op/1")], "{}")
        }),
    ))
    .await;
    let client = ArmClient::from_settings(reqwest::Client::new(), &settings(&base)).unwrap();
    let req = ArmRequest {
        method: Method::PUT,
        url: format!("{base}/site"),
        body: Some(serde_json::json!({})),
        what: "site `x`".into(),
        idempotency: Idempotency::Safe,
    };
    let e = client.send_and_wait(&skipping(), &req, std::time::Duration::from_secs(60)).await.unwrap_err();
    let p = PrimitiveError::from(e);
    assert_eq!(p.kind, ErrorKind::Transport, "{}", p.message);
    assert!(p.message.contains("may have"), "{}", p.message);
}

/// An operation that answers `Running` with `Retry-After: 0` forever: the wait is bounded by its
/// timeout (a floor on the poll interval), never a request storm or an endless loop.
#[tokio::test(flavor = "multi_thread")]
async fn an_operation_that_never_ends_with_a_zero_retry_after_times_out() {
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = polls.clone();
    let base = serve(
        Router::new()
            .route(
                "/site",
                put(|| async {
                    (StatusCode::CREATED, [("azure-asyncoperation", "/op"), ("retry-after", "0")], "{}")
                }),
            )
            .route(
                "/op",
                axum::routing::get(move || {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async { ([("retry-after", "0")], r#"{"status":"Running"}"#) }
                }),
            ),
    )
    .await;
    let client = ArmClient::from_settings(reqwest::Client::new(), &settings(&base)).unwrap();
    let req = ArmRequest {
        method: Method::PUT,
        url: format!("{base}/site"),
        body: Some(serde_json::json!({})),
        what: "site `x`".into(),
        idempotency: Idempotency::Safe,
    };
    let clock = skipping();
    let wait = client.send_and_wait(&clock, &req, std::time::Duration::from_secs(60));
    let e = tokio::time::timeout(std::time::Duration::from_secs(120), wait)
        .await
        .expect("the wait ends")
        .unwrap_err();
    assert_eq!(PrimitiveError::from(e).kind, ErrorKind::Timeout);
    let n = polls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n <= 6_001, "at most one poll per 10 ms of the 60 s timeout, got {n}");
}

const WORLD: &str = r#"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
revisions = ["shop/web:1.4.0"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_refuses_huge_bodies_with_413() {
    let scenario = Scenario::parse(std::path::Path::new("w.toml"), WORLD).unwrap();
    let sim = Sim::start(scenario, None).await.unwrap();
    // Announce 17 MiB, send a little: the answer must come without the simulator waiting for
    // (and buffering) the rest.
    let addr = sim.addr();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
        let head =
            format!("GET /health HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n", 17 * 1024 * 1024);
        s.write_all(head.as_bytes()).expect("write head");
        s.write_all(&[b' '; 1024]).expect("write some body");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    // Still serving.
    let ok = reqwest::get(format!("{}/health", sim.arm_endpoint())).await.unwrap();
    assert!(ok.status().is_success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_watch_timeout_does_not_panic_the_simulator() {
    let scenario = Scenario::parse(std::path::Path::new("w.toml"), WORLD).unwrap();
    let sim = Sim::start(scenario, None).await.unwrap();
    let server = sim.k8s_server_url("prod").unwrap();
    let resp = reqwest::Client::new()
        .get(format!(
            "{server}/apis/apps/v1/namespaces/shop/deployments?watch=true&timeoutSeconds=18446744073709551615"
        ))
        .bearer_auth("x")
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert!(resp.status().is_success(), "{}", resp.status());
}
