//! Kubernetes Deployments with `kubectl rollout` semantics (kubectl 1.32), on kube-rs: the same
//! requests, patches, annotations and messages as kubectl, without discovery, one client per
//! context reused across a run.

pub mod clients;
pub mod errors;
mod get;
mod history;
mod lean;
pub mod lease;
mod pause;
pub mod planned;
pub mod request;
mod restart;
mod resume;
pub mod rollout;
mod scale;
mod set_image;
mod status;
mod undo;

pub use clients::{DeploymentTarget, KubeClients};
/// The former name of [`DeploymentTarget`].
pub type Place = DeploymentTarget;
pub use get::{Get, GetArgs, GetOutput};
pub use history::{History, HistoryArgs, HistoryEntry};
pub use pause::{Pause, PauseArgs};
pub use restart::{Restart, RestartArgs};
pub use resume::{Resume, ResumeArgs};
pub use scale::{Scale, ScaleArgs, ScaleOutput};
pub use set_image::{SetImage, SetImageArgs, SetImageOutput};
pub use status::{Status, StatusArgs, StatusOutput};
pub use undo::{Undo, UndoArgs, UndoOutput};

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use super::{CallCx, DynPrimitive, erase};
use crate::model::PrimitiveError;

/// The mutating k8s primitives whose every change is a Deployment patch sent by [`patch`],
/// which waits for the call's write-ahead journal event first: the engine lets them start
/// before that event is fsynced (`providers::write_ahead`). A primitive that changes anything
/// another way must not be listed (`tests/k8s.rs` checks every one listed against the
/// simulator).
pub const CHANGES_ONLY_BY_PATCH: [&str; 5] =
    ["k8s::pause", "k8s::restart", "k8s::resume", "k8s::set_image", "k8s::undo"];

/// The k8s primitives, alphabetical.
pub fn register() -> Vec<Arc<dyn DynPrimitive>> {
    vec![
        erase(Get),      // a Deployment's revision, images and replica counts
        erase(History),  // revisions, oldest first, as `kubectl rollout history`
        erase(Pause),    // `kubectl rollout pause`
        erase(Restart),  // `kubectl rollout restart`
        erase(Resume),   // `kubectl rollout resume`
        erase(Scale),    // `kubectl scale --replicas`
        erase(SetImage), // `kubectl set image`: roll forward one container
        erase(Status),   // `kubectl rollout status`, on a watch, with a timeout
        erase(Undo),     // `kubectl rollout undo [--to-revision]`
    ]
}

/// The result of pause, resume and restart.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    /// Whether the call changed the Deployment.
    pub changed: bool,
}

/// The keys every k8s primitive shares: `context`, `namespace`, `deployment`.
pub(crate) trait Addressed {
    /// `context` (default: the current context).
    fn context(&self) -> Option<&str>;
    /// `namespace` (default: the context's namespace, else `default`).
    fn namespace(&self) -> Option<&str>;
    /// `deployment`.
    fn deployment(&self) -> &str;

    /// The resource key with the defaults resolved.
    fn key(&self, shared: &super::Shared) -> String {
        clients::target_key(shared, self.context(), self.namespace(), self.deployment())
    }

    /// Resolves the place and its client.
    async fn place(&self, cx: &CallCx) -> Result<DeploymentTarget, PrimitiveError> {
        DeploymentTarget::of(cx, self.context(), self.namespace(), self.deployment()).await
    }
}

/// Implements [`Addressed`] for an args struct with the three common fields.
macro_rules! addressed {
    ($t:ty) => {
        impl $crate::providers::k8s::Addressed for $t {
            fn context(&self) -> Option<&str> {
                self.context.as_deref()
            }
            fn namespace(&self) -> Option<&str> {
                self.namespace.as_deref()
            }
            fn deployment(&self) -> &str {
                &self.deployment
            }
        }
    };
}
pub(crate) use addressed;

/// The keys doc shared by every k8s primitive.
pub(crate) const COMMON_KEYS: &str =
    "`context` (the current context), `namespace` (the context's namespace, else \"default\"), `deployment`";

/// The Deployments API of a place's namespace.
pub(crate) fn deployments(place: &DeploymentTarget) -> Api<Deployment> {
    Api::namespaced(place.client.client.clone(), &place.namespace)
}

/// Reads the Deployment (under dry-run, as the planned mutations so far would leave it).
pub(crate) async fn read(place: &DeploymentTarget) -> Result<Deployment, PrimitiveError> {
    read_as::<Deployment>(place).await
}

/// Reads what `kubectl rollout status` looks at of the Deployment (see [`lean::RolloutView`]):
/// the rest of the returned object is left empty. Under dry-run, as [`read`].
pub(crate) async fn read_rollout(place: &DeploymentTarget) -> Result<Deployment, PrimitiveError> {
    read_as::<lean::RolloutView>(place).await
}

/// Reads what `k8s::undo` looks at of the Deployment (see [`lean::RevisionView`]): no status,
/// no strategy. Under dry-run, as [`read`].
pub(crate) async fn read_revision(place: &DeploymentTarget) -> Result<Deployment, PrimitiveError> {
    read_as::<lean::RevisionView>(place).await
}

