//! The run state on disk: secrets never written down, private files, journals that survive
//! torn writes, one process per run, calls in doubt settled even on another branch, lock files
//! for long targets, and runs left by a dead process that must be resumed rather than stolen.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollbook::engine::{Engine, RunOptions, RunReport};
use rollbook::run::journal::{Event, RunStatus, read_journal};

use crate::support::{Mutate, Outcome, Recorder, Rollbook, rollbook, texts, write};

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn journal_of(state: &Path) -> PathBuf {
    files_under(state)
        .into_iter()
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
        .expect("a journal was written")
}

const SECRET: &str = "s3cr3t/v@l ue";
const SECRET_ENCODED: &str = "s3cr3t%2Fv%40l%20ue";

fn secret_runbook(dir: &Path, url: &str) -> PathBuf {
    write(
        dir,
        "secret.rhai",
        &format!(
            r#"
const RUNBOOK = #{{
    name: "secret-leak",
    params: #{{ token: #{{ type: "string", secret: true }} }},
}};
info("the token is " + params.token);
let v = stage("keep", || "value " + params.token);
let r = health::http(#{{ url: "{url}/probe?key=" + params.token + "&enc={SECRET_ENCODED}", attempts: 1 }});
print("probe said " + r.status);
fail("giving up with " + v);
"#
        ),
    )
}

