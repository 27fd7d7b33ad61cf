//! The error every primitive reports: a kind a runbook can branch on, a message and a target.

use serde::{Deserialize, Serialize};

/// What went wrong, in the words runbooks match on (`e.kind == "not_found"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The target does not exist.
    NotFound,
    /// The target changed under us or is in a state that refuses the change.
    Conflict,
    /// The service asked us to slow down and retries ran out.
    Throttled,
    /// The credentials were missing, expired or refused.
    Unauthorized,
    /// The credentials are valid but may not do this.
    Forbidden,
    /// The request itself is wrong (bad key, bad value, bad URL).
    Invalid,
    /// The operation did not finish in time.
    Timeout,
    /// The connection failed or broke.
    Transport,
    /// An operator or a policy said no.
    Denied,
    /// The run was cancelled or ran out of time while this call was in flight.
    Cancelled,
    /// The service failed for a reason of its own (5xx after retries).
    Server,
    /// Another run holds the target's lock.
    Locked,
    /// A GitOps controller (Argo CD, Flux) would revert the change: suspend it or change git.
    GitopsManaged,
}

impl ErrorKind {
    /// The snake_case word scripts see.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::Denied => "denied",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Server => "server",
            ErrorKind::Locked => "locked",
            ErrorKind::GitopsManaged => "gitops_managed",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of one primitive call, as the script's `catch (e)` sees it: `#{ kind, message, target }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct PrimitiveError {
    /// What kind of failure it was.
    pub kind: ErrorKind,
    /// A readable, lowercase sentence naming the thing and the place.
    pub message: String,
    /// The resource key or URL the call was aimed at, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The service's request id (for example ARM's `x-ms-request-id`), for support tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl PrimitiveError {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PrimitiveError { kind, message: message.into(), target: None, request_id: None }
    }
    /// The same error, naming its target.
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
    /// Shorthand for an `invalid` error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
}
