//! One run's live state, shared by every host function: journal, plan, undo stack, stop flag.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, EvalAltResult, FnPtr, Position};
use tokio_util::sync::CancellationToken;

use super::Reporter;
use super::modules::Loaded;
use crate::model::{ErrorKind, PrimitiveError};
use crate::providers::{CallCx, WriteAhead};
use crate::run::{Event, Journal, PlanEntry};

/// The deadline of the `parallel` item this thread is evaluating: its clock and the clock
/// reading past which the item is out of time. Thread-local because each item runs on its own
/// worker thread, and the shared Rhai engine's progress hook must see only its own item's.
#[derive(Clone)]
pub(crate) struct ItemDeadline {
    pub clock: Arc<dyn crate::providers::Clock>,
    pub at: Duration,
}

impl ItemDeadline {
    /// Whether the item is out of time.
    pub(super) fn passed(&self) -> bool {
        self.clock.now() >= self.at
    }
}

thread_local! {
    static ITEM_DEADLINE: std::cell::RefCell<Option<ItemDeadline>> = const { std::cell::RefCell::new(None) };
}

/// Sets (or clears) the deadline of the item this thread evaluates.
pub(crate) fn set_item_deadline(deadline: Option<ItemDeadline>) {
    ITEM_DEADLINE.with(|d| *d.borrow_mut() = deadline);
}

/// The deadline of the item this thread evaluates, if any.
pub(crate) fn item_deadline() -> Option<ItemDeadline> {
    ITEM_DEADLINE.with(|d| d.borrow().clone())
}

/// Why the engine ended a script: the word a terminated script carries, one per reason, so
/// the reasons are matched as values and never as loose strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Termination {
    /// The run exceeded its `--timeout`.
    Timeout,
    /// The operator cancelled the run (and chose to undo).
    Cancelled,
    /// The operator interrupted the run (Ctrl-C, SIGTERM): it stays resumable.
    Interrupted,
    /// A `parallel` item ran past its own `timeout` (only that item stops).
    ItemTimeout,
    /// The run used up its operations budget.
    LimitOperations,
    /// The run's data grew beyond its memory limit.
    LimitMemory,
}

impl Termination {
    const ALL: [Termination; 6] = [
        Termination::Timeout,
        Termination::Cancelled,
        Termination::Interrupted,
        Termination::ItemTimeout,
        Termination::LimitOperations,
        Termination::LimitMemory,
    ];

    /// The word the terminated script carries.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Termination::Timeout => "timeout",
            Termination::Cancelled => "cancelled",
            Termination::Interrupted => "interrupted",
            Termination::ItemTimeout => "item_timeout",
            Termination::LimitOperations => "limit_operations",
            Termination::LimitMemory => "limit_memory",
        }
    }

    /// The reason a terminated script carries, when it is one of the engine's (a journal
    /// failure or an `undo` stop carries its own message instead).
    pub(crate) fn of(reason: &Dynamic) -> Option<Termination> {
        let word = reason.to_string();
        Termination::ALL.into_iter().find(|t| t.as_str() == word)
    }

    /// The error that ends a script for this reason.
    pub(crate) fn error(self, pos: Position) -> Box<EvalAltResult> {
        EvalAltResult::ErrorTerminated(Dynamic::from(self.as_str().to_string()), pos).into()
    }
}

impl From<Termination> for Dynamic {
    fn from(t: Termination) -> Dynamic {
        Dynamic::from(t.as_str().to_string())
    }
}

/// The error message that stops a script under `rollbook undo`.
pub(crate) const UNDO_STOP: &str = "stopped to undo the run (rollbook undo)";

/// Why the script must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Running = 0,
    Cancelled = 1,
    TimedOut = 2,
    /// The operator asked to stop (Ctrl-C, SIGTERM): stop at the next safe point, resumable.
    Interrupted = 3,
}

