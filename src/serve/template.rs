//! Param templates: text with `{{labels.NAME}}`-style placeholders filled from an alert.

/// The namespaces a placeholder may name.
const NAMESPACES: &[&str] = &["labels", "annotations", "alert", "essentials", "target"];

/// Checks a template's syntax (closed placeholders naming a known namespace).
pub fn check(template: &str) -> Result<(), String> {
    render(template, &|_| Some(String::from("x"))).map(|_| ())
}

/// Fills every `{{ns.name}}` with `lookup("ns.name")`; a placeholder with no value is an error
/// naming it, and so is a result that is empty.
pub fn render(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| format!("`{template}` has a `{{{{` with no `}}}}`"))?;
        let name = after[..close].trim();
        let (ns, field) = name.split_once('.').unwrap_or((name, ""));
        if !NAMESPACES.contains(&ns) || field.is_empty() {
            return Err(format!(
                "`{{{{{name}}}}}` names no alert field; use labels.NAME, annotations.NAME, alert.fingerprint, alert.starts_at, essentials.NAME or target.NAME"
            ));
        }
        let value = lookup(name).ok_or_else(|| {
            let what = match ns {
                "labels" => "label",
                "annotations" => "annotation",
                "essentials" => "essentials field",
                "target" => "target field",
                _ => "alert field",
            };
            format!("the alert has no {what} `{field}` (for `{{{{{name}}}}}`)")
        })?;
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    if out.trim().is_empty() {
        return Err(format!("`{template}` renders empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_names_what_is_missing() {
        let look = |k: &str| (k == "labels.site").then(|| "shop-web".to_string());
        assert_eq!(render("{{labels.site}}-x", &look).unwrap(), "shop-web-x");
        let err = render("{{ labels.group }}", &look).unwrap_err();
        assert!(err.contains("label `group`"), "{err}");
        assert!(check("{{nope.x}}").is_err());
        assert!(check("{{labels.x").is_err());
    }
}
