//! Simulated Azure Resource Manager (placeholder until the ARM simulator lands).
use crate::sim::Scenario;
use std::sync::Arc;
/// Maps a simulated Kubernetes context name to its API server URL (for AKS kubeconfigs).
pub type KubeServerFor = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
/// The simulated ARM world.
pub struct AzureWorld;
impl AzureWorld {
    pub fn from_scenario(_s: &Scenario) -> Self {
        AzureWorld
    }
    /// Routes for every ARM path (`/subscriptions/...`), case-insensitive, api-version checked.
    pub fn router(self: Arc<Self>, _kube: KubeServerFor) -> axum::Router {
        axum::Router::new()
    }
    /// Health of `appservice/<g>/<site>`, `arm/<g>`, `logicapp/<g>/<wf>`; None if unknown key.
    pub fn healthy(&self, _key: &str) -> Option<bool> {
        None
    }
    /// Observable state of a resource key for test expectations (JSON object), None if unknown.
    pub fn state(&self, _key: &str) -> Option<serde_json::Value> {
        None
    }
}
