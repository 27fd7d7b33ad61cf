//! The binary at the edges: Ctrl-C and SIGTERM leave a run resumable (exit 3) and `rollbook
//! resume` finishes it; a closed stdout/stderr never kills a run or panics a listing; terminal
//! control characters are escaped; the JUnit report stays well-formed; runbooks and scenarios
//! are read only from regular files of bounded size.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Rollbook, Running, World, rollbook, texts, write};

const WEB: &str = "[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nrevisions = [\"shop/web:1.4.0\", \"shop/web:1.5.0\"]\n";

const K: &str = r#"context: "prod", namespace: "shop", deployment: "web""#;

/// Two stages around `middle`: stage one sets image 1.6.0 (undo: roll back), stage two scales to 5.
fn two_stages(middle: &str) -> String {
    format!(
        "const RUNBOOK = #{{ name: \"two-stages\", version: \"1.0.0\" }};\nstage(\"one\", || k8s::set_image(#{{ {K}, image: \"shop/web:1.6.0\" }}), || k8s::undo(#{{ {K} }}));\n{middle}\nstage(\"two\", || k8s::scale(#{{ {K}, replicas: 5 }}));\n"
    )
}

/// `rollbook sim serve` on a scenario, and the kubeconfig it wrote; killed on drop.
struct Sim {
    child: Child,
    kubeconfig: PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sim(dir: &Path) -> Sim {
    let scenario = write(dir, "world.toml", WEB);
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["sim", "serve", path(&scenario), "--kubeconfig", path(&kubeconfig)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sim serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    assert!(line.contains("kubeconfig"), "{line}");
    Sim { child, kubeconfig }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn kubectl(sim: &Sim, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(["--kubeconfig", path(&sim.kubeconfig), "--cache-dir", path(&dir.join("kube-cache"))])
        .args(["--context", "prod", "-n", "shop"])
        .args(args)
        .output()
        .expect("kubectl");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "kubectl {args:?}: {stderr}");
    stdout
}

fn image_and_replicas(sim: &Sim, dir: &Path) -> String {
    kubectl(
        sim,
        dir,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.spec.replicas}",
        ],
    )
}

/// The only journal in `state` (sandbox runs keep theirs under `sandbox/`), once it exists.
fn journal(state: &Path) -> Option<PathBuf> {
    [state.join("runs"), state.join("sandbox").join("runs")].into_iter().find_map(|dir| {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
    })
}

/// Starts `rollbook ARGS` (no terminal, output piped) and returns once its journal shows a
/// completed stage.
fn run_past_first_stage(args: &[&str], state: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    wait_for_journal(state, "\"stage_finished\"");
    child
}

