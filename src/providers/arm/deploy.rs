//! `arm::deploy`: deploys a template (roll forward), optionally with ARM's own rollback on
//! error (`onErrorDeployment`), and waits.
//!
//! Idempotency: as `redeploy`, a named deployment PUT is safe to repeat; the name is generated
//! once per call when not given.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::redeploy::mode;
use super::{
    DeploymentInfo, Group, LAST_SUCCESSFUL, describe_changes, error_of, generated_name, script_parameters,
};
use crate::model::{Dur, PrimitiveError};
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `arm::deploy`.
pub struct Deploy;

/// Keys of `arm::deploy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Deployment name (default `rollbook-deploy-<yyyymmddHHMMSS>`).
    #[serde(default)]
    pub name: Option<String>,
    /// The template (an object map).
    pub template: Value,
    /// Parameters: `#{ sku: "S1" }` or `#{ sku: #{ value: "S1" } }`.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// `Incremental` or `Complete` ("Incremental").
    #[serde(default = "super::incremental")]
    pub mode: String,
    /// Roll back on failure to `"last-successful"` or to a named deployment.
    #[serde(default)]
    pub on_error: Option<String>,
    /// How long to wait ("30m").
    #[serde(default = "super::thirty_minutes")]
    pub timeout: Dur,
}

/// Result of `arm::deploy`.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutput {
    /// The deployment.
    pub name: String,
    /// Its final `provisioningState`.
    pub state: String,
    /// ARM's error in words when it did not succeed.
    pub error: Option<String>,
    /// The deployment ARM rolled back to, when it failed and `on_error` was set.
    pub rolled_back_to: Option<String>,
}

/// `onErrorDeployment` for `on_error`.
pub(super) fn on_error_deployment(on_error: &str) -> Value {
    if on_error.eq_ignore_ascii_case(LAST_SUCCESSFUL) {
        json!({ "type": "LastSuccessful" })
    } else {
        json!({ "type": "SpecificDeployment", "deploymentName": on_error })
    }
}

fn properties(args: &DeployArgs) -> Result<Value, PrimitiveError> {
    if !args.template.is_object() {
        return Err(PrimitiveError::invalid(format!(
            "`template` of a deployment to group `{}` must be an object map",
            args.group
        )));
    }
    let mut p = json!({
        "mode": mode(&args.mode)?,
        "template": args.template,
        "parameters": script_parameters(args.parameters.as_ref().unwrap_or(&json!({}))),
    });
    if let Some(on_error) = args.on_error.as_deref().filter(|o| !o.trim().is_empty()) {
        p["onErrorDeployment"] = on_error_deployment(on_error);
    }
    Ok(p)
}

impl Primitive for Deploy {
    type Args = DeployArgs;
    type Output = DeployOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "arm",
            name: "deploy",
            doc: "Deploys a template to a resource group and waits; with `on_error`, ARM itself redeploys the last successful (or a named) deployment when this one fails.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `name` (rollbook-deploy-<time>), `template`, `parameters` (#{}), `mode` (\"Incremental\"), `on_error` (\"last-successful\" or a deployment name), `timeout` (\"30m\")",
            returns: "`#{ name, state, error, rolled_back_to }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &DeployArgs) -> Option<String> {
        Some(format!("arm/{}", args.group))
    }

    async fn call(&self, cx: &CallCx, args: DeployArgs) -> Result<DeployOutput, PrimitiveError> {
        let props = properties(&args)?;
        let group = Group::resolve(cx, args.subscription.as_deref(), &args.group)?;
        let name = args.name.clone().unwrap_or_else(|| generated_name("deploy", None, chrono::Utc::now()));
        let done = group.deploy_and_wait(cx, &name, &props, args.timeout.get()).await?;
        let state = DeploymentInfo::of(&done).state;
        let rolled_back_to = (!state.eq_ignore_ascii_case("Succeeded"))
            .then(|| {
                done.get("properties")?
                    .get("onErrorDeployment")?
                    .get("deploymentName")?
                    .as_str()
                    .map(str::to_string)
            })
            .flatten();
        Ok(DeployOutput { error: error_of(&done), name, state, rolled_back_to })
    }

    /// Applied when its deployment (`name`, or a `rollbook-deploy-…` one) appeared since it was
    /// sent; an accepted PUT is in the history at once.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &DeployArgs,
        sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let group = Group::resolve(cx, args.subscription.as_deref(), &args.group)?;
        match super::created_since(&group, cx, args.name.as_deref(), "rollbook-deploy-", sent).await? {
            Some(d) => Ok(Verified::Applied(json!({
                "name": DeploymentInfo::of(&d).name,
                "state": DeploymentInfo::of(&d).state,
                "error": error_of(&d),
                "rolled_back_to": null,
            }))),
            None => Ok(Verified::NotApplied),
        }
    }

    async fn plan(&self, cx: &CallCx, args: &DeployArgs) -> Result<Planned, PrimitiveError> {
        let props = properties(args)?;
        let group = Group::resolve(cx, args.subscription.as_deref(), &args.group)?;
        let name = args.name.clone().unwrap_or_else(|| generated_name("deploy", None, chrono::Utc::now()));
        let rollback = match args.on_error.as_deref() {
            Some(o) if o.eq_ignore_ascii_case(super::LAST_SUCCESSFUL) => {
                let history = group.history(cx).await?;
                match super::last_successful(&history, None) {
                    Some(d) => {
                        format!(", rolling back to the last successful deployment `{}` on failure", d.name)
                    }
                    None => ", with rollback on failure but no successful deployment to roll back to".into(),
                }
            }
            Some(o) => format!(", rolling back to deployment `{o}` on failure"),
            None => String::new(),
        };
        let what_if = match group.what_if(cx, &name, &props, args.timeout.get()).await {
            Ok(changes) => describe_changes(&changes),
            Err(e) => format!("what-if unavailable: {}", e.message),
        };
        Ok(Planned {
            effect: format!(
                "deploy `{name}` to group `{}` in {} mode{rollback}; {what_if}",
                args.group,
                props["mode"].as_str().unwrap_or_default()
            ),
            output: json!({ "name": name, "state": "Planned", "error": null, "rolled_back_to": null, "planned": true }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_error_matches_the_official_examples() {
        let path = format!(
            "{}/tests/fixtures/azure-rest-examples/resources/PutDeploymentWithOnErrorDeploymentLastSuccessful.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let example: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(
            on_error_deployment("last-successful"),
            example["parameters"]["parameters"]["properties"]["onErrorDeployment"]
        );
        assert_eq!(
            on_error_deployment("infra-41"),
            json!({"type": "SpecificDeployment", "deploymentName": "infra-41"})
        );
    }

    #[test]
    fn properties_wrap_plain_parameters_and_check_the_template() {
        let args: DeployArgs = serde_json::from_value(json!({
            "group": "rg", "template": {"resources": []}, "parameters": {"sku": "S1"}, "mode": "complete", "on_error": "last-successful"
        }))
        .unwrap();
        let p = properties(&args).unwrap();
        assert_eq!(p["mode"], "Complete");
        assert_eq!(p["parameters"], json!({"sku": {"value": "S1"}}));
        assert_eq!(p["onErrorDeployment"], json!({"type": "LastSuccessful"}));
        let bad: DeployArgs = serde_json::from_value(json!({"group": "rg", "template": "x"})).unwrap();
        assert!(properties(&bad).is_err());
    }
}
