//! Glue between the primitives and the ARM client: the run's client from the per-run cache,
//! the run's clock as the client's [`Pause`], and the ARM paths the Azure providers share.

use std::sync::Arc;
use std::time::Duration;

use crate::azure::{ArmClient, AzureError, Pause, PauseFuture, encode};
use crate::model::{ErrorKind, PrimitiveError};

use super::CallCx;

impl Pause for CallCx {
    fn pause(&self, d: Duration) -> PauseFuture<'_> {
        Box::pin(async move {
            self.sleep(d).await.map_err(|e| match e.kind {
                ErrorKind::Cancelled => AzureError::Cancelled,
                _ => AzureError::Invalid(e.message),
            })
        })
    }
    fn now(&self) -> Duration {
        self.clock.now()
    }
}

/// The run's ARM client, built on first use from the run's settings and HTTP client.
pub(crate) fn client(cx: &CallCx) -> Result<Arc<ArmClient>, PrimitiveError> {
    let http = cx.http.client().clone();
    cx.shared.get_or_init::<ArmClient>(move |settings| {
        ArmClient::from_settings(http, settings).map_err(PrimitiveError::from)
    })
}

/// `/subscriptions/{sub}/resourceGroups/{group}`, names encoded.
pub(crate) fn group_path(sub: &str, group: &str) -> String {
    format!("/subscriptions/{}/resourceGroups/{}", encode(sub), encode(group))
}

/// Turns a client error into the primitive's, naming `target` (the §6 resource key).
pub(crate) fn fail(target: &str) -> impl Fn(AzureError) -> PrimitiveError + '_ {
    move |e| PrimitiveError::from(e).with_target(target)
}

/// Refuses empty names before any request is sent.
pub(crate) fn require(name: &str, value: &str) -> Result<(), PrimitiveError> {
    if value.trim().is_empty() {
        return Err(PrimitiveError::invalid(format!("`{name}` must not be empty")));
    }
    Ok(())
}

/// A deadline on the run's clock for a whole primitive call (its own waits and the client's
/// retries and polls), so `timeout` keys mean the same under real, scaled and skipped time.
pub(crate) struct Budget<'a> {
    cx: &'a CallCx,
    limit: Duration,
    started: Duration,
}

impl<'a> Budget<'a> {
    /// A budget of `limit` starting now.
    pub(crate) fn new(cx: &'a CallCx, limit: Duration) -> Budget<'a> {
        Budget { cx, limit, started: cx.clock.now() }
    }

    /// Time spent so far, on the run's clock.
    pub(crate) fn spent(&self) -> Duration {
        self.cx.clock.now().saturating_sub(self.started)
    }

    /// Time left (zero when spent).
    pub(crate) fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.spent())
    }

    /// The whole budget.
    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }
}

impl Pause for Budget<'_> {
    fn pause(&self, d: Duration) -> PauseFuture<'_> {
        self.cx.pause(d)
    }
    fn now(&self) -> Duration {
        self.cx.clock.now()
    }
}
