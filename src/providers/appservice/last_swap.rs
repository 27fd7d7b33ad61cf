//! `appservice::last_swap`: the last completed swap of a site, from `properties.slotSwapStatus`.

use serde::{Deserialize, Serialize};

use super::{Site, SwapStatus};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Primitive};

/// `appservice::last_swap`.
pub struct LastSwap;

/// Keys of `appservice::last_swap`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastSwapArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Site.
    pub site: String,
}

/// The last swap.
#[derive(Debug, Clone, Serialize)]
pub struct LastSwapOutput {
    /// When it completed (UTC, as ARM writes it).
    pub time: String,
    /// The slot swapped from.
    pub source: String,
    /// The slot swapped into.
    pub destination: String,
}

impl Primitive for LastSwap {
    type Args = LastSwapArgs;
    type Output = Option<LastSwapOutput>;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "appservice",
            name: "last_swap",
            doc: "The last completed slot swap of a site (ARM's slotSwapStatus), or () when it never swapped.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `site`",
            returns: "`#{ time, source, destination }` or `()`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &LastSwapArgs) -> Option<String> {
        Some(super::key(&args.group, &args.site))
    }

    async fn call(&self, cx: &CallCx, args: LastSwapArgs) -> Result<Option<LastSwapOutput>, PrimitiveError> {
        let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
        let resource = site.read(cx).await?;
        Ok(SwapStatus::of(&resource).map(|s| LastSwapOutput {
            time: s.time,
            source: s.source,
            destination: s.destination,
        }))
    }
}
