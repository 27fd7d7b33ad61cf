//! The built-ins: stage, approve, sleep, wait_until, retry, parallel, info, warn,
//! fail, plus duration helpers. Each is registered on a run's engine, bound to its session.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext, Position};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::builtin_list::{BUILTINS, Install};
use super::invoke::throw;
use super::session::{Session, UndoEntry, journal_failure};
use crate::model::{Dur, ErrorKind, PrimitiveError, parse_duration};
use crate::providers::introspect::struct_fields;
use crate::run::{Event, PlanEntry};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Stack size of threads that evaluate script code (deep but bounded recursion must not crash).
pub(crate) const SCRIPT_STACK: usize = 64 * 1024 * 1024;

/// Decodes a built-in's option map with unknown keys refused and the nearest key suggested.
fn decode_opts<T: DeserializeOwned>(what: &str, opts: Map, pos: Position) -> RhaiResult<T> {
    let keys = struct_fields::<T>();
    for key in opts.keys() {
        if !keys.contains(&key.as_str()) {
            let hint = crate::model::nearest(key, keys.iter().copied())
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_else(|| format!("; valid keys: {}", keys.join(", ")));
            return Err(throw(&PrimitiveError::invalid(format!("{what}: unknown key `{key}`{hint}")), pos));
        }
    }
    let json = super::invoke::try_to_json(&Dynamic::from_map(opts))
        .map_err(|why| throw(&PrimitiveError::invalid(format!("{what}: {why}")), pos))?;
    serde_json::from_value(json).map_err(|e| throw(&PrimitiveError::invalid(format!("{what}: {e}")), pos))
}

fn duration_arg(what: &str, value: &Dynamic, pos: Position) -> RhaiResult<Duration> {
    if let Ok(secs) = value.as_int() {
        if secs < 0 {
            return Err(throw(&PrimitiveError::invalid(format!("{what}: negative duration")), pos));
        }
        let d = Duration::from_secs(secs as u64);
        if d > crate::model::duration::MAX_DURATION {
            return Err(throw(
                &PrimitiveError::invalid(format!("{what}: {secs}s is too long: the longest allowed is 365d")),
                pos,
            ));
        }
        return Ok(d);
    }
    let text = value.clone().into_string().map_err(|t| {
        throw(&PrimitiveError::invalid(format!("{what}: expected a duration like \"30s\", found {t}")), pos)
    })?;
    parse_duration(&text).map_err(|why| throw(&PrimitiveError::invalid(format!("{what}: {why}")), pos))
}

/// The error value a script sees for a caught error.
pub(crate) fn error_value(err: &EvalAltResult) -> Dynamic {
    match err.unwrap_inner() {
        EvalAltResult::ErrorRuntime(value, _) if value.is_map() => value.clone(),
        EvalAltResult::ErrorRuntime(value, _) => value.to_string().into(),
        other => other.to_string().into(),
    }
}

