//! Rehearsal through the binary: `sim serve`, `run --sandbox`, `rollbook test` with JUnit.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{rollbook, texts, write};

const BROKEN_SITE: &str = r#"
name = "shop-web 1.5.0 is failing in production"

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0" }
broken = ["1.5.0"]

[[health]]
url = "https://shop.example.com/healthz"
follows = "appservice/rg-shop/shop-web"
"#;

const GATE: &str = r#"
const RUNBOOK = #{ name: "gate", version: "1.0.0", params: #{
    url: #{ type: "string" }, interval: #{ type: "duration", default_value: "10s" } } };
let h = health::http(#{ url: params.url, attempts: 3, interval: params.interval });
if !h.ok { fail(`unhealthy: ${h.error}`); }
"#;

#[test]
fn sim_serve_prints_one_json_line_and_kubectl_reaches_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(
        dir.path(),
        "s.toml",
        "[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nrevisions = [\"shop/web:1.4.0\", \"shop/web:1.5.0\"]\n",
    );
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args([
            "sim",
            "serve",
            scenario.to_str().expect("utf-8"),
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sim serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let info: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    assert!(info["arm_endpoint"].as_str().unwrap_or("").starts_with("http://127.0.0.1:"), "{info}");
    assert_eq!(info["kubeconfig"], kubeconfig.to_str().expect("utf-8"));
    assert!(info["health_base"].as_str().unwrap_or("").ends_with("/health"), "{info}");

    let cache = dir.path().join("kube-cache");
    let out = Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
            "--cache-dir",
            cache.to_str().expect("utf-8"),
            "--context",
            "prod",
            "-n",
            "shop",
            "rollout",
            "history",
            "deployment/web",
        ])
        .output()
        .expect("kubectl");
    let _ = child.kill();
    let _ = child.wait();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("deployment.apps/web") && stdout.contains("REVISION"), "{stdout}");

    let bad = write(dir.path(), "bad.toml", "[[k8s.deployments]]\nname = \"web\"\nrevisons = [\"x\"]\n");
    let out = rollbook(&["sim", "serve", bad.to_str().expect("utf-8")]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:3") && err.contains("revisons"), "{err}");
}

#[test]
fn sandbox_runs_the_unchanged_runbook_against_the_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = write(dir.path(), "incident.toml", BROKEN_SITE);
    let rb = write(dir.path(), "gate.rhai", GATE);
    let st = dir.path().join("state");
    let out = rollbook(&[
        "run",
        rb.to_str().expect("utf-8"),
        "--sandbox",
        scenario.to_str().expect("utf-8"),
        "-p",
        "url=https://shop.example.com/healthz",
        "-p",
        "interval=50ms",
        "--state-dir",
        st.to_str().expect("utf-8"),
    ]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("sandbox shop-web 1.5.0 is failing in production"), "{err}");
    assert!(err.contains("failing  appservice/rg-shop/shop-web"), "{err}");
    assert!(err.contains("unhealthy: status 503"), "the scenario URL was answered by the simulator: {err}");
    assert!(err.contains("nothing changed in the simulated world"), "{err}");
}

#[test]
fn rollbook_test_checks_expectations_and_shows_what_was_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "gate.rhai", GATE);
    let good = format!(
        "{BROKEN_SITE}\n[test]\nrunbook = \"../gate.rhai\"\nparams = {{ url = \"https://shop.example.com/healthz\" }}\n\n[test.expect]\noutcome = \"failed\"\nmutations = []\n[test.expect.state]\n\"appservice/rg-shop/shop-web\" = {{ production = \"1.5.0\" }}\n"
    );
    write(dir.path(), "cases/good.toml", &good);
    let wrong = good
        .replace("{ production = \"1.5.0\" }", "{ production = \"1.4.0\" }")
        .replace("outcome = \"failed\"", "outcome = \"succeeded\"");
    write(dir.path(), "cases/wrong.toml", &wrong);
    write(dir.path(), "cases/plain.toml", BROKEN_SITE);

    let junit = dir.path().join("junit.xml");
    let out = rollbook(&[
        "test",
        dir.path().join("cases").to_str().expect("utf-8"),
        "--junit",
        junit.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("ok    ") && stdout.contains("good.toml"), "{stdout}");
    assert!(stdout.contains("FAIL  ") && stdout.contains("wrong.toml"), "{stdout}");
    assert!(
        stdout.contains("outcome: expected `succeeded`, found `failed` (unhealthy: status 503"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("state `appservice/rg-shop/shop-web`.production: expected \"1.4.0\", found \"1.5.0\""),
        "{stdout}"
    );
    assert!(!stdout.contains("plain.toml"), "scenarios without [test] are not tests: {stdout}");
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("tests=\"2\" failures=\"1\" errors=\"0\""), "{xml}");
    assert!(xml.contains("<failure message=\"outcome: expected `succeeded`"), "{xml}");

    let invalid = write(dir.path(), "invalid.toml", "[test]\nrunbok = \"x\"\n");
    let out = rollbook(&["test", invalid.to_str().expect("utf-8")]);
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("INVALID") && stdout.contains("runbok"), "{stdout}");
}

/// Every runbook in `runbooks/` passes `rollbook check` and has the three scenarios beside it:
/// the incident it fixes, a case where it must do nothing, and one where it must stop and undo.
/// (`runbooks::every_runbook_passes_every_one_of_its_scenarios` rehearses them all.)
#[test]
fn every_runbook_checks_and_has_its_three_scenarios() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let mut runbooks: Vec<_> = std::fs::read_dir(&root)
        .expect("runbooks/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("rhai"))
        .collect();
    runbooks.sort();
    assert!(runbooks.len() >= 6, "the ready runbooks are there: {runbooks:?}");
    for rb in &runbooks {
        let stem = rb.file_stem().and_then(|s| s.to_str()).expect("name");
        for case in ["incident", "healthy", "undo"] {
            let scenario = root.join(format!("{stem}.{case}.toml"));
            let text = std::fs::read_to_string(&scenario)
                .unwrap_or_else(|_| panic!("{} is missing", scenario.display()));
            assert!(
                text.contains(&format!("runbook = \"{stem}.rhai\"")),
                "{} rehearses {stem}",
                scenario.display()
            );
        }
        let out = rollbook(&["check", rb.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{:?}", texts(&out));
    }
}
