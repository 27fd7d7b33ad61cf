//! What a person sees: run progress (a spinner on a terminal, plain lines otherwise), plans,
//! reports, diagnostics, run listings and timelines.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use console::style;
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::{Diagnostic, EngineError, RunReport, Runbook};
use crate::model::format_duration;
use crate::providers::Progress;
use crate::run::journal::{JournalRead, RunStatus, RunSummary};
use crate::run::{Event, Reporter};

/// Text from runbooks, scenarios and servers made safe for a terminal: the run's secrets are
/// masked (see [`crate::run::redact`]) and control characters (escape sequences that could move
/// the cursor, rewrite the title, fake a prompt…) are shown escaped, as `\u{1b}`. Tabs stay.
/// The journal keeps the raw text (JSON-escaped, redacted).
pub(super) fn safe(text: &str) -> std::borrow::Cow<'static, str> {
    escape_controls(crate::run::redact::scrub(text))
}

fn escape_controls(text: String) -> std::borrow::Cow<'static, str> {
    match escape_str(&text) {
        std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Owned(text),
        std::borrow::Cow::Owned(escaped) => std::borrow::Cow::Owned(escaped),
    }
}

/// [`escape_controls`] of borrowed text, not copied when it has nothing to escape.
fn escape_str(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Every string in a JSON value made terminal-safe.
fn safe_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = safe(s) {
                *s = clean;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(safe_json),
        serde_json::Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if let Some(mut v) = map.remove(&key) {
                    safe_json(&mut v);
                    map.insert(safe(&key).into_owned(), v);
                }
            }
        }
        _ => {}
    }
}

/// An event with every string in it made terminal-safe (what is shown, not what is journaled).
fn terminal_safe_event(event: &Event) -> Event {
    let Ok(mut value) = serde_json::to_value(event) else { return event.clone() };
    safe_json(&mut value);
    serde_json::from_value(value).unwrap_or_else(|_| event.clone())
}

/// The commands that continue or undo a run left resumable.
pub(super) fn resume_hint(run_id: &str, state_dir: Option<&Path>) {
    let dir = state_dir
        .filter(|d| *d != crate::run::state_dir(None).as_path())
        .map(|d| format!(" --state-dir '{}'", safe(&d.display().to_string())))
        .unwrap_or_default();
    errln!("  the run is left as it was, and can be continued or undone:");
    errln!("    rollbook resume {run_id}{dir}");
    errln!("    rollbook undo {run_id}{dir}");
}

/// Renders diagnostics with miette: on a terminal in colour and unicode; elsewhere plain ASCII
/// with a `^` caret under the spot, so logs and CI output stay readable.
pub(super) fn install_miette_hook() {
    let _ = miette::set_hook(Box::new(|_| {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let theme = if tty {
            miette::GraphicalTheme::unicode()
        } else {
            let mut characters = miette::ThemeCharacters::ascii();
            characters.underbar = '^';
            characters.underline = '^';
            miette::GraphicalTheme { characters, styles: miette::ThemeStyles::none() }
        };
        Box::new(miette::GraphicalReportHandler::new_themed(theme).with_links(false).with_context_lines(1))
    }));
}

/// Prints a diagnostic: `file:line:col: message`, the line with a caret, and `help:`.
pub(super) fn diagnostic(d: &Diagnostic) {
    let mut d = d.clone();
    d.message = crate::run::redact::scrub(&d.message);
    d.label = crate::run::redact::scrub(&d.label);
    let d = d.terminal_safe();
    let report = miette::Report::new(d.clone());
    errln!("{} {}: {}", style("error:").red().bold(), d.location(), d.message);
    errln!("{report:?}");
}

/// Prints one `error: …` line (the message made terminal-safe).
pub(super) fn error(message: &str) {
    errln!("{} {}", style("error:").red().bold(), safe(message));
}

/// Shows the error a command ended with: the one place a command's failure is printed.
pub(super) fn cli_error(e: &super::CliError) {
    use super::CliError;
    match e {
        CliError::Usage(e) => {
            let _ = e.print();
        }
        CliError::Invalid(message) => error(message),
        CliError::Engine(EngineError::Script(d)) => diagnostic(d),
        CliError::Engine(other) => error(&other.to_string()),
        CliError::Problems(summary) => errln!("{summary}"),
        // The run's report (or the rehearsal's results) already said what happened.
        CliError::Finished(_) => {}
        CliError::Internal(message) => errln!("error: {message}"),
    }
}

