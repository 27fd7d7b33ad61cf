//! `arm::last_successful`: the newest `Succeeded` deployment of a group, optionally only
//! among those older than a named one.

use serde::{Deserialize, Serialize};

use super::{DeploymentInfo, Group, last_successful};
use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::{Access, CallCx, Meta, Primitive};

/// `arm::last_successful`.
pub struct LastSuccessful;

/// Keys of `arm::last_successful`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastSuccessfulArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Only deployments older than this one count.
    #[serde(default)]
    pub before: Option<String>,
}

impl Primitive for LastSuccessful {
    type Args = LastSuccessfulArgs;
    type Output = Option<DeploymentInfo>;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "arm",
            name: "last_successful",
            doc: "The newest Succeeded deployment of a group (only those older than `before`, when given), or ().",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `before` (a deployment name)",
            returns: "`#{ name, state, timestamp, mode }` or `()`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &LastSuccessfulArgs) -> Option<String> {
        Some(crate::model::ResourceKey::arm(&args.group).to_string())
    }

    async fn call(
        &self,
        cx: &CallCx,
        args: LastSuccessfulArgs,
    ) -> Result<Option<DeploymentInfo>, PrimitiveError> {
        let group = Group::resolve(cx, args.subscription.as_deref(), &args.group)?;
        let history = group.history(cx).await?;
        let before = match &args.before {
            None => None,
            Some(name) => Some(
                history.iter().find(|d| d.name.eq_ignore_ascii_case(name)).cloned().ok_or_else(|| {
                    PrimitiveError::new(
                        ErrorKind::NotFound,
                        format!("{} not found (named in `before`)", group.what(name)),
                    )
                    .with_target(group.key())
                })?,
            ),
        };
        Ok(last_successful(&history, before.as_ref()))
    }
}
