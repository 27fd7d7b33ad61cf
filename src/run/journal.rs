//! The run journal: one JSON Lines file per run, each event written and flushed before the
//! action it records (and fsynced for mutating calls), readable even with a torn last line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::model::PrimitiveError;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Completed without error.
    Succeeded,
    /// The runbook failed; completed stages were undone.
    Failed,
    /// An undo failed or could not run: a person must look.
    UndoFailed,
    /// An approval was denied.
    Denied,
    /// Stopped by the operator (Ctrl-C).
    Cancelled,
    /// A target was locked by another run.
    Locked,
    /// Still running, or the process died before it could say (no `run_finished`).
    Incomplete,
    /// Stopped by the operator (Ctrl-C, SIGTERM) and left as it was: resumable, or undoable.
    Interrupted,
}

impl RunStatus {
    /// The exit code of this outcome (docs/cli.md).
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Succeeded => 0,
            RunStatus::Failed | RunStatus::Cancelled | RunStatus::Incomplete => 1,
            RunStatus::UndoFailed | RunStatus::Interrupted => 3,
            RunStatus::Denied => 4,
            RunStatus::Locked => 5,
        }
    }
    /// The word used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::UndoFailed => "undo_failed",
            RunStatus::Denied => "denied",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Locked => "locked",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// What a run acts on: the real world, nothing (a plan), or a simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    /// Real endpoints.
    #[default]
    Real,
    /// `--dry-run`: reads only, mutations planned.
    DryRun,
    /// `--sandbox`: the built-in simulator loaded with a scenario.
    Sandbox,
}

impl RunMode {
    /// The word used in listings and `--mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Real => "real",
            RunMode::DryRun => "dry-run",
            RunMode::Sandbox => "sandbox",
        }
    }
}

/// The scenario a sandbox run was rehearsed in: a resume rebuilds the simulator from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// The scenario file (absolute).
    pub path: String,
    /// `sha256:` of its content.
    pub hash: String,
}

/// Which runbook ran, for audit and resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunbookInfo {
    /// `RUNBOOK.name` (or the file stem).
    pub name: String,
    /// `RUNBOOK.version`.
    pub version: String,
    /// The file as given.
    pub path: String,
    /// `sha256:` of the file's content.
    pub hash: String,
    /// The library the runbook belongs to, if it is in one (journals before libraries have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<LibraryInfo>,
    /// Every module the runbook imports (directly or through other modules), stdlib included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<ModuleInfo>,
}

/// Which version of a playbook library a file came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryInfo {
    /// `[library] name`.
    pub name: String,
    /// Its version (for a git dependency, the locked tag's).
    pub version: String,
    /// The git commit, for git dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The library's content hash (`sha256:`).
    pub hash: String,
}

/// A module a run imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// The import path (`std/k8s`, `platform/k8s/helpers`).
    pub id: String,
    /// `sha256:` of the module's text.
    pub hash: String,
    /// The library it came from (none for the stdlib and for files beside a lone runbook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<LibraryInfo>,
}

/// A JSON value kept as its text. An event is read through its `type` tag, which JSON text
/// cannot be read through directly: it is read as a value and written back as text.
fn raw_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    value.map(|v| serde_json::value::to_raw_value(&v).map_err(serde::de::Error::custom)).transpose()
}

