//! HTTP handlers of the simulated Kubernetes API (`/k8s/<context>/...`): discovery, get, list,
//! watch, create, update, patch, delete, and the `scale` subresource.

// Handlers short-circuit with the finished error answer; boxing it would buy nothing here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::K8sWorld;
use super::controller::sync_deployment;
use super::discovery;
use super::patch::{self, PatchKind};
use super::select::{FieldSelector, LabelSelector, selector_string};
use super::store::{At, Event, Key, Kind, Store, int_at, str_at};
use super::table;

/// Largest request body accepted.
const BODY_LIMIT: usize = 8 << 20;

/// A Kubernetes `Status` failure object.
pub fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn with_content_type(ct: String, body: &Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body.to_string()).into_response()
}

/// A `Status` error answer.
pub fn status_error(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &status_body(code, reason, message, details))
}

fn not_found(kind: Kind, name: &str) -> Response {
    status_error(
        404,
        "NotFound",
        &format!("{}.{} \"{name}\" not found", kind.plural(), kind.group()),
        Some(json!({"name": name, "group": kind.group(), "kind": kind.plural()})),
    )
}

fn no_route() -> Response {
    status_error(404, "NotFound", "the server could not find the requested resource", Some(json!({})))
}

fn invalid(kind: Kind, name: &str, message: &str) -> Response {
    status_error(
        422,
        "Invalid",
        &format!("{}.{} \"{name}\" is invalid: {message}", kind.name(), kind.group()),
        Some(json!({"name": name, "group": kind.group(), "kind": kind.name()})),
    )
}

/// Fills the defaults the API server applies to an `apps/v1` Deployment.
pub fn default_deployment(d: &mut Value) {
    let spec = super::store::obj_mut(d, &["spec"]);
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({"type": "RollingUpdate"}));
    if !strategy.is_object() {
        *strategy = json!({"type": "RollingUpdate"});
    }
    if strategy.get("type").is_none() {
        strategy["type"] = json!("RollingUpdate");
    }
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = super::store::obj_mut(strategy, &["rollingUpdate"]);
        ru.entry("maxSurge").or_insert(json!("25%"));
        ru.entry("maxUnavailable").or_insert(json!("25%"));
    }
    let template = spec.entry("template").or_insert_with(|| json!({}));
    default_pod_template(template);
}

/// Fills the defaults of a pod template (as a real server stores them).
pub fn default_pod_template(t: &mut Value) {
    let meta = super::store::obj_mut(t, &["metadata"]);
    meta.entry("creationTimestamp").or_insert(Value::Null);
    let spec = super::store::obj_mut(t, &["spec"]);
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("terminationGracePeriodSeconds").or_insert(json!(30));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("securityContext").or_insert(json!({}));
    spec.entry("schedulerName").or_insert(json!("default-scheduler"));
    if let Some(Value::Array(cs)) = spec.get_mut("containers") {
        for c in cs.iter_mut() {
            let Some(c) = c.as_object_mut() else { continue };
            let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
            let last = image.rsplit('/').next().unwrap_or("");
            let latest = !last.contains(':') && !image.contains('@') || last.ends_with(":latest");
            c.entry("resources").or_insert(json!({}));
            c.entry("terminationMessagePath").or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            c.entry("imagePullPolicy").or_insert(json!(if latest { "Always" } else { "IfNotPresent" }));
        }
    }
}

