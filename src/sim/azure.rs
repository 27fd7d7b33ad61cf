//! Simulated Azure Resource Manager: the entry point ([`AzureWorld`]) and the plumbing every
//! provider shares — ARM's error envelope, request ids, `api-version` and bearer checks,
//! case-insensitive routing and the store of long-running operations.
//!
//! Conventions (the providers' modules document their own):
//! - Routes: everything under `/subscriptions/…` (first segment in lower, Title or UPPER case;
//!   every later segment is matched case-insensitively, names keep the case the scenario gave).
//! - Order of checks, as ARM does: `api-version` (400 `MissingApiVersionParameter` /
//!   `InvalidApiVersionParameter`), then `Authorization: Bearer <anything>` (401
//!   `AuthenticationFailed` / `AuthenticationFailedInvalidHeader`), then subscription (404
//!   `SubscriptionNotFound`), resource group (404 `ResourceGroupNotFound`), resource (404
//!   `ResourceNotFound`, deployments `DeploymentNotFound`).
//! - An `api-version` is accepted when it is `YYYY-MM-DD` (optionally `-preview` or another
//!   `-suffix`), a real calendar date, not before the provider's first version and not after
//!   today; an older or future one is refused as ARM refuses an unsupported version.
//! - Every answer, errors included, carries `x-ms-request-id` (fresh), `x-ms-correlation-request-id`
//!   (the caller's, else fresh) and ARM's rate-limit headers; `x-ms-client-request-id` is echoed
//!   when `x-ms-return-client-request-id: true` is sent.
//! - Long-running operations: the first `[sim] lro_polls` observations (default 2) answer "in
//!   progress"; the operation completes at the next one, and its effect becomes visible then.
//!   An observation is a GET of the operation's `Location` / `Azure-AsyncOperation` URL or any
//!   request to the resource it changes (so a client that lost the URL still sees it finish).
//!   `Retry-After` is `1` (seconds) so real clients do not fall back to their 30 s default.
//! - Paged lists return at most [`PAGE_SIZE`] items per page and an absolute `nextLink`
//!   (`$skiptoken=<offset>`), so clients must follow it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::scenario::Scenario;
use super::{aks, appservice, arm, logicapp};

/// Maps a simulated Kubernetes context name to its API server URL (for AKS kubeconfigs).
pub type KubeServerFor = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Items per page of every paged list (small on purpose, so clients must follow `nextLink`).
pub const PAGE_SIZE: usize = 2;

/// `Retry-After` (seconds) sent with every long-running operation.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The simulated Azure of one scenario: App Service sites, resource-group deployments,
/// Logic Apps workflows and AKS clusters, behind one lock.
pub struct AzureWorld {
    inner: Mutex<World>,
}

/// Everything the simulated ARM knows; providers mutate it under the [`AzureWorld`] lock.
pub(crate) struct World {
    /// Known subscriptions (lowercase).
    pub subscriptions: BTreeSet<String>,
    /// (subscription, group) lowercase → the group's name as the scenario spells it.
    pub groups: BTreeMap<(String, String), String>,
    /// App Service sites.
    pub sites: appservice::Sites,
    /// Resource-group deployment histories.
    pub deployments: arm::Groups,
    /// Logic Apps workflows.
    pub workflows: logicapp::Workflows,
    /// AKS clusters.
    pub clusters: aks::Clusters,
    /// Long-running operations by id (kept after completion so late polls still answer).
    pub ops: HashMap<String, Operation>,
    /// Observations an operation answers "in progress" before it completes.
    pub lro_polls: u32,
}

/// One long-running operation.
pub(crate) struct Operation {
    /// Key of the resource it changes (requests to it count as observations); empty for none.
    pub resource: String,
    /// Observations left before completion.
    pub polls_left: u32,
    /// Terminal once completed.
    pub status: OpStatus,
    /// What it does.
    pub kind: OpKind,
    /// When it started.
    pub start: DateTime<Utc>,
    /// When it ended.
    pub end: Option<DateTime<Utc>>,
}