/// Prints `value` as pretty JSON on stdout (refused, not printed empty, if it cannot be).
pub(super) fn json<T: serde::Serialize + ?Sized>(value: &T) -> super::CliResult {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| super::CliError::Internal(format!("cannot write the output as JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// The line printed before a run starts.
pub(super) fn run_header(runbook: &Runbook, dry_run: bool) {
    let mode = if dry_run { " (dry-run: reads only, nothing will be changed)" } else { "" };
    errln!(
        "{} {} {}{}",
        style("rollbook").bold(),
        style(&runbook.meta.name).cyan().bold(),
        style(&runbook.meta.version).dim(),
        mode
    );
}

/// Shows a run's events as they happen, and waits with a spinner on a terminal.
pub(super) struct TextReporter {
    quiet: bool,
    progress: Arc<SharedProgress>,
    ask_lock: Mutex<()>,
    /// The run's id, once known (for the commands printed when a run is stopped at once).
    run_id: Mutex<Option<String>>,
    /// The state directory given on the command line.
    state_dir: Mutex<Option<std::path::PathBuf>>,
    /// The last error shown on a call line, so a failing stage does not repeat it.
    last_error: Mutex<Option<String>>,
    /// The target of each call in flight, from its `call_started`, for its result line: a
    /// fleet batch runs one primitive on hundreds of clusters at once, and a line that does not
    /// say which one tells an operator nothing.
    targets: Mutex<HashMap<u64, String>>,
}

impl TextReporter {
    /// A reporter; `quiet` shows only warnings (for `--output json`).
    pub(super) fn new(quiet: bool) -> Self {
        TextReporter {
            quiet,
            progress: Arc::new(SharedProgress {
                quiet,
                tty: std::io::stderr().is_terminal(),
                spinner: Mutex::new(None),
                last_plain: Mutex::new(None),
            }),
            ask_lock: Mutex::new(()),
            run_id: Mutex::new(None),
            state_dir: Mutex::new(None),
            last_error: Mutex::new(None),
            targets: Mutex::new(HashMap::new()),
        }
    }

    /// The run's id, once the run has started.
    pub(super) fn run_id(&self) -> Option<String> {
        self.run_id.lock().ok().and_then(|r| r.clone())
    }

    /// Sets the run's id (known ahead for `rollbook resume`).
    pub(super) fn set_run_id(&self, id: &str) {
        if let Ok(mut r) = self.run_id.lock() {
            *r = Some(id.to_string());
        }
    }

    /// The state directory of the run.
    pub(super) fn state_dir(&self) -> Option<std::path::PathBuf> {
        self.state_dir.lock().ok().and_then(|d| d.clone())
    }

    /// Sets the state directory of the run.
    pub(super) fn set_state_dir(&self, dir: &Path) {
        if let Ok(mut d) = self.state_dir.lock() {
            *d = Some(dir.to_path_buf());
        }
    }

    /// Clears any spinner.
    pub(super) fn finish(&self) {
        self.progress.done_waiting();
    }

    fn line(&self, text: String) {
        // Every terminal line of a run passes the run's redactor.
        let mut text = crate::run::redact::scrub_owned(text);
        if !self.progress.tty {
            // Written as it is, with its newline: not formatted into another string first.
            text.push('\n');
            let _ = std::io::stderr().write_all(text.as_bytes());
            return;
        }
        let spinner = self.progress.spinner.lock().ok().and_then(|s| s.clone());
        match spinner {
            Some(bar) => bar.println(text),
            None => errln!("{text}"),
        }
    }
}

/// A call's result in one short line: `ok=false status=503 error=…`, nulls left out, cut to fit
/// the terminal next to `beside` other characters (the call's target).
fn short(value: &serde_json::Value, beside: usize) -> String {
    // Asked of the terminal each time (it may be resized), but not when stderr is no terminal:
    // that answer cannot change, and asking costs a system call per line.
    static TTY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let width = if *TTY.get_or_init(|| std::io::stderr().is_terminal()) {
        console::Term::stderr().size_checked().map(|(_, w)| w as usize).unwrap_or(120)
    } else {
        120
    };
    short_within(value, width.saturating_sub(40 + beside).max(40))
}

/// [`short`] cut to `room` characters. Written into one string (a fleet batch shows one per
/// call, tens of thousands of them).
fn short_within(value: &serde_json::Value, room: usize) -> String {
    use serde_json::Value;
    use std::fmt::Write as _;
    fn scalar(out: &mut String, v: &Value) {
        match v {
            Value::String(s) if s.contains(' ') => {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            Value::String(s) => out.push_str(s),
            Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    scalar(out, item);
                }
                out.push(']');
            }
            Value::Array(items) => {
                let _ = write!(out, "[{} items]", items.len());
            }
            Value::Object(map) => {
                out.push('{');
                for (n, (k, v)) in map.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push_str(": ");
                    scalar(out, v);
                }
                out.push('}');
            }
            other => {
                let _ = write!(out, "{other}");
            }
        }
    }
    const FIRST: &[&str] = &["ok", "complete", "changed", "swapped", "state", "status", "error", "message"];
    let mut text = String::with_capacity(96);
    match value {
        Value::Object(map) => {
            let mut fields: Vec<_> =
                map.iter().filter(|(k, v)| !v.is_null() && k.as_str() != "latency_ms").collect();
            fields.sort_by_key(|(k, _)| FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()));
            for (n, (k, v)) in fields.iter().enumerate() {
                if n > 0 {
                    text.push(' ');
                }
                text.push_str(k);
                text.push('=');
                scalar(&mut text, v);
            }
        }
        Value::Array(items) => {
            let _ = write!(text, "{} item(s)", items.len());
        }
        other => scalar(&mut text, other),
    }
    // Cut at a character boundary, only when needed (most lines are short).
    if text.len() > room
        && let Some((at, _)) = text.char_indices().nth(room - 1)
        && text[at..].chars().nth(1).is_some()
    {
        text.truncate(at);
        text.push('…');
    }
    text
}

