//! Target scope: which resource keys a run may change. The runbook declares
//! `scope`; the operator narrows it with `--allow`. Checked before any request is sent.

/// Whether `key` matches `pattern`: `*` matches within one path segment, `**` across segments.
/// Azure names are case-insensitive, so non-`k8s/` keys compare without case.
pub fn matches(pattern: &str, key: &str) -> bool {
    use crate::model::glob::{Stars, glob_match};
    if key.starts_with("k8s/") {
        glob_match(pattern, key, Stars::Segments)
    } else {
        glob_match(&pattern.to_ascii_lowercase(), &key.to_ascii_lowercase(), Stars::Segments)
    }
}

/// The scope of one run: the runbook's declared patterns and the operator's `--allow`.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `RUNBOOK.scope` (empty: no limit).
    pub declared: Vec<String>,
    /// `--allow` (empty: no narrowing).
    pub allowed: Vec<String>,
}

impl Scope {
    /// Checks a mutating call's target; the error names the target and the flag that would allow it.
    pub fn check(&self, target: Option<&str>, call: &str) -> Result<(), String> {
        if self.declared.is_empty() && self.allowed.is_empty() {
            return Ok(());
        }
        let Some(key) = target else {
            return Err(format!("{call} names no resource, so it cannot be checked against the run's scope"));
        };
        if !self.declared.is_empty() && !self.declared.iter().any(|p| matches(p, key)) {
            return Err(format!(
                "`{key}` is outside the runbook's scope ({}); widen `scope` in RUNBOOK to change it",
                self.declared.join(", ")
            ));
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|p| matches(p, key)) {
            return Err(format!(
                "`{key}` is outside what --allow permits ({}); add `--allow {key}` to change it",
                self.allowed.join(", ")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_within_segments_unless_doubled() {
        assert!(matches("k8s/prod/shop/*", "k8s/prod/shop/web"));
        assert!(!matches("k8s/prod/*", "k8s/prod/shop/web"));
        assert!(matches("k8s/prod/**", "k8s/prod/shop/web"));
        assert!(matches("k8s/*/shop/web", "k8s/prod/shop/web"));
        assert!(!matches("k8s/prod/shop/*", "k8s/staging/shop/web"));
        assert!(matches("appservice/RG-Shop/*", "appservice/rg-shop/shop-web"), "azure keys ignore case");
        assert!(!matches("k8s/Prod/*/*", "k8s/prod/shop/web"), "kubernetes keys keep case");
    }

    #[test]
    fn a_pattern_of_many_stars_against_a_long_key_finishes_with_the_right_answer() {
        let key = format!("k8s/prod/shop/{}", "a".repeat(300));
        assert!(!matches("k8s/prod/shop/a*a*a*a*a*a*a*b", &key));
        assert!(matches("k8s/prod/shop/a*a*a*a*a*a*a*a", &key));
        assert!(!matches("k8s/**a**a**a**a**a**a**a**b", &key));
    }

    #[test]
    fn allow_narrows_the_declared_scope() {
        let s = Scope { declared: vec!["k8s/prod/**".into()], allowed: vec!["k8s/prod/shop/*".into()] };
        assert!(s.check(Some("k8s/prod/shop/web"), "k8s::undo").is_ok());
        let err = s.check(Some("k8s/prod/pay/api"), "k8s::undo").unwrap_err();
        assert!(err.contains("--allow k8s/prod/pay/api"), "{err}");
        let err = s.check(Some("k8s/staging/shop/web"), "k8s::undo").unwrap_err();
        assert!(err.contains("outside the runbook's scope (k8s/prod/**)"), "{err}");
        assert!(Scope::default().check(None, "x").is_ok());
    }
}
