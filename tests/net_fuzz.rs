//! Property tests: no input panics the scenario parser, or the clients' reading of Kubernetes,
//! ARM and Prometheus answers (error envelopes, operation status bodies, `Retry-After` headers,
//! arbitrary statuses and bodies on the wire). `PROPTEST_CASES` raises the number of cases.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};
use proptest::prelude::*;
use reqwest::Method;
use reqwest::header::HeaderMap;
use rollbook::azure::{ArmClient, ArmRequest, ArmResponse, Envelope, Idempotency};
use rollbook::providers::health::parse_query_result;
use rollbook::providers::{CallCx, Primitive, Settings, Shared, SkipClock};
use rollbook::sim::Scenario;
use serde_json::{Value, json};

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("success"),
            Just("error"),
            Just("vector"),
            Just("scalar"),
            Just("matrix"),
            Just("NaN"),
            Just("+Inf"),
            Just("Succeeded"),
            Just("Failed"),
            Just("InProgress"),
            Just("1e999"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("status".to_string()),
                    Just("data".to_string()),
                    Just("result".to_string()),
                    Just("resultType".to_string()),
                    Just("value".to_string()),
                    Just("error".to_string()),
                    Just("code".to_string()),
                    Just("message".to_string()),
                    Just("details".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Header values a hostile or broken server might send as `Retry-After`.
fn retry_after_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        Just("18446744073709551615".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_string()),
        "[ -~]{0,30}",
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn scenario_text_never_panics(text in "[ -~\n]{0,400}") {
        let _ = Scenario::parse(std::path::Path::new("fuzz.toml"), &text);
    }

    #[test]
    fn scenario_shaped_text_never_panics(
        keys in prop::collection::vec((
            prop_oneof![Just("[[k8s.deployments]]"), Just("[[prometheus]]"), Just("[[health]]"), Just("[[faults]]"),
                Just("[sim]"), Just("[test]"), Just("[[appservice.sites]]"), Just("[[arm.deployments]]"), Just("[test.expect]")],
            prop::collection::vec((
                prop_oneof![Just("name"), Just("url"), Just("query"), Just("value"), Just("follows"), Just("broken_value"),
                    Just("revisions"), Just("latency"), Just("retry_after"), Just("status"), Just("times"), Just("slots"),
                    Just("lro_polls"), Just("context"), Just("replicas"), Just("runbook"), Just("outcome"), Just("path")],
                prop_oneof![Just("\"x\""), Just("1"), Just("-1"), Just("1e308"), Just("nan"), Just("[]"), Just("[\"a\"]"),
                    Just("{ production = \"1\" }"), Just("\"18446744073709551615s\""), Just("99999999999999999999"),
                    Just("\"k8s/sim/default/x\""), Just("true")],
            ), 0..6),
        ), 0..6)
    ) {
        let mut text = String::new();
        for (header, pairs) in keys {
            text += header;
            text.push('\n');
            for (k, v) in pairs {
                text += &format!("{k} = {v}\n");
            }
        }
        let _ = Scenario::parse(std::path::Path::new("fuzz.toml"), &text);
    }

    #[test]
    fn prometheus_answers_never_panic(body in json_value()) {
        let _ = parse_query_result(&body);
    }

    #[test]
    fn arm_envelopes_never_panic(body in json_value()) {
        if let Some(e) = Envelope::parse(&body) {
            let _ = e.summary();
        }
    }

    #[test]
    fn retry_after_headers_never_panic(v in retry_after_value(), ms in prop::option::of("[0-9]{0,25}")) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&v) {
            headers.insert("retry-after", value);
        }
        if let Some(ms) = ms.and_then(|m| HeaderValue::from_str(&m).ok()) {
            headers.insert("retry-after-ms", ms);
        }
        let r = ArmResponse { status: 202, headers, body: Value::Null, request_id: None };
        let _ = r.retry_after();
    }

    #[test]
    fn kubernetes_deployments_never_panic_the_rollout_reading(body in json_value(), revision in ".{0,24}") {
        let mut obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"selector": {}, "template": {}}});
        if let Value::Object(extra) = &body {
            for (k, v) in extra {
                obj["status"][k] = v.clone();
            }
        }
        if let Ok(d) = serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(obj) {
            let _ = rollbook::providers::k8s::rollout::view(&d);
            let _ = rollbook::providers::k8s::rollout::revision(d.metadata.annotations.as_ref());
        }
    }
}

