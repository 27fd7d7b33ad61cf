//! The record of every request the simulator served, in arrival order, for test assertions.

use std::sync::Mutex;

use serde::Serialize;

/// Longest body kept in the record.
const BODY_CAP: usize = 64 * 1024;

/// One request as the simulator saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Status answered; `None` when the connection was dropped or the answer is still pending.
    pub status: Option<u16>,
    /// Request body (UTF-8, lossy) for methods other than GET and HEAD.
    pub body: Option<String>,
    /// Whether an injected fault (status, drop or latency) shaped the answer.
    pub fault: bool,
    /// Whether the connection was closed without an answer.
    pub dropped: bool,
}

/// The shared, append-only request record.
#[derive(Debug, Default)]
pub struct Recorder {
    entries: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an arriving request; returns its index for [`Recorder::finish`].
    pub fn start(&self, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> usize {
        let body = (!matches!(method, "GET" | "HEAD")).then(|| {
            let text = String::from_utf8_lossy(&body[..body.len().min(BODY_CAP)]);
            text.into_owned()
        });
        let mut e = self.lock();
        e.push(RecordedRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.map(String::from),
            status: None,
            body,
            fault: false,
            dropped: false,
        });
        e.len() - 1
    }

    /// Completes a record with how it was answered.
    pub fn finish(&self, index: usize, status: Option<u16>, fault: bool, dropped: bool) {
        if let Some(r) = self.lock().get_mut(index) {
            r.status = status;
            r.fault = fault;
            r.dropped = dropped;
        }
    }

    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }
}