fn validate_deployment(name: &str, old: Option<&Value>, d: &Value) -> Result<(), Response> {
    let replicas = int_at(d, "/spec/replicas");
    if replicas > i64::from(i32::MAX) || !d.at("/spec/replicas").is_some_and(Value::is_i64) {
        return Err(invalid(
            Kind::Deployment,
            name,
            "spec.replicas: Invalid value: must be a 32-bit integer",
        ));
    }
    if replicas < 0 {
        return Err(invalid(
            Kind::Deployment,
            name,
            &format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let selector = d.at("/spec/selector").cloned().unwrap_or(Value::Null);
    if let Some(old) = old
        && old.at("/spec/selector") != d.at("/spec/selector")
    {
        return Err(invalid(Kind::Deployment, name, "spec.selector: Invalid value: field is immutable"));
    }
    let sel = LabelSelector::parse(&selector_string(&selector)).unwrap_or_default();
    let template_labels = json!({"metadata": {"labels":
        d.at("/spec/template/metadata/labels").cloned().unwrap_or(json!({}))}});
    if selector_string(&selector).is_empty() || !sel.matches(&template_labels) {
        return Err(invalid(
            Kind::Deployment,
            name,
            "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
        ));
    }
    let containers =
        d.at("/spec/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    if containers.is_empty() {
        return Err(invalid(Kind::Deployment, name, "spec.template.spec.containers: Required value"));
    }
    for (i, c) in containers.iter().enumerate() {
        if c.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(invalid(
                Kind::Deployment,
                name,
                &format!("spec.template.spec.containers[{i}].image: Required value"),
            ));
        }
    }
    Ok(())
}

/// The parsed request, as the handlers need it.
struct Req {
    ctx: String,
    method: Method,
    segs: Vec<String>,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    fn accept(&self) -> String {
        self.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    }
    fn dry_run(&self) -> bool {
        self.q("dryRun").is_some_and(|v| v == "All")
    }
}

/// Serves one request under `/k8s/<context>/...`.
pub async fn handle(world: Arc<K8sWorld>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query: HashMap<String, String> =
        Query::try_from_uri(&parts.uri).map(|Query(q)| q).unwrap_or_default();
    let Some(rest) = path.strip_prefix("/k8s/").and_then(super::decode_context) else {
        return no_route();
    };
    // Context names may hold `/` (clients re-join the path unescaped), so match the longest
    // known context that prefixes the path rather than the first segment.
    let Some(ctx) = world
        .contexts()
        .iter()
        .filter(|c| rest == **c || rest.starts_with(&format!("{c}/")))
        .max_by_key(|c| c.len())
        .cloned()
    else {
        return no_route();
    };
    let segs = rest[ctx.len()..]
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect::<Vec<_>>()
        .into_iter();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return status_error(400, "BadRequest", &format!("cannot read body: {e}"), None),
    };
    let r = Req { ctx, method: parts.method, segs: segs.collect(), query, headers: parts.headers, body };
    route(world, r).await
}

async fn route(world: Arc<K8sWorld>, r: Req) -> Response {
    let accept = r.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let segs: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    let get = r.method == Method::GET;
    match segs.as_slice() {
        ["version"] if get => json_response(StatusCode::OK, &discovery::version()),
        ["api"] if get => match discovery::aggregated_version(&accept) {
            Some(v) => {
                with_content_type(discovery::aggregated_content_type(v), &discovery::aggregated_api(v))
            }
            None => json_response(StatusCode::OK, &discovery::legacy_api()),
        },
        ["api", "v1"] if get => json_response(StatusCode::OK, &discovery::legacy_core_v1()),
        ["api", "v1", "namespaces"] if get => {
            let items: Vec<Value> = namespaces(&world, &r.ctx).iter().map(|n| namespace_object(n)).collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "NamespaceList", "apiVersion": "v1",
                "metadata": {"resourceVersion": world.lock().rv.to_string()}, "items": items}),
            )
        }
        ["api", "v1", "events"] if get => events(&world, &r, None),
        ["api", "v1", "namespaces", ns, "events"] if get => events(&world, &r, Some(ns)),
        ["api", "v1", "namespaces", ns] if get => {
            if namespaces(&world, &r.ctx).iter().any(|n| n == ns) {
                json_response(StatusCode::OK, &namespace_object(ns))
            } else {
                status_error(
                    404,
                    "NotFound",
                    &format!("namespaces \"{ns}\" not found"),
                    Some(json!({"name": ns, "kind": "namespaces"})),
                )
            }
        }
        ["apis"] if get => match discovery::aggregated_version(&accept) {
            Some(v) => {
                with_content_type(discovery::aggregated_content_type(v), &discovery::aggregated_apis(v))
            }
            None => json_response(StatusCode::OK, &discovery::legacy_apis()),
        },
        ["apis", g] if get => {
            discovery::legacy_group(g).map(|v| json_response(StatusCode::OK, &v)).unwrap_or_else(no_route)
        }
        ["apis", g, v] if get => discovery::legacy_group_version(g, v)
            .map(|v| json_response(StatusCode::OK, &v))
            .unwrap_or_else(no_route),
        ["apis", g, "v1", res] => match Kind::from_resource(g, res) {
            Some(kind) if get => collection(world, &r, kind, None).await,
            _ => no_route(),
        },
        ["apis", g, "v1", "namespaces", ns, res] => match Kind::from_resource(g, res) {
            Some(kind) if get => collection(world, &r, kind, Some(ns)).await,
            Some(kind) if r.method == Method::POST => create(&world, &r, kind, ns),
            _ => no_route(),
        },
        ["apis", g, "v1", "namespaces", ns, res, name] => match Kind::from_resource(g, res) {
            Some(kind) => object(&world, &r, kind, ns, name),
            None => no_route(),
        },
        ["apis", g, "v1", "namespaces", ns, res, name, "scale"] => match Kind::from_resource(g, res) {
            Some(kind @ (Kind::Deployment | Kind::ReplicaSet)) => scale(&world, &r, kind, ns, name),
            _ => no_route(),
        },
        ["apis", g, "v1", "namespaces", ns, res, name, "status"] if get => {
            match Kind::from_resource(g, res) {
                Some(kind) => object(&world, &r, kind, ns, name),
                None => no_route(),
            }
        }
        _ => no_route(),
    }
}

