//! What a resumed run may take from its journal instead of acting again: completed stages'
//! values, finished mutating calls' outputs, answered approvals, and the calls left in doubt
//! (started, with no outcome) that the primitive itself must check before anything is resent.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::journal::{Event, Record, RunStatus, RunbookInfo};
use crate::model::Access;

/// A mutating call that was started but has no outcome in the journal.
#[derive(Debug, Clone)]
pub struct InDoubt {
    /// The call number in the first run.
    pub call: u64,
    /// `namespace::name`.
    pub primitive: String,
    /// Its arguments (as journaled).
    pub args: Value,
    /// When it was sent.
    pub started: DateTime<Utc>,
    /// The journal line (`seq`) of its `call_started` record.
    pub seq: u64,
}

/// The journal of an interrupted run, ready to be replayed.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// (stage name, occurrence) → the stage's journaled value.
    stages: HashMap<(String, usize), Value>,
    /// (primitive, args) → outputs of finished mutating calls, in order.
    calls: HashMap<(String, String), Vec<Value>>,
    /// (primitive, args) → calls in doubt.
    in_doubt: HashMap<(String, String), Vec<InDoubt>>,
    /// Approval message → answers given, in order.
    approvals: HashMap<String, Vec<bool>>,
    /// How many times each (stage) / (call) key was seen during this replay.
    seen_stages: HashMap<String, usize>,
    seen_calls: HashMap<(String, String), usize>,
    seen_approvals: HashMap<String, usize>,
    /// Stage name → how many of its undos already succeeded (an earlier undo attempt).
    undone: HashMap<String, usize>,
}

/// Why a journal cannot be resumed.
pub fn resumable(records: &[Record]) -> Result<(RunbookInfo, Value, bool, bool), String> {
    resumable_after(records, &[])
}

/// As [`resumable`], also accepting a run that ended with one of `ended` (a denied run that
/// `resume --yes` continues, a failed or stopped run that `undo` undoes).
pub fn resumable_after(
    records: &[Record],
    ended: &[RunStatus],
) -> Result<(RunbookInfo, Value, bool, bool), String> {
    let Some(Event::RunStarted { runbook, params, dry_run, yes, .. }) = records.first().map(|r| &r.event)
    else {
        return Err("the journal does not start with a run".into());
    };
    let status = records.iter().rev().find_map(|r| match &r.event {
        Event::RunFinished { status, .. } => Some(*status),
        _ => None,
    });
    if let Some(status) =
        status.filter(|s| !matches!(s, RunStatus::Incomplete | RunStatus::Interrupted) && !ended.contains(s))
    {
        let hint = match status {
            RunStatus::Denied => {
                "; continue it with `rollbook resume <id> --yes`, or undo it with `rollbook undo <id>`"
            }
            RunStatus::Succeeded => "",
            _ => "; undo what it left with `rollbook undo <id>`",
        };
        return Err(format!("the run already ended ({}); there is nothing to resume{hint}", status.as_str()));
    }
    Ok((runbook.clone(), params.clone(), *dry_run, *yes))
}

fn key(primitive: &str, args: &Value) -> (String, String) {
    (primitive.to_string(), args.to_string())
}

