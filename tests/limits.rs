//! The script sandbox's limits and crash-safety: one budget per run shared by every `parallel`
//! item, capped concurrency and nesting, memory held by closures counted, values and durations
//! that used to crash the process now clear errors (with completed stages undone), resource
//! names checked in one place, non-literal imports refused, named approvals with a timeout,
//! interrupts that leave a run resumable, and a report that lists stages and mutations.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rollbook::engine::{RunOptions, RunReport};
use rollbook::run::journal::{Event, RunStatus};

use crate::support::{events, fixture, write};

fn error(report: &RunReport) -> String {
    report.error.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_items_share_the_runs_operations_budget() {
    let mut f = fixture();
    f.engine.limits_mut().max_operations = 300_000;
    // Each item alone stays well under the budget; twenty of them together do not.
    let script = r#"
let items = [];
for i in 0..20 { items.push(i); }
let out = parallel(items, |i| { let n = 0; while n < 20000 { n += 1; } n }, #{ concurrency: 4 });
out.len()
"#;
    let report = f.run(script, |o| o.timeout = Some(std::time::Duration::from_secs(120))).await;
    assert_eq!(report.status, RunStatus::Failed, "{:?}", report.value);
    assert!(error(&report).contains("operations"), "{}", error(&report));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loop_of_parallel_calls_is_stopped_by_the_operations_budget() {
    let mut f = fixture();
    f.engine.limits_mut().max_operations = 200_000;
    let report = f
        .run("loop { parallel([1, 2], |i| { let n = 0; while n < 1000 { n += 1; } n }); }", |o| {
            o.timeout = Some(std::time::Duration::from_secs(30))
        })
        .await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(
        error(&report).contains("operations"),
        "stopped by the budget, not the clock: {}",
        error(&report)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_concurrency_has_a_documented_cap() {
    let f = fixture();
    let report = f.run("parallel([1, 2, 3], |i| i, #{ concurrency: 100000 })", |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(error(&report).contains("`concurrency` is at most 256"), "{}", error(&report));
    let report = f.run("parallel([1, 2, 3], |i| i * 2, #{ concurrency: 256 }).len()", |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn recursion_through_parallel_is_stopped_at_the_nesting_cap() {
    let f = fixture();
    let script = r#"
fn spread(n) { parallel([1, 2, 3, 4], |i| spread(n + 1), #{ concurrency: 4 }) }
spread(0)
"#;
    let report = f.run(script, |_| {}).await;
    // The fourth level is refused; the items of the third see it as their error, and the run
    // ends (instead of spawning threads until the machine gives out).
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let value = serde_json::to_string(&report.value).expect("value");
    assert!(value.contains("nest at most 3 deep"), "{value}");
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_workers_come_from_one_bounded_pool_per_run() {
    let mut f = fixture();
    f.engine.limits_mut().max_parallel_threads = 3;
    let script = r#"
let items = [];
for i in 0..12 { items.push(`item-${i}`); }
parallel(items, |name| test::mutate(#{ name: name, delay_ms: 40 }), #{ concurrency: 12 }).len()
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let most = f.recorder.max_in_flight.load(Ordering::SeqCst);
    assert!(most <= 4, "3 pool threads plus the calling thread, not 12: {most}");
    assert_eq!(f.calls().len(), 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn values_held_by_closures_count_toward_the_memory_limit() {
    let mut f = fixture();
    f.engine.limits_mut().max_memory = 48 * 1024 * 1024;
    // 400 closures, each holding its own 1 MiB string: 400 MiB if nothing counted it.
    let script = r#"
let fs = [];
for i in 0..400 {
    let s = "";
    s.pad(1048576, 'x');
    s += i;
    fs.push(|| s);
}
fs.len()
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed, "{:?}", report.value);
    assert!(error(&report).contains("memory limit of 48 MiB"), "{}", error(&report));
}

const STAGE_ONE: &str =
    r#"stage("one", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_value_that_holds_itself_through_a_closure_does_not_crash_the_run() {
    let f = fixture();
    let script = format!(
        "{STAGE_ONE}\nlet x = #{{}};\nlet me = || x;\nx.me = me;\nstage(\"two\", || x);\nlet deep = [];\nfor i in 0..100 {{ deep = [deep]; }}\nstage(\"three\", || deep);\n"
    );
    let report = f.run(&script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed, "{:?}", report.value);
    assert!(error(&report).contains("nested deeper than 64 levels"), "{}", error(&report));
    assert_eq!(report.undone, vec!["one"], "the failure inside the script undid the completed stage");
    assert_eq!(f.calls(), vec!["a", "undo-a"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_duration_is_an_error_and_completed_stages_are_undone() {
    let f = fixture();
    for wait in
        [r#"sleep("99999999999999999999999d")"#, "sleep(9223372036854775807)", r#"duration_secs("1e999s")"#]
    {
        let report = f.run(&format!("{STAGE_ONE}\n{wait};"), |_| {}).await;
        assert_eq!(report.status, RunStatus::Failed, "{wait}");
        assert_eq!(report.exit_code, 1);
        assert_eq!(report.undone, vec!["one"], "{wait}");
        assert!(
            error(&report).contains("too long") || error(&report).contains("invalid"),
            "{}",
            error(&report)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_dot_and_other_non_names_are_refused_for_every_primitive_before_sending() {
    let f = fixture();
    for bad in ["..", ".", "", "prod/../x"] {
        let report = f.run(&format!("test::mutate(#{{ name: {bad:?} }});"), |_| {}).await;
        assert_eq!(report.status, RunStatus::Failed, "{bad:?}");
        assert!(error(&report).contains("is not a valid name"), "{}", error(&report));
    }
    assert!(f.calls().is_empty(), "nothing was sent: {:?}", f.calls());
    let report = f
        .run(r#"appservice::swap(#{ group: "rg", site: "shop-web", slot: "..", subscription: "s" })"#, |_| {})
        .await;
    assert!(error(&report).contains("`slot` \"..\" is not a valid name"), "{}", error(&report));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_literal_import_is_refused_when_the_runbook_is_loaded() {
    let f = fixture();
    write(f.dir.path(), "lib/util.rhai", "fn twice(x) { x * 2 }");
    let path = write(f.dir.path(), "dyn.rhai", "let p = \"lib/util\";\nimport p as u;\nu::twice(2)\n");
    let err = match f.engine.load(&path) {
        Ok(_) => panic!("a non-literal import loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("`import` takes a string literal path"), "{err}");
    let path = write(f.dir.path(), "ok.rhai", "import \"lib/util\" as u;\nu::twice(2)\n");
    assert!(f.engine.load(&path).is_ok());
    let diags = rollbook::engine::check::check(&f.engine, &f.dir.path().join("dyn.rhai"));
    assert!(diags.iter().any(|d| d.message.contains("string literal")), "check says so too");
}

/// A terminal that never answers: it gives up when asked to.
struct Silent;

impl rollbook::run::Reporter for Silent {
    fn event(&self, _event: &Event) {}
    fn progress(&self) -> Arc<dyn rollbook::providers::Progress> {
        Arc::new(rollbook::providers::Silent)
    }
    fn ask(&self, _question: &str) -> Option<bool> {
        Some(false)
    }
    fn ask_until(&self, _question: &str, give_up: &(dyn Fn() -> bool + Send + Sync)) -> rollbook::run::Asked {
        while !give_up() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        rollbook::run::Asked::GaveUp
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_approval_times_out_as_denied_and_is_journaled() {
    let f = fixture();
    let clock = Arc::new(rollbook::providers::SkipClock::default());
    let script = format!(
        "{STAGE_ONE}\napprove(\"swap production back?\", #{{ timeout: \"15m\", approvers: [\"alice\", \"bob\"] }});\ntest::mutate(#{{ name: \"prod\" }});"
    );
    let c = clock.clone();
    let report = f
        .run(&script, move |o| {
            o.reporter = Arc::new(Silent);
            o.clock = c;
        })
        .await;
    assert_eq!(report.status, RunStatus::Denied, "{:?}", report.error);
    assert_eq!(report.exit_code, 4);
    assert!(error(&report).contains("timed out after 15m"), "{}", error(&report));
    assert_eq!(f.calls(), vec!["a"], "nothing after the approval ran; the completed stage stays");
    assert!(clock.slept().contains(&std::time::Duration::from_secs(900)), "waited on the run's clock");
    let approval = events(&report).into_iter().find(|e| matches!(e, Event::Approval { .. }));
    match approval {
        Some(Event::Approval { approved: false, by, approvers, timeout, .. }) => {
            assert_eq!(by, "timeout");
            assert_eq!(approvers, vec!["alice", "bob"]);
            assert_eq!(timeout.as_deref(), Some("15m"));
        }
        other => panic!("no timed-out approval journaled: {other:?}"),
    }

    let report = f.run(&script, |o| o.yes = true).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let by_user = events(&report).into_iter().any(|e| {
        matches!(e, Event::Approval { approved: true, by, user: Some(u), .. } if by == "--yes" && u == rollbook::run::current_user())
    });
    assert!(by_user, "who approved is journaled");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_leaves_the_run_resumable_and_resume_finishes_it() {
    let f = fixture();
    let cancel = tokio_util::sync::CancellationToken::new();
    let c2 = cancel.clone();
    let script = r#"
stage("one", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));
sleep("1h");
stage("two", || test::mutate(#{ name: "b" }));
"#;
    let waiter = tokio::spawn({
        let state = f.dir.path().join("state");
        async move {
            // Interrupt once stage one is journaled as completed.
            loop {
                let done = std::fs::read_dir(state.join("runs"))
                    .ok()
                    .and_then(|mut d| d.next())
                    .and_then(|e| e.ok())
                    .and_then(|e| std::fs::read_to_string(e.path()).ok())
                    .is_some_and(|t| t.contains("\"stage_finished\""));
                if done {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            c2.cancel();
        }
    });
    let report = f.run(script, |o| o.cancel = cancel).await;
    let _ = waiter.await;
    assert_eq!(report.status, RunStatus::Interrupted, "{:?}", report.error);
    assert_eq!(report.exit_code, 3);
    assert_eq!(report.undo_pending, vec!["one"]);
    assert!(report.undone.is_empty(), "no undo was tried");
    assert_eq!(f.calls(), vec!["a"]);
    assert!(matches!(
        events(&report).last(),
        Some(Event::RunFinished { status: RunStatus::Interrupted, .. })
    ));

    // The run resumes: stage one is taken from the journal, the rest runs (the hour of waiting
    // passes on a clock that skips it).
    let (runbook, params, resume) = f
        .engine
        .prepare_resume(&f.dir.path().join("state"), &report.run_id, false, &[])
        .expect("an interrupted run is resumable");
    let mut opts = RunOptions::new(f.dir.path().join("state"));
    opts.resume = Some(resume);
    opts.clock = Arc::new(rollbook::providers::SkipClock::default());
    let resumed = f.engine.run(&runbook, &params, opts).await.expect("resume starts");
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.calls(), vec!["a", "b"], "stage one was not sent again");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_lists_stages_mutations_and_stages_kept_without_undo() {
    let f = fixture();
    let script = r#"
stage("kept", || test::mutate(#{ name: "k" }));
stage("undoable", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));
stage("fails", || test::mutate(#{ name: "b", fail: true }));
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.mode, "real");
    let stages: Vec<(String, String)> =
        report.stages.iter().map(|s| (s.name.clone(), s.status.clone())).collect();
    assert_eq!(
        stages,
        vec![
            ("kept".to_string(), "completed".to_string()),
            ("undoable".to_string(), "undone".to_string()),
            ("fails".to_string(), "failed".to_string())
        ]
    );
    assert_eq!(report.kept_without_undo(), vec!["kept"]);
    let mutations: Vec<String> =
        report.mutations.iter().map(|m| format!("{} {}", m.primitive, m.status)).collect();
    assert_eq!(
        mutations,
        vec!["test::mutate ok", "test::mutate ok", "test::mutate failed", "test::mutate ok"]
    );
    let json = serde_json::to_value(&report).expect("report serialises");
    assert!(json["stages"].is_array() && json["mutations"].is_array() && json["mode"] == "real", "{json}");
}

/// A fleet rollback under the common default soft limit of open files: a run keeps one lock
/// file open per target it changes, so past the limit every further undo was refused with "Too
/// many open files" (2,000 Deployments under 1,024: some 1,060 undos failed). The binary now
/// raises its soft limit to the hard one; here the soft limit is 256 and the run changes 400.
#[test]
fn a_run_changes_more_targets_than_the_soft_limit_of_open_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut scenario = String::from("name = \"400 deployments\"\n");
    for i in 0..400 {
        scenario.push_str(&format!(
            "[[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web{i}\"\nrevisions = [\"shop/web:1.{i}.0\", \"shop/web:1.{i}.1\"]\n"
        ));
    }
    let scenario = write(dir.path(), "fleet.toml", &scenario);
    let runbook = write(
        dir.path(),
        "fleet.rhai",
        r#"const RUNBOOK = #{ name: "fleet", scope: ["k8s/*/*/*"] };
let targets = [];
for i in 0..400 { targets.push(#{ context: "prod", namespace: "shop", deployment: `web${i}` }); }
let results = parallel(targets, |t| k8s::undo(t).changed, #{ concurrency: 16 });
let failed = results.filter(|r| !r.ok);
if failed.len() > 0 { fail(`${failed.len()} of 400 undos failed; first: ${failed[0].error}`); }
info(`${results.len()} rolled back`);
"#,
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -Sn 256 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_rollbook"))
        .args(["run", "--yes", "--sandbox"])
        .arg(&scenario)
        .arg(&runbook)
        .env("ROLLBOOK_STATE_DIR", dir.path().join("state"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run rollbook under a soft limit of 256 open files");
    let (_, stderr) = crate::support::texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("400 rolled back"), "{stderr}");
    assert!(!stderr.contains("Too many open files"), "{stderr}");
}
