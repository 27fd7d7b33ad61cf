//! `RUNBOOK` metadata and params: read from the literal constant, validated before
//! anything runs, and `-p KEY=VALUE` values parsed by their declared type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{nearest, parse_duration};

/// A param's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Text.
    String,
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// true/false.
    Bool,
    /// `"30s"`, `"5m"`, `"1h30m"` (arrives as the string).
    Duration,
    /// A comma-separated value on the command line; an array in the script.
    List,
}

impl ParamType {
    fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::Duration => "duration",
            ParamType::List => "list",
        }
    }
}

/// One declared param.
#[derive(Debug, Clone, Serialize)]
pub struct ParamSpec {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// What it is for.
    pub description: Option<String>,
    /// The default; none means required.
    pub default_value: Option<Value>,
    /// A secret param is redacted in the journal and output.
    pub secret: bool,
}

/// The runbook's `RUNBOOK` constant, validated.
#[derive(Debug, Clone, Serialize)]
pub struct RunbookMeta {
    /// `name` (default: the file stem).
    pub name: String,
    /// `version`, semver (default `0.0.0`).
    pub version: String,
    /// `description`.
    pub description: Option<String>,
    /// Declared params, in declaration order.
    pub params: Vec<ParamSpec>,
    /// Resource-key patterns the runbook may change (empty: no limit).
    pub scope: Vec<String>,
}

const META_KEYS: &[&str] = &["name", "version", "description", "params", "scope"];
const PARAM_KEYS: &[&str] = &["type", "description", "default_value", "secret"];
const TYPES: &[&str] = &["string", "int", "float", "bool", "duration", "list"];

fn unknown_key(what: &str, key: &str, valid: &[&str]) -> String {
    let hint = if key == "default" {
        "; write `default_value` (`default` is a reserved word in Rhai)".to_string()
    } else {
        match nearest(key, valid.iter().copied()) {
            Some(best) => format!("; did you mean `{best}`?"),
            None => format!("; valid keys: {}", valid.join(", ")),
        }
    };
    format!("{what}: unknown key `{key}`{hint}")
}

impl RunbookMeta {
    /// Metadata of a runbook without a `RUNBOOK` constant.
    pub fn default_for(stem: &str) -> RunbookMeta {
        RunbookMeta {
            name: stem.to_string(),
            version: "0.0.0".into(),
            description: None,
            params: Vec::new(),
            scope: Vec::new(),
        }
    }