/// Progress of an [`Operation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpStatus {
    /// Still running.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped before it finished.
    Canceled,
}

impl OpStatus {
    fn as_str(self) -> &'static str {
        match self {
            OpStatus::Running => "Running",
            OpStatus::Succeeded => "Succeeded",
            OpStatus::Failed => "Failed",
            OpStatus::Canceled => "Canceled",
        }
    }
}

/// What a long-running operation does when it completes.
pub(crate) enum OpKind {
    /// An App Service slot swap.
    Swap(appservice::SwapOp),
    /// A resource-group template deployment.
    Deploy(arm::DeployOp),
    /// A what-if whose result is already computed.
    WhatIf(Value),
}

/// A parsed request as every provider sees it.
pub(crate) struct Req {
    /// HTTP method.
    pub method: Method,
    /// Path segments, percent-decoded, original case.
    pub segs: Vec<String>,
    /// The same, lowercase (for matching).
    pub lower: Vec<String>,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// The validated api-version.
    pub api_version: String,
    /// `http://host:port` of this server, for absolute URLs.
    pub base: String,
    /// Raw body.
    pub body: Bytes,
}

impl Req {
    /// A query parameter by case-insensitive name.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; an empty body is `null`; anything unparsable is ARM's `InvalidRequestContent`.
    pub(crate) fn json(&self) -> Result<Value, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })
    }

    /// An absolute URL on this server for `path` with this request's api-version.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}?api-version={}", self.base, path, self.api_version)
    }

    /// The absolute `nextLink` for the page starting at `offset`: this request's path and query
    /// with `$skiptoken` replaced.
    pub(crate) fn next_link(&self, offset: usize) -> String {
        let path: String = self.segs.iter().map(|s| format!("/{}", encode_segment(s))).collect();
        let mut query = form_query(self.query.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken")));
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!("%24skiptoken={offset}"));
        format!("{}{}?{}", self.base, path, query)
    }

    /// `$skiptoken` as an offset (0 when absent or not a number).
    pub(crate) fn skip(&self) -> usize {
        self.query("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// `$top` when given; a malformed one is refused as ARM refuses it.
    pub(crate) fn top(&self) -> Result<Option<usize>, ArmError> {
        match self.query("$top") {
            None => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| {
                ArmError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidQueryParameterValue",
                    format!("The value '{t}' of query parameter '$top' is invalid."),
                )
            }),
        }
    }
}

/// One page of `items`, honouring `$top` (a cap on the whole listing) and `$skiptoken`:
/// `{"value": [...], "nextLink": ...}` (no `nextLink` on the last page).
pub(crate) fn page(req: &Req, items: Vec<Value>) -> Result<Value, ArmError> {
    let total = match req.top()? {
        Some(top) => top.min(items.len()),
        None => items.len(),
    };
    let start = req.skip().min(total);
    let end = (start + PAGE_SIZE).min(total);
    let value: Vec<Value> = items[start..end].to_vec();
    let mut body = json!({ "value": value });
    if end < total {
        body["nextLink"] = Value::String(req.next_link(end));
    }
    Ok(body)
}

