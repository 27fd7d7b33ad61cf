//! `k8s::resume`: `kubectl rollout resume` — the same strategic merge patch (`paused: null`)
//! with field manager `kubectl-rollout`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Addressed, Changed, Step, addressed, patch_strategic, paused, read, with_conflict_retry};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Shared, Verified};

/// `k8s::resume`.
pub struct Resume;

/// Keys of `k8s::resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
}
addressed!(ResumeArgs);

impl Primitive for Resume {
    type Args = ResumeArgs;
    type Output = Changed;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "resume",
            doc: "Resumes a paused Deployment's rollout with kubectl's patch. Idempotent: a Deployment that is not paused gives \
                  `changed: false` (where kubectl says \"is not paused\") and no patch.",
            keys_doc: super::COMMON_KEYS,
            returns: "`#{ changed }`",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &ResumeArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: ResumeArgs) -> Result<Changed, PrimitiveError> {
        let place = args.place(cx).await?;
        with_conflict_retry(|| async {
            if !paused(&read(&place).await?) {
                return Ok(Step::Done(Changed { changed: false }));
            }
            // `paused` is omitempty in Go, so kubectl's diff deletes the field.
            patch_strategic(&place, "resuming", "kubectl-rollout", json!({"spec": {"paused": null}})).await?;
            Ok(Step::Done(Changed { changed: true }))
        })
        .await
    }

    async fn plan(&self, cx: &CallCx, args: &ResumeArgs) -> Result<Planned, PrimitiveError> {
        let place = args.place(cx).await?;
        let mut d = read(&place).await?;
        let is_paused = paused(&d);
        if is_paused {
            if let Some(spec) = d.spec.as_mut() {
                spec.paused = None;
            }
            super::planned::record_change(cx, &place, d).await?;
        }
        Ok(Planned {
            effect: if is_paused {
                format!("resume the rollout of {}", place.describe())
            } else {
                format!("leave {} running (not paused)", place.describe())
            },
            output: json!({ "changed": is_paused, "planned": true }),
        })
    }

    /// A resume in doubt took effect when the Deployment is not paused now.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &ResumeArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let place = args.place(cx).await?;
        Ok(if paused(&read(&place).await?) {
            Verified::NotApplied
        } else {
            Verified::Applied(json!({ "changed": true }))
        })
    }
}
