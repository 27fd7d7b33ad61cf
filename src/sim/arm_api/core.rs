//! What every simulated Azure service sees besides its own state: subscriptions, resource
//! groups, the long-running operations and the way to reach simulated Kubernetes clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::lro::{Ops, Payload};

/// Maps a simulated Kubernetes context name to its API server URL (for AKS kubeconfigs).
pub type KubeServerFor = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The shared state of the simulated ARM.
pub(crate) struct Core {
    /// Known subscriptions (lowercase).
    pub subscriptions: BTreeSet<String>,
    /// (subscription, group) lowercase → the group's name as the scenario spells it.
    pub groups: BTreeMap<(String, String), String>,
    /// Long-running operations.
    pub ops: Ops,
    /// Kubernetes API server URL of a context, once the router serves.
    pub kube: Option<KubeServerFor>,
}

impl Core {
    /// A core with nothing in it (for rendering resources outside a request).
    pub(crate) fn detached() -> Core {
        Core { subscriptions: Default::default(), groups: Default::default(), ops: Ops::new(0), kube: None }
    }

    /// Starts a long-running operation on `resource` for `service`; returns its id.
    pub(crate) fn start_op(&mut self, service: &'static str, resource: String, payload: Payload) -> String {
        self.ops.start(resource, service, payload)
    }
}