fn ms(duration_ms: u64) -> String {
    format_duration(Duration::from_millis(duration_ms))
}

impl Reporter for TextReporter {
    fn event(&self, event: &Event) {
        if let Event::RunStarted { run_id, .. } = event {
            self.set_run_id(run_id);
        }
        // Events that show nothing are not copied and made terminal-safe first: a fleet batch
        // sends tens of thousands of them.
        let shown = match event {
            Event::RunStarted { .. }
            | Event::RunFinished { .. }
            | Event::CallStarted { .. }
            | Event::ParallelItem { .. } => false,
            Event::Log { level, .. } => !self.quiet || level == "warn",
            _ => !self.quiet,
        };
        if !self.quiet
            && let Event::CallStarted { call, target, .. } = event
            && let Ok(mut targets) = self.targets.lock()
        {
            match target {
                Some(t) => targets.insert(*call, escape_str(t).into_owned()),
                None => targets.remove(call),
            };
        }
        if !shown {
            return;
        }
        // A call's line (the most frequent: one per call of a fleet batch) is built from the
        // event as it is, instead of a copy of the whole event made safe through JSON: each
        // shown piece has its control characters escaped here, and `line` masks the whole line.
        if !self.quiet
            && let Event::CallFinished { call, primitive, ok, output, error, duration_ms } = event
        {
            let primitive = escape_str(primitive);
            // A call resumed from an earlier process has no `call_started` here: no target.
            let target = self.targets.lock().ok().and_then(|mut t| t.remove(call)).unwrap_or_default();
            let target = if target.is_empty() { target } else { target + " " };
            let text = if *ok {
                let beside = target.chars().count();
                format!(
                    "  {} {target}{} {}",
                    style(primitive).cyan(),
                    escape_controls(output.as_ref().map(|o| short(o, beside)).unwrap_or_default()),
                    style(ms(*duration_ms)).dim()
                )
            } else {
                let text = safe(&error.as_ref().map(|e| e.to_string()).unwrap_or_default()).into_owned();
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(text.clone());
                }
                format!(
                    "  {} {target}{} {} {}",
                    style(primitive).cyan(),
                    style("error").red(),
                    text,
                    style(ms(*duration_ms)).dim()
                )
            };
            self.line(text);
            return;
        }
        // A stage's value is never shown, so it is left out of the copy made terminal-safe: a
        // fleet stage's 10,000 results, turned into JSON values, were the run's peak memory.
        let without_value;
        let event = match event {
            Event::StageFinished { stage, ok, value: Some(_), error, has_undo, duration_ms } => {
                without_value = Event::StageFinished {
                    stage: stage.clone(),
                    ok: *ok,
                    value: None,
                    error: error.clone(),
                    has_undo: *has_undo,
                    duration_ms: *duration_ms,
                };
                &without_value
            }
            other => other,
        };
        let event = &terminal_safe_event(event);
        if self.quiet {
            if let Event::Log { level, message } = event
                && level == "warn"
            {
                self.line(format!("warn: {message}"));
            }
            return;
        }
        let text = match event {
            Event::RunStarted { .. } | Event::RunFinished { .. } => return,
            Event::StageStarted { stage } => {
                format!("{} stage {}", style("▶").cyan(), style(stage).bold())
            }
            Event::StageFinished { stage, ok: true, duration_ms, .. } => {
                format!(
                    "{} stage {} {}",
                    style("✔").green(),
                    style(stage).bold(),
                    style(ms(*duration_ms)).dim()
                )
            }
            Event::StageFinished { stage, error, .. } => {
                // The error was just shown on its call's line: not again.
                let shown = self.last_error.lock().ok().and_then(|mut l| l.take());
                let repeat = match (error, shown) {
                    (Some(e), Some(s)) => !e.ends_with(&s) && !s.ends_with(e.as_str()),
                    (Some(_), None) => true,
                    _ => false,
                };
                format!(
                    "{} stage {} failed{}",
                    style("✘").red(),
                    style(stage).bold(),
                    if repeat { format!(": {}", error.as_deref().unwrap_or("")) } else { String::new() }
                )
            }
            Event::CallStarted { .. } => return,
            // Shown above, without the copy.
            Event::CallFinished { .. } => return,
            Event::CallPlanned { primitive, effect, .. } => {
                format!("  {} {} {}", style("plan").yellow(), style(primitive).cyan(), effect)
            }
            Event::Log { level, message } => match level.as_str() {
                "warn" => format!("{} {message}", style("warn:").yellow().bold()),
                "info" => format!("{} {message}", style("info:").blue()),
                _ => message.clone(),
            },
            Event::Approval { message, approved, by, user, .. } => format!(
                "{} approval \"{message}\": {} ({by}{})",
                style("?").magenta(),
                if *approved { style("yes").green() } else { style("no").red() },
                user.as_ref().map(|u| format!(", {u}")).unwrap_or_default()
            ),
            Event::CallVerified { primitive, applied, detail, .. } => format!(
                "  {} {} in doubt after the interruption: {}",
                style("?").yellow(),
                style(primitive).cyan(),
                match applied {
                    Some(true) => format!("it took effect ({detail}); not sent again"),
                    Some(false) => format!("it did not take effect ({detail}); sending it now"),
                    None => format!("cannot tell ({detail})"),
                }
            ),
            Event::Refused { primitive, reason, .. } => {
                format!("  {} {primitive} refused: {reason}", style("⊘").red())
            }
            // A fleet batch shows as one progress line, not a line per item.
            Event::ParallelItem { .. } => return,
            Event::Replayed { what } => {
                format!("  {} {what} (done before the interruption)", style("↷").dim())
            }
            Event::RunResumed { user, host, forced, .. } => format!(
                "{} resumed by {user}@{host}{}",
                style("↻").cyan(),
                if *forced { " (--force: the runbook changed)" } else { "" }
            ),
            Event::UndoStarted { stage } => {
                format!("{} undo {}", style("↺").yellow(), style(stage).bold())
            }
            Event::UndoFinished { stage, ok: true, duration_ms, .. } => {
                format!(
                    "{} undone {} {}",
                    style("↺").green(),
                    style(stage).bold(),
                    style(ms(*duration_ms)).dim()
                )
            }
            Event::UndoFinished { stage, error, .. } => format!(
                "{} undo of {} failed: {}",
                style("✘").red(),
                style(stage).bold(),
                error.as_deref().unwrap_or("")
            ),
        };
        self.line(text);
    }

    fn progress(&self) -> Arc<dyn Progress> {
        self.progress.clone()
    }

    fn ask(&self, question: &str) -> Option<bool> {
        match self.ask_until(question, &|| false) {
            crate::run::Asked::Answer(a) => Some(a),
            _ => None,
        }
    }

    fn ask_until(&self, question: &str, give_up: &(dyn Fn() -> bool + Send + Sync)) -> crate::run::Asked {
        use crate::run::Asked;
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Asked::NoOne;
        }
        let Ok(_guard) = self.ask_lock.lock() else { return Asked::NoOne };
        self.progress.done_waiting();
        let lines = stdin_lines();
        let Ok(rx) = lines.answers.lock() else { return Asked::NoOne };
        // A line typed for a question given up earlier does not answer this one.
        while rx.try_recv().is_ok() {}
        errout!("{} {} [y/N] ", style("?").magenta().bold(), safe(question));
        let _ = std::io::stderr().flush();
        if !lines.reading.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = lines.ask.lock().map(|tx| tx.send(()));
        }
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Some(answer)) => {
                    return Asked::Answer(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"));
                }
                Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Asked::NoOne,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if give_up() => {
                    errln!();
                    return Asked::GaveUp;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

/// Lines read from the terminal by one thread, one per request, so a question can be given up
/// (an approval's timeout, an interrupt) while the read goes on.
struct StdinLines {
    ask: Mutex<std::sync::mpsc::Sender<()>>,
    answers: Mutex<std::sync::mpsc::Receiver<Option<String>>>,
    reading: std::sync::atomic::AtomicBool,
}

fn stdin_lines() -> &'static StdinLines {
    static LINES: std::sync::OnceLock<StdinLines> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let (ask_tx, ask_rx) = std::sync::mpsc::channel::<()>();
        let (answer_tx, answer_rx) = std::sync::mpsc::channel();
        let _ = std::thread::Builder::new().name("stdin".into()).spawn(move || {
            while ask_rx.recv().is_ok() {
                let mut line = String::new();
                let answer = match std::io::stdin().read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line),
                };
                if let Some(lines) = LINES.get() {
                    lines.reading.store(false, std::sync::atomic::Ordering::SeqCst);
                }
                if answer_tx.send(answer).is_err() {
                    break;
                }
            }
        });
        StdinLines {
            ask: Mutex::new(ask_tx),
            answers: Mutex::new(answer_rx),
            reading: std::sync::atomic::AtomicBool::new(false),
        }
    })
}

