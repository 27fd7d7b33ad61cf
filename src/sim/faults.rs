//! Injected faults (`[[faults]]`): which request gets which failure, and how many times.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use crate::sim::scenario::Fault;

/// What a matching fault does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// Status to answer instead of the real one.
    pub status: Option<u16>,
    /// `Retry-After`, in whole seconds.
    pub retry_after: Option<u64>,
    /// Close the connection without an answer.
    pub drop: bool,
    /// Run the real handler first.
    pub applied: bool,
    /// Extra latency.
    pub latency: Duration,
}

/// The scenario's faults with their remaining counts.
#[derive(Debug, Default)]
pub struct Faults {
    faults: Vec<Fault>,
    remaining: Mutex<Vec<u32>>,
}

/// `*` matches any run of characters (slashes included); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Faults {
    /// The faults of a scenario.
    pub fn new(faults: &[Fault]) -> Faults {
        Faults {
            remaining: Mutex::new(faults.iter().map(|f| f.times.unwrap_or(1)).collect()),
            faults: faults.to_vec(),
        }
    }

    /// The first fault with uses left that matches; using it counts down its `times`.
    pub fn take(&self, method: &str, path: &str) -> Option<Injection> {
        if self.faults.is_empty() {
            return None;
        }
        let mut remaining = self.remaining.lock().unwrap_or_else(|e| e.into_inner());
        for (i, f) in self.faults.iter().enumerate() {
            if remaining[i] == 0 {
                continue;
            }
            if f.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method)) {
                continue;
            }
            if !glob_match(&f.path, path) {
                continue;
            }
            remaining[i] -= 1;
            let retry_after = match (f.retry_after, f.status) {
                (Some(d), _) => Some(d.get().as_secs_f64().ceil() as u64),
                (None, Some(429 | 503)) => Some(1),
                _ => None,
            };
            return Some(Injection {
                status: f.status,
                retry_after,
                drop: f.drop,
                applied: f.applied,
                latency: f.latency.map(|d| d.get()).unwrap_or_default(),
            });
        }
        None
    }
}

fn reason(status: u16) -> (&'static str, &'static str) {
    // (Kubernetes reason, ARM error code)
    match status {
        400 => ("BadRequest", "BadRequest"),
        401 => ("Unauthorized", "AuthenticationFailed"),
        403 => ("Forbidden", "AuthorizationFailed"),
        404 => ("NotFound", "NotFound"),
        409 => ("Conflict", "Conflict"),
        429 => ("TooManyRequests", "TooManyRequests"),
        503 => ("ServiceUnavailable", "ServiceUnavailable"),
        504 => ("Timeout", "GatewayTimeout"),
        _ => ("InternalError", "InternalServerError"),
    }
}

/// The error body of an injected status: a Kubernetes `Status` under `/k8s/`, else ARM's envelope.
pub fn fault_body(path: &str, status: u16) -> serde_json::Value {
    let (k8s_reason, arm_code) = reason(status);
    let message = format!("simulated fault: {status} for {path}");
    if path.starts_with("/k8s/") {
        crate::sim::k8s::api::status_body(status, k8s_reason, &message, Some(json!({})))
    } else {
        json!({"error": {"code": arm_code, "message": message}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_across_slashes() {
        assert!(glob_match("*/slotsswap", "/subscriptions/x/sites/s/slotsswap"));
        assert!(glob_match(
            "/k8s/*/deployments/web",
            "/k8s/prod/apis/apps/v1/namespaces/shop/deployments/web"
        ));
        assert!(!glob_match("*/slotsswap", "/subscriptions/x/slotsswap/more"));
        assert!(glob_match("*", ""));
    }
}
