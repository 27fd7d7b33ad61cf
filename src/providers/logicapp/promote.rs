//! `logicapp::promote`: makes a previous version's definition and parameters current again,
//! as the portal's Promote does: read the version, PUT its definition and parameters as the
//! workflow (keeping location, tags, state and the rest), which saves a new version.
//!
//! Idempotency: the PUT is not re-sent blindly (each PUT saves a version). After an ambiguous
//! failure the workflow is read: if its definition and parameters already equal the version's,
//! the promote happened and its version is reported; otherwise the PUT is sent again.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Workflow, prop};
use crate::azure::{ArmRequest, Idempotency, Pause};
use crate::model::PrimitiveError;
use crate::providers::cloud::fail;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `logicapp::promote`.
pub struct Promote;

/// Keys of `logicapp::promote`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Workflow.
    pub workflow: String,
    /// The version to make current again.
    pub version: String,
}

/// Result of `logicapp::promote`.
#[derive(Debug, Clone, Serialize)]
pub struct PromoteOutput {
    /// The version that was current before.
    pub from_version: String,
    /// The new version saved with the promoted definition.
    pub new_version: String,
}

/// Most PUTs sent after ambiguous failures.
const MAX_TRIES: u32 = 4;

fn content(resource: &Value) -> (Value, Value) {
    let p = resource.get("properties");
    (
        p.and_then(|p| p.get("definition")).cloned().unwrap_or(Value::Null),
        p.and_then(|p| p.get("parameters")).cloned().unwrap_or_else(|| json!({})),
    )
}

/// The workflow body to PUT: the current workflow with the version's definition and parameters.
pub(super) fn promoted_body(current: &Value, version: &Value) -> Value {
    let (definition, parameters) = content(version);
    let mut props = Map::new();
    if let Some(cur) = current.get("properties").and_then(Value::as_object) {
        for k in [
            "state",
            "endpointsConfiguration",
            "accessControl",
            "integrationAccount",
            "integrationServiceEnvironment",
        ] {
            if let Some(v) = cur.get(k) {
                props.insert(k.into(), v.clone());
            }
        }
    }
    props.insert("definition".into(), definition);
    props.insert("parameters".into(), parameters);
    let mut body = Map::new();
    for k in ["location", "tags", "identity"] {
        if let Some(v) = current.get(k) {
            body.insert(k.into(), v.clone());
        }
    }
    body.insert("properties".into(), Value::Object(props));
    Value::Object(body)
}

impl Primitive for Promote {
    type Args = PromoteArgs;
    type Output = PromoteOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "logicapp",
            name: "promote",
            doc: "Makes a previous version's definition and parameters current again, as the portal's Promote does; a new version is saved.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `workflow`, `version`",
            returns: "`#{ from_version, new_version }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &PromoteArgs) -> Option<String> {
        Some(super::key(&args.group, &args.workflow))
    }

    async fn call(&self, cx: &CallCx, args: PromoteArgs) -> Result<PromoteOutput, PrimitiveError> {
        let wf = Workflow::resolve(cx, args.subscription.as_deref(), &args.group, &args.workflow)?;
        let current = wf.read(cx).await?;
        let from_version = prop(&current, "version");
        let version = wf.version(cx, &args.version).await?;
        let wanted = content(&version);
        let req = ArmRequest {
            method: Method::PUT,
            url: wf.url(""),
            body: Some(promoted_body(&current, &version)),
            what: format!("promote of version `{}` on {}", args.version, wf.what()),
            idempotency: Idempotency::Once,
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let e = match wf.client.send(cx, &req).await {
                Ok(resp) => {
                    return Ok(PromoteOutput { from_version, new_version: prop(&resp.body, "version") });
                }
                Err(e) => e,
            };
            if !e.is_ambiguous() {
                return Err(fail(&wf.key())(e));
            }
            // Outcome unknown: did the PUT take effect?
            let now = wf.read(cx).await?;
            let version_now = prop(&now, "version");
            if content(&now) == wanted && version_now != from_version {
                return Ok(PromoteOutput { from_version, new_version: version_now });
            }
            if tries >= MAX_TRIES {
                return Err(fail(&wf.key())(e));
            }
            let policy = wf.client.policy();
            let wait = policy.backoff(tries).max(e.retry_after().unwrap_or_default());
            cx.pause(wait.min(policy.max_total_wait)).await.map_err(PrimitiveError::from)?;
        }
    }

    /// Applied when a version saved since it was sent carries that version's definition and
    /// parameters (the PUT is synchronous, so there is nothing in flight to wait for).
    async fn verify(
        &self,
        cx: &CallCx,
        args: &PromoteArgs,
        sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let wf = Workflow::resolve(cx, args.subscription.as_deref(), &args.group, &args.workflow)?;
        let wanted = content(&wf.version(cx, &args.version).await?);
        let what = format!("versions of {}", wf.what());
        let mut items = wf.client.list(cx, wf.url("/versions"), &what).await.map_err(fail(&wf.key()))?;
        let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(&prop(v, "changedTime")).ok();
        items.sort_by_key(|v| std::cmp::Reverse(time(v)));
        let since = sent - chrono::TimeDelta::seconds(5);
        for (i, v) in items.iter().enumerate() {
            let recent = time(v).is_some_and(|t| t.with_timezone(&chrono::Utc) >= since);
            if recent && prop(v, "version") != args.version && content(v) == wanted {
                let from = items.get(i + 1).map(|p| prop(p, "version")).unwrap_or_default();
                return Ok(Verified::Applied(
                    json!({ "from_version": from, "new_version": prop(v, "version") }),
                ));
            }
        }
        Ok(Verified::NotApplied)
    }

    async fn plan(&self, cx: &CallCx, args: &PromoteArgs) -> Result<Planned, PrimitiveError> {
        let wf = Workflow::resolve(cx, args.subscription.as_deref(), &args.group, &args.workflow)?;
        let current = wf.read(cx).await?;
        let from = prop(&current, "version");
        let version = wf.version(cx, &args.version).await?;
        let same = content(&current) == content(&version);
        let note = if same { " (its definition and parameters are already current)" } else { "" };
        Ok(Planned {
            effect: format!(
                "make version `{}` (saved {}) of {} current again: its definition and parameters would replace those of the current version `{from}` as a new version{note}",
                args.version,
                prop(&version, "changedTime"),
                wf.what(),
            ),
            output: json!({ "from_version": from, "new_version": "(planned)", "planned": true }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_keeps_the_workflow_and_takes_the_versions_content() {
        let current = json!({"id": "x", "location": "eastus", "tags": {"a": "b"},
            "properties": {"state": "Disabled", "version": "2", "definition": {"d": 2}, "parameters": {}, "accessEndpoint": "https://e"}});
        let version = json!({"properties": {"version": "1", "definition": {"d": 1}, "parameters": {"p": {"value": 1}}}});
        let body = promoted_body(&current, &version);
        assert_eq!(
            body,
            json!({"location": "eastus", "tags": {"a": "b"},
            "properties": {"state": "Disabled", "definition": {"d": 1}, "parameters": {"p": {"value": 1}}}})
        );
    }
}
