//! Resource names in primitive args: every name-like key (slot, site, deployment, namespace,
//! group, workflow, cluster…) is checked here, once, for every primitive, before anything is sent.
//! `..`, `.`, an empty name or one containing `/` would change which URL a request goes to
//! (slot `..` would name the site itself, that is production).

/// Args keys that name one resource (and so end up as one segment of a request path).
pub(crate) const NAME_KEYS: &[&str] = &[
    "before",
    "cluster",
    "container",
    "deployment",
    "from",
    "group",
    "name",
    "namespace",
    "on_error",
    "site",
    "slot",
    "subscription",
    "target",
    "version",
    "workflow",
];

/// Why a name-like value is refused, if it is.
pub(crate) fn refused(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("it is empty")
    } else if value == "." || value == ".." {
        Some("`.` and `..` are not resource names")
    } else if value.contains('/') || value.contains('\\') {
        Some("a resource name cannot contain `/` or `\\`")
    } else if value.chars().any(char::is_control) {
        Some("a resource name cannot contain control characters")
    } else {
        None
    }
}

/// Checks the name-like keys of a primitive's args (a JSON object).
pub(crate) fn check_names(primitive: &str, args: &serde_json::Value) -> Result<(), String> {
    let Some(map) = args.as_object() else { return Ok(()) };
    for key in NAME_KEYS {
        if let Some(serde_json::Value::String(value)) = map.get(*key)
            && let Some(why) = refused(value)
        {
            return Err(format!("{primitive}: `{key}` {value:?} is not a valid name: {why}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_empty_and_slashes_are_refused() {
        for bad in ["", ".", "..", "a/b", "../prod", "a\\b", "x\ny"] {
            let args = serde_json::json!({ "slot": bad });
            assert!(check_names("appservice::swap", &args).is_err(), "{bad:?}");
        }
        let ok = serde_json::json!({ "slot": "staging", "site": "shop-web", "group": "rg.shop_1", "context": "a/b" });
        assert!(check_names("appservice::swap", &ok).is_ok());
    }
}
