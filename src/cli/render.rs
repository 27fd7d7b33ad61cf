//! What a person sees: run progress (a spinner on a terminal, plain lines otherwise), plans,
//! reports, diagnostics, run listings and timelines.

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

/// Renders diagnostics with miette: on a terminal in colour and unicode; elsewhere plain ASCII
/// with a `^` caret under the spot, so logs and CI output stay readable.
pub fn install_miette_hook() {
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
pub fn diagnostic(d: &Diagnostic) {
    let mut d = d.clone();
    d.message = crate::run::redact::scrub(&d.message);
    d.label = crate::run::redact::scrub(&d.label);
    eprintln!("{} {}: {}", style("error:").red().bold(), d.location(), d.message);
    let report = miette::Report::new(d);
    eprintln!("{report:?}");
}

/// Prints an invalid-input error and returns exit 2.
pub fn invalid(message: &str) -> i32 {
    eprintln!("{} {}", style("error:").red().bold(), crate::run::redact::scrub(message));
    super::EXIT_INVALID
}

/// Prints an error that kept a run from starting and returns exit 2.
pub fn engine_error(e: EngineError) -> i32 {
    match e {
        EngineError::Script(d) => {
            diagnostic(&d);
            super::EXIT_INVALID
        }
        EngineError::Locked(why) => {
            invalid(&why);
            RunStatus::Locked.exit_code()
        }
        other => invalid(&other.to_string()),
    }
}

/// The line printed before a run starts.
pub fn run_header(runbook: &Runbook, dry_run: bool) {
    let mode = if dry_run { " (dry-run: reads only, nothing will be changed)" } else { "" };
    eprintln!(
        "{} {} {}{}",
        style("rollbook").bold(),
        style(&runbook.meta.name).cyan().bold(),
        style(&runbook.meta.version).dim(),
        mode
    );
}

/// Shows a run's events as they happen, and waits with a spinner on a terminal.
pub struct TextReporter {
    quiet: bool,
    progress: Arc<SharedProgress>,
    ask_lock: Mutex<()>,
}

impl TextReporter {
    /// A reporter; `quiet` shows only warnings (for `--output json`).
    pub fn new(quiet: bool) -> Self {
        TextReporter {
            quiet,
            progress: Arc::new(SharedProgress {
                quiet,
                tty: std::io::stderr().is_terminal(),
                spinner: Mutex::new(None),
                last_plain: Mutex::new(None),
            }),
            ask_lock: Mutex::new(()),
        }
    }

    /// Clears any spinner.
    pub fn finish(&self) {
        self.progress.done_waiting();
    }

    fn line(&self, text: String) {
        // Every terminal line of a run passes the run's redactor.
        let text = crate::run::redact::scrub(&text);
        let spinner = self.progress.spinner.lock().ok().and_then(|s| s.clone());
        match spinner {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

/// A call's result in one short line: `ok=false status=503 error=…`, nulls left out, cut to fit.
fn short(value: &serde_json::Value) -> String {
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
    const FIRST: &[&str] = &["ok", "complete", "changed", "swapped", "state", "status", "error", "message"];
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
    let width = console::Term::stderr().size_checked().map(|(_, w)| w as usize).unwrap_or(120);
    let room = width.saturating_sub(40).max(40);
    if text.chars().count() > room {
        format!("{}…", text.chars().take(room - 1).collect::<String>())
    } else {
        text
    }
}

fn ms(duration_ms: u64) -> String {
    format_duration(Duration::from_millis(duration_ms))
}

impl Reporter for TextReporter {
    fn event(&self, event: &Event) {
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
            Event::StageFinished { stage, error, .. } => format!(
                "{} stage {} failed: {}",
                style("✘").red(),
                style(stage).bold(),
                error.as_deref().unwrap_or("")
            ),
            Event::CallStarted { .. } => return,
            Event::CallFinished { primitive, ok: true, output, duration_ms, .. } => format!(
                "  {} {} {}",
                style(primitive).cyan(),
                output.as_ref().map(short).unwrap_or_default(),
                style(ms(*duration_ms)).dim()
            ),
            Event::CallFinished { primitive, error, duration_ms, .. } => format!(
                "  {} {} {} {}",
                style(primitive).cyan(),
                style("error").red(),
                error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                style(ms(*duration_ms)).dim()
            ),
            Event::CallPlanned { primitive, effect, .. } => {
                format!("  {} {} {}", style("plan").yellow(), style(primitive).cyan(), effect)
            }
            Event::Log { level, message } => match level.as_str() {
                "warn" => format!("{} {message}", style("warn:").yellow().bold()),
                "info" => format!("{} {message}", style("info:").blue()),
                _ => message.clone(),
            },
            Event::Approval { message, approved, by } => format!(
                "{} approval \"{message}\": {} ({by})",
                style("?").magenta(),
                if *approved { style("yes").green() } else { style("no").red() }
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
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return None;
        }
        let _guard = self.ask_lock.lock().ok()?;
        self.progress.done_waiting();
        eprint!("{} {} [y/N] ", style("?").magenta().bold(), crate::run::redact::scrub(question));
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).ok()?;
        Some(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
    }
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
        let message = &crate::run::redact::scrub(message);
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
                eprintln!("  … {message}");
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
pub fn run_report(report: &RunReport) {
    if report.dry_run {
        print_plan(report);
    }
    match report.status {
        RunStatus::Succeeded => {
            eprintln!(
                "{} succeeded · run {} · journal {}",
                style("✔").green().bold(),
                report.run_id,
                report.journal.display()
            );
            if let Some(v) = report.value.as_ref().filter(|v| !v.is_null()) {
                println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
            }
        }
        status => {
            if let Some(d) = &report.diagnostic {
                diagnostic(d);
            }
            let word = match status {
                RunStatus::Denied => "denied: stopped before acting further",
                RunStatus::Cancelled => "cancelled",
                RunStatus::Locked => "locked: another run holds a target",
                RunStatus::UndoFailed => "NEEDS ATTENTION: not everything could be undone",
                _ => "failed",
            };
            if !report.undone.is_empty() {
                eprintln!("{} undone: {}", style("↺").yellow(), report.undone.join(", "));
            }
            eprintln!(
                "{} {word} · run {} · journal {}",
                style("✘").red().bold(),
                report.run_id,
                report.journal.display()
            );
            if !report.undo_pending.is_empty() {
                eprintln!("  still to undo by hand (newest first):");
                for step in &report.undo_pending {
                    eprintln!("    - stage {step}");
                }
                eprintln!("  see `rollbook runs show {}`", report.run_id);
            }
        }
    }
}

fn print_plan(report: &RunReport) {
    if report.plan.is_empty() {
        println!("Plan: no changes (dry-run; nothing was changed)");
        return;
    }
    println!("Plan: {} step(s) (dry-run; nothing was changed)", report.plan.len());
    for (i, entry) in report.plan.iter().enumerate() {
        let stage = entry.stage.as_ref().map(|s| format!("  [stage {s}]")).unwrap_or_default();
        println!("  {}. {}{}", i + 1, entry.call, stage);
        println!("     {}", entry.effect);
    }
}

/// `rollbook runs list` as a table.
pub fn runs_table(runs: &[RunSummary]) {
    if runs.is_empty() {
        println!("no runs yet");
        return;
    }
    println!("{:<30} {:<20} {:<12} {:<8} RUNBOOK", "ID", "STARTED", "STATUS", "MODE");
    for r in runs {
        println!(
            "{:<30} {:<20} {:<12} {:<8} {}",
            r.id,
            r.started.format("%Y-%m-%d %H:%M:%S"),
            r.status,
            r.mode,
            r.runbook
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
pub fn timeline(path: &Path, read: &JournalRead) {
    let Some(first) = read.records.first() else {
        println!("{}: empty journal", path.display());
        return;
    };
    let t0 = first.ts;
    let mut undone = Vec::new();
    let mut not_undone = Vec::new();
    let mut with_undo = Vec::new();
    for record in &read.records {
        let at = (record.ts - t0).num_milliseconds().max(0) as u64;
        let when = format!("+{:>7}", ms(at));
        let line = match &record.event {
            Event::RunStarted { run_id, runbook, params, dry_run, yes, user, host, .. } => {
                println!("run {run_id}");
                println!(
                    "  runbook  {} {} ({})  {}",
                    runbook.name, runbook.version, runbook.path, runbook.hash
                );
                println!(
                    "  started  {} by {user}@{host}{}{}",
                    record.ts.format("%Y-%m-%d %H:%M:%S UTC"),
                    if *dry_run { " · dry-run" } else { "" },
                    if *yes { " · --yes" } else { "" }
                );
                println!("  mode     {}", crate::run::journal::mode_of(&read.records).as_str());
                if let Event::RunStarted { scenario: Some(sc), .. } = &record.event {
                    println!("  scenario {} {}", sc.path, sc.hash);
                }
                if let Some(lib) = &runbook.library {
                    println!("  library  {}", library_line(lib));
                }
                for m in &runbook.modules {
                    let from =
                        m.library.as_ref().map(|l| format!("  from {}", library_line(l))).unwrap_or_default();
                    println!("  module   {} {}{from}", m.id, m.hash);
                }
                println!("  params   {params}");
                println!();
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
            Event::CallStarted { primitive, access, target, .. } => format!(
                "  → {primitive}{} [{}]",
                target.as_ref().map(|t| format!(" {t}")).unwrap_or_default(),
                match access {
                    crate::model::Access::Read => "read",
                    crate::model::Access::Mutate => "mutate",
                }
            ),
            Event::CallFinished { primitive, ok, output, error, duration_ms, .. } => {
                if *ok {
                    format!(
                        "  ← {primitive} ok ({}) {}",
                        ms(*duration_ms),
                        output.as_ref().map(short).unwrap_or_default()
                    )
                } else {
                    format!(
                        "  ← {primitive} error ({}) {}",
                        ms(*duration_ms),
                        error.as_ref().map(|e| e.to_string()).unwrap_or_default()
                    )
                }
            }
            Event::CallPlanned { primitive, effect, .. } => format!("  ◇ planned {primitive}: {effect}"),
            Event::Log { level, message } => format!("  {level}: {message}"),
            Event::Approval { message, approved, by } => {
                format!("? approval \"{message}\": {} ({by})", if *approved { "yes" } else { "no" })
            }
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
        println!("{when}  {line}");
    }
    if read.records.iter().all(|r| !matches!(r.event, Event::RunFinished { .. })) {
        println!("          … no end recorded: the run is still going, or its process died");
    }
    if read.torn_tail {
        println!("          (the last line was cut short by a crash and is not shown)");
    }
    if !undone.is_empty() || !not_undone.is_empty() {
        println!();
        println!("undone:      {}", if undone.is_empty() { "nothing".into() } else { undone.join(", ") });
        println!(
            "not undone:  {}",
            if not_undone.is_empty() { "nothing".into() } else { not_undone.join(", ") }
        );
    }
    println!();
    println!("journal: {}", path.display());
}
