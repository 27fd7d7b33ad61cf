//! Simulated Azure Resource Manager: the entry point ([`AzureWorld`]), the table of services
//! ([`SERVICES`]) and the routing of every `/subscriptions/…` request to one of them. The
//! plumbing the services share lives in `arm_api`; each service lives in its own file.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::arm_api::core::Core;
pub use super::arm_api::core::KubeServerFor;
use super::arm_api::error::{ArmError, check_auth, method_not_allowed, unknown_path};
use super::arm_api::ids::{LOCATION, Place, new_uuid};
use super::arm_api::lro::{OpStatus, Ops, RETRY_AFTER_SECS};
use super::arm_api::paging::page;
use super::arm_api::reply::Reply;
use super::arm_api::request::{Req, decode_segment, parse_query};
use super::arm_api::service::{Service, Spec};
use super::arm_api::versions::{ARM, Versions, check_api_version};
use super::scenario::Scenario;
use super::server::Scheme;
use super::{aks, appservice, arm, logicapp};

/// Every Azure service the simulator serves: adding one is its file plus one row here.
pub(crate) const SERVICES: &[&Spec] = &[&appservice::SPEC, &arm::SPEC, &logicapp::SPEC, &aks::SPEC];

/// The simulated Azure of one scenario: every service of [`SERVICES`], behind one lock.
pub struct AzureWorld {
    inner: Mutex<World>,
}

