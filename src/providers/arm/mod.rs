//! Template deployments at resource-group scope (Microsoft.Resources/deployments): history,
//! the last successful one, redeploying a previous deployment's template and parameters,
//! what-if, and deploying with ARM's own rollback on error.

mod deploy;
mod deployments;
mod last_successful;
mod redeploy;
mod what_if;

pub use deploy::{Deploy, DeployArgs, DeployOutput};
pub use deployments::{Deployments, DeploymentsArgs};
pub use last_successful::{LastSuccessful, LastSuccessfulArgs};
pub use redeploy::{Redeploy, RedeployArgs, RedeployOutput};
pub use what_if::{Change, WhatIf, WhatIfOutput};

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::cloud::{Budget, client, fail, group_path, require};
use super::{CallCx, DynPrimitive, erase};
use crate::azure::{ArmClient, ArmRequest, AzureError, Idempotency, Pause, api_versions, encode};
use crate::model::{ErrorKind, PrimitiveError};

/// The arm primitives, alphabetical.
pub fn register() -> Vec<Arc<dyn DynPrimitive>> {
    vec![
        erase(Deploy),         // deploy a template, with ARM's rollback on error
        erase(Deployments),    // the group's deployment history, newest first
        erase(LastSuccessful), // the newest Succeeded deployment (optionally before another)
        erase(Redeploy),       // deploy a previous deployment's template and parameters again
        erase(WhatIf),         // what a redeploy would change
    ]
}

/// `last-successful`, the `from` that means the newest Succeeded deployment.
pub const LAST_SUCCESSFUL: &str = "last-successful";

/// One deployment of the history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeploymentInfo {
    /// Deployment name.
    pub name: String,
    /// `provisioningState` (`Succeeded`, `Failed`, `Running`…).
    pub state: String,
    /// When it ran (ARM's timestamp).
    pub timestamp: String,
    /// `Incremental` or `Complete`.
    pub mode: String,
}

impl DeploymentInfo {
    fn of(item: &Value) -> DeploymentInfo {
        let props = item.get("properties");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        DeploymentInfo {
            name: text(item.get("name")),
            state: text(props.and_then(|p| p.get("provisioningState"))),
            timestamp: text(props.and_then(|p| p.get("timestamp"))),
            mode: text(props.and_then(|p| p.get("mode"))),
        }
    }

    fn time(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        chrono::DateTime::parse_from_rfc3339(&self.timestamp).ok()
    }
}

/// Default `mode` of `arm::deploy` and `arm::redeploy`.
fn incremental() -> String {
    "Incremental".into()
}

/// Default `timeout` of `arm::deploy` and `arm::redeploy`.
fn thirty_minutes() -> crate::model::Dur {
    crate::model::Dur::secs(30 * 60)
}

/// Sorts newest first by timestamp (ARM does not promise an order); stable for ties.
pub fn newest_first(mut list: Vec<DeploymentInfo>) -> Vec<DeploymentInfo> {
    list.sort_by_key(|d| std::cmp::Reverse(d.time()));
    list
}

/// The newest `Succeeded` deployment older than `before` (when given).
pub fn last_successful(list: &[DeploymentInfo], before: Option<&DeploymentInfo>) -> Option<DeploymentInfo> {
    list.iter()
        .filter(|d| d.state.eq_ignore_ascii_case("Succeeded"))
        .filter(|d| match before {
            Some(b) => !d.name.eq_ignore_ascii_case(&b.name) && d.time() < b.time(),
            None => true,
        })
        .max_by(|a, b| a.time().cmp(&b.time()))
        .cloned()
}

/// Terminal `provisioningState`s.
pub fn is_terminal(state: &str) -> bool {
    matches!(state.to_ascii_lowercase().as_str(), "succeeded" | "failed" | "canceled" | "cancelled")
}

/// A name for a deployment rollbook creates: `rollbook-<verb>-<from>-<yyyymmddHHMMSS>`, cut to
/// ARM's 64 characters and its alphabet, so an operator can tell what it was.
pub fn generated_name(verb: &str, from: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{}{}", name_prefix(verb, from), now.format("%Y%m%d%H%M%S"))
}

/// `rollbook-<verb>-<from>-`: everything of a generated name before its time stamp.
pub fn name_prefix(verb: &str, from: Option<&str>) -> String {
    let head = format!("rollbook-{verb}-");
    // 64 characters at most: 14 for the stamp and one for the dash after `from`.
    let room = 64usize.saturating_sub(head.chars().count() + 15);
    let from: String = from
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.()".contains(c) { c } else { '-' })
        .take(room)
        .collect();
    if from.is_empty() { head } else { format!("{head}{from}-") }
}

