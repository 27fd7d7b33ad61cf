//! `appservice::swap`: swaps a slot into production (or into another slot) and waits.
//!
//! **Idempotency.** A swap is its own inverse, so applying it twice undoes it. The swap
//! request is therefore never re-sent blindly: before the first try the site's
//! `slotSwapStatus` (the last completed swap) is read; when a try ends without a clear answer
//! (dropped connection, timeout, 5xx, 429, or 409 because an operation is in flight), the
//! status is read again. If it now shows a swap of the same two slots completed after the
//! first read, the swap happened and is not sent again. Otherwise the request is re-sent:
//! if the earlier try is still in flight, App Service refuses the new one with 409 and the
//! loop keeps looking until the status changes or `timeout` runs out (then a `conflict`
//! error says the site stayed busy), so a swap is applied at most once. Calling `swap` twice on purpose swaps twice (that is the undo of a swap stage).
//! A concurrent swap of the same two slots by someone else counts as this one.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Site, SwapStatus, is_production, production};
use crate::azure::{ArmRequest, AzureError, Idempotency};
use crate::model::{Dur, PrimitiveError};
use crate::providers::cloud::Budget;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `appservice::swap`.
pub struct Swap;

fn yes() -> bool {
    true
}
fn fifteen_minutes() -> Dur {
    Dur::secs(15 * 60)
}

/// Keys of `appservice::swap` and `appservice::swap_complete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Site.
    pub site: String,
    /// The slot to swap (the source).
    pub slot: String,
    /// The slot it swaps with ("production").
    #[serde(default = "production")]
    pub target: String,
    /// Keep virtual-network integration where it is (true).
    #[serde(default = "yes")]
    pub preserve_vnet: bool,
    /// How long to wait for the swap to finish ("15m").
    #[serde(default = "fifteen_minutes")]
    pub timeout: Dur,
}

/// Result of a swap.
#[derive(Debug, Clone, Serialize)]
pub struct SwapOutput {
    /// Site.
    pub site: String,
    /// The source slot.
    pub slot: String,
    /// The target slot.
    pub target: String,
    /// Whether the two slots swapped (false only in a dry-run plan).
    pub swapped: bool,
}

/// Most tries whose failure was not "something is in flight".
const MAX_TRIES: u32 = 5;

pub(super) fn check(args: &SwapArgs) -> Result<(), PrimitiveError> {
    if args.slot.eq_ignore_ascii_case(&args.target) {
        return Err(PrimitiveError::invalid(format!(
            "cannot swap slot `{}` of site `{}` with itself: `slot` and `target` must differ",
            args.slot, args.site
        )));
    }
    if is_production(&args.slot) {
        return Err(PrimitiveError::invalid(format!(
            "`slot` names the slot to swap into `{}`; it cannot be `production` (site `{}`): name the other slot",
            args.target, args.site
        )));
    }
    Ok(())
}

/// The swap request, as azure-cli sends it.
fn request(site: &Site, args: &SwapArgs) -> ArmRequest {
    let (url, target_slot) = if is_production(&args.target) {
        (site.url("/slotsswap"), args.slot.clone())
    } else {
        (site.slot_url(&args.slot, "/slotsswap"), args.target.clone())
    };
    ArmRequest {
        method: Method::POST,
        url,
        body: Some(json!({ "targetSlot": target_slot, "preserveVnet": args.preserve_vnet })),
        what: format!("swap of slot `{}` with `{}` on {}", args.slot, args.target, site.what()),
        idempotency: Idempotency::Once,
    }
}

