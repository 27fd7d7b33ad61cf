//! Simulated Logic Apps consumption workflows (Microsoft.Logic): workflow GET/PUT, versions
//! (list, paged, newest first; get) and enable/disable.
//!
//! Conventions:
//! - Each scenario version id gets its own definition: a `Request` trigger and a `Response`
//!   action whose body is `{"version": "<id>"}`, so a promote (PUT of an old version's
//!   definition and parameters) is detectable. Its parameters are `{}`.
//! - PUT of a workflow creates a new version and makes it current (200 for an existing
//!   workflow, 201 for a new one; not long-running, as in the swagger). New version ids are 20
//!   digits, one more than the largest id so far (ids of the `0858…` form keep increasing).
//! - Health of `logicapp/<g>/<wf>`: the current definition and parameters are not those of a
//!   version listed in `broken`.
//! - As in the official examples, version items carry the workflow's `id`/`name`/`type`.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::azure::{ArmError, Place, Reply, Req, World, arm_time, method_not_allowed, page, unknown_path};
use super::scenario::Scenario;

/// All simulated workflows.
pub(crate) struct Workflows {
    list: Vec<Workflow>,
}

struct Workflow {
    sub: String,
    group: String,
    name: String,
    location: String,
    tags: Value,
    state: String,
    /// Oldest first; the last is current.
    versions: Vec<Version>,
    /// (definition, parameters) that make health fail.
    broken: Vec<(Value, Value)>,
}

struct Version {
    id: String,
    created: DateTime<Utc>,
    definition: Value,
    parameters: Value,
}

/// The definition the simulator gives scenario version `id`.
pub(crate) fn definition_for(id: &str) -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {},
        "triggers": {
            "manual": { "type": "Request", "kind": "Http", "inputs": { "schema": {} } }
        },
        "actions": {
            "Response": {
                "runAfter": {},
                "type": "Response",
                "kind": "Http",
                "inputs": { "statusCode": 200, "body": { "version": id } }
            }
        },
        "outputs": {}
    })
}

/// The id after `ids`: one more than the largest numeric id, 20 digits wide.
fn next_version_id<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let max = ids
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .filter_map(|id| id.parse::<u128>().ok())
        .max()
        .unwrap_or(8_585_000_000_000_000_000);
    format!("{:020}", max + 1)
}

impl Workflows {
    /// The workflows of a scenario.
    pub(crate) fn from_scenario(s: &Scenario) -> Workflows {
        let base = DateTime::from_timestamp(1_764_547_200, 0).unwrap_or_default();
        let list = s
            .logicapp
            .workflows
            .iter()
            .map(|x| {
                let versions: Vec<Version> = x
                    .versions
                    .iter()
                    .enumerate()
                    .map(|(i, id)| Version {
                        id: id.clone(),
                        created: base + TimeDelta::hours(i as i64),
                        definition: definition_for(id),
                        parameters: json!({}),
                    })
                    .collect();
                let broken = x.broken.iter().map(|id| (definition_for(id), json!({}))).collect();
                Workflow {
                    sub: x.subscription.clone(),
                    group: x.group.clone(),
                    name: x.name.clone(),
                    location: super::azure::LOCATION.into(),
                    tags: json!({}),
                    state: x.state.clone().unwrap_or_else(|| "Enabled".into()),
                    versions,
                    broken,
                }
            })
            .collect();
        Workflows { list }
    }

    fn find(&self, sub: &str, group: &str, name: &str) -> Option<usize> {
        self.list.iter().position(|w| {
            w.sub.eq_ignore_ascii_case(sub)
                && w.group.eq_ignore_ascii_case(group)
                && w.name.eq_ignore_ascii_case(name)
        })
    }

    fn by_key(&self, group: &str, name: &str) -> Option<&Workflow> {
        self.list.iter().find(|w| w.group.eq_ignore_ascii_case(group) && w.name.eq_ignore_ascii_case(name))
    }

    /// Health: the current definition and parameters are not a broken version's.
    pub(crate) fn healthy(&self, group: &str, name: &str) -> Option<bool> {
        let w = self.by_key(group, name)?;
        let cur = w.versions.last()?;
        Some(!w.broken.iter().any(|(d, p)| d == &cur.definition && p == &cur.parameters))
    }

    /// `{"current", "state", "versions"}`.
    pub(crate) fn state(&self, group: &str, name: &str) -> Option<Value> {
        let w = self.by_key(group, name)?;
        let cur = w.versions.last()?;
        let origin = w
            .versions
            .iter()
            .find(|v| v.definition == cur.definition && v.parameters == cur.parameters)
            .map(|v| v.id.clone());
        Some(json!({ "current": origin, "state": w.state, "versions": w.versions.len() }))
    }
}

impl Workflow {
    fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Logic/workflows/{}",
            self.sub, self.group, self.name
        )
    }

    fn properties(&self, v: &Version) -> Value {
        let token: String =
            self.id().bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))).to_string();
        let changed = v.created;
        let created = self.versions.first().map(|f| f.created).unwrap_or(v.created);
        json!({
            "provisioningState": "Succeeded",
            "createdTime": arm_time(created),
            "changedTime": arm_time(changed),
            "state": self.state,
            "version": v.id,
            "accessEndpoint": format!("https://prod-00.{}.logic.azure.com:443/workflows/{token}", self.location),
            "definition": v.definition,
            "parameters": v.parameters,
            "endpointsConfiguration": {
                "workflow": {
                    "outgoingIpAddresses": [ { "address": "127.0.0.1" } ],
                    "accessEndpointIpAddresses": [ { "address": "127.0.0.1" } ]
                },
                "connector": { "outgoingIpAddresses": [ { "address": "127.0.0.1" } ] }
            }
        })
    }

    fn resource(&self, v: &Version) -> Value {
        json!({
            "properties": self.properties(v),
            "id": self.id(),
            "name": self.name,
            "type": "Microsoft.Logic/workflows",
            "location": self.location,
            "tags": self.tags,
        })
    }
}

