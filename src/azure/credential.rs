//! Where the ARM bearer token comes from (first found): `ROLLBOOK_AZURE_TOKEN`, a
//! service principal, workload identity, managed identity, the Azure CLI's login. The choice is
//! a pure function of the settings; getting a token uses the official `azure_identity` crate.
//! Tokens are cached, refreshed before they expire and once after a 401, and never shown:
//! [`Token`] prints as `***`.

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use tokio::sync::Mutex;

use super::error::AzureError;
use crate::model::Settings;

/// A bearer token. Its `Debug` and `Display` print `***`, so it cannot leak into a log line,
/// a journal event or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a token.
    pub fn new(secret: impl Into<Arc<str>>) -> Token {
        Token(secret.into())
    }

    /// The token itself, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Which credential the settings select. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialChoice {
    /// `ROLLBOOK_AZURE_TOKEN`: a bearer token used as is (it cannot be refreshed).
    StaticToken,
    /// `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`.
    ServicePrincipal {
        /// Tenant.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
    },
    /// `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` (AKS workload identity).
    WorkloadIdentity {
        /// Tenant.
        tenant_id: String,
        /// Client id of the federated identity.
        client_id: String,
        /// The projected service-account token.
        token_file: PathBuf,
    },
    /// Managed identity: App Service (`IDENTITY_ENDPOINT`), Cloud Shell/ML (`MSI_ENDPOINT`), Arc
    /// (`IMDS_ENDPOINT`), or IMDS when `ROLLBOOK_AZURE_MANAGED_IDENTITY` is set (`true` for the
    /// system-assigned identity, else a user-assigned identity's client id).
    ManagedIdentity {
        /// A user-assigned identity's client id (`AZURE_CLIENT_ID` or the setting's value).
        client_id: Option<String>,
    },
    /// The Azure CLI's login (`az account get-access-token`).
    AzureCli {
        /// `AZURE_TENANT_ID`, when set.
        tenant_id: Option<String>,
    },
}

impl CredentialChoice {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            CredentialChoice::StaticToken => "ROLLBOOK_AZURE_TOKEN",
            CredentialChoice::ServicePrincipal { .. } => "service principal",
            CredentialChoice::WorkloadIdentity { .. } => "workload identity",
            CredentialChoice::ManagedIdentity { .. } => "managed identity",
            CredentialChoice::AzureCli { .. } => "azure cli",
        }
    }
}

/// Picks the credential the settings describe, first found in the documented order (docs/cli.md, environment).
/// Pure: reads only `settings`, touches no network and no file.
pub fn select_credential(settings: &Settings) -> CredentialChoice {
    let var = |k: &str| settings.var(k).map(str::to_string);
    if var("ROLLBOOK_AZURE_TOKEN").is_some() {
        return CredentialChoice::StaticToken;
    }
    let tenant = var("AZURE_TENANT_ID");
    let client = var("AZURE_CLIENT_ID");
    if let (Some(t), Some(c), Some(_)) = (&tenant, &client, var("AZURE_CLIENT_SECRET")) {
        return CredentialChoice::ServicePrincipal { tenant_id: t.clone(), client_id: c.clone() };
    }
    if let (Some(t), Some(c), Some(file)) = (&tenant, &client, var("AZURE_FEDERATED_TOKEN_FILE")) {
        return CredentialChoice::WorkloadIdentity {
            tenant_id: t.clone(),
            client_id: c.clone(),
            token_file: PathBuf::from(file),
        };
    }
    let managed_setting = var("ROLLBOOK_AZURE_MANAGED_IDENTITY");
    let on_managed_host =
        ["IDENTITY_ENDPOINT", "MSI_ENDPOINT", "IMDS_ENDPOINT"].iter().any(|k| settings.var(k).is_some());
    let opted_in = managed_setting
        .as_deref()
        .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no"));
    if on_managed_host || opted_in {
        let from_setting = managed_setting.filter(|v| {
            !matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "false" | "0" | "no")
        });
        return CredentialChoice::ManagedIdentity { client_id: from_setting.or(client) };
    }
    CredentialChoice::AzureCli { tenant_id: tenant }
}

enum Source {
    Static(Token),
    Identity(Arc<dyn TokenCredential>),
}

struct Cached {
    token: Token,
    /// Unix seconds.
    expires_on: i64,
}