/// One journal event.
// `run_started` is the one large event and comes once per run; boxing it would make every
// match on it clumsier for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The run began.
    RunStarted {
        /// Run id.
        run_id: String,
        /// Which runbook.
        runbook: RunbookInfo,
        /// Validated params (secrets redacted).
        params: Value,
        /// `--dry-run`.
        dry_run: bool,
        /// `--yes`.
        yes: bool,
        /// Who ran it.
        user: String,
        /// Where.
        host: String,
        /// Process id.
        pid: u32,
        /// rollbook's version.
        rollbook_version: String,
        /// Real, dry-run or sandbox (journals from before modes have none: real, or dry-run
        /// when `dry_run` says so).
        #[serde(default)]
        mode: RunMode,
        /// The scenario of a sandbox run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scenario: Option<ScenarioInfo>,
        /// What started the run when it was not a person at a terminal (`rollbook serve`: the
        /// alert's source, route, fingerprint or id, and labels).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<Value>,
        /// `--break-glass REASON`: every approval of the run is granted, for this reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        break_glass: Option<String>,
    },
    /// A stage began.
    StageStarted {
        /// Stage name.
        stage: String,
    },
    /// A stage ended.
    StageFinished {
        /// Stage name.
        stage: String,
        /// Whether its action succeeded.
        ok: bool,
        /// Its value (JSON), when ok. Kept as JSON text: a fleet stage's value (10,000 results)
        /// is written and read back whole, never needed as a tree until a resume replays it.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "raw_json")]
        value: Option<Box<RawValue>>,
        /// The error in words, when not ok.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Whether it declared an undo.
        has_undo: bool,
        /// How long it took.
        duration_ms: u64,
    },
    /// A primitive call is about to be sent.
    CallStarted {
        /// Call number within the run.
        call: u64,
        /// `namespace::name`.
        primitive: String,
        /// `read` or `mutate`.
        access: crate::model::Access,
        /// Resource key or URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// Arguments (secrets redacted).
        args: Value,
        /// Enclosing stage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
    },
    /// A primitive call returned.
    CallFinished {
        /// Call number.
        call: u64,
        /// `namespace::name`.
        primitive: String,
        /// Whether it succeeded.
        ok: bool,
        /// Its output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        /// Its error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<PrimitiveError>,
        /// How long it took.
        duration_ms: u64,
    },
    /// Under `--dry-run`, a mutating call that was planned and not performed.
    CallPlanned {
        /// Call number.
        call: u64,
        /// `namespace::name`.
        primitive: String,
        /// Resource key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// Arguments (secrets redacted).
        args: Value,
        /// What it would do.
        effect: String,
        /// Enclosing stage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
    },
    /// A call left in doubt by an interrupted run, checked by its primitive on resume.
    CallVerified {
        /// The call number of the original attempt.
        call: u64,
        /// `namespace::name`.
        primitive: String,
        /// `Some(true)`: it took effect; `Some(false)`: it did not; `None`: no check possible.
        applied: Option<bool>,
        /// Its output, when it took effect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        /// What the check found, in words.
        detail: String,
    },
    /// A mutating call refused before any request: outside the scope, or its target locked.
    Refused {
        /// `namespace::name`.
        primitive: String,
        /// The resource key, when the call names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// `scope` or `lock`.
        by: String,
        /// Why, in words (the error the script sees).
        reason: String,
    },
    /// One item of a `parallel` batch ended (journaled per item, never fsynced: it records an
    /// outcome, not an action about to happen).
    ParallelItem {
        /// The item's position in the input array, from 0.
        index: usize,
        /// Whether the closure returned a value.
        ok: bool,
        /// The error in words, when not ok (`timeout: …` for an item past its `timeout`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// How long the item took.
        duration_ms: u64,
    },
    /// A resumed run took a completed stage's or call's journaled value instead of acting.
    Replayed {
        /// `stage <name>`, `call <primitive>` or `approval`.
        what: String,
    },
    /// The run was resumed after an interruption.
    RunResumed {
        /// The resuming process.
        pid: u32,
        /// Who resumed it.
        user: String,
        /// Where.
        host: String,
        /// Whether `--force` overrode a changed runbook.
        forced: bool,
    },
    /// `info`, `warn` or `print`.
    Log {
        /// `info`, `warn`.
        level: String,
        /// The message.
        message: String,
    },
    /// An approval was asked (or planned, under dry-run).
    Approval {
        /// What was asked.
        message: String,
        /// The answer.
        approved: bool,
        /// `terminal`, `--yes`, `server` (`rollbook serve`'s approval endpoint), `break-glass`,
        /// `no terminal`, `timeout` or `dry-run`.
        by: String,
        /// The OS user who answered (on the terminal, or who ran with `--yes`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// Who may approve (kept for `rollbook serve`; a terminal or `--yes` answers as today).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        approvers: Vec<String>,
        /// How long the approval waited at most, when it had a `timeout`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
        /// What the person who answered through a server said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A stage's undo began.
    UndoStarted {
        /// Stage name.
        stage: String,
    },
    /// A stage's undo ended.
    UndoFinished {
        /// Stage name.
        stage: String,
        /// Whether it succeeded.
        ok: bool,
        /// The error in words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// How long it took.
        duration_ms: u64,
    },
    /// The run ended.
    RunFinished {
        /// How.
        status: RunStatus,
        /// The process exit code.
        exit_code: i32,
        /// The error in words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Stages whose undo did not run (newest first), when a person must look.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        undo_pending: Vec<String>,
        /// How long the run took.
        duration_ms: u64,
    },
}

