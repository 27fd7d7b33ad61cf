//! Script errors as diagnostics: file, line and column, the source line with a caret under the
//! spot, and a `help:` line that says what to do. Rendered once, at the CLI, with miette.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use miette::{LabeledSpan, NamedSource, SourceCode, SourceOffset, SourceSpan};
use rhai::{EvalAltResult, ParseError, Position};
use serde::Serialize;

use super::Limits;
use super::session::Termination;
use crate::model::format_duration;

/// One error with its place in a script.
#[derive(Clone, Serialize)]
pub struct Diagnostic {
    /// What is wrong, in one sentence.
    pub message: String,
    /// The file (or module id) it is in.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// Under the caret.
    pub label: String,
    /// What to do about it.
    pub help: Option<String>,
    #[serde(skip)]
    source: Option<Arc<NamedSource<String>>>,
    #[serde(skip)]
    span: Option<SourceSpan>,
}

impl Diagnostic {
    /// This diagnostic with control characters taken out of everything a terminal shows: in the
    /// message, label and help they are escaped; in the source each byte of one becomes `?`, so
    /// the caret still points at the same place.
    pub fn terminal_safe(&self) -> Diagnostic {
        fn escape(text: &str) -> String {
            text.chars()
                .map(|c| {
                    if c.is_control() && c != '\t' { format!("\\u{{{:x}}}", c as u32) } else { c.to_string() }
                })
                .collect()
        }
        let mut d = self.clone();
        d.message = escape(&d.message);
        d.label = escape(&d.label);
        d.file = escape(&d.file);
        d.help = d.help.as_deref().map(escape);
        if let Some(src) = &self.source {
            let text: String = src
                .inner()
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\n' && c != '\t' {
                        "?".repeat(c.len_utf8())
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            d.source = Some(Arc::new(NamedSource::new(escape(src.name()), text)));
        }
        d
    }
}

impl fmt::Debug for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.location())?;
        write!(f, ": {}", self.message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_deref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some(self.label.clone()), span))))
    }
}

impl Diagnostic {
    /// A diagnostic at `line:column` of `text` (1-based, characters).
    pub fn at(
        file: &str,
        text: Option<&str>,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
        label: String,
        help: Option<String>,
    ) -> Diagnostic {
        let (source, span) = match (text, line) {
            (Some(text), Some(line)) => {
                let col = column.unwrap_or(1);
                let offset = SourceOffset::from_location(text, line, col).offset();
                let len = token_len(text, offset);
                (
                    Some(Arc::new(NamedSource::new(file, text.to_string()))),
                    Some(SourceSpan::new(offset.into(), len)),
                )
            }
            _ => (None, None),
        };
        Diagnostic { message, file: file.to_string(), line, column, label, help, source, span }
    }

    /// `file:line:col`, or just the file when the place is unknown.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file),
            (Some(l), None) => format!("{}:{l}", self.file),
            _ => self.file.clone(),
        }
    }
}

/// Length of the token at `offset` (at least 1), so the caret underlines a word, not a char.
fn token_len(text: &str, offset: usize) -> usize {
    let rest = &text[offset.min(text.len())..];
    let word = rest
        .char_indices()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    word.max(1)
}

fn line_col(p: Position) -> (Option<usize>, Option<usize>) {
    (p.line(), p.position())
}

/// A syntax error.
pub fn from_parse(file: &str, text: &str, err: &ParseError) -> Diagnostic {
    let (line, column) = line_col(err.position());
    let kind = err.err_type().to_string();
    let help = parse_help(&kind);
    Diagnostic::at(file, Some(text), line, column, format!("syntax error: {kind}"), kind, help)
}

fn parse_help(kind: &str) -> Option<String> {
    if kind.contains("Unknown variable") || kind.contains("Undefined variable") {
        Some("declare it with `let` first; runbook params are read as `params.<name>`".into())
    } else if kind.contains("'default'") || kind.contains("reserved") && kind.contains("default") {
        Some("`default` is a reserved word in Rhai: write `default_value`".into())
    } else if kind.contains("disabled") && kind.contains("eval") {
        Some("`eval` is disabled in runbooks".into())
    } else if kind.contains("Expecting ')'")
        || kind.contains("Expecting ']'")
        || kind.contains("Expecting '}'")
    {
        Some("a bracket is not closed".into())
    } else {
        None
    }
}

/// A diagnostic pointing at the first occurrence of `needle` in `text`.
pub fn at_text(file: &str, text: &str, needle: &str, message: String, help: Option<String>) -> Diagnostic {
    let (line, column) = match text.find(needle) {
        Some(offset) => {
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
            (Some(line), Some(col))
        }
        None => (None, None),
    };
    let label = message.clone();
    Diagnostic::at(file, Some(text), line, column, message, label, help)
}

