//! `gitops::rollback`: `argocd app rollback APP ID` — sync an Argo CD Application to the revision
//! of one of its history entries by writing the `operation` the Argo CD API server writes, then
//! wait for the application controller to finish it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Object, PlannedReconcile, Tool, automated, target_key};
use crate::model::{Dur, ErrorKind, PrimitiveError};
use crate::providers::{Access, CallCx, Meta, Planned, Primitive, Shared, Verified};

/// `gitops::rollback`.
pub struct Rollback;

fn default_namespace() -> String {
    "argocd".into()
}

/// Keys of `gitops::rollback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackArgs {
    /// kubeconfig context (the current context).
    #[serde(default)]
    pub context: Option<String>,
    /// The Application's namespace (default `argocd`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The Application's name.
    pub app: String,
    /// The history id to go back to.
    pub id: i64,
    /// How long to wait for the sync to finish (default 5m).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// Result of `gitops::rollback`.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutput {
    /// Whether a sync was run (false when the newest history entry already is that revision).
    pub changed: bool,
    /// The revision of the newest history entry before the call.
    pub from_revision: String,
    /// The revision synced to.
    pub to_revision: String,
}

/// How often the operation's progress is read.
const POLL: Duration = Duration::from_millis(500);

struct Decision {
    from_revision: String,
    to_revision: String,
    source: Value,
}

