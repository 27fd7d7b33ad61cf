//! `logicapp::runs`: a workflow's newest runs, each with the version that ran, so a runbook can
//! verify a promote by the runs that follow it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Workflow, prop};
use crate::model::PrimitiveError;
use crate::providers::azure::fail;
use crate::providers::{Access, CallCx, Meta, Primitive};

/// `logicapp::runs`.
pub struct Runs;

fn ten() -> u32 {
    10
}

/// Keys of `logicapp::runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Workflow.
    pub workflow: String,
    /// How many of the newest runs (10).
    #[serde(default = "ten")]
    pub top: u32,
}

/// One run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunInfo {
    /// Run name (id).
    pub name: String,
    /// `Running`, `Succeeded`, `Failed`, `Cancelled`…
    pub status: String,
    /// `startTime`.
    pub start_time: String,
    /// The workflow version that ran.
    pub version: String,
}

/// Run items, newest first (by `startTime`, then name).
pub(super) fn sort_runs(items: &[Value]) -> Vec<RunInfo> {
    let mut out: Vec<RunInfo> = items
        .iter()
        .map(|r| RunInfo {
            name: r.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
            status: prop(r, "status"),
            start_time: prop(r, "startTime"),
            version: r
                .get("properties")
                .and_then(|p| p.get("workflow"))
                .and_then(|w| w.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    let time = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    out.sort_by(|a, b| time(&b.start_time).cmp(&time(&a.start_time)).then_with(|| b.name.cmp(&a.name)));
    out
}

impl Primitive for Runs {
    type Args = RunsArgs;
    type Output = Vec<RunInfo>;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "logicapp",
            name: "runs",
            doc: "A Logic Apps workflow's newest runs, newest first, each with the version that ran: verify a promote by the runs after it.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `workflow`, `top` (10)",
            returns: "array, newest first: `#{ name, status, start_time, version }`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &RunsArgs) -> Option<String> {
        Some(super::key(&args.group, &args.workflow))
    }

    async fn call(&self, cx: &CallCx, args: RunsArgs) -> Result<Vec<RunInfo>, PrimitiveError> {
        if args.top == 0 {
            return Err(PrimitiveError::invalid("`top` of `logicapp::runs` must be at least 1"));
        }
        let wf = Workflow::resolve(cx, args.subscription.as_deref(), &args.group, &args.workflow)?;
        let what = format!("runs of {}", wf.what());
        let url = format!("{}&%24top={}", wf.url("/runs"), args.top);
        let items = wf.client.list(cx, url, &what).await.map_err(fail(&wf.key()))?;
        let mut runs = sort_runs(&items);
        runs.truncate(args.top as usize);
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newest_first_with_the_version_that_ran() {
        let r = |n: &str, t: &str, v: &str, s: &str| json!({"name": n, "properties": {"status": s, "startTime": t, "workflow": {"name": v}}});
        let items = [
            r("a", "2026-01-01T00:00:00Z", "1", "Succeeded"),
            r("c", "2026-01-03T00:00:00Z", "2", "Failed"),
            r("b", "2026-01-02T00:00:00Z", "1", "Succeeded"),
        ];
        let out = sort_runs(&items);
        let names: Vec<&str> = out.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        assert_eq!((out[0].status.as_str(), out[0].version.as_str()), ("Failed", "2"));
    }
}
