//! Simulated AKS (Microsoft.ContainerService): managed cluster GET and the user/admin
//! credential actions, whose kubeconfig reaches the simulated Kubernetes context.
//!
//! Conventions:
//! - `POST …/listClusterUserCredential` / `listClusterAdminCredential` answer 200 (synchronous)
//!   `{"kubeconfigs": [{"name": "clusterUser"|"clusterAdmin", "value": <base64 kubeconfig>}]}`.
//! - The kubeconfig has one cluster, context and user, named as `az aks get-credentials` names
//!   them (context `<cluster>`, `<cluster>-admin` for admin; user `clusterUser_<g>_<cluster>`);
//!   the server is `kube(context)` and the user holds a bearer token (no certificates: loopback
//!   HTTP).

use axum::http::{Method, StatusCode};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::azure::{ArmError, KubeServerFor, Place, Reply, Req, World, method_not_allowed, unknown_path};
use super::scenario::Scenario;

/// All simulated clusters.
pub(crate) struct Clusters {
    list: Vec<Cluster>,
}

struct Cluster {
    sub: String,
    group: String,
    name: String,
    context: String,
}

impl Clusters {
    /// The clusters of a scenario.
    pub(crate) fn from_scenario(s: &Scenario) -> Clusters {
        Clusters {
            list: s
                .aks
                .clusters
                .iter()
                .map(|c| Cluster {
                    sub: c.subscription.clone(),
                    group: c.group.clone(),
                    name: c.name.clone(),
                    context: c.context.clone(),
                })
                .collect(),
        }
    }
}

/// A kubeconfig (YAML) reaching `server` as `user` with a bearer `token`.
pub(crate) fn kubeconfig(cluster: &str, context: &str, user: &str, server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    server: {server}\n  name: {cluster}\n\
         contexts:\n\
         - context:\n    cluster: {cluster}\n    user: {user}\n  name: {context}\n\
         current-context: {context}\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: {user}\n  user:\n    token: {token}\n"
    )
}

/// Requests under `…/providers/Microsoft.ContainerService/`.
pub(crate) fn handle(
    w: &mut World,
    req: &Req,
    at: &Place,
    rest: usize,
    kube: &KubeServerFor,
) -> Result<Reply, ArmError> {
    let l: Vec<&str> = req.lower[rest..].iter().map(String::as_str).collect();
    let s = &req.segs[rest..];
    if l[0] != "managedclusters" || l.len() < 2 {
        return Err(unknown_path(req));
    }
    let name = &s[1];
    let Some(c) = w.clusters.list.iter().find(|c| {
        c.sub.eq_ignore_ascii_case(&at.sub)
            && c.group.eq_ignore_ascii_case(&at.group)
            && c.name.eq_ignore_ascii_case(name)
    }) else {
        return Err(ArmError::resource_not_found(
            &format!("Microsoft.ContainerService/managedClusters/{name}"),
            &at.group,
        ));
    };
    let server = kube(&c.context);
    match (&l[2..], &req.method) {
        ([], &Method::GET) => Ok(Reply::ok(json!({
            "id": format!("{}/providers/Microsoft.ContainerService/managedClusters/{}", at.prefix(), c.name),
            "location": super::azure::LOCATION,
            "name": c.name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "tags": {},
            "sku": { "name": "Base", "tier": "Standard" },
            "properties": {
                "provisioningState": "Succeeded",
                "powerState": { "code": "Running" },
                "kubernetesVersion": "1.33",
                "currentKubernetesVersion": "1.33.2",
                "dnsPrefix": c.name,
                "fqdn": server.clone().unwrap_or_default(),
                "enableRBAC": true,
                "nodeResourceGroup": format!("MC_{}_{}_{}", c.group, c.name, super::azure::LOCATION),
            }
        }))),
        ([action @ ("listclusterusercredential" | "listclusteradmincredential")], &Method::POST) => {
            let Some(server) = server else {
                return Err(ArmError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    format!(
                        "The simulated Kubernetes context '{}' of cluster '{}' is not being served.",
                        c.context, c.name
                    ),
                ));
            };
            let admin = *action == "listclusteradmincredential";
            let role = if admin { "clusterAdmin" } else { "clusterUser" };
            let user = format!("{role}_{}_{}", c.group, c.name);
            let context = if admin { format!("{}-admin", c.name) } else { c.name.clone() };
            let token = hex::encode(Sha256::digest(format!("{}/{}/{role}", c.group, c.name)));
            let config = kubeconfig(&c.name, &context, &user, &server, &token);
            let value = base64::engine::general_purpose::STANDARD.encode(config);
            Ok(Reply::ok(json!({ "kubeconfigs": [ { "name": role, "value": value } ] })))
        }
        ([] | ["listclusterusercredential" | "listclusteradmincredential"], _) => {
            Err(method_not_allowed(req))
        }
        _ => Err(unknown_path(req)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_names_server_and_token() {
        let k = kubeconfig("aks", "aks", "clusterUser_rg_aks", "http://127.0.0.1:1/k8s/prod", "t0k");
        assert!(k.contains("    server: http://127.0.0.1:1/k8s/prod\n"), "{k}");
        assert!(k.contains("current-context: aks\n"));
        assert!(k.contains("    token: t0k\n"));
    }
}