/// A runtime error, located in the innermost script (runbook, stdlib or imported module).
pub fn from_eval(
    main: &str,
    sources: &HashMap<String, String>,
    err: &EvalAltResult,
    limits: &Limits,
    timeout: Option<Duration>,
) -> Diagnostic {
    let mut current = main.to_string();
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(_, src, inner, _) => {
                if !src.is_empty() {
                    current = src.clone();
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, _) => {
                current = path.clone();
                e = inner;
            }
            _ => break,
        }
    }
    // An error raised by a host function has no position of its own: use the outermost call site.
    let mut pos = e.position();
    if pos.is_none() {
        pos = err.position();
        current = main.to_string();
    }
    let (message, label, help) = describe(e, limits, timeout);
    let (line, column) = line_col(pos);
    Diagnostic::at(&current, sources.get(&current).map(String::as_str), line, column, message, label, help)
}

fn describe(
    e: &EvalAltResult,
    limits: &Limits,
    timeout: Option<Duration>,
) -> (String, String, Option<String>) {
    match e {
        EvalAltResult::ErrorTooManyOperations(_) => (
            format!("the runbook was stopped after {} operations", limits.max_operations),
            "still running here".into(),
            Some(
                "look for a loop that never ends; wait with `wait_until` or `sleep` instead of spinning"
                    .into(),
            ),
        ),
        EvalAltResult::ErrorStackOverflow(_) => (
            format!("calls nested deeper than {} levels", limits.max_call_levels),
            "called here".into(),
            Some("look for a function that calls itself without an end".into()),
        ),
        EvalAltResult::ErrorTerminated(reason, _) => match Termination::of(reason) {
            Some(Termination::Timeout) => (
                format!(
                    "the run exceeded its time limit{}",
                    timeout.map(|t| format!(" of {}", format_duration(t))).unwrap_or_default()
                ),
                "running here when time ran out".into(),
                Some("raise it with --timeout, or make the waits shorter".into()),
            ),
            Some(Termination::Cancelled) => {
                ("the run was cancelled".into(), "running here when cancelled".into(), None)
            }
            Some(Termination::Interrupted) => (
                "the run was interrupted by the operator".into(),
                "running here when interrupted".into(),
                None,
            ),
            Some(Termination::LimitOperations) => (
                format!(
                    "the runbook was stopped after {} operations (one budget for the whole run, every `parallel` item included)",
                    limits.max_operations
                ),
                "still running here".into(),
                Some(
                    "look for a loop that never ends; wait with `wait_until` or `sleep` instead of spinning"
                        .into(),
                ),
            ),
            Some(Termination::LimitMemory) => (
                format!(
                    "the runbook's data grew beyond its memory limit of {} MiB (values held by closures included)",
                    limits.max_memory >> 20
                ),
                "growing here".into(),
                Some("runbooks hold small data; filter results before keeping them".into()),
            ),
            Some(Termination::ItemTimeout) | None => {
                (format!("the run was stopped: {reason}"), "stopped here".into(), None)
            }
        },
        EvalAltResult::ErrorDataTooLarge(what, _) => (
            format!("{what} grew beyond the runbook limits"),
            "too large".into(),
            Some("runbooks hold small data; filter results before keeping them".into()),
        ),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split(['(', ' ']).next().unwrap_or(sig);
            let hint = super::docs::suggest_function(name);
            (
                format!("unknown function `{sig}`"),
                "not found".into(),
                Some(hint.map(|b| format!("did you mean `{b}`? `rollbook docs` lists every primitive")).unwrap_or_else(|| "`rollbook docs` lists every primitive and built-in; check the name and the number of arguments".into())),
            )
        }
        EvalAltResult::ErrorRuntime(value, _) => {
            if let Some(map) = value.read_lock::<rhai::Map>() {
                let kind = map.get("kind").map(|k| k.to_string()).unwrap_or_default();
                let message = map.get("message").map(|m| m.to_string()).unwrap_or_else(|| value.to_string());
                let target = map.get("target").filter(|t| !t.is_unit()).map(|t| t.to_string());
                let request_id = map.get("request_id").map(|r| r.to_string());
                let help = match kind.as_str() {
                    "failed" => None,
                    "denied" if message.contains("scope") || message.contains("--allow") => None,
                    "denied" => Some("pass --yes to approve non-interactively, or run on a terminal".into()),
                    "invalid" => Some("`rollbook docs` lists every key each primitive takes".into()),
                    "locked" => Some("another run is changing this target; wait for it (see `rollbook runs list`) and run again".into()),
                    _ => Some(format!(
                        "catch it with `try {{ … }} catch (e) {{ if e.kind == \"{kind}\" {{ … }} }}`{}",
                        request_id.map(|r| format!("; request id {r}")).unwrap_or_default()
                    )),
                };
                let shown =
                    if kind == "failed" || kind.is_empty() { message } else { format!("{kind}: {message}") };
                let label = target.map(|t| format!("target {t}")).unwrap_or_else(|| "thrown here".into());
                (shown, label, help)
            } else {
                (value.to_string(), "thrown here".into(), None)
            }
        }
        other => {
            let text = other.to_string();
            let text = text.split(" (line ").next().unwrap_or(&text).to_string();
            (text.clone(), "here".into(), None)
        }
    }
}
