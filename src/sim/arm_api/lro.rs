//! The store of long-running operations. It knows no service: an operation carries the
//! namespace of the service that started it and an opaque payload that service reads back
//! when the operation completes.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::ids::new_uuid;

/// `Retry-After` (seconds) sent with every long-running operation.
pub(crate) const RETRY_AFTER_SECS: u32 = 1;

/// What an operation does, as its service understands it.
pub(crate) type Payload = Arc<dyn Any + Send + Sync>;

/// Progress of an [`Operation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpStatus {
    /// Still running.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped before it finished.
    Canceled,
}

impl OpStatus {
    /// ARM's word for it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OpStatus::Running => "Running",
            OpStatus::Succeeded => "Succeeded",
            OpStatus::Failed => "Failed",
            OpStatus::Canceled => "Canceled",
        }
    }
}

/// One long-running operation.
pub(crate) struct Operation {
    /// Key of the resource it changes (requests to it count as observations); empty for none.
    pub resource: String,
    /// Observations left before completion.
    pub polls_left: u32,
    /// Terminal once completed.
    pub status: OpStatus,
    /// Namespace of the service that started it.
    pub service: &'static str,
    /// What it does.
    pub payload: Payload,
    /// When it started.
    pub start: DateTime<Utc>,
    /// When it ended.
    pub end: Option<DateTime<Utc>>,
}

/// An operation whose time has come: its service applies it, then [`Ops::finish`] records how.
pub(crate) struct Due {
    /// Operation id.
    pub id: String,
    /// Namespace of its service.
    pub service: &'static str,
    /// What it does.
    pub payload: Payload,
}

/// Long-running operations by id (kept after completion so late polls still answer).
pub(crate) struct Ops {
    map: HashMap<String, Operation>,
    polls: u32,
}

impl Ops {
    /// An empty store whose operations answer "in progress" `polls` times.
    pub(crate) fn new(polls: u32) -> Ops {
        Ops { map: HashMap::new(), polls }
    }

    /// Observations an operation answers "in progress" before it completes.
    pub(crate) fn polls(&self) -> u32 {
        self.polls
    }

    /// Starts an operation on `resource` for `service` and returns its id.
    pub(crate) fn start(&mut self, resource: String, service: &'static str, payload: Payload) -> String {
        let id = new_uuid();
        let op = Operation {
            resource,
            polls_left: self.polls,
            status: OpStatus::Running,
            service,
            payload,
            start: Utc::now(),
            end: None,
        };
        self.map.insert(id.clone(), op);
        id
    }

    /// The operation `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&Operation> {
        self.map.get(id)
    }

    /// Counts one observation of every running operation on `resource`; returns those now due.
    pub(crate) fn observe(&mut self, resource: &str) -> Vec<Due> {
        let running: Vec<String> = self
            .map
            .iter()
            .filter(|(_, op)| op.status == OpStatus::Running && op.resource == resource)
            .map(|(id, _)| id.clone())
            .collect();
        running.iter().filter_map(|id| self.tick(id)).collect()
    }

    /// One observation of operation `id`: count down, or return it as due.
    pub(crate) fn tick(&mut self, id: &str) -> Option<Due> {
        let op = self.map.get_mut(id)?;
        if op.status != OpStatus::Running {
            return None;
        }
        if op.polls_left > 0 {
            op.polls_left -= 1;
            return None;
        }
        Some(Due { id: id.to_string(), service: op.service, payload: op.payload.clone() })
    }

    /// Records that a due operation completed, well or not.
    pub(crate) fn finish(&mut self, id: &str, ok: bool) {
        if let Some(op) = self.map.get_mut(id) {
            op.status = if ok { OpStatus::Succeeded } else { OpStatus::Failed };
            op.end = Some(Utc::now());
        }
    }

    /// Records that a running operation was cancelled.
    pub(crate) fn cancel(&mut self, id: &str) {
        if let Some(op) = self.map.get_mut(id) {
            op.status = OpStatus::Canceled;
            op.end = Some(Utc::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ops: &mut Ops, resource: &str) {
        for due in ops.observe(resource) {
            ops.finish(&due.id, true);
        }
    }

    #[test]
    fn operations_answer_in_progress_polls_times_then_complete() {
        let mut ops = Ops::new(2);
        let id = ops.start("r".into(), "x", Arc::new(()));
        let other = ops.start("elsewhere".into(), "x", Arc::new(()));
        let status = |ops: &Ops, id: &str| ops.get(id).map(|o| o.status);
        run(&mut ops, "r");
        run(&mut ops, "r");
        assert_eq!(status(&ops, &id), Some(OpStatus::Running));
        run(&mut ops, "r");
        assert_eq!(status(&ops, &id), Some(OpStatus::Succeeded));
        assert!(ops.get(&id).is_some_and(|o| o.end.is_some()));
        assert_eq!(status(&ops, &other), Some(OpStatus::Running), "other resources are not observed");
        assert!(ops.observe("r").is_empty(), "terminal stays terminal");

        let mut ops = Ops::new(0);
        let id = ops.start(String::new(), "x", Arc::new(()));
        assert!(ops.tick(&id).is_some());
    }
}
