//! `logicapp::enable`: enables a workflow; `changed: false` when it already was.

use serde::{Deserialize, Serialize};

use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `logicapp::enable`.
pub struct Enable;

/// Keys of `logicapp::enable` and `logicapp::disable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToggleArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Workflow.
    pub workflow: String,
}

/// Result of `logicapp::enable` / `logicapp::disable`.
#[derive(Debug, Clone, Serialize)]
pub struct ToggleOutput {
    /// Whether the state had to change.
    pub changed: bool,
}

impl Primitive for Enable {
    type Args = ToggleArgs;
    type Output = ToggleOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "logicapp",
            name: "enable",
            doc: "Enables a workflow; `changed` is false when it already was enabled.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `workflow`",
            returns: "`#{ changed }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &ToggleArgs) -> Option<String> {
        Some(super::key(&args.group, &args.workflow))
    }

    async fn call(&self, cx: &CallCx, args: ToggleArgs) -> Result<ToggleOutput, PrimitiveError> {
        super::toggle(cx, &args, true).await
    }

    async fn plan(&self, cx: &CallCx, args: &ToggleArgs) -> Result<Planned, PrimitiveError> {
        super::plan_toggle(cx, args, true).await
    }

    async fn verify(
        &self,
        cx: &CallCx,
        args: &ToggleArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        super::verify_toggle(cx, args, true).await
    }
}
