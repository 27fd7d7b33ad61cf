//! `arm::redeploy`: deploys the template and parameters of a previous deployment again, under
//! a new name, and waits.
//!
//! Idempotency: the new deployment's name is fixed before the first request, and a PUT of a
//! named deployment is idempotent: a retry after an ambiguous failure either replaces it with
//! the same content or meets it running (`DeploymentActive`) and waits for it. Calling
//! `redeploy` twice creates two deployments with the same content; the second changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{DeploymentInfo, Group, describe_changes, error_of, generated_name};
use crate::model::{Dur, PrimitiveError};
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `arm::redeploy`.
pub struct Redeploy;

/// Keys of `arm::redeploy` and `arm::what_if`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeployArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// The deployment to deploy again, or `"last-successful"`.
    pub from: String,
    /// Name of the new deployment (default `rollbook-redeploy-<from>-<yyyymmddHHMMSS>`).
    #[serde(default)]
    pub name: Option<String>,
    /// `Incremental` or `Complete` ("Incremental").
    #[serde(default = "super::incremental")]
    pub mode: String,
    /// How long to wait for the deployment ("30m").
    #[serde(default = "super::thirty_minutes")]
    pub timeout: Dur,
}

/// Result of `arm::redeploy`.
#[derive(Debug, Clone, Serialize)]
pub struct RedeployOutput {
    /// The new deployment.
    pub name: String,
    /// The deployment whose content was deployed again.
    pub from: String,
    /// Its final `provisioningState` (`Succeeded`, `Failed`, `Canceled`).
    pub state: String,
    /// ARM's error in words when it did not succeed.
    pub error: Option<String>,
}

/// `Incremental` / `Complete`, whatever the case given.
pub(super) fn mode(given: &str) -> Result<&'static str, PrimitiveError> {
    match given.to_ascii_lowercase().as_str() {
        "incremental" => Ok("Incremental"),
        "complete" => Ok("Complete"),
        _ => Err(PrimitiveError::invalid(format!(
            "`mode` must be \"Incremental\" or \"Complete\", not `{given}`"
        ))),
    }
}

/// The resolved source, the new name and the request properties of a redeploy.
pub(super) async fn prepare(
    cx: &CallCx,
    group: &Group,
    args: &RedeployArgs,
    verb: &str,
) -> Result<(DeploymentInfo, String, serde_json::Value), PrimitiveError> {
    let mode = mode(&args.mode)?;
    let from = group.resolve_from(cx, &args.from).await?;
    let (template, parameters) = group.content(cx, &from.name).await?;
    let name =
        args.name.clone().unwrap_or_else(|| generated_name(verb, Some(&from.name), chrono::Utc::now()));
    let properties = json!({ "mode": mode, "template": template, "parameters": parameters });
    Ok((from, name, properties))
}

impl Primitive for Redeploy {
    type Args = RedeployArgs;
    type Output = RedeployOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "arm",
            name: "redeploy",
            doc: "Deploys the template and parameters of a previous deployment (or the last successful one) again under a new name, and waits; returns the final state.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `from` (a deployment name or \"last-successful\"), `name` (rollbook-redeploy-<from>-<time>), `mode` (\"Incremental\"), `timeout` (\"30m\")",
            returns: "`#{ name, from, state, error }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &RedeployArgs) -> Option<String> {
        Some(crate::model::ResourceKey::arm(&args.group).to_string())
    }

    async fn call(&self, cx: &CallCx, args: RedeployArgs) -> Result<RedeployOutput, PrimitiveError> {
        let group = Group::resolve(cx, args.subscription.as_deref(), &args.group)?;
        let (from, name, properties) = prepare(cx, &group, &args, "redeploy").await?;
        let done = group.deploy_and_wait(cx, &name, &properties, args.timeout.get()).await?;
        Ok(RedeployOutput {
            state: DeploymentInfo::of(&done).state,
            error: error_of(&done),
            name,
            from: from.name,
        })
    }

    /// Applied when the deployment it would have created (its `name`, or a
    /// `rollbook-redeploy-<from>-…` one) appeared since it was sent: a PUT that ARM accepted is
    /// in the history at once, so its absence means it was not applied.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &RedeployArgs,
        sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let group = Group::resolve(cx, args.subscription.as_deref(), &args.group)?;
        let from = (!args.from.eq_ignore_ascii_case(super::LAST_SUCCESSFUL)).then_some(args.from.as_str());
        let prefix = super::name_prefix("redeploy", from);
        match super::created_since(&group, cx, args.name.as_deref(), &prefix, sent).await? {
            Some(d) => Ok(Verified::Applied(json!({
                "name": DeploymentInfo::of(&d).name,
                "from": args.from,
                "state": DeploymentInfo::of(&d).state,
                "error": error_of(&d),
            }))),
            None => Ok(Verified::NotApplied),
        }
    }

    async fn plan(&self, cx: &CallCx, args: &RedeployArgs) -> Result<Planned, PrimitiveError> {
        let group = Group::resolve(cx, args.subscription.as_deref(), &args.group)?;
        let (from, name, properties) = prepare(cx, &group, args, "redeploy").await?;
        let what_if = match group.what_if(cx, &name, &properties, args.timeout.get()).await {
            Ok(changes) => describe_changes(&changes),
            Err(e) => format!("what-if unavailable: {}", e.message),
        };
        Ok(Planned {
            effect: format!(
                "redeploy the template and parameters of deployment `{}` ({} at {}) to group `{}` as `{name}` in {} mode; {what_if}",
                from.name,
                from.state,
                from.timestamp,
                args.group,
                properties["mode"].as_str().unwrap_or_default(),
            ),
            output: json!({ "name": name, "from": from.name, "state": "Planned", "error": null, "planned": true }),
        })
    }
}
