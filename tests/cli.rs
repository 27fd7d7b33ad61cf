//! The real binary: check, params, exit codes, runs, docs.

use std::time::Duration;

use axum::Router;
use axum::routing::get;

use crate::support::{Rollbook, rollbook, serve_in_background, texts, write};

#[test]
fn check_reports_a_syntax_error_with_file_line_col_and_a_caret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bad.rhai", "let a = 1;\nlet b = (a + 2;\ninfo(b);\n");
    let out = rollbook(&["check", path.to_str().expect("utf-8")]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.rhai:2:"), "{err}");
    assert!(err.contains('^'), "a caret under the spot: {err}");
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn check_names_a_misspelled_key_and_suggests_the_valid_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "typo.rhai",
        "let h = health::http(#{\n    url: \"http://127.0.0.1:1/\",\n    atempts: 3,\n});\nhealth::probe(#{ url: \"x\" });\nstge(\"x\", || 1);\n",
    );
    let out = rollbook(&["check", path.to_str().expect("utf-8")]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("typo.rhai:3:5: `health::http` has no key `atempts`"), "{err}");
    assert!(err.contains("did you mean `attempts`?"), "{err}");
    assert!(err.contains("unknown primitive `health::probe`"), "{err}");
    assert!(err.contains("unknown function `stge`") && err.contains("did you mean `stage`?"), "{err}");

    let par = write(
        dir.path(),
        "par.rhai",
        "parallel([1, 2], |i| i, #{ concurrency: 2, timeout: \"5s\", fail_fats: true });\n",
    );
    let out = rollbook(&["check", par.to_str().expect("utf-8")]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`parallel` has no key `fail_fats`") && err.contains("did you mean `fail_fast`?"),
        "{err}"
    );

    let ns = write(dir.path(), "ns.rhai", "helth::http(#{ url: \"x\" });\n");
    let out = rollbook(&["check", ns.to_str().expect("utf-8")]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ns.rhai:1:1: syntax error: Undefined module: helth")
            && err.contains("did you mean `health`?"),
        "{err}"
    );
}

#[test]
fn check_passes_a_good_runbook_and_flags_bad_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(
        dir.path(),
        "good.rhai",
        "const RUNBOOK = #{ name: \"g\", version: \"1.0.0\", params: #{ url: #{ type: \"string\" } } };\nimport \"std/health\" as hg;\nlet r = hg::wait_healthy(params.url, \"1m\");\nif !r.ok { fail(r.error) }\nlet x = retry(#{ attempts: 2 }, || 1);\n",
    );
    let out = rollbook(&["check", good.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));

    let meta = write(
        dir.path(),
        "meta.rhai",
        "const RUNBOOK = #{ name: \"m\", version: \"1.0.0\", params: #{ n: #{ type: \"int\", default: 1 } } };\n",
    );
    let out = rollbook(&["check", meta.to_str().expect("utf-8")]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("default_value"), "{err}");
}

const PARAMS_RUNBOOK: &str = "const RUNBOOK = #{ name: \"p\", version: \"1.0.0\", params: #{ site: #{ type: \"string\" }, attempts: #{ type: \"int\", default_value: 3 } } };\ninfo(params.site);\n";

#[test]
fn bad_params_exit_2_before_anything_runs() {
    for (args, expected) in [
        (vec![], "missing required param `site`"),
        (vec!["-p", "site=web", "-p", "atempts=3"], "unknown param `atempts`; did you mean `attempts`?"),
        (vec!["-p", "site=web", "-p", "attempts=three"], "param `attempts`: `three` is not an int"),
        (vec!["-p", "site"], "write params as KEY=VALUE"),
    ] {
        let out = Rollbook::new()
            .script_named("p.rhai", PARAMS_RUNBOOK)
            .args(&args)
            .run()
            .exits(2)
            .stderr_has(expected);
        assert!(out.journals().is_empty(), "no run was started, so no journal exists");
    }
}

