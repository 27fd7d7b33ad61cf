//! The preflight at the start of `run`, and `rollbook doctor`: credentials, the subscription and
//! the Kubernetes contexts a runbook needs are checked before the first probe (exit 2 naming
//! what is missing).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{serve_in_background, texts, write};

const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: prod\n  context:\n    cluster: a\n    user: u\n    namespace: shop\ncurrent-context: prod\nusers:\n- name: u\n  user:\n    token: t\n";

/// Runs the binary with only the environment given (plus PATH and a HOME of its own).
fn rollbook_env(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollbook"));
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .current_dir(home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rollbook")
}

/// A health endpoint that counts the probes it gets.
fn counting_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let url = serve_in_background(move || async move {
        axum::Router::new().fallback(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        })
    });
    (url, hits)
}

#[test]
fn a_missing_kubernetes_context_stops_the_run_before_the_first_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write(dir.path(), "kubeconfig", KUBECONFIG);
    let (url, hits) = counting_server();
    let book = write(
        dir.path(),
        "b.rhai",
        &format!(
            r#"const RUNBOOK = #{{ name: "b", params: #{{ context: #{{ type: "string" }} }}, scope: ["k8s/*/*/*"] }};
let h = health::http(#{{ url: "{url}/healthz" }});
k8s::undo(#{{ context: params.context, namespace: "shop", deployment: "web" }});
"#
        ),
    );
    let state = dir.path().join("state");
    let out = rollbook_env(
        dir.path(),
        &[("KUBECONFIG", &kubeconfig.display().to_string())],
        &[
            "run",
            &book.display().to_string(),
            "-p",
            "context=staging",
            "--state-dir",
            &state.display().to_string(),
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("preflight") && stderr.contains("context `staging` not found"), "{stderr}");
    assert!(stderr.contains("known contexts: prod"), "{stderr}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no probe was sent");
    assert!(
        !state.join("runs").exists()
            || std::fs::read_dir(state.join("runs")).map(|d| d.count()).unwrap_or(0) == 0
    );

    // With the context there, the same run gets past the preflight (and probes).
    let out = rollbook_env(
        dir.path(),
        &[("KUBECONFIG", &kubeconfig.display().to_string())],
        &[
            "run",
            &book.display().to_string(),
            "-p",
            "context=prod",
            "--state-dir",
            &state.display().to_string(),
            "--dry-run",
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert!(!stderr.contains("preflight"), "{stdout}{stderr}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the probe ran once the preflight passed");
}

#[test]
fn a_missing_subscription_or_credentials_stop_an_azure_run_at_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let book = write(
        dir.path(),
        "b.rhai",
        r#"const RUNBOOK = #{ name: "b", scope: ["appservice/*/*"] };
info("started");
appservice::swap(#{ group: "rg", site: "web", slot: "staging" });
"#,
    );
    let state = dir.path().join("state").display().to_string();
    let book = book.display().to_string();
    let out =
        rollbook_env(dir.path(), &[("ROLLBOOK_AZURE_TOKEN", "t")], &["run", &book, "--state-dir", &state]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("AZURE_SUBSCRIPTION_ID"), "{stderr}");
    assert!(!stdout.contains("started") && !stderr.contains("started"), "nothing ran");

    let out =
        rollbook_env(dir.path(), &[("AZURE_SUBSCRIPTION_ID", "sub")], &["run", &book, "--state-dir", &state]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("no azure credentials"), "{stderr}");
}

#[test]
fn doctor_lists_each_check_and_fails_when_one_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write(dir.path(), "kubeconfig", KUBECONFIG);
    let state = dir.path().join("state").display().to_string();
    let kc = kubeconfig.display().to_string();
    let shop =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/k8s-roll-forward.rhai").display().to_string();

    let out = rollbook_env(
        dir.path(),
        &[("KUBECONFIG", &kc)],
        &["doctor", &shop, "-p", "deployment=web", "-p", "image=x", "--state-dir", &state],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("ok       kubernetes current context: `prod`"), "{stdout}");
    assert!(!stdout.contains("azure"), "a Kubernetes runbook needs no Azure: {stdout}");

    let out = rollbook_env(
        dir.path(),
        &[("KUBECONFIG", &kc)],
        &[
            "doctor",
            &shop,
            "-p",
            "deployment=web",
            "-p",
            "image=x",
            "-p",
            "context=dev",
            "--state-dir",
            &state,
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("missing  kubernetes context `dev`"), "{stdout}");

    // Without a runbook: everything a runbook could need.
    let out = rollbook_env(
        dir.path(),
        &[("KUBECONFIG", &kc), ("ROLLBOOK_AZURE_TOKEN", "t"), ("AZURE_SUBSCRIPTION_ID", "sub")],
        &["doctor", "--state-dir", &state],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for line in [
        "ok       state dir",
        "ok       azure credentials: ROLLBOOK_AZURE_TOKEN",
        "ok       azure subscription: AZURE_SUBSCRIPTION_ID=sub",
        "ok       kubernetes current context",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert!(!stdout.contains("\"t\"") && !stdout.contains("=t\n"), "the token is never shown: {stdout}");
}