/// Refresh a cached token this long before it expires.
const REFRESH_MARGIN_SECS: i64 = 300;

/// The run's credential: the chosen source and its cached token.
pub struct Credentials {
    choice: CredentialChoice,
    source: Source,
    scope: String,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("choice", &self.choice)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn credential_error(choice: &CredentialChoice, e: impl std::fmt::Display) -> AzureError {
    AzureError::Credential { source_name: choice.name().to_string(), message: e.to_string() }
}

impl Credentials {
    /// Builds the credential the settings select, for tokens of `scope`. Touches no network:
    /// the first token is fetched on first use.
    pub fn from_settings(settings: &Settings, scope: &str) -> Result<Credentials, AzureError> {
        let choice = select_credential(settings);
        let client_options = || {
            let mut o = azure_core::http::ClientOptions::default();
            if let Some(host) = settings.var("AZURE_AUTHORITY_HOST") {
                let mut custom = azure_core::cloud::CustomConfiguration::default();
                custom.authority_host = host.to_string();
                o.cloud = Some(Arc::new(custom.into()));
            }
            o
        };
        let source = match &choice {
            CredentialChoice::StaticToken => {
                Source::Static(Token::new(settings.var("ROLLBOOK_AZURE_TOKEN").unwrap_or_default()))
            }
            CredentialChoice::ServicePrincipal { tenant_id, client_id } => {
                let secret = Secret::new(settings.var("AZURE_CLIENT_SECRET").unwrap_or_default().to_string());
                let options =
                    azure_identity::ClientSecretCredentialOptions { client_options: client_options() };
                let c = azure_identity::ClientSecretCredential::new(
                    tenant_id,
                    client_id.clone(),
                    secret,
                    Some(options),
                )
                .map_err(|e| credential_error(&choice, e))?;
                Source::Identity(c)
            }
            CredentialChoice::WorkloadIdentity { tenant_id, client_id, token_file } => {
                let mut options = azure_identity::WorkloadIdentityCredentialOptions::default();
                options.credential_options.client_options = client_options();
                options.tenant_id = Some(tenant_id.clone());
                options.client_id = Some(client_id.clone());
                options.token_file_path = Some(token_file.clone());
                let c = azure_identity::WorkloadIdentityCredential::new(Some(options))
                    .map_err(|e| credential_error(&choice, e))?;
                Source::Identity(c)
            }
            CredentialChoice::ManagedIdentity { client_id } => {
                let options = azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(azure_identity::UserAssignedId::ClientId),
                    client_options: client_options(),
                };
                let c = azure_identity::ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| credential_error(&choice, e))?;
                Source::Identity(c)
            }
            CredentialChoice::AzureCli { tenant_id } => {
                let options = azure_identity::AzureCliCredentialOptions {
                    tenant_id: tenant_id.clone(),
                    ..Default::default()
                };
                let c = azure_identity::AzureCliCredential::new(Some(options))
                    .map_err(|e| credential_error(&choice, e))?;
                Source::Identity(c)
            }
        };
        Ok(Credentials { choice, source, scope: scope.to_string(), cache: Mutex::new(None) })
    }

    /// Which credential is in use.
    pub fn choice(&self) -> &CredentialChoice {
        &self.choice
    }

    /// A valid token: the cached one unless it expires within five minutes or `refresh` is set
    /// (after a 401). A static token is always the same one.
    pub async fn token(&self, refresh: bool) -> Result<Token, AzureError> {
        let credential = match &self.source {
            Source::Static(t) => return Ok(t.clone()),
            Source::Identity(c) => c.clone(),
        };
        let mut cache = self.cache.lock().await;
        let now = chrono::Utc::now().timestamp();
        if !refresh
            && let Some(c) = cache.as_ref()
            && c.expires_on - REFRESH_MARGIN_SECS > now
        {
            return Ok(c.token.clone());
        }
        let fresh = credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| credential_error(&self.choice, e))?;
        let token = Token::new(fresh.token.secret());
        *cache = Some(Cached { token: token.clone(), expires_on: fresh.expires_on.unix_timestamp() });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (k, v) in pairs {
            s.env.insert(k.to_string(), v.to_string());
        }
        s
    }

    const SP: [(&str, &str); 3] =
        [("AZURE_TENANT_ID", "tenant"), ("AZURE_CLIENT_ID", "client"), ("AZURE_CLIENT_SECRET", "secret")];

    #[test]
    fn static_token_wins_over_everything() {
        let mut all = SP.to_vec();
        all.extend([
            ("ROLLBOOK_AZURE_TOKEN", "tok"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1"),
        ]);
        assert_eq!(select_credential(&settings(&all)), CredentialChoice::StaticToken);
    }

    #[test]
    fn an_empty_token_does_not_count() {
        let s = settings(&[("ROLLBOOK_AZURE_TOKEN", "")]);
        assert_eq!(select_credential(&s), CredentialChoice::AzureCli { tenant_id: None });
    }

    #[test]
    fn service_principal_needs_all_three() {
        assert_eq!(
            select_credential(&settings(&SP)),
            CredentialChoice::ServicePrincipal { tenant_id: "tenant".into(), client_id: "client".into() }
        );
        let mut with_file = SP.to_vec();
        with_file.push(("AZURE_FEDERATED_TOKEN_FILE", "/f"));
        assert!(matches!(
            select_credential(&settings(&with_file)),
            CredentialChoice::ServicePrincipal { .. }
        ));
        // Without the secret, tenant and client alone fall through to the Azure CLI.
        let partial = settings(&SP[..2]);
        assert_eq!(
            select_credential(&partial),
            CredentialChoice::AzureCli { tenant_id: Some("tenant".into()) }
        );
    }

    #[test]
    fn workload_identity_from_the_federated_token_file() {
        let s = settings(&[
            ("AZURE_TENANT_ID", "tenant"),
            ("AZURE_CLIENT_ID", "client"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
        ]);
        assert_eq!(
            select_credential(&s),
            CredentialChoice::WorkloadIdentity {
                tenant_id: "tenant".into(),
                client_id: "client".into(),
                token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
            }
        );
        // A token file without tenant and client is not enough for workload identity.
        let lone = settings(&[("AZURE_FEDERATED_TOKEN_FILE", "/f")]);
        assert_eq!(select_credential(&lone), CredentialChoice::AzureCli { tenant_id: None });
    }

    #[test]
    fn managed_identity_on_a_managed_host_or_when_asked() {
        for host in ["IDENTITY_ENDPOINT", "MSI_ENDPOINT", "IMDS_ENDPOINT"] {
            let s = settings(&[(host, "http://127.0.0.1:1")]);
            assert_eq!(
                select_credential(&s),
                CredentialChoice::ManagedIdentity { client_id: None },
                "{host}"
            );
        }
        let user_assigned =
            settings(&[("IDENTITY_ENDPOINT", "http://127.0.0.1:1"), ("AZURE_CLIENT_ID", "uai")]);
        assert_eq!(
            select_credential(&user_assigned),
            CredentialChoice::ManagedIdentity { client_id: Some("uai".into()) }
        );
        let imds = settings(&[("ROLLBOOK_AZURE_MANAGED_IDENTITY", "true")]);
        assert_eq!(select_credential(&imds), CredentialChoice::ManagedIdentity { client_id: None });
        let by_id = settings(&[("ROLLBOOK_AZURE_MANAGED_IDENTITY", "1234-abcd")]);
        assert_eq!(
            select_credential(&by_id),
            CredentialChoice::ManagedIdentity { client_id: Some("1234-abcd".into()) }
        );
        let off = settings(&[("ROLLBOOK_AZURE_MANAGED_IDENTITY", "false")]);
        assert_eq!(select_credential(&off), CredentialChoice::AzureCli { tenant_id: None });
    }

    /// Every combination of the §5 variables (present or not) picks the first credential found.
    #[test]
    fn every_combination_follows_the_order_of_api_md() {
        const VARS: [(&str, &str); 7] = [
            ("ROLLBOOK_AZURE_TOKEN", "tok"),
            ("AZURE_TENANT_ID", "tenant"),
            ("AZURE_CLIENT_ID", "client"),
            ("AZURE_CLIENT_SECRET", "secret"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
        ];
        for mask in 0u32..(1 << VARS.len()) {
            let present: Vec<(&str, &str)> =
                VARS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, v)| *v).collect();
            let has = |k: &str| present.iter().any(|(name, _)| *name == k);
            let expected = if has("ROLLBOOK_AZURE_TOKEN") {
                "ROLLBOOK_AZURE_TOKEN"
            } else if has("AZURE_TENANT_ID") && has("AZURE_CLIENT_ID") && has("AZURE_CLIENT_SECRET") {
                "service principal"
            } else if has("AZURE_TENANT_ID") && has("AZURE_CLIENT_ID") && has("AZURE_FEDERATED_TOKEN_FILE") {
                "workload identity"
            } else if has("IDENTITY_ENDPOINT") {
                "managed identity"
            } else {
                "azure cli"
            };
            let got = select_credential(&settings(&present));
            assert_eq!(got.name(), expected, "{present:?}");
        }
    }

    #[test]
    fn azure_cli_is_the_last_resort() {
        assert_eq!(select_credential(&Settings::default()), CredentialChoice::AzureCli { tenant_id: None });
    }

    #[test]
    fn tokens_never_print() {
        let t = Token::new("eyJ0eXAiOiJKV1QiLCJhbGciOi-secret");
        assert_eq!(format!("{t}"), "***");
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert_eq!(format!("{:?}", Some(t.clone())), "Some(Token(***))");
    }

    #[tokio::test]
    async fn building_every_credential_touches_no_network() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("azure-identity-token");
        std::fs::write(&token_file, "header.payload.signature").unwrap();
        for s in [
            settings(&[("ROLLBOOK_AZURE_TOKEN", "tok")]),
            settings(&SP),
            settings(&[
                ("AZURE_TENANT_ID", "tenant"),
                ("AZURE_CLIENT_ID", "client"),
                ("AZURE_FEDERATED_TOKEN_FILE", &token_file.display().to_string()),
            ]),
            settings(&[("ROLLBOOK_AZURE_MANAGED_IDENTITY", "true")]),
            settings(&[]),
            settings(&[("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us")]),
        ] {
            let c = Credentials::from_settings(&s, "https://management.azure.com/.default");
            assert!(c.is_ok(), "{s:?}: {:?}", c.err());
        }
        // AZURE_AUTHORITY_HOST reaches azure_identity, which refuses an authority without TLS.
        let mut plain = SP.to_vec();
        plain.push(("AZURE_AUTHORITY_HOST", "http://127.0.0.1:9"));
        let e = Credentials::from_settings(&settings(&plain), "s").unwrap_err();
        assert!(e.to_string().contains("HTTPS"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        let c = Credentials::from_settings(&settings(&[("ROLLBOOK_AZURE_TOKEN", "tok")]), "s").unwrap();
        assert_eq!(c.token(false).await.unwrap().expose(), "tok");
        assert!(!format!("{c:?}").contains("tok\""));
    }

    /// A credential that counts its calls and hands out tokens expiring `lifetime` seconds
    /// from now.
    #[derive(Debug)]
    struct Counting {
        calls: std::sync::atomic::AtomicU32,
        lifetime: i64,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let expires = azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::seconds(self.lifetime);
            Ok(azure_core::credentials::AccessToken::new(format!("token-{n}"), expires))
        }
    }

    fn counting(lifetime: i64) -> (Arc<Counting>, Credentials) {
        let c = Arc::new(Counting { calls: Default::default(), lifetime });
        let creds = Credentials {
            choice: CredentialChoice::AzureCli { tenant_id: None },
            source: Source::Identity(c.clone()),
            scope: "s".into(),
            cache: Mutex::new(None),
        };
        (c, creds)
    }

    #[tokio::test]
    async fn tokens_are_cached_until_shortly_before_they_expire() {
        let (c, creds) = counting(3600);
        assert_eq!(creds.token(false).await.unwrap().expose(), "token-1");
        assert_eq!(creds.token(false).await.unwrap().expose(), "token-1", "cached");
        assert_eq!(c.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // After a 401 the caller forces a refresh.
        assert_eq!(creds.token(true).await.unwrap().expose(), "token-2");
        assert_eq!(creds.token(false).await.unwrap().expose(), "token-2");

        // A token within five minutes of expiry is refreshed before use.
        let (c, creds) = counting(120);
        creds.token(false).await.unwrap();
        assert_eq!(creds.token(false).await.unwrap().expose(), "token-2");
        assert_eq!(c.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