struct World {
    core: Core,
    /// Services in the order of [`SERVICES`].
    services: Vec<(&'static str, Box<dyn Service>)>,
}

impl AzureWorld {
    /// Builds the Azure side of a scenario.
    pub fn from_scenario(s: &Scenario) -> Self {
        let services: Vec<(&'static str, Box<dyn Service>)> =
            SERVICES.iter().map(|spec| (spec.versions.namespace, (spec.build)(s))).collect();
        let mut subscriptions = BTreeSet::new();
        let mut groups = BTreeMap::new();
        subscriptions.insert(super::scenario::DEFAULT_SUBSCRIPTION.to_string());
        for (sub, group) in services.iter().flat_map(|(_, svc)| svc.groups()) {
            subscriptions.insert(sub.to_ascii_lowercase());
            groups.entry((sub.to_ascii_lowercase(), group.to_ascii_lowercase())).or_insert(group);
        }
        let core = Core { subscriptions, groups, ops: Ops::new(s.sim.lro_polls.unwrap_or(2)), kube: None };
        AzureWorld { inner: Mutex::new(World { core, services }) }
    }

    /// Routes for every ARM path (`/subscriptions/...`), case-insensitive, api-version checked.
    pub fn router(self: Arc<Self>, kube: KubeServerFor) -> Router {
        self.lock().core.kube = Some(kube);
        Router::new()
            .route("/subscriptions", axum::routing::any(handle))
            .route("/tenants", axum::routing::any(handle))
            .route("/subscriptions/{*rest}", axum::routing::any(handle))
            .route("/Subscriptions/{*rest}", axum::routing::any(handle))
            .route("/SUBSCRIPTIONS/{*rest}", axum::routing::any(handle))
            .with_state(self)
            .merge(super::arm_identity::router())
    }

    /// Health of `appservice/<g>/<site>`, `arm/<g>`, `logicapp/<g>/<wf>`; None if unknown key.
    pub fn healthy(&self, key: &str) -> Option<bool> {
        let w = self.lock();
        let parts: Vec<&str> = key.split('/').collect();
        w.services.iter().find_map(|(_, svc)| svc.healthy(&parts))
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
        w.services.iter().find_map(|(_, svc)| svc.state(&parts))
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn handle(
    State(world): State<Arc<AzureWorld>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
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
    let scheme = extensions.get::<Scheme>().map_or("http", |s| s.0);
    let result = answer(&world, method, &uri, &headers, scheme, body);
    let (status, mut extra, body, text) = match result {
        Ok(r) => (r.status, r.headers, r.body, r.text),
        Err(e) => (e.status, e.headers.clone(), Some(e.envelope()), None),
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
    let mut response = match (text, body) {
        (Some((content_type, text)), _) => {
            let mut r = (status, text).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        (None, Some(v)) => {
            let mut r = (status, v.to_string()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
            r
        }
        (None, None) => {
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

/// The api-versions of the provider a path addresses (ARM's own when it names none or an
/// unknown one).
fn versions_for(lower: &[String]) -> &'static Versions {
    let named = lower.iter().position(|s| s == "providers").and_then(|i| lower.get(i + 1));
    named
        .and_then(|ns| SERVICES.iter().find(|spec| spec.versions.namespace == ns.as_str()))
        .map_or(&ARM, |spec| &spec.versions)
}

/// `scheme://host` the client used.
fn base_of(uri: &Uri, headers: &HeaderMap, scheme: &str) -> String {
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("127.0.0.1");
    format!("{}://{host}", uri.scheme_str().unwrap_or(scheme))
}

fn answer(
    world: &AzureWorld,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    scheme: &str,
    body: Bytes,
) -> Result<Reply, ArmError> {
    let segs: Vec<String> = uri.path().split('/').filter(|s| !s.is_empty()).map(decode_segment).collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let query: Vec<(String, String)> = uri.query().map(parse_query).unwrap_or_default();

    let raw_version =
        query.iter().find(|(k, _)| k.eq_ignore_ascii_case("api-version")).map(|(_, v)| v.clone());
    let api_version = check_api_version(versions_for(&lower), raw_version.as_deref(), Utc::now())?;
    check_auth(headers)?;

    let req = Req { method, segs, lower, query, api_version, base: base_of(uri, headers, scheme), body };
    let mut w = world.lock();
    w.route(&req)
}

impl World {
    /// Runs `f` on the service of `namespace` and the core; None when no service has it.
    fn with_service<T>(
        &mut self,
        namespace: &str,
        f: impl FnOnce(&mut dyn Service, &mut Core) -> T,
    ) -> Option<T> {
        let World { core, services } = self;
        services.iter_mut().find(|(ns, _)| *ns == namespace).map(|(_, svc)| f(svc.as_mut(), core))
    }

    fn route(&mut self, req: &Req) -> Result<Reply, ArmError> {
        let l = &req.lower;
        if l.len() == 1 && l[0] == "subscriptions" {
            return match req.method {
                Method::GET => {
                    let items = self.core.subscriptions.iter().map(|s| subscription(s)).collect();
                    Ok(Reply::ok(page(req, items)?))
                }
                _ => Err(method_not_allowed(req)),
            };
        }
        if l.len() == 1 && l[0] == "tenants" {
            return match req.method {
                Method::GET => Ok(Reply::ok(json!({ "value": [{
                    "id": format!("/tenants/{TENANT}"),
                    "tenantId": TENANT,
                    "tenantCategory": "Home",
                    "country": "US",
                    "countryCode": "US",
                    "displayName": "rollbook simulator",
                    "domains": ["rollbook.example"],
                    "defaultDomain": "rollbook.example",
                    "tenantType": "AAD"
                }] }))),
                _ => Err(method_not_allowed(req)),
            };
        }
        if l.len() < 2 {
            return Err(unknown_path(req));
        }
        let sub = req.segs[1].clone();
        if !self.core.subscriptions.contains(&l[1]) {
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
                Method::GET => Ok(Reply::ok(subscription(&sub))),
                _ => Err(method_not_allowed(req)),
            };
        }
        if l.len() == 3 && l[2] == "resourcegroups" {
            return match req.method {
                Method::GET => {
                    let items = self
                        .core
                        .groups
                        .iter()
                        .filter(|((s, _), _)| s == &l[1])
                        .map(|(_, g)| resource_group(&sub, g))
                        .collect();
                    Ok(Reply::ok(page(req, items)?))
                }
                _ => Err(method_not_allowed(req)),
            };
        }
        if l.len() == 3 && l[2] == "resources" {
            let groups: Vec<String> =
                self.core.groups.iter().filter(|((s, _), _)| s == &l[1]).map(|(_, g)| g.clone()).collect();
            return self.resources(req, &sub, &groups);
        }
        if l[2] == "providers" && l.len() >= 5 {
            let ns = l[3].clone();
            return self
                .with_service(&ns, |svc, core| svc.handle_subscription(core, req, &sub, 4))
                .unwrap_or_else(|| Err(invalid_namespace(req, 3)));
        }
        if l[2] != "resourcegroups" || l.len() < 4 {
            return Err(unknown_path(req));
        }
        let Some(group) = self.core.groups.get(&(l[1].clone(), l[3].clone())).cloned() else {
            return Err(ArmError::new(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                format!("Resource group '{}' could not be found.", req.segs[3]),
            ));
        };
        if l.len() == 4 {
            return match req.method {
                Method::GET => Ok(Reply::ok(resource_group(&sub, &group))),
                Method::HEAD => Ok(Reply::with(StatusCode::NO_CONTENT, None)),
                _ => Err(method_not_allowed(req)),
            };
        }
        if l.len() == 5 && l[4] == "resources" {
            return self.resources(req, &sub, std::slice::from_ref(&group));
        }
        let at = Place { sub: sub.clone(), group };
        // The older form of the deployment paths, without `providers/Microsoft.Resources`
        // (which the deployment-operations client still uses).
        if l[4] == "deployments" {
            return self
                .with_service(ARM.namespace, |svc, core| svc.handle(core, req, &at, 4))
                .unwrap_or_else(|| Err(unknown_path(req)));
        }
        if l[4] != "providers" || l.len() < 7 {
            return Err(unknown_path(req));
        }
        let ns = l[5].clone();
        self.with_service(&ns, |svc, core| svc.handle(core, req, &at, 6))
            .unwrap_or_else(|| Err(invalid_namespace(req, 5)))
    }

    /// `resources` of a group or subscription: every service's resources there, paged.
    fn resources(&self, req: &Req, sub: &str, groups: &[String]) -> Result<Reply, ArmError> {
        if req.method != Method::GET {
            return Err(method_not_allowed(req));
        }
        let items: Vec<Value> = groups
            .iter()
            .flat_map(|g| self.services.iter().flat_map(move |(_, svc)| svc.resources(sub, g)))
            .collect();
        Ok(Reply::ok(page(req, items)?))
    }

    fn poll(&mut self, req: &Req, id: &str, location_style: bool) -> Result<Reply, ArmError> {
        let not_found = || {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "OperationNotFound",
                format!("The operation '{id}' could not be found."),
            )
        };
        let (resource, service) = match self.core.ops.get(id) {
            Some(op) => (op.resource.clone(), op.service),
            None => return Err(not_found()),
        };
        let due = if resource.is_empty() {
            self.core.ops.tick(id).into_iter().collect()
        } else {
            // A poll observes the resource, so sibling operations move on together.
            self.core.ops.observe(&resource)
        };
        for d in due {
            let ok = self.with_service(d.service, |svc, core| svc.complete(core, &d.payload));
            self.core.ops.finish(&d.id, ok.unwrap_or(false));
        }
        let Some(op) = self.core.ops.get(id) else {
            return Err(not_found());
        };
        let (status, start, end, payload) = (op.status, op.start, op.end, op.payload.clone());
        let retry = (header::RETRY_AFTER, RETRY_AFTER_SECS.to_string());
        if location_style {
            if status == OpStatus::Running {
                let mut reply = Reply::with(StatusCode::ACCEPTED, None);
                reply.headers.push(retry);
                reply.headers.push((header::LOCATION, req.url(&req.path())));
                return Ok(reply);
            }
            let body =
                self.with_service(service, |svc, core| svc.result(core, &payload)).transpose()?.flatten();
            return Ok(Reply::with(StatusCode::OK, body));
        }
        let mut body = json!({
            "id": req.path(),
            "name": id,
            "status": status.as_str(),
            "startTime": start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        if let Some(end) = end {
            body["endTime"] = Value::String(end.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        }
        if status == OpStatus::Failed
            && let Some(err) = self.with_service(service, |svc, _| svc.error(&payload)).flatten()
        {
            body["error"] = err;
        }
        let mut reply = Reply::ok(body);
        if status == OpStatus::Running {
            reply.headers.push(retry);
        }
        Ok(reply)
    }
}

/// The tenant every simulated subscription belongs to.
pub const TENANT: &str = "72f988bf-0000-4000-8000-00000000a2b1";

fn subscription(id: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{id}"),
        "subscriptionId": id,
        "tenantId": TENANT,
        "displayName": "rollbook simulator",
        "state": "Enabled",
        "subscriptionPolicies": { "locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off" },
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
    })
}

fn resource_group(sub: &str, group: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{sub}/resourceGroups/{group}"),
        "name": group,
        "type": "Microsoft.Resources/resourceGroups",
        "location": LOCATION,
        "properties": { "provisioningState": "Succeeded" },
    })
}

fn invalid_namespace(req: &Req, at: usize) -> ArmError {
    ArmError::new(
        StatusCode::BAD_REQUEST,
        "InvalidResourceNamespace",
        format!("The resource namespace '{}' is invalid.", req.segs[at]),
    )
}
