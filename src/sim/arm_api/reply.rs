//! An ARM answer before the router adds the headers every answer carries.

use axum::http::{HeaderName, StatusCode};
use serde_json::Value;

/// An answer before the shared headers are added.
pub(crate) struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Extra headers (`Location`, `Retry-After`…).
    pub headers: Vec<(HeaderName, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// A body that is not JSON: (content type, text); wins over `body`.
    pub text: Option<(&'static str, String)>,
}

impl Reply {
    /// 200 with a JSON body.
    pub(crate) fn ok(body: Value) -> Reply {
        Reply::with(StatusCode::OK, Some(body))
    }

    /// A status with an optional JSON body.
    pub(crate) fn with(status: StatusCode, body: Option<Value>) -> Reply {
        Reply { status, headers: Vec::new(), body, text: None }
    }

    /// 200 with a text body of `content_type`.
    pub(crate) fn text(content_type: &'static str, text: String) -> Reply {
        Reply { status: StatusCode::OK, headers: Vec::new(), body: None, text: Some((content_type, text)) }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}