/// An answer before the shared headers are added.
pub(crate) struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Extra headers (`Location`, `Retry-After`…).
    pub headers: Vec<(HeaderName, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl Reply {
    /// 200 with a JSON body.
    pub(crate) fn ok(body: Value) -> Reply {
        Reply::with(StatusCode::OK, Some(body))
    }

    /// A status with an optional JSON body.
    pub(crate) fn with(status: StatusCode, body: Option<Value>) -> Reply {
        Reply { status, headers: Vec::new(), body }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// An ARM error answer: `{"error": {"code", "message", "details"?}}` with a status.
#[derive(Debug, Clone)]
pub(crate) struct ArmError {
    /// HTTP status.
    pub status: StatusCode,
    /// PascalCase code.
    pub code: String,
    /// Human message, worded as ARM words it.
    pub message: String,
    /// Nested details (same shape).
    pub details: Vec<Value>,
    /// Extra headers (`WWW-Authenticate`).
    pub headers: Vec<(HeaderName, String)>,
}

impl ArmError {
    /// An error with no details.
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ArmError {
        ArmError {
            status,
            code: code.to_string(),
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// ARM's generic 404 for a tracked resource: `type_path` like `Microsoft.Web/sites/x`.
    pub(crate) fn resource_not_found(type_path: &str, group: &str) -> ArmError {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{type_path}' under resource group '{group}' was not found. \
                 For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// A 400 `BadRequest` in the provider's words.
    pub(crate) fn bad_request(message: impl Into<String>) -> ArmError {
        ArmError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// The JSON envelope.
    pub(crate) fn envelope(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        json!({ "error": error })
    }

    fn not_routable(req: &Req) -> ArmError {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The simulator has no {} operation at '/{}'.", req.method, req.segs.join("/")),
        )
    }
}

/// 405 for a known path with a method it does not take.
pub(crate) fn method_not_allowed(req: &Req) -> ArmError {
    ArmError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("The requested method '{}' is not allowed on '/{}'.", req.method, req.segs.join("/")),
    )
}

/// Fallback for a path under a known provider that names nothing the simulator serves.
pub(crate) fn unknown_path(req: &Req) -> ArmError {
    ArmError::not_routable(req)
}

impl AzureWorld {
    /// Builds the Azure side of a scenario.
    pub fn from_scenario(s: &Scenario) -> Self {
        let mut subscriptions = BTreeSet::new();
        let mut groups = BTreeMap::new();
        subscriptions.insert(super::scenario::DEFAULT_SUBSCRIPTION.to_string());
        let mut add = |sub: &str, group: &str| {
            subscriptions.insert(sub.to_ascii_lowercase());
            groups
                .entry((sub.to_ascii_lowercase(), group.to_ascii_lowercase()))
                .or_insert_with(|| group.to_string());
        };
        for x in &s.appservice.sites {
            add(&x.subscription, &x.group);
        }
        for x in &s.arm.deployments {
            add(&x.subscription, &x.group);
        }
        for x in &s.logicapp.workflows {
            add(&x.subscription, &x.group);
        }
        for x in &s.aks.clusters {
            add(&x.subscription, &x.group);
        }
        let world = World {
            subscriptions,
            groups,
            sites: appservice::Sites::from_scenario(s),
            deployments: arm::Groups::from_scenario(s),
            workflows: logicapp::Workflows::from_scenario(s),
            clusters: aks::Clusters::from_scenario(s),
            ops: HashMap::new(),
            lro_polls: s.sim.lro_polls.unwrap_or(2),
        };
        AzureWorld { inner: Mutex::new(world) }
    }

    /// Routes for every ARM path (`/subscriptions/...`), case-insensitive, api-version checked.
    pub fn router(self: Arc<Self>, kube: KubeServerFor) -> Router {
        let ctx = Ctx { world: self, kube };
        Router::new()
            .route("/subscriptions", axum::routing::any(handle))
            .route("/subscriptions/{*rest}", axum::routing::any(handle))
            .route("/Subscriptions/{*rest}", axum::routing::any(handle))
            .route("/SUBSCRIPTIONS/{*rest}", axum::routing::any(handle))
            .with_state(ctx)
    }

    /// Health of `appservice/<g>/<site>`, `arm/<g>`, `logicapp/<g>/<wf>`; None if unknown key.
    pub fn healthy(&self, key: &str) -> Option<bool> {
        let w = self.lock();
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            ["appservice", g, site] => w.sites.healthy(g, site),
            ["arm", g] => w.deployments.healthy(g),
            ["logicapp", g, wf] => w.workflows.healthy(g, wf),
            _ => None,
        }
    }

    /// Observable state of a resource key for `rollbook test` expectations (JSON object), None if unknown:
    ///   appservice → {"production": build, "<slot>": build, ...}
    ///   arm/<g>   → {"live": <oldest deployment whose content equals the live content>,
    ///                "deployments": [names newest first], "live_matches": [every such name]}
    ///   logicapp  → {"current": <oldest version whose definition+parameters equal the current ones>,
    ///                "state": "Enabled"|"Disabled", "versions": n}
    pub fn state(&self, key: &str) -> Option<Value> {
        let w = self.lock();
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            ["appservice", g, site] => w.sites.state(g, site),
            ["arm", g] => w.deployments.state(g),
            ["logicapp", g, wf] => w.workflows.state(g, wf),
            _ => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
struct Ctx {
    world: Arc<AzureWorld>,
    kube: KubeServerFor,
}

async fn handle(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_uuid();
    let correlation = headers
        .get("x-ms-correlation-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(new_uuid);
    let is_write = !matches!(method, Method::GET | Method::HEAD);
    let result = answer(&ctx, method, &uri, &headers, body);
    let (status, mut extra, body) = match result {
        Ok(r) => (r.status, r.headers, r.body),
        Err(e) => (e.status, e.headers.clone(), Some(e.envelope())),
    };
    extra.push((
        HeaderName::from_static("x-ms-routing-request-id"),
        format!("EASTUS:{}:{request_id}", Utc::now().format("%Y%m%dT%H%M%SZ")),
    ));
    extra.push((HeaderName::from_static("x-ms-request-id"), request_id));
    extra.push((HeaderName::from_static("x-ms-correlation-request-id"), correlation));
    let limit = if is_write {
        "x-ms-ratelimit-remaining-subscription-writes"
    } else {
        "x-ms-ratelimit-remaining-subscription-reads"
    };
    extra.push((HeaderName::from_static(limit), if is_write { "1199" } else { "11999" }.into()));
    let return_client_id = headers
        .get("x-ms-return-client-request-id")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if return_client_id && let Some(id) = headers.get("x-ms-client-request-id").and_then(|v| v.to_str().ok())
    {
        extra.push((HeaderName::from_static("x-ms-client-request-id"), id.to_string()));
    }
    let mut response = match body {
        Some(v) => {
            let mut r = (status, v.to_string()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
            r
        }
        None => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = status;
            r
        }
    };
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, v);
        }
    }
    response
}

fn answer(ctx: &Ctx, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Result<Reply, ArmError> {
    let segs: Vec<String> = uri.path().split('/').filter(|s| !s.is_empty()).map(decode_segment).collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let query: Vec<(String, String)> = uri.query().map(parse_query).unwrap_or_default();

    let provider = provider_of(&lower);
    let raw_version =
        query.iter().find(|(k, _)| k.eq_ignore_ascii_case("api-version")).map(|(_, v)| v.clone());
    let api_version = check_api_version(&provider, raw_version.as_deref(), Utc::now())?;
    check_auth(headers)?;

    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let req = Req { method, segs, lower, query, api_version, base: format!("http://{host}"), body };

    let mut w = ctx.world.lock();
    w.route(&req, &ctx.kube)
}

impl World {
    fn route(&mut self, req: &Req, kube: &KubeServerFor) -> Result<Reply, ArmError> {
        let l = &req.lower;
        if l.len() < 2 {
            return Err(ArmError::not_routable(req));
        }
        let sub = req.segs[1].clone();
        if !self.subscriptions.contains(&l[1]) {
            return Err(ArmError::new(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("The subscription '{sub}' could not be found."),
            ));
        }
        // Polling URLs of long-running operations, wherever they hang.
        if l.len() >= 4 && matches!(l[l.len() - 2].as_str(), "operationresults" | "operationstatuses") {
            if req.method != Method::GET {
                return Err(method_not_allowed(req));
            }
            let id = l[l.len() - 1].clone();
            let location_style = l[l.len() - 2] == "operationresults";
            return self.poll(req, &id, location_style);
        }
        if l.len() == 2 {
            return match req.method {
                Method::GET => Ok(Reply::ok(json!({
                    "id": format!("/subscriptions/{sub}"),
                    "subscriptionId": sub,
                    "displayName": "rollbook simulator",
                    "state": "Enabled",
                    "subscriptionPolicies": { "locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off" },
                    "authorizationSource": "RoleBased",
                }))),
                _ => Err(method_not_allowed(req)),
            };
        }
        if l[2] != "resourcegroups" || l.len() < 4 {
            return Err(ArmError::not_routable(req));
        }
        let Some(group) = self.groups.get(&(l[1].clone(), l[3].clone())).cloned() else {
            return Err(ArmError::new(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                format!("Resource group '{}' could not be found.", req.segs[3]),
            ));
        };
        if l.len() == 4 {
            return match req.method {
                Method::GET => Ok(Reply::ok(json!({
                    "id": format!("/subscriptions/{sub}/resourceGroups/{group}"),
                    "name": group,
                    "type": "Microsoft.Resources/resourceGroups",
                    "location": LOCATION,
                    "properties": { "provisioningState": "Succeeded" },
                }))),
                _ => Err(method_not_allowed(req)),
            };
        }
        if l[4] != "providers" || l.len() < 7 {
            return Err(ArmError::not_routable(req));
        }
        let at = Place { sub: sub.clone(), group };
        let rest = 6;
        match l[5].as_str() {
            "microsoft.web" => appservice::handle(self, req, &at, rest),
            "microsoft.resources" => arm::handle(self, req, &at, rest),
            "microsoft.logic" => logicapp::handle(self, req, &at, rest),
            "microsoft.containerservice" => aks::handle(self, req, &at, rest, kube),
            _ => Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidResourceNamespace",
                format!("The resource namespace '{}' is invalid.", req.segs[5]),
            )),
        }
    }

    /// Starts a long-running operation and returns its id.
    pub(crate) fn start_op(&mut self, resource: String, kind: OpKind) -> String {
        let id = new_uuid();
        self.ops.insert(
            id.clone(),
            Operation {
                resource,
                polls_left: self.lro_polls,
                status: OpStatus::Running,
                kind,
                start: Utc::now(),
                end: None,
            },
        );
        id
    }

    /// Counts one observation of every running operation on `resource`, completing those due.
    pub(crate) fn observe(&mut self, resource: &str) {
        let due: Vec<String> = self
            .ops
            .iter()
            .filter(|(_, op)| op.status == OpStatus::Running && op.resource == resource)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.tick(&id);
        }
    }

    /// One observation of operation `id`: count down, or complete it.
    fn tick(&mut self, id: &str) {
        let Some(op) = self.ops.get_mut(id) else {
            return;
        };
        if op.status != OpStatus::Running {
            return;
        }
        if op.polls_left > 0 {
            op.polls_left -= 1;
            return;
        }
        self.complete(id);
    }

    /// Completes operation `id` now, applying its effect.
    fn complete(&mut self, id: &str) {
        let Some(mut op) = self.ops.remove(id) else {
            return;
        };
        let ok = match &op.kind {
            OpKind::Swap(swap) => appservice::complete_swap(self, swap),
            OpKind::Deploy(d) => arm::complete_deploy(self, d),
            OpKind::WhatIf(_) => true,
        };
        op.status = if ok { OpStatus::Succeeded } else { OpStatus::Failed };
        op.end = Some(Utc::now());
        self.ops.insert(id.to_string(), op);
    }

    fn poll(&mut self, req: &Req, id: &str, location_style: bool) -> Result<Reply, ArmError> {
        let resource = match self.ops.get(id) {
            Some(op) => op.resource.clone(),
            None => {
                return Err(ArmError::new(
                    StatusCode::NOT_FOUND,
                    "OperationNotFound",
                    format!("The operation '{id}' could not be found."),
                ));
            }
        };
        if resource.is_empty() {
            self.tick(id);
        } else {
            // A poll observes the resource, so sibling operations move on together.
            self.observe(&resource);
        }
        let Some(op) = self.ops.get(id) else {
            return Err(ArmError::new(
                StatusCode::NOT_FOUND,
                "OperationNotFound",
                format!("The operation '{id}' could not be found."),
            ));
        };
        let retry = (header::RETRY_AFTER, RETRY_AFTER_SECS.to_string());
        if location_style {
            if op.status == OpStatus::Running {
                let mut reply = Reply::with(StatusCode::ACCEPTED, None);
                reply.headers.push(retry);
                reply.headers.push((header::LOCATION, req.url(&path_of(req))));
                return Ok(reply);
            }
            return Ok(match &op.kind {
                OpKind::Swap(_) => Reply::with(StatusCode::OK, None),
                OpKind::WhatIf(result) => Reply::ok(result.clone()),
                OpKind::Deploy(d) => Reply::ok(arm::deployment_body(self, d)?),
            });
        }
        let mut body = json!({
            "id": path_of(req),
            "name": id,
            "status": op.status.as_str(),
            "startTime": op.start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        if let Some(end) = op.end {
            body["endTime"] = Value::String(end.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        }
        if op.status == OpStatus::Failed
            && let OpKind::Deploy(d) = &op.kind
            && let Some(err) = arm::deployment_error(self, d)
        {
            body["error"] = err;
        }
        let mut reply = Reply::ok(body);
        if op.status == OpStatus::Running {
            reply.headers.push(retry);
        }
        Ok(reply)
    }
}

/// The subscription and resource group a request addresses (names as the scenario spells them).
pub(crate) struct Place {
    /// Subscription id.
    pub sub: String,
    /// Resource group.
    pub group: String,
}

impl Place {
    /// `/subscriptions/{sub}/resourceGroups/{group}`.
    pub(crate) fn prefix(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/{}", self.sub, self.group)
    }
}

/// The location every simulated resource lives in.
pub(crate) const LOCATION: &str = "eastus";

fn path_of(req: &Req) -> String {
    req.segs.iter().map(|s| format!("/{}", encode_segment(s))).collect()
}

/// The resource provider a path addresses, lowercase (`microsoft.resources` when none is named).
fn provider_of(lower: &[String]) -> String {
    if let Some(i) = lower.iter().position(|s| s == "providers")
        && let Some(ns) = lower.get(i + 1)
    {
        return ns.clone();
    }
    "microsoft.resources".to_string()
}

/// The first api-version of each provider the simulator serves, and versions to quote in errors.
fn known_versions(provider: &str) -> (&'static str, &'static [&'static str]) {
    match provider {
        "microsoft.web" => (
            "2014-06-01",
            &[
                "2025-05-01",
                "2025-03-01",
                "2024-11-01",
                "2024-04-01",
                "2023-12-01",
                "2023-01-01",
                "2022-09-01",
                "2022-03-01",
                "2021-03-01",
                "2020-12-01",
                "2019-08-01",
                "2018-11-01",
                "2018-02-01",
                "2016-08-01",
            ],
        ),
        "microsoft.logic" => (
            "2015-02-01-preview",
            &["2019-05-01", "2018-07-01-preview", "2016-06-01", "2015-08-01-preview", "2015-02-01-preview"],
        ),
        "microsoft.containerservice" => (
            "2017-08-31",
            &[
                "2026-08-01",
                "2025-10-01",
                "2025-10-02-preview",
                "2025-07-01",
                "2025-05-01",
                "2025-01-01",
                "2024-09-01",
                "2024-05-01",
                "2024-02-01",
                "2023-10-01",
                "2023-08-01",
                "2023-05-01",
                "2023-01-01",
                "2022-09-01",
                "2022-04-01",
            ],
        ),
        _ => (
            "2014-04-01",
            &[
                "2026-06-01",
                "2025-04-01",
                "2025-03-01",
                "2024-11-01",
                "2024-07-01",
                "2024-03-01",
                "2023-07-01",
                "2022-09-01",
                "2021-04-01",
                "2021-01-01",
                "2020-10-01",
                "2020-06-01",
                "2019-10-01",
                "2019-05-10",
                "2019-05-01",
                "2018-05-01",
                "2017-05-10",
                "2016-09-01",
                "2016-02-01",
                "2015-11-01",
                "2014-04-01",
            ],
        ),
    }
}

/// Parses `YYYY-MM-DD` with an optional `-suffix` (`-preview`, `-beta`…) into its date.
pub(crate) fn parse_api_version(v: &str) -> Option<NaiveDate> {
    let (date, suffix) = match v.get(10..) {
        Some("") => (v, None),
        Some(rest) => (v.get(..10)?, Some(rest)),
        None => return None,
    };
    if let Some(s) = suffix {
        let word = s.strip_prefix('-')?;
        if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
    }
    let b = date.as_bytes();
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if !date.chars().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// ARM's api-version check for `provider` at `now`.
pub(crate) fn check_api_version(
    provider: &str,
    raw: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, ArmError> {
    let Some(v) = raw.filter(|v| !v.is_empty()) else {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    let (first, quoted) = known_versions(provider);
    // ARM itself answers a malformed version, quoting its own (Microsoft.Resources) versions
    // whatever the provider, as the real front door does.
    let invalid = || {
        ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid. The supported versions are '{}'.",
                known_versions("microsoft.resources").1.join(",")
            ),
        )
    };
    let date = parse_api_version(v).ok_or_else(invalid)?;
    let first = parse_api_version(first).ok_or_else(invalid)?;
    let today = now.date_naive();
    if date < first || date > today {
        if provider == "microsoft.resources" {
            return Err(invalid());
        }
        let rtype = match provider {
            "microsoft.web" => "sites",
            "microsoft.logic" => "workflows",
            "microsoft.containerservice" => "managedClusters",
            _ => "resources",
        };
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{LOCATION}' and API version '{v}' \
                 for type '{rtype}'. The supported api-versions are '{}'. The supported locations are \
                 'eastus, westeurope'.",
                quoted.join(", ")
            ),
        ));
    }
    Ok(v.to_string())
}

/// ARM's bearer check: any token is accepted, but the header must be there and be `Bearer <x>`.
fn check_auth(headers: &HeaderMap) -> Result<(), ArmError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        let mut e = ArmError::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        );
        e.headers.push((
            header::WWW_AUTHENTICATE,
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", \
             error_description=\"The authentication failed because of missing 'Authorization' header.\""
                .into(),
        ));
        return Err(e);
    };
    let ok = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty());
    if ok {
        return Ok(());
    }
    let mut e = ArmError::new(
        StatusCode::UNAUTHORIZED,
        "AuthenticationFailedInvalidHeader",
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
    );
    e.headers.push((
        header::WWW_AUTHENTICATE,
        "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", \
         error_description=\"The authentication failed because of invalid 'Authorization' header.\""
            .into(),
    ));
    Err(e)
}

