//! `k8s::get`: a Deployment's revision, images, replica counts and whether it is paused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Addressed, COMMON_KEYS, addressed, paused, read, revision_of, rollout};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Primitive, Shared};

/// `k8s::get`.
pub struct Get;

/// Keys of `k8s::get`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
}
addressed!(GetArgs);

/// Result of `k8s::get`.
#[derive(Debug, Clone, Serialize)]
pub struct GetOutput {
    /// `deployment.kubernetes.io/revision` (0 before the controller set it).
    pub revision: i64,
    /// Container name → image.
    pub images: BTreeMap<String, String>,
    /// Desired replicas (`spec.replicas`).
    pub replicas: i32,
    /// Ready replicas.
    pub ready: i32,
    /// Replicas running the current template.
    pub updated: i32,
    /// Available replicas.
    pub available: i32,
    /// Whether the rollout is paused.
    pub paused: bool,
    /// `metadata.generation`.
    pub generation: i64,
    /// Under dry-run, true when this shows the state planned mutations would leave.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub planned: bool,
}

impl Primitive for Get {
    type Args = GetArgs;
    type Output = GetOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "get",
            doc: "Reads a Deployment: its revision, images, replica counts and whether it is paused.",
            keys_doc: COMMON_KEYS,
            returns: "`#{ revision, images, replicas, ready, updated, available, paused, generation }` — `images` maps container name to image",
            access: Access::Read,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &GetArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: GetArgs) -> Result<GetOutput, PrimitiveError> {
        let place = args.place(cx).await?;
        let d = read(&place).await?;
        let status = d.status.clone().unwrap_or_default();
        Ok(GetOutput {
            revision: revision_of(&d),
            images: rollout::images(d.spec.as_ref().map(|s| &s.template)),
            replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            paused: paused(&d),
            generation: d.metadata.generation.unwrap_or(0),
            planned: place.planned.is_some(),
        })
    }
}