/// Keeps what a new deployment may send of each parameter (`value`, `reference` or
/// `expression`); a secure parameter whose value ARM does not return is refused.
pub fn request_parameters(from: &str, params: &Value) -> Result<Value, PrimitiveError> {
    let Some(map) = params.as_object() else {
        return Ok(json!({}));
    };
    let mut out = Map::new();
    for (name, p) in map {
        let kept: Map<String, Value> = p
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| matches!(k.as_str(), "value" | "reference" | "expression"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if kept.is_empty() {
            return Err(PrimitiveError::invalid(format!(
                "parameter `{name}` of deployment `{from}` has no readable value (a secure parameter?); \
                 deploy with arm::deploy and pass its value"
            )));
        }
        out.insert(name.clone(), Value::Object(kept));
    }
    Ok(Value::Object(out))
}

/// Parameters as a script writes them: `#{ sku: "S1" }` or `#{ sku: #{ value: "S1" } }`.
pub fn script_parameters(params: &Value) -> Value {
    let Some(map) = params.as_object() else {
        return json!({});
    };
    let out: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let wrapped = match v {
                Value::Object(o)
                    if !o.is_empty()
                        && o.keys().all(|k| matches!(k.as_str(), "value" | "reference" | "expression")) =>
                {
                    v.clone()
                }
                other => json!({ "value": other }),
            };
            (k.clone(), wrapped)
        })
        .collect();
    Value::Object(out)
}

/// A resource group's deployments, resolved to its subscription.
pub(crate) struct Group {
    /// The run's ARM client.
    pub client: Arc<ArmClient>,
    path: String,
    /// Group name.
    pub name: String,
}

impl Group {
    /// Resolves the group of a call.
    pub(crate) fn resolve(
        cx: &CallCx,
        subscription: Option<&str>,
        group: &str,
    ) -> Result<Group, PrimitiveError> {
        require("group", group)?;
        let client = client(cx)?;
        let sub = client.subscription(subscription).map_err(PrimitiveError::from)?;
        Ok(Group {
            // The deployments swagger spells the segment `resourcegroups`.
            path: format!(
                "{}/providers/Microsoft.Resources/deployments",
                group_path(&sub, group).replace("/resourceGroups/", "/resourcegroups/")
            ),
            client,
            name: group.to_string(),
        })
    }

    /// `arm/<group>`.
    pub(crate) fn key(&self) -> String {
        format!("arm/{}", self.name)
    }

    /// "deployment `x` in group `g`".
    pub(crate) fn what(&self, name: &str) -> String {
        format!("deployment `{name}` in group `{}`", self.name)
    }

    fn url(&self, name: Option<&str>, suffix: &str) -> String {
        let path = match name {
            Some(n) => format!("{}/{}{suffix}", self.path, encode(n)),
            None => self.path.clone(),
        };
        self.client.url(&path, api_versions::RESOURCES)
    }

    /// The whole history, newest first.
    pub(crate) async fn history(&self, pause: &dyn Pause) -> Result<Vec<DeploymentInfo>, PrimitiveError> {
        let what = format!("deployments of group `{}`", self.name);
        let items = self.client.list(pause, self.url(None, ""), &what).await.map_err(fail(&self.key()))?;
        Ok(newest_first(items.iter().map(DeploymentInfo::of).collect()))
    }

    /// One deployment.
    pub(crate) async fn get(&self, pause: &dyn Pause, name: &str) -> Result<Value, PrimitiveError> {
        self.client.get(pause, self.url(Some(name), ""), &self.what(name)).await.map_err(fail(&self.key()))
    }

    /// The deployment `from` names: a name, or `last-successful` (the newest Succeeded one).
    pub(crate) async fn resolve_from(
        &self,
        pause: &dyn Pause,
        from: &str,
    ) -> Result<DeploymentInfo, PrimitiveError> {
        require("from", from)?;
        if from.eq_ignore_ascii_case(LAST_SUCCESSFUL) {
            let history = self.history(pause).await?;
            return last_successful(&history, None).ok_or_else(|| {
                PrimitiveError::new(
                    ErrorKind::NotFound,
                    format!("no successful deployment in group `{}` to redeploy", self.name),
                )
                .with_target(self.key())
            });
        }
        Ok(DeploymentInfo::of(&self.get(pause, from).await?))
    }

