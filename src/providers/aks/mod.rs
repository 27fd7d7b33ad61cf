//! Azure Kubernetes Service: cluster credentials fetched through ARM, held in memory as a
//! context the `k8s::*` primitives can use.

mod credentials;

pub use credentials::{Credentials, CredentialsArgs};

use std::sync::Arc;

use super::{DynPrimitive, erase};

/// The aks primitives, alphabetical.
pub fn register() -> Vec<Arc<dyn DynPrimitive>> {
    vec![
        erase(Credentials), // user or admin kubeconfig through ARM, as an in-memory context
    ]
}