thread_local! {
    /// Operations counted on this thread but not yet added to the run's budget.
    static PENDING_OPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Operations since this thread last looked at the process's memory.
    static SINCE_MEMORY: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// How many `parallel` calls enclose the code this thread runs.
    static PARALLEL_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many `parallel` calls enclose the code this thread runs.
pub(crate) fn parallel_depth() -> usize {
    PARALLEL_DEPTH.with(|d| d.get())
}

/// Sets how many `parallel` calls enclose the code this thread runs.
pub(crate) fn set_parallel_depth(depth: usize) {
    PARALLEL_DEPTH.with(|d| d.set(depth));
}

/// One budget per run, shared by every evaluation in it (the script, each `parallel` item on
/// any thread, each undo): operations, and growth of the process's memory.
pub(crate) struct Budget {
    max_operations: u64,
    used: AtomicU64,
    /// Bytes the process may grow by while the run's script is evaluated; 0: unchecked.
    max_memory: u64,
    /// Resident memory when the run (or its undo) started; 0 where it cannot be read.
    baseline: AtomicU64,
    last_memory_check: Mutex<Instant>,
    /// Worker threads of `parallel` batches alive now, across the whole run.
    pub threads: std::sync::atomic::AtomicUsize,
    /// See [`super::Limits::max_parallel_threads`].
    pub max_threads: usize,
    /// See [`super::Limits::max_concurrency`].
    pub max_concurrency: usize,
    /// See [`super::Limits::max_parallel_nesting`].
    pub max_nesting: usize,
}

impl Budget {
    pub(super) fn new(limits: &super::Limits) -> Budget {
        Budget {
            max_operations: limits.max_operations,
            used: AtomicU64::new(0),
            max_memory: limits.max_memory,
            max_threads: limits.max_parallel_threads,
            max_concurrency: limits.max_concurrency,
            max_nesting: limits.max_parallel_nesting,
            baseline: AtomicU64::new(resident_bytes().unwrap_or(0)),
            last_memory_check: Mutex::new(Instant::now()),
            threads: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Takes a worker thread from the run's pool, if one is free.
    pub(super) fn take_thread(&self) -> bool {
        self.threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.max_threads).then_some(n + 1))
            .is_ok()
    }

    /// Gives a worker thread back to the pool.
    pub(super) fn give_thread(&self) {
        self.threads.fetch_sub(1, Ordering::SeqCst);
    }

    /// Counts one operation (numbered `ops` in its own evaluation); the name of the limit it
    /// breaks, if it does.
    pub(super) fn tick(&self, ops: u64) -> Option<Termination> {
        // Rhai calls the progress hook once per operation, whatever evaluation it is in (the
        // script, a closure `filter` calls, a `parallel` item): each call is one operation.
        let _ = ops;
        let pending = PENDING_OPS.with(|p| {
            let n = p.get() + 1;
            if n >= 1024 {
                p.set(0);
                n
            } else {
                p.set(n);
                0
            }
        });
        if pending > 0 && self.used.fetch_add(pending, Ordering::Relaxed) + pending > self.max_operations {
            return Some(Termination::LimitOperations);
        }
        // Memory: the clock every 16 operations, the process's size at most every 10 ms (read
        // from /proc, whose cost grows with the threads of a fleet run).
        let every = SINCE_MEMORY.with(|c| {
            let n = c.get() + 1;
            c.set(if n >= 16 { 0 } else { n });
            n >= 16
        });
        if every && self.max_memory > 0 && self.baseline.load(Ordering::Relaxed) > 0 {
            let due = match self.last_memory_check.try_lock() {
                Ok(mut last) if last.elapsed() >= Duration::from_millis(10) => {
                    *last = Instant::now();
                    true
                }
                _ => false,
            };
            if due && self.over_memory() {
                return Some(Termination::LimitMemory);
            }
        }
        None
    }

    /// Whether the process grew beyond the run's memory limit since the run began.
    pub(super) fn over_memory(&self) -> bool {
        match (self.baseline.load(Ordering::Relaxed), resident_bytes()) {
            (base, Some(now)) if base > 0 => now.saturating_sub(base) > self.max_memory,
            _ => false,
        }
    }

    /// A fresh allowance (for the undo phase).
    pub(super) fn restart(&self) {
        self.used.store(0, Ordering::Relaxed);
        if let Some(now) = resident_bytes() {
            self.baseline.store(now, Ordering::Relaxed);
        }
    }
}

/// The process's resident memory in bytes (Linux; `None` elsewhere). Read from
/// `/proc/self/statm` (sizes in pages), not `/proc/self/status`, which the kernel builds line by
/// line from every thread: with a fleet's fifty threads that read was 1% of a run's CPU.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

/// A completed stage's declared undo.
pub(crate) struct UndoEntry {
    pub stage: String,
    pub undo: FnPtr,
}

/// Keeps the first journal failure of a run (see [`Session::journal_lost`]).
fn lose(lost: &Mutex<Option<String>>, why: &str) {
    tracing::error!("{why}");
    match lost.lock() {
        Ok(mut lost) => lost.get_or_insert_with(|| why.to_string()),
        Err(poisoned) => poisoned.into_inner().get_or_insert_with(|| why.to_string()),
    };
}

/// The barrier of a deferred write-ahead event `seq`: at once when an fsync already covered it,
/// else one fsync (shared with every other call waiting, group commit) off the async threads
/// ([`crate::run::journal::JournalSync::sync_to_async`]).
fn durable(
    sync: Arc<crate::run::journal::JournalSync>,
    seq: u64,
    written: Arc<AtomicU64>,
    lost: Arc<Mutex<Option<String>>>,
) -> WriteAhead {
    WriteAhead::new(move || {
        let (sync, written, lost) = (sync.clone(), written.clone(), lost.clone());
        async move {
            sync.sync_to_async(seq, &written).await.map_err(|e| {
                let why = format!("cannot write the journal: {e}");
                lose(&lost, &why);
                why
            })
        }
    })
}

pub(crate) struct Session {
    pub scope: crate::run::scope::Scope,
    pub locks: Option<Box<dyn crate::run::locks::LockBackend>>,
    pub dry_run: bool,
    pub yes: bool,
    pub rt: tokio::runtime::Handle,
    pub reporter: Arc<dyn Reporter>,
    pub timeout: Option<Duration>,
    journal: Mutex<Journal>,
    /// fsyncs the journal for every thread (group commit); an error keeps the run from acting.
    syncer: Result<Arc<crate::run::journal::JournalSync>, String>,
    /// The newest sequence number written to the journal.
    written: Arc<AtomicU64>,
    cx: Mutex<CallCx>,
    stop: AtomicU8,
    /// Cancelled by an interrupt: waits and reads end at once; a mutating call in flight
    /// finishes first (the safe point), so its outcome is journaled, not left in doubt.
    interrupt: Mutex<CancellationToken>,
    /// Operations, memory and worker threads, shared by every evaluation of the run.
    pub budget: Budget,
    /// Whether an interrupt may ask the operator (off for SIGTERM: leave the run resumable).
    pub ask_on_interrupt: AtomicBool,
    pub plan: Mutex<Vec<PlanEntry>>,
    pub undo_stack: Mutex<Vec<UndoEntry>>,
    stages: Mutex<Vec<String>>,
    call_seq: AtomicU64,
    pub denied: AtomicBool,
    pub main_ast: Mutex<Option<AST>>,
    /// What an interrupted run already did, when this run resumes it.
    pub replay: Option<Mutex<crate::run::replay::Replay>>,
    /// Set when the run must stop for a person (a call in doubt that no check can settle).
    pub needs_person: Mutex<Option<String>>,
    pub loaded: Loaded,
    pub started: Instant,
    /// `rollbook undo`: the script replays completed stages and stops at the first step that
    /// would act, so their undos run.
    pub undo_only: AtomicBool,
    /// `--break-glass REASON`: every approval is granted for this reason.
    pub break_glass: std::sync::OnceLock<String>,
    /// The first journal write that failed: the journal no longer tells the whole run, so
    /// the run cannot end as if it did (a person must look).
    journal_lost: Arc<Mutex<Option<String>>>,
}

/// The error that ends a script whose journal cannot be written. Not catchable: a run that
/// cannot write down what it does must not go on acting.
pub(crate) fn journal_failure(why: String, pos: Position) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(format!("journal: {why}")), pos).into()
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        scope: crate::run::scope::Scope,
        locks: Option<Box<dyn crate::run::locks::LockBackend>>,
        journal: Journal,
        cx: CallCx,
        dry_run: bool,
        yes: bool,
        reporter: Arc<dyn Reporter>,
        timeout: Option<Duration>,
        loaded: Loaded,
        replay: Option<crate::run::replay::Replay>,
        budget: Budget,
    ) -> Session {
        Session {
            scope,
            locks,
            dry_run,
            yes,
            rt: tokio::runtime::Handle::current(),
            reporter,
            timeout,
            syncer: journal.syncer().map(Arc::new).map_err(|e| format!("cannot fsync the journal: {e}")),
            written: Arc::new(AtomicU64::new(0)),
            journal: Mutex::new(journal),
            cx: Mutex::new(cx),
            stop: AtomicU8::new(Stop::Running as u8),
            interrupt: Mutex::new(CancellationToken::new()),
            budget,
            ask_on_interrupt: AtomicBool::new(true),
            plan: Mutex::new(Vec::new()),
            undo_stack: Mutex::new(Vec::new()),
            stages: Mutex::new(Vec::new()),
            call_seq: AtomicU64::new(0),
            denied: AtomicBool::new(false),
            main_ast: Mutex::new(None),
            replay: replay.map(Mutex::new),
            needs_person: Mutex::new(None),
            loaded,
            started: Instant::now(),
            undo_only: AtomicBool::new(false),
            break_glass: std::sync::OnceLock::new(),
            journal_lost: Arc::new(Mutex::new(None)),
        }
    }

    /// Journals an event (flushed; fsynced when write-ahead, before this returns), then shows it.
    /// The fsync happens outside the journal's lock, so the calls of a `parallel` batch share
    /// fsyncs (group commit) instead of queueing one each behind the lock.
    pub(super) fn record(&self, event: Event) -> Result<(), String> {
        self.record_then(event, false).map(|_| ())
    }

    /// As [`Session::record`], but a write-ahead event is not fsynced here: the returned
    /// barrier makes it durable, and the call must await it before it changes anything (see
    /// [`crate::providers::write_ahead`]). A failure of that fsync is kept as the run's lost
    /// journal, as a failed write is.
    pub(super) fn record_deferred(&self, event: Event) -> Result<Option<WriteAhead>, String> {
        self.record_then(event, true)
    }

    fn record_then(&self, mut event: Event, defer: bool) -> Result<Option<WriteAhead>, String> {
        let written = match self.journal.lock() {
            Ok(mut j) => {
                // Redacted once here, so what is shown is exactly what is journaled.
                j.redactor().event(&mut event);
                j.write_redacted(&event).map_err(|e| format!("cannot write the journal: {e}"))
            }
            Err(_) => Err("the journal is unavailable".to_string()),
        };
        let result = written.and_then(|(seq, write_ahead)| {
            self.written.fetch_max(seq, Ordering::SeqCst);
            if !write_ahead {
                return Ok(None);
            }
            let sync = match &self.syncer {
                Ok(sync) => sync.clone(),
                Err(why) => return Err(format!("cannot write the journal: {why}")),
            };
            if defer {
                return Ok(Some(durable(sync, seq, self.written.clone(), self.journal_lost.clone())));
            }
            sync.sync_to(seq, &self.written)
                .map(|()| None)
                .map_err(|e| format!("cannot write the journal: {e}"))
        });
        self.reporter.event(&event);
        if let Err(why) = &result {
            lose(&self.journal_lost, why);
        }
        result
    }

    /// The first journal write that failed in this run, if any did.
    pub(super) fn journal_lost(&self) -> Option<String> {
        match self.journal_lost.lock() {
            Ok(lost) => lost.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn interrupt_token(&self) -> CancellationToken {
        match self.interrupt.lock() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(super) fn journal_path(&self) -> std::path::PathBuf {
        self.journal.lock().map(|j| j.path().to_path_buf()).unwrap_or_default()
    }

    pub(super) fn cx(&self) -> CallCx {
        match self.cx.lock() {
            Ok(cx) => cx.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(super) fn stop_state(&self) -> Stop {
        match self.stop.load(Ordering::Relaxed) {
            1 => Stop::Cancelled,
            2 => Stop::TimedOut,
            3 => Stop::Interrupted,
            _ => Stop::Running,
        }
    }

    /// Stops the script: the next operation or blocked primitive ends it.
    pub(super) fn stop(&self, why: Stop) {
        // A cancel by the operator wins over a timeout; neither is undone by the other.
        let _ =
            self.stop.compare_exchange(Stop::Running as u8, why as u8, Ordering::SeqCst, Ordering::SeqCst);
        if why == Stop::Cancelled {
            self.stop.store(Stop::Cancelled as u8, Ordering::SeqCst);
        }
        self.interrupt_token().cancel();
        if why != Stop::Interrupted {
            self.cx().cancel.cancel();
        }
    }

    /// Starts a fresh time budget for undo after a failed run (not after a cancel).
    pub(super) fn begin_undo_phase(self: &Arc<Self>, budget: Duration) -> CancellationToken {
        let token = CancellationToken::new();
        // The undos themselves must act, also under `rollbook undo`.
        self.undo_only.store(false, Ordering::SeqCst);
        if let Ok(mut cx) = self.cx.lock() {
            cx.cancel = token.clone();
        }
        if let Ok(mut i) = self.interrupt.lock() {
            *i = CancellationToken::new();
        }
        // The undo gets its own operations and memory allowance: a script stopped by a limit
        // must still be able to undo.
        self.budget.restart();
        self.stop.store(Stop::Running as u8, Ordering::SeqCst);
        self.arm_timer(budget, token.clone());
        token
    }

    /// Stops the run when `after` has passed, unless `token` is cancelled first.
    pub(super) fn arm_timer(self: &Arc<Self>, after: Duration, token: CancellationToken) {
        let me = Arc::downgrade(self);
        self.rt.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(after) => {
                    if let Some(s) = me.upgrade() { s.stop(Stop::TimedOut); }
                }
                _ = token.cancelled() => {}
            }
        });
    }

    /// Under `rollbook undo`: the error that stops the script at the first step that would act
    /// (`None` otherwise), so the completed stages' undos run next.
    pub(super) fn undo_stop(&self, what: &str, pos: Position) -> Option<Box<EvalAltResult>> {
        if !self.undo_only.load(Ordering::SeqCst) {
            return None;
        }
        if let Err(why) = self.record(Event::Log {
            level: "info".into(),
            message: format!("undo: stopping before {what}; undoing the completed stages"),
        }) {
            return Some(journal_failure(why, pos));
        }
        Some(EvalAltResult::ErrorRuntime(Dynamic::from(UNDO_STOP.to_string()), pos).into())
    }

    /// As [`Session::undo_stop`], but only once `rollbook undo` has replayed every stage the
    /// run completed: before that, reads and waits lead to the stages whose undos must run;
    /// after it, anything (a read, a wait, a sleep) belongs to the part of the run that never
    /// happened.
    pub(super) fn undo_stop_past_replay(&self, what: &str, pos: Position) -> Option<Box<EvalAltResult>> {
        if !self.undo_only.load(Ordering::SeqCst) {
            return None;
        }
        let left = self.replay.as_ref().and_then(|r| r.lock().ok().map(|r| r.stages_left())).unwrap_or(0);
        if left > 0 { None } else { self.undo_stop(what, pos) }
    }

    /// The error that ends the script for the current stop reason.
    pub(super) fn terminated(&self, pos: Position) -> Box<EvalAltResult> {
        match self.stop_state() {
            Stop::TimedOut => Termination::Timeout,
            Stop::Interrupted => Termination::Interrupted,
            _ => Termination::Cancelled,
        }
        .error(pos)
    }

    /// Waits for `fut` on the runtime, giving up when the run is stopped or, inside a
    /// `parallel` item, when the item's time is up (a `timeout` error).
    pub(super) fn block_on<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, PrimitiveError>>,
    ) -> Result<T, PrimitiveError> {
        let interrupt = self.interrupt_token();
        self.block_on_mutation(async move {
            tokio::select! {
                r = fut => r,
                _ = interrupt.cancelled() => Err(PrimitiveError::new(ErrorKind::Cancelled, "the run was interrupted")),
            }
        })
    }

    /// As [`Session::block_on`], for a mutating call: an interrupt lets it finish (its outcome
    /// is journaled); a timeout or a hard stop still ends it.
    pub(super) fn block_on_mutation<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, PrimitiveError>>,
    ) -> Result<T, PrimitiveError> {
        let token = self.cx().cancel;
        let deadline = item_deadline();
        self.rt.block_on(async move {
            let item_timer = async {
                match deadline {
                    Some(d) => d.clock.sleep(d.at.saturating_sub(d.clock.now())).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = fut => r,
                _ = token.cancelled() => Err(PrimitiveError::new(ErrorKind::Cancelled, "the run was stopped")),
                _ = item_timer => Err(PrimitiveError::new(ErrorKind::Timeout, "the parallel item ran past its `timeout`")),
            }
        })
    }

    pub(super) fn next_call(&self) -> u64 {
        self.call_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(super) fn current_stage(&self) -> Option<String> {
        self.stages.lock().ok().and_then(|s| s.last().cloned())
    }

    pub(super) fn push_stage(&self, name: &str) {
        if let Ok(mut s) = self.stages.lock() {
            s.push(name.to_string());
        }
    }

    pub(super) fn pop_stage(&self) {
        if let Ok(mut s) = self.stages.lock() {
            s.pop();
        }
    }

    /// The main AST plus every loaded module's functions: closures can be called from it later.
    pub(super) fn deferred_ast(&self) -> AST {
        let mut ast = self
            .main_ast
            .lock()
            .ok()
            .and_then(|a| a.as_ref().map(AST::clone_functions_only))
            .unwrap_or_default();
        if let Ok(asts) = self.loaded.asts.lock() {
            for module in asts.iter() {
                ast.combine_filtered(module.clone(), |_, _, _, _, _| true);
            }
        }
        ast
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_bytes_is_what_the_kernel_calls_vmrss() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let vmrss: u64 = line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024;
        let ours = resident_bytes().unwrap();
        // Read a moment apart from a process that allocates: the same counter, nearly.
        assert!(ours.abs_diff(vmrss) < 8 << 20, "statm {ours} vs VmRSS {vmrss}");
        assert!(ours > 1 << 20, "{ours}");
    }

    /// A session whose journal is `/dev/full`: every write fails with "no space left".
    fn session_on_a_full_disk() -> Session {
        let file =
            std::fs::OpenOptions::new().append(true).open("/dev/full").expect("/dev/full exists on linux");
        Session::new(
            crate::run::scope::Scope::default(),
            None,
            Journal::over(file, "/dev/full".into()),
            CallCx::standalone(),
            false,
            false,
            Arc::new(crate::run::QuietReporter),
            None,
            Loaded::default(),
            None,
            Budget::new(&super::super::Limits::default()),
        )
    }

    #[tokio::test]
    async fn a_failed_journal_write_is_remembered_for_the_end_of_the_run() {
        let session = session_on_a_full_disk();
        let note = Event::Log { level: "print".into(), message: "hello".into() };
        let why = session.record(note).expect_err("a write to a full disk fails");
        assert!(why.contains("cannot write the journal"), "{why}");
        assert_eq!(session.journal_lost().as_deref(), Some(why.as_str()));
    }

    #[tokio::test]
    async fn an_undo_stop_that_cannot_be_journaled_ends_the_script_with_the_journal_error() {
        let session = session_on_a_full_disk();
        session.undo_only.store(true, Ordering::SeqCst);
        let err = session.undo_stop("stage `a`", Position::NONE).expect("undo stops the script");
        let EvalAltResult::ErrorTerminated(why, _) = *err else { panic!("not a termination: {err}") };
        assert!(why.to_string().starts_with("journal: cannot write the journal"), "{why}");
    }
}
