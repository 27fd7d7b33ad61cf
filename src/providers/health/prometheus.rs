//! `health::prometheus`: an instant PromQL query whose value must lie within bounds.

use serde::{Deserialize, Serialize};

use super::{describe_error, parse_url};
use crate::model::{Dur, PrimitiveError};
use crate::providers::{Access, CallCx, Meta, Primitive};

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
}

/// Result of `health::prometheus`.
#[derive(Debug, Clone, Serialize)]
pub struct PrometheusOutput {
    /// Whether the value was within bounds.
    pub ok: bool,
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
            doc: "Runs a PromQL instant query and checks the scalar (or first sample) against `max`/`min`; never throws for an unhealthy value.",
            keys_doc: "`url` (server base), `query`, `max` and/or `min`, `attempts` (1), `interval` (\"5s\"), `timeout` per request (\"5s\")",
            returns: "`#{ ok, value, error }`",
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
        let mut out = PrometheusOutput { ok: false, value: None, error: None };
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
            let request = cx
                .http
                .get(endpoint.clone())
                .query(&[("query", args.query.as_str())])
                .timeout(args.timeout.get());
            let answer = tokio::select! {
                r = query(request, &args) => r,
                _ = cx.cancel.cancelled() => return Err(PrimitiveError::new(crate::model::ErrorKind::Cancelled, "cancelled while querying")),
            };
            match answer {
                Ok(value) => {
                    out.value = Some(value);
                    match check_bounds(value, args.min, args.max) {
                        None => {
                            out.ok = true;
                            out.error = None;
                            return Ok(out);
                        }
                        Some(reason) => out.error = Some(reason),
                    }
                }
                Err(reason) => {
                    out.value = None;
                    out.error = Some(reason);
                }
            }
        }
        Ok(out)
    }
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
}

/// Extracts the scalar or first sample value from a `/api/v1/query` answer.
fn parse_query_result(body: &serde_json::Value) -> Result<f64, String> {
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
