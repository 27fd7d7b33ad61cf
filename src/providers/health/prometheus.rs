//! `health::prometheus`: an instant PromQL query whose value must lie within bounds.
//!
//! A value out of bounds is a `fail`; an answer that cannot be evaluated (unreachable server,
//! query error, empty result, NaN) is `inconclusive`. Auth: a bearer token from
//! `ROLLBOOK_PROMETHEUS_TOKEN` (or the `ROLLBOOK_PROMETHEUS_*` variable `token_env` names), or
//! with `auth: "azure"` an Azure AD token for Azure Monitor managed Prometheus from the run's
//! Azure credentials. A token is sent over HTTPS only (plain HTTP to loopback excepted).

use serde::{Deserialize, Serialize};

use super::{Verdict, describe_error, is_loopback, parse_url};
use crate::model::{Dur, ErrorKind, PrimitiveError};
use crate::providers::{Access, CallCx, Meta, Primitive};

/// The variable a bearer token is read from by default.
pub(super) const TOKEN_ENV: &str = "ROLLBOOK_PROMETHEUS_TOKEN";
/// The scope of Azure Monitor managed Prometheus tokens.
pub(super) const AZURE_SCOPE: &str = "https://prometheus.monitor.azure.com/.default";

/// `health::prometheus`.
pub struct Prometheus;

fn five_seconds() -> Dur {
    Dur::secs(5)
}
fn one() -> u32 {
    1
}

/// Keys of `health::prometheus`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusArgs {
    /// Server base URL (`http://prometheus:9090`).
    pub url: String,
    /// PromQL instant query.
    pub query: String,
    /// Healthy when the value is at most this.
    #[serde(default)]
    pub max: Option<f64>,
    /// Healthy when the value is at least this.
    #[serde(default)]
    pub min: Option<f64>,
    /// Queries at most (1).
    #[serde(default = "one")]
    pub attempts: u32,
    /// Wait between queries (5s).
    #[serde(default = "five_seconds")]
    pub interval: Dur,
    /// Per-request timeout (5s).
    #[serde(default = "five_seconds")]
    pub timeout: Dur,
    /// The environment variable holding a bearer token (a `ROLLBOOK_PROMETHEUS_*` name;
    /// default `ROLLBOOK_PROMETHEUS_TOKEN` when set).
    #[serde(default)]
    pub token_env: Option<String>,
    /// `"azure"`: an Azure AD token from the run's Azure credentials (Azure Monitor managed
    /// Prometheus); `"none"`: no token even when one is set.
    #[serde(default)]
    pub auth: Option<String>,
}

/// Result of `health::prometheus`.
#[derive(Debug, Clone, Serialize)]
pub struct PrometheusOutput {
    /// Whether the value was within bounds (true only for a `pass` verdict).
    pub ok: bool,
    /// `pass`, `fail` (the value is out of bounds) or `inconclusive` (no value: unreachable,
    /// query error, empty result).
    pub verdict: Verdict,
    /// Why not `pass`, in words; none when it passed.
    pub reason: Option<String>,
    /// The scalar or first sample's value.
    pub value: Option<f64>,
    /// Why not ok, in words.
    pub error: Option<String>,
}