/// Waits (polling the journal, up to a generous bound) until it contains `needle`.
fn wait_for_journal(state: &Path, needle: &str) -> String {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(text) = journal(state).and_then(|p| std::fs::read_to_string(p).ok())
            && text.contains(needle)
        {
            return text;
        }
        assert!(Instant::now() < until, "the journal never showed {needle}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = child.id() as i32;
    // SAFETY: sends a signal to our own child process, whose pid we hold.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

fn run_id(journal_text: &str) -> String {
    let first: serde_json::Value =
        serde_json::from_str(journal_text.lines().next().expect("a first line")).expect("json line");
    first["run_id"].as_str().expect("run id").to_string()
}

#[test]
fn ctrl_c_leaves_a_run_resumable_and_resume_finishes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    // Between the stages, wait (up to an hour) for the deployment to be paused.
    let wait =
        format!("wait_until(#{{ timeout: \"1h\", interval: \"1s\" }}, || k8s::get(#{{ {K} }}).paused);");
    let rb = write(dir.path(), "two.rhai", &two_stages(&wait));
    let state = dir.path().join("state");
    let child = run_past_first_stage(
        &["run", path(&rb), "--kubeconfig", path(&sim.kubeconfig), "--state-dir", path(&state)],
        &state,
    );
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().expect("run ends");
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let text = std::fs::read_to_string(journal(&state).expect("journal")).expect("journal text");
    let id = run_id(&text);
    assert!(text.contains("\"status\":\"interrupted\""), "journal says interrupted: {text}");
    assert!(!text.contains("undo_failed") && !text.contains("undo_started"), "no undo was tried: {text}");
    assert!(
        err.contains(&format!("rollbook resume {id}")) && err.contains(&format!("rollbook undo {id}")),
        "{err}"
    );
    assert_eq!(image_and_replicas(&sim, dir.path()), "shop/web:1.6.0 1", "stage one done, stage two not");

    // The condition it waited for comes true; `rollbook resume` continues where it stopped.
    kubectl(&sim, dir.path(), &["rollout", "pause", "deployment/web"]);
    let out = rollbook(&["resume", &id, "--kubeconfig", path(&sim.kubeconfig), "--state-dir", path(&state)]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("stage one (done before the interruption)"), "{err}");
    assert_eq!(image_and_replicas(&sim, dir.path()), "shop/web:1.6.0 5");
}

/// A sandbox run of two stages with a long sleep between them, started in the background;
/// returns once its journal shows the first stage done.
fn sandbox_run_past_first_stage() -> Running {
    let run = Rollbook::new()
        .script_named("two.rhai", &two_stages("sleep(\"300d\");"))
        .world(World::toml(WEB))
        .scenario_file("world.toml")
        .sandbox()
        .spawn();
    run.wait_for_journal("\"stage_finished\"");
    run
}

#[test]
fn sigint_and_sigterm_stop_a_sandbox_run_resumable_without_undo() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let run = sandbox_run_past_first_stage();
        run.signal(sig);
        let out = run.finish();
        let err = out.stderr();
        assert_eq!(out.code(), Some(3), "signal {sig}: {err}");
        let text = out.journal_text();
        assert!(text.contains("\"stage\":\"one\",\"ok\":true"), "{text}");
        assert!(text.contains("\"status\":\"interrupted\""), "{text}");
        assert!(!text.contains("undo_started"), "{text}");
        let id = run_id(&text);
        assert!(err.contains(&format!("rollbook resume {id}")), "{err}");

        // `rollbook undo` undoes the completed stage, in the run's own journal, inside a
        // simulator rebuilt from the recorded scenario.
        let undo = out.then(&["undo", &id]);
        assert_eq!(undo.code(), Some(0), "signal {sig}: {}", undo.stderr());
        let text = out.journal_text();
        assert!(text.contains("\"undo_started\"") && text.contains("\"stage\":\"one\""), "{text}");
        assert!(!text.contains("undo_failed"), "{text}");
    }
}

/// A pipe whose reader keeps only the first line, then closes (like `| head -1`).
fn head_one(mut reader: std::io::PipeReader) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut first = Vec::new();
        let mut byte = [0u8; 1];
        while reader.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
            first.push(byte[0]);
        }
        drop(reader);
        String::from_utf8_lossy(&first).into_owned()
    })
}

#[test]
fn a_closed_stdout_and_stderr_never_kill_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    // Plenty of output after the reader is gone.
    let rb = write(dir.path(), "two.rhai", &two_stages("for i in 0..3000 { info(`line ${i}`); }"));
    let state = dir.path().join("state");
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["run", path(&rb), "--kubeconfig", path(&sim.kubeconfig), "--state-dir", path(&state)])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("clone writer"))
        .stderr(writer)
        .spawn()
        .expect("spawn run");
    let first = head_one(reader).join().expect("reader");
    assert!(first.contains("rollbook"), "{first}");
    let status = child.wait().expect("run ends");
    assert_eq!(status.code(), Some(0), "the run completed although nobody read its output");
    let text = std::fs::read_to_string(journal(&state).expect("journal")).expect("journal text");
    assert!(
        text.contains("\"stage\":\"two\",\"ok\":true") && text.contains("\"status\":\"succeeded\""),
        "{text}"
    );
    assert_eq!(image_and_replicas(&sim, dir.path()), "shop/web:1.6.0 5");
}