/// Performs a swap at most once (see the module docs); shared by `swap` and `swap_complete`.
pub(super) async fn perform(cx: &CallCx, args: SwapArgs) -> Result<SwapOutput, PrimitiveError> {
    check(&args)?;
    let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
    let key = site.key();
    let budget = Budget::new(cx, args.timeout.get());
    let before = SwapStatus::of(&site.read(&budget).await?);
    let req = request(&site, &args);
    let done = || SwapOutput {
        site: args.site.clone(),
        slot: args.slot.clone(),
        target: args.target.clone(),
        swapped: true,
    };
    let mut tries = 0u32;
    let mut looks = 0u32;
    loop {
        tries += 1;
        let e = match site.client.send(&budget, &req).await {
            Ok(first) => {
                let remaining = budget.remaining();
                match site.client.wait(&budget, &first, &req.what, remaining).await {
                    Ok(_) => return Ok(done()),
                    Err(AzureError::Timeout { what, .. }) => {
                        return Err(PrimitiveError::from(AzureError::Timeout {
                            what: format!("{what} (it may still complete: check appservice::last_swap before swapping again)"),
                            after: budget.limit(),
                        })
                        .with_target(key));
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        if !e.is_ambiguous() {
            return Err(PrimitiveError::from(e).with_target(key));
        }
        // The outcome is unknown: look before trying again.
        looks += 1;
        tracing::info!(site = %args.site, slot = %args.slot, target = %args.target, error = %e, "swap outcome unknown; reading slotSwapStatus");
        let now = SwapStatus::of(&site.read(&budget).await?);
        if now
            .as_ref()
            .is_some_and(|s| s.is_pair(&args.slot, &args.target) && s.is_newer_than(before.as_ref()))
        {
            return Ok(done());
        }
        let in_flight = e.status() == Some(409);
        if !in_flight && tries >= MAX_TRIES {
            return Err(PrimitiveError::from(e.about(format!(
                "{} (gave up after {tries} tries; slotSwapStatus shows no completed swap: check appservice::last_swap before swapping again)",
                req.what
            )))
            .with_target(key));
        }
        let wait = site
            .client
            .policy()
            .backoff(looks)
            .min(site.client.policy().max_backoff)
            .max(e.retry_after().unwrap_or(Duration::from_secs(1)));
        if budget.spent() + wait > budget.limit() && in_flight {
            // Refused all along: another operation or a pending preview of another pair holds the site.
            return Err(PrimitiveError::from(e.about(format!(
                "{} (still refused after waiting {}; another operation or a swap preview of other slots holds the site)",
                req.what,
                crate::model::format_duration(budget.limit())
            )))
            .with_target(key));
        }
        if budget.spent() + wait > budget.limit() {
            return Err(PrimitiveError::from(AzureError::Timeout {
                what: format!(
                    "{} (last answer: {e}; check appservice::last_swap before swapping again)",
                    req.what
                ),
                after: budget.limit(),
            })
            .with_target(key));
        }
        budget_pause(&budget, wait).await?;
        if in_flight {
            // An operation is in flight: only re-send once the status has had a chance to move.
            tries = tries.saturating_sub(1);
        }
    }
}

async fn budget_pause(budget: &Budget<'_>, d: Duration) -> Result<(), PrimitiveError> {
    use crate::azure::Pause;
    budget.pause(d).await.map_err(PrimitiveError::from)
}

/// Whether a swap sent at `sent` by an interrupted run took effect: `slotSwapStatus` shows a
/// swap of the same two slots completed since then (applied). While none shows, one sent then
/// may still be running (ARM accepted it but the run died before the answer), and re-sending
/// it could swap twice; so the check keeps looking until `timeout` has passed since `sent`, by
/// when such a swap would have finished, and only then says it was not applied.
pub(super) async fn verify(
    cx: &CallCx,
    args: &SwapArgs,
    sent: chrono::DateTime<chrono::Utc>,
) -> Result<Verified, PrimitiveError> {
    check(args)?;
    let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
    let settled = chrono::TimeDelta::from_std(args.timeout.get()).unwrap_or(chrono::TimeDelta::MAX);
    let left = (sent + settled - chrono::Utc::now()).to_std().unwrap_or_default();
    // About 60 looks over what is left (at least 1 s apart), timed on the run's clock.
    let every = (left / 60).max(Duration::from_secs(1));
    let mut waited = Duration::ZERO;
    let deadline = (sent + settled).format("%H:%M:%S UTC");
    loop {
        let status = SwapStatus::of(&site.read(cx).await?);
        // The operator sees what each look finds and until when the check goes on.
        let seen = match &status {
            Some(s) => {
                format!("the last swap on record is `{}` → `{}` at {}", s.source, s.destination, s.time)
            }
            None => "no swap on record".to_string(),
        };
        cx.progress.waiting(&format!(
            "checking whether the swap of `{}` and `{}` on `{}` sent at {} took effect: {seen}; deciding by {deadline}",
            args.slot,
            args.target,
            args.site,
            sent.format("%H:%M:%S UTC")
        ));
        if status.as_ref().is_some_and(|s| s.is_pair(&args.slot, &args.target) && s.completed_since(sent)) {
            return Ok(Verified::Applied(
                json!({ "site": args.site, "slot": args.slot, "target": args.target, "swapped": true }),
            ));
        }
        if waited >= left {
            return Ok(Verified::NotApplied);
        }
        let step = every.min(left - waited);
        tracing::info!(site = %args.site, "no completed swap since the interruption yet; looking again in {step:?}");
        cx.sleep(step).await?;
        waited += step;
    }
}

/// The plan of a swap: which build each slot runs now and what production would run.
pub(super) async fn plan(cx: &CallCx, args: &SwapArgs, verb: &str) -> Result<Planned, PrimitiveError> {
    check(args)?;
    let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
    let source = site.build(cx, &args.slot).await?;
    let target = site.build(cx, &args.target).await?;
    let show = |b: &Option<String>| b.clone().unwrap_or_else(|| "an unknown build".into());
    let effect = format!(
        "{verb} slot `{}` (runs {}) with `{}` (runs {}) on {}: `{}` would run {} and `{}` would run {}",
        args.slot,
        show(&source),
        args.target,
        show(&target),
        site.what(),
        args.target,
        show(&source),
        args.slot,
        show(&target),
    );
    Ok(Planned {
        effect,
        output: json!({ "site": args.site, "slot": args.slot, "target": args.target, "swapped": false, "planned": true }),
    })
}

impl Primitive for Swap {
    type Args = SwapArgs;
    type Output = SwapOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "appservice",
            name: "swap",
            doc: "Swaps a slot into production (or into another slot) and waits; never applies a swap twice by accident: an ambiguous failure is checked against slotSwapStatus before any retry.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `site`, `slot`, `target` (\"production\"), `preserve_vnet` (true), `timeout` (\"15m\")",
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
        plan(cx, args, "swap").await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::appservice::PRODUCTION;

    fn args(slot: &str, target: &str) -> SwapArgs {
        serde_json::from_value(json!({"group": "rg", "site": "web", "slot": slot, "target": target})).unwrap()
    }

    #[test]
    fn defaults_and_checks() {
        let a: SwapArgs =
            serde_json::from_value(json!({"group": "rg", "site": "web", "slot": "staging"})).unwrap();
        assert_eq!(a.target, PRODUCTION);
        assert!(a.preserve_vnet);
        assert_eq!(a.timeout.get(), Duration::from_secs(900));
        assert!(check(&a).is_ok());
        assert!(check(&args("staging", "Staging")).unwrap_err().message.contains("itself"));
        assert!(
            check(&args("production", "staging")).unwrap_err().message.contains("cannot be `production`")
        );
        assert!(check(&args("qa", "staging")).is_ok());
    }
}