impl Replay {
    /// Builds the replay of a journal's records.
    pub fn from_records(records: &[Record]) -> Replay {
        let mut replay = Replay::default();
        let mut started: BTreeMap<u64, (String, Value, DateTime<Utc>, u64)> = BTreeMap::new();
        let mut stage_counts: HashMap<String, usize> = HashMap::new();
        let mut approval_counts: HashMap<String, Vec<bool>> = HashMap::new();
        for r in records {
            match &r.event {
                Event::CallStarted { call, primitive, access: Access::Mutate, args, .. } => {
                    started.insert(*call, (primitive.clone(), args.clone(), r.ts, r.seq));
                }
                Event::CallFinished { call, ok, output, .. } => {
                    if let Some((primitive, args, _, _)) = started.remove(call)
                        && *ok
                    {
                        replay
                            .calls
                            .entry(key(&primitive, &args))
                            .or_default()
                            .push(output.clone().unwrap_or(Value::Null));
                    }
                }
                // A call whose outcome was decided by checking (after an earlier resume).
                Event::CallVerified { call, applied: Some(true), output, .. } => {
                    if let Some((primitive, args, _, _)) = started.remove(call) {
                        replay
                            .calls
                            .entry(key(&primitive, &args))
                            .or_default()
                            .push(output.clone().unwrap_or(Value::Null));
                    }
                }
                Event::CallVerified { call, applied: Some(false), .. } => {
                    started.remove(call);
                }
                Event::StageFinished { stage, ok: true, value, .. } => {
                    let n = stage_counts.entry(stage.clone()).or_default();
                    replay.stages.insert(
                        (stage.clone(), *n),
                        value
                            .as_deref()
                            .map(|v| serde_json::from_str(v.get()).unwrap_or(Value::Null))
                            .unwrap_or(Value::Null),
                    );
                    *n += 1;
                }
                Event::StageFinished { stage, ok: false, .. } => {
                    *stage_counts.entry(stage.clone()).or_default() += 1;
                }
                Event::UndoFinished { stage, ok: true, .. } => {
                    *replay.undone.entry(stage.clone()).or_default() += 1;
                }
                Event::Approval { message, approved, .. } => {
                    approval_counts.entry(message.clone()).or_default().push(*approved);
                }
                _ => {}
            }
        }
        for (call, (primitive, args, ts, seq)) in started {
            replay.in_doubt.entry(key(&primitive, &args)).or_default().push(InDoubt {
                call,
                primitive,
                args,
                started: ts,
                seq,
            });
        }
        replay.approvals = approval_counts;
        replay
    }

    /// The journaled value of the next occurrence of stage `name`, if it completed.
    pub fn stage(&mut self, name: &str) -> Option<Value> {
        let n = self.seen_stages.entry(name.to_string()).or_default();
        let value = self.stages.get(&(name.to_string(), *n)).cloned();
        *n += 1;
        value
    }

    /// For the next mutating call of `primitive` with `args`: its journaled output if it
    /// finished, or the in-doubt record if it was sent without an outcome.
    pub fn call(&mut self, primitive: &str, args: &Value) -> Option<Result<Value, InDoubt>> {
        let k = key(primitive, args);
        let n = self.seen_calls.entry(k.clone()).or_default();
        let finished = self.calls.get(&k).map(Vec::len).unwrap_or(0);
        let result = if *n < finished {
            self.calls.get(&k).and_then(|v| v.get(*n)).cloned().map(Ok)
        } else {
            self.in_doubt.get_mut(&k).and_then(|v| if v.is_empty() { None } else { Some(Err(v.remove(0))) })
        };
        *n += 1;
        result
    }

    /// The answer given to the next occurrence of approval `message`, if any.
    pub fn approval(&mut self, message: &str) -> Option<bool> {
        let n = self.seen_approvals.entry(message.to_string()).or_default();
        let answer = self.approvals.get(message).and_then(|a| a.get(*n)).copied();
        *n += 1;
        answer
    }

    /// How many completed stages the replay has not reached yet (0: everything the run
    /// completed has been replayed, so whatever comes next is new).
    pub fn stages_left(&self) -> usize {
        self.stages_not_reached().len()
    }

    /// The completed stages the replay has not reached (yet), by name, sorted.
    pub fn stages_not_reached(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .stages
            .keys()
            .filter(|(name, n)| self.seen_stages.get(name).is_none_or(|seen| n >= seen))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Calls still in doubt that the replay never reached.
    pub fn unreached_in_doubt(&self) -> Vec<InDoubt> {
        self.in_doubt.values().flatten().cloned().collect()
    }
}

impl Replay {
    /// Whether a completed stage named `name` was already undone by an earlier attempt (each
    /// answer counts one undo; a stage's later occurrences are not affected by earlier ones).
    pub fn take_undone(&mut self, name: &str) -> bool {
        match self.undone.get_mut(name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Takes the call in doubt with call number `id`, or whose `call_started` record is
    /// journal line `id`, out of the replay: an operator says it did not take effect.
    pub fn assume_not_applied(&mut self, id: u64) -> Option<InDoubt> {
        let by_call = self.in_doubt.values().flatten().any(|d| d.call == id);
        for list in self.in_doubt.values_mut() {
            if let Some(i) = list.iter().position(|d| if by_call { d.call == id } else { d.seq == id }) {
                return Some(list.remove(i));
            }
        }
        None
    }

    /// Every call still in doubt (not yet reached by this replay).
    pub fn in_doubt(&self) -> Vec<InDoubt> {
        let mut all: Vec<InDoubt> = self.in_doubt.values().flatten().cloned().collect();
        all.sort_by_key(|d| d.call);
        all
    }
}