#[test]
fn listings_exit_quietly_into_a_closed_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let rb = write(dir.path(), "hello.rhai", "info(\"hello\");");
    for _ in 0..3 {
        assert_eq!(rollbook(&["run", path(&rb), "--state-dir", path(&state)]).status.code(), Some(0));
    }
    let scenario =
        format!("{WEB}\n[test]\nrunbook = \"hello.rhai\"\n[test.expect]\noutcome = \"succeeded\"\n");
    write(dir.path(), "hello.toml", &scenario);
    for args in [
        vec!["runs", "list", "--state-dir", path(&state)],
        vec!["runs", "list", "--output", "json", "--state-dir", path(&state)],
        vec!["test", path(dir.path())],
    ] {
        // The reader is gone before the first line is written.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_rollbook"))
            .args(&args)
            .env("NO_COLOR", "1")
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run rollbook");
        let (_, err) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn control_characters_reach_the_terminal_escaped_and_the_journal_raw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let rb = write(
        dir.path(),
        "esc.rhai",
        "info(\"title \\x1b]0;pwned\\x07 and \\x1b[2J clear\");\nstage(\"s\\x1b[31m\", || 1);\nfail(\"bad\\x1b[2J\\r\\nfake: ok\");\n",
    );
    let out = rollbook(&["run", path(&rb), "--state-dir", path(&state)]);
    let (stdout, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}') && !stdout.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("\\u{1b}]0;pwned\\u{7}"), "{err}");
    assert!(!err.lines().any(|l| l.starts_with("fake: ok")), "no forged line: {err}");
    let text = std::fs::read_to_string(journal(&state).expect("journal")).expect("journal text");
    assert!(text.contains("\\u001b]0;pwned\\u0007"), "the journal keeps the raw text: {text}");
}

/// A primitive call's line (its output, or its error) is built straight from the call's event:
/// every piece of it reaches the terminal escaped too, and the journal keeps it raw.
#[test]
fn control_characters_in_a_calls_output_and_error_reach_the_terminal_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let scenario = write(
        dir.path(),
        "esc.toml",
        "name = \"an image with control characters\"\n[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nrevisions = [\"shop/web:1.0\", \"shop/web:1.1\\u001b]0;pwned\\u0007\"]\n",
    );
    let rb = write(
        dir.path(),
        "esc.rhai",
        "k8s::get(#{ context: \"prod\", namespace: \"shop\", deployment: \"web\" });\n\
         let ctx = \"gone\";\n\
         ctx += \"\\x1b[2J\";\n\
         k8s::history(#{ context: ctx, namespace: \"shop\", deployment: \"web\" });\n",
    );
    let out = rollbook(&["run", path(&rb), "--sandbox", path(&scenario), "--state-dir", path(&state)]);
    let (stdout, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}') && !stdout.contains('\u{1b}'), "{err:?}");
    let ok_line = err.lines().find(|l| l.contains("k8s::get")).unwrap_or_default();
    assert!(ok_line.contains("\\u{1b}]0;pwned\\u{7}"), "the output's image, escaped: {err}");
    let error_line = err.lines().find(|l| l.contains("k8s::history")).unwrap_or_default();
    assert!(
        error_line.contains("error") && error_line.contains("gone\\u{1b}[2J"),
        "the error, escaped: {err}"
    );
    let text = std::fs::read_to_string(journal(&state).expect("journal")).expect("journal text");
    assert!(text.contains("\\u001b]0;pwned\\u0007"), "the journal keeps the raw text: {text}");
}

