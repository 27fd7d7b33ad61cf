//! Simulated resource-group template deployments (Microsoft.Resources/deployments): list
//! (newest first, paged), GET, HEAD, PUT as a long-running operation, `exportTemplate`,
//! `validate`, `whatIf`, `cancel`, and `onErrorDeployment` rollback.
//!
//! Conventions:
//! - A deployment's *content* is its template plus the `value` of each parameter. The group's
//!   *live* content starts as the newest `Succeeded` scenario entry's and becomes a deployment's
//!   content when that deployment succeeds (whatever its mode: the simulator tracks content,
//!   not individual resources).
//! - Health of `arm/<g>`: the live content is not the content of a scenario entry marked
//!   `broken = true` — so a redeploy of infra-41's content is healthy iff infra-41 was not broken.
//! - A deployment fails (at completion, `DeploymentFailed`) when its template has a resource
//!   carrying `"rollbookSim": {"fail": true}`, or when its content equals a scenario entry whose
//!   state is `Failed` (and no `Succeeded` entry's): re-running failed content fails again.
//! - PUT answers 201 with `provisioningState: Accepted` and both `Azure-AsyncOperation`
//!   (`…/deployments/{name}/operationStatuses/{id}`: `{"status": "Running"|"Succeeded"|"Failed"}`)
//!   and `Location` (`…/operationResults/{id}`: 202, then the final deployment); GET of the
//!   deployment shows `Accepted`, then `Running`, then the terminal state.
//! - `onErrorDeployment` is resolved at PUT (`LastSuccessful` = newest `Succeeded` deployment of
//!   another name; `SpecificDeployment` must exist and have succeeded, else 400
//!   `InvalidOnErrorDeployment`) and shown resolved in the answer. When the deployment fails, the
//!   target is re-run under its own name in `Complete` mode with its own content (a new
//!   timestamp moves it to the top of the history), and the failed deployment's
//!   `onErrorDeployment.provisioningState` reports how that went.
//! - `whatIf` answers 202 + `Location`; the result compares the live content's resources with the
//!   new template's (`Create`, `Modify` with `delta`, `NoChange`, and `Delete` in Complete mode /
//!   `Ignore` in Incremental mode). Resource ids come from `type` and `name`, with whole-string
//!   `[parameters('x')]` expressions substituted; other template expressions stay literal.
//! - List order is newest first by timestamp.