/// A short description of a script error, for the journal.
pub(crate) fn describe(err: &EvalAltResult) -> String {
    match err.unwrap_inner() {
        EvalAltResult::ErrorRuntime(value, _) => {
            if let Some(map) = value.read_lock::<Map>() {
                let kind = map.get("kind").map(|k| k.to_string()).unwrap_or_default();
                let message = map.get("message").map(|m| m.to_string()).unwrap_or_else(|| value.to_string());
                if kind.is_empty() { message } else { format!("{kind}: {message}") }
            } else {
                value.to_string()
            }
        }
        EvalAltResult::ErrorTerminated(reason, _) => {
            use super::session::Termination;
            match Termination::of(reason) {
                Some(Termination::Timeout) => "the run exceeded its --timeout".into(),
                Some(Termination::Cancelled) => "cancelled by the operator".into(),
                Some(Termination::Interrupted) => "interrupted by the operator".into(),
                Some(Termination::LimitOperations) => "the run used up its operations budget".into(),
                Some(Termination::LimitMemory) => "the run's data grew beyond its memory limit".into(),
                Some(Termination::ItemTimeout) | None => reason.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// Puts every built-in of the list on a run's engine, bound to its session.
pub(crate) fn register(engine: &mut rhai::Engine, session: Arc<Session>) {
    for b in BUILTINS {
        match b.install {
            Install::Run(install) => install(engine, &session),
            Install::Pure(install) => install(engine),
            Install::PrintHook => {}
        }
    }
}

/// Built-ins that need no run (also available to `rollbook check`).
pub(crate) fn register_pure(engine: &mut rhai::Engine) {
    for b in BUILTINS {
        if let Install::Pure(install) = b.install {
            install(engine);
        }
    }
}

/// `stage(name, action)` / `stage(name, action, undo)`.
pub(super) fn install_stage(engine: &mut rhai::Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.register_fn("stage", move |ctx: NativeCallContext, name: &str, action: FnPtr| {
        stage(&s, &ctx, name, action, None)
    });
    let s = session.clone();
    engine.register_fn("stage", move |ctx: NativeCallContext, name: &str, action: FnPtr, undo: FnPtr| {
        stage(&s, &ctx, name, action, Some(undo))
    });
}

/// `approve(message)` / `approve(message, #{ .. })`.
pub(super) fn install_approve(engine: &mut rhai::Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.register_fn("approve", move |ctx: NativeCallContext, message: &str| {
        approve(&s, message, ApproveOpts::default(), ctx.call_position())
    });
    let s = session.clone();
    engine.register_fn("approve", move |ctx: NativeCallContext, message: &str, opts: Map| {
        let pos = ctx.call_position();
        let opts: ApproveOpts = decode_opts("approve", opts, pos)?;
        approve(&s, message, opts, pos)
    });
}

/// `sleep(duration)`.
pub(super) fn install_sleep(engine: &mut rhai::Engine, session: &Arc<Session>) {
    // Typed overloads too: Rhai's own `sleep(int)`/`sleep(float)` would otherwise win, and
    // block the thread outside the run's clock, interrupts and limits.
    let s = session.clone();
    engine.register_fn("sleep", move |ctx: NativeCallContext, d: Dynamic| sleep(&s, &ctx, d));
    let s = session.clone();
    engine.register_fn("sleep", move |ctx: NativeCallContext, d: rhai::INT| sleep(&s, &ctx, d.into()));
    let s = session.clone();
    engine.register_fn("sleep", move |ctx: NativeCallContext, d: rhai::FLOAT| {
        let pos = ctx.call_position();
        if !(0.0..=crate::model::duration::MAX_DURATION.as_secs_f64()).contains(&d) {
            return Err(throw(
                &PrimitiveError::invalid(format!("sleep: {d}s is not a duration of at most 365d")),
                pos,
            ));
        }
        sleep(&s, &ctx, format!("{}ms", (d * 1000.0) as u64).into())
    });
}

/// `wait_until(#{ .. }, check)`.
pub(super) fn install_wait_until(engine: &mut rhai::Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.register_fn("wait_until", move |ctx: NativeCallContext, opts: Map, check: FnPtr| {
        wait_until(&s, &ctx, opts, check)
    });
}

/// `retry(#{ .. }, body)`.
pub(super) fn install_retry(engine: &mut rhai::Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.register_fn("retry", move |ctx: NativeCallContext, opts: Map, body: FnPtr| {
        retry(&s, &ctx, opts, body)
    });
}

/// `parallel(items, body)` / `parallel(items, body, #{ .. })`.
pub(super) fn install_parallel(engine: &mut rhai::Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.register_fn("parallel", move |ctx: NativeCallContext, items: Array, body: FnPtr| {
        parallel(&s, &ctx, items, body, Map::new())
    });
    let s = session.clone();
    engine.register_fn("parallel", move |ctx: NativeCallContext, items: Array, body: FnPtr, opts: Map| {
        parallel(&s, &ctx, items, body, opts)
    });
}

fn install_log(engine: &mut rhai::Engine, session: &Arc<Session>, level: &'static str) {
    let s = session.clone();
    engine.register_fn(level, move |ctx: NativeCallContext, message: Dynamic| -> RhaiResult<()> {
        s.record(Event::Log { level: level.into(), message: message.to_string() })
            .map_err(|why| journal_failure(why, ctx.call_position()))
    });
}

/// `info(message)`.
pub(super) fn install_info(engine: &mut rhai::Engine, session: &Arc<Session>) {
    install_log(engine, session, "info");
}

/// `warn(message)`.
pub(super) fn install_warn(engine: &mut rhai::Engine, session: &Arc<Session>) {
    install_log(engine, session, "warn");
}

/// `fail(message)`.
pub(super) fn install_fail(engine: &mut rhai::Engine, _: &Arc<Session>) {
    engine.register_fn("fail", |ctx: NativeCallContext, message: Dynamic| -> RhaiResult<()> {
        let mut map = Map::new();
        map.insert("kind".into(), "failed".into());
        map.insert("message".into(), message.to_string().into());
        map.insert("target".into(), Dynamic::UNIT);
        Err(EvalAltResult::ErrorRuntime(map.into(), ctx.call_position()).into())
    });
}

/// `dry_run()`: whether this run only plans (nothing is changed).
pub(super) fn install_dry_run(engine: &mut rhai::Engine, session: &Arc<Session>) {
    let dry_run = session.dry_run;
    engine.register_fn("dry_run", move || dry_run);
}

/// `duration_secs(duration)`.
pub(super) fn install_duration_secs(engine: &mut rhai::Engine) {
    engine.register_fn("duration_secs", |ctx: NativeCallContext, d: Dynamic| -> RhaiResult<i64> {
        Ok(duration_arg("duration_secs", &d, ctx.call_position())?.as_secs() as i64)
    });
}

/// `duration_ms(duration)`.
pub(super) fn install_duration_ms(engine: &mut rhai::Engine) {
    engine.register_fn("duration_ms", |ctx: NativeCallContext, d: Dynamic| -> RhaiResult<i64> {
        Ok(duration_arg("duration_ms", &d, ctx.call_position())?.as_millis() as i64)
    });
}

/// The keys of `approve`'s option map.
pub(super) fn approve_keys() -> &'static [&'static str] {
    struct_fields::<ApproveOpts>()
}

/// The keys of `wait_until`'s option map.
pub(super) fn wait_keys() -> &'static [&'static str] {
    struct_fields::<WaitOpts>()
}

/// The keys of `retry`'s option map.
pub(super) fn retry_keys() -> &'static [&'static str] {
    struct_fields::<RetryOpts>()
}

/// The keys of `parallel`'s option map.
pub(super) fn parallel_keys() -> &'static [&'static str] {
    struct_fields::<ParallelOpts>()
}

