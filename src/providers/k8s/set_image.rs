//! `k8s::set_image`: `kubectl set image deployment/<d> <container>=<image>` — the same strategic
//! merge patch (`$setElementOrder/containers`) with field manager `kubectl-set`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Addressed, Step, addressed, patch_strategic, read, with_conflict_retry};
use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::k8s::DeploymentTarget;
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Shared, Verified};

/// `k8s::set_image`.
pub struct SetImage;

/// Keys of `k8s::set_image`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetImageArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace (the context's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deployment name.
    pub deployment: String,
    /// The new image.
    pub image: String,
    /// The container to change (default: the only container).
    #[serde(default)]
    pub container: Option<String>,
}
addressed!(SetImageArgs);

/// Result of `k8s::set_image`.
#[derive(Debug, Clone, Serialize)]
pub struct SetImageOutput {
    /// Whether the image changed.
    pub changed: bool,
    /// The image before.
    pub from_image: String,
    /// The image after.
    pub to_image: String,
}

/// What set_image would do: the container, its current image and the patch.
struct Decision {
    container: String,
    from_image: String,
    patch: serde_json::Value,
}

fn decide(
    place: &DeploymentTarget,
    d: &k8s_openapi::api::apps::v1::Deployment,
    args: &SetImageArgs,
) -> Result<Decision, PrimitiveError> {
    let containers = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let chosen = match &args.container {
        Some(name) => containers.iter().find(|c| &c.name == name).ok_or_else(|| {
            PrimitiveError::new(
                ErrorKind::NotFound,
                format!("unable to find container named \"{name}\" in {}", place.describe()),
            )
            .with_target(place.key())
        })?,
        None => match containers.as_slice() {
            [only] => only,
            _ => {
                let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
                return Err(PrimitiveError::invalid(format!(
                    "{} has {} containers ({}); name one with `container`",
                    place.describe(),
                    names.len(),
                    names.join(", ")
                ))
                .with_target(place.key()));
            }
        },
    };
    let order: Vec<serde_json::Value> = containers.iter().map(|c| json!({"name": c.name})).collect();
    Ok(Decision {
        container: chosen.name.clone(),
        from_image: chosen.image.clone().unwrap_or_default(),
        patch: json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": order,
            "containers": [{"image": args.image, "name": chosen.name}],
        }}}}),
    })
}

impl Primitive for SetImage {
    type Args = SetImageArgs;
    type Output = SetImageOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "k8s",
            name: "set_image",
            doc: "Rolls a Deployment forward to a new image in one container, with `kubectl set image`'s patch. Idempotent: \
                  when the container already runs `image`, nothing is sent and `changed` is false. Undo it with `set_image` back to `from_image`.",
            keys_doc: "`context`, `namespace`, `deployment` as every k8s primitive; `image`, `container` (the only container; required when there are several)",
            returns: "`#{ changed, from_image, to_image }`",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &SetImageArgs) -> Option<String> {
        Some(args.key(shared))
    }

    async fn call(&self, cx: &CallCx, args: SetImageArgs) -> Result<SetImageOutput, PrimitiveError> {
        if args.image.trim().is_empty() {
            return Err(PrimitiveError::invalid("k8s::set_image: `image` must not be empty"));
        }
        let place = args.place(cx).await?;
        with_conflict_retry(|| async {
            let d = read(&place).await?;
            let decision = match decide(&place, &d, &args) {
                Ok(d) => d,
                Err(e) => return Ok(Step::Refused(e)),
            };
            let output = SetImageOutput {
                changed: decision.from_image != args.image,
                from_image: decision.from_image.clone(),
                to_image: args.image.clone(),
            };
            if output.changed {
                let doing = format!("setting the image of container `{}` of", decision.container);
                patch_strategic(&place, &doing, "kubectl-set", decision.patch).await?;
            }
            Ok(Step::Done(output))
        })
        .await
    }

    async fn plan(&self, cx: &CallCx, args: &SetImageArgs) -> Result<Planned, PrimitiveError> {
        let place = args.place(cx).await?;
        let d = read(&place).await?;
        let decision = decide(&place, &d, args)?;
        let changed = decision.from_image != args.image;
        if changed {
            let mut d = d;
            if let Some(c) = d
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
                .and_then(|s| s.containers.iter_mut().find(|c| c.name == decision.container))
            {
                c.image = Some(args.image.clone());
            }
            super::planned::record_change(cx, &place, d).await?;
        }
        Ok(Planned {
            effect: if changed {
                format!(
                    "set the image of container `{}` of {}: {} → {}",
                    decision.container,
                    place.describe(),
                    decision.from_image,
                    args.image
                )
            } else {
                format!(
                    "leave container `{}` of {} at {} (already that image)",
                    decision.container,
                    place.describe(),
                    args.image
                )
            },
            output: super::planned_output(&SetImageOutput {
                changed,
                from_image: decision.from_image,
                to_image: args.image.clone(),
            }),
        })
    }

    /// A set_image in doubt took effect when the container runs `image` now (the image it
    /// replaced is no longer known: `from_image` is `()`).
    async fn verify(
        &self,
        cx: &CallCx,
        args: &SetImageArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let place = args.place(cx).await?;
        let d = read(&place).await?;
        let decision = decide(&place, &d, args)?;
        Ok(if decision.from_image == args.image {
            Verified::Applied(json!({ "changed": true, "from_image": null, "to_image": args.image }))
        } else {
            Verified::NotApplied
        })
    }
}
