//! `appservice::swap_complete`: phase 2 of a swap with preview, the swap itself (azure-cli's
//! `--action swap` after `--action preview`). Same keys, result and idempotency as `swap`.

use super::swap::{SwapArgs, SwapOutput, perform, plan, verify};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `appservice::swap_complete`.
pub struct SwapComplete;

impl Primitive for SwapComplete {
    type Args = SwapArgs;
    type Output = SwapOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "appservice",
            name: "swap_complete",
            doc: "Completes a swap with preview started by swap_preview: performs the swap and waits, with the same at-most-once guarantee as swap.",
            keys_doc: "as `appservice::swap`: `subscription`, `group`, `site`, `slot`, `target` (\"production\"), `preserve_vnet` (true), `timeout` (\"15m\")",
            returns: "`#{ site, slot, target, swapped }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &SwapArgs) -> Option<String> {
        Some(super::key(&args.group, &args.site))
    }

    async fn call(&self, cx: &CallCx, args: SwapArgs) -> Result<SwapOutput, PrimitiveError> {
        perform(cx, args).await
    }

    async fn plan(&self, cx: &CallCx, args: &SwapArgs) -> Result<Planned, PrimitiveError> {
        plan(cx, args, "complete the swap with preview of").await
    }

    async fn verify(
        &self,
        cx: &CallCx,
        args: &SwapArgs,
        sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        verify(cx, args, sent).await
    }
}
