//! Template validation as ARM does it before a deployment, a validate or a what-if creates
//! anything: every declared parameter without a `defaultValue` has a value, no value is given
//! for an undeclared parameter, each value has its declared type (`string`, `securestring`,
//! `int`, `bool`, `object`, `secureObject`, `array`) and is one of `allowedValues` and within
//! `minValue`/`maxValue`/`minLength`/`maxLength`, and `resources` is an array (or the symbolic
//! map of `languageVersion` 2.0) of objects with `type`, `name` and `apiVersion`.
//!
//! A failure is a 400 with ARM's envelope: `InvalidTemplate` for the template and its
//! parameters (the message is the first problem, worded as ARM words it; `details` list every
//! problem with `target` naming the parameter or resource, and `additionalInfo` the JSON path);
//! `InvalidTemplateDeployment` for a resource that fails preflight (a `type` without a
//! namespace, a malformed `apiVersion`).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::arm_api::error::ArmError;
use super::arm_api::ids::new_uuid;
use super::arm_api::versions::parse_api_version;

/// One problem found.
struct Problem {
    /// `parameters.<name>` or `resources[<i>]`.
    target: String,
    /// ARM's words, without the "Deployment template validation failed" frame.
    message: String,
}

/// Validates `template` with the deployment's `parameters` (`{"name": {"value": ..}}`).
pub(crate) fn validate(deployment: &str, template: &Value, parameters: &Value) -> Result<(), ArmError> {
    let mut problems = parameter_problems(template, parameters);
    let (mut structure, preflight) = resource_problems(template);
    problems.append(&mut structure);
    if let Some(first) = problems.first() {
        let mut e = ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTemplate",
            format!("Deployment template validation failed: '{}'.", first.message),
        );
        for p in &problems {
            e = e.detail("InvalidTemplate", p.message.clone(), Some(&p.target));
        }
        e.additional_info = Some(Box::new(json!([{
            "type": "TemplateViolation",
            "info": { "lineNumber": 0, "linePosition": 0, "path": format!("properties.template.{}", first.target) }
        }])));
        return Err(e);
    }
    if !preflight.is_empty() {
        let mut inner = json!({
            "code": "PreflightValidationCheckFailed",
            "message": "Preflight validation failed. Please refer to the details for the specific errors.",
            "details": [],
        });
        if let Some(list) = inner["details"].as_array_mut() {
            for p in &preflight {
                list.push(json!({ "code": "InvalidResourceType", "target": p.target, "message": p.message }));
            }
        }
        let mut e = ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTemplateDeployment",
            format!(
                "The template deployment '{deployment}' is not valid according to the validation procedure. \
                 The tracking id is '{}'. See inner errors for details.",
                new_uuid()
            ),
        );
        e.details.push(inner);
        return Err(e);
    }
    Ok(())
}

/// ARM's name of a parameter type (as in its messages), None when unknown.
fn type_name(declared: &str) -> Option<&'static str> {
    Some(match declared.to_ascii_lowercase().as_str() {
        "string" => "String",
        "securestring" => "SecureString",
        "int" => "Int",
        "bool" => "Bool",
        "object" => "Object",
        "secureobject" => "SecureObject",
        "array" => "Array",
        _ => return None,
    })
}

/// JSON.NET's name of a value's token type, as ARM quotes it.
fn token_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "String",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Float",
        Value::Bool(_) => "Boolean",
        Value::Object(_) => "Object",
        Value::Array(_) => "Array",
        Value::Null => "Null",
    }
}

/// The token type a declared type expects.
fn expected_token(ty: &str) -> &'static str {
    match ty {
        "Int" => "Integer",
        "Bool" => "Boolean",
        "Object" | "SecureObject" => "Object",
        "Array" => "Array",
        _ => "String",
    }
}

