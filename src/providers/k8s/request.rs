//! One Kubernetes request at a time: a bound on every request so a silent server becomes a
//! `timeout`, never a hang, and the number of tries a conflicting mutation gets.

use std::future::Future;
use std::time::Duration;

use super::clients::DeploymentTarget;
use super::errors::map;
use crate::model::{ErrorKind, PrimitiveError};

/// The longest one request may take, unless `ROLLBOOK_KUBE_REQUEST_TIMEOUT` says otherwise. kube's client has no read timeout of its own; this is a
/// guard against a server that never answers, not a wait, so it runs on real time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a mutation is tried when the server reports a conflict (each with a fresh read).
pub const CONFLICT_ATTEMPTS: u32 = 4;

/// Sends one request under the place's request timeout and maps its failure; `doing` says what it was
/// ("reading", "patching", "listing the ReplicaSets of").
pub async fn send<T>(
    place: &DeploymentTarget,
    doing: &str,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, PrimitiveError> {
    match tokio::time::timeout(place.request_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map(place, doing, &e)),
        Err(_) => Err(PrimitiveError::new(
            ErrorKind::Timeout,
            format!(
                "no answer within {} while {doing} {}",
                crate::model::format_duration(place.request_timeout),
                place.describe()
            ),
        )
        .with_target(place.key())),
    }
}