use axum::http::{Method, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::azure::{
    ArmError, OpKind, OpStatus, Place, RETRY_AFTER_SECS, Reply, Req, World, arm_time, method_not_allowed,
    new_uuid, page, unknown_path,
};
use super::scenario::Scenario;

/// Every resource group's deployment history.
pub(crate) struct Groups {
    list: Vec<Group>,
    seq: u64,
}

struct Group {
    sub: String,
    name: String,
    history: Vec<Deployment>,
    live: Option<Content>,
    broken: Vec<Content>,
    failing: Vec<Content>,
}

/// Template plus parameter values: what "the same deployment" means.
#[derive(Debug, Clone, PartialEq)]
struct Content {
    template: Value,
    parameters: Value,
}

struct Deployment {
    name: String,
    /// `Running` while its operation is in flight, then terminal.
    state: String,
    timestamp: DateTime<Utc>,
    seq: u64,
    mode: String,
    content: Content,
    correlation: String,
    duration: String,
    on_error: Option<OnError>,
    error: Option<Value>,
    op: Option<String>,
}

#[derive(Clone)]
struct OnError {
    kind: String,
    target: String,
    state: Option<String>,
}

/// A deployment waiting to complete.
pub(crate) struct DeployOp {
    group: usize,
    name: String,
}

impl Groups {
    /// The deployment histories of a scenario.
    pub(crate) fn from_scenario(s: &Scenario) -> Groups {
        let mut groups = Groups { list: Vec::new(), seq: 0 };
        for (i, d) in s.arm.deployments.iter().enumerate() {
            let gi = groups.get_or_create(&d.subscription, &d.group);
            let content = Content::new(
                d.template.clone().unwrap_or_else(empty_template),
                d.parameters.clone().unwrap_or_else(|| json!({})),
            );
            let timestamp =
                DateTime::parse_from_rfc3339(&d.timestamp).map(|t| t.with_timezone(&Utc)).unwrap_or_else(
                    |_| DateTime::from_timestamp(1_735_689_600 + i as i64, 0).unwrap_or_default(),
                );
            groups.seq += 1;
            let seq = groups.seq;
            let g = &mut groups.list[gi];
            if d.broken {
                g.broken.push(content.clone());
            }
            if d.state == "Succeeded" {
                g.live = Some(content.clone());
            }
            let error = (d.state == "Failed").then(|| failure_error(&d.name));
            g.history.push(Deployment {
                name: d.name.clone(),
                state: d.state.clone(),
                timestamp,
                seq,
                mode: d.mode.clone().unwrap_or_else(|| "Incremental".into()),
                content,
                correlation: new_uuid(),
                duration: "PT12.3456789S".into(),
                on_error: None,
                error,
                op: None,
            });
        }
        for g in &mut groups.list {
            let succeeded: Vec<Content> =
                g.history.iter().filter(|d| d.state == "Succeeded").map(|d| d.content.clone()).collect();
            g.failing = g
                .history
                .iter()
                .filter(|d| d.state == "Failed" && !succeeded.contains(&d.content))
                .map(|d| d.content.clone())
                .collect();
        }
        groups
    }

    fn find(&self, sub: &str, group: &str) -> Option<usize> {
        self.list.iter().position(|g| g.sub.eq_ignore_ascii_case(sub) && g.name.eq_ignore_ascii_case(group))
    }

    fn get_or_create(&mut self, sub: &str, group: &str) -> usize {
        if let Some(i) = self.find(sub, group) {
            return i;
        }
        self.list.push(Group {
            sub: sub.to_string(),
            name: group.to_string(),
            history: Vec::new(),
            live: None,
            broken: Vec::new(),
            failing: Vec::new(),
        });
        self.list.len() - 1
    }

    fn by_key(&self, group: &str) -> Option<&Group> {
        self.list.iter().find(|g| g.name.eq_ignore_ascii_case(group))
    }

    /// Health of a group: its live content is not a broken one.
    pub(crate) fn healthy(&self, group: &str) -> Option<bool> {
        let g = self.by_key(group)?;
        Some(g.live.as_ref().is_none_or(|c| !g.broken.contains(c)))
    }

    /// `{"live", "live_matches", "deployments"}` of a group.
    pub(crate) fn state(&self, group: &str) -> Option<Value> {
        let g = self.by_key(group)?;
        let newest = g.newest_first();
        let mut matches: Vec<&Deployment> = match &g.live {
            Some(live) => newest.iter().copied().filter(|d| &d.content == live).collect(),
            None => Vec::new(),
        };
        matches.reverse();
        Some(json!({
            "live": matches.first().map(|d| d.name.clone()),
            "live_matches": matches.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
            "deployments": newest.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
        }))
    }
}

impl Group {
    fn newest_first(&self) -> Vec<&Deployment> {
        let mut v: Vec<&Deployment> = self.history.iter().collect();
        v.sort_by_key(|d| std::cmp::Reverse((d.timestamp, d.seq)));
        v
    }

    /// Now, or just after the newest entry when the scenario's clock runs ahead: a new
    /// deployment is always the newest.
    fn newest_stamp(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match self.history.iter().map(|d| d.timestamp).max() {
            Some(last) if last >= now => last + chrono::TimeDelta::milliseconds(1),
            _ => now,
        }
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.history.iter().position(|d| d.name.eq_ignore_ascii_case(name))
    }

    fn fails(&self, c: &Content) -> bool {
        self.failing.contains(c) || has_fail_marker(&c.template)
    }
}

impl Content {
    fn new(template: Value, parameters: Value) -> Content {
        Content { template, parameters: parameter_values(&parameters) }
    }
}

fn empty_template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": []
    })
}

/// Keeps only `value` of each parameter (`{"sku": {"type": "String", "value": "S1"}}` →
/// `{"sku": {"value": "S1"}}`), so parameters read back from a GET compare equal to the originals.
fn parameter_values(p: &Value) -> Value {
    let Some(map) = p.as_object() else {
        return json!({});
    };
    let out: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Object(o) if o.contains_key("value") => {
                    json!({ "value": o.get("value").cloned().unwrap_or(Value::Null) })
                }
                Value::Object(o) if o.contains_key("reference") || o.contains_key("expression") => {
                    Value::Object(o.clone())
                }
                other => json!({ "value": other.clone() }),
            };
            (k.clone(), value)
        })
        .collect();
    Value::Object(out)
}

fn resources_of(template: &Value) -> Vec<&Value> {
    match template.get("resources") {
        Some(Value::Array(a)) => a.iter().collect(),
        // languageVersion 2.0 templates use a symbolic-name map.
        Some(Value::Object(o)) => o.values().collect(),
        _ => Vec::new(),
    }
}

fn has_fail_marker(template: &Value) -> bool {
    resources_of(template)
        .iter()
        .any(|r| r.get("rollbookSim").and_then(|s| s.get("fail")).and_then(Value::as_bool).unwrap_or(false))
}

fn failure_error(name: &str) -> Value {
    json!({
        "code": "DeploymentFailed",
        "message": format!(
            "At least one resource deployment operation failed. Please list deployment operations for details. \
             Please see https://aka.ms/arm-deployment-operations for usage details. (deployment '{name}')"
        ),
        "details": [{
            "code": "ResourceDeploymentFailure",
            "message": "The resource operation completed with terminal provisioning state 'Failed'."
        }]
    })
}