fn sleep(s: &Arc<Session>, ctx: &NativeCallContext, d: Dynamic) -> RhaiResult<()> {
    let pos = ctx.call_position();
    let d = duration_arg("sleep", &d, pos)?;
    if let Some(stop) = s.undo_stop_past_replay("a sleep", pos) {
        return Err(stop);
    }
    // `rollbook undo` replays the run only to reach its stages' undos: waiting changes nothing.
    if s.dry_run || s.undo_only.load(std::sync::atomic::Ordering::SeqCst) {
        let mode = if s.dry_run { "dry-run" } else { "undo" };
        let _ =
            s.record(Event::Log { level: "info".into(), message: format!("{mode}: would sleep {}", Dur(d)) });
        return Ok(());
    }
    let cx = s.cx();
    cx.progress.waiting(&format!("sleeping {}", Dur(d)));
    let r = s.block_on(cx.sleep(d));
    cx.progress.done_waiting();
    r.map_err(|_| s.terminated(pos))
}

fn stage(
    s: &Arc<Session>,
    ctx: &NativeCallContext,
    name: &str,
    action: FnPtr,
    undo: Option<FnPtr>,
) -> RhaiResult<Dynamic> {
    let pos = ctx.call_position();
    let replayed = s.replay.as_ref().and_then(|r| r.lock().ok().and_then(|mut r| r.stage(name)));
    if let Some(value) = replayed {
        // Completed before the interruption: its value comes from the journal, nothing runs again.
        s.record(Event::Replayed { what: format!("stage {name}") })
            .map_err(|why| journal_failure(why, pos))?;
        // A stage an earlier undo attempt already undid is not undone twice.
        let undone = s.replay.as_ref().is_some_and(|r| r.lock().is_ok_and(|mut r| r.take_undone(name)));
        if let (Some(undo), false, Ok(mut stack)) = (undo, undone, s.undo_stack.lock()) {
            stack.push(UndoEntry { stage: name.into(), undo });
        }
        return Ok(super::invoke::from_json(&value));
    }
    if let Some(stop) = s.undo_stop(&format!("stage `{name}`"), pos) {
        return Err(stop);
    }
    s.record(Event::StageStarted { stage: name.into() }).map_err(|why| journal_failure(why, pos))?;
    s.push_stage(name);
    let started = Instant::now();
    let result = action.call_within_context::<Dynamic>(ctx, ());
    s.pop_stage();
    let duration_ms = started.elapsed().as_millis() as u64;
    // A value that cannot be journaled (one that contains itself) fails the stage, clearly.
    let result = result.and_then(|value| match super::invoke::try_to_json_text(&value) {
        Ok(json) => Ok((value, json)),
        Err(why) => Err(throw(&PrimitiveError::invalid(format!("stage `{name}` returned {why}")), pos)),
    });
    match result {
        Ok((value, json)) => {
            s.record(Event::StageFinished {
                stage: name.into(),
                ok: true,
                value: Some(json),
                error: None,
                has_undo: undo.is_some(),
                duration_ms,
            })
            .map_err(|why| journal_failure(why, pos))?;
            if let Some(undo) = undo
                && let Ok(mut stack) = s.undo_stack.lock()
            {
                stack.push(UndoEntry { stage: name.into(), undo });
            }
            Ok(value)
        }
        Err(err) => {
            s.record(Event::StageFinished {
                stage: name.into(),
                ok: false,
                value: None,
                error: Some(describe(&err)),
                has_undo: undo.is_some(),
                duration_ms,
            })
            .map_err(|why| journal_failure(why, pos))?;
            Err(err)
        }
    }
}