    /// Validates the `RUNBOOK` constant's value (as JSON).
    pub fn from_value(value: &Value, stem: &str) -> Result<RunbookMeta, String> {
        let map = value.as_object().ok_or("`RUNBOOK` must be an object map, like #{ name: \"…\" }")?;
        for key in map.keys() {
            if !META_KEYS.contains(&key.as_str()) {
                return Err(unknown_key("RUNBOOK", key, META_KEYS));
            }
        }
        let text = |key: &str| -> Result<Option<String>, String> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("RUNBOOK.{key} must be a string, found {other}")),
            }
        };
        let mut meta = RunbookMeta::default_for(stem);
        if let Some(name) = text("name")? {
            if name.trim().is_empty() {
                return Err("RUNBOOK.name must not be empty".into());
            }
            meta.name = name;
        }
        if let Some(version) = text("version")? {
            if !is_semver(&version) {
                return Err(format!("RUNBOOK.version `{version}` is not a semantic version like \"1.2.0\""));
            }
            meta.version = version;
        }
        meta.description = text("description")?;
        match map.get("scope") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item.as_str() {
                        Some(p) if !p.is_empty() => meta.scope.push(p.to_string()),
                        _ => {
                            return Err(
                                "RUNBOOK.scope must be a list of patterns like \"k8s/prod/shop/*\"".into()
                            );
                        }
                    }
                }
            }
            Some(_) => {
                return Err("RUNBOOK.scope must be a list of patterns like \"k8s/prod/shop/*\"".into());
            }
        }
        match map.get("params") {
            None | Some(Value::Null) => {}
            Some(Value::Object(params)) => {
                for (name, decl) in params {
                    meta.params.push(param_spec(name, decl)?);
                }
            }
            Some(_) => {
                return Err("RUNBOOK.params must be an object map of param declarations".into());
            }
        }
        Ok(meta)
    }

    /// Parses `-p KEY=VALUE` pairs against the declarations: unknown, missing and ill-typed
    /// params are refused, naming the param. Returns every param's value (defaults filled in).
    pub fn resolve_params(&self, given: &[(String, String)]) -> Result<BTreeMap<String, Value>, String> {
        let mut values = BTreeMap::new();
        for (key, raw) in given {
            let Some(spec) = self.params.iter().find(|p| &p.name == key) else {
                let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                let hint = match nearest(key, names.iter().copied()) {
                    Some(best) => format!("; did you mean `{best}`?"),
                    None if names.is_empty() => {
                        format!("; runbook `{}` declares no params", self.name)
                    }
                    None => format!("; declared params: {}", names.join(", ")),
                };
                return Err(format!("unknown param `{key}`{hint}"));
            };
            let value = parse_value(spec.ty, raw).map_err(|why| format!("param `{key}`: {why}"))?;
            if values.insert(key.clone(), value).is_some() {
                return Err(format!("param `{key}` is given twice"));
            }
        }
        let mut missing = Vec::new();
        for spec in &self.params {
            if values.contains_key(&spec.name) {
                continue;
            }
            match &spec.default_value {
                Some(default) => {
                    values.insert(spec.name.clone(), default.clone());
                }
                None => missing.push(spec.name.as_str()),
            }
        }
        if !missing.is_empty() {
            let list = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
            let flags = missing.iter().map(|m| format!("-p {m}=…")).collect::<Vec<_>>().join(" ");
            return Err(format!("missing required param {list}: add {flags}"));
        }
        Ok(values)
    }

    /// The params with secret values replaced by `"***"`, for the journal and output.
    pub fn redacted(&self, values: &BTreeMap<String, Value>) -> Value {
        let mut out = serde_json::Map::new();
        for (k, v) in values {
            let secret = self.params.iter().any(|p| &p.name == k && p.secret);
            out.insert(k.clone(), if secret { Value::String("***".into()) } else { v.clone() });
        }
        Value::Object(out)
    }
}

fn param_spec(name: &str, decl: &Value) -> Result<ParamSpec, String> {
    let what = format!("param `{name}`");
    let map = decl
        .as_object()
        .ok_or_else(|| format!("{what} must be declared as a map, like #{{ type: \"string\" }}"))?;
    for key in map.keys() {
        if !PARAM_KEYS.contains(&key.as_str()) {
            return Err(unknown_key(&what, key, PARAM_KEYS));
        }
    }
    let ty_name = map
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what} needs a `type`: one of {}", TYPES.join(", ")))?;
    let ty: ParamType = serde_json::from_value(Value::String(ty_name.into())).map_err(|_| {
        let hint = nearest(ty_name, TYPES.iter().copied())
            .map(|b| format!(" (did you mean `{b}`?)"))
            .unwrap_or_default();
        format!("{what} has unknown type `{ty_name}`{hint}; use one of {}", TYPES.join(", "))
    })?;
    let description = map.get("description").and_then(Value::as_str).map(str::to_string);
    let secret = match map.get("secret") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(format!("{what}: `secret` must be true or false")),
    };
    let default_value = match map.get("default_value") {
        None | Some(Value::Null) => None,
        Some(v) => Some(check_default(ty, v).map_err(|why| format!("{what}: default_value {why}"))?),
    };
    Ok(ParamSpec { name: name.to_string(), ty, description, default_value, secret })
}