/// Value of a template parameter: the deployment's value, else the template's `defaultValue`.
fn param_value(c: &Content, name: &str) -> Option<Value> {
    c.parameters.get(name).and_then(|p| p.get("value")).cloned().or_else(|| {
        c.template.get("parameters").and_then(|p| p.get(name)).and_then(|p| p.get("defaultValue")).cloned()
    })
}

/// Substitutes whole-string `[parameters('x')]` expressions.
fn substitute(v: &Value, c: &Content) -> Value {
    match v {
        Value::String(s) => {
            let inner = s.strip_prefix("[parameters('").and_then(|r| r.strip_suffix("')]"));
            match inner.and_then(|name| param_value(c, name)) {
                Some(value) => value,
                None => v.clone(),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, c)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), substitute(x, c))).collect()),
        other => other.clone(),
    }
}

/// The resources a content deploys: (resource id, what-if view of the resource).
fn expand(c: &Content, prefix: &str) -> Vec<(String, Value)> {
    resources_of(&c.template)
        .into_iter()
        .filter_map(|r| {
            let r = substitute(r, c);
            let rtype = r.get("type")?.as_str()?.to_string();
            let name = r.get("name")?.as_str()?.to_string();
            let id = resource_id(prefix, &rtype, &name);
            let mut view = Map::new();
            if let Some(o) = r.as_object() {
                for (k, v) in o {
                    if !matches!(k.as_str(), "dependsOn" | "condition" | "copy" | "comments" | "rollbookSim")
                    {
                        view.insert(k.clone(), v.clone());
                    }
                }
            }
            view.insert("id".into(), Value::String(id.clone()));
            Some((id, Value::Object(view)))
        })
        .collect()
}

/// `/…/providers/A.B/t1/n1/t2/n2` from type `A.B/t1/t2` and name `n1/n2`.
fn resource_id(prefix: &str, rtype: &str, name: &str) -> String {
    let mut t = rtype.split('/');
    let ns = t.next().unwrap_or_default();
    let types: Vec<&str> = t.collect();
    let names: Vec<&str> = name.split('/').collect();
    let mut id = format!("{prefix}/providers/{ns}");
    for (i, ty) in types.iter().enumerate() {
        id.push_str(&format!("/{ty}"));
        if let Some(n) = names.get(i) {
            id.push_str(&format!("/{n}"));
        }
    }
    for n in names.iter().skip(types.len()) {
        id.push_str(&format!("/{n}"));
    }
    id
}

/// What-if property changes between two JSON values, as `delta` entries.
fn delta(path: &str, before: &Value, after: &Value, out: &mut Vec<Value>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if k == "id" && path.is_empty() {
                    continue;
                }
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match (b.get(k), a.get(k)) {
                    (Some(x), Some(y)) => delta(&p, x, y, out),
                    (None, Some(y)) => {
                        out.push(json!({ "path": p, "propertyChangeType": "Create", "after": y }))
                    }
                    (Some(x), None) => {
                        out.push(json!({ "path": p, "propertyChangeType": "Delete", "before": x }))
                    }
                    (None, None) => {}
                }
            }
        }
        (Value::Array(_), Value::Array(_)) => out.push(json!({
            "path": path, "propertyChangeType": "Array", "before": before, "after": after
        })),
        _ => out.push(json!({
            "path": path, "propertyChangeType": "Modify", "before": before, "after": after
        })),
    }
}

/// The what-if changes from `live` to `new`.
fn what_if_changes(live: Option<&Content>, new: &Content, complete: bool, prefix: &str) -> Vec<Value> {
    let before = live.map(|c| expand(c, prefix)).unwrap_or_default();
    let after = expand(new, prefix);
    let key = |id: &str| id.to_ascii_lowercase();
    let mut changes = Vec::new();
    for (id, a) in &after {
        match before.iter().find(|(b, _)| key(b) == key(id)) {
            None => changes.push(json!({ "resourceId": id, "changeType": "Create", "after": a })),
            Some((_, b)) if b == a => {
                changes.push(json!({ "resourceId": id, "changeType": "NoChange", "before": b, "after": a }))
            }
            Some((_, b)) => {
                let mut d = Vec::new();
                delta("", b, a, &mut d);
                changes.push(json!({
                    "resourceId": id, "changeType": "Modify", "before": b, "after": a, "delta": d
                }));
            }
        }
    }
    for (id, b) in &before {
        if !after.iter().any(|(a, _)| key(a) == key(id)) {
            let kind = if complete { "Delete" } else { "Ignore" };
            changes.push(json!({ "resourceId": id, "changeType": kind, "before": b }));
        }
    }
    changes
}

fn template_hash(template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    let mut n = 0u64;
    for b in digest.iter().take(8) {
        n = (n << 8) | u64::from(*b);
    }
    (n % 10_000_000_000_000_000_000).to_string()
}

