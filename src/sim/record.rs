//! The record of the requests the simulator served, in arrival order, for test assertions:
//! the newest [`RECORD_CAP`] of them, so a long-lived `rollbook sim serve` stays bounded.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Longest body kept in the record.
const BODY_CAP: usize = 64 * 1024;

/// Requests kept; older ones are forgotten first.
pub const RECORD_CAP: usize = 100_000;

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

/// The shared, append-only request record (bounded: the oldest entries go first).
#[derive(Debug)]
pub struct Recorder {
    entries: Mutex<Entries>,
    cap: usize,
}

#[derive(Debug, Default)]
struct Entries {
    kept: VecDeque<RecordedRequest>,
    /// How many of the oldest were forgotten: indices stay absolute.
    forgotten: usize,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::with_cap(RECORD_CAP)
    }
}

impl Recorder {
    /// A record keeping the newest `cap` requests.
    pub fn with_cap(cap: usize) -> Recorder {
        Recorder { entries: Mutex::new(Entries::default()), cap: cap.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an arriving request; returns its index for [`Recorder::finish`].
    pub fn start(&self, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> usize {
        let body = (!matches!(method, "GET" | "HEAD")).then(|| {
            let text = String::from_utf8_lossy(&body[..body.len().min(BODY_CAP)]);
            text.into_owned()
        });
        let mut e = self.lock();
        if e.kept.len() >= self.cap {
            e.kept.pop_front();
            e.forgotten += 1;
        }
        e.kept.push_back(RecordedRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.map(String::from),
            status: None,
            body,
            fault: false,
            dropped: false,
        });
        e.forgotten + e.kept.len() - 1
    }

    /// Completes a record with how it was answered.
    pub fn finish(&self, index: usize, status: Option<u16>, fault: bool, dropped: bool) {
        let mut e = self.lock();
        let Some(at) = index.checked_sub(e.forgotten) else {
            return;
        };
        if let Some(r) = e.kept.get_mut(at) {
            r.status = status;
            r.fault = fault;
            r.dropped = dropped;
        }
    }

    /// Every request kept, in arrival order.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.lock().kept.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_finishes_by_absolute_index() {
        let r = Recorder::with_cap(3);
        let first = r.start("GET", "/a", None, b"");
        let ids: Vec<usize> = (0..4).map(|i| r.start("PATCH", &format!("/p{i}"), None, b"{}")).collect();
        assert_eq!((first, ids.clone()), (0, vec![1, 2, 3, 4]));
        r.finish(first, Some(200), false, false);
        r.finish(ids[3], Some(201), false, false);
        let all = r.all();
        let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/p1", "/p2", "/p3"]);
        assert_eq!(all[2].status, Some(201));
        assert_eq!(all[2].body.as_deref(), Some("{}"));
    }
}