/// One answer the wire server gives every request: status, headers, body.
type Answer = Arc<Mutex<(u16, Vec<(String, String)>, String)>>;

fn wire_server(rt: &tokio::runtime::Runtime) -> (String, Answer) {
    let answer: Answer = Arc::new(Mutex::new((200, Vec::new(), String::new())));
    let a = answer.clone();
    let router = Router::new().fallback(move || {
        let (status, headers, body) = a.lock().map(|g| g.clone()).unwrap_or_default();
        async move {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            for (k, v) in headers {
                if let (Ok(name), Ok(value)) =
                    (axum::http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v))
                {
                    resp.headers_mut().append(name, value);
                }
            }
            resp
        }
    });
    let base = rt.block_on(crate::support::serve(router));
    (base, answer)
}

fn status_code() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200u16),
        Just(201),
        Just(202),
        Just(204),
        Just(301),
        Just(400),
        Just(401),
        Just(404),
        Just(409),
        Just(429),
        Just(500),
        Just(503),
        100u16..600
    ]
}

fn body_text() -> impl Strategy<Value = String> {
    prop_oneof![json_value().prop_map(|v| v.to_string()), "[ -~]{0,60}"]
}

#[test]
fn arm_and_kubernetes_answers_on_the_wire_never_panic() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (base, answer) = wire_server(&rt);
    let mut settings = Settings::default();
    settings.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), base.clone());
    settings.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "t".into());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = crate::support::write(
        dir.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {base}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: c\n"
        ),
    );
    settings.kubeconfig = Some(kubeconfig);
    let client = ArmClient::from_settings(rollbook::providers::default_http_client(), &settings).unwrap();
    let mut cx = CallCx::standalone();
    cx.clock = Arc::new(SkipClock::default());
    cx.shared = Arc::new(Shared::new(settings));
    let mut runner = proptest::test_runner::TestRunner::new(cases(48));
    let strategy = (
        status_code(),
        body_text(),
        prop::option::of(retry_after_value()),
        prop::option::of(prop_oneof![Just(format!("{base}/op")), Just("/op".to_string()), "[ -~]{0,30}"]),
        status_code(),
        body_text(),
    );
    runner
        .run(&strategy, |(status, body, retry_after, link, poll_status, poll_body)| {
            let mut headers = Vec::new();
            if let Some(r) = retry_after {
                headers.push(("retry-after".to_string(), r));
            }
            if let Some(l) = link {
                headers.push(("azure-asyncoperation".to_string(), l));
            }
            if let Ok(mut a) = answer.lock() {
                *a = (status, headers.clone(), body.clone());
            }
            rt.block_on(async {
                let req = ArmRequest {
                    method: Method::PUT,
                    url: format!("{base}/x"),
                    body: Some(json!({})),
                    what: "fuzz".into(),
                    idempotency: Idempotency::Safe,
                };
                if let Ok(first) = client.send(&cx, &req).await {
                    if let Ok(mut a) = answer.lock() {
                        *a = (poll_status, headers, poll_body.clone());
                    }
                    let _ = client.wait(&cx, &first, "fuzz", std::time::Duration::from_secs(60)).await;
                }
                if let Ok(mut a) = answer.lock() {
                    *a = (status, Vec::new(), body.clone());
                }
                let _ = client.list(&cx, format!("{base}/list"), "fuzz").await;
                let args = rollbook::providers::k8s::GetArgs {
                    context: Some("c".into()),
                    namespace: Some("shop".into()),
                    deployment: "web".into(),
                };
                let _ = rollbook::providers::k8s::Get.call(&cx, args).await;
            });
            Ok(())
        })
        .unwrap();
}
