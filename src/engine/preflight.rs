//! Preflight: before a run sends its first request, check that what the runbook needs is there
//! — Azure credentials and a subscription when it calls Azure, the Kubernetes contexts it names
//! (or a current context) when it calls Kubernetes — so that a missing login is a clear message
//! at the start (exit 2), not a failure after the probes. `rollbook doctor` shows the same.

use std::collections::BTreeSet;

use super::Runbook;
use super::check::primitive_calls;
use crate::azure::{CredentialChoice, select_credential};
use crate::providers::Settings;
use crate::providers::k8s::KubeClients;

/// The namespaces of primitives that talk to Azure Resource Manager.
const AZURE: &[&str] = &["aks", "appservice", "arm", "logicapp"];

/// What a runbook needs, found in its text (and its stdlib imports) and its params.
#[derive(Debug, Default, Clone)]
pub struct Needs {
    /// It calls Azure primitives.
    pub azure: bool,
    /// A subscription is named (a literal `subscription` or a `subscription` param).
    pub subscription_given: bool,
    /// It calls Kubernetes primitives.
    pub kubernetes: bool,
    /// It fetches contexts through `aks::credentials`.
    pub aks: bool,
    /// Contexts it names: literal `context` values and a non-empty `context` param.
    pub contexts: BTreeSet<String>,
}

/// One thing checked: what, and whether it is there (`Err` says what is missing and what to do).
#[derive(Debug, Clone)]
pub struct Finding {
    /// What was checked ("azure credentials").
    pub what: String,
    /// What was found, or what is missing.
    pub result: Result<String, String>,
}

/// What `runbook` needs, with `params` as given on the command line.
pub fn needs(runbook: &Runbook, params: &[(String, String)]) -> Needs {
    let mut sources = vec![runbook.source.clone()];
    for path in super::check::import_paths(&runbook.source) {
        if let Some((_, src)) = super::STDLIB.iter().find(|(id, _)| *id == path) {
            sources.push((*src).to_string());
        }
    }
    let values = runbook.meta.resolve_params(params).unwrap_or_default();
    let param =
        |name: &str| values.get(name).and_then(|v| v.as_str()).map(str::trim).filter(|v| !v.is_empty());
    let mut needs = Needs::default();
    for src in &sources {
        for (call, keys) in primitive_calls(src) {
            let ns = call.split("::").next().unwrap_or_default();
            if AZURE.contains(&ns) {
                needs.azure = true;
                if matches!(keys.get("subscription"), Some(Some(_))) {
                    needs.subscription_given = true;
                }
            }
            if call == "aks::credentials" {
                needs.aks = true;
            }
            if ns == "k8s" {
                needs.kubernetes = true;
                if let Some(Some(context)) = keys.get("context") {
                    needs.contexts.insert(context.clone());
                }
            }
        }
    }
    if param("subscription").is_some() {
        needs.subscription_given = true;
    }
    if needs.kubernetes
        && let Some(context) = param("context")
    {
        needs.contexts.insert(context.to_string());
    }
    needs
}

/// Checks `needs` against `settings`; every finding, good or bad.
pub fn check(needs: &Needs, settings: &Settings) -> Vec<Finding> {
    let mut found = Vec::new();
    if needs.azure {
        found.push(azure_credentials(settings));
        found.push(Finding {
            what: "azure subscription".into(),
            result: match settings.var("AZURE_SUBSCRIPTION_ID") {
                Some(s) => Ok(format!("AZURE_SUBSCRIPTION_ID={s}")),
                None if needs.subscription_given => Ok("named by the runbook or its params".into()),
                None => {
                    Err("no azure subscription: set AZURE_SUBSCRIPTION_ID or pass the `subscription` param"
                        .into())
                }
            },
        });
    }
    if needs.kubernetes {
        // Contexts fetched through AKS need no kubeconfig; named ones and the default do.
        let wanted: Vec<Option<&str>> = if needs.contexts.is_empty() {
            if needs.aks { Vec::new() } else { vec![None] }
        } else {
            needs.contexts.iter().map(|c| Some(c.as_str())).collect()
        };
        let clients = KubeClients::default();
        for context in wanted {
            let what = match context {
                Some(c) => format!("kubernetes context `{c}`"),
                None => "kubernetes current context".to_string(),
            };
            let result = clients
                .resolve(settings, context)
                .map(|r| format!("`{}` (namespace `{}`)", r.context, r.namespace))
                .map_err(|e| e.message);
            found.push(Finding { what, result });
        }
    }
    found
}

fn azure_credentials(settings: &Settings) -> Finding {
    let what = "azure credentials".to_string();
    let choice = select_credential(settings);
    let result = match &choice {
        CredentialChoice::WorkloadIdentity { token_file, .. } if !token_file.exists() => Err(format!(
            "workload identity: AZURE_FEDERATED_TOKEN_FILE `{}` does not exist",
            token_file.display()
        )),
        CredentialChoice::AzureCli { .. } if !on_path("az") => Err(
            "no azure credentials: set ROLLBOOK_AZURE_TOKEN, a service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), workload identity (AZURE_FEDERATED_TOKEN_FILE) or managed identity, or log in with the Azure CLI (`az` is not on the PATH)"
                .into(),
        ),
        other => Ok(other.name().to_string()),
    };
    Finding { what, result }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// The first missing thing, as one message naming all of them, if any is missing.
pub fn problems(findings: &[Finding]) -> Option<String> {
    let missing: Vec<String> =
        findings.iter().filter_map(|f| f.result.as_ref().err().map(|e| format!("{}: {e}", f.what))).collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!("preflight: the runbook cannot run here; {}", missing.join("; ")))
    }
}