/// The spinner (terminal) or throttled plain lines (logs) shown during waits.
struct SharedProgress {
    quiet: bool,
    tty: bool,
    spinner: Mutex<Option<ProgressBar>>,
    last_plain: Mutex<Option<Instant>>,
}

impl Progress for SharedProgress {
    fn waiting(&self, message: &str) {
        if self.quiet {
            return;
        }
        let message = &*safe(message);
        if self.tty {
            if let Ok(mut s) = self.spinner.lock() {
                let bar = s.get_or_insert_with(|| {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                });
                bar.set_message(message.to_string());
            }
        } else if let Ok(mut last) = self.last_plain.lock() {
            // Plain lines, at most one every 5 seconds, so logs stay short.
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                errln!("  … {message}");
                *last = Some(Instant::now());
            }
        }
    }

    fn done_waiting(&self) {
        if let Ok(mut s) = self.spinner.lock()
            && let Some(bar) = s.take()
        {
            bar.finish_and_clear();
        }
        if let Ok(mut l) = self.last_plain.lock() {
            *l = None;
        }
    }
}

/// The end of a run: plan (dry-run), outcome, and what a person must do.
pub(super) fn run_report(report: &RunReport) {
    if report.dry_run {
        print_plan(report);
    }
    match report.status {
        RunStatus::Succeeded => {
            errln!(
                "{} succeeded · run {} · journal {}",
                style("✔").green().bold(),
                report.run_id,
                report.journal.display()
            );
            if let Some(v) = report.value.as_ref().filter(|v| !v.is_null()) {
                outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
            }
        }
        status => {
            // The failure, once, with its place in the script.
            if let Some(d) = &report.diagnostic
                && status != RunStatus::Interrupted
            {
                // The message is in the report below the location line: not twice.
                let d = d.terminal_safe();
                errln!("{} {}", style("error:").red().bold(), d.location());
                errln!("{:?}", miette::Report::new(d));
            }
            let word = match status {
                RunStatus::Denied => "denied: stopped before acting further",
                RunStatus::Cancelled => "interrupted, and undone as asked",
                RunStatus::Interrupted => "interrupted: stopped at a safe point",
                RunStatus::Locked => "locked: another run holds a target",
                RunStatus::UndoFailed => "NEEDS ATTENTION: not everything could be undone",
                _ => "failed",
            };
            if !report.undone.is_empty() {
                errln!("{} undone: {}", style("↺").yellow(), safe(&report.undone.join(", ")));
            }
            let kept = report.kept_without_undo();
            if !kept.is_empty() {
                errln!(
                    "{} kept as they are (no undo declared): {}",
                    style("■").dim(),
                    safe(&kept.join(", "))
                );
            }
            errln!(
                "{} {word} · run {} · journal {}",
                style("✘").red().bold(),
                report.run_id,
                report.journal.display()
            );
            if status == RunStatus::Interrupted {
                if !report.undo_pending.is_empty() {
                    errln!("  completed stages left in place: {}", safe(&report.undo_pending.join(", ")));
                }
                let state_dir = report.journal.parent().and_then(Path::parent);
                resume_hint(&report.run_id, state_dir);
            } else if !report.undo_pending.is_empty() {
                errln!("  still to undo by hand (newest first):");
                for step in &report.undo_pending {
                    errln!("    - stage {}", safe(step));
                }
                errln!("  see `rollbook runs show {}`", report.run_id);
            }
        }
    }
}

