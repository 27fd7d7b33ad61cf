//! ARM's error envelope, the generic errors every service answers, and the bearer check.

use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use serde_json::{Value, json};

use super::request::Req;

/// An ARM error answer: `{"error": {"code", "message", "details"?}}` with a status.
#[derive(Debug, Clone)]
pub(crate) struct ArmError {
    /// HTTP status.
    pub status: StatusCode,
    /// PascalCase code.
    pub code: String,
    /// Human message, worded as ARM words it.
    pub message: String,
    /// Nested details (same shape).
    pub details: Vec<Value>,
    /// `additionalInfo` (for example a template violation's JSON path).
    pub additional_info: Option<Box<Value>>,
    /// Extra headers (`WWW-Authenticate`).
    pub headers: Vec<(HeaderName, String)>,
}

impl ArmError {
    /// An error with no details.
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ArmError {
        ArmError {
            status,
            code: code.to_string(),
            message: message.into(),
            details: Vec::new(),
            additional_info: None,
            headers: Vec::new(),
        }
    }

    /// Adds a nested detail `{"code", "message", "target"?}`.
    pub(crate) fn detail(mut self, code: &str, message: impl Into<String>, target: Option<&str>) -> ArmError {
        let mut d = json!({ "code": code, "message": message.into() });
        if let Some(t) = target {
            d["target"] = Value::String(t.to_string());
        }
        self.details.push(d);
        self
    }

    /// ARM's generic 404 for a tracked resource: `type_path` like `Microsoft.Web/sites/x`.
    pub(crate) fn resource_not_found(type_path: &str, group: &str) -> ArmError {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{type_path}' under resource group '{group}' was not found. \
                 For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// A 400 `BadRequest` in the provider's words.
    pub(crate) fn bad_request(message: impl Into<String>) -> ArmError {
        ArmError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// The JSON envelope.
    pub(crate) fn envelope(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        if let Some(info) = &self.additional_info {
            error["additionalInfo"] = (**info).clone();
        }
        json!({ "error": error })
    }
}

/// 405 for a known path with a method it does not take.
pub(crate) fn method_not_allowed(req: &Req) -> ArmError {
    ArmError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("The requested method '{}' is not allowed on '/{}'.", req.method, req.segs.join("/")),
    )
}

/// 404 for a path that names nothing the simulator serves.
pub(crate) fn unknown_path(req: &Req) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("The simulator has no {} operation at '/{}'.", req.method, req.segs.join("/")),
    )
}

/// ARM's bearer check: any token is accepted, but the header must be there and be `Bearer <x>`.
pub(crate) fn check_auth(headers: &HeaderMap) -> Result<(), ArmError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        let mut e = ArmError::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        );
        e.headers.push((
            header::WWW_AUTHENTICATE,
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", \
             error_description=\"The authentication failed because of missing 'Authorization' header.\""
                .into(),
        ));
        return Err(e);
    };
    let ok = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty());
    if ok {
        return Ok(());
    }
    let mut e = ArmError::new(
        StatusCode::UNAUTHORIZED,
        "AuthenticationFailedInvalidHeader",
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
    );
    e.headers.push((
        header::WWW_AUTHENTICATE,
        "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", \
         error_description=\"The authentication failed because of invalid 'Authorization' header.\""
            .into(),
    ));
    Err(e)
}
