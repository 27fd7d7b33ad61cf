//! `/openapi/v2` and `/openapi/v3` (with one document per group-version) for the resources the
//! simulated clusters serve, so kubectl's schema-driven commands work as against a real cluster:
//! `apply` / `create` (which look up the `fieldValidation` parameter of each kind's PATCH
//! operation before they send a request) and `explain`. The schemas come from the Kubernetes
//! types of `k8s-openapi`; the paths list each resource's operations with the extensions a real
//! API server puts on them.

use std::sync::OnceLock;

use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// One served resource.
struct Resource {
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    /// The kind's schema, generated into the generator; returns its name.
    schema: fn(&mut SchemaGenerator) -> String,
}

fn named<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The schema of `<Kind>List` (the Kubernetes types have one generic list type without a
/// schema): `items` of the kind and the list metadata.
fn list_schema(flavor: Flavor, kind: &str, item: &str, g: &mut SchemaGenerator) -> Value {
    let meta = g.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
    let meta = serde_json::to_value(meta).unwrap_or_default();
    let wrap = |v: Value, description: &str| match flavor {
        Flavor::V3 => json!({"allOf": [v], "default": {}, "description": description}),
        Flavor::V2 => {
            let mut v = v;
            v["description"] = json!(description);
            v
        }
    };
    json!({
        "description": format!("{kind}List is a list of {kind}s."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
            "items": {"description": format!("Items is the list of {kind}s."), "type": "array", "items": flavor.reference(item)},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
            "metadata": wrap(meta, "Standard list metadata."),
        },
    })
}

/// A group-version and what it serves: (group, version, resources).
type GroupVersion = (&'static str, &'static str, Vec<Resource>);

fn group_versions() -> Vec<GroupVersion> {
    use k8s_openapi::api::apps::v1 as apps;
    use k8s_openapi::api::coordination::v1 as coord;
    use k8s_openapi::api::core::v1 as core;
    let r = |plural, kind, namespaced, schema| Resource { plural, kind, namespaced, schema };
    vec![
        (
            "",
            "v1",
            vec![
                r("pods", "Pod", true, named::<core::Pod>),
                r("services", "Service", true, named::<core::Service>),
                r("configmaps", "ConfigMap", true, named::<core::ConfigMap>),
                r("secrets", "Secret", true, named::<core::Secret>),
                r("events", "Event", true, named::<core::Event>),
                r("namespaces", "Namespace", false, named::<core::Namespace>),
            ],
        ),
        (
            "apps",
            "v1",
            vec![
                r("deployments", "Deployment", true, named::<apps::Deployment>),
                r("replicasets", "ReplicaSet", true, named::<apps::ReplicaSet>),
            ],
        ),
        ("coordination.k8s.io", "v1", vec![r("leases", "Lease", true, named::<coord::Lease>)]),
    ]
}

/// The path of a group-version below `/openapi/v3/`: `api/v1` or `apis/<group>/<version>`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// Whether the documents are OpenAPI v3 or Swagger 2.0.
#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    V2,
    V3,
}

impl Flavor {
    fn reference(self, name: &str) -> Value {
        match self {
            Flavor::V2 => json!({"$ref": format!("#/definitions/{name}")}),
            Flavor::V3 => json!({"$ref": format!("#/components/schemas/{name}")}),
        }
    }
    fn generator(self) -> SchemaGenerator {
        let mut settings = SchemaSettings::openapi3();
        if self == Flavor::V2 {
            settings.definitions_path = "/definitions".into();
        }
        settings.into_generator()
    }
}

fn query_param(flavor: Flavor, name: &str, description: &str) -> Value {
    match flavor {
        Flavor::V2 => json!({"name": name, "in": "query", "type": "string", "uniqueItems": true,
            "description": description}),
        Flavor::V3 => json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true},
            "description": description}),
    }
}

fn path_param(flavor: Flavor, name: &str) -> Value {
    match flavor {
        Flavor::V2 => {
            json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true})
        }
        Flavor::V3 => json!({"name": name, "in": "path", "required": true,
            "schema": {"type": "string", "uniqueItems": true}}),
    }
}

const FIELD_VALIDATION: &str = "fieldValidation instructs the server on how to handle objects in the request \
    (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict";
const DRY_RUN: &str =
    "When present, indicates that modifications should not be persisted. Valid values are: - All";
const FIELD_MANAGER: &str =
    "fieldManager is a name associated with the actor or entity that is making these changes.";

