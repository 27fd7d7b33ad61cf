//! The preflight at the start of `run`, and `rollbook doctor`: credentials, the subscription and
//! the Kubernetes contexts a runbook needs are checked before the first probe (exit 2 naming
//! what is missing).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{Rollbook, serve_in_background};

const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: prod\n  context:\n    cluster: a\n    user: u\n    namespace: shop\ncurrent-context: prod\nusers:\n- name: u\n  user:\n    token: t\n";

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
    let run = Rollbook::new().env_clear();
    let kubeconfig = run.file("kubeconfig", KUBECONFIG).display().to_string();
    let (url, hits) = counting_server();
    let out = run
        .script_named(
            "b.rhai",
            &format!(
                r#"const RUNBOOK = #{{ name: "b", params: #{{ context: #{{ type: "string" }} }}, scope: ["k8s/*/*/*"] }};
let h = health::http(#{{ url: "{url}/healthz" }});
k8s::undo(#{{ context: params.context, namespace: "shop", deployment: "web" }});
"#
            ),
        )
        .env("KUBECONFIG", &kubeconfig)
        .param("context", "staging")
        .run()
        .exits(2);
    let stderr = out.stderr();
    assert!(stderr.contains("preflight") && stderr.contains("context `staging` not found"), "{stderr}");
    assert!(stderr.contains("known contexts: prod"), "{stderr}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no probe was sent");
    assert!(out.journals().is_empty(), "no run was started");

    // With the context there, the same run gets past the preflight (and probes).
    let book = out.dir().join("b.rhai").display().to_string();
    let out = out.then(&["run", &book, "-p", "context=prod", "--dry-run"]);
    let (stdout, stderr) = (out.stdout(), out.stderr());
    assert!(!stderr.contains("preflight"), "{stdout}{stderr}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the probe ran once the preflight passed");
}

#[test]
fn a_missing_subscription_or_credentials_stop_an_azure_run_at_the_start() {
    let book = r#"const RUNBOOK = #{ name: "b", scope: ["appservice/*/*"] };
info("started");
appservice::swap(#{ group: "rg", site: "web", slot: "staging" });
"#;
    Rollbook::new()
        .env_clear()
        .script_named("b.rhai", book)
        .env("ROLLBOOK_AZURE_TOKEN", "t")
        .run()
        .exits(2)
        .stderr_has("AZURE_SUBSCRIPTION_ID")
        .output_lacks("started");

    Rollbook::new()
        .env_clear()
        .script_named("b.rhai", book)
        .env("AZURE_SUBSCRIPTION_ID", "sub")
        .run()
        .exits(2)
        .stderr_has("no azure credentials");
}

#[test]
fn doctor_lists_each_check_and_fails_when_one_is_missing() {
    let doctor = || {
        let run = Rollbook::new().env_clear().command(&["doctor"]);
        let kubeconfig = run.file("kubeconfig", KUBECONFIG).display().to_string();
        run.env("KUBECONFIG", &kubeconfig)
    };
    let runbook = "runbooks/k8s-roll-forward.rhai";

    doctor()
        .runbook(runbook)
        .param("deployment", "web")
        .param("image", "x")
        .run()
        .succeeds()
        .stdout_has("ok       kubernetes current context: `prod`")
        .stdout_lacks("azure");

    doctor()
        .runbook(runbook)
        .param("deployment", "web")
        .param("image", "x")
        .param("context", "dev")
        .run()
        .exits(2)
        .stdout_has("missing  kubernetes context `dev`");

    // Without a runbook: everything a runbook could need.
    let mut out =
        doctor().env("ROLLBOOK_AZURE_TOKEN", "t").env("AZURE_SUBSCRIPTION_ID", "sub").run().succeeds();
    for line in [
        "ok       state dir",
        "ok       azure credentials: ROLLBOOK_AZURE_TOKEN",
        "ok       azure subscription: AZURE_SUBSCRIPTION_ID=sub",
        "ok       kubernetes current context",
    ] {
        out = out.stdout_has(line);
    }
    let stdout = out.stdout();
    assert!(!stdout.contains("\"t\"") && !stdout.contains("=t\n"), "the token is never shown: {stdout}");
}
