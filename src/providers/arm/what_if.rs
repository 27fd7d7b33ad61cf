//! `arm::what_if`: what redeploying a previous deployment would change, without changing it.

use serde::Serialize;

use super::Group;
use super::redeploy::{RedeployArgs, prepare};
use crate::model::PrimitiveError;
use crate::providers::{Access, CallCx, Meta, Primitive};

/// `arm::what_if`.
pub struct WhatIf;

/// One predicted change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// The resource.
    pub resource_id: String,
    /// `Create`, `Modify`, `Delete`, `NoChange`, `Ignore`…
    pub change_type: String,
}

/// Result of `arm::what_if`.
#[derive(Debug, Clone, Serialize)]
pub struct WhatIfOutput {
    /// The predicted changes.
    pub changes: Vec<Change>,
}

impl Primitive for WhatIf {
    type Args = RedeployArgs;
    type Output = WhatIfOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "arm",
            name: "what_if",
            doc: "What redeploying a previous deployment would change (ARM what-if); changes nothing.",
            keys_doc: "as `arm::redeploy`: `subscription`, `group`, `from`, `name`, `mode` (\"Incremental\"), `timeout` (\"30m\")",
            returns: "`#{ changes: [#{ resource_id, change_type }] }`",
            access: Access::Read,
        }
    }

    fn target(&self, args: &RedeployArgs) -> Option<String> {
        Some(crate::model::ResourceKey::arm(&args.group).to_string())
    }

    async fn call(&self, cx: &CallCx, args: RedeployArgs) -> Result<WhatIfOutput, PrimitiveError> {
        let group = Group::resolve(cx, args.subscription.as_deref(), &args.group)?;
        let (_, name, properties) = prepare(cx, &group, &args, "whatif").await?;
        let changes = group.what_if(cx, &name, &properties, args.timeout.get()).await?;
        Ok(WhatIfOutput { changes })
    }
}
