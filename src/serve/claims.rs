//! What replicas sharing one state dir agree on through it: which alert has a run (a claim
//! file, created exclusively, so two replicas never start a run for the same alert), when a
//! route's run with given params last ended (its cooldown), and approvals waiting for an answer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a claim whose run never started (queued on a replica that died) holds.
const UNSTARTED_CLAIM: Duration = Duration::from_secs(600);

/// A claim: this run is queued or running for this alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    /// The run.
    pub run_id: String,
    /// When it was claimed.
    pub at: DateTime<Utc>,
    /// The replica.
    pub host: String,
    /// Its process.
    pub pid: u32,
}

/// A short file name for a key.
pub fn key_name(key: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
}

fn dir(state_dir: &Path, kind: &str) -> Result<PathBuf, String> {
    let d = state_dir.join("serve").join(kind);
    crate::run::create_private_dir(&d).map_err(|e| format!("cannot use `{}`: {e}", d.display()))?;
    Ok(d)
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = crate::model::file::create_private_file(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `path` with `bytes` at once, or fails with `AlreadyExists`: the claim is written to a
/// temporary file first and hard-linked into place, so another replica never reads a claim that
/// is still empty (which it would take for a torn one, set aside, and claim the alert too).
fn create_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("new{}-{:x}", std::process::id(), fastrand::u32(..)));
    write_new(&tmp, bytes)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Writes `bytes` to `path` through a temporary file and a rename (readers never see half).
fn write_replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}-{:x}", std::process::id(), fastrand::u32(..)));
    write_new(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Whether the claimed run is still queued or running (or was stopped without ending: then
/// it waits for `rollbook resume` and the alert must not start another).
fn live(state_dir: &Path, claim: &Claim) -> bool {
    let journal = crate::run::journal::journal_path(state_dir, &claim.run_id);
    match crate::run::journal::read_journal(&journal) {
        Ok(read) => crate::run::journal::summarize(&read.records).is_none_or(|s| s.status == "incomplete"),
        Err(_) => (Utc::now() - claim.at).to_std().map(|age| age < UNSTARTED_CLAIM).unwrap_or(true),
    }
}

/// Claims `key` for `run_id`; `Err(run id)` when a live run has it already.
pub fn claim(state_dir: &Path, key: &str, run_id: &str) -> Result<Result<(), String>, String> {
    let path = dir(state_dir, "claims")?.join(key_name(key));
    let me = Claim {
        run_id: run_id.into(),
        at: Utc::now(),
        host: crate::run::current_host(),
        pid: std::process::id(),
    };
    let bytes = serde_json::to_vec(&me).map_err(|e| e.to_string())?;
    for _ in 0..3 {
        match create_whole(&path, &bytes) {
            Ok(()) => return Ok(Ok(())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let existing =
                    std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Claim>(&b).ok());
                match existing {
                    Some(c) if live(state_dir, &c) => return Ok(Err(c.run_id)),
                    // A stale claim (its run ended) or a torn one: set it aside, then try again.
                    _ => {
                        let aside = path.with_extension(format!("stale{:x}", fastrand::u64(..)));
                        if std::fs::rename(&path, &aside).is_ok() {
                            let _ = std::fs::remove_file(aside);
                        }
                    }
                }
            }
            Err(e) => return Err(format!("cannot claim an alert in `{}`: {e}", path.display())),
        }
    }
    Err(format!("cannot claim an alert in `{}`: it keeps changing", path.display()))
}

/// Drops the claim on `key` if `run_id` holds it.
pub fn release(state_dir: &Path, key: &str, run_id: &str) {
    let Ok(d) = dir(state_dir, "claims") else { return };
    let path = d.join(key_name(key));
    let held = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Claim>(&b).ok())
        .is_some_and(|c| c.run_id == run_id);
    if held {
        let _ = std::fs::remove_file(path);
    }
}

/// When a run with `key` (route and params) last ended, if one did.
pub fn last_ended(state_dir: &Path, key: &str) -> Option<DateTime<Utc>> {
    let path = dir(state_dir, "cooldown").ok()?.join(key_name(key));
    let text = std::fs::read_to_string(path).ok()?;
    DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// Records that a run with `key` ended now.
pub fn ended(state_dir: &Path, key: &str) {
    if let Ok(d) = dir(state_dir, "cooldown") {
        let _ = write_replace(&d.join(key_name(key)), Utc::now().to_rfc3339().as_bytes());
    }
}

/// An approval a run waits for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// What is asked.
    pub message: String,
    /// Who may answer (empty: anyone).
    pub approvers: Vec<String>,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// An answer to a pending approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// Yes or no.
    pub approved: bool,
    /// Who answered.
    pub by: String,
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
}

fn approvals(state_dir: &Path) -> Result<PathBuf, String> {
    dir(state_dir, "approvals")
}

/// Says that `run_id` waits for an answer.
pub fn ask(state_dir: &Path, run_id: &str, pending: &Pending) -> Result<(), String> {
    let d = approvals(state_dir)?;
    // An answer already there was given to this very question by a process that died before
    // it took it (a resumed run asks again): it stands.
    let bytes = serde_json::to_vec(pending).map_err(|e| e.to_string())?;
    write_replace(&d.join(format!("{run_id}.pending")), &bytes)
        .map_err(|e| format!("cannot write an approval: {e}"))
}

/// What `run_id` waits for, if anything.
pub fn pending(state_dir: &Path, run_id: &str) -> Option<Pending> {
    let d = approvals(state_dir).ok()?;
    std::fs::read(d.join(format!("{run_id}.pending"))).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Answers `run_id`'s pending approval; `Err` when it was answered already.
pub fn answer(state_dir: &Path, run_id: &str, answer: &Answer) -> Result<(), String> {
    let d = approvals(state_dir)?;
    let bytes = serde_json::to_vec(answer).map_err(|e| e.to_string())?;
    write_new(&d.join(format!("{run_id}.answer")), &bytes).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!("run `{run_id}`'s approval was answered already"),
        _ => format!("cannot write an approval: {e}"),
    })
}

/// Takes the answer to `run_id`'s approval, once there is one (and forgets the question).
pub fn take_answer(state_dir: &Path, run_id: &str) -> Option<Answer> {
    let d = approvals(state_dir).ok()?;
    let path = d.join(format!("{run_id}.answer"));
    let a: Answer = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let _ = std::fs::remove_file(d.join(format!("{run_id}.pending")));
    let _ = std::fs::remove_file(path);
    Some(a)
}

/// Forgets `run_id`'s question (the run gave up waiting).
pub fn forget(state_dir: &Path, run_id: &str) {
    if let Ok(d) = approvals(state_dir) {
        let _ = std::fs::remove_file(d.join(format!("{run_id}.pending")));
    }
}
