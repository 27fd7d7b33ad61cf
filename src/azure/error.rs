//! ARM failures: the error envelope parsed, each failure mapped to the error kinds runbooks
//! branch on, with ARM's `x-ms-request-id` kept for support tickets. No variant ever holds a token.

use std::time::Duration;

use serde::Deserialize;

use crate::model::{ErrorKind, PrimitiveError, format_duration};

/// ARM's error body: `{"error": {"code", "message", "details"}}`; the deployments swagger's
/// doubly nested `{"error": {"error": {...}}}` is tolerated too.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Envelope {
    /// PascalCase code (`ResourceNotFound`).
    #[serde(default)]
    pub code: Option<String>,
    /// ARM's message, as ARM words it.
    #[serde(default)]
    pub message: Option<String>,
    /// Nested details, same shape.
    #[serde(default)]
    pub details: Vec<Envelope>,
}

impl Envelope {
    /// Parses the envelope out of a JSON body (`None` when it has none).
    pub fn parse(body: &serde_json::Value) -> Option<Envelope> {
        let mut e = body.get("error")?;
        if let Some(inner) = e.get("error").filter(|i| i.is_object()) {
            e = inner;
        }
        serde_json::from_value(e.clone()).ok()
    }

    /// `Code: message` plus the innermost detail when it says more.
    pub fn summary(&self) -> String {
        let mut out = match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => String::new(),
        };
        let mut detail = self.details.first();
        let mut last = None;
        while let Some(d) = detail {
            last = Some(d);
            detail = d.details.first();
        }
        if let Some(d) = last
            && let Some(m) = &d.message
        {
            out.push_str(&format!(
                " ({}{m})",
                d.code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default()
            ));
        }
        out
    }
}

/// Why an ARM call failed.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// ARM answered with an error status (after retries, for 429 and 5xx).
    #[error("{}", status_message(what, *status, envelope, *attempts))]
    Status {
        /// The thing the call was about ("site `shop-web` in group `rg-shop`").
        what: String,
        /// HTTP status.
        status: u16,
        /// ARM's error envelope, when the body had one.
        envelope: Option<Box<Envelope>>,
        /// Requests sent, retries included.
        attempts: u32,
        /// `x-ms-request-id` of the last answer.
        request_id: Option<String>,
        /// `Retry-After` of the last answer, when it asked for one.
        retry_after: Option<Duration>,
    },
    /// A long-running operation ended `Failed` or `Canceled`.
    #[error("{what}: the operation ended {status}{}", envelope.as_ref().map(|e| format!(" ({})", e.summary())).unwrap_or_default())]
    OperationFailed {
        /// The thing the operation was about.
        what: String,
        /// `Failed` or `Canceled`.
        status: String,
        /// The operation's error.
        envelope: Option<Box<Envelope>>,
        /// `x-ms-request-id` of the answer that reported it.
        request_id: Option<String>,
    },
    /// No answer, or no finished operation, in time.
    #[error("{what}: no answer within {}", format_duration(*after))]
    Timeout {
        /// The thing the call was about.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// The connection failed or broke (after retries where retrying was safe).
    #[error("{what}: connection to ARM failed after {attempts} attempt(s): {reason}")]
    Transport {
        /// The thing the call was about.
        what: String,
        /// Requests sent.
        attempts: u32,
        /// The innermost cause, in words.
        reason: String,
    },
    /// No credential could give a token.
    #[error("azure credentials ({source_name}): {message}")]
    Credential {
        /// Which credential was tried.
        source_name: String,
        /// Why it failed (never the token).
        message: String,
    },
    /// A setting or an answer that cannot be used (bad endpoint, foreign operation URL).
    #[error("{0}")]
    Invalid(String),
    /// The run was cancelled while waiting.
    #[error("cancelled while waiting for ARM")]
    Cancelled,
}

fn status_message(what: &str, status: u16, envelope: &Option<Box<Envelope>>, attempts: u32) -> String {
    let phrase = match status {
        400 => "refused as invalid".to_string(),
        401 => "not authorized: the token is missing, expired or refused".to_string(),
        403 => "forbidden: the identity may not do this".to_string(),
        404 => "not found".to_string(),
        409 => "conflict: the resource is busy or in a state that refuses this".to_string(),
        412 => "conflict: the resource changed meanwhile".to_string(),
        429 => format!("throttled by ARM, gave up after {attempts} attempt(s)"),
        s if s >= 500 => format!("ARM failed with {s} after {attempts} attempt(s)"),
        s => format!("ARM answered {s}"),
    };
    match envelope {
        Some(e) => format!("{what}: {phrase} ({})", e.summary()),
        None => format!("{what}: {phrase}"),
    }
}

