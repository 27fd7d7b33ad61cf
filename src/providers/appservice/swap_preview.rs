//! `appservice::swap_preview`: phase 1 of a swap with preview: the target's slot settings are
//! applied to the source slot, which restarts; nothing swaps yet (`applySlotConfig`).
//!
//! Idempotent: applying the same pair's configuration again changes nothing more, so the
//! request is retried like a read on 429, 5xx and broken connections.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Site, is_production, production};
use crate::azure::{ArmRequest, Idempotency};
use crate::model::PrimitiveError;
use crate::providers::cloud::fail;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `appservice::swap_preview`.
pub struct SwapPreview;

/// Keys of `appservice::swap_preview`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapPreviewArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Site.
    pub site: String,
    /// The slot that would be swapped in (the source).
    pub slot: String,
    /// The slot it would swap with ("production").
    #[serde(default = "production")]
    pub target: String,
}

/// Result of `appservice::swap_preview`.
#[derive(Debug, Clone, Serialize)]
pub struct SwapPreviewOutput {
    /// Site.
    pub site: String,
    /// Source slot.
    pub slot: String,
    /// Target slot.
    pub target: String,
}

fn check(args: &SwapPreviewArgs) -> Result<(), PrimitiveError> {
    if args.slot.eq_ignore_ascii_case(&args.target) || is_production(&args.slot) {
        return Err(PrimitiveError::invalid(format!(
            "swap preview on site `{}` needs two different slots, `slot` not production (got `{}` and `{}`)",
            args.site, args.slot, args.target
        )));
    }
    Ok(())
}

impl Primitive for SwapPreview {
    type Args = SwapPreviewArgs;
    type Output = SwapPreviewOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "appservice",
            name: "swap_preview",
            doc: "Phase 1 of a swap with preview: applies the target slot's settings to the source slot (which restarts) without swapping; finish with swap_complete or swap_cancel.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `site`, `slot`, `target` (\"production\")",
            returns: "`#{ site, slot, target }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &SwapPreviewArgs) -> Option<String> {
        Some(super::key(&args.group, &args.site))
    }

    async fn call(&self, cx: &CallCx, args: SwapPreviewArgs) -> Result<SwapPreviewOutput, PrimitiveError> {
        check(&args)?;
        let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
        // azure-cli: production target → site-level applySlotConfig with targetSlot = source.
        let (url, target_slot) = if is_production(&args.target) {
            (site.url("/applySlotConfig"), args.slot.clone())
        } else {
            (site.slot_url(&args.slot, "/applySlotConfig"), args.target.clone())
        };
        let req = ArmRequest {
            method: Method::POST,
            url,
            body: Some(json!({ "targetSlot": target_slot, "preserveVnet": true })),
            what: format!("swap preview of slot `{}` with `{}` on {}", args.slot, args.target, site.what()),
            idempotency: Idempotency::Safe,
        };
        site.client.send(cx, &req).await.map_err(fail(&site.key()))?;
        Ok(SwapPreviewOutput { site: args.site, slot: args.slot, target: args.target })
    }

    async fn plan(&self, cx: &CallCx, args: &SwapPreviewArgs) -> Result<Planned, PrimitiveError> {
        check(args)?;
        let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
        let source = site.build(cx, &args.slot).await?.unwrap_or_else(|| "an unknown build".into());
        let target = site.build(cx, &args.target).await?.unwrap_or_else(|| "an unknown build".into());
        Ok(Planned {
            effect: format!(
                "start a swap with preview of slot `{}` (runs {source}) with `{}` (runs {target}) on {}: `{}`'s settings would be applied to `{}`, which restarts; nothing swaps yet",
                args.slot,
                args.target,
                site.what(),
                args.target,
                args.slot
            ),
            output: json!({ "site": args.site, "slot": args.slot, "target": args.target, "planned": true }),
        })
    }

    /// Idempotent: sending it again after an interruption is harmless, so resume may resend it.
    async fn verify(
        &self,
        _cx: &CallCx,
        _args: &SwapPreviewArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        Ok(Verified::NotApplied)
    }
}