/// Core Events the controller recorded, filtered by namespace and an `involvedObject.*` /
/// `reason` / `type` field selector (the fields `kubectl describe` uses).
fn events(world: &K8sWorld, r: &Req, ns: Option<&str>) -> Response {
    let mut wanted: Vec<(String, String)> = Vec::new();
    for part in r.q("fieldSelector").unwrap_or("").split(',').filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return status_error(400, "BadRequest", &format!("invalid selector: '{part}'"), None);
        };
        let k = k.trim_end_matches('=');
        wanted.push((format!("/{}", k.replace('.', "/")), v.to_string()));
    }
    let store = world.lock();
    let items: Vec<Value> = store
        .events
        .iter()
        .filter(|(ctx, e)| {
            *ctx == r.ctx
                && ns.is_none_or(|n| str_at(e, "/metadata/namespace") == Some(n))
                && wanted.iter().all(|(ptr, v)| str_at(e, ptr) == Some(v.as_str()))
        })
        .map(|(_, e)| e.clone())
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "EventList", "apiVersion": "v1",
        "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
    )
}

/// The namespaces of a context: the usual ones plus every namespace holding an object.
fn namespaces(world: &K8sWorld, ctx: &str) -> Vec<String> {
    let mut out: Vec<String> =
        ["default", "kube-node-lease", "kube-public", "kube-system"].iter().map(|s| s.to_string()).collect();
    for k in world.lock().objects.keys().filter(|k| k.ctx == ctx) {
        if !out.contains(&k.ns) {
            out.push(k.ns.clone());
        }
    }
    out.sort();
    out
}