/// GETs the Deployment (the request `Api::get` sends), decoded as `V`; under dry-run, the
/// planned state instead.
async fn read_as<V>(place: &DeploymentTarget) -> Result<Deployment, PrimitiveError>
where
    V: serde::de::DeserializeOwned + Into<Deployment>,
{
    use kube::core::Resource as _;
    if let Some(planned) = &place.planned {
        return Ok(planned.deployment.clone());
    }
    let url = Deployment::url_path(&(), Some(&place.namespace));
    let get = async {
        let request = kube::core::Request::new(url)
            .get(&place.deployment, &kube::api::GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
        place.client.request::<V>(request).await
    };
    Ok(request::send(place, "reading", get).await?.into())
}

/// Lists the ReplicaSets matching the Deployment's selector (kubectl's one LIST, no limit).
pub(crate) async fn replica_sets(
    place: &DeploymentTarget,
    d: &Deployment,
) -> Result<Vec<ReplicaSet>, PrimitiveError> {
    replica_sets_as::<ReplicaSet>(place, d).await
}

/// [`replica_sets`], each read as `k8s::undo` looks at it (see [`lean::RevisionView`]).
pub(crate) async fn replica_set_revisions(
    place: &DeploymentTarget,
    d: &Deployment,
) -> Result<Vec<ReplicaSet>, PrimitiveError> {
    replica_sets_as::<lean::RevisionView>(place, d).await
}

/// [`replica_sets`], each decoded as `V`; under dry-run, the planned ones instead.
async fn replica_sets_as<V>(
    place: &DeploymentTarget,
    d: &Deployment,
) -> Result<Vec<ReplicaSet>, PrimitiveError>
where
    V: serde::de::DeserializeOwned + Into<ReplicaSet>,
{
    if let Some(planned) = &place.planned {
        return Ok(planned.replica_sets.clone());
    }
    let selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    let selector = kube::core::Selector::try_from(selector).map_err(|e| {
        PrimitiveError::invalid(format!("the selector of {} is invalid: {e}", place.describe()))
            .with_target(place.key())
    })?;
    // The request `Api::list` sends, read without kube's `ObjectList` (see [`lean::Items`]).
    use kube::core::Resource as _;
    let url = ReplicaSet::url_path(&(), Some(&place.namespace));
    let request = kube::core::Request::new(url)
        .list(&ListParams::default().labels_from(&selector))
        .map_err(kube::Error::BuildRequest);
    let list = request::send(place, "listing the ReplicaSets of", async move {
        place.client.request::<lean::Items<V>>(request?).await
    })
    .await?;
    Ok(list.items.into_iter().map(Into::into).collect())
}

/// A Deployment's `deployment.kubernetes.io/revision` (0 when absent).
pub(crate) fn revision_of(d: &Deployment) -> i64 {
    d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(rollout::REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether the Deployment is paused.
pub(crate) fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// Sends a strategic merge patch as kubectl does (`fieldManager` named after the command).
pub(crate) async fn patch_strategic(
    place: &DeploymentTarget,
    doing: &str,
    field_manager: &str,
    body: serde_json::Value,
) -> Result<(), PrimitiveError> {
    let params =
        kube::api::PatchParams { field_manager: Some(field_manager.to_string()), ..Default::default() };
    patch(place, doing, &params, &kube::api::Patch::Strategic(body)).await
}

/// Patches the Deployment: the request kube's `Api::patch` sends. The Deployment the server
/// answers with is checked to be JSON and not decoded, as no primitive reads it (a fleet
/// rollback sends thousands).
pub(crate) async fn patch<P: serde::Serialize + std::fmt::Debug>(
    place: &DeploymentTarget,
    doing: &str,
    params: &kube::api::PatchParams,
    patch: &kube::api::Patch<P>,
) -> Result<(), PrimitiveError> {
    use kube::core::Resource as _;
    let url = Deployment::url_path(&(), Some(&place.namespace));
    let request = kube::core::Request::new(url).patch(&place.deployment, params, patch).map_err(|e| {
        PrimitiveError::invalid(format!("cannot build the request {doing} {}: {e}", place.describe()))
    })?;
    // The call's write-ahead journal event is on disk before the change leaves.
    crate::providers::before_change().await.map_err(|e| e.with_target(place.key()))?;
    request::send(place, doing, place.client.request::<serde::de::IgnoredAny>(request)).await?;
    Ok(())
}

/// How one attempt of a mutation ended, when it did not fail on the wire.
pub(crate) enum Step<T> {
    /// Done (changed or not).
    Done(T),
    /// The Deployment's state refuses the change (kubectl's client-side checks): not retried.
    Refused(PrimitiveError),
}

/// Runs `attempt` (read, decide, write) again after the API answered 409 Conflict, with a
/// fresh read each time, at most [`request::CONFLICT_ATTEMPTS`] times; refusals are final.
pub(crate) async fn with_conflict_retry<T, F, Fut>(mut attempt: F) -> Result<T, PrimitiveError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Step<T>, PrimitiveError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(Step::Done(v)) => return Ok(v),
            Ok(Step::Refused(e)) => return Err(e),
            Err(e) if errors::is_conflict(&e) && tries < request::CONFLICT_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A planned output: `output` as a map with `planned: true`.
pub(crate) fn planned_output(output: &impl Serialize) -> serde_json::Value {
    let mut value = serde_json::to_value(output).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("planned".into(), serde_json::Value::Bool(true));
    }
    value
}
