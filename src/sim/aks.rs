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
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::arm_api::core::Core;
use super::arm_api::error::{ArmError, method_not_allowed, unknown_path};
use super::arm_api::ids::{LOCATION, Place};
use super::arm_api::paging::page;
use super::arm_api::reply::Reply;
use super::arm_api::request::Req;
use super::arm_api::service::{Service, Spec};
use super::arm_api::versions::Versions;
use super::scenario::Scenario;

/// The router's table row for Microsoft.ContainerService.
pub(crate) const SPEC: Spec = Spec {
    versions: Versions {
        namespace: "microsoft.containerservice",
        resource_type: "managedClusters",
        first: "2017-08-31",
        quoted: &[
            "2026-08-01",
            "2025-10-01",
            "2025-10-02-preview",
            "2025-07-01",
            "2025-05-01",
            "2025-01-01",
            "2024-09-01",
            "2024-05-01",
            "2024-02-01",
            "2023-10-01",
            "2023-08-01",
            "2023-05-01",
            "2023-01-01",
            "2022-09-01",
            "2022-04-01",
        ],
    },
    build: |s| Box::new(Clusters::from_scenario(s)),
};

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

impl Service for Clusters {
    fn handle(&mut self, core: &mut Core, req: &Req, at: &Place, rest: usize) -> Result<Reply, ArmError> {
        handle(self, core, req, at, rest)
    }

    fn groups(&self) -> Vec<(String, String)> {
        self.list.iter().map(|c| (c.sub.clone(), c.group.clone())).collect()
    }

    fn handle_subscription(
        &mut self,
        core: &mut Core,
        req: &Req,
        sub: &str,
        rest: usize,
    ) -> Result<Reply, ArmError> {
        match (&req.lower[rest..], &req.method) {
            ([m], &Method::GET) if m == "managedclusters" => {
                let items = self
                    .list
                    .iter()
                    .filter(|c| c.sub.eq_ignore_ascii_case(sub))
                    .map(|c| c.resource(core))
                    .collect();
                Ok(Reply::ok(page(req, items)?))
            }
            ([m], _) if m == "managedclusters" => Err(method_not_allowed(req)),
            _ => Err(unknown_path(req)),
        }
    }

    fn resources(&self, sub: &str, group: &str) -> Vec<Value> {
        self.list
            .iter()
            .filter(|c| c.sub.eq_ignore_ascii_case(sub) && c.group.eq_ignore_ascii_case(group))
            .map(|c| {
                let r = c.resource(&Core::detached());
                json!({ "id": r["id"], "name": r["name"], "type": r["type"], "location": r["location"] })
            })
            .collect()
    }
}

impl Cluster {
    fn server(&self, core: &Core) -> Option<String> {
        core.kube.as_ref().and_then(|kube| kube(&self.context))
    }

    /// The `ManagedCluster` resource.
    fn resource(&self, core: &Core) -> Value {
        json!({
            "id": format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
                self.sub, self.group, self.name
            ),
            "location": LOCATION,
            "name": self.name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "tags": {},
            "sku": { "name": "Base", "tier": "Standard" },
            "properties": {
                "provisioningState": "Succeeded",
                "powerState": { "code": "Running" },
                "kubernetesVersion": "1.33",
                "currentKubernetesVersion": "1.33.2",
                "dnsPrefix": self.name,
                "fqdn": self.server(core).unwrap_or_default(),
                "enableRBAC": true,
                "nodeResourceGroup": format!("MC_{}_{}_{}", self.group, self.name, LOCATION),
            }
        })
    }
}

/// Requests under `…/providers/Microsoft.ContainerService/`.
fn handle(w: &Clusters, core: &Core, req: &Req, at: &Place, rest: usize) -> Result<Reply, ArmError> {
    let l: Vec<&str> = req.lower[rest..].iter().map(String::as_str).collect();
    let s = &req.segs[rest..];
    if l[0] != "managedclusters" {
        return Err(unknown_path(req));
    }
    if l.len() == 1 {
        if req.method != Method::GET {
            return Err(method_not_allowed(req));
        }
        let items = w
            .list
            .iter()
            .filter(|c| c.sub.eq_ignore_ascii_case(&at.sub) && c.group.eq_ignore_ascii_case(&at.group))
            .map(|c| c.resource(core))
            .collect();
        return Ok(Reply::ok(page(req, items)?));
    }
    let name = &s[1];
    let Some(c) = w.list.iter().find(|c| {
        c.sub.eq_ignore_ascii_case(&at.sub)
            && c.group.eq_ignore_ascii_case(&at.group)
            && c.name.eq_ignore_ascii_case(name)
    }) else {
        return Err(ArmError::resource_not_found(
            &format!("Microsoft.ContainerService/managedClusters/{name}"),
            &at.group,
        ));
    };
    let server = c.server(core);
    match (&l[2..], &req.method) {
        ([], &Method::GET) => Ok(Reply::ok(c.resource(core))),
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