fn namespace_object(name: &str) -> Value {
    json!({"kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": name, "uid": format!("00000000-0000-4000-8000-{:012x}", name.len()),
            "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn with_kind(kind: Kind, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("kind".into(), json!(kind.name()));
        m.insert("apiVersion".into(), json!(kind.api_version()));
    }
    obj
}

async fn collection(world: Arc<K8sWorld>, r: &Req, kind: Kind, ns: Option<&str>) -> Response {
    let labels = match LabelSelector::parse(r.q("labelSelector").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => {
            return status_error(400, "BadRequest", &format!("unable to parse requirement: {e}"), None);
        }
    };
    let fields = match FieldSelector::parse(r.q("fieldSelector").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return status_error(400, "BadRequest", &e, None),
    };
    let equality = labels.an_equality().map(|(k, v)| (k.to_string(), v.to_string()));
    let keep = move |obj: &Value| labels.matches(obj) && fields.matches(obj);
    let watching = matches!(r.q("watch"), Some("1" | "true"));
    if watching {
        return watch(world, r, kind, ns, keep);
    }
    // The matching objects are shared, not copied, and written out after the lock is released.
    let (items, rv, now) = {
        let store = world.lock();
        let items: Vec<Arc<Value>> = match (ns, &equality) {
            // In a namespace with `key=value` in the selector, the label index gives the candidates.
            (Some(ns), Some((k, v))) => store
                .labelled(&r.ctx, kind, ns, (k, v))
                .map(|(_, v)| v)
                .filter(|v| keep(v))
                .cloned()
                .collect(),
            _ => store.iter_of(&r.ctx, kind, ns).map(|(_, v)| v).filter(|v| keep(v)).cloned().collect(),
        };
        (items, store.rv.to_string(), store.now())
    };
    if table::wants_table(&r.accept())
        && let Some(t) = table::table(kind, &items, &rv, now)
    {
        return json_response(StatusCode::OK, &t);
    }
    list_response(kind, &rv, &items)
}

/// A `<Kind>List` answer, written straight from the shared objects (not copied into one tree).
fn list_response(kind: Kind, rv: &str, items: &[Arc<Value>]) -> Response {
    struct Items<'a>(&'a [Arc<Value>]);
    impl serde::Serialize for Items<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(|v| &**v))
        }
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List<'a> {
        kind: String,
        api_version: &'static str,
        metadata: Value,
        items: Items<'a>,
    }
    let list = List {
        kind: format!("{}List", kind.name()),
        api_version: kind.api_version(),
        metadata: json!({"resourceVersion": rv}),
        items: Items(items),
    };
    match serde_json::to_string(&list) {
        Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => status_error(500, "InternalError", &format!("cannot write the list: {e}"), None),
    }
}

/// The longest watch the simulator keeps open.
const MAX_WATCH_SECONDS: u64 = 86_400;

fn watch(
    world: Arc<K8sWorld>,
    r: &Req,
    kind: Kind,
    ns: Option<&str>,
    keep: impl Fn(&Value) -> bool + Send + Sync + 'static,
) -> Response {
    let ctx = r.ctx.clone();
    let ns = ns.map(String::from);
    let as_table = table::wants_table(&r.accept()).then_some(kind);
    let initial_events = r.q("sendInitialEvents") == Some("true");
    let from: u64 = r.q("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let timeout = r
        .q("timeoutSeconds")
        .and_then(|v| v.parse::<u64>().ok())
        // Any number is accepted; a watch lasts at most a day (no deadline overflow).
        .map(|s| Duration::from_secs(s.min(MAX_WATCH_SECONDS)))
        .unwrap_or(Duration::from_secs(1800));
    let relevant = {
        let ctx = ctx.clone();
        move |k: &Key| k.ctx == ctx && k.kind == kind && ns.as_deref().is_none_or(|n| n == k.ns)
    };
    let (replay, rx) = {
        let store = world.lock();
        let rx = store.tx.subscribe();
        if from != 0 && from < store.log_start {
            let gone = status_body(
                410,
                "Expired",
                &format!("too old resource version: {from} ({})", store.log_start),
                None,
            );
            return json_response(StatusCode::OK, &json!({"type": "ERROR", "object": gone}));
        }
        let mut replay: Vec<String> = if from == 0 || initial_events {
            store
                .objects
                .iter()
                .filter(|(k, v)| relevant(k) && keep(v))
                .map(|(_, v)| event_line("ADDED", v, as_table))
                .collect()
        } else {
            store
                .log
                .iter()
                .filter(|e| e.rv > from && relevant(&e.key) && keep(&e.object))
                .map(|e| event_line(e.kind, &e.object, as_table))
                .collect()
        };
        if initial_events {
            // The streaming list's end marker (KEP-3157), which kube's watcher waits for.
            let mark = json!({"kind": kind.name(), "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": store.rv.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}}});
            replay.push(event_line("BOOKMARK", &mark, None));
        }
        (replay, rx)
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let live = futures::stream::unfold((rx, relevant, keep), move |(mut rx, relevant, keep)| async move {
        loop {
            let ev: Arc<Event> = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return None,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Ok(ev)) => ev,
            };
            if relevant(&ev.key) && keep(&ev.object) {
                let line = event_line(ev.kind, &ev.object, as_table);
                return Some((line, (rx, relevant, keep)));
            }
        }
    });
    let stream = futures::stream::iter(replay).chain(live).map(|line| Ok::<_, Infallible>(Bytes::from(line)));
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}

