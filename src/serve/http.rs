//! The server's endpoints.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{App, Refused, claims};

type Shared = State<Arc<App>>;

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Every endpoint.
pub(super) fn router(app: Arc<App>) -> Router {
    let limit = app.config.server.max_body_bytes;
    let v1 = Router::new()
        .route("/v1/alerts/alertmanager", post(alertmanager))
        .route("/v1/alerts/azure-monitor", post(azure_monitor))
        .route("/v1/runs", post(start_run).get(list_runs))
        .route("/v1/runs/{id}", get(show_run))
        .route("/v1/runs/{id}/approve", post(approve))
        .route("/v1/runs/{id}/deny", post(deny))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(v1)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

async fn auth(State(app): Shared, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if let Some(token) = &app.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !super::same_secret(given, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({ "error": "a missing or wrong bearer token" })),
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn readyz(State(app): Shared) -> Response {
    if app.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

async fn metrics(State(app): Shared) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

fn parse_json(body: &Bytes) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))
}

async fn take_alerts(app: Arc<App>, source: &str, parsed: Result<Vec<super::Alert>, String>) -> Response {
    let alerts = match parsed {
        Ok(a) => a,
        Err(why) => {
            app.metrics.alert(source, "malformed");
            return error(StatusCode::BAD_REQUEST, why);
        }
    };
    match super::decide(&app, alerts).await {
        Ok(decisions) => (StatusCode::ACCEPTED, axum::Json(json!({ "alerts": decisions }))).into_response(),
        Err(Refused::Draining) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "draining: this server starts no new runs")
        }
        Err(Refused::Full(free)) => error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "the run queue is full ({free} free); nothing from this payload was started, send it again later"
            ),
        ),
    }
}

async fn alertmanager(State(app): Shared, body: Bytes) -> Response {
    let value = match parse_json(&body) {
        Ok(v) => v,
        Err(why) => {
            app.metrics.alert("alertmanager", "malformed");
            return error(StatusCode::BAD_REQUEST, why);
        }
    };
    take_alerts(app, "alertmanager", super::alerts::alertmanager(&value)).await
}

async fn azure_monitor(State(app): Shared, body: Bytes) -> Response {
    let value = match parse_json(&body) {
        Ok(v) => v,
        Err(why) => {
            app.metrics.alert("azure-monitor", "malformed");
            return error(StatusCode::BAD_REQUEST, why);
        }
    };
    take_alerts(app, "azure-monitor", super::alerts::azure_monitor(&value)).await
}

async fn start_run(State(app): Shared, body: Bytes) -> Response {
    let value = match parse_json(&body) {
        Ok(v) => v,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let Some(runbook) = value.get("runbook").and_then(|r| r.as_str()) else {
        return error(StatusCode::BAD_REQUEST, "give `runbook` (as a route names it)");
    };
    let mut params = Vec::new();
    match value.get("params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                params.push((k.clone(), text));
            }
        }
        Some(_) => return error(StatusCode::BAD_REQUEST, "`params` must be an object"),
    }
    let mode = match value.get("mode").and_then(|m| m.as_str()) {
        None => None,
        Some("act") => Some(super::Mode::Act),
        Some("plan") => Some(super::Mode::Plan),
        Some(other) => return error(StatusCode::BAD_REQUEST, format!("mode `{other}`: use `act` or `plan`")),
    };
    match super::start_requested(&app, runbook, params, mode) {
        Ok(Ok(run_id)) => (StatusCode::ACCEPTED, axum::Json(json!({ "run_id": run_id }))).into_response(),
        Ok(Err(Refused::Draining)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "draining: this server starts no new runs")
        }
        Ok(Err(Refused::Full(_))) => {
            error(StatusCode::TOO_MANY_REQUESTS, "the run queue is full; send it again later")
        }
        Err(why) => error(StatusCode::BAD_REQUEST, why),
    }
}

async fn list_runs(State(app): Shared) -> Response {
    match crate::run::journal::list_runs(&app.state_dir) {
        Ok(runs) => axum::Json(runs).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read runs: {e}")),
    }
}

/// A run id that names a journal file and nothing else.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

async fn show_run(State(app): Shared, Path(id): Path<String>) -> Response {
    if !valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "not a run id");
    }
    let path = crate::run::journal::journal_path(&app.state_dir, &id);
    if !path.exists() {
        return error(StatusCode::NOT_FOUND, format!("no run `{id}`"));
    }
    match crate::run::journal::read_journal(&path) {
        Ok(read) => axum::Json(read.records).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read run `{id}`: {e}")),
    }
}

async fn approve(state: Shared, path: Path<String>, body: Bytes) -> Response {
    answer(state, path, body, true).await
}

async fn deny(state: Shared, path: Path<String>, body: Bytes) -> Response {
    answer(state, path, body, false).await
}

async fn answer(State(app): Shared, Path(id): Path<String>, body: Bytes, approved: bool) -> Response {
    if !valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "not a run id");
    }
    let value = match parse_json(&body) {
        Ok(v) => v,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let by = value.get("by").and_then(|b| b.as_str()).map(str::trim).unwrap_or("");
    if by.is_empty() || by.chars().any(char::is_control) {
        return error(StatusCode::BAD_REQUEST, "give `by`: who answers");
    }
    let comment = value.get("comment").and_then(|c| c.as_str()).map(String::from);
    let Some(pending) = claims::pending(&app.state_dir, &id) else {
        let exists = crate::run::journal::journal_path(&app.state_dir, &id).exists();
        return if exists {
            error(StatusCode::CONFLICT, format!("run `{id}` is not waiting for an approval"))
        } else {
            error(StatusCode::NOT_FOUND, format!("no run `{id}`"))
        };
    };
    if !pending.approvers.is_empty() && !pending.approvers.iter().any(|a| a == by) {
        return error(
            StatusCode::FORBIDDEN,
            format!("`{by}` may not answer this approval (approvers: {})", pending.approvers.join(", ")),
        );
    }
    match claims::answer(&app.state_dir, &id, &claims::Answer { approved, by: by.to_string(), comment }) {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({ "run_id": id, "approved": approved, "by": by, "message": pending.message })),
        )
            .into_response(),
        Err(why) => error(StatusCode::CONFLICT, why),
    }
}