    /// The template and request-ready parameters of deployment `name`.
    pub(crate) async fn content(
        &self,
        pause: &dyn Pause,
        name: &str,
    ) -> Result<(Value, Value), PrimitiveError> {
        let req = ArmRequest {
            method: Method::POST,
            url: self.url(Some(name), "/exportTemplate"),
            body: None,
            what: format!("template of {}", self.what(name)),
            idempotency: Idempotency::Safe,
        };
        let exported = self.client.send(pause, &req).await.map_err(fail(&self.key()))?;
        let template = exported.body.get("template").cloned().unwrap_or(Value::Null);
        if !template.is_object() {
            return Err(PrimitiveError::invalid(format!("ARM exported no template for {}", self.what(name)))
                .with_target(self.key()));
        }
        let deployment = self.get(pause, name).await?;
        let params = deployment
            .get("properties")
            .and_then(|p| p.get("parameters"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        Ok((template, request_parameters(name, &params)?))
    }

    /// What-if of deploying `properties` under `name`: the changes ARM predicts.
    pub(crate) async fn what_if(
        &self,
        pause: &dyn Pause,
        name: &str,
        properties: &Value,
        timeout: Duration,
    ) -> Result<Vec<Change>, PrimitiveError> {
        let req = ArmRequest {
            method: Method::POST,
            url: self.url(Some(name), "/whatIf"),
            body: Some(json!({ "properties": properties })),
            what: format!("what-if of {}", self.what(name)),
            idempotency: Idempotency::Safe,
        };
        let (_, last) = self.client.send_and_wait(pause, &req, timeout).await.map_err(fail(&self.key()))?;
        Ok(changes_of(&last.body))
    }

    /// PUTs deployment `name` with `properties` and waits until it ends (or `timeout`).
    ///
    /// Idempotent by name: a retry after an ambiguous failure sends the same deployment again,
    /// which ARM either accepts (same content, same effect) or refuses with
    /// `DeploymentActive` while the first one runs; then we wait for that one.
    pub(crate) async fn deploy_and_wait(
        &self,
        cx: &CallCx,
        name: &str,
        properties: &Value,
        timeout: Duration,
    ) -> Result<Value, PrimitiveError> {
        let budget = Budget::new(cx, timeout);
        let req = ArmRequest {
            method: Method::PUT,
            url: self.url(Some(name), ""),
            body: Some(json!({ "properties": properties })),
            what: self.what(name),
            idempotency: Idempotency::Safe,
        };
        match self.client.send(&budget, &req).await {
            Ok(first) => match self.client.wait(&budget, &first, &req.what, budget.remaining()).await {
                Ok(_) | Err(AzureError::OperationFailed { .. }) => {}
                Err(e) => return Err(fail(&self.key())(e)),
            },
            Err(e) if e.code().is_some_and(|c| c.eq_ignore_ascii_case("DeploymentActive")) => {}
            Err(e) => return Err(fail(&self.key())(e)),
        }
        // The operation is over (or was already running): read the deployment until it is terminal.
        let mut polls = 0u32;
        loop {
            let d = self.get(&budget, name).await?;
            let state = DeploymentInfo::of(&d).state;
            if is_terminal(&state) {
                return Ok(d);
            }
            polls += 1;
            let wait = self.client.policy().backoff(polls).min(Duration::from_secs(30));
            if budget.spent() + wait > budget.limit() {
                return Err(fail(&self.key())(AzureError::Timeout {
                    what: format!("{} (still {state}; it may still finish)", self.what(name)),
                    after: budget.limit(),
                }));
            }
            budget.pause(wait).await.map_err(PrimitiveError::from)?;
        }
    }
}

/// A deployment rollbook created for a call sent at `sent`: the one named `name`, or else the
/// newest whose name starts with `prefix`, if it appeared since (less five seconds for skew).
pub(crate) async fn created_since(
    group: &Group,
    pause: &dyn Pause,
    name: Option<&str>,
    prefix: &str,
    sent: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Value>, PrimitiveError> {
    let since = sent - chrono::TimeDelta::seconds(5);
    let recent = |d: &DeploymentInfo| d.time().is_some_and(|t| t.with_timezone(&chrono::Utc) >= since);
    let history = group.history(pause).await?;
    let found = match name {
        Some(n) => history.iter().find(|d| d.name.eq_ignore_ascii_case(n) && recent(d)),
        None => history.iter().find(|d| d.name.starts_with(prefix) && recent(d)),
    };
    match found {
        Some(d) => Ok(Some(group.get(pause, &d.name).await?)),
        None => Ok(None),
    }
}

/// The changes of a what-if result (`properties.changes`).
pub fn changes_of(result: &Value) -> Vec<Change> {
    let text = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    result
        .get("properties")
        .and_then(|p| p.get("changes"))
        .or_else(|| result.get("changes"))
        .and_then(Value::as_array)
        .map(|changes| {
            changes
                .iter()
                .map(|c| Change { resource_id: text(c, "resourceId"), change_type: text(c, "changeType") })
                .collect()
        })
        .unwrap_or_default()
}

/// The deployment's error in words, when it failed.
pub fn error_of(deployment: &Value) -> Option<String> {
    let e = deployment.get("properties")?.get("error")?;
    crate::azure::Envelope::parse(&json!({ "error": e })).map(|e| e.summary())
}

/// What-if changes in words for a plan.
pub fn describe_changes(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "what-if: no resource changes".into();
    }
    let list: Vec<String> = changes.iter().map(|c| format!("{} {}", c.change_type, c.resource_id)).collect();
    format!("what-if: {}", list.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, state: &str, ts: &str) -> DeploymentInfo {
        DeploymentInfo {
            name: name.into(),
            state: state.into(),
            timestamp: ts.into(),
            mode: "Incremental".into(),
        }
    }

    #[test]
    fn history_sorts_newest_first_and_finds_the_last_good() {
        let list = newest_first(vec![
            d("a", "Succeeded", "2026-11-18T10:00:00Z"),
            d("c", "Succeeded", "2026-11-21T10:00:00.1234567Z"),
            d("b", "Failed", "2026-11-19T10:00:00Z"),
        ]);
        let names: Vec<&str> = list.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        assert_eq!(last_successful(&list, None).unwrap().name, "c");
        assert_eq!(last_successful(&list, Some(&list[0])).unwrap().name, "a");
        assert_eq!(last_successful(&list, Some(&list[2])), None);
    }

    fn fixture(name: &str) -> Value {
        let path =
            format!("{}/tests/fixtures/azure-rest-examples/resources/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn official_examples_parse() {
        let put = fixture("PutDeploymentResourceGroup.json");
        let d = DeploymentInfo::of(&put["responses"]["200"]["body"]);
        assert_eq!(
            (d.name.as_str(), d.state.as_str(), d.mode.as_str()),
            ("my-deployment", "Succeeded", "Incremental")
        );
        assert!(d.time().is_some(), "{}", d.timestamp);
        let what_if = fixture("PostDeploymentWhatIfOnResourceGroup.json");
        let changes = changes_of(&what_if["responses"]["200"]["body"]);
        assert!(!changes.is_empty());
        assert_eq!(changes[0].change_type, "Modify");
        assert!(
            changes[0].resource_id.ends_with("/userAssignedIdentities/myExistingIdentity"),
            "{:?}",
            changes[0]
        );
    }

    #[test]
    fn generated_names_fit_arm_rules() {
        let now =
            chrono::DateTime::parse_from_rfc3339("2026-11-27T10:11:12Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(
            generated_name("redeploy", Some("infra-41"), now),
            "rollbook-redeploy-infra-41-20261127101112"
        );
        let long = "x".repeat(80);
        let n = generated_name("redeploy", Some(&long), now);
        assert!(n.len() <= 64 && n.ends_with("-20261127101112"), "{n}");
        assert_eq!(generated_name("deploy", None, now), "rollbook-deploy-20261127101112");
        assert_eq!(generated_name("redeploy", Some("a b"), now), "rollbook-redeploy-a-b-20261127101112");
    }

    #[test]
    fn parameters_keep_only_what_a_request_takes() {
        let got = request_parameters(
            "d",
            &json!({"sku": {"type": "String", "value": "S1"}, "kv": {"reference": {"secretName": "s"}}}),
        )
        .unwrap();
        assert_eq!(got, json!({"sku": {"value": "S1"}, "kv": {"reference": {"secretName": "s"}}}));
        let secure = request_parameters("d", &json!({"pw": {"type": "SecureString"}})).unwrap_err();
        assert!(secure.message.contains("parameter `pw` of deployment `d`"), "{}", secure.message);
        assert_eq!(
            script_parameters(&json!({"sku": "S1", "n": {"value": 2}})),
            json!({"sku": {"value": "S1"}, "n": {"value": 2}})
        );
    }
}