impl Primitive for Prometheus {
    type Args = PrometheusArgs;
    type Output = PrometheusOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "health",
            name: "prometheus",
            doc: "Runs a PromQL instant query and checks the scalar (or first sample) against `max`/`min`; the verdict is pass, fail (out of bounds) or inconclusive (no value: never act on it); never throws for an unhealthy value.",
            keys_doc: "`url` (server base), `query`, `max` and/or `min`, `attempts` (1), `interval` (\"5s\"), `timeout` per request (\"5s\"), `token_env` (a `ROLLBOOK_PROMETHEUS_*` variable; default `ROLLBOOK_PROMETHEUS_TOKEN` when set), `auth` (\"azure\" for Azure Monitor managed Prometheus, \"none\")",
            returns: "`#{ ok, verdict, reason, value, error }`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &PrometheusArgs) -> Option<String> {
        Some(args.url.clone())
    }

    async fn call(&self, cx: &CallCx, args: PrometheusArgs) -> Result<PrometheusOutput, PrimitiveError> {
        let base = parse_url(&args.url, cx)?;
        let endpoint = base
            .join(&format!("{}/api/v1/query", base.path().trim_end_matches('/')))
            .map_err(|e| PrimitiveError::invalid(format!("malformed URL `{}`: {e}", args.url)))?;
        if args.attempts == 0 {
            return Err(PrimitiveError::invalid("`attempts` must be at least 1"));
        }
        let token = token(cx, &args, &endpoint).await?;
        let mut out = PrometheusOutput {
            ok: false,
            verdict: Verdict::Inconclusive,
            reason: None,
            value: None,
            error: None,
        };
        for attempt in 1..=args.attempts {
            if attempt > 1 {
                cx.progress.waiting(&format!(
                    "querying {} (attempt {attempt}/{}): {}",
                    args.url,
                    args.attempts,
                    out.error.as_deref().unwrap_or("")
                ));
                let slept = cx.sleep(args.interval.get()).await;
                cx.progress.done_waiting();
                slept?;
            }
            let mut request = cx
                .http
                .get(endpoint.clone())
                .query(&[("query", args.query.as_str())])
                .timeout(args.timeout.get());
            if let Some(token) = &token {
                let mut value =
                    reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        PrimitiveError::invalid("the Prometheus token has characters a header cannot carry")
                    })?;
                value.set_sensitive(true);
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            let answer = tokio::select! {
                r = query(request, &args) => r,
                _ = cx.cancel.cancelled() => return Err(PrimitiveError::new(crate::model::ErrorKind::Cancelled, "cancelled while querying")),
            };
            match answer {
                Ok(value) if value.is_nan() => {
                    out.value = None;
                    out.verdict = Verdict::Inconclusive;
                    out.error = Some("value is NaN (no traffic to compute it from?)".into());
                }
                Ok(value) => {
                    out.value = Some(value);
                    match check_bounds(value, args.min, args.max) {
                        None => {
                            out.ok = true;
                            out.verdict = Verdict::Pass;
                            out.error = None;
                            out.reason = None;
                            return Ok(out);
                        }
                        Some(reason) => {
                            out.verdict = Verdict::Fail;
                            out.error = Some(reason);
                        }
                    }
                }
                Err(reason) => {
                    out.value = None;
                    out.verdict = Verdict::Inconclusive;
                    out.error = Some(reason);
                }
            }
        }
        out.reason = out.error.clone();
        Ok(out)
    }
}

/// Holds the Azure credential of Prometheus queries for the run (tokens are cached in it).
struct PrometheusCredential(crate::azure::Credentials);

