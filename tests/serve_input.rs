//! Bad input to `rollbook serve` gets a clear answer over real HTTP, and never a run: malformed
//! JSON, an unknown payload version, oversized payloads, many alerts, control characters,
//! templates naming missing labels, a wrong token, and configs it must refuse.

use serde_json::{Value, json};

use super::serve::{Server, WORLD, am, config, firing, folder, serve_cmd, swaps};
use super::support::LiveSim;
use super::support::write;

fn server(extra: &str, token: Option<&str>) -> (tempfile::TempDir, LiveSim, Server) {
    let dir = folder(&config(extra));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, token);
    (dir, live, server)
}

#[test]
fn malformed_json_and_unknown_versions_answer_400() {
    let (_dir, live, server) = server("", None);
    let (code, body) =
        server.request("POST", "/v1/alerts/alertmanager", Some(b"{\"version\": \"4\", \"alerts\": ["));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("malformed JSON"), "{body}");
    let mut payload = am(vec![firing("fp", "shop-web")]);
    payload["version"] = json!("5");
    let (code, body) = server.post("/v1/alerts/alertmanager", &payload);
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("version"), "{body}");
    let (code, body) = server.post(
        "/v1/alerts/azure-monitor",
        &json!({ "schemaId": "Microsoft.Insights/activityLogs", "data": {} }),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("common alert schema"), "{body}");
    let (code, _) = server.post("/v1/alerts/alertmanager", &json!([1, 2]));
    assert_eq!(code, 400);
    let (_, metrics) = server.request("GET", "/metrics", None);
    assert!(metrics.contains("decision=\"malformed\"} 3"), "{metrics}");
    assert_eq!(swaps(&live, "shop-web"), 0);
}

#[test]
fn a_10_mb_payload_is_refused_and_1000_alerts_are_each_decided() {
    let (_dir, live, server) = server("", None);
    let big = vec![b' '; 10 * 1024 * 1024];
    let (code, _) = server.request("POST", "/v1/alerts/alertmanager", Some(&big));
    assert_eq!(code, 413);
    // The server still answers after it.
    assert_eq!(server.request("GET", "/healthz", None).0, 200);
    // 1,000 alerts: one takes the route, the others repeat it (deduplicated) or match nothing.
    let mut alerts = vec![firing("fp-0", "shop-web")];
    for i in 1..1000 {
        let mut a = firing(&format!("fp-{i}"), "shop-web");
        if i % 2 == 0 {
            a = firing("fp-0", "shop-web");
        } else {
            a["labels"]["alertname"] = json!("SomethingElse");
        }
        alerts.push(a);
    }
    let (code, answer) = server.alert(&am(alerts));
    assert_eq!(code, 202, "{answer}");
    let decisions = answer["alerts"].as_array().unwrap();
    assert_eq!(decisions.len(), 1000);
    let count = |d: &str| decisions.iter().filter(|x| x["decision"] == d).count();
    assert_eq!(count("started"), 1);
    assert_eq!(count("deduplicated"), 499);
    assert_eq!(count("no_route"), 500);
    let run = decisions[0]["run_id"].as_str().unwrap().to_string();
    server.finished(&run);
    assert_eq!(swaps(&live, "shop-web"), 1);
}

#[test]
fn control_characters_and_missing_labels_are_invalid_decisions() {
    let (_dir, live, server) = server("", None);
    let mut bad = firing("fp-ctl", "shop-web");
    bad["labels"]["site"] = json!("shop-web\u{1b}[2J\nrm -rf");
    let mut missing = firing("fp-miss", "shop-web");
    missing["labels"].as_object_mut().unwrap().remove("group");
    let mut empty = firing("fp-empty", "shop-web");
    empty["labels"]["site"] = json!("");
    let (code, answer) = server.alert(&am(vec![bad, missing, empty]));
    assert_eq!(code, 202, "{answer}");
    let d: Vec<&Value> = answer["alerts"].as_array().unwrap().iter().collect();
    assert_eq!(d[0]["decision"], "invalid", "{answer}");
    assert!(d[0]["reason"].as_str().unwrap().contains("control character"), "{answer}");
    assert_eq!(d[1]["decision"], "invalid", "{answer}");
    assert!(d[1]["reason"].as_str().unwrap().contains("no label `group`"), "{answer}");
    assert_eq!(d[2]["decision"], "invalid", "{answer}");
    assert!(d[2]["reason"].as_str().unwrap().contains("empty"), "{answer}");
    assert!(
        !server.state.join("runs").exists()
            || std::fs::read_dir(server.state.join("runs"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "jsonl"))
                .count()
                == 0
    );
    assert_eq!(swaps(&live, "shop-web"), 0);
}

#[test]
fn a_missing_or_wrong_token_answers_401() {
    let (_dir, live, server) = server("", Some("the-token"));
    let payload = am(vec![firing("fp", "shop-web")]).to_string();
    for token in [None, Some("wrong"), Some("the-token-but-longer")] {
        let (code, body) = super::serve::http(
            &server.addr,
            "POST",
            "/v1/alerts/alertmanager",
            Some(payload.as_bytes()),
            token,
        );
        assert_eq!(code, 401, "{token:?}: {body}");
    }
    let (code, _) = super::serve::http(&server.addr, "GET", "/v1/runs", None, Some("wrong"));
    assert_eq!(code, 401);
    // Health, readiness and metrics need no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(super::serve::http(&server.addr, "GET", path, None, None).0, 200, "{path}");
    }
    assert_eq!(server.alert(&am(vec![firing("fp", "shop-web")])).0, 202);
    let _ = live;
}

fn start_fails(dir: &std::path::Path, live: &LiveSim, args: &[&str]) -> (Option<i32>, String) {
    let state = dir.join("state");
    let out = serve_cmd(live, dir, &state, args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn configs_it_must_refuse() {
    let dir = folder(&config(""));
    let live = LiveSim::start(dir.path(), WORLD);
    // An unknown key: named, with its line; exit 2.
    write(dir.path(), "serve.toml", &config("").replace("queue = 8", "queue = 8\nmax_run = 3"));
    let (code, err) = start_fails(dir.path(), &live, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("max_run") && err.contains("line 5"), "{err}");
    write(dir.path(), "serve.toml", &config("cooldwn = \"5m\""));
    let (code, err) = start_fails(dir.path(), &live, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cooldwn") && err.contains("line 12"), "{err}");
    // A runbook outside the config's folder, by `..` and through a symbolic link.
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "evil.rhai", super::serve::RUNBOOK);
    let rel = format!("../{}/evil.rhai", outside.path().file_name().unwrap().to_string_lossy());
    write(dir.path(), "serve.toml", &config("").replace("runbooks/swap.rhai", &rel));
    let (code, err) = start_fails(dir.path(), &live, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("outside the config's folder"), "{err}");
    std::os::unix::fs::symlink(outside.path().join("evil.rhai"), dir.path().join("runbooks/link.rhai"))
        .unwrap();
    write(dir.path(), "serve.toml", &config("").replace("runbooks/swap.rhai", "runbooks/link.rhai"));
    let (code, err) = start_fails(dir.path(), &live, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("outside the config's folder"), "{err}");
    // A template naming no alert field.
    write(dir.path(), "serve.toml", &config("").replace("{{labels.group}}", "{{group}}"));
    let (code, err) = start_fails(dir.path(), &live, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("param `group`"), "{err}");
    // A non-loopback address with no token.
    write(dir.path(), "serve.toml", &config(""));
    let (code, err) = start_fails(dir.path(), &live, &["--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("without a token"), "{err}");
}
