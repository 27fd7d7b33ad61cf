//! `appservice::slots`: the site's non-production slots, every page.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Site;
use crate::model::PrimitiveError;
use crate::providers::cloud::fail;
use crate::providers::{Access, CallCx, Meta, Primitive};

/// `appservice::slots`.
pub struct Slots;

/// Keys of `appservice::slots`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotsArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Site.
    pub site: String,
}

/// One slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotInfo {
    /// Slot name (`staging`), without the site prefix ARM gives it.
    pub name: String,
    /// `Running`, `Stopped`…
    pub state: Option<String>,
    /// Default host name.
    pub host_name: Option<String>,
}

impl Primitive for Slots {
    type Args = SlotsArgs;
    type Output = Vec<SlotInfo>;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "appservice",
            name: "slots",
            doc: "Lists a site's deployment slots (production excluded, as ARM lists them), following every page.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `site`",
            returns: "array of `#{ name, state, host_name }`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &SlotsArgs) -> Option<String> {
        Some(super::key(&args.group, &args.site))
    }

    async fn call(&self, cx: &CallCx, args: SlotsArgs) -> Result<Vec<SlotInfo>, PrimitiveError> {
        let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
        let what = format!("slots of {}", site.what());
        let items = site.client.list(cx, site.url("/slots"), &what).await.map_err(fail(&site.key()))?;
        Ok(items.iter().map(slot_info).collect())
    }
}

/// A slot item of the list (`name` is `site/slot`; azure-cli keeps the part after the last `/`).
fn slot_info(item: &Value) -> SlotInfo {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let full = text(item.get("name")).unwrap_or_default();
    let props = item.get("properties");
    SlotInfo {
        name: full.rsplit('/').next().unwrap_or_default().to_string(),
        state: text(props.and_then(|p| p.get("state"))),
        host_name: text(props.and_then(|p| p.get("defaultHostName"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_list_example_parses() {
        let path = format!(
            "{}/tests/fixtures/azure-rest-examples/web/ListWebAppSlots.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let example: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let items = example["responses"]["200"]["body"]["value"].as_array().unwrap();
        let slots: Vec<SlotInfo> = items.iter().map(slot_info).collect();
        assert!(!slots.is_empty());
        assert!(slots.iter().all(|s| !s.name.is_empty() && !s.name.contains('/')), "{slots:?}");
        assert!(slots.iter().all(|s| s.host_name.is_some()), "{slots:?}");
    }

    #[test]
    fn slot_names_lose_the_site_prefix() {
        let s = slot_info(
            &serde_json::json!({"name": "web/staging", "properties": {"state": "Running", "defaultHostName": "web-staging.azurewebsites.net"}}),
        );
        assert_eq!(s.name, "staging");
        assert_eq!(s.state.as_deref(), Some("Running"));
        assert_eq!(s.host_name.as_deref(), Some("web-staging.azurewebsites.net"));
    }
}
