//! Paged lists: `{"value": [...], "nextLink": ...}` with `$top` and `$skiptoken`.

use serde_json::{Value, json};

use super::error::ArmError;
use super::request::Req;

/// Items per page of every paged list (small on purpose, so clients must follow `nextLink`).
pub(crate) const PAGE_SIZE: usize = 2;

/// One page of `items`, honouring `$top` (a cap on the whole listing) and `$skiptoken`:
/// `{"value": [...], "nextLink": ...}` (no `nextLink` on the last page).
pub(crate) fn page(req: &Req, items: Vec<Value>) -> Result<Value, ArmError> {
    let total = match req.top()? {
        Some(top) => top.min(items.len()),
        None => items.len(),
    };
    let start = req.skip().min(total);
    let end = (start + PAGE_SIZE).min(total);
    let value: Vec<Value> = items[start..end].to_vec();
    let mut body = json!({ "value": value });
    if end < total {
        body["nextLink"] = Value::String(req.next_link(end));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use axum::http::Method;

    use super::*;

    #[test]
    fn pages_carry_an_absolute_next_link_with_the_query_kept() {
        let req = Req {
            method: Method::GET,
            segs: vec!["subscriptions".into(), "s".into(), "a b".into()],
            lower: vec!["subscriptions".into(), "s".into(), "a b".into()],
            query: vec![("api-version".into(), "2025-04-01".into()), ("$top".into(), "3".into())],
            api_version: "2025-04-01".into(),
            base: "http://127.0.0.1:1".into(),
            body: Bytes::new(),
        };
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let p = page(&req, items).unwrap();
        assert_eq!(p["value"], json!([0, 1]));
        assert_eq!(
            p["nextLink"],
            "http://127.0.0.1:1/subscriptions/s/a%20b?api-version=2025-04-01&%24top=3&%24skiptoken=2"
        );
    }
}