fn print_plan(report: &RunReport) {
    if report.plan.is_empty() {
        outln!("Plan: no changes (dry-run; nothing was changed)");
        return;
    }
    outln!("Plan: {} step(s) (dry-run; nothing was changed)", report.plan.len());
    for (i, entry) in report.plan.iter().enumerate() {
        let stage = entry.stage.as_ref().map(|s| format!("  [stage {s}]")).unwrap_or_default();
        outln!("  {}. {}{}", i + 1, safe(&entry.call), safe(&stage));
        outln!("     {}", safe(&entry.effect));
    }
}

/// `rollbook runs list` as a table.
pub(super) fn runs_table(runs: &[RunSummary]) {
    if runs.is_empty() {
        outln!("no runs yet");
        return;
    }
    outln!("{:<30} {:<20} {:<12} {:<8} RUNBOOK", "ID", "STARTED", "STATUS", "MODE");
    for r in runs {
        outln!(
            "{:<30} {:<20} {:<12} {:<8} {}",
            safe(&r.id),
            r.started.format("%Y-%m-%d %H:%M:%S"),
            r.status,
            r.mode,
            safe(&r.runbook)
        );
    }
}

/// A library's version, commit and hash in one line.
fn library_line(l: &crate::run::LibraryInfo) -> String {
    match &l.commit {
        Some(c) => format!("{} {} (commit {c}) {}", l.name, l.version, l.hash),
        None => format!("{} {} {}", l.name, l.version, l.hash),
    }
}