fn decide(o: &Object, obj: &Value, id: i64, auto_sync_off: bool) -> Result<Decision, PrimitiveError> {
    let history = obj.pointer("/status/history").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(entry) = history.iter().find(|e| e.get("id").and_then(Value::as_i64) == Some(id)) else {
        let ids: Vec<String> = history
            .iter()
            .filter_map(|e| e.get("id").and_then(Value::as_i64))
            .map(|i| i.to_string())
            .collect();
        return Err(PrimitiveError::new(
            ErrorKind::NotFound,
            format!(
                "application `{}` does not have deployment id '{id}' in history (ids: {})",
                o.name,
                if ids.is_empty() { "none".into() } else { ids.join(", ") }
            ),
        )
        .with_target(o.key()));
    };
    if !auto_sync_off {
        return Err(PrimitiveError::new(
            ErrorKind::Conflict,
            format!(
                "rollback cannot be initiated when auto-sync is enabled: {} has an automated sync policy; \
                 suspend it first with gitops::suspend",
                o.describe()
            ),
        )
        .with_target(o.key()));
    }
    if obj.get("operation").is_some_and(|v| !v.is_null()) {
        return Err(PrimitiveError::new(
            ErrorKind::Conflict,
            format!("another operation is already in progress on {}", o.describe()),
        )
        .with_target(o.key()));
    }
    let from_revision = history
        .last()
        .and_then(|e| e.get("revision"))
        .and_then(Value::as_str)
        .or_else(|| obj.pointer("/status/sync/revision").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    Ok(Decision {
        from_revision,
        to_revision: entry.get("revision").and_then(Value::as_str).unwrap_or("").to_string(),
        source: entry.get("source").cloned().unwrap_or(Value::Null),
    })
}

async fn object(cx: &CallCx, args: &RollbackArgs) -> Result<Object, PrimitiveError> {
    Object::of(cx, Tool::Argo, args.context.as_deref(), &args.namespace, &args.app).await
}

impl Primitive for Rollback {
    type Args = RollbackArgs;
    type Output = RollbackOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "gitops",
            name: "rollback",
            doc: "Syncs an Argo CD Application to the revision of a history entry, as `argocd app rollback APP ID` does: a merge \
                  patch writes `operation` (`sync.revision` and `sync.source` of that entry, `initiatedBy.username: rollbook`), then \
                  the call waits until the controller has finished it (`status.operationState`). Refused while an automated sync \
                  policy is set (suspend first) or another operation runs. Twice to the same id: the second changes nothing.",
            keys_doc: "`context` (the current context), `namespace` of the Application (\"argocd\"), `app`, `id` (a history id), \
                       `timeout` (\"5m\")",
            returns: "`#{ changed, from_revision, to_revision }`; errors `not_found` (no such id), `conflict` (auto-sync on, \
                      an operation in progress), `server` (the sync failed), `timeout`",
            access: Access::Mutate,
        }
    }

    fn resolve_target(&self, shared: &Shared, args: &RollbackArgs) -> Option<String> {
        Some(target_key(shared, args.context.as_deref(), &args.namespace, &args.app))
    }

    async fn call(&self, cx: &CallCx, args: RollbackArgs) -> Result<RollbackOutput, PrimitiveError> {
        let o = object(cx, &args).await?;
        let obj = o.read().await?;
        let d = decide(&o, &obj, args.id, automated(&obj).is_none())?;
        let output = RollbackOutput {
            changed: d.from_revision != d.to_revision,
            from_revision: d.from_revision.clone(),
            to_revision: d.to_revision.clone(),
        };
        if !output.changed {
            return Ok(output);
        }
        let mut sync = json!({"revision": d.to_revision, "prune": false, "syncStrategy": {"hook": {}}});
        if !d.source.is_null() {
            sync["source"] = d.source;
        }
        let patch = json!({"operation": {"sync": sync, "initiatedBy": {"username": "rollbook"},
            "info": [{"name": "Reason", "value": format!("rollback to history id {}", args.id)}]}});
        o.merge_patch("starting a rollback of", "rollbook", patch).await?;
        let limit = args.timeout.map(Dur::get).unwrap_or(Duration::from_secs(300));
        cx.progress.waiting(&format!("waiting for {} to sync to {}", o.describe(), d.to_revision));
        let waited = cx
            .timeout(limit, async {
                loop {
                    let now = o.read().await?;
                    let pending = now.get("operation").is_some_and(|v| !v.is_null());
                    let state = now.pointer("/status/operationState");
                    let phase = state.and_then(|s| s.get("phase")).and_then(Value::as_str).unwrap_or("");
                    let for_us =
                        state.and_then(|s| s.pointer("/operation/sync/revision")).and_then(Value::as_str)
                            == Some(d.to_revision.as_str());
                    if !pending && for_us && matches!(phase, "Succeeded" | "Failed" | "Error") {
                        let message =
                            state.and_then(|s| s.get("message")).and_then(Value::as_str).unwrap_or("");
                        return Ok::<_, PrimitiveError>((phase.to_string(), message.to_string()));
                    }
                    cx.sleep(POLL).await?;
                }
            })
            .await;
        cx.progress.done_waiting();
        match waited {
            None => Err(PrimitiveError::new(
                ErrorKind::Timeout,
                format!(
                    "the rollback of {} to revision {} did not finish within {}",
                    o.describe(),
                    d.to_revision,
                    crate::model::format_duration(limit)
                ),
            )
            .with_target(o.key())),
            Some(Err(e)) => Err(e),
            Some(Ok((phase, _))) if phase == "Succeeded" => Ok(output),
            Some(Ok((phase, message))) => Err(PrimitiveError::new(
                ErrorKind::Server,
                format!(
                    "the rollback of {} to revision {} ended {phase}: {message}",
                    o.describe(),
                    d.to_revision
                ),
            )
            .with_target(o.key())),
        }
    }

    async fn plan(&self, cx: &CallCx, args: &RollbackArgs) -> Result<Planned, PrimitiveError> {
        let o = object(cx, args).await?;
        let obj = o.read().await?;
        let off = cx
            .shared
            .planned::<PlannedReconcile>(&o.key())
            .map(|p| p.suspended)
            .unwrap_or_else(|| automated(&obj).is_none());
        let d = decide(&o, &obj, args.id, off)?;
        let changed = d.from_revision != d.to_revision;
        Ok(Planned {
            effect: if changed {
                format!(
                    "sync {} to history id {} (revision {}, from {}), as `argocd app rollback {} {}`",
                    o.describe(),
                    args.id,
                    d.to_revision,
                    d.from_revision,
                    o.name,
                    args.id
                )
            } else {
                format!(
                    "leave {} at revision {} (history id {} already)",
                    o.describe(),
                    d.to_revision,
                    args.id
                )
            },
            output: json!({"changed": changed, "from_revision": d.from_revision, "to_revision": d.to_revision, "planned": true}),
        })
    }

    /// A rollback in doubt took effect when the newest history entry is the wanted revision and
    /// no operation is pending; it did not when the operation was never written.
    async fn verify(
        &self,
        cx: &CallCx,
        args: &RollbackArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        let o = object(cx, args).await?;
        let obj = o.read().await?;
        let history = obj.pointer("/status/history").and_then(Value::as_array).cloned().unwrap_or_default();
        let wanted = history
            .iter()
            .find(|e| e.get("id").and_then(Value::as_i64) == Some(args.id))
            .and_then(|e| e.get("revision"))
            .and_then(Value::as_str)
            .map(String::from);
        let newest = history.last().and_then(|e| e.get("revision")).and_then(Value::as_str).map(String::from);
        let pending = obj.get("operation").is_some_and(|v| !v.is_null());
        Ok(match (wanted, pending) {
            (_, true) => Verified::Unknown(format!(
                "an operation is still running on {}; wait for it and look again",
                o.describe()
            )),
            (Some(w), false) if newest.as_deref() == Some(w.as_str()) => {
                Verified::Applied(json!({"changed": true, "from_revision": null, "to_revision": w}))
            }
            _ => Verified::NotApplied,
        })
    }
}
