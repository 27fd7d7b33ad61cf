//! App Service deployment slots (Microsoft.Web): list slots, swap (into production or between
//! slots), swap with preview (start, complete, cancel) and the last swap, over the ARM client.
//!
//! Calls are mapped as azure-cli maps `az webapp deployment slot swap`: a swap into production
//! is `POST sites/{site}/slotsswap {targetSlot: <slot>}`, a slot-to-slot swap is
//! `POST sites/{site}/slots/{slot}/slotsswap {targetSlot: <target>}`; preview is
//! `applySlotConfig`, cancel is `resetSlotConfig`.

mod last_swap;
mod slots;
mod swap;
mod swap_cancel;
mod swap_complete;
mod swap_preview;

pub use last_swap::{LastSwap, LastSwapArgs, LastSwapOutput};
pub use slots::{SlotInfo, Slots, SlotsArgs};
pub use swap::{Swap, SwapArgs, SwapOutput};
pub use swap_cancel::{SwapCancel, SwapCancelArgs, SwapCancelOutput};
pub use swap_complete::SwapComplete;
pub use swap_preview::{SwapPreview, SwapPreviewArgs, SwapPreviewOutput};

use std::sync::Arc;

use serde_json::Value;

use super::cloud::{client, fail, group_path, require};
use super::{CallCx, DynPrimitive, erase};
use crate::azure::{ArmClient, Pause, api_versions, encode};
use crate::model::PrimitiveError;

/// The appservice primitives, alphabetical.
pub fn register() -> Vec<Arc<dyn DynPrimitive>> {
    vec![
        erase(LastSwap),     // the last completed swap of a site, from slotSwapStatus
        erase(Slots),        // the site's non-production slots
        erase(Swap),         // swap a slot into production (or another slot) and wait
        erase(SwapCancel),   // cancel a swap with preview (resetSlotConfig)
        erase(SwapComplete), // phase 2 of a swap with preview: the swap itself
        erase(SwapPreview),  // phase 1 of a swap with preview (applySlotConfig)
    ]
}

/// The name of the production slot.
pub const PRODUCTION: &str = "production";

fn production() -> String {
    PRODUCTION.to_string()
}

/// A site resolved to its subscription, with its ARM path and the words messages use.
pub(crate) struct Site {
    /// The run's ARM client.
    pub client: Arc<ArmClient>,
    /// `sites/{site}` path.
    pub path: String,
    /// Group.
    pub group: String,
    /// Site name.
    pub name: String,
}

impl Site {
    /// Resolves the site of a call (subscription defaulted from the settings).
    pub(crate) fn resolve(
        cx: &CallCx,
        subscription: Option<&str>,
        group: &str,
        site: &str,
    ) -> Result<Site, PrimitiveError> {
        require("group", group)?;
        require("site", site)?;
        let client = client(cx)?;
        let sub = client.subscription(subscription).map_err(PrimitiveError::from)?;
        Ok(Site {
            path: format!("{}/providers/Microsoft.Web/sites/{}", group_path(&sub, group), encode(site)),
            client,
            group: group.to_string(),
            name: site.to_string(),
        })
    }

    /// `appservice/<group>/<site>`.
    pub(crate) fn key(&self) -> String {
        key(&self.group, &self.name)
    }

    /// "site `shop-web` in group `rg-shop`".
    pub(crate) fn what(&self) -> String {
        format!("site `{}` in group `{}`", self.name, self.group)
    }

    /// "slot `staging` of site `shop-web` in group `rg-shop`".
    pub(crate) fn slot_what(&self, slot: &str) -> String {
        format!("slot `{slot}` of {}", self.what())
    }

    /// The URL of `suffix` under the site (`""`, `/slots`, `/slotsswap`…).
    pub(crate) fn url(&self, suffix: &str) -> String {
        self.client.url(&format!("{}{suffix}", self.path), api_versions::WEB)
    }

    /// The URL of `suffix` under a slot, or under the site for `production`.
    pub(crate) fn slot_url(&self, slot: &str, suffix: &str) -> String {
        if is_production(slot) {
            self.url(suffix)
        } else {
            self.url(&format!("/slots/{}{suffix}", encode(slot)))
        }
    }

    /// The site resource (production).
    pub(crate) async fn read(&self, pause: &dyn Pause) -> Result<Value, PrimitiveError> {
        let what = self.what();
        self.client.get(pause, self.url(""), &what).await.map_err(fail(&self.key()))
    }

