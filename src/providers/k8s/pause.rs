//! `k8s::pause`: `kubectl rollout pause` — the same strategic merge patch with field manager
//! `kubectl-rollout`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Addressed, Changed, Step, addressed, patch_strategic, paused, read, with_conflict_retry};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Shared, Verified};

/// `k8s::pause`.
pub struct Pause;

/// Keys of `k8s::pause`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
}
addressed!(PauseArgs);

impl Primitive for Pause {
    type Args = PauseArgs;
    type Output = Changed;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "pause",
            doc: "Pauses a Deployment's rollout with kubectl's patch. Idempotent: an already paused Deployment gives `changed: false` \
                  (where kubectl says \"is already paused\") and no patch; a retry reads first, so it sees an earlier try that took effect.",
            keys_doc: super::COMMON_KEYS,
            returns: "`#{ changed }`",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &PauseArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: PauseArgs) -> Result<Changed, PrimitiveError> {
        let place = args.place(cx).await?;
        with_conflict_retry(|| async {
            if paused(&read(&place).await?) {
                return Ok(Step::Done(Changed { changed: false }));
            }
            patch_strategic(&place, "pausing", "kubectl-rollout", json!({"spec": {"paused": true}})).await?;
            Ok(Step::Done(Changed { changed: true }))
        })
        .await
    }

    async fn plan(&self, cx: &CallCx, args: &PauseArgs) -> Result<Planned, PrimitiveError> {
        let place = args.place(cx).await?;
        let mut d = read(&place).await?;
        let already = paused(&d);
        if !already {
            if let Some(spec) = d.spec.as_mut() {
                spec.paused = Some(true);
            }
            super::planned::record_change(cx, &place, d).await?;
        }
        Ok(Planned {
            effect: if already {
                format!("leave {} paused (already paused)", place.describe())
            } else {
                format!("pause the rollout of {}", place.describe())
            },
            output: json!({ "changed": !already, "planned": true }),
        })
    }

    /// A pause in doubt took effect when the Deployment is paused now.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &PauseArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let place = args.place(cx).await?;
        Ok(if paused(&read(&place).await?) {
            Verified::Applied(json!({ "changed": true }))
        } else {
            Verified::NotApplied
        })
    }
}
