//! `k8s::restart`: `kubectl rollout restart` — the `kubectl.kubernetes.io/restartedAt`
//! template annotation (RFC 3339, local time, whole seconds) in a strategic merge patch with
//! field manager `kubectl-rollout`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::rollout::RESTARTED_AT;
use super::{Addressed, Changed, Step, addressed, patch_strategic, paused, read, with_conflict_retry};
use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::k8s::DeploymentTarget;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Shared, Verified};

/// `k8s::restart`.
pub struct Restart;

/// Keys of `k8s::restart`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
}
addressed!(RestartArgs);

/// kubectl's timestamp: Go's `time.Now().Format(time.RFC3339)`.
pub(super) fn restart_stamp() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn refuse_paused(place: &DeploymentTarget) -> PrimitiveError {
    PrimitiveError::new(
        ErrorKind::Conflict,
        format!(
            "deployments.apps \"{}\" can't restart paused deployment (run rollout resume first) (namespace `{}`, context `{}`)",
            place.deployment, place.namespace, place.context
        ),
    )
    .with_target(place.key())
}

fn restarted_at(d: &k8s_openapi::api::apps::v1::Deployment) -> Option<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(RESTARTED_AT))
        .cloned()
}

impl Primitive for Restart {
    type Args = RestartArgs;
    type Output = Changed;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "restart",
            doc: "Restarts a Deployment's pods with kubectl's `restartedAt` annotation patch; refuses a paused Deployment as kubectl does. \
                  Each call restarts again; a second call within the same second changes nothing (`changed: false`).",
            keys_doc: super::COMMON_KEYS,
            returns: "`#{ changed }`",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &RestartArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: RestartArgs) -> Result<Changed, PrimitiveError> {
        let place = args.place(cx).await?;
        with_conflict_retry(|| async {
            let d = read(&place).await?;
            if paused(&d) {
                return Ok(Step::Refused(refuse_paused(&place)));
            }
            let stamp = restart_stamp();
            if restarted_at(&d).as_deref() == Some(stamp.as_str()) {
                return Ok(Step::Done(Changed { changed: false }));
            }
            let body = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}});
            patch_strategic(&place, "restarting", "kubectl-rollout", body).await?;
            Ok(Step::Done(Changed { changed: true }))
        })
        .await
    }

    async fn plan(&self, cx: &CallCx, args: &RestartArgs) -> Result<Planned, PrimitiveError> {
        let place = args.place(cx).await?;
        let mut d = read(&place).await?;
        if paused(&d) {
            return Err(refuse_paused(&place));
        }
        if let Some(spec) = d.spec.as_mut() {
            spec.template
                .metadata
                .get_or_insert_with(Default::default)
                .annotations
                .get_or_insert_with(Default::default)
                .insert(RESTARTED_AT.into(), restart_stamp());
        }
        super::planned::record_change(cx, &place, d).await?;
        Ok(Planned {
            effect: format!("restart the pods of {} (annotation {RESTARTED_AT})", place.describe()),
            output: json!({ "changed": true, "planned": true }),
        })
    }

    /// A restart in doubt took effect when the template's `restartedAt` is not older than the
    /// second it was sent in.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &RestartArgs,
        sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let place = args.place(cx).await?;
        let d = read(&place).await?;
        let at = restarted_at(&d).and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok());
        let sent_second = sent.timestamp();
        Ok(match at {
            Some(t) if t.timestamp() >= sent_second => Verified::Applied(json!({ "changed": true })),
            _ => Verified::NotApplied,
        })
    }
}
