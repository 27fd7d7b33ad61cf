//! Alert payloads: Alertmanager's webhook (version 4) and Azure Monitor's common alert schema,
//! read into one shape routes match on.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::Source;

/// One alert, whatever sent it.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Where it came from.
    pub source: Source,
    /// Its identity: Alertmanager's fingerprint, or Azure Monitor's alert id.
    pub fingerprint: String,
    /// Whether it is resolved (no run starts for it).
    pub resolved: bool,
    /// What routes match on: labels (Alertmanager) or essentials fields (Azure Monitor).
    pub labels: BTreeMap<String, String>,
    /// Every template variable (`labels.x`, `annotations.y`, `alert.fingerprint`, ...).
    pub vars: BTreeMap<String, String>,
}

impl Alert {
    /// A label, annotation or field with a control character (never put into params).
    pub fn control_character(&self) -> Option<String> {
        self.vars.iter().find(|(_, v)| v.chars().any(char::is_control)).map(|(k, _)| k.clone()).or_else(
            || {
                self.labels
                    .keys()
                    .find(|k| k.chars().any(char::is_control))
                    .map(|k| k.escape_debug().to_string())
            },
        )
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn string_map(v: Option<&Value>, what: &str, at: usize) -> Result<BTreeMap<String, String>, String> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m.iter().map(|(k, v)| (k.clone(), text_of(v))).collect()),
        Some(_) => Err(format!("alerts[{at}].{what} is not an object")),
    }
}

/// Reads an Alertmanager webhook body (payload version 4).
pub fn alertmanager(body: &Value) -> Result<Vec<Alert>, String> {
    let Value::Object(top) = body else {
        return Err("the payload is not a JSON object".into());
    };
    match top.get("version") {
        Some(Value::String(v)) if v == "4" => {}
        Some(v) => {
            return Err(format!(
                "unsupported Alertmanager payload version {v}: rollbook reads version \"4\""
            ));
        }
        None => {
            return Err(
                "the payload has no `version`: rollbook reads Alertmanager payload version \"4\"".into()
            );
        }
    }
    let Some(Value::Array(items)) = top.get("alerts") else {
        return Err("the payload has no `alerts` array".into());
    };
    let mut alerts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(a) = item else {
            return Err(format!("alerts[{i}] is not an object"));
        };
        let labels = string_map(a.get("labels"), "labels", i)?;
        let annotations = string_map(a.get("annotations"), "annotations", i)?;
        let status = a.get("status").map(text_of).unwrap_or_default();
        let fingerprint = match a.get("fingerprint").map(text_of).filter(|f| !f.is_empty()) {
            Some(f) => f,
            None => label_hash(&labels),
        };
        let mut vars = BTreeMap::new();
        for (k, v) in &labels {
            vars.insert(format!("labels.{k}"), v.clone());
        }
        for (k, v) in &annotations {
            vars.insert(format!("annotations.{k}"), v.clone());
        }
        vars.insert("alert.fingerprint".into(), fingerprint.clone());
        if let Some(s) = a.get("startsAt").map(text_of).filter(|s| !s.is_empty()) {
            vars.insert("alert.starts_at".into(), s);
        }
        vars.insert("alert.status".into(), status.clone());
        alerts.push(Alert {
            source: Source::Alertmanager,
            fingerprint,
            resolved: status == "resolved",
            labels,
            vars,
        });
    }
    Ok(alerts)
}

/// A stable identity for a label set (Alertmanager sends its own fingerprint; this is for
/// senders that do not).
fn label_hash(labels: &BTreeMap<String, String>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Reads an Azure Monitor action-group webhook body (common alert schema).
pub fn azure_monitor(body: &Value) -> Result<Vec<Alert>, String> {
    let Value::Object(top) = body else {
        return Err("the payload is not a JSON object".into());
    };
    match top.get("schemaId") {
        Some(Value::String(s)) if s == "azureMonitorCommonAlertSchema" => {}
        Some(v) => {
            return Err(format!(
                "unsupported Azure Monitor schema {v}: rollbook reads the common alert schema (\"azureMonitorCommonAlertSchema\")"
            ));
        }
        None => {
            return Err(
                "the payload has no `schemaId`: enable the common alert schema on the action group".into()
            );
        }
    }
    let Some(Value::Object(essentials)) = top.get("data").and_then(|d| d.get("essentials")) else {
        return Err("the payload has no `data.essentials` object".into());
    };
    let mut labels = BTreeMap::new();
    for (k, v) in essentials {
        if !matches!(v, Value::Array(_) | Value::Object(_)) {
            labels.insert(k.clone(), text_of(v));
        }
    }
    let fingerprint = labels
        .get("alertId")
        .filter(|s| !s.is_empty())
        .cloned()
        .ok_or("the payload has no `data.essentials.alertId`")?;
    let mut vars = BTreeMap::new();
    for (k, v) in &labels {
        vars.insert(format!("essentials.{k}"), v.clone());
    }
    vars.insert("alert.fingerprint".into(), fingerprint.clone());
    if let Some(s) = labels.get("firedDateTime") {
        vars.insert("alert.starts_at".into(), s.clone());
    }
    let target = essentials
        .get("alertTargetIDs")
        .and_then(|t| t.as_array())
        .and_then(|t| t.first())
        .and_then(|t| t.as_str())
        .unwrap_or("");
    for (k, v) in parse_target(target) {
        vars.insert(format!("target.{k}"), v);
    }
    let resolved = labels.get("monitorCondition").is_some_and(|c| c.eq_ignore_ascii_case("resolved"));
    Ok(vec![Alert { source: Source::AzureMonitor, fingerprint, resolved, labels, vars }])
}

/// `subscription`, `group`, `provider`, `type`, `name` of an ARM resource id.
fn parse_target(id: &str) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = id.split('/').filter(|p| !p.is_empty()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < parts.len() {
        let key = parts[i].to_ascii_lowercase();
        match key.as_str() {
            "subscriptions" => out.push(("subscription", parts[i + 1].to_string())),
            "resourcegroups" => out.push(("group", parts[i + 1].to_string())),
            "providers" => {
                out.push(("provider", parts[i + 1].to_string()));
                if let Some(t) = parts.get(i + 2) {
                    out.push(("type", t.to_string()));
                }
                if let Some(n) = parts.get(i + 3) {
                    out.push(("name", n.to_string()));
                }
                break;
            }
            _ => {}
        }
        i += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_target_is_split() {
        let t =
            parse_target("/subscriptions/s1/resourceGroups/rg-shop/providers/Microsoft.Web/sites/shop-web");
        assert!(t.contains(&("group", "rg-shop".into())));
        assert!(t.contains(&("provider", "Microsoft.Web".into())));
        assert!(t.contains(&("type", "sites".into())));
        assert!(t.contains(&("name", "shop-web".into())));
        assert!(t.contains(&("subscription", "s1".into())));
    }

    #[test]
    fn version_other_than_4_is_refused() {
        let err = alertmanager(&serde_json::json!({"version": "3", "alerts": []})).unwrap_err();
        assert!(err.contains("version"), "{err}");
    }
}