/// A fleet batch runs one primitive on many clusters at once: each call's line names the
/// target it was for (its error line too), or the operator cannot tell which cluster a line
/// is about. Before, an undo's line read the same on every cluster.
#[test]
fn each_calls_line_in_a_fleet_batch_names_its_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let runbooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let out = rollbook(&[
        "run",
        path(&runbooks.join("aks-fleet-undo.rhai")),
        "--sandbox",
        path(&runbooks.join("aks-fleet-undo.missing-cluster.toml")),
        "--state-dir",
        path(&state),
        "-p",
        "group=rg-weu",
        "-p",
        "clusters=aks-weu-1,aks-weu-2,aks-weu-3,aks-weu-4",
        "-p",
        "namespace=shop",
        "-p",
        "deployments=web,api",
        "-p",
        "only_failing=false",
    ]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "aks-weu-4 is unknown: {err}");
    let lines = |prefix: &str| err.lines().filter(|l| l.trim_start().starts_with(prefix)).count();
    for cluster in ["aks-weu-1", "aks-weu-2", "aks-weu-3"] {
        assert_eq!(lines(&format!("aks::credentials aks/rg-weu/{cluster} {cluster} ")), 1, "{err}");
        for deployment in ["web", "api"] {
            let target = format!("k8s/{cluster}/shop/{deployment}");
            assert_eq!(lines(&format!("k8s::undo {target} changed=true ")), 1, "{target}: {err}");
            assert_eq!(lines(&format!("k8s::status {target} complete=true ")), 1, "{target}: {err}");
        }
    }
    assert_eq!(lines("aks::credentials aks/rg-weu/aks-weu-4 error "), 1, "{err}");
    // No call's line is left without its target.
    let calls = err.lines().filter(|l| l.starts_with("  aks::") || l.starts_with("  k8s::")).count();
    assert_eq!(calls, 4 + 6 + 6, "{err}");

    // The journal's timeline says it too, on the line of each call's end.
    let journal = journal(&state).expect("journal");
    let id = journal.file_stem().and_then(|s| s.to_str()).expect("run id");
    let out = rollbook(&["runs", "show", id, "--state-dir", path(&state)]);
    let (shown, err) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for cluster in ["aks-weu-1", "aks-weu-2", "aks-weu-3"] {
        for deployment in ["web", "api"] {
            let end = format!("← k8s::undo k8s/{cluster}/shop/{deployment} ok ");
            assert_eq!(shown.lines().filter(|l| l.contains(&end)).count(), 1, "{end}: {shown}");
        }
    }
    assert!(shown.contains("← aks::credentials aks/rg-weu/aks-weu-4 error "), "{shown}");

    // A resuming process numbers its calls from 1 again: the end of its call is not given the
    // target of the first process's call of that number that never ended (in doubt).
    let text = std::fs::read_to_string(&journal).expect("journal text");
    let seq = text.lines().count();
    let ts = "2026-11-29T21:00:00.000000000Z";
    let more = format!(
        "{{\"seq\":{},\"ts\":\"{ts}\",\"type\":\"call_started\",\"call\":999,\"primitive\":\"k8s::undo\",\"access\":\"mutate\",\"target\":\"k8s/gone/shop/web\",\"args\":{{}}}}\n\
         {{\"seq\":{},\"ts\":\"{ts}\",\"type\":\"run_resumed\",\"pid\":1,\"user\":\"sre\",\"host\":\"vm\",\"forced\":false}}\n\
         {{\"seq\":{},\"ts\":\"{ts}\",\"type\":\"call_started\",\"call\":999,\"primitive\":\"sleep::for\",\"access\":\"read\",\"args\":{{}}}}\n\
         {{\"seq\":{},\"ts\":\"{ts}\",\"type\":\"call_finished\",\"call\":999,\"primitive\":\"sleep::for\",\"ok\":true,\"output\":{{}},\"duration_ms\":1}}\n",
        seq + 1,
        seq + 2,
        seq + 3,
        seq + 4
    );
    std::fs::write(&journal, format!("{text}{more}")).expect("append");
    let out = rollbook(&["runs", "show", id, "--state-dir", path(&state)]);
    let (shown, err) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let end = shown.lines().find(|l| l.contains("← sleep::for")).unwrap_or_default();
    assert!(end.contains("← sleep::for ok "), "no target of another process's call: {shown}");
}

