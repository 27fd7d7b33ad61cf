//! Kubernetes failures as catchable error maps: the API's `Status` by code and connection failures.

use super::clients::DeploymentTarget;
use crate::model::{ErrorKind, PrimitiveError};

pub use super::request::{CONFLICT_ATTEMPTS, REQUEST_TIMEOUT, send};

/// Maps a kube error to an error kind, naming the context and namespace.
pub fn map(place: &DeploymentTarget, doing: &str, e: &kube::Error) -> PrimitiveError {
    let (kind, message) = match e {
        kube::Error::Api(status) => {
            let code = status.code;
            let text = if status.message.is_empty() { status.reason.clone() } else { status.message.clone() };
            let kind = kind_of_status(code, &status.reason);
            let message = match kind {
                ErrorKind::NotFound => {
                    format!("{text} (namespace `{}`, context `{}`)", place.namespace, place.context)
                }
                ErrorKind::Unauthorized => format!(
                    "context `{}` is not authorized (401) while {doing} {}: {text}; check the context's credentials",
                    place.context,
                    place.describe()
                ),
                ErrorKind::Forbidden => format!(
                    "context `{}` may not do this in namespace `{}` (403) while {doing} {}: {text}",
                    place.context,
                    place.namespace,
                    place.describe()
                ),
                _ => format!("{text} ({code}) while {doing} {}", place.describe()),
            };
            (kind, message)
        }
        other => {
            let root = root_cause(other);
            let timed_out = root.to_ascii_lowercase().contains("timed out")
                || root.to_ascii_lowercase().contains("elapsed");
            let kind = if timed_out {
                ErrorKind::Timeout
            } else if matches!(
                other,
                kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)
            ) {
                ErrorKind::Transport
            } else if matches!(other, kube::Error::SerdeError(_)) {
                ErrorKind::Server
            } else {
                ErrorKind::Transport
            };
            (
                kind,
                format!(
                    "request to context `{}` failed while {doing} {}: {root}",
                    place.context,
                    place.describe()
                ),
            )
        }
    };
    PrimitiveError::new(kind, message).with_target(place.key())
}

/// The error kind of an API `Status`.
pub fn kind_of_status(code: u16, reason: &str) -> ErrorKind {
    match (code, reason) {
        (404, _) | (410, _) => ErrorKind::NotFound,
        (401, _) => ErrorKind::Unauthorized,
        (403, _) => ErrorKind::Forbidden,
        (409, _) => ErrorKind::Conflict,
        (429, _) => ErrorKind::Throttled,
        (400 | 422, _) => ErrorKind::Invalid,
        (504, _) | (_, "Timeout") => ErrorKind::Timeout,
        _ => ErrorKind::Server,
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    if text.is_empty() { e.to_string() } else { text }
}

/// Whether an error is a conflict worth a fresh read and another try.
pub fn is_conflict(e: &PrimitiveError) -> bool {
    e.kind == ErrorKind::Conflict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_of_status(404, "NotFound"), ErrorKind::NotFound);
        assert_eq!(kind_of_status(403, "Forbidden"), ErrorKind::Forbidden);
        assert_eq!(kind_of_status(401, "Unauthorized"), ErrorKind::Unauthorized);
        assert_eq!(kind_of_status(409, "Conflict"), ErrorKind::Conflict);
        assert_eq!(kind_of_status(429, "TooManyRequests"), ErrorKind::Throttled);
        assert_eq!(kind_of_status(422, "Invalid"), ErrorKind::Invalid);
        assert_eq!(kind_of_status(500, "InternalError"), ErrorKind::Server);
        assert_eq!(kind_of_status(504, ""), ErrorKind::Timeout);
    }
}
