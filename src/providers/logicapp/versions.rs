//! `logicapp::versions`: a workflow's versions, every page, newest first, the current one marked.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Workflow, prop};
use crate::model::PrimitiveError;
use crate::providers::cloud::fail;
use crate::providers::{Access, CallCx, Meta, Primitive};

/// `logicapp::versions`.
pub struct Versions;

/// Keys of `logicapp::versions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Workflow.
    pub workflow: String,
}

/// One version.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionInfo {
    /// Version id (`08585…`).
    pub version: String,
    /// `createdTime`.
    pub created: String,
    /// `changedTime` (when this version was saved).
    pub changed: String,
    /// `Enabled` / `Disabled`.
    pub state: String,
    /// Whether it is the workflow's current version.
    pub current: bool,
}

/// Version items, newest first (by `changedTime`, then id), with `current` marked.
pub(super) fn sort_versions(items: &[Value], current: &str) -> Vec<VersionInfo> {
    let mut out: Vec<VersionInfo> = items
        .iter()
        .map(|v| {
            let version = prop(v, "version");
            VersionInfo {
                current: !version.is_empty() && version == current,
                version,
                created: prop(v, "createdTime"),
                changed: prop(v, "changedTime"),
                state: prop(v, "state"),
            }
        })
        .collect();
    let time = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    out.sort_by(|a, b| time(&b.changed).cmp(&time(&a.changed)).then_with(|| b.version.cmp(&a.version)));
    out
}

impl Primitive for Versions {
    type Args = VersionsArgs;
    type Output = Vec<VersionInfo>;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "logicapp",
            name: "versions",
            doc: "A Logic Apps workflow's versions, newest first, following every page; the current one is marked.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `workflow`",
            returns: "array, newest first: `#{ version, created, changed, state, current }`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &VersionsArgs) -> Option<String> {
        Some(super::key(&args.group, &args.workflow))
    }

    async fn call(&self, cx: &CallCx, args: VersionsArgs) -> Result<Vec<VersionInfo>, PrimitiveError> {
        let wf = Workflow::resolve(cx, args.subscription.as_deref(), &args.group, &args.workflow)?;
        let current = prop(&wf.read(cx).await?, "version");
        let what = format!("versions of {}", wf.what());
        let items = wf.client.list(cx, wf.url("/versions"), &what).await.map_err(fail(&wf.key()))?;
        Ok(sort_versions(&items, &current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_official_list_example_parses() {
        let path = format!(
            "{}/tests/fixtures/azure-rest-examples/logic/WorkflowVersions_List.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let example: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let items = example["responses"]["200"]["body"]["value"].as_array().unwrap();
        let out = sort_versions(items, "08586677515911718341");
        assert_eq!(out[0].version, "08586677515911718341");
        assert!(out[0].current);
        assert_eq!(out[0].state, "Enabled");
        assert!(out[0].changed.starts_with("2018-08-09"), "{:?}", out[0]);
    }

    #[test]
    fn newest_first_with_current_marked() {
        let v = |id: &str, t: &str| json!({"properties": {"version": id, "changedTime": t, "createdTime": "2026-01-01T00:00:00Z", "state": "Enabled"}});
        let items =
            [v("1", "2026-01-01T00:00:00Z"), v("3", "2026-01-03T00:00:00Z"), v("2", "2026-01-02T00:00:00Z")];
        let out = sort_versions(&items, "3");
        let ids: Vec<&str> = out.iter().map(|x| x.version.as_str()).collect();
        assert_eq!(ids, ["3", "2", "1"]);
        assert!(out[0].current && !out[1].current);
    }
}
