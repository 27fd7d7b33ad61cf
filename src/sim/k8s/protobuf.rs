//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as kubectl's typed commands
//! (`create deployment`, `create namespace`, `create configmap`, `create secret`, `create
//! service`) send them: the `k8s\0` envelope around a `runtime.Unknown`, decoded into the JSON
//! object the handlers take. The fields those commands set are decoded; a body with any other
//! field set is answered 415 rather than stored with the field silently lost.

use base64::Engine;
use serde_json::{Map, Value, json};

/// How one field is encoded.
#[derive(Clone, Copy)]
enum F {
    Str,
    Int,
    Bool,
    Msg(&'static [(u32, &'static str, F)]),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`.
    MapBytes,
    RepStr,
    RepMsg(&'static [(u32, &'static str, F)]),
    /// `intstr.IntOrString`.
    IntOrStr,
}

type Schema = &'static [(u32, &'static str, F)];

const META: Schema = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (11, "labels", F::MapStr),
    (12, "annotations", F::MapStr),
    (14, "finalizers", F::RepStr),
];
const SELECTOR_REQ: Schema = &[(1, "key", F::Str), (2, "operator", F::Str), (3, "values", F::RepStr)];
const SELECTOR: Schema = &[(1, "matchLabels", F::MapStr), (2, "matchExpressions", F::RepMsg(SELECTOR_REQ))];
const CONTAINER_PORT: Schema = &[
    (1, "name", F::Str),
    (2, "hostPort", F::Int),
    (3, "containerPort", F::Int),
    (4, "protocol", F::Str),
    (5, "hostIP", F::Str),
];
const ENV: Schema = &[(1, "name", F::Str), (2, "value", F::Str)];
const CONTAINER: Schema = &[
    (1, "name", F::Str),
    (2, "image", F::Str),
    (3, "command", F::RepStr),
    (4, "args", F::RepStr),
    (5, "workingDir", F::Str),
    (6, "ports", F::RepMsg(CONTAINER_PORT)),
    (7, "env", F::RepMsg(ENV)),
    (13, "terminationMessagePath", F::Str),
    (14, "imagePullPolicy", F::Str),
    (20, "terminationMessagePolicy", F::Str),
];
const POD_SPEC: Schema = &[
    (2, "containers", F::RepMsg(CONTAINER)),
    (3, "restartPolicy", F::Str),
    (4, "terminationGracePeriodSeconds", F::Int),
    (6, "dnsPolicy", F::Str),
    (7, "nodeSelector", F::MapStr),
    (8, "serviceAccountName", F::Str),
    (19, "schedulerName", F::Str),
];
const TEMPLATE: Schema = &[(1, "metadata", F::Msg(META)), (2, "spec", F::Msg(POD_SPEC))];
const ROLLING: Schema = &[(1, "maxUnavailable", F::IntOrStr), (2, "maxSurge", F::IntOrStr)];
const STRATEGY: Schema = &[(1, "type", F::Str), (2, "rollingUpdate", F::Msg(ROLLING))];
const DEPLOYMENT_SPEC: Schema = &[
    (1, "replicas", F::Int),
    (2, "selector", F::Msg(SELECTOR)),
    (3, "template", F::Msg(TEMPLATE)),
    (4, "strategy", F::Msg(STRATEGY)),
    (5, "minReadySeconds", F::Int),
    (6, "revisionHistoryLimit", F::Int),
    (7, "paused", F::Bool),
    (9, "progressDeadlineSeconds", F::Int),
];
const DEPLOYMENT: Schema = &[(1, "metadata", F::Msg(META)), (2, "spec", F::Msg(DEPLOYMENT_SPEC))];
const NAMESPACE_SPEC: Schema = &[(1, "finalizers", F::RepStr)];
const NAMESPACE: Schema = &[(1, "metadata", F::Msg(META)), (2, "spec", F::Msg(NAMESPACE_SPEC))];
const CONFIGMAP: Schema = &[
    (1, "metadata", F::Msg(META)),
    (2, "data", F::MapStr),
    (3, "binaryData", F::MapBytes),
    (4, "immutable", F::Bool),
];
const SECRET: Schema = &[
    (1, "metadata", F::Msg(META)),
    (2, "data", F::MapBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStr),
    (5, "immutable", F::Bool),
];
const SERVICE_PORT: Schema = &[
    (1, "name", F::Str),
    (2, "protocol", F::Str),
    (3, "port", F::Int),
    (4, "targetPort", F::IntOrStr),
    (5, "nodePort", F::Int),
];
const SERVICE_SPEC: Schema = &[
    (1, "ports", F::RepMsg(SERVICE_PORT)),
    (2, "selector", F::MapStr),
    (3, "clusterIP", F::Str),
    (4, "type", F::Str),
    (10, "externalName", F::Str),
];
const SERVICE: Schema = &[(1, "metadata", F::Msg(META)), (2, "spec", F::Msg(SERVICE_SPEC))];

const RESOURCE_ATTRIBUTES: Schema = &[
    (1, "namespace", F::Str),
    (2, "verb", F::Str),
    (3, "group", F::Str),
    (4, "version", F::Str),
    (5, "resource", F::Str),
    (6, "subresource", F::Str),
    (7, "name", F::Str),
];
const NON_RESOURCE_ATTRIBUTES: Schema = &[(1, "path", F::Str), (2, "verb", F::Str)];
const REVIEW_SPEC: Schema = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRIBUTES)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRIBUTES)),
];
const REVIEW: Schema = &[(1, "metadata", F::Msg(META)), (2, "spec", F::Msg(REVIEW_SPEC))];

fn schema_of(api_version: &str, kind: &str) -> Option<Schema> {
    match (api_version, kind) {
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => Some(REVIEW),
        ("apps/v1", "Deployment") => Some(DEPLOYMENT),
        ("v1", "Namespace") => Some(NAMESPACE),
        ("v1", "ConfigMap") => Some(CONFIGMAP),
        ("v1", "Secret") => Some(SECRET),
        ("v1", "Service") => Some(SERVICE),
        _ => None,
    }
}

/// One wire field: its number and value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut out: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err("varint too long".into())
}

fn fields(buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, String> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wt) = ((tag >> 3) as u32, tag & 7);
        let w = match wt {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| "length too large")?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len()).ok_or("truncated field")?;
                let b = &buf[pos..end];
                pos = end;
                Wire::Bytes(b)
            }
            1 => {
                pos = pos.checked_add(8).filter(|e| *e <= buf.len()).ok_or("truncated field")?;
                Wire::Fixed
            }
            5 => {
                pos = pos.checked_add(4).filter(|e| *e <= buf.len()).ok_or("truncated field")?;
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((num, w));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

fn entry(b: &[u8]) -> Result<(String, &[u8]), String> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(k)) => key = text(k)?,
            (2, Wire::Bytes(v)) => value = v,
            _ => return Err("malformed map entry".into()),
        }
    }
    Ok((key, value))
}

fn message(buf: &[u8], schema: Schema, path: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (num, w) in fields(buf)? {
        let Some((_, name, f)) = schema.iter().find(|(n, _, _)| *n == num) else {
            // Fields the server sets (uid, resourceVersion, timestamps, status) and empty
            // messages carry nothing the simulator would keep.
            let empty = matches!(w, Wire::Bytes(b) if b.is_empty()) || matches!(w, Wire::Varint(0));
            let server_set = (path.ends_with("metadata") && matches!(num, 4..=10 | 13 | 15..=17))
                || (path.is_empty() && num == 3);
            if empty || server_set {
                continue;
            }
            return Err(format!(
                "field {num} of `{}` is not one the simulator decodes",
                if path.is_empty() { "the object" } else { path }
            ));
        };
        let here = if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
        let value = match (f, w) {
            (F::Str, Wire::Bytes(b)) => json!(text(b)?),
            (F::Int, Wire::Varint(v)) => json!(v as i64),
            (F::Bool, Wire::Varint(v)) => json!(v != 0),
            (F::Msg(s), Wire::Bytes(b)) => Value::Object(message(b, s, &here)?),
            (F::IntOrStr, Wire::Bytes(b)) => {
                let m =
                    message(b, &[(1, "type", F::Int), (2, "intVal", F::Int), (3, "strVal", F::Str)], &here)?;
                if m.get("type").and_then(Value::as_i64).unwrap_or(0) == 1 {
                    m.get("strVal").cloned().unwrap_or(json!(""))
                } else {
                    m.get("intVal").cloned().unwrap_or(json!(0))
                }
            }
            (F::MapStr | F::MapBytes, Wire::Bytes(b)) => {
                let (k, v) = entry(b)?;
                let v = if matches!(f, F::MapStr) {
                    json!(text(v)?)
                } else {
                    json!(base64::engine::general_purpose::STANDARD.encode(v))
                };
                let map = out.entry(name.to_string()).or_insert_with(|| json!({}));
                if let Some(m) = map.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            (F::RepStr | F::RepMsg(_), Wire::Bytes(b)) => {
                let item = match f {
                    F::RepMsg(s) => Value::Object(message(b, s, &here)?),
                    _ => json!(text(b)?),
                };
                let list = out.entry(name.to_string()).or_insert_with(|| json!([]));
                if let Some(l) = list.as_array_mut() {
                    l.push(item);
                }
                continue;
            }
            _ => return Err(format!("`{here}` has the wrong wire type")),
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// Decodes a Kubernetes protobuf body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let raw =
        body.strip_prefix(b"k8s\0").ok_or("the body does not start with the Kubernetes protobuf prefix")?;
    let mut type_meta = (String::new(), String::new());
    let mut inner: &[u8] = &[];
    for (n, w) in fields(raw)? {
        match (n, w) {
            (1, Wire::Bytes(b)) => {
                for (m, w) in fields(b)? {
                    match (m, w) {
                        (1, Wire::Bytes(v)) => type_meta.0 = text(v)?,
                        (2, Wire::Bytes(v)) => type_meta.1 = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => inner = b,
            (3 | 4, Wire::Bytes([])) => {}
            (3 | 4, _) => return Err("encoded or nested content types are not decoded".into()),
            _ => {}
        }
    }
    let (api_version, kind) = type_meta;
    let schema = schema_of(&api_version, &kind)
        .ok_or_else(|| format!("protobuf bodies of {kind} ({api_version}) are not decoded; send JSON"))?;
    let mut obj = message(inner, schema, "")?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_namespace_decodes_and_an_unknown_field_is_refused() {
        let meta = field(1, b"team-a");
        let ns = field(1, &meta);
        let mut tm = field(1, b"v1");
        tm.extend(field(2, b"Namespace"));
        let mut unknown = field(1, &tm);
        unknown.extend(field(2, &ns));
        let mut body = b"k8s\0".to_vec();
        body.extend(&unknown);
        let v = decode(&body).unwrap_or_default();
        assert_eq!(v, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));

        let mut odd = ns.clone();
        odd.extend([(9 << 3) as u8, 1]);
        let mut u = field(1, &tm);
        u.extend(field(2, &odd));
        let mut body = b"k8s\0".to_vec();
        body.extend(&u);
        assert!(decode(&body).is_err_and(|e| e.contains("field 9")));
        assert!(decode(b"{}").is_err());
    }
}
