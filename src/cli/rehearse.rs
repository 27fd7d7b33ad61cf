//! `rollbook test`: runs each scenario's `[test]` runbook in the simulator and checks
//! `[test.expect]` (outcome, mutations, state); one line per scenario, JUnit XML on request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use console::style;
use serde_json::Value;

use super::sandbox::Sandbox;
use super::{CliError, CliResult};
use crate::engine::{Engine, RunOptions};
use crate::model::Access;
use crate::providers::Settings;
use crate::run::journal::{Event, RunStatus, read_journal};
use crate::sim::Scenario;
use crate::sim::scenario::TestSpec;

/// The verdict on one scenario.
pub(super) enum Verdict {
    /// Every expectation held.
    Passed,
    /// Expectations that did not hold: what was expected and what was found.
    Failed(Vec<String>),
    /// The scenario or its runbook is not valid.
    Invalid(String),
}

/// One scenario's result.
pub(super) struct TestResult {
    /// The scenario file.
    pub path: PathBuf,
    /// Its `name`.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// How long it took.
    pub took: Duration,
    /// The journal of the scenario's run, if it ran.
    pub journal: Option<PathBuf>,
}

/// Finds scenario files: given files as they are; in folders, every `.toml` that has a `[test]`.
pub(super) fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("no such scenario file or folder `{}`", p.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().and_then(|e| e.to_str()) == Some("toml")
            && std::fs::read_to_string(&p).is_ok_and(|t| t.lines().any(|l| l.trim() == "[test]"))
        {
            out.push(p);
        }
    }
}

/// Runs one scenario's test; its runbook is found as `run` finds one, from the scenario's
/// folder (a file, `<library>/<runbook>` of the nearest `rollbook.toml`, or a shipped one),
/// with libraries cached under `state_dir`.
pub(super) async fn run_one(engine: &Engine, path: &Path, work: &Path, state_dir: &Path) -> TestResult {
    let started = Instant::now();
    let mut result = TestResult {
        path: path.to_path_buf(),
        name: String::new(),
        verdict: Verdict::Passed,
        took: Duration::ZERO,
        journal: None,
    };
    result.verdict = match Scenario::load(path) {
        Err(e) => Verdict::Invalid(e.to_string()),
        Ok(scenario) => {
            result.name = scenario.name.clone().unwrap_or_default();
            match scenario.test.clone() {
                None => Verdict::Invalid(format!(
                    "{}: no [test] section: add `[test]` with `runbook = \"…\"`",
                    path.display()
                )),
                Some(test) => {
                    rehearse(engine, path, scenario, &test, work, state_dir, &mut result.journal).await
                }
            }
        }
    };
    result.took = started.elapsed();
    result
}

/// A scenario param as `-p KEY=` would give it.
pub(super) fn param_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(param_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn rehearse(
    engine: &Engine,
    path: &Path,
    scenario: Scenario,
    test: &TestSpec,
    work: &Path,
    state_dir: &Path,
    journal: &mut Option<PathBuf>,
) -> Verdict {
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let loaded = super::library::find_runbook_in(Path::new(&test.runbook), Some(base), state_dir)
        .and_then(|(file, lib)| engine.load_with(&file, lib));
    let runbook = match loaded {
        Ok(r) => r,
        Err(e) => {
            return Verdict::Invalid(format!("{}: runbook `{}`: {e}", path.display(), test.runbook));
        }
    };
    let sandbox = match Sandbox::start(scenario, work).await {
        Ok(s) => s,
        Err(why) => return Verdict::Invalid(why),
    };
    let params: Vec<(String, String)> = test.params.iter().map(|(k, v)| (k.clone(), param_text(v))).collect();
    let mut opts = RunOptions::new(work.join("state"));
    opts.yes = test.yes;
    // A rehearsal's journal says it was a sandbox run, so it can never be resumed as a real one.
    opts.sandbox = super::scenario_hash(path).ok().map(|hash| crate::run::ScenarioInfo {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string(),
        hash,
    });
    opts.settings = sandbox.settings(&Settings::from_env());
    opts.url_rewrites = sandbox.url_rewrites();
    opts.clock = sandbox.clock();
    opts.timeout = Some(Duration::from_secs(600));
    let report = match engine.run(&runbook, &params, opts).await {
        Ok(r) => r,
        Err(e) => {
            sandbox.stop().await;
            return Verdict::Invalid(format!("{}: {e}", path.display()));
        }
    };
    *journal = Some(report.journal.clone());
    let mut failures = Vec::new();
    let expect = test.expect.clone().unwrap_or_else(|| crate::sim::scenario::TestExpect {
        outcome: None,
        mutations: None,
        state: BTreeMap::new(),
    });
    let outcome = match report.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Denied => "denied",
        _ => "failed",
    };
    if let Some(want) = &expect.outcome
        && want != outcome
    {
        let why = report.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        failures.push(format!("outcome: expected `{want}`, found `{outcome}`{why}"));
    }
    if let Some(want) = &expect.mutations {
        let found = mutations(&report.journal);
        if &found != want {
            failures.push(format!("mutations: expected {want:?}, found {found:?}"));
        }
    }
    for (key, fields) in &expect.state {
        let found = sandbox.sim.resource_state(key).unwrap_or(Value::Null);
        for (field, want) in fields {
            let want = toml_to_json(want);
            let got = found.get(field).cloned().unwrap_or(Value::Null);
            if !same(&want, &got) {
                failures.push(format!("state `{key}`.{field}: expected {want}, found {got}"));
            }
        }
    }
    sandbox.stop().await;
    if failures.is_empty() { Verdict::Passed } else { Verdict::Failed(failures) }
}

fn same(want: &Value, got: &Value) -> bool {
    match (want.as_f64(), got.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => want == got,
    }
}