fn typed_parameters(c: &Content) -> Value {
    let Some(map) = c.parameters.as_object() else {
        return json!({});
    };
    let out: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let declared = c
                .template
                .get("parameters")
                .and_then(|p| p.get(k))
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str);
            let value = v.get("value").cloned().unwrap_or(Value::Null);
            let ty = match declared {
                Some(t) => capitalize(t),
                None => match &value {
                    Value::Bool(_) => "Bool".into(),
                    Value::Number(_) => "Int".into(),
                    Value::Array(_) => "Array".into(),
                    Value::Object(_) => "Object".into(),
                    _ => "String".into(),
                },
            };
            if ty.starts_with("Secure") {
                (k.clone(), json!({ "type": ty }))
            } else {
                (k.clone(), json!({ "type": ty, "value": value }))
            }
        })
        .collect();
    Value::Object(out)
}

fn capitalize(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "securestring" => "SecureString".into(),
        "secureobject" => "SecureObject".into(),
        "int" => "Int".into(),
        "bool" => "Bool".into(),
        "object" => "Object".into(),
        "array" => "Array".into(),
        _ => "String".into(),
    }
}

fn providers(c: &Content) -> Value {
    let mut by_ns: Vec<(String, Vec<String>)> = Vec::new();
    for r in resources_of(&c.template) {
        let Some(t) = r.get("type").and_then(Value::as_str) else {
            continue;
        };
        let Some((ns, rtype)) = t.split_once('/') else {
            continue;
        };
        match by_ns.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(ns)) {
            Some((_, types)) => {
                if !types.iter().any(|x| x == rtype) {
                    types.push(rtype.to_string());
                }
            }
            None => by_ns.push((ns.to_string(), vec![rtype.to_string()])),
        }
    }
    Value::Array(
        by_ns
            .into_iter()
            .map(|(ns, types)| {
                json!({
                    "namespace": ns,
                    "resourceTypes": types.into_iter().map(|t| json!({
                        "resourceType": t, "locations": [super::azure::LOCATION]
                    })).collect::<Vec<_>>()
                })
            })
            .collect(),
    )
}

/// Requests under `…/providers/Microsoft.Resources/`; `rest` indexes the segment after the namespace.
pub(crate) fn handle(w: &mut World, req: &Req, at: &Place, rest: usize) -> Result<Reply, ArmError> {
    let l: Vec<&str> = req.lower[rest..].iter().map(String::as_str).collect();
    let s = &req.segs[rest..];
    if l[0] != "deployments" {
        return Err(unknown_path(req));
    }
    // A group gets a history only when something is deployed (or tried) there, so reads do not
    // make `arm/<g>` appear for groups the scenario has no deployments in.
    let creates = matches!(
        (l.as_slice(), &req.method),
        (["deployments", _], &Method::PUT) | (["deployments", _, "validate" | "whatif"], &Method::POST)
    );
    let gi = match w.deployments.find(&at.sub, &at.group) {
        Some(gi) => gi,
        None if creates => w.deployments.get_or_create(&at.sub, &at.group),
        None => {
            return match (l.as_slice(), &req.method) {
                (["deployments"], &Method::GET) => Ok(Reply::ok(page(req, Vec::new())?)),
                (["deployments", _], &Method::HEAD) => Ok(Reply::with(StatusCode::NOT_FOUND, None)),
                (["deployments", _], &Method::GET)
                | (["deployments", _, "exporttemplate" | "cancel"], &Method::POST) => Err(not_found(&s[1])),
                (["deployments", ..], _) => Err(method_not_allowed(req)),
                _ => Err(unknown_path(req)),
            };
        }
    };
    match l.as_slice() {
        ["deployments"] => {
            if req.method != Method::GET {
                return Err(method_not_allowed(req));
            }
            let running: Vec<String> = w.deployments.list[gi]
                .history
                .iter()
                .filter(|d| d.op.is_some())
                .map(|d| deploy_key(at, &d.name))
                .collect();
            for k in running {
                w.observe(&k);
            }
            list(w, req, gi, at)
        }
        ["deployments", _, tail @ ..] => {
            let name = s[1].clone();
            w.observe(&deploy_key(at, &name));
            match (tail, &req.method) {
                ([], &Method::GET) => {
                    let d = find(w, gi, &name)?;
                    Ok(Reply::ok(body_of(w, gi, d, at)))
                }
                ([], &Method::HEAD) => {
                    let status = if w.deployments.list[gi].get(&name).is_some() {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::NOT_FOUND
                    };
                    Ok(Reply::with(status, None))
                }
                ([], &Method::PUT) => create(w, req, gi, &name, at),
                (["exporttemplate"], &Method::POST) => {
                    let d = find(w, gi, &name)?;
                    let t = w.deployments.list[gi].history[d].content.template.clone();
                    Ok(Reply::ok(json!({ "template": t })))
                }
                (["validate"], &Method::POST) => validate(w, req, gi, &name, at),
                (["whatif"], &Method::POST) => what_if(w, req, gi, &name, at),
                (["cancel"], &Method::POST) => cancel(w, gi, &name),
                ([], _) | (["exporttemplate" | "validate" | "whatif" | "cancel"], _) => {
                    Err(method_not_allowed(req))
                }
                _ => Err(unknown_path(req)),
            }
        }
        _ => Err(unknown_path(req)),
    }
}

