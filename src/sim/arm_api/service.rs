//! The trait a simulated Azure service implements, and the row it adds to the router's table.

use serde_json::Value;

use super::core::Core;
use super::error::{ArmError, unknown_path};
use super::ids::Place;
use super::lro::Payload;
use super::reply::Reply;
use super::request::Req;
use super::versions::Versions;
use crate::sim::scenario::Scenario;

/// One row of the router's table: a provider namespace, its api-versions and how a scenario
/// builds the service.
pub(crate) struct Spec {
    /// Namespace (lowercase) and api-versions.
    pub versions: Versions,
    /// Builds the service's state from a scenario.
    pub build: fn(&Scenario) -> Box<dyn Service>,
}

/// A simulated resource provider.
pub(crate) trait Service: Send {
    /// Requests under `…/resourceGroups/{g}/providers/{namespace}/`; `rest` indexes the segment
    /// after the namespace.
    fn handle(&mut self, core: &mut Core, req: &Req, at: &Place, rest: usize) -> Result<Reply, ArmError>;

    /// Requests under `/subscriptions/{s}/providers/{namespace}/` (subscription-wide lists).
    fn handle_subscription(
        &mut self,
        core: &mut Core,
        req: &Req,
        sub: &str,
        rest: usize,
    ) -> Result<Reply, ArmError> {
        let _ = (core, sub, rest);
        Err(unknown_path(req))
    }

    /// (subscription, group) of every resource the scenario gave it, so the groups exist.
    fn groups(&self) -> Vec<(String, String)>;

    /// Generic resource entries (`id`, `name`, `type`, `location`) in a group, for
    /// `resourceGroups/{g}/resources`.
    fn resources(&self, sub: &str, group: &str) -> Vec<Value> {
        let _ = (sub, group);
        Vec::new()
    }

    /// Applies a due operation this service started; whether it succeeded.
    fn complete(&mut self, core: &mut Core, payload: &Payload) -> bool {
        let _ = (core, payload);
        true
    }

    /// The final body a completed operation's `Location` answers with (none: 200 without body).
    fn result(&self, core: &Core, payload: &Payload) -> Result<Option<Value>, ArmError> {
        let _ = (core, payload);
        Ok(None)
    }

    /// The `error` a failed operation's status shows.
    fn error(&self, payload: &Payload) -> Option<Value> {
        let _ = payload;
        None
    }

    /// Health of a resource key (split at `/`) this service owns; None when not its key.
    fn healthy(&self, key: &[&str]) -> Option<bool> {
        let _ = key;
        None
    }

    /// Observable state of a resource key this service owns, for `rollbook test`.
    fn state(&self, key: &[&str]) -> Option<Value> {
        let _ = key;
        None
    }

    /// Counts one observation of `resource`, applying this service's operations that are due.
    fn observe(&mut self, core: &mut Core, resource: &str) {
        for due in core.ops.observe(resource) {
            let ok = self.complete(core, &due.payload);
            core.ops.finish(&due.id, ok);
        }
    }
}