#[test]
fn a_secret_param_is_written_nowhere_not_in_events_errors_reports_or_terminal_lines() {
    let url = crate::support::serve_in_background(|| async {
        axum::Router::new().route("/probe", axum::routing::get(|| async { "ok" }))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = secret_runbook(dir.path(), &url);
    for output in ["text", "json"] {
        let state = dir.path().join(format!("state-{output}"));
        let out = rollbook(&[
            "run",
            runbook.to_str().expect("path"),
            "-p",
            &format!("token={SECRET}"),
            "--output",
            output,
            "--state-dir",
            state.to_str().expect("path"),
        ]);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "the runbook fails: {stdout}\n{stderr}");
        let journal = std::fs::read_to_string(journal_of(&state)).expect("journal");
        for (what, text) in [("stdout", &stdout), ("stderr", &stderr), ("journal", &journal)] {
            assert!(!text.contains(SECRET), "{output}: the secret is in the {what}:\n{text}");
            assert!(!text.contains(SECRET_ENCODED), "{output}: the encoded secret is in the {what}:\n{text}");
            assert!(!text.contains("s3cr3t"), "{output}: part of the secret is in the {what}:\n{text}");
        }
        assert!(journal.contains("/probe"), "the URL is journaled without its query: {journal}");
        assert!(!journal.contains("key="), "query strings are stripped from journaled URLs: {journal}");
    }
}

#[test]
fn userinfo_in_a_journaled_url_is_stripped() {
    let url = crate::support::serve_in_background(|| async {
        axum::Router::new().route("/probe", axum::routing::get(|| async { "ok" }))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let with_user = url.replace("http://", "http://admin:hunter2@");
    let runbook = write(
        dir.path(),
        "userinfo.rhai",
        &format!(r#"health::http(#{{ url: "{with_user}/probe", attempts: 1 }});"#),
    );
    let state = dir.path().join("state");
    let out =
        rollbook(&["run", runbook.to_str().expect("path"), "--state-dir", state.to_str().expect("path")]);
    let (stdout, stderr) = texts(&out);
    let journal = std::fs::read_to_string(journal_of(&state)).expect("journal");
    for text in [&stdout, &stderr, &journal] {
        assert!(!text.contains("hunter2"), "a password in a URL reached the output or journal: {text}");
    }
}

#[cfg(unix)]
#[test]
fn the_state_dir_journals_and_lock_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("fresh").join("state");
    let runbook = write(
        dir.path(),
        "locks.rhai",
        r#"const RUNBOOK = #{ name: "locks", scope: ["appservice/*/*"] };
           try { appservice::swap(#{ group: "rg", site: "web", slot: "staging", timeout: "1s" }); } catch {}
           "done""#,
    );
    let arm = crate::support::serve_in_background(|| async {
        axum::Router::new().fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "{}") })
    });
    let run = |state: &Path| {
        Command::new(env!("CARGO_BIN_EXE_rollbook"))
            .args(["run", runbook.to_str().expect("path"), "--state-dir", state.to_str().expect("path")])
            .env_remove("ROLLBOOK_STATE_DIR")
            .env("ROLLBOOK_ARM_ENDPOINT", &arm)
            .env("ROLLBOOK_AZURE_TOKEN", "t")
            .env("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000")
            .output()
            .expect("run")
    };
    let out = run(&state);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "the state dir is private");
    let files = files_under(&state);
    assert!(files.iter().any(|p| p.extension().and_then(|e| e.to_str()) == Some("lock")), "{files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "`{}` is private", f.display());
    }
    assert!(!stderr.contains("accessible"), "no warning for a private state dir: {stderr}");

    // A state dir others can read gets one warning.
    let open = dir.path().join("open");
    std::fs::create_dir_all(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = run(&open);
    let (_, stderr) = texts(&out);
    assert_eq!(stderr.matches("accessible").count(), 1, "one warning: {stderr}");
}

/// A finished run made incomplete: its `run_finished` line is cut off.
fn unfinish(journal: &Path) -> String {
    let text = std::fs::read_to_string(journal).expect("journal");
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("\"type\":\"run_finished\"")).collect();
    kept.join("\n") + "\n"
}

const TWO_STAGES: &str = r#"
const RUNBOOK = #{ name: "two-stages" };
stage("one", || "ünïcödé");
stage("two", || 2);
"ok"
"#;

/// A finished run of TWO_STAGES; later commands run in its state dir.
fn run_two_stages() -> Outcome {
    Rollbook::new().script_named("two.rhai", TWO_STAGES).run().succeeds()
}

#[test]
fn a_journal_torn_inside_a_multibyte_character_is_listed_and_resumable() {
    let run = run_two_stages();
    let (journal, id) = (run.journal(), run.run_id());
    let mut bytes = unfinish(&journal).into_bytes();
    bytes.extend_from_slice(
        b"{\"seq\":99,\"ts\":\"2026-11-28T00:00:00Z\",\"type\":\"log\",\"level\":\"info\",\"message\":\"\xc3",
    );
    std::fs::write(&journal, bytes).expect("tear the journal");
    let list = run.then(&["runs", "list", "--output", "json"]).out;
    let (stdout, stderr) = texts(&list);
    assert!(stdout.contains(&id), "the torn run is listed: {stdout}\n{stderr}");
    assert!(stdout.contains("incomplete"), "{stdout}");
    let resumed = run.then(&["resume", &id]).out;
    assert_eq!(resumed.status.code(), Some(0), "{:?}", texts(&resumed));
    let read = read_journal(&journal).expect("the journal reads again");
    assert!(matches!(read.records.last().map(|r| &r.event), Some(Event::RunFinished { .. })));
}

#[test]
fn an_unreadable_journal_is_listed_as_unreadable_not_hidden() {
    let run = run_two_stages();
    write(&run.state_dir().join("runs"), "20260101T000000Z-badbad.jsonl", "not json\nnot json either\n");
    let list = run.then(&["runs", "list", "--output", "json"]).out;
    let (stdout, stderr) = texts(&list);
    assert_eq!(list.status.code(), Some(0), "{stderr}");
    let runs: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("json");
    let bad = runs.iter().find(|r| r["id"] == "20260101T000000Z-badbad").expect("the bad journal is listed");
    assert_eq!(bad["status"], "unreadable");
    assert_eq!(runs.len(), 2, "{stdout}");
    let text = run.then(&["runs", "list"]).out;
    assert!(texts(&text).0.contains("unreadable"), "{:?}", texts(&text));
}

#[test]
fn a_complete_last_record_without_its_newline_survives_resume() {
    let run = run_two_stages();
    let (journal, id) = (run.journal(), run.run_id());
    let text = unfinish(&journal);
    let text = text.strip_suffix('\n').expect("newline").to_string();
    assert!(text.lines().last().is_some_and(|l| l.contains("\"stage\":\"two\"")), "{text}");
    std::fs::write(&journal, &text).expect("rewrite");
    let resumed = run.then(&["resume", &id]).out;
    assert_eq!(resumed.status.code(), Some(0), "{:?}", texts(&resumed));
    let read = read_journal(&journal).expect("journal");
    assert!(!read.torn_tail);
    let finished_two = read
        .records
        .iter()
        .filter(|r| matches!(&r.event, Event::StageFinished { stage, .. } if stage == "two"))
        .count();
    assert_eq!(finished_two, 1, "stage two's record was kept (and stage two not run again)");
    assert!(read.records.iter().any(|r| matches!(&r.event, Event::Replayed { what } if what == "stage two")));
}

#[test]
fn resuming_a_run_whose_process_is_alive_exits_5_naming_pid_and_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let runbook = write(
        dir.path(),
        "slow.rhai",
        r#"const RUNBOOK = #{ name: "slow" };
           stage("one", || 1);
           stage("wait", || sleep("60s"));"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["run", runbook.to_str().expect("path"), "--state-dir", state.to_str().expect("path")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the first run");
    let deadline = Instant::now() + Duration::from_secs(60);
    let journal = loop {
        let found = files_under(&state)
            .into_iter()
            .find(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"stage\":\"wait\"")));
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "the first run never reached its wait");
        std::thread::sleep(Duration::from_millis(50));
    };
    let id = journal.file_stem().and_then(|s| s.to_str()).expect("run id").to_string();
    let resumed = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["resume", &id, "--state-dir", state.to_str().expect("path"), "--timeout", "3s"])
        .output()
        .expect("resume");
    let _ = child.kill();
    let _ = child.wait();
    let (stdout, stderr) = texts(&resumed);
    assert_eq!(resumed.status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("pid {}", child.id())), "names the pid: {stderr}");
    assert!(stderr.contains(&rollbook::run::current_host()), "names the host: {stderr}");
    let read = read_journal(&journal).expect("journal");
    assert!(
        !read.records.iter().any(|r| matches!(r.event, Event::RunResumed { .. })),
        "nothing was appended by the refused resume"
    );
}