fn check_default(ty: ParamType, v: &Value) -> Result<Value, String> {
    let ok = match ty {
        ParamType::String => v.is_string(),
        ParamType::Int => v.is_i64(),
        ParamType::Float => v.is_number(),
        ParamType::Bool => v.is_boolean(),
        ParamType::Duration => v.as_str().is_some_and(|s| parse_duration(s).is_ok()),
        ParamType::List => v.is_array(),
    };
    if ok { Ok(v.clone()) } else { Err(format!("{v} is not a {}", ty.name())) }
}

/// Parses a command-line value as `ty`.
pub fn parse_value(ty: ParamType, raw: &str) -> Result<Value, String> {
    Ok(match ty {
        ParamType::String => Value::String(raw.to_string()),
        ParamType::Int => {
            Value::from(raw.trim().parse::<i64>().map_err(|_| format!("`{raw}` is not an int"))?)
        }
        ParamType::Float => {
            let f = raw.trim().parse::<f64>().map_err(|_| format!("`{raw}` is not a float"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or(format!("`{raw}` is not a finite float"))?
        }
        ParamType::Bool => Value::Bool(match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" => false,
            _ => return Err(format!("`{raw}` is not a bool (true or false)")),
        }),
        ParamType::Duration => {
            parse_duration(raw)?;
            Value::String(raw.trim().to_string())
        }
        ParamType::List => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
    })
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta() -> RunbookMeta {
        RunbookMeta::from_value(
            &json!({
                "name": "swap-back", "version": "1.2.0",
                "params": {
                    "site": {"type": "string"},
                    "attempts": {"type": "int", "default_value": 5},
                    "wait": {"type": "duration", "default_value": "30s"},
                    "sites": {"type": "list", "default_value": []},
                    "token": {"type": "string", "secret": true, "default_value": ""}
                }
            }),
            "x",
        )
        .unwrap()
    }

    #[test]
    fn fills_defaults_and_parses_types() {
        let values =
            meta().resolve_params(&[("site".into(), "web".into()), ("sites".into(), "a, b".into())]).unwrap();
        assert_eq!(values["attempts"], json!(5));
        assert_eq!(values["sites"], json!(["a", "b"]));
        assert_eq!(values["wait"], json!("30s"));
    }

    #[test]
    fn refuses_missing_unknown_and_ill_typed_params() {
        let m = meta();
        assert!(m.resolve_params(&[]).unwrap_err().contains("missing required param `site`"));
        let err = m.resolve_params(&[("sitee".into(), "x".into())]).unwrap_err();
        assert!(err.contains("unknown param `sitee`; did you mean `site`?"), "{err}");
        let err =
            m.resolve_params(&[("site".into(), "w".into()), ("attempts".into(), "many".into())]).unwrap_err();
        assert_eq!(err, "param `attempts`: `many` is not an int");
        let err = m.resolve_params(&[("site".into(), "w".into()), ("wait".into(), "5x".into())]).unwrap_err();
        assert!(err.contains("param `wait`") && err.contains("unknown unit"), "{err}");
    }

    #[test]
    fn metadata_mistakes_are_named() {
        let err = RunbookMeta::from_value(&json!({"name": "x", "verison": "1.0.0"}), "x").unwrap_err();
        assert!(err.contains("`verison`; did you mean `version`?"), "{err}");
        let err = RunbookMeta::from_value(&json!({"params": {"a": {"type": "strng"}}}), "x").unwrap_err();
        assert!(err.contains("did you mean `string`"), "{err}");
        let err = RunbookMeta::from_value(&json!({"params": {"a": {"type": "int", "default": 1}}}), "x")
            .unwrap_err();
        assert!(err.contains("default_value"), "{err}");
        let err = RunbookMeta::from_value(&json!({"version": "1.2"}), "x").unwrap_err();
        assert!(err.contains("semantic version"), "{err}");
    }

    #[test]
    fn secrets_are_redacted() {
        let m = meta();
        let values =
            m.resolve_params(&[("site".into(), "w".into()), ("token".into(), "hunter2".into())]).unwrap();
        assert_eq!(m.redacted(&values)["token"], json!("***"));
    }
}