/// `rollbook runs show` as a readable timeline.
pub(super) fn timeline(path: &Path, read: &JournalRead) {
    let Some(first) = read.records.first() else {
        outln!("{}: empty journal", path.display());
        return;
    };
    let t0 = first.ts;
    let records: Vec<crate::run::Record> = read
        .records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.event = terminal_safe_event(&r.event);
            r
        })
        .collect();
    let mut undone = Vec::new();
    let mut not_undone = Vec::new();
    let mut with_undo = Vec::new();
    // Each call's target, from its start, for the line of its end: a fleet batch interleaves
    // the starts and ends of hundreds of calls of one primitive.
    let mut targets: HashMap<u64, &str> = HashMap::new();
    for record in &records {
        let at = (record.ts - t0).num_milliseconds().max(0) as u64;
        let when = format!("+{:>7}", ms(at));
        let line = match &record.event {
            Event::RunStarted { run_id, runbook, params, dry_run, yes, user, host, .. } => {
                outln!("run {run_id}");
                outln!(
                    "  runbook  {} {} ({})  {}",
                    runbook.name,
                    runbook.version,
                    runbook.path,
                    runbook.hash
                );
                outln!(
                    "  started  {} by {user}@{host}{}{}",
                    record.ts.format("%Y-%m-%d %H:%M:%S UTC"),
                    if *dry_run { " · dry-run" } else { "" },
                    if *yes { " · --yes" } else { "" }
                );
                outln!("  mode     {}", crate::run::journal::mode_of(&read.records).as_str());
                if let Event::RunStarted { scenario: Some(sc), .. } = &record.event {
                    outln!("  scenario {} {}", sc.path, sc.hash);
                }
                if let Some(lib) = &runbook.library {
                    outln!("  library  {}", library_line(lib));
                }
                for m in &runbook.modules {
                    let from =
                        m.library.as_ref().map(|l| format!("  from {}", library_line(l))).unwrap_or_default();
                    outln!("  module   {} {}{from}", m.id, m.hash);
                }
                outln!("  params   {params}");
                outln!();
                continue;
            }
            Event::StageStarted { stage } => format!("▶ stage {stage}"),
            Event::StageFinished { stage, ok, error, duration_ms, has_undo, .. } => {
                if *ok && *has_undo {
                    with_undo.push(stage.clone());
                }
                if *ok {
                    format!("✔ stage {stage} ({})", ms(*duration_ms))
                } else {
                    format!(
                        "✘ stage {stage} failed ({}): {}",
                        ms(*duration_ms),
                        error.as_deref().unwrap_or("")
                    )
                }
            }
            Event::CallStarted { call, primitive, access, target, .. } => {
                match target {
                    Some(t) => targets.insert(*call, t),
                    None => targets.remove(call),
                };
                format!(
                    "  → {primitive}{} [{}]",
                    target.as_ref().map(|t| format!(" {t}")).unwrap_or_default(),
                    match access {
                        crate::model::Access::Read => "read",
                        crate::model::Access::Mutate => "mutate",
                    }
                )
            }
            Event::CallFinished { call, primitive, ok, output, error, duration_ms } => {
                let target = targets.remove(call).map(|t| format!(" {t}")).unwrap_or_default();
                if *ok {
                    format!(
                        "  ← {primitive}{target} ok ({}) {}",
                        ms(*duration_ms),
                        output.as_ref().map(|o| short(o, target.chars().count())).unwrap_or_default()
                    )
                } else {
                    format!(
                        "  ← {primitive}{target} error ({}) {}",
                        ms(*duration_ms),
                        error.as_ref().map(|e| e.to_string()).unwrap_or_default()
                    )
                }
            }
            Event::CallPlanned { primitive, effect, .. } => format!("  ◇ planned {primitive}: {effect}"),
            Event::Log { level, message } => format!("  {level}: {message}"),
            Event::Approval { message, approved, by, user, .. } => format!(
                "? approval \"{message}\": {} ({by}{})",
                if *approved { "yes" } else { "no" },
                user.as_ref().map(|u| format!(", {u}")).unwrap_or_default()
            ),
            Event::CallVerified { primitive, applied, detail, .. } => format!(
                "  ? {primitive} was in doubt: {} ({detail})",
                match applied {
                    Some(true) => "it had taken effect",
                    Some(false) => "it had not taken effect",
                    None => "cannot tell",
                }
            ),
            Event::Refused { primitive, target, by, reason } => {
                format!("  ⊘ {primitive} {} refused by {by}: {reason}", target.as_deref().unwrap_or(""))
            }
            Event::ParallelItem { index, ok, error, duration_ms } => {
                if *ok {
                    format!("  ∥ item {index} ok ({})", ms(*duration_ms))
                } else {
                    format!(
                        "  ∥ item {index} failed ({}) {}",
                        ms(*duration_ms),
                        error.as_deref().unwrap_or_default()
                    )
                }
            }
            Event::Replayed { what } => format!("  ↷ {what} taken from the journal"),
            Event::RunResumed { user, host, forced, .. } => {
                // The resuming process numbers its calls from 1 again.
                targets.clear();
                format!("↻ resumed by {user}@{host}{}", if *forced { " with --force" } else { "" })
            }
            Event::UndoStarted { stage } => format!("↺ undo {stage}"),
            Event::UndoFinished { stage, ok, error, duration_ms } => {
                if *ok {
                    undone.push(stage.clone());
                    format!("↺ undone {stage} ({})", ms(*duration_ms))
                } else {
                    not_undone.push(stage.clone());
                    format!(
                        "✘ undo {stage} failed ({}): {}",
                        ms(*duration_ms),
                        error.as_deref().unwrap_or("")
                    )
                }
            }
            Event::RunFinished { status, exit_code, error, undo_pending, duration_ms } => {
                for p in undo_pending {
                    if !not_undone.contains(p) {
                        not_undone.push(p.clone());
                    }
                }
                format!(
                    "■ {} (exit {exit_code}) after {}{}",
                    status.as_str(),
                    ms(*duration_ms),
                    error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                )
            }
        };
        outln!("{when}  {line}");
    }
    if read.records.iter().all(|r| !matches!(r.event, Event::RunFinished { .. })) {
        outln!("          … no end recorded: the run is still going, or its process died");
    }
    if read.torn_tail {
        outln!("          (the last line was cut short by a crash and is not shown)");
    }
    if !undone.is_empty() || !not_undone.is_empty() {
        outln!();
        outln!("undone:      {}", if undone.is_empty() { "nothing".into() } else { undone.join(", ") });
        outln!(
            "not undone:  {}",
            if not_undone.is_empty() { "nothing".into() } else { not_undone.join(", ") }
        );
    }
    outln!();
    outln!("journal: {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line a call's result showed before `short` wrote into one string: every kind of
    /// value, and the cut to `room` characters.
    fn short_as_before(value: &serde_json::Value, room: usize) -> String {
        use serde_json::Value;
        fn scalar(v: &Value) -> String {
            match v {
                Value::String(s) if s.contains(' ') => format!("\"{s}\""),
                Value::String(s) => s.clone(),
                Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
                    format!("[{}]", items.iter().map(scalar).collect::<Vec<_>>().join(", "))
                }
                Value::Array(items) => format!("[{} items]", items.len()),
                Value::Object(map) => {
                    format!(
                        "{{{}}}",
                        map.iter().map(|(k, v)| format!("{k}: {}", scalar(v))).collect::<Vec<_>>().join(", ")
                    )
                }
                other => other.to_string(),
            }
        }
        const FIRST: &[&str] =
            &["ok", "complete", "changed", "swapped", "state", "status", "error", "message"];
        let text = match value {
            Value::Object(map) => {
                let mut fields: Vec<_> =
                    map.iter().filter(|(k, v)| !v.is_null() && k.as_str() != "latency_ms").collect();
                fields.sort_by_key(|(k, _)| FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()));
                fields.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect::<Vec<_>>().join(" ")
            }
            Value::Array(items) => format!("{} item(s)", items.len()),
            other => scalar(other),
        };
        if text.chars().count() > room {
            format!("{}…", text.chars().take(room - 1).collect::<String>())
        } else {
            text
        }
    }

    #[test]
    fn a_calls_short_line_is_the_same_as_before_it_was_written_into_one_string() {
        let values = [
            serde_json::json!({"changed": true, "from_revision": 4, "to_revision": 3,
                "images": {"web0": "fleet/web:1.0.0"}, "latency_ms": 12, "note": null}),
            serde_json::json!({"message": "two words", "ok": false, "status": 503,
                "list": [1, "a b", true, null], "nested": [[1], {"k": 2}], "ratio": 0.5}),
            serde_json::json!({"complete": true, "message": "é".repeat(79)}),
            serde_json::json!({"message": "é".repeat(71)}),
            serde_json::json!({"message": "é".repeat(72)}),
            serde_json::json!({"message": "é".repeat(73)}),
            serde_json::json!([1, 2, 3]),
            serde_json::json!("plain text"),
            serde_json::json!("x".repeat(200)),
            serde_json::json!(null),
            serde_json::json!({}),
        ];
        for v in &values {
            // 80: the room of a 120-column terminal, and of stderr when it is no terminal.
            assert_eq!(short_within(v, 80), short_as_before(v, 80), "{v}");
        }
        assert_eq!(
            short_within(&values[0], 80),
            "changed=true from_revision=4 images={web0: fleet/web:1.0.0} to_revision=3"
        );
    }
}