impl AzureError {
    /// The kind a runbook's `catch (e)` sees.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AzureError::Status { status, .. } => match status {
                400 | 405 | 422 => ErrorKind::Invalid,
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                404 | 410 => ErrorKind::NotFound,
                409 | 412 => ErrorKind::Conflict,
                408 => ErrorKind::Timeout,
                429 => ErrorKind::Throttled,
                s if *s >= 500 => ErrorKind::Server,
                _ => ErrorKind::Invalid,
            },
            AzureError::OperationFailed { .. } => ErrorKind::Conflict,
            AzureError::Timeout { .. } => ErrorKind::Timeout,
            AzureError::Transport { .. } => ErrorKind::Transport,
            AzureError::Credential { .. } => ErrorKind::Unauthorized,
            AzureError::Invalid(_) => ErrorKind::Invalid,
            AzureError::Cancelled => ErrorKind::Cancelled,
        }
    }

    /// ARM's `x-ms-request-id`, when an answer carried one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            AzureError::Status { request_id, .. } | AzureError::OperationFailed { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }

    /// How long the last answer asked us to wait before trying again, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AzureError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, for errors that have one.
    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// ARM's error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AzureError::Status { envelope, .. } | AzureError::OperationFailed { envelope, .. } => {
                envelope.as_ref().and_then(|e| e.code.as_deref())
            }
            _ => None,
        }
    }

    /// Whether the request may have taken effect although we got no success answer: a dropped
    /// connection, a timeout, 5xx, 429 or 409 (something in flight). Non-idempotent callers
    /// must look before they retry.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            AzureError::Status { status, .. } => *status == 409 || *status == 429 || *status >= 500,
            AzureError::Timeout { .. } | AzureError::Transport { .. } => true,
            _ => false,
        }
    }

    /// The same error, its `what` replaced (so messages name the thing the primitive works on).
    pub fn about(mut self, thing: impl Into<String>) -> AzureError {
        let thing = thing.into();
        match &mut self {
            AzureError::Status { what, .. }
            | AzureError::OperationFailed { what, .. }
            | AzureError::Timeout { what, .. }
            | AzureError::Transport { what, .. } => *what = thing,
            _ => {}
        }
        self
    }
}

impl From<AzureError> for PrimitiveError {
    fn from(e: AzureError) -> PrimitiveError {
        let mut p = PrimitiveError::new(e.kind(), e.to_string());
        p.request_id = e.request_id().map(str::to_string);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(status: u16, body: serde_json::Value) -> AzureError {
        AzureError::Status {
            what: "site `web` in group `rg`".into(),
            status,
            envelope: Envelope::parse(&body).map(Box::new),
            attempts: 1,
            request_id: Some("req-1".into()),
            retry_after: None,
        }
    }

    #[test]
    fn envelope_single_and_nested() {
        let one =
            json!({"error": {"code": "ResourceNotFound", "message": "The Resource 'x' was not found."}});
        let e = Envelope::parse(&one).unwrap();
        assert_eq!(e.code.as_deref(), Some("ResourceNotFound"));
        let two = json!({"error": {"error": {"code": "DeploymentFailed", "message": "m"}}});
        assert_eq!(Envelope::parse(&two).unwrap().code.as_deref(), Some("DeploymentFailed"));
        assert_eq!(Envelope::parse(&json!({"value": []})), None);
    }

    #[test]
    fn the_official_validate_400_example_parses() {
        let path = format!(
            "{}/tests/fixtures/azure-rest-examples/resources/PostDeploymentValidateOnResourceGroup.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let example: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let e = Envelope::parse(&example["responses"]["400"]["body"]).unwrap();
        assert_eq!(e.code.as_deref(), Some("InvalidTemplateDeployment"));
        let s = e.summary();
        assert!(
            s.starts_with("InvalidTemplateDeployment: The template deployment 'my-deployment' is not valid"),
            "{s}"
        );
        assert!(s.contains("AccountNameInvalid"), "{s}");
    }

    #[test]
    fn summary_names_the_innermost_detail() {
        let body = json!({"error": {"code": "InvalidTemplateDeployment", "message": "top",
            "details": [{"code": "PreflightValidationCheckFailed", "message": "mid",
              "details": [{"code": "AccountNameInvalid", "message": "bad name"}]}]}});
        let s = Envelope::parse(&body).unwrap().summary();
        assert_eq!(s, "InvalidTemplateDeployment: top (AccountNameInvalid: bad name)");
    }

    #[test]
    fn statuses_map_to_kinds() {
        for (code, kind) in [
            (400, ErrorKind::Invalid),
            (401, ErrorKind::Unauthorized),
            (403, ErrorKind::Forbidden),
            (404, ErrorKind::NotFound),
            (409, ErrorKind::Conflict),
            (429, ErrorKind::Throttled),
            (500, ErrorKind::Server),
            (503, ErrorKind::Server),
        ] {
            assert_eq!(status(code, json!({})).kind(), kind, "{code}");
        }
        let t = AzureError::Timeout { what: "w".into(), after: Duration::from_secs(5) };
        assert_eq!(t.kind(), ErrorKind::Timeout);
        let c = AzureError::Transport { what: "w".into(), attempts: 3, reason: "reset".into() };
        assert_eq!(c.kind(), ErrorKind::Transport);
    }

    #[test]
    fn primitive_error_keeps_request_id_and_reads_lowercase_first() {
        let e = status(
            404,
            json!({"error": {"code": "ResourceNotFound", "message": "The Resource was not found."}}),
        );
        let p: PrimitiveError = e.into();
        assert_eq!(p.kind, ErrorKind::NotFound);
        assert_eq!(p.request_id.as_deref(), Some("req-1"));
        assert!(
            p.message.starts_with("site `web` in group `rg`: not found (ResourceNotFound"),
            "{}",
            p.message
        );
    }

    #[test]
    fn ambiguity() {
        assert!(status(500, json!({})).is_ambiguous());
        assert!(status(409, json!({})).is_ambiguous());
        assert!(status(429, json!({})).is_ambiguous());
        assert!(!status(404, json!({})).is_ambiguous());
        assert!(!status(400, json!({})).is_ambiguous());
    }
}
