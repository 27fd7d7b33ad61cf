//! `rollbook serve` stopping with runs in flight: SIGTERM drains (readyz 503, runs finish
//! within `--grace` or stay resumable, exit 0); `kill -9` leaves journals that `resume` and
//! `resume_on_start` finish without acting twice. Two replicas sharing a state dir and Lease
//! locks never act twice on one target. And `rollbook run --break-glass`.

use rollbook::run::journal::{Event, read_journal};
use serde_json::json;

use super::serve::{
    Server, WORLD, am, config, decision, firing, folder, run_cli, serve_cmd, started_event, status, swaps,
    wait_until,
};
use super::support::LiveSim;
use super::support::write;

/// Runs swap, then wait for an approval (so they are reliably in flight when stopped).
fn held_config(extra: &str) -> String {
    config(&format!("approval = \"required\"\n{extra}"))
        .replace("site = \"{{labels.site}}\" }", "site = \"{{labels.site}}\", ask_after = \"true\" }")
}

fn pending(server: &Server, run: &str) -> bool {
    server.state.join("serve/approvals").join(format!("{run}.pending")).exists()
}

fn journal_status(state: &std::path::Path, run: &str) -> String {
    let read = read_journal(&state.join("runs").join(format!("{run}.jsonl"))).unwrap();
    status(&read.records)
}

#[test]
fn sigterm_drains_a_run_that_finishes_within_the_grace() {
    let dir = folder(&held_config(""));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let mut server = Server::start(serve_cmd(&live, dir.path(), &state, &["--grace", "10m"]), &state, None);
    let (_, a) = server.alert(&am(vec![firing("fp-term", "shop-web")]));
    let run = decision(&a).1.unwrap();
    wait_until("the approval question", || pending(&server, &run));
    super::serve::signal(&server.child, "TERM");
    wait_until("readyz 503", || server.request("GET", "/readyz", None).0 == 503);
    assert_eq!(server.request("GET", "/healthz", None).0, 200);
    // No new runs while draining.
    let (code, _) = server.alert(&am(vec![firing("fp-late", "shop-api")]));
    assert_eq!(code, 503);
    // The run in flight may still finish (its approval is answered), then the server exits 0.
    let (code, body) = server.post(&format!("/v1/runs/{run}/approve"), &json!({ "by": "bob" }));
    assert_eq!(code, 200, "{body}");
    let exit = server.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{}", server.log());
    assert_eq!(journal_status(&state, &run), "succeeded");
    assert_eq!(swaps(&live, "shop-web"), 1);
    assert_eq!(swaps(&live, "shop-api"), 0);
}

