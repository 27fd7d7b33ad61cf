//! Logic Apps (consumption) workflows (Microsoft.Logic): version history, promoting a previous
//! version (as the portal's Promote does: its definition and parameters PUT as the workflow),
//! enable and disable.

mod disable;
mod enable;
mod promote;
mod versions;

pub use disable::Disable;
pub use enable::{Enable, ToggleArgs, ToggleOutput};
pub use promote::{Promote, PromoteArgs, PromoteOutput};
pub use versions::{VersionInfo, Versions, VersionsArgs};

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

use super::cloud::{client, fail, group_path, require};
use super::{CallCx, DynPrimitive, Planned, Verified, erase};
use crate::azure::{ArmClient, ArmRequest, Idempotency, Pause, api_versions, encode};
use crate::model::PrimitiveError;

/// The logicapp primitives, alphabetical.
pub fn register() -> Vec<Arc<dyn DynPrimitive>> {
    vec![
        erase(Disable),  // disable a workflow (no-op when already disabled)
        erase(Enable),   // enable a workflow (no-op when already enabled)
        erase(Promote),  // make a previous version's definition current again
        erase(Versions), // the workflow's versions, newest first
    ]
}

/// A workflow resolved to its subscription.
pub(crate) struct Workflow {
    /// The run's ARM client.
    pub client: Arc<ArmClient>,
    path: String,
    /// Group.
    pub group: String,
    /// Workflow name.
    pub name: String,
}

impl Workflow {
    /// Resolves the workflow of a call.
    pub(crate) fn resolve(
        cx: &CallCx,
        subscription: Option<&str>,
        group: &str,
        workflow: &str,
    ) -> Result<Workflow, PrimitiveError> {
        require("group", group)?;
        require("workflow", workflow)?;
        let client = client(cx)?;
        let sub = client.subscription(subscription).map_err(PrimitiveError::from)?;
        Ok(Workflow {
            path: format!(
                "{}/providers/Microsoft.Logic/workflows/{}",
                group_path(&sub, group),
                encode(workflow)
            ),
            client,
            group: group.to_string(),
            name: workflow.to_string(),
        })
    }

    /// `logicapp/<group>/<workflow>`.
    pub(crate) fn key(&self) -> String {
        key(&self.group, &self.name)
    }

    /// "workflow `orders` in group `rg-shop`".
    pub(crate) fn what(&self) -> String {
        format!("workflow `{}` in group `{}`", self.name, self.group)
    }

    /// URL of `suffix` under the workflow.
    pub(crate) fn url(&self, suffix: &str) -> String {
        self.client.url(&format!("{}{suffix}", self.path), api_versions::LOGIC)
    }

    /// The workflow resource.
    pub(crate) async fn read(&self, pause: &dyn Pause) -> Result<Value, PrimitiveError> {
        self.client.get(pause, self.url(""), &self.what()).await.map_err(fail(&self.key()))
    }

    /// One version resource.
    pub(crate) async fn version(&self, pause: &dyn Pause, id: &str) -> Result<Value, PrimitiveError> {
        require("version", id)?;
        let what = format!("version `{id}` of {}", self.what());
        self.client
            .get(pause, self.url(&format!("/versions/{}", encode(id))), &what)
            .await
            .map_err(fail(&self.key()))
    }
}

/// `logicapp/<group>/<workflow>`.
pub fn key(group: &str, workflow: &str) -> String {
    format!("logicapp/{group}/{workflow}")
}

/// A property of a workflow or version resource as text.
pub fn prop(resource: &Value, name: &str) -> String {
    resource
        .get("properties")
        .and_then(|p| p.get(name))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Enables or disables a workflow unless it already is; `changed` says whether it was needed.
/// Idempotent: the state is read first, and the enable/disable action is safe to repeat.
async fn toggle(cx: &CallCx, args: &ToggleArgs, enable: bool) -> Result<ToggleOutput, PrimitiveError> {
    let wf = Workflow::resolve(cx, args.subscription.as_deref(), &args.group, &args.workflow)?;
    let want = if enable { "Enabled" } else { "Disabled" };
    let state = prop(&wf.read(cx).await?, "state");
    if state.eq_ignore_ascii_case(want) {
        return Ok(ToggleOutput { changed: false });
    }
    let action = if enable { "enable" } else { "disable" };
    let req = ArmRequest {
        method: Method::POST,
        url: wf.url(&format!("/{action}")),
        body: None,
        what: format!("{action} of {}", wf.what()),
        idempotency: Idempotency::Safe,
    };
    wf.client.send(cx, &req).await.map_err(fail(&wf.key()))?;
    Ok(ToggleOutput { changed: true })
}

/// An interrupted enable/disable took effect when the workflow is now in that state (resending
/// it would be harmless anyway).
async fn verify_toggle(cx: &CallCx, args: &ToggleArgs, enable: bool) -> Result<Verified, PrimitiveError> {
    let wf = Workflow::resolve(cx, args.subscription.as_deref(), &args.group, &args.workflow)?;
    let want = if enable { "Enabled" } else { "Disabled" };
    if prop(&wf.read(cx).await?, "state").eq_ignore_ascii_case(want) {
        return Ok(Verified::Applied(serde_json::json!({ "changed": true })));
    }
    Ok(Verified::NotApplied)
}

async fn plan_toggle(cx: &CallCx, args: &ToggleArgs, enable: bool) -> Result<Planned, PrimitiveError> {
    let wf = Workflow::resolve(cx, args.subscription.as_deref(), &args.group, &args.workflow)?;
    let state = prop(&wf.read(cx).await?, "state");
    let want = if enable { "Enabled" } else { "Disabled" };
    let (effect, changed) = if state.eq_ignore_ascii_case(want) {
        (format!("nothing: {} is already {want}", wf.what()), false)
    } else {
        let verb = if enable { "enable" } else { "disable" };
        (format!("{verb} {} (now {state})", wf.what()), true)
    };
    Ok(Planned { effect, output: serde_json::json!({ "changed": changed, "planned": true }) })
}
