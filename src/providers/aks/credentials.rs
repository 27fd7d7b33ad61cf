//! `aks::credentials`: POSTs `listClusterUserCredential` (or `listClusterAdminCredential`)
//! through ARM and registers the returned kubeconfig's context for this run, in memory only.
//!
//! Until the shared ARM client (`src/azure/`) lands, this makes its one ARM call itself with
//! the run's HTTP client: endpoint `ROLLBOOK_ARM_ENDPOINT`, bearer `ROLLBOOK_AZURE_TOKEN`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::k8s::KubeClients;
use crate::providers::{Access, CallCx, Meta, Primitive};

/// The ARM API version of `Microsoft.ContainerService` used.
const API_VERSION: &str = "2025-10-01";

/// The default ARM endpoint.
const ARM_ENDPOINT: &str = "https://management.azure.com";

/// `aks::credentials`.
pub struct Credentials;

/// Keys of `aks::credentials`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsArgs {
    /// Subscription id (default `AZURE_SUBSCRIPTION_ID`).
    #[serde(default)]
    pub subscription: Option<String>,
    /// Resource group.
    pub group: String,
    /// Managed cluster name.
    pub cluster: String,
    /// Fetch the admin credentials instead of the user's.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Deserialize)]
struct CredentialResults {
    #[serde(default)]
    kubeconfigs: Vec<CredentialResult>,
}

#[derive(Deserialize)]
struct CredentialResult {
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct ArmErrorBody {
    error: ArmErrorDetail,
}

#[derive(Deserialize)]
struct ArmErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn kind_of(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        409 => ErrorKind::Conflict,
        429 => ErrorKind::Throttled,
        400 | 422 => ErrorKind::Invalid,
        408 | 504 => ErrorKind::Timeout,
        _ => ErrorKind::Server,
    }
}

impl Primitive for Credentials {
    type Args = CredentialsArgs;
    type Output = String;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "aks",
            name: "credentials",
            doc: "Fetches an AKS cluster's kubeconfig through ARM (user or admin), keeps it in memory only, and returns its context name for `context` in `k8s::*`.",
            keys_doc: "`subscription` (AZURE_SUBSCRIPTION_ID), `group`, `cluster`, `admin` (false)",
            returns: "a context name (string) usable as `context` in `k8s::*` for the rest of the run",
            access: Access::Read,
        }
    }

    fn target(&self, args: &CredentialsArgs) -> Option<String> {
        Some(format!("aks/{}/{}", args.group, args.cluster))
    }

    async fn call(&self, cx: &CallCx, args: CredentialsArgs) -> Result<String, PrimitiveError> {
        let settings = &cx.shared.settings;
        let target = format!("aks/{}/{}", args.group, args.cluster);
        let subscription = args
            .subscription
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| settings.var("AZURE_SUBSCRIPTION_ID").map(String::from))
            .ok_or_else(|| {
                PrimitiveError::invalid(
                    "aks::credentials: no `subscription` given and AZURE_SUBSCRIPTION_ID is not set",
                )
                .with_target(&target)
            })?;
        let token = settings.var("ROLLBOOK_AZURE_TOKEN").ok_or_else(|| {
            PrimitiveError::new(
                ErrorKind::Unauthorized,
                "no Azure credentials: set ROLLBOOK_AZURE_TOKEN to a bearer token for ARM",
            )
            .with_target(&target)
        })?;
        let endpoint = settings.var("ROLLBOOK_ARM_ENDPOINT").unwrap_or(ARM_ENDPOINT).trim_end_matches('/');
        let action = if args.admin { "listClusterAdminCredential" } else { "listClusterUserCredential" };
        let url = cx.rewrite_url(&format!(
            "{endpoint}/subscriptions/{subscription}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}/{action}?api-version={API_VERSION}",
            args.group, args.cluster
        ));
        let place = format!(
            "cluster `{}` in resource group `{}` of subscription `{subscription}`",
            args.cluster, args.group
        );
        let request = cx
            .http
            .post(&url)
            .bearer_auth(token)
            .header("content-length", "0")
            .timeout(std::time::Duration::from_secs(60))
            .send();
        let response = tokio::select! {
            r = request => r,
            _ = cx.cancel.cancelled() => return Err(PrimitiveError::new(ErrorKind::Cancelled, "cancelled while fetching AKS credentials")),
        }
        .map_err(|e| {
            let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Transport };
            PrimitiveError::new(kind, format!("cannot reach ARM for the credentials of {place}: {e}"))
                .with_target(&target)
        })?;
        let status = response.status().as_u16();
        let request_id =
            response.headers().get("x-ms-request-id").and_then(|v| v.to_str().ok()).map(String::from);
        let body = response.text().await.map_err(|e| {
            PrimitiveError::new(
                ErrorKind::Transport,
                format!("reading the credentials of {place} failed: {e}"),
            )
            .with_target(&target)
        })?;
        if !(200..300).contains(&status) {
            let detail = serde_json::from_str::<ArmErrorBody>(&body)
                .map(|b| format!("{}: {}", b.error.code, b.error.message))
                .unwrap_or_else(|_| format!("status {status}"));
            let mut e = PrimitiveError::new(
                kind_of(status),
                format!(
                    "fetching the {} credentials of {place} failed: {detail}",
                    if args.admin { "admin" } else { "user" }
                ),
            )
            .with_target(&target);
            e.request_id = request_id;
            return Err(e);
        }
        let results: CredentialResults = serde_json::from_str(&body).map_err(|e| {
            PrimitiveError::new(
                ErrorKind::Server,
                format!("ARM answered the credentials of {place} with unreadable JSON: {e}"),
            )
            .with_target(&target)
        })?;
        let first = results.kubeconfigs.into_iter().next().ok_or_else(|| {
            PrimitiveError::new(ErrorKind::Server, format!("ARM returned no kubeconfig for {place}"))
                .with_target(&target)
        })?;
        let yaml = base64::engine::general_purpose::STANDARD
            .decode(first.value.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                PrimitiveError::new(
                    ErrorKind::Server,
                    format!("the kubeconfig of {place} is not base64 UTF-8"),
                )
                .with_target(&target)
            })?;
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| {
            PrimitiveError::new(ErrorKind::Server, format!("the kubeconfig of {place} does not parse: {e}"))
                .with_target(&target)
        })?;
        KubeClients::of(&cx.shared)?.add_in_memory(kubeconfig).map_err(|e| e.with_target(&target))
    }
}