fn operation(
    flavor: Flavor,
    action: &str,
    id: String,
    gvk: &Value,
    body: Option<&Value>,
    out: &Value,
    writes: bool,
) -> Value {
    let mut params = Vec::new();
    if writes {
        params.push(query_param(flavor, "dryRun", DRY_RUN));
        params.push(query_param(flavor, "fieldManager", FIELD_MANAGER));
        params.push(query_param(flavor, "fieldValidation", FIELD_VALIDATION));
    }
    let mut op = json!({"description": format!("{action} the resource"), "operationId": id,
        "parameters": params, "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk});
    let patch = action == "patch";
    match flavor {
        Flavor::V2 => {
            op["responses"] = json!({"200": {"description": "OK", "schema": out}});
            op["produces"] = json!(["application/json", "application/yaml"]);
            op["consumes"] = if patch {
                json!([
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                    "application/apply-patch+yaml"
                ])
            } else {
                json!(["*/*"])
            };
            if let Some(b) = body
                && let Some(ps) = op["parameters"].as_array_mut()
            {
                ps.push(json!({"name": "body", "in": "body", "required": true, "schema": b}));
            }
        }
        Flavor::V3 => {
            op["responses"] = json!({"200": {"description": "OK", "content": {
                "application/json": {"schema": out}, "application/yaml": {"schema": out}}}});
            if let Some(b) = body {
                let types: &[&str] = if patch {
                    &[
                        "application/apply-patch+yaml",
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/strategic-merge-patch+json",
                    ]
                } else {
                    &["*/*"]
                };
                let content: Map<String, Value> =
                    types.iter().map(|t| (t.to_string(), json!({"schema": b}))).collect();
                op["requestBody"] = json!({"content": content, "required": true});
            }
        }
    }
    op
}

/// The document of one group-version.
fn document(flavor: Flavor, group: &str, version: &str, resources: &[Resource]) -> Value {
    let mut generator = flavor.generator();
    let mut paths = Map::new();
    let mut kinds = Vec::new();
    let mut lists = Vec::new();
    let patch_schema = json!({"type": "object"});
    let prefix =
        if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    for res in resources {
        let kind_schema = (res.schema)(&mut generator);
        let list_name = format!("{kind_schema}List");
        let list_value = list_schema(flavor, res.kind, &kind_schema, &mut generator);
        lists.push((list_name.clone(), list_value));
        kinds.push((kind_schema.clone(), res.kind));
        kinds.push((list_name.clone(), ""));
        let list_schema = list_name;
        let gvk = json!({"group": group, "version": version, "kind": res.kind});
        let obj = flavor.reference(&kind_schema);
        let list = flavor.reference(&list_schema);
        let id = |verb: &str| format!("{verb}{}{}", capitalized(group), res.kind);
        let (collection, item) = if res.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", res.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", res.plural),
            )
        } else {
            (format!("{prefix}/{}", res.plural), format!("{prefix}/{}/{{name}}", res.plural))
        };
        let mut ns_params = Vec::new();
        if res.namespaced {
            ns_params.push(path_param(flavor, "namespace"));
        }
        let mut name_params = ns_params.clone();
        name_params.insert(0, path_param(flavor, "name"));
        paths.insert(
            collection,
            json!({
                "get": operation(flavor, "list", id("list"), &gvk, None, &list, false),
                "post": operation(flavor, "post", id("create"), &gvk, Some(&obj), &obj, true),
                "parameters": ns_params,
            }),
        );
        paths.insert(
            item,
            json!({
                "get": operation(flavor, "get", id("read"), &gvk, None, &obj, false),
                "put": operation(flavor, "put", id("replace"), &gvk, Some(&obj), &obj, true),
                "patch": operation(flavor, "patch", id("patch"), &gvk, Some(&patch_schema), &obj, true),
                "delete": operation(flavor, "delete", id("delete"), &gvk, None, &obj, false),
                "parameters": name_params,
            }),
        );
        if res.namespaced {
            paths.insert(
                format!("{prefix}/{}", res.plural),
                json!({"get": operation(flavor, "list", format!("{}ForAllNamespaces", id("list")), &gvk, None, &list, false)}),
            );
        }
    }
    let mut schemas = generator.take_definitions(true);
    schemas.extend(lists);
    for (name, kind) in kinds {
        // A list's kind is its schema's last name segment (`DeploymentList`).
        let k = if kind.is_empty() { name.rsplit('.').next().unwrap_or("") } else { kind }.to_string();
        if let Some(Value::Object(s)) = schemas.get_mut(&name) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "kind": k, "version": version}]),
            );
        }
    }
    let info = json!({"title": "Kubernetes", "version": "v1.32.4"});
    match flavor {
        Flavor::V2 => json!({"swagger": "2.0", "info": info, "paths": paths, "definitions": schemas}),
        Flavor::V3 => {
            json!({"openapi": "3.0.0", "info": info, "paths": paths, "components": {"schemas": schemas}})
        }
    }
}

fn capitalized(group: &str) -> String {
    group
        .split('.')
        .next()
        .unwrap_or("")
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
        .collect::<String>()
        + if group.is_empty() { "Core" } else { "" }
}

struct Docs {
    v2: String,
    v3: Vec<(String, String, String)>,
    /// Every component schema of the v3 documents, by name.
    schemas: Map<String, Value>,
}

