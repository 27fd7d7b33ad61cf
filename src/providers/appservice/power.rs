//! `appservice::restart`, `appservice::stop`, `appservice::start`: the power actions an
//! operator reaches for first, on the site (production) or one of its slots.
//!
//! **Idempotency.** Stop and start read the slot's `properties.state` first and do nothing when
//! it already is what is asked (`changed: false`); the action itself is safe to repeat. A
//! restart always restarts (`changed: true`); on resume it counts as applied when the slot's
//! `lastModifiedTimeUtc` moved at or after the call was sent, else it is sent again (a second
//! restart is harmless). A stopped production slot makes the site unhealthy.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Site, is_production, production};
use crate::azure::{ArmRequest, Idempotency, Pause};
use crate::model::PrimitiveError;
use crate::providers::azure::fail;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Verified};

/// `appservice::restart`.
pub struct Restart;
/// `appservice::stop`.
pub struct Stop;
/// `appservice::start`.
pub struct Start;

/// Keys of `appservice::restart`, `appservice::stop` and `appservice::start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerArgs {
    /// Subscription (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Site.
    pub site: String,
    /// Slot ("production": the site itself).
    #[serde(default = "production")]
    pub slot: String,
}

/// Result of a power action.
#[derive(Debug, Clone, Serialize)]
pub struct PowerOutput {
    /// Whether anything had to change.
    pub changed: bool,
}

/// The three actions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Restart,
    Stop,
    Start,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Start => "start",
        }
    }

    /// The state the slot is in afterwards (none for a restart).
    fn wanted(self) -> Option<&'static str> {
        match self {
            Action::Restart => None,
            Action::Stop => Some("Stopped"),
            Action::Start => Some("Running"),
        }
    }
}

const KEYS: &str = "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `site`, `slot` (\"production\")";

fn what(site: &Site, slot: &str) -> String {
    if is_production(slot) { site.what() } else { site.slot_what(slot) }
}

async fn read(site: &Site, pause: &dyn Pause, slot: &str) -> Result<Value, PrimitiveError> {
    site.client.get(pause, site.slot_url(slot, ""), &what(site, slot)).await.map_err(fail(&site.key()))
}

fn prop(resource: &Value, name: &str) -> String {
    resource
        .get("properties")
        .and_then(|p| p.get(name))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

async fn call(cx: &CallCx, args: &PowerArgs, action: Action) -> Result<PowerOutput, PrimitiveError> {
    let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
    if let Some(want) = action.wanted() {
        let state = prop(&read(&site, cx, &args.slot).await?, "state");
        if state.eq_ignore_ascii_case(want) {
            return Ok(PowerOutput { changed: false });
        }
    }
    let req = ArmRequest {
        method: Method::POST,
        url: site.slot_url(&args.slot, &format!("/{}", action.verb())),
        body: None,
        what: format!("{} of {}", action.verb(), what(&site, &args.slot)),
        idempotency: Idempotency::Safe,
    };
    site.client.send(cx, &req).await.map_err(fail(&site.key()))?;
    Ok(PowerOutput { changed: true })
}

async fn plan(cx: &CallCx, args: &PowerArgs, action: Action) -> Result<Planned, PrimitiveError> {
    let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
    let resource = read(&site, cx, &args.slot).await?;
    let state = prop(&resource, "state");
    let target = what(&site, &args.slot);
    let (effect, changed) = match action.wanted() {
        Some(want) if state.eq_ignore_ascii_case(want) => {
            (format!("nothing: {target} is already {want}"), false)
        }
        Some(_) => (format!("{} {target} (now {state})", action.verb()), true),
        None => (format!("restart {target} (now {state}): its instances restart"), true),
    };
    Ok(Planned { effect, output: json!({ "changed": changed, "planned": true }) })
}

async fn verify(
    cx: &CallCx,
    args: &PowerArgs,
    action: Action,
    sent: chrono::DateTime<chrono::Utc>,
) -> Result<Verified, PrimitiveError> {
    let site = Site::resolve(cx, args.subscription.as_deref(), &args.group, &args.site)?;
    let resource = read(&site, cx, &args.slot).await?;
    let applied = match action.wanted() {
        Some(want) => prop(&resource, "state").eq_ignore_ascii_case(want),
        None => chrono::DateTime::parse_from_rfc3339(&prop(&resource, "lastModifiedTimeUtc"))
            .is_ok_and(|t| t.with_timezone(&chrono::Utc) >= sent - chrono::TimeDelta::seconds(5)),
    };
    Ok(if applied { Verified::Applied(json!({ "changed": true })) } else { Verified::NotApplied })
}

macro_rules! power_primitive {
    ($ty:ident, $action:expr, $name:literal, $doc:literal) => {
        impl Primitive for $ty {
            type Args = PowerArgs;
            type Output = PowerOutput;

            fn meta(&self) -> Meta {
                Meta {
                    namespace: "appservice",
                    name: $name,
                    doc: $doc,
                    keys_doc: KEYS,
                    returns: "`#{ changed }`",
                    access: Access::Mutate,
                }
            }

            fn target(&self, args: &PowerArgs) -> Option<String> {
                Some(super::key(&args.group, &args.site))
            }

            async fn call(&self, cx: &CallCx, args: PowerArgs) -> Result<PowerOutput, PrimitiveError> {
                call(cx, &args, $action).await
            }

            async fn plan(&self, cx: &CallCx, args: &PowerArgs) -> Result<Planned, PrimitiveError> {
                plan(cx, args, $action).await
            }

            async fn verify(
                &self,
                cx: &CallCx,
                args: &PowerArgs,
                sent: chrono::DateTime<chrono::Utc>,
            ) -> Result<Verified, PrimitiveError> {
                verify(cx, args, $action, sent).await
            }
        }
    };
}

power_primitive!(
    Restart,
    Action::Restart,
    "restart",
    "Restarts a site or one of its slots (the most common App Service recovery action); `changed` is always true."
);
power_primitive!(
    Stop,
    Action::Stop,
    "stop",
    "Stops a site or one of its slots (a stopped production slot serves nothing); `changed` is false when it already was stopped."
);
power_primitive!(
    Start,
    Action::Start,
    "start",
    "Starts a stopped site or slot; `changed` is false when it already was running."
);