/// Mutating calls that took effect, in order (undos included), from a run's journal.
pub(super) fn mutations(journal: &Path) -> Vec<String> {
    let Ok(read) = read_journal(journal) else {
        return Vec::new();
    };
    let mut mutating = BTreeMap::new();
    let mut out = Vec::new();
    for r in read.records {
        match r.event {
            Event::CallStarted { call, primitive, access: Access::Mutate, .. } => {
                mutating.insert(call, primitive);
            }
            Event::CallFinished { call, ok: true, .. } => {
                if let Some(p) = mutating.remove(&call) {
                    out.push(p);
                }
            }
            _ => {}
        }
    }
    out
}

/// `rollbook test`: exit 0 when every expectation holds, 1 when any does not, 2 for invalid scenarios.
/// With `log`, each scenario's run is shown after its line (a failing one's always is).
pub(super) async fn test_command(
    paths: &[PathBuf],
    junit: Option<&Path>,
    log: bool,
    state_dir: &Path,
) -> CliResult {
    let files = match collect(paths) {
        Ok(f) if f.is_empty() => {
            return Err(CliError::invalid("no scenario with a [test] section found"));
        }
        Ok(f) => f,
        Err(why) => return Err(CliError::invalid(why)),
    };
    let work = std::env::temp_dir().join(format!(
        "rollbook-test-{}-{:06x}",
        std::process::id(),
        fastrand::u32(..0x100_0000)
    ));
    let engine = Engine::new();
    let mut results = Vec::new();
    for file in &files {
        let r = run_one(&engine, file, &work, state_dir).await;
        print_result(&r);
        if (log || matches!(r.verdict, Verdict::Failed(_)))
            && let Some(journal) = &r.journal
        {
            print_transcript(journal);
        }
        results.push(r);
    }
    let _ = std::fs::remove_dir_all(&work);
    let passed = results.iter().filter(|r| matches!(r.verdict, Verdict::Passed)).count();
    let invalid = results.iter().filter(|r| matches!(r.verdict, Verdict::Invalid(_))).count();
    let failed = results.len() - passed - invalid;
    outln!(
        "{passed} passed, {failed} failed{}",
        if invalid > 0 { format!(", {invalid} invalid") } else { String::new() }
    );
    if let Some(path) = junit
        && let Err(e) = std::fs::write(path, junit_xml(&results))
    {
        return Err(CliError::invalid(format!("cannot write `{}`: {e}", path.display())));
    }
    if invalid > 0 {
        Err(CliError::Finished(super::EXIT_INVALID))
    } else if failed > 0 {
        Err(CliError::Finished(1))
    } else {
        Ok(())
    }
}

/// The scenario's run, as `rollbook runs show` prints it, indented under its result line.
fn print_transcript(journal: &Path) {
    match read_journal(journal) {
        Ok(read) => {
            outln!("── the scenario's run ──");
            super::render::timeline(journal, &read);
            outln!("──");
        }
        Err(e) => outln!("      (no transcript: {e})"),
    }
}

fn print_result(r: &TestResult) {
    let took = style(crate::model::format_duration(Duration::from_millis(r.took.as_millis() as u64))).dim();
    let safe = super::render::safe;
    let name = if r.name.is_empty() { String::new() } else { format!("  {}", style(safe(&r.name)).dim()) };
    match &r.verdict {
        Verdict::Passed => outln!("{}    {}{name}  {took}", style("ok").green(), r.path.display()),
        Verdict::Failed(why) => {
            outln!("{}  {}{name}  {took}", style("FAIL").red().bold(), r.path.display());
            for w in why {
                outln!("      {}", safe(w));
            }
        }
        Verdict::Invalid(why) => {
            outln!("{} {}{name}", style("INVALID").red().bold(), r.path.display());
            outln!("      {}", safe(why));
        }
    }
}

/// Text for an XML attribute or element. Characters XML 1.0 cannot carry at all (control
/// characters other than tab, newline and carriage return, U+FFFE, U+FFFF) are written as a
/// visible `\u{…}` escape instead, so the report stays well-formed whatever a runbook printed.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// The results as a JUnit XML report.
pub(super) fn junit_xml(results: &[TestResult]) -> String {
    let failures = results.iter().filter(|r| matches!(r.verdict, Verdict::Failed(_))).count();
    let errors = results.iter().filter(|r| matches!(r.verdict, Verdict::Invalid(_))).count();
    let total: f64 = results.iter().map(|r| r.took.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"rollbook\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total:.3}\">",
        results.len()
    );
    for r in results {
        let name = if r.name.is_empty() { r.path.display().to_string() } else { r.name.clone() };
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml(&r.path.display().to_string()),
            xml(&name),
            r.took.as_secs_f64()
        );
        match &r.verdict {
            Verdict::Passed => out.push_str("/>\n"),
            Verdict::Failed(why) => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                    xml(why.first().map(String::as_str).unwrap_or("")),
                    xml(&why.join("\n"))
                );
            }
            Verdict::Invalid(why) => {
                let _ = writeln!(
                    out,
                    ">\n    <error message=\"invalid scenario\">{}</error>\n  </testcase>",
                    xml(why)
                );
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::xml;

    #[test]
    fn xml_text_never_carries_characters_xml_forbids() {
        let text = xml("a\u{7}b\u{1b}[2J\u{0}<&>\"'\n\u{ffff}");
        assert!(!text.chars().any(|c| c.is_control() || c == '\u{ffff}'), "{text:?}");
        assert_eq!(text, "a\\u{7}b\\u{1b}[2J\\u{0}&lt;&amp;&gt;&quot;&apos;&#10;\\u{ffff}");
    }
}