struct Fixture {
    dir: tempfile::TempDir,
    recorder: Arc<Recorder>,
    engine: Engine,
}

fn fixture_in(dir: tempfile::TempDir) -> Fixture {
    let recorder = Arc::new(Recorder::default());
    let mut engine = Engine::new();
    engine.register(Mutate(recorder.clone()));
    Fixture { dir, recorder, engine }
}

const BRANCHES: &str = r#"
const RUNBOOK = #{ name: "branches", params: #{ branch: #{ type: "string" } } };
if params.branch == "a" {
    stage("a", || test::mutate(#{ name: "x" }));
} else {
    stage("b", || test::mutate(#{ name: "y" }));
}
"#;

/// Runs BRANCHES with branch=a, then cuts the journal right after `x` was sent.
async fn in_doubt_on_branch_a(f: &Fixture) -> String {
    let path = write(f.dir.path(), "branches.rhai", BRANCHES);
    let runbook = f.engine.load(&path).expect("loads");
    let opts = RunOptions::new(f.dir.path().join("state"));
    let report = f.engine.run(&runbook, &[("branch".into(), "a".into())], opts).await.expect("runs");
    assert_eq!(report.status, RunStatus::Succeeded);
    let text = std::fs::read_to_string(&report.journal).expect("journal");
    let mut kept = String::new();
    for line in text.lines() {
        kept.push_str(line);
        kept.push('\n');
        if line.contains("\"type\":\"call_started\"") {
            break;
        }
    }
    std::fs::write(&report.journal, kept).expect("cut");
    report.run_id
}

async fn resume_on_branch_b(f: &Fixture, id: &str) -> RunReport {
    let state = f.dir.path().join("state");
    let (runbook, params, from) =
        f.engine.prepare_resume(&state, id, false, &[("branch".into(), "b".into())]).expect("resumable");
    let mut opts = RunOptions::new(state);
    opts.resume = Some(from);
    f.engine.run(&runbook, &params, opts).await.expect("resume starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_in_doubt_that_took_effect_off_the_resumed_branch_is_reported_exit_3() {
    let f = fixture_in(tempfile::tempdir().expect("tempdir"));
    let id = in_doubt_on_branch_a(&f).await;
    let report = resume_on_branch_b(&f, &id).await;
    assert_eq!(report.exit_code, 3, "{report:?}");
    let all = format!("{:?} {:?}", report.error, report.undo_pending);
    assert!(all.contains("test::mutate") && all.contains("test/x"), "names the call: {all}");
    let read = read_journal(&report.journal).expect("journal");
    assert!(
        read.records.iter().any(|r| matches!(&r.event, Event::CallVerified { applied: Some(true), .. })),
        "the unreached call was checked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_in_doubt_that_did_not_take_effect_off_the_resumed_branch_is_settled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = fixture_in(dir);
    let id = in_doubt_on_branch_a(&first).await;
    // A fresh recorder: the call in doubt never reached the system.
    let f = fixture_in(first.dir);
    let report = resume_on_branch_b(&f, &id).await;
    assert_eq!(report.exit_code, 0, "{report:?}");
    assert_eq!(f.recorder.calls.lock().expect("recorder").clone(), vec!["y"]);
    let read = read_journal(&report.journal).expect("journal");
    assert!(
        read.records.iter().any(|r| matches!(&r.event, Event::CallVerified { applied: Some(false), .. })),
        "the unreached call was checked and journaled"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_target_can_be_locked() {
    let f = fixture_in(tempfile::tempdir().expect("tempdir"));
    let long = "n".repeat(300);
    let path = write(
        f.dir.path(),
        "long.rhai",
        &format!(
            r#"stage("s", || test::mutate(#{{ name: "{long}" }})); stage("t", || test::mutate(#{{ name: "{long}2" }}));"#
        ),
    );
    let runbook = f.engine.load(&path).expect("loads");
    let report =
        f.engine.run(&runbook, &[], RunOptions::new(f.dir.path().join("state"))).await.expect("runs");
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(f.recorder.calls.lock().expect("recorder").len(), 2);
}

/// A run that died holding the lock on `test/x` after completing a stage.
fn dead_run_holding_x(state: &Path) -> String {
    let dead = "20260101T000000Z-dead00";
    let started = serde_json::json!({
        "seq": 1, "ts": "2026-01-01T00:00:00Z", "type": "run_started", "run_id": dead,
        "runbook": { "name": "x", "version": "0.0.0", "path": "/nowhere/x.rhai", "hash": "sha256:0" },
        "params": {}, "dry_run": false, "yes": false, "user": "u", "host": "h", "pid": 1,
        "rollbook_version": "0"
    });
    let stage = serde_json::json!({
        "seq": 2, "ts": "2026-01-01T00:00:01Z", "type": "stage_finished", "stage": "one", "ok": true,
        "value": 1, "has_undo": true, "duration_ms": 1
    });
    write(&state.join("runs"), &format!("{dead}.jsonl"), &format!("{started}\n{stage}\n"));
    let holder =
        serde_json::json!({ "run_id": dead, "pid": 1, "host": "h", "since": "2026-01-01T00:00:00Z" });
    write(&state.join("locks"), "test~x.lock", &holder.to_string());
    dead.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lock_of_a_dead_run_with_completed_stages_is_not_taken_over() {
    let f = fixture_in(tempfile::tempdir().expect("tempdir"));
    let state = f.dir.path().join("state");
    let dead = dead_run_holding_x(&state);
    let path = write(f.dir.path(), "x.rhai", r#"stage("s", || test::mutate(#{ name: "x" }));"#);
    let runbook = f.engine.load(&path).expect("loads");
    let report = f.engine.run(&runbook, &[], RunOptions::new(&state)).await.expect("runs");
    assert_eq!(report.exit_code, 5, "{report:?}");
    let error = report.error.unwrap_or_default();
    assert!(error.contains(&format!("rollbook resume {dead}")), "points to resume: {error}");
    assert!(f.recorder.calls.lock().expect("recorder").is_empty(), "nothing was changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn force_takes_over_the_lock_of_a_dead_run_with_completed_stages() {
    let f = fixture_in(tempfile::tempdir().expect("tempdir"));
    let state = f.dir.path().join("state");
    dead_run_holding_x(&state);
    let path = write(f.dir.path(), "x.rhai", r#"stage("s", || test::mutate(#{ name: "x" }));"#);
    let runbook = f.engine.load(&path).expect("loads");
    let mut opts = RunOptions::new(&state);
    opts.take_over = true;
    let report = f.engine.run(&runbook, &[], opts).await.expect("runs");
    assert_eq!(report.exit_code, 0, "{report:?}");
    assert_eq!(f.recorder.calls.lock().expect("recorder").clone(), vec!["x"]);
}

const FLAKY_UNDO: &str = r#"
const RUNBOOK = #{ name: "flaky-undo", params: #{ flaky: #{ type: "string" } } };
stage("first", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a", fail: params.flaky == "yes" }));
stage("second", || test::mutate(#{ name: "b" }), || test::mutate(#{ name: "undo-b" }));
fail("boom");
"#;

#[tokio::test(flavor = "multi_thread")]
async fn undo_finishes_what_a_failed_undo_left_and_never_undoes_a_stage_twice() {
    let f = fixture_in(tempfile::tempdir().expect("tempdir"));
    let state = f.dir.path().join("state");
    let path = write(f.dir.path(), "flaky.rhai", FLAKY_UNDO);
    let runbook = f.engine.load(&path).expect("loads");
    let first = f
        .engine
        .run(&runbook, &[("flaky".into(), "yes".into())], RunOptions::new(&state))
        .await
        .expect("runs");
    assert_eq!(first.status, RunStatus::UndoFailed, "{first:?}");
    assert_eq!(first.undo_pending, vec!["first"]);

    let ended = [RunStatus::UndoFailed];
    let (runbook, params, mut from) = f
        .engine
        .prepare_resume_after(&state, &first.run_id, false, &[("flaky".into(), "no".into())], &ended)
        .expect("an undo_failed run can be undone");
    from.undo = true;
    let mut opts = RunOptions::new(&state);
    opts.resume = Some(from);
    let report = f.engine.run(&runbook, &params, opts).await.expect("undo starts");
    assert!(report.undo_pending.is_empty(), "{report:?}");
    assert_eq!(report.undone, vec!["first"]);
    assert_eq!(
        f.recorder.calls.lock().expect("recorder").clone(),
        vec!["a", "b", "undo-b", "undo-a"],
        "stage two was undone once, by the first run; nothing was done again"
    );
    let read = read_journal(&report.journal).expect("journal");
    assert!(matches!(read.records.last().map(|r| &r.event), Some(Event::RunFinished { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedder_cannot_resume_a_sandbox_run_outside_a_simulator() {
    let f = fixture_in(tempfile::tempdir().expect("tempdir"));
    let state = f.dir.path().join("state");
    let path = write(f.dir.path(), "s.rhai", r#"stage("s", || test::mutate(#{ name: "s" })); fail("stop");"#);
    let runbook = f.engine.load(&path).expect("loads");
    let mut opts = RunOptions::new(&state);
    opts.sandbox =
        Some(rollbook::run::ScenarioInfo { path: "/scenario.toml".into(), hash: "sha256:0".into() });
    let first = f.engine.run(&runbook, &[], opts).await.expect("runs");
    let text = unfinish(&first.journal);
    std::fs::write(&first.journal, text).expect("rewrite");
    let (runbook, params, from) =
        f.engine.prepare_resume(&state, &first.run_id, false, &[]).expect("prepares");
    let mut opts = RunOptions::new(&state);
    opts.resume = Some(from);
    let refused = f.engine.run(&runbook, &params, opts).await;
    let Err(e) = refused else { panic!("a sandbox run resumed as a real one") };
    assert!(e.to_string().contains("sandbox run"), "{e}");
}

/// A sandbox run in a new state dir creates every folder it needs private (the shipped
/// library's cache, the sandbox's own state dir) and so never warns about its own folders.
#[test]
fn a_sandbox_run_creates_its_state_folders_private_and_does_not_warn_about_them() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("new").join("state");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["run", "rollbook/k8s-rollout-undo", "--sandbox"])
        .arg(root.join("runbooks/k8s-rollout-undo.healthy.toml"))
        .arg("--state-dir")
        .arg(&state)
        .env_remove("ROLLBOOK_STATE_DIR")
        .current_dir(dir.path())
        .output()
        .expect("run");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("accessible"), "no warning about folders rollbook made itself: {stderr}");
    let mut dirs = vec![state.clone()];
    while let Some(d) = dirs.pop() {
        let mode = std::fs::metadata(&d).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "`{}` is private", d.display());
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
}

/// A secret param given with a value of the wrong type is refused without showing the value.
#[test]
fn an_ill_typed_secret_param_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = write(
        dir.path(),
        "typed.rhai",
        r#"const RUNBOOK = #{ name: "typed", params: #{ pin: #{ type: "int", secret: true } } };
           "never""#,
    );
    let out = rollbook(&[
        "run",
        runbook.to_str().expect("path"),
        "-p",
        "pin=hunter2-not-a-number",
        "--state-dir",
        dir.path().join("state").to_str().expect("path"),
    ]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("pin"), "the message names the param: {stderr}");
    assert!(!format!("{stdout}{stderr}").contains("hunter2"), "the value is masked: {stdout}\n{stderr}");
}
