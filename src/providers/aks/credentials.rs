//! `aks::credentials`: POSTs `listClusterUserCredential` (or `listClusterAdminCredential`)
//! through ARM and registers the returned kubeconfig's context for this run, in memory only.
//!
//! The call goes through the run's shared ARM client: endpoint, credentials (the documented order),
//! retries and error kinds are the same as every Azure primitive's.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::azure::{ArmRequest, Idempotency, encode};
use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::cloud;
use crate::providers::k8s::KubeClients;
use crate::providers::{Access, CallCx, Meta, Primitive};
use reqwest::Method;

/// The ARM API version of `Microsoft.ContainerService` used.
const API_VERSION: &str = "2025-10-01";

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
        let target = format!("aks/{}/{}", args.group, args.cluster);
        cloud::require("group", &args.group)?;
        cloud::require("cluster", &args.cluster)?;
        let client = cloud::client(cx)?;
        let subscription = client.subscription(args.subscription.as_deref()).map_err(cloud::fail(&target))?;
        let action = if args.admin { "listClusterAdminCredential" } else { "listClusterUserCredential" };
        let path = format!(
            "{}/providers/Microsoft.ContainerService/managedClusters/{}/{action}",
            cloud::group_path(&subscription, &args.group),
            encode(&args.cluster)
        );
        let place = format!(
            "cluster `{}` in resource group `{}` of subscription `{subscription}`",
            args.cluster, args.group
        );
        let request = ArmRequest {
            method: Method::POST,
            url: client.url(&path, API_VERSION),
            body: None,
            what: format!("the {} credentials of {place}", if args.admin { "admin" } else { "user" }),
            // Listing credentials changes nothing: it may be re-sent.
            idempotency: Idempotency::Safe,
        };
        let response = client.send(cx, &request).await.map_err(cloud::fail(&target))?;
        let results: CredentialResults = serde_json::from_value(response.body).map_err(|e| {
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