#[test]
fn the_junit_report_stays_well_formed_with_control_characters() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "bell.rhai", "fail(\"ding \\x07\\x1b[2J \\x00 done\");");
    let scenario = format!(
        "name = \"bell \\u0007 case\"\n{WEB}\n[test]\nrunbook = \"bell.rhai\"\n[test.expect]\noutcome = \"succeeded\"\n"
    );
    write(dir.path(), "bell.toml", &scenario);
    let junit = dir.path().join("junit.xml");
    let out = rollbook(&["test", path(&dir.path().join("bell.toml")), "--junit", path(&junit)]);
    let (_, err) = texts(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    let bad: Vec<char> = xml.chars().filter(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')).collect();
    assert!(bad.is_empty(), "characters XML 1.0 forbids: {bad:?} in {xml}");
    assert!(xml.contains("bell \\u{7} case"), "{xml}");
}

#[test]
fn runbooks_and_scenarios_are_read_only_from_small_regular_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    // A runbook just over 4 MiB (comments) used to load and run.
    let big = write(dir.path(), "big.rhai", &format!("{}\ninfo(\"hi\");\n", "// padding\n".repeat(400_000)));
    let out = rollbook(&["run", path(&big), "--state-dir", path(&state)]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("larger than the limit of 4 MiB"), "{err}");

    let rb = write(dir.path(), "hello.rhai", "info(\"hello\");");
    for args in [
        vec!["run", "/dev/zero", "--state-dir", path(&state)],
        vec!["run", path(&rb), "--sandbox", "/dev/zero", "--state-dir", path(&state)],
        vec!["run", path(dir.path()), "--state-dir", path(&state)],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rollbook"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // A generous bound: the old code read /dev/zero until memory ran out.
        let until = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("{args:?} did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        let _ = child.stderr.take().expect("stderr").read_to_string(&mut err);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not a regular file"), "{args:?}: {err}");
    }
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_the_run_stays_resumable() {
    let run = sandbox_run_past_first_stage();
    run.signal(libc::SIGINT);
    run.signal(libc::SIGINT);
    let out = run.finish();
    let err = out.stderr();
    assert_eq!(out.code(), Some(3), "{err}");
    let text = out.journal_text();
    let id = run_id(&text);
    // Whichever signal ended it, nothing was undone and the run can be continued.
    assert!(!text.contains("undo_started") && !text.contains("undo_failed"), "{text}");
    let ended = text.lines().find(|l| l.contains("\"run_finished\""));
    assert!(ended.is_none_or(|l| l.contains("\"status\":\"interrupted\"")), "{text}");
    assert!(err.contains(&format!("rollbook resume {id}")), "{err}");
}

/// `rollbook undo` reaches a stage's undo by replaying the script; when the script takes
/// another branch this time and never reaches a completed stage, that stage is reported as not
/// undone (exit 3), never passed over in silence.
#[test]
fn undo_reports_a_completed_stage_its_replay_never_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim(dir.path());
    let rb = write(
        dir.path(),
        "branchy.rhai",
        &format!(
            "const RUNBOOK = #{{ name: \"branchy\", version: \"1.0.0\" }};\nlet k = #{{ {K} }};\nif k8s::get(k).paused {{ info(\"paused: nothing to do\"); return; }}\nstage(\"one\", || k8s::scale(k + #{{ replicas: 5 }}), || k8s::scale(k + #{{ replicas: 1 }}));\napprove(\"go on?\");\n"
        ),
    );
    let state = dir.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["run", path(&rb), "--kubeconfig", path(&sim.kubeconfig), "--state-dir", path(&state)])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4), "denied: {:?}", texts(&out));
    let id = run_id(&std::fs::read_to_string(journal(&state).expect("journal")).expect("journal text"));

    // The world changed since: the script now returns before its stage.
    kubectl(&sim, dir.path(), &["rollout", "pause", "deployment/web"]);
    let out = rollbook(&["undo", &id, "--kubeconfig", path(&sim.kubeconfig), "--state-dir", path(&state)]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("stage `one`") && err.contains("never reached"), "{err}");
    assert_eq!(
        image_and_replicas(&sim, dir.path()),
        "shop/web:1.5.0 5",
        "nothing was undone, and it says so"
    );
}