fn deploy_key(at: &Place, name: &str) -> String {
    format!("deploy:{}/{}/{}", at.sub, at.group, name).to_ascii_lowercase()
}

fn not_found(name: &str) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "DeploymentNotFound",
        format!("Deployment '{name}' could not be found."),
    )
}

fn find(w: &World, gi: usize, name: &str) -> Result<usize, ArmError> {
    w.deployments.list[gi].get(name).ok_or_else(|| not_found(name))
}

fn list(w: &World, req: &Req, gi: usize, at: &Place) -> Result<Reply, ArmError> {
    let g = &w.deployments.list[gi];
    let filter = req.query("$filter").map(|f| {
        let lower = f.to_ascii_lowercase();
        lower
            .split_once("provisioningstate eq '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(state, _)| state.to_string())
    });
    let filter = match filter {
        Some(None) => {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidFilterInQueryString",
                "The filter in the query string is invalid: only provisioningState eq '<state>' is supported.",
            ));
        }
        Some(Some(s)) => Some(s),
        None => None,
    };
    let items: Vec<Value> = g
        .newest_first()
        .into_iter()
        .filter(|d| filter.as_ref().is_none_or(|f| shown_state(w, d).eq_ignore_ascii_case(f)))
        .map(|d| deployment_json(w, g, d, at))
        .collect();
    Ok(Reply::ok(page(req, items)?))
}

fn shown_state(w: &World, d: &Deployment) -> String {
    match &d.op {
        Some(op) => match w.ops.get(op) {
            Some(o) if o.polls_left == w.lro_polls && o.status == OpStatus::Running => "Accepted".into(),
            _ => "Running".into(),
        },
        None => d.state.clone(),
    }
}

fn deployment_json(w: &World, g: &Group, d: &Deployment, at: &Place) -> Value {
    let state = shown_state(w, d);
    let mut props = json!({
        "templateHash": template_hash(&d.content.template),
        "parameters": typed_parameters(&d.content),
        "mode": d.mode,
        "provisioningState": state,
        "timestamp": arm_time(d.timestamp),
        "duration": d.duration,
        "correlationId": d.correlation,
        "providers": providers(&d.content),
        "dependencies": [],
    });
    let prefix = at.prefix();
    if state == "Succeeded" {
        props["outputs"] = json!({});
        props["outputResources"] = Value::Array(
            expand(&d.content, &prefix).into_iter().map(|(id, _)| json!({ "id": id })).collect(),
        );
    }
    if let Some(e) = &d.error {
        props["error"] = e.clone();
    }
    if let Some(o) = &d.on_error {
        let mut v = json!({ "type": o.kind, "deploymentName": o.target });
        if let Some(s) = &o.state {
            v["provisioningState"] = Value::String(s.clone());
        }
        props["onErrorDeployment"] = v;
    }
    json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Resources/deployments/{}", g.sub, g.name, d.name),
        "name": d.name,
        "type": "Microsoft.Resources/deployments",
        "properties": props,
    })
}

fn body_of(w: &World, gi: usize, d: usize, at: &Place) -> Value {
    let g = &w.deployments.list[gi];
    deployment_json(w, g, &g.history[d], at)
}

/// The deployment an operation created, as its final `Location` answer shows it.
pub(crate) fn deployment_body(w: &World, op: &DeployOp) -> Result<Value, ArmError> {
    let g = w.deployments.list.get(op.group).ok_or_else(|| not_found(&op.name))?;
    let d = g.get(&op.name).ok_or_else(|| not_found(&op.name))?;
    let at = Place { sub: g.sub.clone(), group: g.name.clone() };
    Ok(deployment_json(w, g, &g.history[d], &at))
}

/// The error of a failed deployment operation.
pub(crate) fn deployment_error(w: &World, op: &DeployOp) -> Option<Value> {
    let g = w.deployments.list.get(op.group)?;
    let d = g.get(&op.name)?;
    g.history[d].error.clone()
}

/// A parsed `Deployment` request body.
struct Incoming {
    mode: String,
    content: Content,
    on_error: Option<(String, Option<String>)>,
}

fn invalid_content(message: &str) -> ArmError {
    ArmError::new(
        StatusCode::BAD_REQUEST,
        "InvalidRequestContent",
        format!("The request content was invalid and could not be deserialized: '{message}'."),
    )
}