/// One watch event line; as a one-row Table when `kubectl get -w` asked for tables.
fn event_line(kind: &str, obj: &Value, as_table: Option<Kind>) -> String {
    let table = as_table.and_then(|k| {
        let rv = str_at(obj, "/metadata/resourceVersion").unwrap_or("").to_string();
        table::table(k, std::slice::from_ref(obj), &rv, chrono::Utc::now())
    });
    let obj = table.as_ref().unwrap_or(obj);
    let mut line = json!({"type": kind, "object": obj}).to_string();
    line.push('\n');
    line
}

fn parse_body(r: &Req) -> Result<Value, Response> {
    let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.starts_with("application/vnd.kubernetes.protobuf") || ct.starts_with("application/cbor") {
        return Err(status_error(
            415,
            "UnsupportedMediaType",
            &format!("the simulator accepts JSON bodies only, not `{ct}`"),
            None,
        ));
    }
    serde_json::from_slice(&r.body).map_err(|e| {
        status_error(
            400,
            "BadRequest",
            &format!("the body of the request was in an unknown format: {e}"),
            None,
        )
    })
}

fn create(world: &K8sWorld, r: &Req, kind: Kind, ns: &str) -> Response {
    let mut obj = match parse_body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(name) = str_at(&obj, "/metadata/name").map(String::from) else {
        return invalid(kind, "", "metadata.name: Required value: name or generateName is required");
    };
    let mut store = world.lock();
    let key = Key::new(&r.ctx, kind, ns, &name);
    if store.objects.contains_key(&key) {
        return status_error(
            409,
            "AlreadyExists",
            &format!("{}.{} \"{name}\" already exists", kind.plural(), kind.group()),
            Some(json!({"name": name, "group": kind.group(), "kind": kind.plural()})),
        );
    }
    let uid = store.uid();
    let ts = store.timestamp();
    {
        let meta = super::store::obj_mut(&mut obj, &["metadata"]);
        meta.insert("namespace".into(), json!(ns));
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(ts));
        meta.insert("generation".into(), json!(1));
        meta.remove("resourceVersion");
    }
    obj = with_kind(kind, obj);
    if kind == Kind::Deployment {
        default_deployment(&mut obj);
        if let Err(e) = validate_deployment(&name, None, &obj) {
            return e;
        }
        obj["status"] = json!({});
    }
    if r.dry_run() {
        return json_response(StatusCode::CREATED, &obj);
    }
    store.put(&key, obj);
    if kind == Kind::Deployment {
        sync_deployment(&mut store, &key);
    }
    json_response(StatusCode::CREATED, &store.objects[&key])
}

fn object(world: &K8sWorld, r: &Req, kind: Kind, ns: &str, name: &str) -> Response {
    let key = Key::new(&r.ctx, kind, ns, name);
    let mut store = world.lock();
    let Some(current) = store.objects.get(&key).cloned() else {
        return not_found(kind, name);
    };
    match r.method {
        Method::GET => {
            let (rv, now) = (store.rv.to_string(), store.now());
            // Written out after the lock is released: the object is shared, not copied.
            drop(store);
            if table::wants_table(&r.accept())
                && let Some(t) = table::table(kind, std::slice::from_ref(&current), &rv, now)
            {
                return json_response(StatusCode::OK, &t);
            }
            json_response(StatusCode::OK, &current)
        }
        Method::DELETE => {
            if r.dry_run() {
                return json_response(StatusCode::OK, &current);
            }
            let uid = str_at(&current, "/metadata/uid").unwrap_or("").to_string();
            if kind == Kind::Deployment {
                for (k, _) in super::controller::owned_replicasets(&store, &key, &uid) {
                    store.delete(&k);
                }
            }
            store.delete(&key);
            json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1",
                "metadata": {}, "status": "Success",
                "details": {"name": name, "group": kind.group(), "kind": kind.plural(), "uid": uid}}),
            )
        }
        Method::PUT => {
            let new = match parse_body(r) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if str_at(&new, "/metadata/name").is_some_and(|n| n != name) {
                return status_error(
                    400,
                    "BadRequest",
                    "the name of the object does not match the name on the URL",
                    None,
                );
            }
            update(&mut store, &key, &current, new, r.dry_run())
        }
        Method::PATCH => {
            let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let Some(pk) = PatchKind::from_content_type(ct) else {
                return status_error(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
                    None,
                );
            };
            let p = match parse_body(r) {
                Ok(v) => v,
                Err(e) => return e,
            };
            let mut new = Value::clone(&current);
            if let Err(e) = patch::apply(pk, &mut new, &p) {
                return status_error(422, "Invalid", &e, None);
            }
            update(&mut store, &key, &current, new, r.dry_run())
        }
        _ => status_error(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        ),
    }
}

