//! Health checks that decide what a runbook does: HTTP probes and Prometheus queries.
//!
//! Every result carries a verdict: `pass`, `fail` (evaluated, and failing) or `inconclusive`
//! (could not be evaluated: unreachable, query error, empty result). `ok` is true only for
//! `pass`. A runbook must never act (roll back) on `inconclusive`: a monitoring outage is not a
//! production outage. A probe throws only on bad input, and in a rehearsal for a URL the
//! scenario does not map. Probes only read: `GET` or `HEAD`.

mod http;
mod prometheus;

pub use http::{Http, HttpArgs, HttpOutput, ProbeMethod};
pub use prometheus::{Prometheus, PrometheusArgs, PrometheusOutput, parse_query_result};

use std::sync::Arc;

use serde::Serialize;

use super::{DynPrimitive, erase};
use crate::model::PrimitiveError;

/// What a health check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Evaluated, and healthy.
    Pass,
    /// Evaluated, and unhealthy: acting on it is justified.
    Fail,
    /// Could not be evaluated (unreachable, query error, empty result): never act on it.
    Inconclusive,
}

/// The health primitives, alphabetical.
pub fn register() -> Vec<Arc<dyn DynPrimitive>> {
    vec![
        erase(Http),       // HTTP probe with attempts, interval and consecutive successes
        erase(Prometheus), // PromQL instant query checked against bounds
    ]
}

/// Parses a probe URL, refusing what is not http(s) with a clear message, and, in a rehearsal,
/// whatever the scenario does not map to the simulator.
fn parse_url(raw: &str, cx: &super::CallCx) -> Result<reqwest::Url, PrimitiveError> {
    let rewritten = cx.rewrite_url(raw);
    let url = reqwest::Url::parse(&rewritten)
        .map_err(|e| PrimitiveError::invalid(format!("malformed URL `{raw}`: {e}")).with_target(raw))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PrimitiveError::invalid(format!("URL `{raw}` must start with http:// or https://"))
            .with_target(raw));
    }
    super::sandbox_check(&cx.shared.settings, &url)?;
    Ok(url)
}

/// Whether `url` points at this machine (where plain HTTP cannot be overheard).
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    crate::azure::is_loopback_host(url.host_str().unwrap_or(""))
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