fn parameter_problems(template: &Value, parameters: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let declared = match template.get("parameters") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => {
            out.push(Problem {
                target: "parameters".into(),
                message: "The template property 'parameters' is not valid: it must be an object.".into(),
            });
            return out;
        }
    };
    let given = parameters.as_object().unwrap_or(&empty);
    let find_declared =
        |name: &str| declared.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);

    let undeclared: Vec<&str> =
        given.keys().filter(|k| find_declared(k).is_none()).map(String::as_str).collect();
    if !undeclared.is_empty() {
        let supported: Vec<&str> = declared.keys().map(String::as_str).collect();
        let message = format!(
            "The template parameters '{}' in the parameters file are not valid; they are not present in the \
             original template and can therefore not be provided at deployment time. The only supported \
             parameters for this template are '{}'. Please see https://aka.ms/arm-pass-parameter-values for \
             usage details.",
            undeclared.join(", "),
            supported.join(", ")
        );
        for name in &undeclared {
            out.push(Problem { target: format!("parameters.{name}"), message: message.clone() });
        }
    }

    for (name, spec) in declared {
        let target = format!("parameters.{name}");
        let ty = spec.get("type").and_then(Value::as_str).and_then(type_name);
        let Some(ty) = ty else {
            let raw = spec.get("type").map(Value::to_string).unwrap_or_else(|| "null".into());
            out.push(Problem {
                target,
                message: format!(
                    "The template parameter '{name}' has an invalid type {raw}: use one of 'string', \
                     'securestring', 'int', 'bool', 'object', 'secureObject', 'array'."
                ),
            });
            continue;
        };
        let supplied = given.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let value = match supplied {
            // A Key Vault reference or an expression is resolved at deployment time.
            Some(Value::Object(o)) if !o.contains_key("value") => continue,
            Some(v) => v.get("value").cloned().unwrap_or(Value::Null),
            None => match spec.get("defaultValue") {
                Some(_) => continue,
                None => {
                    out.push(Problem {
                        target,
                        message: format!(
                            "The value for the template parameter '{name}' is not provided. Please see \
                             https://aka.ms/arm-create-parameter-file for usage details."
                        ),
                    });
                    continue;
                }
            },
        };
        let expected = expected_token(ty);
        let actual = token_type(&value);
        if expected != actual {
            out.push(Problem {
                target,
                message: format!(
                    "Template parameter JToken type is not valid. Expected '{expected}'. Actual '{actual}'. \
                     Please see https://aka.ms/arm-create-parameter-file for usage details."
                ),
            });
            continue;
        }
        if let Some(allowed) = spec.get("allowedValues").and_then(Value::as_array) {
            let items: Vec<&Value> = match &value {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            if items.iter().any(|v| !allowed.contains(v)) {
                let shown = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                out.push(Problem {
                    target: target.clone(),
                    message: format!(
                        "The provided value '{}' for the template parameter '{name}' is not valid. The parameter \
                         value is not part of the allowed value(s): '{}'. Please see \
                         https://aka.ms/arm-parameters-allowed-values for usage details.",
                        shown(&value),
                        allowed.iter().map(shown).collect::<Vec<_>>().join(",")
                    ),
                });
                continue;
            }
        }
        if let Some(n) = value.as_i64() {
            let min = spec.get("minValue").and_then(Value::as_i64);
            let max = spec.get("maxValue").and_then(Value::as_i64);
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                out.push(Problem {
                    target: target.clone(),
                    message: format!(
                        "The provided value '{n}' for the template parameter '{name}' is not valid: it must be \
                         between {} and {}.",
                        min.map_or("-inf".into(), |m| m.to_string()),
                        max.map_or("inf".into(), |m| m.to_string())
                    ),
                });
                continue;
            }
        }
        let len = match &value {
            Value::String(s) => Some(s.chars().count()),
            Value::Array(a) => Some(a.len()),
            _ => None,
        };
        if let Some(len) = len {
            let min = spec.get("minLength").and_then(Value::as_u64);
            let max = spec.get("maxLength").and_then(Value::as_u64);
            let len = len as u64;
            if min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m) {
                out.push(Problem {
                    target,
                    message: format!(
                        "The provided value for the template parameter '{name}' is not valid. Length of the value \
                         should be {} {}.",
                        if min.is_some_and(|m| len < m) { "greater than or equal to" } else { "less than or equal to" },
                        if min.is_some_and(|m| len < m) { min.unwrap_or(0) } else { max.unwrap_or(0) }
                    ),
                });
            }
        }
    }
    out
}

