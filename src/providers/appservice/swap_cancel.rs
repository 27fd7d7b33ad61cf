//! `appservice::swap_cancel`: cancels a swap with preview (`resetSlotConfig`), restoring the
//! source slot's own settings. Idempotent: resetting when nothing is pending changes nothing.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Site, is_production, production};
use crate::azure::{ArmRequest, Idempotency};
use crate::model::PrimitiveError;
use crate::providers::cloud::fail;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `appservice::swap_cancel`.
pub struct SwapCancel;

/// Keys of `appservice::swap_cancel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapCancelArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Site.
    pub site: String,
    /// The target slot of the pending preview ("production").
    #[serde(default = "production")]
    pub target: String,
}

/// Result of `appservice::swap_cancel`.
#[derive(Debug, Clone, Serialize)]
pub struct SwapCancelOutput {
    /// Site.
    pub site: String,
    /// Target slot.
    pub target: String,
}

impl Primitive for SwapCancel {
    type Args = SwapCancelArgs;
    type Output = SwapCancelOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "appservice",
            name: "swap_cancel",
            doc: "Cancels a swap with preview (resetSlotConfig): the source slot gets its own settings back; a no-op when nothing is pending.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `site`, `target` (\"production\")",
            returns: "`#{ site, target }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &SwapCancelArgs) -> Option<String> {
        Some(super::key(&args.group, &args.site))
    }

    async fn call(&self, cx: &CallCx, args: SwapCancelArgs) -> Result<SwapCancelOutput, PrimitiveError> {
        let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
        let url = if is_production(&args.target) {
            site.url("/resetSlotConfig")
        } else {
            site.slot_url(&args.target, "/resetSlotConfig")
        };
        let req = ArmRequest {
            method: Method::POST,
            url,
            body: None,
            what: format!("cancel of the swap preview into `{}` on {}", args.target, site.what()),
            idempotency: Idempotency::Safe,
        };
        site.client.send(cx, &req).await.map_err(fail(&site.key()))?;
        Ok(SwapCancelOutput { site: args.site, target: args.target })
    }

    async fn plan(&self, cx: &CallCx, args: &SwapCancelArgs) -> Result<Planned, PrimitiveError> {
        let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
        // Reading the target proves it exists, as the real call would.
        site.build(cx, &args.target).await?;
        Ok(Planned {
            effect: format!(
                "cancel any swap with preview into `{}` on {}: the source slot would get its own settings back",
                args.target,
                site.what()
            ),
            output: json!({ "site": args.site, "target": args.target, "planned": true }),
        })
    }

    /// Idempotent: sending it again after an interruption is harmless, so resume may resend it.
    async fn verify(
        &self,
        _cx: &CallCx,
        _args: &SwapCancelArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        Ok(Verified::NotApplied)
    }
}
