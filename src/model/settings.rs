//! Connection settings: the environment variables and flags providers read, as
//! plain data, so tests inject their own and no provider reads `std::env` itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Connection settings, read once per run (tests pass their own). Its `Debug`
/// masks every value whose name suggests a secret, so a settings dump never shows a token.
#[derive(Clone, Default)]
pub struct Settings {
    /// Environment variables the providers read (`ROLLBOOK_ARM_ENDPOINT`, `AZURE_*`, `KUBECONFIG`, …).
    pub env: BTreeMap<String, String>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// Set for rehearsals (`--sandbox`, `rollbook test`): the simulator's origin
    /// (`http://127.0.0.1:PORT`), the only place any connection of the run may go.
    pub sandbox: Option<String>,
    /// The simulator's other origins a rehearsal may reach: each simulated cluster's own port.
    pub sandbox_origins: Vec<String>,
}

/// Prefixes of the environment variables providers may read.
const SETTINGS_ENV_PREFIXES: &[&str] =
    &["ROLLBOOK_", "AZURE_", "KUBECONFIG", "IDENTITY_", "IMDS_", "MSI_", "HOME", "KUBERNETES_SERVICE_"];

impl Settings {
    /// Whether a rehearsal may reach `url`: the simulator's origin or one of its clusters' ports
    /// (always, outside a rehearsal).
    pub fn sandbox_allows(&self, url: &str) -> bool {
        let Some(origin) = self.sandbox.as_deref() else { return true };
        let Ok(url) = reqwest::Url::parse(url) else { return false };
        std::iter::once(origin)
            .chain(self.sandbox_origins.iter().map(String::as_str))
            .any(|o| reqwest::Url::parse(o).is_ok_and(|o| o.origin() == url.origin()))
    }

    /// The settings this process was started with.
    pub fn from_env() -> Settings {
        let env = std::env::vars()
            .filter(|(k, _)| SETTINGS_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
            .collect();
        Settings { env, kubeconfig: None, sandbox: None, sandbox_origins: Vec::new() }
    }

    /// One setting, if set and not empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// Whether a setting's value must never be shown (tokens, secrets, passwords, keys).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "KEY", "HEADER"].iter().any(|w| upper.contains(w))
        && !upper.ends_with("_FILE")
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: BTreeMap<&str, &str> = self
            .env
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_name(k) { "***" } else { v.as_str() };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("Settings")
            .field("env", &env)
            .field("kubeconfig", &self.kubeconfig)
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_secrets() {
        let mut s = Settings::default();
        s.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "eyJ-secret".into());
        s.env.insert("AZURE_CLIENT_SECRET".into(), "hunter2".into());
        s.env.insert("AZURE_FEDERATED_TOKEN_FILE".into(), "/var/token".into());
        s.env.insert("AZURE_TENANT_ID".into(), "tenant".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("eyJ-secret") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("/var/token") && shown.contains("tenant"), "{shown}");
    }
}
