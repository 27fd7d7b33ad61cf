//! Safe runs through the real binary against the simulator: the exit codes of a failed undo
//! (3), a denied approval (4) and a held lock (5, with the file and the Lease backend across
//! two processes), and a scope violation refused before any request.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use super::support::{LiveSim, Outcome, Rollbook, World, write};

const WORLD: &str = r#"
[sim]
lro_polls = 0

[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 2
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0" }
"#;

fn both(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn run(live: &LiveSim, state: &Path, runbook: &Path, extra: &[&str]) -> Output {
    live.rollbook("run", state).args(extra).arg(runbook).stdin(Stdio::null()).output().expect("run rollbook")
}

/// A run of `source` (as `name`) against a simulator serving WORLD, kept for later commands.
fn live_run(name: &str, source: &str, extra: &[&str]) -> Outcome {
    Rollbook::new().script_named(name, source).world(World::toml(WORLD)).live().args(extra).run()
}

#[test]
fn a_failing_undo_exits_3_with_the_journal_and_what_is_left() {
    let out = live_run(
        "undo-fails.rhai",
        r#"
let s = #{ group: "rg-shop", site: "shop-web", slot: "staging" };
stage("swap back", || appservice::swap(s), || appservice::swap(s + #{ slot: "gone" }));
let k = #{ context: "prod", namespace: "shop", deployment: "web" };
stage("scale up", || k8s::scale(k + #{ replicas: 4 }), || k8s::scale(k + #{ replicas: 2 }));
fail("the site is still unhealthy");
"#,
        &[],
    );
    let state = out.state_dir();
    let text = out.both();
    assert_eq!(out.code(), Some(3), "{text}");
    assert!(text.contains("NEEDS ATTENTION"), "{text}");
    assert!(text.contains(&state.join("runs").display().to_string()), "journal path printed: {text}");
    assert!(text.contains("still to undo by hand") && text.contains("- stage swap back"), "{text}");
    // The scale stage was undone; the swap was not.
    let web = out.state_of("k8s/prod/shop/web");
    assert_eq!(web["replicas"], 2, "{web}");
    let site = out.state_of("appservice/rg-shop/shop-web");
    assert_eq!(site["production"], "1.4.0", "{site}");
    // `runs show` tells what was undone and what was not.
    assert!(out.journal().starts_with(state.join("runs")), "a real run's journal");
    let shown = out.then(&["runs", "show", &out.run_id()]).both();
    let line = |start: &str| shown.lines().find(|l| l.starts_with(start)).unwrap_or_default().to_string();
    assert!(line("undone:").contains("scale up"), "{shown}");
    assert!(line("not undone:").contains("swap back"), "{shown}");
}

#[test]
fn an_approval_without_a_terminal_exits_4_and_sends_nothing() {
    let out = live_run(
        "approve.rhai",
        r#"
approve("swap staging into production of shop-web?");
appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging" });
"#,
        &[],
    )
    .exits(4)
    .output_has("denied");
    assert!(out.mutations().is_empty(), "{:?}", out.requests());
    let site = out.state_of("appservice/rg-shop/shop-web");
    assert_eq!(site["production"], "1.5.0");
}

#[test]
fn a_call_outside_the_scope_is_refused_before_any_request() {
    let out = live_run(
        "scoped.rhai",
        r#"
const RUNBOOK = #{ name: "scoped", version: "1.0.0", scope: ["appservice/rg-shop/*"] };
k8s::undo(#{ context: "prod", namespace: "shop", deployment: "web", to_revision: 1 });
"#,
        &[],
    )
    .fails()
    .output_has("`k8s/prod/shop/web` is outside the runbook's scope");
    assert!(out.requests().iter().all(|r| !r.path.starts_with("/k8s/")), "{:?}", out.requests());
    // The refusal is a journaled decision.
    let out = out.journal_has(r#""type":"refused""#).journal_has(r#""by":"scope""#);

    // Inside the runbook's scope but outside --allow: the error names the flag.
    let swap = out.file(
        "swap.rhai",
        r#"
const RUNBOOK = #{ name: "swap", version: "1.0.0", scope: ["appservice/rg-shop/*"] };
appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging" });
"#,
    );
    let second = out
        .then(&["run", &swap.display().to_string(), "--allow", "appservice/rg-shop/other-site"])
        .fails()
        .output_has("`appservice/rg-shop/shop-web`")
        .output_has("--allow appservice/rg-shop/shop-web");
    assert!(second.mutations().is_empty(), "{:?}", second.requests());
}

/// The first run takes the lock on `k8s/prod/shop/web` and holds it (sleeping); the second
/// touches the same target and must fail at once with exit 5 naming the first.
/// Starts a run of the binary that scales `web` (taking its lock with `lock`) and then holds
/// it for `hold`; returns once the scale was sent, so the lock is surely taken.
fn start_holder(
    live: &LiveSim,
    dir: &std::path::Path,
    state: &std::path::Path,
    lock: &str,
    hold: &str,
) -> std::process::Child {
    let holder = write(
        dir,
        "holder.rhai",
        &format!(
            "k8s::scale(#{{ context: \"prod\", namespace: \"shop\", deployment: \"web\", replicas: 3 }});\nsleep(\"{hold}\");\n"
        ),
    );
    let first = live
        .rollbook("run", state)
        .args(["--lock", lock])
        .arg(&holder)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while !live.sim.requests().iter().any(|r| r.method == "PATCH") {
        assert!(began.elapsed() < Duration::from_secs(20), "the first run never scaled");
        std::thread::sleep(Duration::from_millis(10));
    }
    first
}

fn second_run_is_locked_out(lock: &str) {
    let dir = tempfile::tempdir().unwrap();
    let live = LiveSim::start(dir.path(), WORLD);
    let other = write(
        dir.path(),
        "other.rhai",
        r#"
k8s::scale(#{ context: "prod", namespace: "shop", deployment: "web", replicas: 5 });
"#,
    );
    let state = dir.path().join("state");
    let mut first = start_holder(&live, dir.path(), &state, lock, "3s");
    let first_id = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| e.path().file_stem().unwrap().to_str().unwrap().to_string())
        .unwrap();
    let started = Instant::now();
    let out = run(&live, &state, &other, &["--lock", lock]);
    let waited = started.elapsed();
    let text = both(&out);
    assert_eq!(out.status.code(), Some(5), "{lock}: {text}");
    assert!(text.contains(&format!("locked by run {first_id}")), "{lock}: names the holder: {text}");
    assert!(text.contains(" since "), "{text}");
    assert!(waited < Duration::from_secs(2), "{lock}: failed fast, not after {waited:?}");
    let patches = live.sim.requests().iter().filter(|r| r.method == "PATCH").count();
    assert_eq!(patches, 1, "{lock}: the second run sent nothing");
    assert_eq!(first.wait().unwrap().code(), Some(0), "{lock}: the holder finished");

    // Released at the end: a third run takes it without a takeover warning.
    let out = run(&live, &state, &other, &["--lock", lock]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(0), "{lock}: {text}");
    assert!(!text.contains("took over"), "{lock}: {text}");
    assert_eq!(live.sim.resource_state("k8s/prod/shop/web").unwrap()["replicas"], 5);
}

#[test]
fn a_second_process_on_a_locked_target_exits_5_file_backend() {
    second_run_is_locked_out("file");
}

#[test]
fn a_second_process_on_a_locked_target_exits_5_lease_backend() {
    second_run_is_locked_out("k8s:prod/shop");
}

#[test]
fn a_lease_left_by_a_killed_run_is_taken_over_with_a_warning() {
    // Leases of one second, so that the takeover (after the record stayed unchanged for the
    // lease's duration, watched on the taker's clock) is quick; the processes' clocks cannot be
    // advanced from here.
    let dir = tempfile::tempdir().unwrap();
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let holder = write(
        dir.path(),
        "holder.rhai",
        "k8s::scale(#{ context: \"prod\", namespace: \"shop\", deployment: \"web\", replicas: 3 });\nsleep(\"30s\");\n",
    );
    let mut first = live
        .rollbook("run", &state)
        .env("ROLLBOOK_LEASE_SECONDS", "1")
        .args(["--lock", "k8s:prod/shop"])
        .arg(&holder)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while !live.sim.requests().iter().any(|r| r.method == "PATCH") {
        assert!(began.elapsed() < Duration::from_secs(20), "the first run never scaled");
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // Let the dead holder's lease look expired even by its own timestamps.
    std::thread::sleep(Duration::from_millis(1500));
    let other = write(
        dir.path(),
        "other.rhai",
        r#"k8s::scale(#{ context: "prod", namespace: "shop", deployment: "web", replicas: 5 });"#,
    );
    let out = live
        .rollbook("run", &state)
        .env("ROLLBOOK_LEASE_SECONDS", "1")
        .args(["--lock", "k8s:prod/shop"])
        .arg(&other)
        .stdin(Stdio::null())
        .output()
        .expect("run rollbook");
    let text = both(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("took over the lock on `k8s/prod/shop/web`"), "{text}");
}

fn leases(live: &LiveSim) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&live.kubeconfig)
        .args(["--context", "prod", "-n", "shop", "get", "leases", "-o", "json"])
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{}", both(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lease list");
    // The leases of targets (each run also holds one on itself: `run/<id>`).
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.retain(|l| {
        !l["metadata"]["annotations"]["rollbook.dev/target"].as_str().is_some_and(|t| t.starts_with("run/"))
    });
    items
}

#[test]
fn a_held_lease_names_the_run_is_renewed_and_is_released_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let mut first = start_holder(&live, dir.path(), &state, "k8s:prod/shop", "7s");
    let taken = leases(&live);
    assert_eq!(taken.len(), 1, "{taken:?}");
    let spec = &taken[0]["spec"];
    let holder_id = spec["holderIdentity"].as_str().unwrap_or_default().to_string();
    assert!(holder_id.contains(&format!("/{}/", first.id())), "run@host/pid/nonce: {holder_id}");
    assert!(taken[0]["metadata"]["name"].as_str().unwrap().starts_with("rollbook-k8s-prod-shop-web-"));
    let renewed_at = |l: &serde_json::Value| l["spec"]["renewTime"].as_str().unwrap_or_default().to_string();
    let first_renewal = renewed_at(&taken[0]);
    std::thread::sleep(Duration::from_secs(6));
    let later = leases(&live);
    assert_eq!(later[0]["spec"]["holderIdentity"].as_str(), Some(holder_id.as_str()));
    assert_ne!(renewed_at(&later[0]), first_renewal, "renewed while the run lives");
    assert_eq!(first.wait().unwrap().code(), Some(0));
    let released = leases(&live);
    assert!(released[0]["spec"]["holderIdentity"].is_null(), "released: {:?}", released[0]);
}