#[test]
fn missing_runbook_and_unusable_state_dir_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = rollbook(&["run", dir.path().join("nope.rhai").to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("cannot read runbook"));

    let rb = write(dir.path(), "ok.rhai", "info(\"hi\");\n");
    let blocker = write(dir.path(), "not-a-dir", "");
    let out =
        rollbook(&["run", rb.to_str().expect("utf-8"), "--state-dir", blocker.to_str().expect("utf-8")]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot use state directory"), "{err}");
}

#[test]
fn approval_without_terminal_or_yes_exits_4_and_yes_passes() {
    let out = Rollbook::new()
        .script_named("a.rhai", "approve(\"swap production?\");\ninfo(\"approved\");\n")
        .run()
        .exits(4)
        .stderr_has("approval denied");
    let rb = out.dir().join("a.rhai").display().to_string();
    out.then(&["run", &rb, "--yes"]).succeeds();
}

#[test]
fn timeout_stops_a_run_blocked_in_a_slow_probe() {
    let base = serve_in_background(|| async {
        Router::new().route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let rb = write(
        dir.path(),
        "t.rhai",
        &format!("health::http(#{{ url: \"{base}/hang\", timeout: \"60s\" }});\n"),
    );
    let st = dir.path().join("state");
    let started = std::time::Instant::now();
    let out = rollbook(&[
        "run",
        rb.to_str().expect("utf-8"),
        "--state-dir",
        st.to_str().expect("utf-8"),
        "--timeout",
        "1s",
    ]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the run exceeded its time limit of 1s"), "{err}");
    assert!(err.contains("--timeout"), "help names the flag: {err}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // The journal says how far it got.
    let out = rollbook(&["runs", "list", "--state-dir", st.to_str().expect("utf-8"), "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(runs[0]["status"], "failed");
    let id = runs[0]["id"].as_str().expect("id").to_string();
    let out = rollbook(&["runs", "show", &id[..12], "--state-dir", st.to_str().expect("utf-8")]);
    let (text, _) = texts(&out);
    assert!(text.contains("→ health::http"), "{text}");
    assert!(text.contains("failed (exit 1)"), "{text}");
}

#[test]
fn dry_run_prints_a_plan_and_json_on_request() {
    let out = Rollbook::new()
        .script_named("d.rhai", "stage(\"gate\", || approve(\"go?\"));\ninfo(\"after\");\n")
        .dry_run()
        .run()
        .succeeds()
        .stdout_has("Plan: 1 step(s) (dry-run; nothing was changed)")
        .stdout_has("1. approve  [stage gate]");
    let rb = out.dir().join("d.rhai").display().to_string();
    let report = out.then(&["run", &rb, "--dry-run", "--output", "json"]).report();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["plan"][0]["call"], "approve");
}

#[test]
fn runs_list_json_has_the_contract_fields_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = dir.path().join("state");
    let ok = write(dir.path(), "ok.rhai", "const RUNBOOK = #{ name: \"first\", version: \"0.1.0\" };\n1\n");
    let bad = write(dir.path(), "bad.rhai", "fail(\"no\");\n");
    rollbook(&["run", ok.to_str().expect("utf-8"), "--state-dir", st.to_str().expect("utf-8")]);
    std::thread::sleep(Duration::from_millis(1100));
    rollbook(&["run", bad.to_str().expect("utf-8"), "--state-dir", st.to_str().expect("utf-8")]);
    let out = rollbook(&["runs", "list", "--output", "json", "--state-dir", st.to_str().expect("utf-8")]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let runs = runs.as_array().expect("array");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["runbook"], "bad");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[1]["runbook"], "first");
    assert_eq!(runs[1]["status"], "succeeded");
    for r in runs {
        let keys: Vec<&str> = r.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["id", "mode", "runbook", "started", "status"]);
        assert_eq!(r["mode"], "real");
    }
}

#[test]
fn docs_list_every_primitive_and_builtin_with_a_doc_line() {
    let engine = rollbook::engine::Engine::new();
    let out = rollbook(&["docs"]);
    let (md, _) = texts(&out);
    assert_eq!(out.status.code(), Some(0));
    for p in engine.primitives() {
        let m = p.meta();
        assert!(!m.doc.trim().is_empty(), "{} has no doc line", m.full_name());
        assert!(
            !m.keys_doc.trim().is_empty() && !m.returns.trim().is_empty(),
            "{} lacks keys or returns",
            m.full_name()
        );
        assert!(md.contains(&format!("### `{}(", m.full_name())), "{} missing from docs", m.full_name());
        assert!(md.contains(m.doc), "{} doc line missing", m.full_name());
    }
    for b in rollbook::engine::docs::BUILTINS {
        assert!(!b.doc.trim().is_empty(), "{} has no doc line", b.name);
        assert!(md.contains(b.doc), "{} missing from docs", b.name);
    }
    insta::assert_snapshot!("docs_markdown", md);

    let out = rollbook(&["docs", "--format", "definitions"]);
    let (defs, _) = texts(&out);
    assert!(defs.contains("module health {"), "{defs}");
    assert!(defs.contains("fn http(options: Map) -> ?;"), "{defs}");
    assert!(defs.contains("fn stage(name: String, action: Fn, undo: Fn) -> ?;"), "{defs}");
}

#[test]
fn completions_and_man_page_are_generated() {
    let out = rollbook(&["completions", "bash"]);
    let (bash, _) = texts(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(bash.contains("_rollbook()") && bash.contains("resume") && bash.contains("--sandbox"), "{bash}");
    let out = rollbook(&["completions", "zsh"]);
    assert!(texts(&out).0.contains("#compdef rollbook"));
    let out = rollbook(&["man"]);
    let (man, _) = texts(&out);
    assert!(man.contains(".TH rollbook 1") && man.contains("SUBCOMMANDS"), "{man}");
}