/// The bearer token to send, if any, refusing names outside `ROLLBOOK_PROMETHEUS_*` (a runbook
/// must not be able to send any secret of the environment anywhere) and plain HTTP off loopback.
async fn token(
    cx: &CallCx,
    args: &PrometheusArgs,
    endpoint: &reqwest::Url,
) -> Result<Option<String>, PrimitiveError> {
    let settings = &cx.shared.settings;
    let auth = args.auth.as_deref().map(str::to_ascii_lowercase);
    let token = match (auth.as_deref(), args.token_env.as_deref()) {
        (Some("azure"), Some(_)) | (Some("none"), Some(_)) => {
            return Err(PrimitiveError::invalid("give `auth` or `token_env`, not both"));
        }
        (Some("none"), None) => None,
        (Some("azure"), None) => {
            let credential = cx.shared.get_or_init::<PrometheusCredential>(|settings| {
                crate::azure::Credentials::from_settings(settings, AZURE_SCOPE)
                    .map(PrometheusCredential)
                    .map_err(PrimitiveError::from)
            })?;
            let token = credential.0.token(false).await.map_err(PrimitiveError::from)?;
            Some(token.expose().to_string())
        }
        (Some(other), _) => {
            return Err(PrimitiveError::invalid(format!(
                "`auth` must be \"azure\" or \"none\", not `{other}`"
            )));
        }
        (None, Some(name)) => {
            if !name.starts_with(TOKEN_ENV) {
                return Err(PrimitiveError::invalid(format!(
                    "`token_env` must name a variable starting with {TOKEN_ENV}, not `{name}`"
                )));
            }
            if settings.sandbox.is_some() {
                // A rehearsal has no real tokens; the simulator accepts any.
                return Ok(Some("rollbook-sandbox".into()));
            }
            Some(settings.var(name).map(str::to_string).ok_or_else(|| {
                PrimitiveError::new(ErrorKind::Invalid, format!("`token_env`: {name} is not set"))
            })?)
        }
        (None, None) => settings.var(TOKEN_ENV).map(str::to_string),
    };
    if token.is_some() && endpoint.scheme() != "https" && !is_loopback(endpoint) {
        return Err(PrimitiveError::invalid(format!(
            "a token is sent over https only, and `{}` is plain http",
            endpoint.origin().ascii_serialization()
        )));
    }
    Ok(token)
}

/// Why `value` is out of bounds, or None when it is within them.
fn check_bounds(value: f64, min: Option<f64>, max: Option<f64>) -> Option<String> {
    if value.is_nan() {
        return Some("value is NaN".into());
    }
    if let Some(max) = max
        && value > max
    {
        return Some(format!("value {value} is above max {max}"));
    }
    if let Some(min) = min
        && value < min
    {
        return Some(format!("value {value} is below min {min}"));
    }
    None
}

async fn query(request: reqwest::RequestBuilder, args: &PrometheusArgs) -> Result<f64, String> {
    let response = request.send().await.map_err(|e| describe_error(&e, args.timeout.get()))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("status {status}: the answer is not Prometheus JSON ({e})"))?;
    parse_query_result(&body)
        .map_err(|why| if status.is_success() { why } else { format!("status {}: {why}", status.as_u16()) })
}

/// Extracts the scalar or first sample value from a `/api/v1/query` answer.
pub fn parse_query_result(body: &serde_json::Value) -> Result<f64, String> {
    if body["status"] != "success" {
        let error = body["error"].as_str().unwrap_or("unknown error");
        return Err(format!("query failed: {error}"));
    }
    let data = &body["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().and_then(|r| r.first()) {
            Some(first) => &first["value"],
            None => return Err("query returned no data".into()),
        },
        Some(other) => {
            return Err(format!("query returned a {other}, expected a scalar or vector"));
        }
        None => return Err("the answer has no resultType".into()),
    };
    let text = sample[1].as_str().ok_or("the sample has no value")?;
    text.parse::<f64>().map_err(|_| format!("sample value `{text}` is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_vector_and_scalar_results() {
        let vector = json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.0,"0.25"]}]}});
        assert_eq!(parse_query_result(&vector), Ok(0.25));
        let scalar = json!({"status":"success","data":{"resultType":"scalar","result":[1.0,"3"]}});
        assert_eq!(parse_query_result(&scalar), Ok(3.0));
    }

    #[test]
    fn explains_empty_and_failed_queries() {
        let empty = json!({"status":"success","data":{"resultType":"vector","result":[]}});
        assert_eq!(parse_query_result(&empty).unwrap_err(), "query returned no data");
        let failed = json!({"status":"error","errorType":"bad_data","error":"parse error"});
        assert!(parse_query_result(&failed).unwrap_err().contains("parse error"));
    }

    #[test]
    fn bounds() {
        assert_eq!(check_bounds(0.5, None, Some(1.0)), None);
        assert!(check_bounds(2.0, None, Some(1.0)).unwrap().contains("above max"));
        assert!(check_bounds(0.1, Some(0.5), None).unwrap().contains("below min"));
        assert!(check_bounds(f64::NAN, None, None).is_some());
    }
}
