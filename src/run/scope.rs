//! Target scope: which resource keys a run may change. The runbook declares
//! `scope`; the operator narrows it with `--allow`. Checked before any request is sent.

/// Whether `key` matches `pattern`: `*` matches within one path segment, `**` across segments.
/// Azure names are case-insensitive, so non-`k8s/` keys compare without case.
pub fn matches(pattern: &str, key: &str) -> bool {
    let fold = !key.starts_with("k8s/");
    let (p, k) = if fold {
        (pattern.to_ascii_lowercase(), key.to_ascii_lowercase())
    } else {
        (pattern.to_string(), key.to_string())
    };
    glob(p.as_bytes(), k.as_bytes())
}

fn glob(p: &[u8], k: &[u8]) -> bool {
    match p.first() {
        None => k.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => (0..=k.len()).any(|i| glob(&p[2..], &k[i..])),
        Some(b'*') => {
            let mut i = 0;
            loop {
                if glob(&p[1..], &k[i..]) {
                    return true;
                }
                if i == k.len() || k[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some(c) => k.first() == Some(c) && glob(&p[1..], &k[1..]),
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