fn docs() -> &'static Docs {
    static DOCS: OnceLock<Docs> = OnceLock::new();
    DOCS.get_or_init(|| {
        let gvs = group_versions();
        let mut v3 = Vec::new();
        let mut schemas = Map::new();
        let mut v2_paths = Map::new();
        let mut v2_defs = Map::new();
        for (g, v, res) in &gvs {
            let doc = document(Flavor::V3, g, v, res);
            let text = doc.to_string();
            if let Some(s) = doc.pointer("/components/schemas").and_then(Value::as_object) {
                schemas.extend(s.clone());
            }
            v3.push((gv_path(g, v), hash(&text), text));
            let d2 = document(Flavor::V2, g, v, res);
            if let Some(p) = d2.get("paths").and_then(Value::as_object) {
                v2_paths.extend(p.clone());
            }
            if let Some(d) = d2.get("definitions").and_then(Value::as_object) {
                v2_defs.extend(d.clone());
            }
        }
        let v2 = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": v2_paths, "definitions": v2_defs})
        .to_string();
        Docs { v2, v3, schemas }
    })
}

/// An upper-case hex digest of a document (FNV-1a, 64 bits): the `hash` of its URL.
fn hash(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// The schema a `$ref` (or a one-element `allOf` around one) points at.
fn resolve<'a>(schemas: &'a Map<String, Value>, mut s: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match r.rsplit('/').next().and_then(|n| schemas.get(n)) {
                Some(next) => s = next,
                None => return s,
            }
        } else if let Some([one]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            s = one;
        } else {
            return s;
        }
    }
    s
}

fn prune(
    schemas: &Map<String, Value>,
    schema: &Value,
    obj: &mut Value,
    path: &str,
    unknown: &mut Vec<String>,
) {
    let schema = resolve(schemas, schema);
    if schema.get("x-kubernetes-preserve-unknown-fields").is_some()
        || schema.get("x-kubernetes-int-or-string").is_some()
    {
        return;
    }
    match obj {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    match props.get(&k) {
                        Some(sub) => {
                            if let Some(v) = m.get_mut(&k) {
                                prune(schemas, sub, v, &here, unknown);
                            }
                        }
                        None => {
                            m.remove(&k);
                            unknown.push(here);
                        }
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, v) in m.iter_mut() {
                    prune(schemas, extra, v, &format!("{path}.{k}"), unknown);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(schemas, item, v, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Drops the fields of `obj` that the schema of `schema_name` (e.g.
/// `io.k8s.api.apps.v1.Deployment`) does not know, returning their paths (`spec.replica`),
/// as the API server's field validation finds them.
pub fn drop_unknown_fields(schema_name: &str, obj: &mut Value) -> Vec<String> {
    let schemas = &docs().schemas;
    let mut unknown = Vec::new();
    if let Some(schema) = schemas.get(schema_name) {
        prune(schemas, schema, obj, "", &mut unknown);
    }
    // `apiVersion` and `kind` are part of every object.
    unknown.retain(|p| p != "apiVersion" && p != "kind");
    unknown
}

/// `GET /openapi/v3`: where each group-version's document is.
pub fn v3_root() -> Value {
    let paths: Map<String, Value> = docs()
        .v3
        .iter()
        .map(|(p, h, _)| (p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={h}")})))
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/<group-version path>`: the document, as JSON text.
pub fn v3_document(path: &str) -> Option<&'static str> {
    docs().v3.iter().find(|(p, _, _)| p == path).map(|(_, _, text)| text.as_str())
}

/// `GET /openapi/v2`: every served path and definition in one Swagger 2.0 document (JSON text).
pub fn v2_document() -> &'static str {
    &docs().v2
}

/// Whether an `Accept` header takes the JSON form of an OpenAPI document (the protobuf form is
/// not served, and a client asking for it alone is answered 406, as for any unknown type).
pub fn accepts_json(accept: &str) -> bool {
    accept.is_empty()
        || accept.split(',').any(|part| {
            let t = part.split(';').next().unwrap_or("").trim();
            matches!(t, "application/json" | "*/*" | "application/*")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_document_describes_deployments_with_their_gvk_and_field_validation() {
        let doc: Value =
            serde_json::from_str(v3_document("apis/apps/v1").unwrap_or("{}")).unwrap_or_default();
        let d = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], "Deployment", "{d}");
        assert!(d["properties"]["spec"].to_string().contains("io.k8s.api.apps.v1.DeploymentSpec"), "{d}");
        let spec = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"];
        assert!(spec["properties"]["progressDeadlineSeconds"]["description"].is_string(), "{spec}");
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            patch["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation"))
        );
        let root = v3_root();
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap_or("");
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{root}");
    }

    #[test]
    fn json_is_accepted_unless_only_protobuf_is() {
        assert!(accepts_json("application/json"));
        assert!(accepts_json(""));
        assert!(!accepts_json("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"));
    }
}