/// The options of `approve(message, #{ timeout, approvers })`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveOpts {
    /// How long to wait for an answer; then the approval is denied (timed out).
    #[serde(default)]
    timeout: Option<Dur>,
    /// Who may approve (kept in the journal for `rollbook serve`).
    #[serde(default)]
    approvers: Vec<String>,
}

fn approve(s: &Arc<Session>, message: &str, opts: ApproveOpts, pos: Position) -> RhaiResult<bool> {
    use crate::run::Asked;
    let replayed = s.replay.as_ref().and_then(|r| r.lock().ok().and_then(|mut r| r.approval(message)));
    if replayed == Some(true) {
        s.record(Event::Replayed { what: format!("approval \"{message}\"") })
            .map_err(|why| journal_failure(why, pos))?;
        return Ok(true);
    }
    if let Some(stop) = s.undo_stop("an approval", pos) {
        return Err(stop);
    }
    let user = crate::run::current_user();
    let mut comment = None;
    let (approved, by, user) = if s.dry_run {
        if let Ok(mut plan) = s.plan.lock() {
            plan.push(PlanEntry {
                call: "approve".into(),
                target: None,
                effect: format!("ask the operator: {message}"),
                args: serde_json::json!({ "message": message }),
                stage: s.current_stage(),
            });
        }
        (true, "dry-run", None)
    } else if let Some(reason) = s.break_glass.get() {
        // Break-glass grants every approval; the reason is journaled with the approval.
        s.record(Event::Log { level: "warn".into(), message: format!("break-glass ({user}): {reason}") })
            .map_err(|why| journal_failure(why, pos))?;
        (true, "break-glass", Some(user))
    } else if s.yes {
        (true, "--yes", Some(user))
    } else {
        // The wait for an answer ends at the `timeout` (on the run's clock) or an interrupt.
        let expired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let timer = opts.timeout.map(|t| {
            let expired = expired.clone();
            let clock = s.cx().clock;
            s.rt.spawn(async move {
                clock.sleep(t.get()).await;
                expired.store(true, Ordering::SeqCst);
            })
        });
        let session = s.clone();
        let give_up =
            move || expired.load(Ordering::SeqCst) || session.stop_state() != super::session::Stop::Running;
        let (asked, answered_by) = s.reporter.ask_approval(message, &opts.approvers, &give_up);
        if let Some(t) = timer {
            t.abort();
        }
        match (asked, answered_by) {
            (Asked::Answer(answer), Some(who)) => {
                comment = who.comment;
                (answer, "server", Some(who.name))
            }
            (Asked::Answer(answer), None) => (answer, "terminal", Some(user)),
            (Asked::NoOne, _) => (false, "no terminal and no --yes", None),
            (Asked::GaveUp, _) if s.stop_state() != super::session::Stop::Running => {
                return Err(s.terminated(pos));
            }
            (Asked::GaveUp, _) => (false, "timeout", None),
        }
    };
    s.record(Event::Approval {
        message: message.into(),
        approved,
        by: by.into(),
        user,
        approvers: opts.approvers.clone(),
        timeout: opts.timeout.map(|t| t.to_string()),
        comment,
    })
    .map_err(|why| journal_failure(why, pos))?;
    if approved {
        return Ok(true);
    }
    s.denied.store(true, Ordering::SeqCst);
    let why = match (by, opts.timeout) {
        ("timeout", Some(t)) => format!("approval timed out after {t} with no answer: {message}"),
        _ => format!("approval denied ({by}): {message}"),
    };
    Err(throw(&PrimitiveError::new(ErrorKind::Denied, why), pos))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitOpts {
    #[serde(default = "five_minutes")]
    timeout: Dur,
    #[serde(default = "five_seconds")]
    interval: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryOpts {
    #[serde(default = "three")]
    attempts: u32,
    #[serde(default = "five_seconds")]
    interval: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParallelOpts {
    #[serde(default = "ten")]
    concurrency: usize,
    #[serde(default)]
    fail_fast: bool,
    /// Each item's time limit; an item past it is `ok: false` with a `timeout` error.
    #[serde(default)]
    timeout: Option<Dur>,
}

fn five_minutes() -> Dur {
    Dur::secs(300)
}
fn five_seconds() -> Dur {
    Dur::secs(5)
}
fn three() -> u32 {
    3
}
fn ten() -> usize {
    10
}

fn pause(s: &Arc<Session>, d: Duration, what: &str, pos: Position) -> RhaiResult<()> {
    let cx = s.cx();
    cx.progress.waiting(what);
    let r = s.block_on(cx.sleep(d));
    cx.progress.done_waiting();
    r.map_err(|_| s.terminated(pos))
}

fn wait_until(s: &Arc<Session>, ctx: &NativeCallContext, opts: Map, check: FnPtr) -> RhaiResult<bool> {
    let pos = ctx.call_position();
    let opts: WaitOpts = decode_opts("wait_until", opts, pos)?;
    if let Some(stop) = s.undo_stop_past_replay("a wait", pos) {
        return Err(stop);
    }
    let clock = s.cx().clock;
    let started = clock.now();
    let mut tries = 0u32;
    loop {
        tries += 1;
        let value = check.call_within_context::<Dynamic>(ctx, ())?;
        if value.as_bool().unwrap_or(false) {
            return Ok(true);
        }
        let elapsed = clock.now().saturating_sub(started);
        if elapsed >= opts.timeout.get() {
            return Ok(false);
        }
        let left = opts.timeout.get() - elapsed;
        pause(
            s,
            opts.interval.get().min(left),
            &format!(
                "waiting for a condition (check {tries}, {} left)",
                Dur(Duration::from_secs(left.as_secs()))
            ),
            pos,
        )?;
    }
}

fn retry(s: &Arc<Session>, ctx: &NativeCallContext, opts: Map, body: FnPtr) -> RhaiResult<Dynamic> {
    let pos = ctx.call_position();
    let opts: RetryOpts = decode_opts("retry", opts, pos)?;
    let attempts = opts.attempts.max(1);
    let mut attempt = 1;
    loop {
        match body.call_within_context::<Dynamic>(ctx, ()) {
            Ok(v) => return Ok(v),
            // Limits, timeouts and cancellation are never retried.
            Err(e) if !e.is_catchable() => return Err(e),
            Err(e) if attempt >= attempts => return Err(e),
            Err(e) => {
                s.record(Event::Log {
                    level: "warn".into(),
                    message: format!(
                        "attempt {attempt}/{attempts} failed: {}; retrying in {}",
                        describe(&e),
                        opts.interval
                    ),
                })
                .map_err(|why| journal_failure(why, pos))?;
                pause(
                    s,
                    opts.interval.get(),
                    &format!("retrying (attempt {}/{attempts})", attempt + 1),
                    pos,
                )?;
                attempt += 1;
            }
        }
    }
}

/// One finished item of a `parallel` batch, as the script sees it.
fn item_entry(item: Dynamic, outcome: Result<Dynamic, Dynamic>) -> Dynamic {
    let mut entry = Map::new();
    entry.insert("item".into(), item);
    let (ok, value, error) = match outcome {
        Ok(value) => (true, value, Dynamic::UNIT),
        Err(error) => (false, Dynamic::UNIT, error),
    };
    entry.insert("ok".into(), ok.into());
    entry.insert("value".into(), value);
    entry.insert("error".into(), error);
    entry.into()
}

/// The error of an item stopped by its `timeout`.
fn timeout_error(index: usize, limit: Dur) -> Dynamic {
    let err = PrimitiveError::new(ErrorKind::Timeout, format!("item {index} did not finish within {limit}"));
    error_value(&throw(&err, Position::NONE))
}

/// Progress of a batch, shown at most every [`PROGRESS_EVERY`] (a fleet of 1,000 items must not
/// redraw 1,000 times).
struct BatchProgress {
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    running: AtomicUsize,
    last: Mutex<Option<Instant>>,
}

const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl BatchProgress {
    fn show(&self, progress: &dyn crate::providers::Progress, force: bool) {
        let Ok(mut last) = self.last.try_lock() else { return };
        if !force && last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        progress.waiting(&format!(
            "parallel: {}/{} done, {} failed, {} running",
            self.done.load(Ordering::Relaxed),
            self.total,
            self.failed.load(Ordering::Relaxed),
            self.running.load(Ordering::Relaxed),
        ));
    }
}

fn parallel(
    s: &Arc<Session>,
    ctx: &NativeCallContext,
    items: Array,
    body: FnPtr,
    opts: Map,
) -> RhaiResult<Array> {
    use super::session::{ItemDeadline, item_deadline, set_item_deadline};
    let pos = ctx.call_position();
    let opts: ParallelOpts = decode_opts("parallel", opts, pos)?;
    if opts.concurrency == 0 {
        return Err(throw(&PrimitiveError::invalid("parallel: `concurrency` must be at least 1"), pos));
    }
    if opts.concurrency > s.budget.max_concurrency {
        return Err(throw(
            &PrimitiveError::invalid(format!(
                "parallel: `concurrency` is at most {} (asked for {})",
                s.budget.max_concurrency, opts.concurrency
            )),
            pos,
        ));
    }
    if super::session::parallel_depth() >= s.budget.max_nesting {
        return Err(throw(
            &PrimitiveError::invalid(format!(
                "parallel: calls nest at most {} deep (a `parallel` inside an item of a `parallel`…)",
                s.budget.max_nesting
            )),
            pos,
        ));
    }
    let n = items.len();
    if n == 0 {
        return Ok(Array::new());
    }
    let engine = ctx.engine();
    // Compiled once per batch, not per item: every item calls the closure on this one AST.
    let ast = s.deferred_ast();
    let next = AtomicUsize::new(0);
    // Each item is moved into its result when it is taken up (not copied): a batch over a
    // fleet holds each of its items once.
    let items: Vec<Mutex<Option<Dynamic>>> = items.into_iter().map(|item| Mutex::new(Some(item))).collect();
    let results: Mutex<Vec<Option<Dynamic>>> = Mutex::new(vec![None; n]);
    let fatal: Mutex<Option<Box<EvalAltResult>>> = Mutex::new(None);
    let stop_all = std::sync::atomic::AtomicBool::new(false);
    let workers = opts.concurrency.min(n);
    let cx = s.cx();
    let clock = cx.clock.clone();
    // An item inside an outer item's time keeps the outer deadline too.
    let outer = item_deadline();
    let batch = BatchProgress {
        total: n,
        done: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        last: Mutex::new(None),
    };
    let depth = super::session::parallel_depth();
    let work = || {
        super::session::set_parallel_depth(depth + 1);
        loop {
            if stop_all.load(Ordering::SeqCst) {
                break;
            }
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= n {
                break;
            }
            let item = match items[i].lock() {
                Ok(mut slot) => slot.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            }
            .unwrap_or_default();
            let started = clock.now();
            let own = opts.timeout.map(|t| ItemDeadline { clock: clock.clone(), at: started + t.get() });
            let deadline = match (own, outer.clone()) {
                (Some(a), Some(b)) => Some(if a.at <= b.at { a } else { b }),
                (a, b) => a.or(b),
            };
            set_item_deadline(deadline.clone());
            batch.running.fetch_add(1, Ordering::Relaxed);
            let outcome = body.call::<Dynamic>(engine, &ast, (item.clone(),));
            batch.running.fetch_sub(1, Ordering::Relaxed);
            set_item_deadline(outer.clone());
            let duration_ms = clock.now().saturating_sub(started).as_millis() as u64;
            let out_of_time = deadline.as_ref().is_some_and(|d| d.passed());
            let outcome = match outcome {
                // The run itself was stopped (timeout, Ctrl-C, limits): not this item's failure.
                Err(e) if !e.is_catchable() && !is_item_timeout(&e, s) => {
                    stop_all.store(true, Ordering::SeqCst);
                    if let Ok(mut f) = fatal.lock() {
                        f.get_or_insert(e);
                    }
                    break;
                }
                // Past its deadline, however the closure ended (even if it caught the timeout).
                _ if out_of_time => Err(timeout_error(i, opts.timeout.unwrap_or(Dur(Duration::ZERO)))),
                Err(e) if is_item_timeout(&e, s) => {
                    Err(timeout_error(i, opts.timeout.unwrap_or(Dur(Duration::ZERO))))
                }
                Ok(value) => Ok(value),
                Err(e) => Err(error_value(&e)),
            };
            let failed = outcome.is_err();
            let error = outcome.as_ref().err().map(|e| {
                let kind = e.read_lock::<Map>().and_then(|m| m.get("kind").map(|k| k.to_string()));
                let message = e
                    .read_lock::<Map>()
                    .and_then(|m| m.get("message").map(|k| k.to_string()))
                    .unwrap_or_else(|| e.to_string());
                match kind {
                    Some(k) if !k.is_empty() => format!("{k}: {message}"),
                    _ => message,
                }
            });
            let journaled = s.record(Event::ParallelItem { index: i, ok: !failed, error, duration_ms });
            if let Err(why) = journaled {
                stop_all.store(true, Ordering::SeqCst);
                if let Ok(mut f) = fatal.lock() {
                    f.get_or_insert(journal_failure(why, pos));
                }
                break;
            }
            if failed {
                batch.failed.fetch_add(1, Ordering::Relaxed);
                if opts.fail_fast {
                    stop_all.store(true, Ordering::SeqCst);
                }
            }
            match results.lock() {
                Ok(mut r) => r[i] = Some(item_entry(item, outcome)),
                Err(poisoned) => poisoned.into_inner()[i] = Some(item_entry(item, outcome)),
            }
            batch.done.fetch_add(1, Ordering::Relaxed);
            batch.show(cx.progress.as_ref(), false);
        }
        super::session::set_parallel_depth(depth);
    };
    let work = &work;
    std::thread::scope(|scope| {
        // Extra workers only while the run's pool has threads to spare; the calling thread
        // always works too, so a batch (nested or not) never waits for a free thread, and a
        // worker that cannot be started only makes the batch slower.
        for w in 1..workers {
            if !s.budget.take_thread() {
                break;
            }
            let spawned = std::thread::Builder::new()
                .name(format!("parallel-{w}"))
                .stack_size(SCRIPT_STACK)
                .spawn_scoped(scope, move || {
                    work();
                    s.budget.give_thread();
                });
            if spawned.is_err() {
                s.budget.give_thread();
                break;
            }
        }
        work();
    });
    cx.progress.done_waiting();
    if let Some(e) = fatal.into_inner().ok().flatten() {
        return Err(e);
    }
    // A worker that panicked while holding the results would leave them poisoned: that is a
    // bug to report, never an empty list the script takes for "no items".
    let results = results.into_inner().map_err(|_| {
        Box::new(EvalAltResult::ErrorTerminated(
            Dynamic::from(
                "parallel: a worker stopped unexpectedly; the batch's results are lost".to_string(),
            ),
            pos,
        ))
    })?;
    Ok(results
        .into_iter()
        .zip(items)
        .map(|(r, slot)| {
            let item = slot.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()).unwrap_or_default();
            // Not started because fail_fast stopped the batch.
            r.unwrap_or_else(|| {
                item_entry(item, Err("skipped: an earlier item failed and fail_fast is set".into()))
            })
        })
        .collect())
}

/// Whether `e` is an item's own timeout (and not the whole run being stopped).
fn is_item_timeout(e: &EvalAltResult, s: &Session) -> bool {
    use super::session::{Stop, Termination};
    match e.unwrap_inner() {
        EvalAltResult::ErrorTerminated(reason, _) => {
            s.stop_state() == Stop::Running && Termination::of(reason) == Some(Termination::ItemTimeout)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::engine::modules::Loaded;

    fn session() -> Arc<Session> {
        let file =
            std::fs::OpenOptions::new().append(true).open("/dev/null").expect("/dev/null exists on linux");
        Arc::new(Session::new(
            crate::run::scope::Scope::default(),
            None,
            crate::run::Journal::over(file, "/dev/null".into()),
            crate::providers::CallCx::standalone(),
            false,
            false,
            Arc::new(crate::run::QuietReporter),
            None,
            Loaded::default(),
            None,
            super::super::session::Budget::new(&super::super::Limits::default()),
        ))
    }

    /// The names of the functions registered on `engine` itself (not Rhai's packages).
    fn names_on(engine: &rhai::Engine) -> BTreeSet<String> {
        engine
            .gen_fn_signatures(false)
            .iter()
            .filter_map(|sig| sig.split('(').next())
            .map(|name| name.trim_start_matches("fn ").trim().to_string())
            .collect()
    }

    #[tokio::test]
    async fn every_registered_built_in_is_documented_and_every_documented_one_is_registered() {
        let mut engine = rhai::Engine::new_raw();
        register(&mut engine, session());
        let registered = names_on(&engine);
        let documented: BTreeSet<String> = BUILTINS
            .iter()
            .filter(|b| !matches!(b.install, Install::PrintHook))
            .map(|b| b.name.to_string())
            .collect();
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        let unregistered: Vec<_> = documented.difference(&registered).collect();
        assert!(undocumented.is_empty(), "registered but not documented: {undocumented:?}");
        assert!(unregistered.is_empty(), "documented but not registered: {unregistered:?}");
        // Each descriptor registers its own name and nothing else.
        for b in BUILTINS {
            let mut alone = rhai::Engine::new_raw();
            match b.install {
                Install::Run(install) => install(&mut alone, &session()),
                Install::Pure(install) => install(&mut alone),
                Install::PrintHook => continue,
            }
            assert_eq!(names_on(&alone), BTreeSet::from([b.name.to_string()]), "{}", b.name);
        }
        // The engine `rollbook check` uses has exactly the built-ins that need no run.
        let mut pure = rhai::Engine::new_raw();
        register_pure(&mut pure);
        let pure_names: BTreeSet<String> = BUILTINS
            .iter()
            .filter(|b| matches!(b.install, Install::Pure(_)))
            .map(|b| b.name.to_string())
            .collect();
        assert_eq!(names_on(&pure), pure_names);
    }

    #[test]
    fn every_option_key_a_built_in_takes_is_in_its_documented_signature() {
        for b in BUILTINS {
            let Some(options) = &b.options else { continue };
            let keys = (options.keys)();
            assert!(!keys.is_empty(), "{}: no option keys", b.name);
            for key in keys {
                assert!(b.signature.contains(key), "{}: `{key}` missing from `{}`", b.name, b.signature);
            }
        }
    }
}
