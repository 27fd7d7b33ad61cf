//! `logicapp::disable`: disables a workflow; `changed: false` when it already was.

use super::enable::{ToggleArgs, ToggleOutput};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `logicapp::disable`.
pub struct Disable;

impl Primitive for Disable {
    type Args = ToggleArgs;
    type Output = ToggleOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "logicapp",
            name: "disable",
            doc: "Disables a workflow (no new runs start); `changed` is false when it already was disabled.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `workflow`",
            returns: "`#{ changed }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &ToggleArgs) -> Option<String> {
        Some(super::key(&args.group, &args.workflow))
    }

    async fn call(&self, cx: &CallCx, args: ToggleArgs) -> Result<ToggleOutput, PrimitiveError> {
        super::toggle(cx, &args, false).await
    }

    async fn plan(&self, cx: &CallCx, args: &ToggleArgs) -> Result<Planned, PrimitiveError> {
        super::plan_toggle(cx, args, false).await
    }

    async fn verify(
        &self,
        cx: &CallCx,
        args: &ToggleArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        super::verify_toggle(cx, args, false).await
    }
}
