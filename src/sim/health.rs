//! Health endpoints (`/health/<resource key>`), the world's Prometheus metrics
//! (`/health/metrics`) and a Prometheus-style error-rate query, answered from what actually runs
//! in the simulated world.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::sim::arm_router::AzureWorld;
use crate::sim::k8s::K8sWorld;

/// What the health routes look at.
pub struct HealthWorld {
    /// The clusters.
    pub k8s: Arc<K8sWorld>,
    /// ARM.
    pub azure: Arc<AzureWorld>,
    /// Every resource key of the scenario.
    pub keys: Vec<String>,
    /// `[[prometheus]]` entries.
    pub prometheus: Vec<crate::sim::scenario::PrometheusEntry>,
    /// The distinct `[[prometheus]]` base URLs; the n-th answers at `/prometheus-scenario/<n>`.
    pub prometheus_urls: Vec<String>,
    /// What `/health/metrics` needs beyond the live world.
    pub metrics: crate::sim::metrics::SimMetrics,
}

/// The distinct base URLs of `[[prometheus]]` entries, in order, without a trailing `/`.
pub fn prometheus_urls(entries: &[crate::sim::scenario::PrometheusEntry]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for e in entries {
        let u = e.url.trim_end_matches('/').to_string();
        if !urls.contains(&u) {
            urls.push(u);
        }
    }
    urls
}

impl HealthWorld {
    /// Health of a resource key; None when the key is unknown.
    pub fn healthy(&self, key: &str) -> Option<bool> {
        if key.starts_with("k8s/") { self.k8s.healthy(key) } else { self.azure.healthy(key) }
    }
}

/// `/health`, `/health/metrics`, `/health/<key>` and `/prometheus/api/v1/query`.
pub fn router(world: Arc<HealthWorld>) -> Router {
    Router::new()
        .route("/health", get(all))
        .route("/health/metrics", get(metrics))
        .route("/health/{*key}", get(one))
        .route("/prometheus/api/v1/query", get(prometheus).post(prometheus))
        .route("/prometheus-scenario/{n}/api/v1/query", get(scenario_query).post(scenario_query))
        .with_state(world)
}

async fn one(State(w): State<Arc<HealthWorld>>, Path(key): Path<String>) -> Response {
    let key = key.trim_matches('/');
    match w.healthy(key) {
        Some(true) => (StatusCode::OK, axum::Json(json!({"key": key, "healthy": true}))).into_response(),
        Some(false) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"key": key, "healthy": false})))
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("unknown resource `{key}`"), "known": w.keys})),
        )
            .into_response(),
    }
}

/// The world's metrics in the Prometheus text format (no resource key starts with `metrics`).
async fn metrics(State(w): State<Arc<HealthWorld>>) -> Response {
    let text = crate::sim::metrics::render(
        &w.metrics,
        &w.keys,
        |k| w.healthy(k),
        |k| if k.starts_with("k8s/") { w.k8s.state(k) } else { w.azure.state(k) },
    );
    ([(axum::http::header::CONTENT_TYPE, crate::sim::metrics::CONTENT_TYPE)], text).into_response()
}

async fn all(State(w): State<Arc<HealthWorld>>) -> Response {
    let map: serde_json::Map<String, Value> =
        w.keys.iter().map(|k| (k.clone(), json!(w.healthy(k)))).collect();
    axum::Json(Value::Object(map)).into_response()
}

/// Instant query: one sample per resource, `1` when broken and `0` when healthy. The resources
/// are those whose key appears in the query (e.g. `error_rate{resource="k8s/prod/shop/web"}`),
/// or all of them.
async fn prometheus(State(w): State<Arc<HealthWorld>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(query) = q.get("query") else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "error", "errorType": "bad_data",
                "error": "invalid parameter \"query\": empty query"})),
        )
            .into_response();
    };
    let named: Vec<&String> = w.keys.iter().filter(|k| query.contains(k.as_str())).collect();
    let chosen: Vec<&String> = if named.is_empty() { w.keys.iter().collect() } else { named };
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let result: Vec<Value> = chosen
        .into_iter()
        .filter_map(|k| w.healthy(k).map(|h| (k, h)))
        .map(|(k, healthy)| {
            json!({"metric": {"__name__": "error_rate", "resource": k},
                "value": [now, if healthy { "0" } else { "1" }]})
        })
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
        .into_response()
}

/// An instant query on the n-th `[[prometheus]]` URL: the entry naming the query answers its
/// `value` (`broken_value` while `follows` is unhealthy); a query no entry names answers an
/// empty result, as Prometheus does for a series that does not exist.
async fn scenario_query(
    State(w): State<Arc<HealthWorld>>,
    Path(n): Path<usize>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(query) = q.get("query").filter(|q| !q.trim().is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "error", "errorType": "bad_data",
                "error": "invalid parameter \"query\": empty query"})),
        )
            .into_response();
    };
    let Some(url) = w.prometheus_urls.get(n) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"status": "error", "error": "no such server"})))
            .into_response();
    };
    let entry = w.prometheus.iter().find(|e| e.url.trim_end_matches('/') == url.as_str() && e.answers(query));
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let result: Vec<Value> = match entry {
        None => Vec::new(),
        Some(e) => {
            let broken = e.follows.as_deref().and_then(|k| w.healthy(k)) == Some(false);
            let value = match (broken, e.broken_value) {
                (true, Some(b)) => b,
                _ => e.value,
            };
            vec![json!({"metric": {}, "value": [now, value.to_string()]})]
        }
    };
    axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
        .into_response()
}