/// (template problems, preflight problems) of `resources`.
fn resource_problems(template: &Value) -> (Vec<Problem>, Vec<Problem>) {
    let mut structure = Vec::new();
    let mut preflight = Vec::new();
    let symbolic =
        template.get("languageVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with('2'));
    let list: Vec<(String, &Value)> = match template.get("resources") {
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, r)| (format!("resources[{i}]"), r)).collect(),
        Some(Value::Object(o)) if symbolic => o.iter().map(|(k, r)| (format!("resources.{k}"), r)).collect(),
        _ => {
            structure.push(Problem {
                target: "resources".into(),
                message: "The template property 'resources' is not valid: it must be an array of resources. \
                          Please see https://aka.ms/arm-syntax-resources for usage details."
                    .into(),
            });
            return (structure, preflight);
        }
    };
    for (target, r) in list {
        let Some(obj) = r.as_object() else {
            structure.push(Problem {
                target,
                message: "The template resource is not valid: a resource must be a JSON object. Please see \
                          https://aka.ms/arm-syntax-resources for usage details."
                    .into(),
            });
            continue;
        };
        let label = obj.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let missing: Vec<&str> = ["type", "name", "apiVersion"]
            .into_iter()
            .filter(|k| obj.get(*k).and_then(Value::as_str).is_none_or(str::is_empty))
            .collect();
        if let Some(k) = missing.first() {
            structure.push(Problem {
                target,
                message: format!(
                    "The template resource '{label}' is not valid: Required property '{k}' not found in JSON. \
                     Please see https://aka.ms/arm-syntax-resources for usage details."
                ),
            });
            continue;
        }
        let rtype = obj.get("type").and_then(Value::as_str).unwrap_or("");
        let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if !rtype.contains('/') || rtype.starts_with('/') || rtype.ends_with('/') {
            preflight.push(Problem {
                target: target.clone(),
                message: format!(
                    "The resource type '{rtype}' of resource '{label}' is not valid: it must be \
                     '<namespace>/<type>'."
                ),
            });
        }
        if !api.starts_with('[') && parse_api_version(api).is_none() {
            preflight.push(Problem {
                target,
                message: format!("The api-version '{api}' of resource '{label}' is not valid."),
            });
        }
    }
    (structure, preflight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(params: Value) -> Value {
        json!({ "contentVersion": "1.0.0.0", "parameters": params, "resources": [] })
    }

    fn code_and_target(r: Result<(), ArmError>) -> (String, String, String) {
        let e = r.expect_err("refused");
        let target = e.details.first().and_then(|d| d["target"].as_str()).unwrap_or("").to_string();
        (e.code, target, e.message)
    }

    #[test]
    fn parameters_are_checked_as_arm_checks_them() {
        let t = template(json!({
            "sku": { "type": "string", "allowedValues": ["S1", "P1"] },
            "count": { "type": "int", "defaultValue": 1, "minValue": 1, "maxValue": 5 },
            "on": { "type": "bool", "defaultValue": true },
            "pw": { "type": "securestring" },
            "tags": { "type": "object", "defaultValue": {} },
            "zones": { "type": "array", "defaultValue": [] },
            "cfg": { "type": "secureObject", "defaultValue": {} }
        }));
        let ok = json!({ "sku": { "value": "S1" }, "pw": { "value": "x" } });
        assert!(validate("d", &t, &ok).is_ok());
        let kv = json!({ "sku": { "value": "P1" }, "pw": { "reference": { "secretName": "s" } } });
        assert!(validate("d", &t, &kv).is_ok(), "a Key Vault reference is not type-checked");

        let (code, target, msg) = code_and_target(validate("d", &t, &json!({ "sku": { "value": "S1" } })));
        assert_eq!((code.as_str(), target.as_str()), ("InvalidTemplate", "parameters.pw"));
        assert!(msg.contains("The value for the template parameter 'pw' is not provided"), "{msg}");

        let extra = json!({ "sku": { "value": "S1" }, "pw": { "value": "x" }, "size": { "value": 1 } });
        let (_, target, msg) = code_and_target(validate("d", &t, &extra));
        assert_eq!(target, "parameters.size");
        assert!(msg.contains("'size' in the parameters file are not valid"), "{msg}");

        for (name, bad) in [
            ("count", json!("3")),
            ("on", json!("true")),
            ("tags", json!([])),
            ("zones", json!({})),
            ("pw", json!(5)),
            ("cfg", json!("x")),
        ] {
            let mut p = ok.clone();
            p[name] = json!({ "value": bad });
            let (code, target, msg) = code_and_target(validate("d", &t, &p));
            assert_eq!(
                (code.as_str(), target.as_str()),
                ("InvalidTemplate", format!("parameters.{name}").as_str())
            );
            assert!(msg.contains("JToken type is not valid"), "{name}: {msg}");
        }

        let mut p = ok.clone();
        p["sku"] = json!({ "value": "F1" });
        let (_, target, msg) = code_and_target(validate("d", &t, &p));
        assert_eq!(target, "parameters.sku");
        assert!(msg.contains("not part of the allowed value(s): 'S1,P1'"), "{msg}");

        let mut p = ok;
        p["count"] = json!({ "value": 9 });
        assert_eq!(code_and_target(validate("d", &t, &p)).1, "parameters.count");
    }

    #[test]
    fn malformed_resources_are_refused() {
        let t = json!({ "resources": "none" });
        assert_eq!(code_and_target(validate("d", &t, &json!({}))).1, "resources");
        let t = json!({ "resources": [ { "type": "Microsoft.Web/sites", "name": "a" } ] });
        let (code, target, msg) = code_and_target(validate("d", &t, &json!({})));
        assert_eq!((code.as_str(), target.as_str()), ("InvalidTemplate", "resources[0]"));
        assert!(msg.contains("Required property 'apiVersion'"), "{msg}");
        let t = json!({ "resources": [ 5 ] });
        assert_eq!(code_and_target(validate("d", &t, &json!({}))).0, "InvalidTemplate");
        let t = json!({ "resources": [ { "type": "sites", "name": "a", "apiVersion": "2024-11-01" } ] });
        let e = validate("d", &t, &json!({})).expect_err("preflight");
        assert_eq!(e.code, "InvalidTemplateDeployment");
        assert_eq!(e.details[0]["details"][0]["target"], "resources[0]");
        let t = json!({ "languageVersion": "2.0", "resources": { "a": { "type": "A/b", "name": "a", "apiVersion": "2024-01-01" } } });
        assert!(validate("d", &t, &json!({})).is_ok());
    }
}
