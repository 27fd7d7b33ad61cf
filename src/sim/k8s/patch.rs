//! The three patch formats the Kubernetes API accepts: JSON Patch (RFC 6902), JSON merge patch
//! (RFC 7386) and the subset of strategic merge patch that kubectl and kube send.

use serde_json::Value;

/// Which patch format a request body is, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (JSON bodies only; applied as a strategic merge).
    Apply,
}

impl PatchKind {
    /// The patch kind for a `Content-Type` header value, if it is one.
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// Applies `patch` of `kind` to `doc`; the error is the message the API server would give.
pub fn apply(kind: PatchKind, doc: &mut Value, patch: &Value) -> Result<(), String> {
    match kind {
        PatchKind::Json => json_patch(doc, patch),
        PatchKind::Merge => {
            merge_patch(doc, patch);
            Ok(())
        }
        PatchKind::Strategic | PatchKind::Apply => {
            strategic_merge(doc, patch);
            Ok(())
        }
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(doc: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Default::default());
    }
    if let Value::Object(d) = doc {
        for (k, v) in p {
            if v.is_null() {
                d.remove(k);
            } else {
                merge_patch(d.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Lists that strategic merge patch merges element by element, keyed by `name`.
const MERGE_BY_NAME: &[&str] = &[
    "containers",
    "initContainers",
    "ephemeralContainers",
    "env",
    "volumes",
    "volumeMounts",
    "imagePullSecrets",
];

/// Strategic merge patch as kubectl sends it: merge patch, plus lists of named items merged by
/// `name`, `$patch: delete|replace` and the `$setElementOrder`/`$retainKeys` directives ignored.
pub fn strategic_merge(doc: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = patch.clone();
        if let Value::Object(m) = &mut clean {
            m.remove("$patch");
        }
        *doc = clean;
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Default::default());
    }
    let Value::Object(d) = doc else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                d.remove(k);
            }
            Value::Array(items) if MERGE_BY_NAME.contains(&k.as_str()) => {
                let target = d.entry(k.clone()).or_insert(Value::Array(vec![]));
                if !target.is_array() {
                    *target = Value::Array(vec![]);
                }
                if let Value::Array(list) = target {
                    for item in items {
                        let name = item.get("name").cloned();
                        let pos = list.iter().position(|e| name.is_some() && e.get("name") == name.as_ref());
                        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                        match (pos, delete) {
                            (Some(i), true) => {
                                list.remove(i);
                            }
                            (None, true) => {}
                            (Some(i), false) => strategic_merge(&mut list[i], item),
                            (None, false) => {
                                let mut fresh = Value::Object(Default::default());
                                strategic_merge(&mut fresh, item);
                                list.push(fresh);
                            }
                        }
                    }
                }
            }
            Value::Object(_) => {
                let target = d.entry(k.clone()).or_insert(Value::Null);
                if v.get("$patch").and_then(Value::as_str) == Some("delete") {
                    d.remove(k);
                } else {
                    strategic_merge(target, v);
                }
            }
            other => {
                d.insert(k.clone(), other.clone());
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Splits a JSON pointer into its parent pointer and last token.
fn split_pointer(path: &str) -> Result<(String, String), String> {
    if path.is_empty() {
        return Err("the root document cannot be the target of this operation".into());
    }
    let idx = path.rfind('/').ok_or_else(|| format!("invalid JSON pointer `{path}`"))?;
    Ok((path[..idx].to_string(), unescape(&path[idx + 1..])))
}

fn get<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, String> {
    doc.pointer(path).ok_or_else(|| format!("doc is missing path: \"{path}\": missing value"))
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let missing = || format!("doc is missing path: \"{path}\": missing value");
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() { Ok(a.remove(i)) } else { Err(missing()) }
        }
        _ => Err(missing()),
    }
}

fn add_at(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let missing = || format!("doc is missing path: \"{path}\": missing value");
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last.parse().map_err(|_| missing())?;
            if i <= a.len() {
                a.insert(i, value);
                Ok(())
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

/// RFC 6902, strict like the API server: `replace` and `remove` need the target to exist.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch.as_array().ok_or("json patch must be an array of operations")?;
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).ok_or("operation has no `path`")?;
        let value = || op.get("value").cloned().ok_or_else(|| format!("{name} operation has no `value`"));
        let from = || {
            op.get("from").and_then(Value::as_str).ok_or_else(|| format!("{name} operation has no `from`"))
        };
        match name {
            "add" => add_at(doc, path, value()?)?,
            "remove" => {
                remove_at(doc, path)?;
            }
            "replace" => {
                let v = value()?;
                if path.is_empty() {
                    *doc = v;
                } else {
                    let target = doc.pointer_mut(path).ok_or_else(|| {
                        format!("replace operation does not apply: doc is missing key: {path}: missing value")
                    })?;
                    *target = v;
                }
            }
            "test" => {
                if get(doc, path)? != &value()? {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            "move" => {
                let v = remove_at(doc, from()?)?;
                add_at(doc, path, v)?;
            }
            "copy" => {
                let v = get(doc, from()?)?.clone();
                add_at(doc, path, v)?;
            }
            other => return Err(format!("unexpected kind: {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_replace_needs_the_key() {
        let mut doc = json!({"metadata": {}});
        let p = json!([{"op": "replace", "path": "/metadata/annotations", "value": {}}]);
        assert!(json_patch(&mut doc, &p).is_err());
        let mut doc = json!({"metadata": {"annotations": {"a": "1"}}, "l": [1, 2]});
        let p = json!([
            {"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}},
            {"op": "add", "path": "/l/-", "value": 3},
            {"op": "remove", "path": "/l/0"},
            {"op": "test", "path": "/l/1", "value": 3},
        ]);
        json_patch(&mut doc, &p).unwrap();
        assert_eq!(doc, json!({"metadata": {"annotations": {"b": "2"}}, "l": [2, 3]}));
    }

    #[test]
    fn strategic_merge_keys_containers_by_name() {
        let mut doc = json!({"spec": {"paused": true, "containers": [
            {"name": "web", "image": "a", "ports": [1]}, {"name": "side", "image": "s"}]}});
        let p = json!({"spec": {"paused": null, "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"name": "web", "image": "b"}]}});
        strategic_merge(&mut doc, &p);
        assert_eq!(
            doc,
            json!({"spec": {"containers": [
                {"name": "web", "image": "b", "ports": [1]}, {"name": "side", "image": "s"}]}})
        );
    }
}