/// Requests under `…/providers/Microsoft.Logic/`; `rest` indexes the segment after the namespace.
pub(crate) fn handle(w: &mut World, req: &Req, at: &Place, rest: usize) -> Result<Reply, ArmError> {
    let l: Vec<&str> = req.lower[rest..].iter().map(String::as_str).collect();
    let s = &req.segs[rest..];
    if l[0] != "workflows" || l.len() < 2 {
        return Err(unknown_path(req));
    }
    let name = &s[1];
    let found = w.workflows.find(&at.sub, &at.group, name);
    let not_found = |suffix: &str| {
        ArmError::resource_not_found(&format!("Microsoft.Logic/workflows/{name}{suffix}"), &at.group)
    };
    match (&l[2..], &req.method) {
        ([], &Method::PUT) => put(w, req, found, name, at),
        ([], &Method::GET) => {
            let wf = &w.workflows.list[found.ok_or_else(|| not_found(""))?];
            let cur = wf.versions.last().ok_or_else(|| not_found(""))?;
            Ok(Reply::ok(wf.resource(cur)))
        }
        (["versions"], &Method::GET) => {
            let wf = &w.workflows.list[found.ok_or_else(|| not_found(""))?];
            let items = wf.versions.iter().rev().map(|v| wf.resource(v)).collect();
            Ok(Reply::ok(page(req, items)?))
        }
        (["versions", _], &Method::GET) => {
            let wf = &w.workflows.list[found.ok_or_else(|| not_found(""))?];
            let id = &s[3];
            let v = wf
                .versions
                .iter()
                .find(|v| &v.id == id)
                .ok_or_else(|| not_found(&format!("/versions/{id}")))?;
            Ok(Reply::ok(wf.resource(v)))
        }
        ([action @ ("enable" | "disable")], &Method::POST) => {
            let wf = &mut w.workflows.list[found.ok_or_else(|| not_found(""))?];
            wf.state = if *action == "enable" { "Enabled" } else { "Disabled" }.into();
            Ok(Reply::with(StatusCode::OK, None))
        }
        ([] | ["versions"] | ["versions", _] | ["enable" | "disable"], _) => Err(method_not_allowed(req)),
        _ => Err(unknown_path(req)),
    }
}

fn put(w: &mut World, req: &Req, found: Option<usize>, name: &str, at: &Place) -> Result<Reply, ArmError> {
    let body = req.json()?;
    let props = body.get("properties");
    let Some(definition) = props.and_then(|p| p.get("definition")).filter(|d| d.is_object()) else {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'the workflow has no properties.definition object'.",
        ));
    };
    let parameters = props
        .and_then(|p| p.get("parameters"))
        .filter(|p| !p.is_null())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let state = match props.and_then(|p| p.get("state")).and_then(Value::as_str) {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("enabled") => Some("Enabled"),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Some("Disabled"),
        Some(s) => {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidWorkflowState",
                format!("The workflow state '{s}' is not valid: use 'Enabled' or 'Disabled'."),
            ));
        }
    };
    let (idx, status) = match found {
        Some(i) => (i, StatusCode::OK),
        None => {
            w.workflows.list.push(Workflow {
                sub: at.sub.clone(),
                group: at.group.clone(),
                name: name.to_string(),
                location: body
                    .get("location")
                    .and_then(Value::as_str)
                    .unwrap_or(super::azure::LOCATION)
                    .to_string(),
                tags: json!({}),
                state: "Enabled".into(),
                versions: Vec::new(),
                broken: Vec::new(),
            });
            (w.workflows.list.len() - 1, StatusCode::CREATED)
        }
    };
    let wf = &mut w.workflows.list[idx];
    if let Some(tags) = body.get("tags").filter(|t| t.is_object()) {
        wf.tags = tags.clone();
    }
    if let Some(s) = state {
        wf.state = s.into();
    }
    let id = next_version_id(wf.versions.iter().map(|v| v.id.as_str()));
    let now = Utc::now();
    let created =
        wf.versions.last().map(|v| v.created).map_or(now, |last| now.max(last + TimeDelta::seconds(1)));
    wf.versions.push(Version { id, created, definition: definition.clone(), parameters });
    let cur = wf.versions.last().ok_or_else(|| unknown_path(req))?;
    Ok(Reply::with(status, Some(wf.resource(cur))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_ids_keep_the_real_shape_and_increase() {
        let ids = ["08585000000000000001", "08585000000000000002"];
        assert_eq!(next_version_id(ids.into_iter()), "08585000000000000003");
        assert_eq!(next_version_id(["v1"].into_iter()), "08585000000000000001");
        assert_eq!(next_version_id(std::iter::empty()).len(), 20);
    }

    #[test]
    fn each_version_gets_a_distinct_definition() {
        assert_ne!(definition_for("1"), definition_for("2"));
        assert_eq!(
            definition_for("08585000000000000001")["actions"]["Response"]["inputs"]["body"]["version"],
            "08585000000000000001"
        );
    }
}