/// Stores an updated object as the API server would: identity kept, status untouched,
/// defaults applied, generation bumped on spec or annotation changes, optimistic concurrency.
fn update(store: &mut Store, key: &Key, current: &Value, mut new: Value, dry_run: bool) -> Response {
    let kind = key.kind;
    let name = key.name.as_str();
    let cur_rv = str_at(current, "/metadata/resourceVersion").unwrap_or("");
    if let Some(rv) = str_at(&new, "/metadata/resourceVersion")
        && !rv.is_empty()
        && rv != cur_rv
    {
        return status_error(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                kind.plural(),
                kind.group()
            ),
            Some(json!({"name": name, "group": kind.group(), "kind": kind.plural()})),
        );
    }
    new = with_kind(kind, new);
    {
        let meta = super::store::obj_mut(&mut new, &["metadata"]);
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "ownerReferences",
            "resourceVersion",
        ] {
            match current.at(&format!("/metadata/{k}")) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
    }
    if kind != Kind::Lease {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if kind == Kind::Deployment {
        default_deployment(&mut new);
        if let Err(e) = validate_deployment(name, Some(current), &new) {
            return e;
        }
    }
    let changed = new.get("spec") != current.get("spec")
        || new.at("/metadata/annotations") != current.at("/metadata/annotations");
    if changed && kind != Kind::Lease {
        new["metadata"]["generation"] = json!(int_at(current, "/metadata/generation") + 1);
    }
    if dry_run {
        return json_response(StatusCode::OK, &new);
    }
    store.put(key, new);
    if kind == Kind::Deployment {
        sync_deployment(store, key);
    }
    json_response(StatusCode::OK, &store.objects[key])
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj.at("/spec/selector").map(selector_string).unwrap_or_default();
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"]},
        "spec": {"replicas": int_at(obj, "/spec/replicas")},
        "status": {"replicas": int_at(obj, "/status/replicas"), "selector": selector}})
}

fn scale(world: &K8sWorld, r: &Req, kind: Kind, ns: &str, name: &str) -> Response {
    let key = Key::new(&r.ctx, kind, ns, name);
    let mut store = world.lock();
    let Some(current) = store.objects.get(&key).cloned() else {
        return not_found(kind, name);
    };
    let mut sc = scale_of(&current);
    match r.method {
        Method::GET => return json_response(StatusCode::OK, &sc),
        Method::PUT => match parse_body(r) {
            Ok(v) => sc = v,
            Err(e) => return e,
        },
        Method::PATCH => {
            let ct = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let pk = PatchKind::from_content_type(ct).unwrap_or(PatchKind::Merge);
            let p = match parse_body(r) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if let Err(e) = patch::apply(pk, &mut sc, &p) {
                return status_error(422, "Invalid", &e, None);
            }
        }
        _ => {
            return status_error(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                None,
            );
        }
    }
    let Some(replicas) = sc.at("/spec/replicas").and_then(Value::as_i64) else {
        return invalid(kind, name, "spec.replicas: Required value");
    };
    let mut new = Value::clone(&current);
    new["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = sc.at("/metadata/resourceVersion").cloned() {
        new["metadata"]["resourceVersion"] = rv;
    }
    let resp = update(&mut store, &key, &current, new, r.dry_run());
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let after = if r.dry_run() {
        let mut a = Value::clone(&current);
        a["spec"]["replicas"] = json!(replicas);
        Arc::new(a)
    } else {
        store.objects.get(&key).cloned().unwrap_or(current)
    };
    json_response(StatusCode::OK, &scale_of(&after))
}
