//! A parsed ARM request as every service sees it, and the path/query encoding helpers.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::error::ArmError;

/// A parsed request as every service sees it.
pub(crate) struct Req {
    /// HTTP method.
    pub method: Method,
    /// Path segments, percent-decoded, original case.
    pub segs: Vec<String>,
    /// The same, lowercase (for matching).
    pub lower: Vec<String>,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// The validated api-version.
    pub api_version: String,
    /// `scheme://host:port` the client used, for absolute URLs.
    pub base: String,
    /// Raw body.
    pub body: Bytes,
}

impl Req {
    /// A query parameter by case-insensitive name.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; an empty body is `null`; anything unparsable is ARM's `InvalidRequestContent`.
    pub(crate) fn json(&self) -> Result<Value, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })
    }

    /// The body as the lenient JSON ARM reads for deployments (comments, unquoted property
    /// names, single quotes, trailing commas); an empty body is `null`.
    pub(crate) fn jsonc(&self) -> Result<Value, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        let text = String::from_utf8_lossy(&self.body);
        super::jsonc::parse(&text).map_err(|e| {
            ArmError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })
    }

    /// An absolute URL on this server for `path` with this request's api-version.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}?api-version={}", self.base, path, self.api_version)
    }

    /// This request's path, re-encoded.
    pub(crate) fn path(&self) -> String {
        self.segs.iter().map(|s| format!("/{}", encode_segment(s))).collect()
    }

    /// The absolute `nextLink` for the page starting at `offset`: this request's path and query
    /// with `$skiptoken` replaced.
    pub(crate) fn next_link(&self, offset: usize) -> String {
        let mut query = form_query(self.query.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken")));
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!("%24skiptoken={offset}"));
        format!("{}{}?{}", self.base, self.path(), query)
    }

    /// `$skiptoken` as an offset (0 when absent or not a number).
    pub(crate) fn skip(&self) -> usize {
        self.query("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// `$top` when given; a malformed one is refused as ARM refuses it.
    pub(crate) fn top(&self) -> Result<Option<usize>, ArmError> {
        match self.query("$top") {
            None => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| {
                ArmError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidQueryParameterValue",
                    format!("The value '{t}' of query parameter '$top' is invalid."),
                )
            }),
        }
    }
}

/// A percent-decoded path segment.
pub(crate) fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A path segment, percent-encoded as ARM encodes it.
pub(crate) fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'(')
    .remove(b')');

/// Decoded `key=value` pairs of a query string.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| decode_segment(&s.replace('+', " "));
            (dec(k), dec(v))
        })
        .collect()
}

fn form_query<'a>(pairs: impl Iterator<Item = &'a (String, String)>) -> String {
    pairs.map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v))).collect::<Vec<_>>().join("&")
}
