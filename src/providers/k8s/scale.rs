//! `k8s::scale`: `kubectl scale deployment --replicas` — a merge patch of the `scale`
//! subresource, after reading the Deployment as kubectl does.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Addressed, Step, addressed, read, with_conflict_retry};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Shared, Verified};

/// `k8s::scale`.
pub struct Scale;

/// Keys of `k8s::scale`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
    /// Desired replicas.
    pub replicas: i32,
}
addressed!(ScaleArgs);

/// Result of `k8s::scale`.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleOutput {
    /// Whether the replica count changed.
    pub changed: bool,
    /// Replicas before.
    pub from: i32,
    /// Replicas after.
    pub to: i32,
}

fn check(args: &ScaleArgs) -> Result<(), PrimitiveError> {
    if args.replicas < 0 {
        return Err(PrimitiveError::invalid(format!(
            "k8s::scale: `replicas` must be 0 or more, not {}",
            args.replicas
        )));
    }
    Ok(())
}

fn replicas(d: &k8s_openapi::api::apps::v1::Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

impl Primitive for Scale {
    type Args = ScaleArgs;
    type Output = ScaleOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "scale",
            doc: "Sets a Deployment's replica count through the scale subresource, as `kubectl scale` does. Idempotent: \
                  at the wanted count already, nothing is sent and `changed` is false. Undo it with `scale` back to `from`.",
            keys_doc: "`context`, `namespace`, `deployment` as every k8s primitive; `replicas`",
            returns: "`#{ changed, from, to }`",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &ScaleArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: ScaleArgs) -> Result<ScaleOutput, PrimitiveError> {
        check(&args)?;
        let place = args.place(cx).await?;
        with_conflict_retry(|| async {
            let from = replicas(&read(&place).await?);
            if from != args.replicas {
                let api = super::deployments(&place);
                let patch = kube::api::Patch::Merge(json!({"spec": {"replicas": args.replicas}}));
                super::request::send(
                    &place,
                    "scaling",
                    api.patch_scale(&place.deployment, &kube::api::PatchParams::default(), &patch),
                )
                .await?;
            }
            Ok(Step::Done(ScaleOutput { changed: from != args.replicas, from, to: args.replicas }))
        })
        .await
    }

    async fn plan(&self, cx: &CallCx, args: &ScaleArgs) -> Result<Planned, PrimitiveError> {
        check(args)?;
        let place = args.place(cx).await?;
        let mut d = read(&place).await?;
        let from = replicas(&d);
        if from != args.replicas {
            if let Some(spec) = d.spec.as_mut() {
                spec.replicas = Some(args.replicas);
            }
            super::planned::record_change(cx, &place, d).await?;
        }
        Ok(Planned {
            effect: if from == args.replicas {
                format!("leave {} at {from} replicas", place.describe())
            } else {
                format!("scale {} from {from} to {} replicas", place.describe(), args.replicas)
            },
            output: json!({ "changed": from != args.replicas, "from": from, "to": args.replicas, "planned": true }),
        })
    }

    /// A scale in doubt took effect when the Deployment wants `replicas` now (`from` is no
    /// longer known: `()`).
    async fn verify(
        &self,
        cx: &CallCx,
        args: &ScaleArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let place = args.place(cx).await?;
        Ok(if replicas(&read(&place).await?) == args.replicas {
            Verified::Applied(json!({ "changed": true, "from": null, "to": args.replicas }))
        } else {
            Verified::NotApplied
        })
    }
}