    /// The build a slot runs (`production` is the site), for plans and checks.
    pub(crate) async fn build(
        &self,
        pause: &dyn Pause,
        slot: &str,
    ) -> Result<Option<String>, PrimitiveError> {
        let what = if is_production(slot) { self.what() } else { self.slot_what(slot) };
        let resource =
            self.client.get(pause, self.slot_url(slot, ""), &what).await.map_err(fail(&self.key()))?;
        Ok(build_of(&resource))
    }
}

/// `appservice/<group>/<site>`.
pub fn key(group: &str, site: &str) -> String {
    format!("appservice/{group}/{site}")
}

/// Whether a slot name means production.
pub fn is_production(slot: &str) -> bool {
    slot.eq_ignore_ascii_case(PRODUCTION)
}

/// What a slot runs: the container image of `linuxFxVersion` / `windowsFxVersion`
/// (`DOCKER|shop-web:1.4.0` → `shop-web:1.4.0`), else the runtime stack.
pub fn build_of(resource: &Value) -> Option<String> {
    let config = resource.get("properties")?.get("siteConfig")?;
    ["linuxFxVersion", "windowsFxVersion"]
        .iter()
        .filter_map(|k| config.get(*k).and_then(Value::as_str))
        .find(|v| !v.is_empty())
        .map(|v| v.split_once('|').map(|(_, b)| b).unwrap_or(v).to_string())
}

/// `properties.slotSwapStatus` of a site: the last completed swap.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapStatus {
    /// `timestampUtc`.
    pub time: String,
    /// `sourceSlotName`.
    pub source: String,
    /// `destinationSlotName`.
    pub destination: String,
}

impl SwapStatus {
    /// Reads it from a site resource.
    pub fn of(resource: &Value) -> Option<SwapStatus> {
        let s = resource.get("properties")?.get("slotSwapStatus")?;
        let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
        Some(SwapStatus {
            time: text("timestampUtc")?,
            source: text("sourceSlotName").unwrap_or_default(),
            destination: text("destinationSlotName").unwrap_or_default(),
        })
    }

    /// Whether this swap exchanged `a` and `b` (either way round).
    pub fn is_pair(&self, a: &str, b: &str) -> bool {
        let eq = |x: &str, y: &str| x.eq_ignore_ascii_case(y);
        (eq(&self.source, a) && eq(&self.destination, b)) || (eq(&self.source, b) && eq(&self.destination, a))
    }

    /// Whether this swap completed at or after `sent` (less five seconds for clock skew).
    pub fn completed_since(&self, sent: chrono::DateTime<chrono::Utc>) -> bool {
        chrono::DateTime::parse_from_rfc3339(&self.time)
            .is_ok_and(|t| t.with_timezone(&chrono::Utc) >= sent - chrono::TimeDelta::seconds(5))
    }

    /// Whether this swap completed after `before` (the status read before we acted).
    pub fn is_newer_than(&self, before: Option<&SwapStatus>) -> bool {
        let Some(b) = before else { return true };
        match (
            chrono::DateTime::parse_from_rfc3339(&self.time),
            chrono::DateTime::parse_from_rfc3339(&b.time),
        ) {
            (Ok(now), Ok(then)) => now > then,
            _ => self.time != b.time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_come_from_fx_version() {
        let r = json!({"properties": {"siteConfig": {"linuxFxVersion": "DOCKER|web:1.4.0"}}});
        assert_eq!(build_of(&r).as_deref(), Some("web:1.4.0"));
        let w =
            json!({"properties": {"siteConfig": {"linuxFxVersion": "", "windowsFxVersion": "DOTNET|8.0"}}});
        assert_eq!(build_of(&w).as_deref(), Some("8.0"));
        assert_eq!(build_of(&json!({})), None);
    }

    #[test]
    fn swap_status_pairs_and_times() {
        let r = json!({"properties": {"slotSwapStatus": {"timestampUtc": "2026-11-27T10:00:00.0000000Z", "sourceSlotName": "staging", "destinationSlotName": "production"}}});
        let s = SwapStatus::of(&r).unwrap();
        assert!(s.is_pair("Production", "STAGING"));
        assert!(!s.is_pair("qa", "production"));
        assert!(s.is_newer_than(None));
        let older = SwapStatus { time: "2026-11-27T09:00:00Z".into(), ..s.clone() };
        assert!(s.is_newer_than(Some(&older)));
        assert!(!s.is_newer_than(Some(&s)));
        assert_eq!(SwapStatus::of(&json!({"properties": {}})), None);
    }
}
