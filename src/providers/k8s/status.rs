//! `k8s::status`: waits like `kubectl rollout status` — kubectl's `DeploymentStatusViewer` on
//! each event of a watch (no polling), until the rollout completes, its progress deadline
//! passes, or `timeout` runs out on the run's clock.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{WatchEvent, WatchParams};
use serde::{Deserialize, Serialize};

use super::rollout::{self, Viewed};
use super::{Addressed, addressed, deployments, errors, read_rollout};
use crate::model::{Dur, ErrorKind, PrimitiveError};
use crate::providers::k8s::DeploymentTarget;
use crate::providers::{Access, CallCx, Meta, Primitive, Shared};

/// `k8s::status`.
pub struct Status;

fn five_minutes() -> Dur {
    Dur::secs(300)
}

/// The longest watch asked of the server at once (kube refuses 295 s and more); a watch the
/// server ends is opened again from the last resourceVersion seen.
const WATCH_SECONDS: u32 = 290;

/// Keys of `k8s::status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
    /// How long to wait ("5m").
    #[serde(default = "five_minutes")]
    pub timeout: Dur,
}
addressed!(StatusArgs);

/// Result of `k8s::status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusOutput {
    /// Whether the rollout completed.
    pub complete: bool,
    /// kubectl's message for the last state seen.
    pub message: String,
    /// Whether `timeout` ran out before the rollout completed.
    pub timed_out: bool,
    /// Desired replicas.
    pub replicas: i32,
    /// Replicas running the current template.
    pub updated: i32,
    /// Ready replicas.
    pub ready: i32,
    /// Available replicas.
    pub available: i32,
    /// The reason of the Deployment's `Progressing` condition, as the controller set it
    /// (`NewReplicaSetAvailable`, `ReplicaSetUpdated`, `ProgressDeadlineExceeded`, ...; empty
    /// when it has none yet).
    pub reason: String,
    /// Under dry-run, true when this shows the state planned mutations would leave.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub planned: bool,
}

fn output(d: &Deployment, v: &Viewed, timed_out: bool) -> StatusOutput {
    let s = d.status.clone().unwrap_or_default();
    StatusOutput {
        complete: v.done,
        message: v.message.clone(),
        timed_out,
        replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        updated: s.updated_replicas.unwrap_or(0),
        ready: s.ready_replicas.unwrap_or(0),
        available: s.available_replicas.unwrap_or(0),
        reason: s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")
            .and_then(|c| c.reason.clone())
            .unwrap_or_default(),
        planned: false,
    }
}

type Last = Arc<Mutex<Option<(Deployment, Viewed)>>>;

/// Reads, then watches from the read's resourceVersion until the viewer says done or failed.
async fn wait(cx: &CallCx, place: &DeploymentTarget, last: Last) -> Result<StatusOutput, PrimitiveError> {
    let mut d = read_rollout(place).await?;
    let mut rv = d.metadata.resource_version.clone().unwrap_or_default();
    loop {
        let v = rollout::view(&d);
        if v.done || v.failed {
            return Ok(output(&d, &v, false));
        }
        cx.progress.waiting(&v.message);
        if let Ok(mut l) = last.lock() {
            *l = Some((d.clone(), v));
        }
        // Made only for a rollout that is still going (most are done at the first read).
        let api = deployments(place);
        let fields = format!("metadata.name={}", place.deployment);
        let params = WatchParams::default().fields(&fields).timeout(WATCH_SECONDS);
        let stream = super::request::send(place, "watching", api.watch(&params, &rv)).await?;
        let mut stream = std::pin::pin!(stream);
        let mut changed = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                    rv = o.metadata.resource_version.clone().unwrap_or(rv);
                    d = o;
                    changed = true;
                    break;
                }
                Ok(WatchEvent::Bookmark(b)) => rv = b.metadata.resource_version,
                Ok(WatchEvent::Deleted(_)) => {
                    return Err(PrimitiveError::new(
                        ErrorKind::NotFound,
                        format!(
                            "object has been deleted: {} was deleted while waiting for its rollout",
                            place.describe()
                        ),
                    )
                    .with_target(place.key()));
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    // The server forgot our resourceVersion: read again and watch from there.
                    d = read_rollout(place).await?;
                    rv = d.metadata.resource_version.clone().unwrap_or_default();
                    changed = true;
                    break;
                }
                Ok(WatchEvent::Error(status)) => {
                    return Err(errors::map(place, "watching", &kube::Error::Api(status)));
                }
                Err(e) => return Err(errors::map(place, "watching", &e)),
            }
        }
        if !changed {
            // The server closed the watch (its timeout); open it again from where it ended.
            continue;
        }
    }
}

impl Primitive for Status {
    type Args = StatusArgs;
    type Output = StatusOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "status",
            doc: "Waits for a Deployment's rollout like `kubectl rollout status`, on a watch; returns `complete: false` with kubectl's \
                  message when `timeout` runs out or the progress deadline is exceeded (it does not throw for an unfinished rollout).",
            keys_doc: "`context`, `namespace`, `deployment` as every k8s primitive; `timeout` (\"5m\")",
            returns: "`#{ complete, message, timed_out, reason, replicas, updated, ready, available }` — `reason` is the \
                      `Progressing` condition's (`ProgressDeadlineExceeded` when the rollout ran out of its progress deadline)",
            access: Access::Read,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &StatusArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: StatusArgs) -> Result<StatusOutput, PrimitiveError> {
        let place = args.place(cx).await?;
        if let Some(planned) = &place.planned {
            // Under dry-run, after a planned mutation: the planned rollout completes at once.
            let d = &planned.deployment;
            return Ok(StatusOutput { planned: true, ..output(d, &rollout::view(d), false) });
        }
        let last: Last = Arc::new(Mutex::new(None));
        let result = tokio::select! {
            r = wait(cx, &place, last.clone()) => r,
            _ = cx.clock.sleep(args.timeout.get()) => {
                let seen = last.lock().ok().and_then(|l| l.clone());
                match seen {
                    Some((d, v)) => Ok(output(&d, &v, true)),
                    None => Err(PrimitiveError::new(
                        ErrorKind::Timeout,
                        format!(
                            "timed out waiting for the condition: {} could not be read within {}",
                            place.describe(),
                            crate::model::format_duration(args.timeout.get())
                        ),
                    )
                    .with_target(place.key())),
                }
            }
            _ = cx.cancel.cancelled() => Err(PrimitiveError::new(ErrorKind::Cancelled, "cancelled while waiting for the rollout")),
        };
        cx.progress.done_waiting();
        result
    }
}