fn parse_deployment(req: &Req, name: &str) -> Result<Incoming, ArmError> {
    let valid_name = !name.is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c));
    if !valid_name {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidDeploymentName",
            format!(
                "The deployment name '{name}' is invalid. It must be 1 to 64 characters of letters, \
                 digits, '-', '_', '.', '(' or ')'."
            ),
        ));
    }
    let body = req.json()?;
    let Some(props) = body.get("properties").filter(|p| p.is_object()) else {
        return Err(invalid_content(
            "Required property 'properties' not found in JSON. Path '', line 1, position 1.",
        ));
    };
    let mode = match props.get("mode").and_then(Value::as_str) {
        None => {
            return Err(invalid_content("Required property 'mode' not found in JSON. Path 'properties'."));
        }
        Some(m) if m.eq_ignore_ascii_case("incremental") => "Incremental".to_string(),
        Some(m) if m.eq_ignore_ascii_case("complete") => "Complete".to_string(),
        Some(m) => {
            return Err(invalid_content(&format!(
                "Error converting value \"{m}\" to type 'DeploymentMode'. Path 'properties.mode'."
            )));
        }
    };
    if props.get("templateLink").is_some() || props.get("parametersLink").is_some() {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidContentLink",
            "The simulator cannot fetch linked templates or parameters: send 'template' and 'parameters' inline.",
        ));
    }
    let template = match props.get("template") {
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| invalid_content(&format!("template is not valid JSON: {e}")))?,
        Some(t @ Value::Object(_)) => t.clone(),
        _ => {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidTemplate",
                "Deployment template validation failed: 'The template is missing: send properties.template.'",
            ));
        }
    };
    if template.get("resources").is_none() {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTemplate",
            "Deployment template validation failed: 'Required property 'resources' not found in JSON. Path '', line 1, position 1.'.",
        ));
    }
    let parameters = match props.get("parameters") {
        None | Some(Value::Null) => json!({}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return Err(invalid_content("'properties.parameters' must be an object."));
        }
    };
    let on_error = match props.get("onErrorDeployment") {
        None | Some(Value::Null) => None,
        Some(o) => {
            let kind = o.get("type").and_then(Value::as_str).unwrap_or("LastSuccessful");
            let kind = if kind.eq_ignore_ascii_case("lastsuccessful") {
                "LastSuccessful"
            } else if kind.eq_ignore_ascii_case("specificdeployment") {
                "SpecificDeployment"
            } else {
                return Err(invalid_content(&format!(
                    "Error converting value \"{kind}\" to type 'OnErrorDeploymentType'. Path 'properties.onErrorDeployment.type'."
                )));
            };
            let target = o.get("deploymentName").and_then(Value::as_str).map(str::to_string);
            Some((kind.to_string(), target))
        }
    };
    Ok(Incoming { mode, content: Content::new(template, parameters), on_error })
}

fn invalid_on_error(message: String) -> ArmError {
    ArmError::new(StatusCode::BAD_REQUEST, "InvalidOnErrorDeployment", message)
}

fn resolve_on_error(g: &Group, name: &str, kind: &str, target: Option<&str>) -> Result<OnError, ArmError> {
    let resolved = match kind {
        "SpecificDeployment" => {
            let Some(t) = target.filter(|t| !t.is_empty()) else {
                return Err(invalid_on_error(
                    "The 'deploymentName' of onErrorDeployment is required when its type is 'SpecificDeployment'."
                        .into(),
                ));
            };
            let Some(i) = g.get(t).filter(|_| !t.eq_ignore_ascii_case(name)) else {
                return Err(invalid_on_error(format!(
                    "The deployment '{t}' named in onErrorDeployment could not be found in the deployment history."
                )));
            };
            if g.history[i].state != "Succeeded" {
                return Err(invalid_on_error(format!(
                    "The deployment '{t}' named in onErrorDeployment did not succeed (state '{}'): only a successful deployment can be redeployed.",
                    g.history[i].state
                )));
            }
            g.history[i].name.clone()
        }
        _ => match g
            .newest_first()
            .into_iter()
            .find(|d| d.state == "Succeeded" && !d.name.eq_ignore_ascii_case(name))
        {
            Some(d) => d.name.clone(),
            None => {
                return Err(invalid_on_error(
                    "No successful deployment was found in the deployment history to roll back to.".into(),
                ));
            }
        },
    };
    Ok(OnError { kind: kind.to_string(), target: resolved, state: None })
}