impl Event {
    /// Whether the event must be on disk (fsync) before the action it records is performed.
    pub fn is_write_ahead(&self) -> bool {
        matches!(
            self,
            Event::CallStarted { access: crate::model::Access::Mutate, .. }
                | Event::StageStarted { .. }
                | Event::UndoStarted { .. }
                | Event::RunFinished { .. }
        )
    }
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Position in the run, from 1.
    pub seq: u64,
    /// When it was written.
    #[serde(serialize_with = "serialize_ts")]
    pub ts: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// A timestamp as chrono's serde writes it (RFC 3339 in UTC with `Z`, the fraction to 3, 6 or 9
/// digits as it needs), written directly: through chrono's `Display` and serde's `collect_str`
/// it cost some 2,500 instructions, on every line of a journal that a fleet run fills with tens
/// of thousands. Years outside 0–9999 and leap seconds go through chrono.
fn serialize_ts<S: serde::Serializer>(ts: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    use chrono::{Datelike, Timelike};
    let (year, nano) = (ts.year(), ts.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return ts.serialize(serializer);
    }
    fn digits(out: &mut [u8], mut value: u32) {
        for d in out.iter_mut().rev() {
            *d = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    let mut text = *b"0000-00-00T00:00:00.000000000Z";
    digits(&mut text[0..4], year as u32);
    digits(&mut text[5..7], ts.month());
    digits(&mut text[8..10], ts.day());
    digits(&mut text[11..13], ts.hour());
    digits(&mut text[14..16], ts.minute());
    digits(&mut text[17..19], ts.second());
    let (places, fraction) = match nano {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (3, n / 1_000_000),
        n if n % 1_000 == 0 => (6, n / 1_000),
        n => (9, n),
    };
    let mut len = 19;
    if places > 0 {
        digits(&mut text[20..20 + places], fraction);
        len = 20 + places;
    }
    text[len] = b'Z';
    // Only ASCII digits and separators were written.
    serializer.serialize_str(std::str::from_utf8(&text[..=len]).unwrap_or_default())
}

/// Appends events to a run's journal.
pub struct Journal {
    file: File,
    path: PathBuf,
    seq: u64,
    redactor: super::redact::Redactor,
    /// The line being written, kept between events: a fleet run writes tens of thousands.
    line: Vec<u8>,
}

/// The journal file of `run_id` under `state_dir`.
pub fn journal_path(state_dir: &Path, run_id: &str) -> PathBuf {
    state_dir.join("runs").join(format!("{run_id}.jsonl"))
}

impl Journal {
    /// Opens an existing run's journal to append to it (resume), continuing its numbering.
    pub fn append(state_dir: &Path, run_id: &str) -> std::io::Result<Journal> {
        let path = journal_path(state_dir, run_id);
        let read = read_journal(&path)?;
        let seq = read.records.last().map(|r| r.seq).unwrap_or(0);
        let text = std::fs::read(&path)?;
        let tail_start = text.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
        if tail_start < text.len() {
            if read.torn_tail {
                // A torn last line is cut off first, so the file stays one event per line.
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(tail_start as u64)?;
            } else {
                // A whole last record that only lacks its newline is kept: it gets one.
                let mut f = OpenOptions::new().append(true).open(&path)?;
                f.write_all(b"\n")?;
            }
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Journal { file, path, seq, redactor: Default::default(), line: Vec::new() })
    }

    /// Creates the journal of a new run (readable by its owner only).
    pub fn create(state_dir: &Path, run_id: &str) -> std::io::Result<Journal> {
        let path = journal_path(state_dir, run_id);
        if let Some(dir) = path.parent() {
            super::create_private_dir(dir)?;
        }
        let mut options = OpenOptions::new();
        options.create_new(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        Ok(Journal { file, path, seq: 0, redactor: Default::default(), line: Vec::new() })
    }

    /// A journal writing to `file` (tests: a file whose writes fail).
    #[cfg(test)]
    pub(crate) fn over(file: File, path: PathBuf) -> Journal {
        Journal { file, path, seq: 0, redactor: Default::default(), line: Vec::new() }
    }

    /// Masks these secrets in every event written from now on.
    pub fn set_redactor(&mut self, redactor: super::redact::Redactor) {
        self.redactor = redactor;
    }

    /// What this journal masks.
    pub fn redactor(&self) -> &super::redact::Redactor {
        &self.redactor
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event and flushes it; write-ahead events are also fsynced.
    pub fn write(&mut self, event: Event) -> std::io::Result<()> {
        if self.write_unsynced(event)?.1 {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes one event and flushes it to the OS without fsync; returns its sequence number and
    /// whether it is write-ahead (then the caller must [`JournalSync::sync_to`] it before acting).
    /// Lets concurrent writers share one fsync (group commit) instead of queueing one each.
    pub fn write_unsynced(&mut self, mut event: Event) -> std::io::Result<(u64, bool)> {
        self.redactor.event(&mut event);
        self.write_redacted(&event)
    }

    /// [`Journal::write_unsynced`] for an event this journal's [`Journal::redactor`] has already
    /// redacted: written as it is, without a copy.
    pub(crate) fn write_redacted(&mut self, event: &Event) -> std::io::Result<(u64, bool)> {
        /// A [`Record`] that borrows its event (the same JSON).
        #[derive(Serialize)]
        struct RecordRef<'a> {
            seq: u64,
            #[serde(serialize_with = "serialize_ts")]
            ts: DateTime<Utc>,
            #[serde(flatten)]
            event: &'a Event,
        }
        self.seq += 1;
        let record = RecordRef { seq: self.seq, ts: Utc::now(), event };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &record).map_err(std::io::Error::other)?;
        self.line.push(b'\n');
        let written = self.file.write_all(&self.line);
        // A stage's value can make one line of megabytes: that is not kept for the next event.
        if self.line.capacity() > 64 * 1024 {
            self.line = Vec::new();
        }
        written?;
        self.file.flush()?;
        Ok((self.seq, event.is_write_ahead()))
    }

    /// A handle that fsyncs this journal, shared by the threads writing to it.
    pub fn syncer(&self) -> std::io::Result<JournalSync> {
        Ok(JournalSync {
            file: self.file.try_clone()?,
            synced: std::sync::Mutex::new(self.seq),
            synced_hint: std::sync::atomic::AtomicU64::new(self.seq),
            leading: std::sync::atomic::AtomicBool::new(false),
            led: tokio::sync::Notify::new(),
            leads: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

/// Group commit of a journal: one fsync makes every event written before it durable, so a
/// thread whose event an fsync already covered does not fsync again.
pub struct JournalSync {
    file: File,
    synced: std::sync::Mutex<u64>,
    /// The last value of `synced`, readable without waiting for an fsync in progress.
    synced_hint: std::sync::atomic::AtomicU64,
    /// Whether an fsync of [`JournalSync::sync_to_async`] is under way.
    leading: std::sync::atomic::AtomicBool,
    /// Told when that fsync has ended.
    led: tokio::sync::Notify,
    /// How many fsyncs [`JournalSync::sync_to_async`] has led.
    leads: std::sync::atomic::AtomicU64,
}

impl JournalSync {
    /// Whether every event up to `seq` is already durable (without waiting for anything).
    pub fn is_synced(&self, seq: u64) -> bool {
        self.synced_hint.load(std::sync::atomic::Ordering::Acquire) >= seq
    }

    /// Makes every event up to `seq` durable; `written` is the newest sequence number written
    /// so far (all of which the fsync covers).
    pub fn sync_to(&self, seq: u64, written: &std::sync::atomic::AtomicU64) -> std::io::Result<()> {
        let mut synced = self.synced.lock().map_err(|_| std::io::Error::other("journal sync poisoned"))?;
        if *synced >= seq {
            return Ok(());
        }
        let upto = written.load(std::sync::atomic::Ordering::SeqCst);
        self.file.sync_data()?;
        *synced = upto.max(seq);
        self.synced_hint.store(*synced, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// [`JournalSync::sync_to`] for async callers, off the async threads: one fsync at a time
    /// runs on the blocking pool, and every caller that arrives while it runs waits for it to end
    /// and looks again (its event is covered when it was written before that fsync began; else
    /// it leads the next one). Callers do not each hold a blocking thread queued on the lock: a
    /// fleet's hundred calls in flight would otherwise start a thread apiece.
    pub async fn sync_to_async(
        self: &std::sync::Arc<Self>,
        seq: u64,
        written: &std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        loop {
            if self.is_synced(seq) {
                return Ok(());
            }
            // Registered before looking at `leading`, so the end of the fsync seen running
            // cannot be missed.
            let ended = self.led.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.leading.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                /// Ends the lead however the leader ends: also when its call is dropped (a
                /// timeout, Ctrl-C) while the fsync runs, so no waiter is left waiting for it.
                struct Lead<'a>(&'a JournalSync);
                impl Drop for Lead<'_> {
                    fn drop(&mut self) {
                        self.0.leading.store(false, Ordering::Release);
                        self.0.led.notify_waiters();
                    }
                }
                let _lead = Lead(self);
                self.leads.fetch_add(1, Ordering::Relaxed);
                let (sync, written) = (self.clone(), written.clone());
                return tokio::task::spawn_blocking(move || sync.sync_to(seq, &written))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(format!("the fsync stopped: {e}"))));
            }
            // A failed fsync leaves `seq` unsynced: the next look leads a new one, which fails
            // (or succeeds) for this caller too.
            ended.await;
        }
    }
}

/// A journal read back: its records and whether the last line was torn (a crash mid-write).
#[derive(Debug, Clone)]
pub struct JournalRead {
    /// Every whole record, in order.
    pub records: Vec<Record>,
    /// Whether a partial last line was dropped.
    pub torn_tail: bool,
}

/// Passes each line of a journal to `f`, one at a time, without holding the journal whole (a
/// fleet run's journal is tens of megabytes). Lines that are not UTF-8 (a torn last line cut
/// inside a character) are skipped; parsing, and what to make of a torn line, is the caller's.
pub fn each_line(path: &Path, mut f: impl FnMut(&str)) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if let Ok(text) = std::str::from_utf8(&line) {
            f(text);
        }
    }
}

/// Reads a journal, tolerating a torn last line; a bad line elsewhere is an error naming it.
pub fn read_journal(path: &Path) -> std::io::Result<JournalRead> {
    let bytes = std::fs::read(path)?;
    parse_journal(&bytes).map_err(|(line, why)| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}:{line}: not a journal event: {why}", path.display()),
        )
    })
}

/// Parses a journal's bytes: whole records in order, a torn (unparsable, or cut inside a
/// character) last line dropped and reported; a bad line elsewhere is `(line number, why)`.
pub fn parse_journal(bytes: &[u8]) -> Result<JournalRead, (usize, String)> {
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // After a final newline `split` yields one empty piece: the last line is the one before.
    let last = match lines.last() {
        Some([]) => lines.len().saturating_sub(2),
        _ => lines.len().saturating_sub(1),
    };
    let mut records = Vec::with_capacity(lines.len());
    let mut torn_tail = false;
    for (i, raw) in lines.iter().enumerate() {
        let parsed = std::str::from_utf8(raw).map_err(|e| e.to_string()).and_then(|line| {
            if line.trim().is_empty() {
                return Ok(None);
            }
            serde_json::from_str::<Record>(line).map(Some).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(Some(record)) => records.push(record),
            Ok(None) => {}
            Err(_) if i >= last => torn_tail = true,
            Err(e) => return Err((i + 1, e)),
        }
    }
    Ok(JournalRead { records, torn_tail })
}

/// One line of `rollbook runs list`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub id: String,
    /// Runbook name (`?` when the journal cannot be read).
    pub runbook: String,
    /// When it started (the file's time when the journal cannot be read).
    pub started: DateTime<Utc>,
    /// How it ended, `incomplete`, or `unreadable`.
    pub status: String,
    /// `real`, `dry-run` or `sandbox` (`unknown` when the journal cannot be read).
    pub mode: String,
    /// Why the journal cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The runs under `state_dir`, newest first; a journal that cannot be read is listed as
/// `unreadable` rather than left out.
pub fn list_runs(state_dir: &Path) -> std::io::Result<Vec<RunSummary>> {
    let dir = state_dir.join("runs");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut runs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let summary = match read_journal(&path) {
            Ok(read) => {
                summarize(&read.records).ok_or_else(|| "the journal does not start with a run".to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        runs.push(summary.unwrap_or_else(|why| {
            RunSummary {
                id: id.clone(),
                runbook: "?".into(),
                started: std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_else(|_| Utc::now()),
                status: "unreadable".into(),
                mode: "unknown".into(),
                error: Some(why),
            }
        }));
    }
    runs.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
    Ok(runs)
}

/// The mode a run's first record gives (journals from before modes: from `dry_run`).
pub fn mode_of(records: &[Record]) -> RunMode {
    match records.first().map(|r| &r.event) {
        Some(Event::RunStarted { dry_run: true, .. }) => RunMode::DryRun,
        Some(Event::RunStarted { mode, .. }) => *mode,
        _ => RunMode::Real,
    }
}

/// The summary of one run's records.
pub fn summarize(records: &[Record]) -> Option<RunSummary> {
    let first = records.first()?;
    let Event::RunStarted { run_id, runbook, .. } = &first.event else {
        return None;
    };
    let status = records
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::RunFinished { status, .. } => Some(*status),
            _ => None,
        })
        .unwrap_or(RunStatus::Incomplete);
    Some(RunSummary {
        id: run_id.clone(),
        runbook: runbook.name.clone(),
        started: first.ts,
        status: status.as_str().to_string(),
        mode: mode_of(records).as_str().to_string(),
        error: None,
    })
}

/// A new run id: sortable by time, unique enough across machines (`20261127T090012Z-3f9a1c`).
pub fn new_run_id() -> String {
    format!("{}-{:06x}", Utc::now().format("%Y%m%dT%H%M%SZ"), fastrand::u32(..0x100_0000))
}

pub use super::redact::is_secret_key;

/// Replaces the values of secret-looking keys, at any depth, with `"***"`, and strips the
/// credentials and queries of URLs.
pub fn redact(value: &mut Value) {
    super::redact::Redactor::default().value(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps are written exactly as chrono's serde writes them.
    #[test]
    fn a_timestamp_is_written_as_chrono_writes_it() {
        use chrono::TimeZone;
        #[derive(Serialize)]
        struct Ours(#[serde(serialize_with = "serialize_ts")] DateTime<Utc>);
        let mut stamps = vec![Utc::now(), DateTime::<Utc>::UNIX_EPOCH, DateTime::<Utc>::MAX_UTC];
        for (y, nanos) in [
            (2026, 0),
            (2026, 374_213_699),
            (2026, 374_000_000),
            (2026, 374_213_000),
            (2026, 1),
            (2026, 999_999_999),
            (2026, 10_000_000),
            (0, 5),
            (9999, 123_456_789),
            (10_000, 7),
            (-1, 7),
        ] {
            let at = Utc.with_ymd_and_hms(y, 11, 29, 21, 42, 9).unwrap();
            stamps.push(at + chrono::Duration::nanoseconds(nanos));
        }
        // A leap second (nanoseconds past one billion).
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(
            23,
            59,
            59,
            1_500_000_000,
        );
        stamps.push(Utc.from_utc_datetime(&leap.unwrap()));
        for ts in stamps {
            assert_eq!(serde_json::to_string(&Ours(ts)).unwrap(), serde_json::to_string(&ts).unwrap());
        }
    }

    fn started() -> Event {
        Event::RunStarted {
            run_id: "r1".into(),
            runbook: RunbookInfo {
                name: "x".into(),
                version: "0.0.0".into(),
                path: "x.rhai".into(),
                hash: "sha256:0".into(),
                library: None,
                modules: Vec::new(),
            },
            params: serde_json::json!({}),
            dry_run: false,
            yes: false,
            user: "u".into(),
            host: "h".into(),
            pid: 1,
            rollbook_version: "0".into(),
            mode: RunMode::Real,
            scenario: None,
            trigger: None,
            break_glass: None,
        }
    }

    #[test]
    fn journals_from_before_libraries_still_read() {
        let line = r#"{"type":"run_started","run_id":"r","runbook":{"name":"x","version":"0.0.0","path":"x.rhai","hash":"sha256:0"},"params":{},"dry_run":false,"yes":false,"user":"u","host":"h","pid":1,"rollbook_version":"0"}"#;
        let event: Event = serde_json::from_str(line).unwrap();
        let Event::RunStarted { runbook, .. } = event else { panic!("run_started") };
        assert!(runbook.library.is_none() && runbook.modules.is_empty());
    }

    /// Async callers share the fsyncs: while one runs, the others wait for it, not each on a
    /// thread of its own. A leader dropped while its fsync runs (a call timed out, Ctrl-C) does
    /// not leave the others waiting for it forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    // The fsync's lock is held here on purpose, across awaits, to hold up the fsync under way.
    #[allow(clippy::await_holding_lock)]
    async fn async_syncs_share_one_fsync_at_a_time_and_survive_a_dropped_leader() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "r1").unwrap();
        let sync = Arc::new(j.syncer().unwrap());
        let written = Arc::new(AtomicU64::new(0));
        let log = |j: &mut Journal, message: &str| {
            let (seq, _) =
                j.write_unsynced(Event::Log { level: "info".into(), message: message.into() }).unwrap();
            written.store(seq, Ordering::SeqCst);
            seq
        };
        let seqs: Vec<u64> = (0..100).map(|i| log(&mut j, &format!("{i}"))).collect();

        // The first fsync is held up (its lock taken here): every other caller arrives meanwhile.
        let held = sync.synced.lock().unwrap();
        let calls: Vec<_> = seqs
            .iter()
            .map(|&seq| {
                let (sync, written) = (sync.clone(), written.clone());
                tokio::spawn(async move { sync.sync_to_async(seq, &written).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            sync.leads.load(Ordering::SeqCst),
            1,
            "one fsync under way, the other callers waiting for it"
        );
        drop(held);
        for call in calls {
            let ended = tokio::time::timeout(Duration::from_secs(10), call).await;
            ended.expect("a caller waited forever for the fsync under way").unwrap().unwrap();
        }
        assert!(sync.is_synced(*seqs.last().unwrap()));
        assert_eq!(
            sync.leads.load(Ordering::SeqCst),
            1,
            "the first fsync covered every event written before it"
        );

        // A leader polled once (its fsync started, held up) and dropped.
        let late = log(&mut j, "late");
        let held = sync.synced.lock().unwrap();
        let dropped = tokio::time::timeout(Duration::ZERO, sync.sync_to_async(late, &written)).await;
        assert!(dropped.is_err(), "the leader was to be dropped while its fsync ran");
        drop(held);
        // Its fsync ends on the blocking pool; the next event is not covered by it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next = log(&mut j, "next");
        let waited = tokio::time::timeout(Duration::from_secs(10), sync.sync_to_async(next, &written)).await;
        assert!(waited.expect("a caller after a dropped leader waited forever").is_ok());
        assert!(sync.is_synced(next));
    }

    #[test]
    fn torn_last_line_is_tolerated_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "r1").unwrap();
        j.write(started()).unwrap();
        j.write(Event::Log { level: "info".into(), message: "hi".into() }).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"ts\":\"2026-").unwrap();
        let read = read_journal(&path).unwrap();
        assert_eq!(read.records.len(), 2);
        assert!(read.torn_tail);
        assert_eq!(summarize(&read.records).unwrap().status, "incomplete");
    }

    #[test]
    fn a_line_torn_inside_a_character_is_a_torn_tail() {
        let mut bytes = serde_json::to_vec(&Record { seq: 1, ts: Utc::now(), event: started() }).unwrap();
        bytes.extend_from_slice(b"\n{\"seq\":2,\"message\":\"\xc3");
        let read = parse_journal(&bytes).unwrap();
        assert_eq!(read.records.len(), 1);
        assert!(read.torn_tail);
    }

    #[test]
    fn a_whole_last_record_without_newline_is_read() {
        let bytes = serde_json::to_vec(&Record { seq: 1, ts: Utc::now(), event: started() }).unwrap();
        let read = parse_journal(&bytes).unwrap();
        assert_eq!(read.records.len(), 1);
        assert!(!read.torn_tail);
    }

    proptest::proptest! {
        #[test]
        fn reading_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_journal(&bytes);
        }

        #[test]
        fn a_real_journal_cut_anywhere_reads_its_whole_records(cut in 0usize..4096) {
            let mut bytes = Vec::new();
            for (i, message) in ["ä", "日本語", "plain", "🦀 crab"].iter().enumerate() {
                let record = Record {
                    seq: i as u64 + 1,
                    ts: Utc::now(),
                    event: Event::Log { level: "info".into(), message: (*message).into() },
                };
                bytes.extend(serde_json::to_vec(&record).unwrap());
                bytes.push(b'\n');
            }
            let cut = cut.min(bytes.len());
            let whole_lines = bytes[..cut].iter().filter(|b| **b == b'\n').count();
            let read = parse_journal(&bytes[..cut]);
            proptest::prop_assert!(read.is_ok());
            let read = read.unwrap();
            proptest::prop_assert!(read.records.len() == whole_lines || read.records.len() == whole_lines + 1);
        }
    }
}
