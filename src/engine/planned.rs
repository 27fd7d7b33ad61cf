//! Under dry-run, the Azure reads that follow a planned write on the same target see it: the
//! last swap after a planned swap, the planned deployment among a group's deployments after a
//! planned redeploy or deploy, the planned version of a workflow after a planned promote.
//! (Kubernetes keeps a whole planned Deployment in its provider; these reads only need the
//! planned call itself.)

use serde_json::{Value, json};

use crate::providers::Shared;

/// A planned mutation, as later reads of its target need it.
#[derive(Debug, Clone)]
pub(crate) struct PlannedCall {
    /// `appservice::swap`.
    pub call: String,
    /// The call's args (redacted).
    pub args: Value,
    /// Its planned output.
    pub output: Value,
    /// When it was planned (RFC 3339).
    pub at: String,
}

fn key(target: &str) -> String {
    format!("planned-calls/{target}")
}

/// Remembers a planned mutation of `target`.
pub(crate) fn remember(shared: &Shared, target: &str, call: &str, args: &Value, output: &Value) {
    let mut calls: Vec<PlannedCall> = shared.planned(&key(target)).unwrap_or_default();
    calls.push(PlannedCall {
        call: call.to_string(),
        args: args.clone(),
        output: output.clone(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    shared.set_planned(&key(target), calls);
}

/// Rewrites the real answer of read `call` on `target` as the planned calls so far would
/// leave it; `planned: true` marks what comes from a plan.
pub(crate) fn overlay(shared: &Shared, call: &str, args: &Value, target: Option<&str>, value: &mut Value) {
    let Some(target) = target else { return };
    let calls: Vec<PlannedCall> = shared.planned(&key(target)).unwrap_or_default();
    let Some(last) = calls.last() else { return };
    match call {
        "appservice::last_swap" => {
            if let Some(swap) = calls
                .iter()
                .rev()
                .find(|c| matches!(c.call.as_str(), "appservice::swap" | "appservice::swap_complete"))
            {
                *value = json!({
                    "time": swap.at,
                    "source": swap.args.get("slot").cloned().unwrap_or(Value::Null),
                    "destination": swap.args.get("target").cloned().unwrap_or_else(|| "production".into()),
                    "planned": true,
                });
            }
        }
        "arm::deployments" | "arm::last_successful" => {
            let Some(deploy) =
                calls.iter().rev().find(|c| matches!(c.call.as_str(), "arm::redeploy" | "arm::deploy"))
            else {
                return;
            };
            let entry = json!({
                "name": deploy.output.get("name").cloned().unwrap_or(Value::Null),
                "state": "Succeeded",
                "timestamp": deploy.at,
                "mode": deploy.args.get("mode").cloned().unwrap_or_else(|| "Incremental".into()),
                "planned": true,
            });
            if call == "arm::deployments" {
                if let Value::Array(items) = value {
                    items.insert(0, entry);
                }
            } else if args.get("before").is_none_or(Value::is_null) {
                // The planned deployment is the newest, and it would succeed.
                *value = entry;
            }
        }
        "logicapp::versions" => {
            if last.call != "logicapp::promote" && !calls.iter().any(|c| c.call == "logicapp::promote") {
                return;
            }
            if let Value::Array(items) = value {
                let state = items
                    .iter()
                    .find(|v| v.get("current") == Some(&Value::Bool(true)))
                    .and_then(|v| v.get("state").cloned())
                    .unwrap_or_else(|| "Enabled".into());
                for item in items.iter_mut() {
                    if let Value::Object(m) = item {
                        m.insert("current".into(), false.into());
                    }
                }
                let promote = calls.iter().rev().find(|c| c.call == "logicapp::promote").unwrap_or(last);
                items.insert(
                    0,
                    json!({
                        "version": promote.output.get("new_version").cloned().unwrap_or_else(|| "(planned)".into()),
                        "created": promote.at,
                        "changed": promote.at,
                        "state": state,
                        "current": true,
                        "planned": true,
                        "promoted_from": promote.args.get("version").cloned().unwrap_or(Value::Null),
                    }),
                );
            }
        }
        _ => {}
    }
}