#[test]
fn sigterm_past_the_grace_leaves_the_run_resumable() {
    let dir = folder(&held_config(""));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let mut server = Server::start(serve_cmd(&live, dir.path(), &state, &["--grace", "100ms"]), &state, None);
    let (_, a) = server.alert(&am(vec![firing("fp-term", "shop-web")]));
    let run = decision(&a).1.unwrap();
    wait_until("the approval question", || pending(&server, &run));
    let exit = server.terminate();
    assert_eq!(exit.code(), Some(0), "{}", server.log());
    assert_eq!(journal_status(&state, &run), "interrupted");
    // `rollbook resume` finishes it; the swap is not sent again.
    let out = run_cli(&live, "resume", &state, &[&run, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(journal_status(&state, &run), "succeeded");
    assert_eq!(swaps(&live, "shop-web"), 1);
}

#[test]
fn kill_9_with_runs_in_flight_then_resume_and_resume_on_start_finish_them_once() {
    let dir = folder(&held_config(""));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let mut server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let (_, a) = server.alert(&am(vec![firing("fp-web", "shop-web"), firing("fp-api", "shop-api")]));
    let web = a["alerts"][0]["run_id"].as_str().unwrap().to_string();
    let api = a["alerts"][1]["run_id"].as_str().unwrap().to_string();
    wait_until("both approval questions", || pending(&server, &web) && pending(&server, &api));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert_eq!(journal_status(&state, &web), "incomplete");
    assert_eq!(journal_status(&state, &api), "incomplete");
    assert_eq!((swaps(&live, "shop-web"), swaps(&live, "shop-api")), (1, 1));
    // One run finished by hand with `rollbook resume`.
    let out = run_cli(&live, "resume", &state, &[&web, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(journal_status(&state, &web), "succeeded");
    // The other by a new server with `resume_on_start`.
    write(
        dir.path(),
        "serve.toml",
        &held_config("").replace("queue = 8", "queue = 8\nresume_on_start = true"),
    );
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    // The alert of the unfinished run is still its: sent again, it starts nothing new.
    wait_until("the resumed run's approval", || pending(&server, &api));
    let (_, again) = server.alert(&am(vec![firing("fp-api", "shop-api")]));
    assert_eq!(decision(&again), ("deduplicated".to_string(), Some(api.clone())), "{again}");
    let (code, body) = server.post(&format!("/v1/runs/{api}/approve"), &json!({ "by": "carol" }));
    assert_eq!(code, 200, "{body}");
    let records = server.finished(&api);
    assert_eq!(status(&records), "succeeded", "{}", server.log());
    assert!(records.iter().any(|r| matches!(r.event, Event::RunResumed { .. })));
    assert!(records.iter().any(|r| matches!(&r.event, Event::Replayed { what } if what.contains("swap"))));
    assert_eq!((swaps(&live, "shop-web"), swaps(&live, "shop-api")), (1, 1), "a mutation was sent twice");
}

/// Two `serve` replicas: one state dir, Lease locks in the simulated cluster.
fn replicas(extra: &str) -> (tempfile::TempDir, LiveSim, Server, Server) {
    let dir = folder(&held_config(extra));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let args = ["--lock", "k8s:prod/shop"];
    let a = Server::start(serve_cmd(&live, dir.path(), &state, &args), &state, None);
    let b = Server::start(serve_cmd(&live, dir.path(), &state, &args), &state, None);
    (dir, live, a, b)
}

#[test]
fn two_replicas_given_the_same_alert_act_once() {
    let (_dir, live, a, b) = replicas("");
    let payload = am(vec![firing("fp-both", "shop-web")]);
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.alert(&payload));
        let tb = s.spawn(|| b.alert(&payload));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let mut decisions = [decision(&ra.1), decision(&rb.1)];
    decisions.sort();
    assert_eq!(decisions[0].0, "deduplicated", "{ra:?} {rb:?}");
    assert_eq!(decisions[1].0, "started", "{ra:?} {rb:?}");
    assert_eq!(decisions[0].1, decisions[1].1, "the duplicate names the run");
    let run = decisions[1].1.clone().unwrap();
    wait_until("the run's approval", || pending(&a, &run));
    let (code, body) = a.post(&format!("/v1/runs/{run}/approve"), &json!({ "by": "dave" }));
    assert_eq!(code, 200, "{body}");
    let records = a.finished(&run);
    assert_eq!(status(&records), "succeeded");
    assert_eq!(swaps(&live, "shop-web"), 1);
}

#[test]
fn two_replicas_running_for_one_target_one_acts_and_the_other_reports_the_lock() {
    let (_dir, live, a, b) = replicas("");
    // Two different alerts for the same site, one to each replica.
    let (_, ra) = a.alert(&am(vec![firing("fp-1", "shop-web")]));
    let first = decision(&ra).1.unwrap();
    wait_until("the first run's approval (it holds the lock)", || pending(&a, &first));
    let (_, rb) = b.alert(&am(vec![firing("fp-2", "shop-web")]));
    assert_eq!(decision(&rb).0, "started", "{rb}");
    let second = decision(&rb).1.unwrap();
    let records = b.finished(&second);
    assert_eq!(status(&records), "locked", "{}", b.log());
    assert!(
        records.iter().any(|r| matches!(&r.event, Event::Refused { by, .. } if by == "lock")),
        "no lock refusal in the journal"
    );
    // The approval is answered through the other replica (shared state dir).
    let (code, body) = b.post(&format!("/v1/runs/{first}/approve"), &json!({ "by": "erin" }));
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(&a.finished(&first)), "succeeded");
    assert_eq!(swaps(&live, "shop-web"), 1);
    b.ended(1);
    let (_, metrics) = b.request("GET", "/metrics", None);
    assert!(metrics.contains("rollbook_runs_total{route=\"web-down\",outcome=\"locked\"} 1"), "{metrics}");
}

#[test]
fn break_glass_grants_every_approval_and_is_journaled() {
    let dir = folder("");
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let runbook = dir.path().join("runbooks/swap.rhai");
    let args = |reason: &str| -> Vec<String> {
        vec![
            runbook.display().to_string(),
            "-p".into(),
            "group=rg-shop".into(),
            "-p".into(),
            "site=shop-web".into(),
            "-p".into(),
            "ask=true".into(),
            "--break-glass".into(),
            reason.into(),
        ]
    };
    let empty = args("  ");
    let out = run_cli(&live, "run", &state, &empty.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--break-glass"));
    assert_eq!(swaps(&live, "shop-web"), 0);
    let given = args("INC-42: site down, approver unreachable");
    let out = run_cli(&live, "run", &state, &given.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("BREAK-GLASS") && stderr.contains("INC-42"), "{stderr}");
    assert_eq!(swaps(&live, "shop-web"), 1);
    let journal = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let records = read_journal(&journal).unwrap().records;
    assert_eq!(started_event(&records)["break_glass"], "INC-42: site down, approver unreachable");
    let approval = records.iter().find_map(|r| match &r.event {
        Event::Approval { approved, by, .. } => Some((*approved, by.clone())),
        _ => None,
    });
    assert_eq!(approval, Some((true, "break-glass".to_string())));
}
