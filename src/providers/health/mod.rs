//! Health checks that decide what a runbook does: HTTP probes and Prometheus queries.
//! A probe that finds an unhealthy target returns `ok: false`; it throws only on bad input.

mod http;
mod prometheus;

pub use http::{Http, HttpArgs, HttpOutput};
pub use prometheus::{Prometheus, PrometheusArgs, PrometheusOutput};

use std::sync::Arc;

use super::{DynPrimitive, erase};
use crate::model::PrimitiveError;

/// The health primitives, alphabetical.
pub fn register() -> Vec<Arc<dyn DynPrimitive>> {
    vec![
        erase(Http),       // HTTP probe with attempts, interval and consecutive successes
        erase(Prometheus), // PromQL instant query checked against bounds
    ]
}

/// Parses a probe URL, refusing what is not http(s) with a clear message.
fn parse_url(raw: &str, cx: &super::CallCx) -> Result<reqwest::Url, PrimitiveError> {
    let rewritten = cx.rewrite_url(raw);
    let url = reqwest::Url::parse(&rewritten)
        .map_err(|e| PrimitiveError::invalid(format!("malformed URL `{raw}`: {e}")).with_target(raw))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PrimitiveError::invalid(format!("URL `{raw}` must start with http:// or https://"))
            .with_target(raw));
    }
    Ok(url)
}

/// Describes a reqwest failure in words an operator understands.
fn describe_error(e: &reqwest::Error, timeout: std::time::Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {}", crate::model::format_duration(timeout))
    } else if e.is_connect() {
        format!("connection failed: {}", root_cause(e))
    } else {
        format!("request failed: {}", root_cause(e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
