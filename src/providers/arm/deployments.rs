//! `arm::deployments`: a resource group's deployment history, every page, newest first.

use serde::{Deserialize, Serialize};

use super::{DeploymentInfo, Group};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Primitive};

/// `arm::deployments`.
pub struct Deployments;

/// Keys of `arm::deployments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
}

impl Primitive for Deployments {
    type Args = DeploymentsArgs;
    type Output = Vec<DeploymentInfo>;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "arm",
            name: "deployments",
            doc: "A resource group's template deployments, newest first, following every page.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`",
            returns: "array, newest first: `#{ name, state, timestamp, mode }`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &DeploymentsArgs) -> Option<String> {
        Some(crate::model::ResourceKey::arm(&args.group).to_string())
    }

    async fn call(&self, cx: &CallCx, args: DeploymentsArgs) -> Result<Vec<DeploymentInfo>, PrimitiveError> {
        Group::resolve(cx, args.subscription.as_deref(), &args.group)?.history(cx).await
    }
}