fn create(w: &mut World, req: &Req, gi: usize, name: &str, at: &Place) -> Result<Reply, ArmError> {
    let inc = parse_deployment(req, name)?;
    let g = &w.deployments.list[gi];
    if let Some(i) = g.get(name)
        && g.history[i].op.is_some()
    {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "DeploymentActive",
            format!(
                "Unable to edit or replace deployment '{name}': previous deployment from '{}' is still active. \
                     Please see https://aka.ms/arm-deploy for usage details.",
                arm_time(g.history[i].timestamp)
            ),
        ));
    }
    let on_error = match &inc.on_error {
        Some((kind, target)) => Some(resolve_on_error(g, name, kind, target.as_deref())?),
        None => None,
    };
    let key = deploy_key(at, name);
    let op = w.start_op(key, OpKind::Deploy(DeployOp { group: gi, name: name.to_string() }));
    w.deployments.seq += 1;
    let seq = w.deployments.seq;
    let g = &mut w.deployments.list[gi];
    let timestamp = g.newest_stamp();
    let existed = g.get(name);
    if let Some(i) = existed {
        g.history.remove(i);
    }
    g.history.push(Deployment {
        name: name.to_string(),
        state: "Running".into(),
        timestamp,
        seq,
        mode: inc.mode,
        content: inc.content,
        correlation: new_uuid(),
        duration: "PT0S".into(),
        on_error,
        error: None,
        op: Some(op.clone()),
    });
    let d = g.history.len() - 1;
    let base = format!("{}/providers/Microsoft.Resources/deployments/{name}", at.prefix());
    let body = body_of(w, gi, d, at);
    let status = if existed.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok(Reply::with(status, Some(body))
        .header(
            header::HeaderName::from_static("azure-asyncoperation"),
            req.url(&format!("{base}/operationStatuses/{op}")),
        )
        .header(header::LOCATION, req.url(&format!("{base}/operationResults/{op}")))
        .header(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
}

/// Applies a completed deployment: success makes its content live; failure triggers
/// `onErrorDeployment`. Returns whether the deployment succeeded.
pub(crate) fn complete_deploy(w: &mut World, op: &DeployOp) -> bool {
    w.deployments.seq += 1;
    let seq = w.deployments.seq;
    let Some(g) = w.deployments.list.get_mut(op.group) else {
        return false;
    };
    let Some(i) = g.get(&op.name) else {
        return false;
    };
    let now = g.newest_stamp();
    let fails = g.fails(&g.history[i].content);
    let started = g.history[i].timestamp;
    let d = &mut g.history[i];
    d.op = None;
    d.duration = iso_duration(now - started);
    if !fails {
        d.state = "Succeeded".into();
        g.live = Some(d.content.clone());
        return true;
    }
    d.state = "Failed".into();
    d.error = Some(failure_error(&op.name));
    let Some(on_error) = d.on_error.clone() else {
        return false;
    };
    // Roll back: re-run the target under its own name, in Complete mode, with its own content.
    let outcome = match g.get(&on_error.target) {
        Some(t) => {
            let content = g.history[t].content.clone();
            let ok = !g.fails(&content);
            let target = &mut g.history[t];
            target.timestamp = now;
            target.seq = seq;
            target.mode = "Complete".into();
            target.correlation = new_uuid();
            if ok {
                target.state = "Succeeded".into();
                target.error = None;
                g.live = Some(content);
            } else {
                target.state = "Failed".into();
                target.error = Some(failure_error(&on_error.target));
            }
            if ok { "Succeeded" } else { "Failed" }
        }
        None => "Failed",
    };
    if let Some(i) = g.get(&op.name)
        && let Some(o) = g.history[i].on_error.as_mut()
    {
        o.state = Some(outcome.to_string());
    }
    false
}

fn iso_duration(d: chrono::TimeDelta) -> String {
    let micros = d.num_microseconds().unwrap_or(0).max(0);
    format!("PT{}.{:06}S", micros / 1_000_000, micros % 1_000_000)
}

fn validate(w: &mut World, req: &Req, gi: usize, name: &str, at: &Place) -> Result<Reply, ArmError> {
    let inc = parse_deployment(req, name)?;
    if let Some((kind, target)) = &inc.on_error {
        resolve_on_error(&w.deployments.list[gi], name, kind, target.as_deref())?;
    }
    let g = &w.deployments.list[gi];
    let d = Deployment {
        name: name.to_string(),
        state: "Succeeded".into(),
        timestamp: Utc::now(),
        seq: 0,
        mode: inc.mode,
        content: inc.content,
        correlation: new_uuid(),
        duration: "PT0S".into(),
        on_error: None,
        error: None,
        op: None,
    };
    let mut body = deployment_json(w, g, &d, at);
    if let Some(p) = body.get_mut("properties").and_then(Value::as_object_mut) {
        p.remove("outputs");
        let validated = p.remove("outputResources").unwrap_or_else(|| json!([]));
        p.insert("validatedResources".into(), validated);
    }
    Ok(Reply::ok(body))
}

fn what_if(w: &mut World, req: &Req, gi: usize, name: &str, at: &Place) -> Result<Reply, ArmError> {
    let inc = parse_deployment(req, name)?;
    let g = &w.deployments.list[gi];
    let changes = what_if_changes(g.live.as_ref(), &inc.content, inc.mode == "Complete", &at.prefix());
    let result = json!({ "status": "Succeeded", "properties": { "changes": changes } });
    let op = w.start_op(String::new(), OpKind::WhatIf(result));
    Ok(Reply::with(StatusCode::ACCEPTED, None)
        .header(header::LOCATION, req.url(&format!("/subscriptions/{}/operationresults/{op}", at.sub)))
        .header(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
}

fn cancel(w: &mut World, gi: usize, name: &str) -> Result<Reply, ArmError> {
    let i = find(w, gi, name)?;
    let Some(op) = w.deployments.list[gi].history[i].op.take() else {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "DeploymentCannotBeCancelled",
            format!(
                "The deployment '{name}' cannot be cancelled: only deployments in state 'Accepted' or 'Running' can be."
            ),
        ));
    };
    w.deployments.list[gi].history[i].state = "Canceled".into();
    if let Some(o) = w.ops.get_mut(&op) {
        o.status = OpStatus::Canceled;
        o.end = Some(Utc::now());
    }
    Ok(Reply::with(StatusCode::NO_CONTENT, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SCENARIO: &str = r#"
[[arm.deployments]]
group = "rg"
name = "infra-40"
state = "Succeeded"
timestamp = "2026-11-19T10:00:00Z"
template = { contentVersion = "1.0.0.0", resources = [] }
parameters = { sku = { value = "S0" } }

[[arm.deployments]]
group = "rg"
name = "infra-41"
state = "Succeeded"
timestamp = "2026-11-20T10:00:00Z"
template = { contentVersion = "1.0.0.0", resources = [] }
parameters = { sku = { value = "S1" } }
broken = true

[[arm.deployments]]
group = "rg"
name = "infra-42"
state = "Failed"
timestamp = "2026-11-21T10:00:00Z"
template = { contentVersion = "1.0.0.0", resources = [] }
parameters = { sku = { value = "S2" } }
"#;

    fn groups() -> Groups {
        Groups::from_scenario(&Scenario::parse(Path::new("t.toml"), SCENARIO).unwrap())
    }

    #[test]
    fn newest_succeeded_is_live_and_broken_content_is_unhealthy() {
        let g = groups();
        assert_eq!(g.healthy("rg"), Some(false));
        let s = g.state("RG").unwrap();
        assert_eq!(s["live"], "infra-41");
        assert_eq!(s["deployments"], json!(["infra-42", "infra-41", "infra-40"]));
        let grp = &g.list[0];
        assert!(grp.fails(&grp.history[2].content), "failed content fails again");
        assert!(!grp.fails(&grp.history[0].content));
    }

    #[test]
    fn parameters_compare_by_value_only() {
        let a = Content::new(json!({}), json!({"sku": {"type": "String", "value": "S1"}}));
        let b = Content::new(json!({}), json!({"sku": {"value": "S1"}}));
        assert_eq!(a, b);
    }

    #[test]
    fn fail_marker_is_found_on_a_resource() {
        let t = json!({"resources": [{"type": "A.B/c", "name": "x", "rollbookSim": {"fail": true}}]});
        assert!(has_fail_marker(&t));
        assert!(!has_fail_marker(&json!({"resources": []})));
    }

    #[test]
    fn resource_ids_interleave_types_and_names() {
        assert_eq!(
            resource_id("/p", "Microsoft.Network/virtualNetworks/subnets", "vnet/sub1"),
            "/p/providers/Microsoft.Network/virtualNetworks/vnet/subnets/sub1"
        );
    }

    #[test]
    fn what_if_reports_create_modify_and_delete() {
        let live = Content::new(
            json!({"resources": [
                {"type": "A.B/c", "name": "keep", "apiVersion": "2020-01-01", "properties": {"size": 1}},
                {"type": "A.B/c", "name": "gone", "apiVersion": "2020-01-01"}
            ]}),
            json!({}),
        );
        let new = Content::new(
            json!({"parameters": {"n": {"type": "string"}}, "resources": [
                {"type": "A.B/c", "name": "keep", "apiVersion": "2020-01-01", "properties": {"size": 2}},
                {"type": "A.B/c", "name": "[parameters('n')]", "apiVersion": "2020-01-01"}
            ]}),
            json!({"n": {"value": "fresh"}}),
        );
        let changes = what_if_changes(Some(&live), &new, true, "/s/rg");
        let kinds: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c["resourceId"].as_str().unwrap(), c["changeType"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("/s/rg/providers/A.B/c/keep", "Modify"),
                ("/s/rg/providers/A.B/c/fresh", "Create"),
                ("/s/rg/providers/A.B/c/gone", "Delete"),
            ]
        );
        assert_eq!(
            changes[0]["delta"],
            json!([{"path": "properties.size", "propertyChangeType": "Modify", "before": 1, "after": 2}])
        );
        let incremental = what_if_changes(Some(&live), &new, false, "/s/rg");
        assert_eq!(incremental[2]["changeType"], "Ignore");
    }

    #[test]
    fn template_hash_is_numeric_and_stable() {
        let h = template_hash(&json!({"a": 1}));
        assert!(h.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(h, template_hash(&json!({"a": 1})));
    }
}