/// A fresh random id shaped like a GUID.
pub(crate) fn new_uuid() -> String {
    let a = fastrand::u128(..);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        8 + (a >> 120) as u8 % 4,
        &h[17..20],
        &h[20..32]
    )
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'(')
    .remove(b')');

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| decode_segment(&s.replace('+', " "));
            (dec(k), dec(v))
        })
        .collect()
}

fn form_query<'a>(pairs: impl Iterator<Item = &'a (String, String)>) -> String {
    pairs.map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v))).collect::<Vec<_>>().join("&")
}

/// RFC 3339 with 7 fractional digits, as ARM writes timestamps.
pub(crate) fn arm_time(t: DateTime<Utc>) -> String {
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), t.timestamp_subsec_nanos() / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T09:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn api_versions_current_clients_send_are_accepted() {
        for (p, v) in [
            ("microsoft.web", "2025-05-01"),
            ("microsoft.web", "2022-03-01"),
            ("microsoft.resources", "2026-06-01"),
            ("microsoft.resources", "2021-04-01"),
            ("microsoft.containerservice", "2026-08-01"),
            ("microsoft.containerservice", "2025-10-02-preview"),
            ("microsoft.logic", "2019-05-01"),
        ] {
            assert_eq!(check_api_version(p, Some(v), now()).ok().as_deref(), Some(v), "{p} {v}");
        }
    }

    #[test]
    fn missing_and_malformed_api_versions_are_refused_as_arm_does() {
        let e = check_api_version("microsoft.web", None, now()).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code.as_str()), (400, "MissingApiVersionParameter"));
        let e = check_api_version("microsoft.web", Some(""), now()).unwrap_err();
        assert_eq!(e.code, "MissingApiVersionParameter");
        for bad in ["2025-13-01", "2025-5-01", "latest", "2025-05-01preview", "2025-05-01-", "20250501"] {
            let e = check_api_version("microsoft.web", Some(bad), now()).unwrap_err();
            assert_eq!(e.code, "InvalidApiVersionParameter", "{bad}");
            assert!(e.message.contains(&format!("'{bad}'")), "{}", e.message);
        }
        let e = check_api_version("microsoft.web", Some("2099-01-01"), now()).unwrap_err();
        assert_eq!(e.code, "NoRegisteredProviderFound");
        let e = check_api_version("microsoft.resources", Some("2099-01-01"), now()).unwrap_err();
        assert_eq!(e.code, "InvalidApiVersionParameter");
    }

    fn world(lro_polls: u32) -> World {
        let mut s = Scenario::default();
        s.sim.lro_polls = Some(lro_polls);
        let w = AzureWorld::from_scenario(&s);
        w.inner.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn operations_answer_in_progress_lro_polls_times_then_complete() {
        let mut w = world(2);
        let id = w.start_op("r".into(), OpKind::WhatIf(json!({})));
        let other = w.start_op("elsewhere".into(), OpKind::WhatIf(json!({})));
        let status = |w: &World, id: &str| w.ops.get(id).map(|o| o.status);
        w.observe("r");
        w.observe("r");
        assert_eq!(status(&w, &id), Some(OpStatus::Running));
        w.observe("r");
        assert_eq!(status(&w, &id), Some(OpStatus::Succeeded));
        assert!(w.ops.get(&id).is_some_and(|o| o.end.is_some()));
        assert_eq!(status(&w, &other), Some(OpStatus::Running), "other resources are not observed");
        w.observe("r");
        assert_eq!(status(&w, &id), Some(OpStatus::Succeeded), "terminal stays terminal");

        let mut w = world(0);
        let id = w.start_op(String::new(), OpKind::WhatIf(json!({})));
        w.tick(&id);
        assert_eq!(status(&w, &id), Some(OpStatus::Succeeded));
    }

    #[test]
    fn pages_carry_an_absolute_next_link_with_the_query_kept() {
        let req = Req {
            method: Method::GET,
            segs: vec!["subscriptions".into(), "s".into(), "a b".into()],
            lower: vec!["subscriptions".into(), "s".into(), "a b".into()],
            query: vec![("api-version".into(), "2025-04-01".into()), ("$top".into(), "3".into())],
            api_version: "2025-04-01".into(),
            base: "http://127.0.0.1:1".into(),
            body: Bytes::new(),
        };
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let p = page(&req, items).unwrap();
        assert_eq!(p["value"], json!([0, 1]));
        assert_eq!(
            p["nextLink"],
            "http://127.0.0.1:1/subscriptions/s/a%20b?api-version=2025-04-01&%24top=3&%24skiptoken=2"
        );
    }

    #[test]
    fn uuids_look_like_guids() {
        let id = new_uuid();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12], "{id}");
        assert_ne!(new_uuid(), new_uuid());
    }

    #[test]
    fn arm_times_have_seven_fraction_digits() {
        assert_eq!(arm_time(now()), "2026-11-27T09:00:00.0000000Z");
    }
}
