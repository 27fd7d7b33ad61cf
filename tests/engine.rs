//! The engine as a library: stages and undo, dry-run, parallel, limits, timeouts, approvals,
//! errors, imports and the journal.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rollbook::engine::{RunOptions, RunReport};
use rollbook::run::journal::{Event, RunStatus, read_journal};

use crate::support::{Fixture, events, fixture, write};

const TWO_STAGES: &str = r#"
stage("first", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));
stage("second", || test::mutate(#{ name: "b", fail: true }), || test::mutate(#{ name: "undo-b" }));
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_stage_undoes_the_completed_ones_in_reverse_order() {
    let f = fixture();
    let script = format!("{TWO_STAGES}\n// never reached\n",);
    let report = f.run(&script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.exit_code, 1);
    assert_eq!(f.calls(), vec!["a", "undo-a"], "stage 2 failed before acting; only stage 1 is undone");
    assert_eq!(report.undone, vec!["first"]);
    assert!(report.error.as_deref().unwrap_or("").contains("conflict: b refused"), "{:?}", report.error);

    // The journal shows the order: stage 1, stage 2 failing, then the undo of stage 1.
    let order: Vec<String> = events(&report)
        .iter()
        .filter_map(|e| match e {
            Event::StageStarted { stage } => Some(format!("start {stage}")),
            Event::StageFinished { stage, ok, .. } => {
                Some(format!("{} {stage}", if *ok { "done" } else { "failed" }))
            }
            Event::CallStarted { args, .. } => Some(format!("call {}", args["name"].as_str().unwrap_or(""))),
            Event::UndoStarted { stage } => Some(format!("undo {stage}")),
            Event::UndoFinished { stage, ok: true, .. } => Some(format!("undone {stage}")),
            Event::RunFinished { status, .. } => Some(format!("end {}", status.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        vec![
            "start first",
            "call a",
            "done first",
            "start second",
            "call b",
            "failed second",
            "undo first",
            "call undo-a",
            "undone first",
            "end failed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_performs_no_mutation_and_plans_both_calls() {
    let f = fixture();
    let report = f.run(TWO_STAGES, |o| o.dry_run = true).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert!(f.calls().is_empty(), "nothing was performed: {:?}", f.calls());
    let planned: Vec<(&str, &str)> =
        report.plan.iter().map(|p| (p.call.as_str(), p.effect.as_str())).collect();
    assert_eq!(planned, vec![("test::mutate", "would mutate `a`"), ("test::mutate", "would mutate `b`")]);
    assert_eq!(report.plan[0].stage.as_deref(), Some("first"));
    assert!(events(&report).iter().all(|e| !matches!(e, Event::CallStarted { .. })), "no call was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undo_that_fails_needs_a_person_exit_3() {
    let f = fixture();
    let script = r#"
stage("one", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));
stage("two", || test::mutate(#{ name: "b" }), || test::mutate(#{ name: "undo-b", fail: true }));
fail("health did not recover");
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::UndoFailed);
    assert_eq!(report.exit_code, 3);
    assert_eq!(
        report.undo_pending,
        vec!["two", "one"],
        "the failed undo and the one after it are left for a person"
    );
    assert_eq!(f.calls(), vec!["a", "b"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_respects_concurrency_and_keeps_input_order_with_errors() {
    let f = fixture();
    let script = r#"
let items = [];
for i in 0..12 { items.push(i); }
parallel(items, |i| test::mutate(#{ name: `n${i}`, delay_ms: 60, fail: i == 5 }), #{ concurrency: 4 })
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let max = f.recorder.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 4, "never more than 4 at once, saw {max}");
    assert!(max >= 2, "really concurrent: saw at most {max} at once");
    let results = report.value.expect("value").as_array().expect("array").clone();
    assert_eq!(results.len(), 12);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["item"], i, "input order");
        if i == 5 {
            assert_eq!(r["ok"], false);
            assert_eq!(r["error"]["kind"], "conflict");
        } else {
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(r["value"]["name"], format!("n{i}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_sized_parallel_result_fits_the_default_limits() {
    // 5,000 items of a map-valued output, as `parallel(targets, |t| k8s::undo(t))` returns over
    // a fleet: ~50,000 map properties in all. A data limit hit here would fail the run after
    // every item had already acted.
    let f = fixture();
    let script = r#"
let items = [];
for i in 0..5000 { items.push(i); }
let r = parallel(items, |i| #{ from_revision: i, to_revision: i - 1, changed: true,
    images: #{ web: `app:${i}` } }, #{ concurrency: 50 });
r.filter(|x| x.ok && x.value.changed).len()
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.value, Some(serde_json::json!(5000)));
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_times_out_one_item_without_stopping_the_others() {
    let f = fixture();
    // Item 1 blocks in a primitive, item 3 spins in script code: both are stopped by their
    // timeout, the others finish, and the run goes on after the batch.
    let script = r#"
let r = parallel([0, 1, 2, 3, 4], |i| {
    if i == 1 { test::mutate(#{ name: "slow", delay_ms: 60000 }); }
    if i == 3 { loop { } }
    test::mutate(#{ name: `n${i}` })
}, #{ concurrency: 5, timeout: "300ms" });
test::mutate(#{ name: "after" });
r
"#;
    let started = Instant::now();
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert!(started.elapsed() < Duration::from_secs(30), "the stuck items were stopped");
    let results = report.value.clone().expect("value").as_array().expect("array").clone();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["item"], i, "input order");
        if i == 1 || i == 3 {
            assert_eq!(r["ok"], false, "{r}");
            assert_eq!(r["error"]["kind"], "timeout", "{r}");
            assert!(r["error"]["message"].as_str().unwrap_or("").contains("300ms"), "{r}");
        } else {
            assert_eq!(r["ok"], true, "{r}");
        }
    }
    assert!(f.calls().contains(&"after".to_string()), "the run went on: {:?}", f.calls());
    // One journal event per item, with its index, outcome and duration.
    let mut items: Vec<(usize, bool)> = events(&report)
        .into_iter()
        .filter_map(|e| match e {
            Event::ParallelItem { index, ok, .. } => Some((index, ok)),
            _ => None,
        })
        .collect();
    items.sort();
    assert_eq!(items, vec![(0, true), (1, false), (2, true), (3, false), (4, true)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_fail_fast_skips_the_rest_and_otherwise_collects_every_failure() {
    let f = fixture();
    let script = r#"
let items = [];
for i in 0..20 { items.push(i); }
parallel(items, |i| test::mutate(#{ name: `n${i}`, fail: i == 0 || i == 7 }), #{ concurrency: 1, fail_fast: FF })
"#;
    let report = f.run(&script.replace("FF", "true"), |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let results = report.value.expect("value").as_array().expect("array").clone();
    assert_eq!(results[0]["error"]["kind"], "conflict");
    assert!(results[1..].iter().all(|r| r["ok"] == false), "the rest were skipped");
    assert!(results[5]["error"].as_str().unwrap_or("").contains("skipped"), "{}", results[5]);
    assert!(f.calls().is_empty(), "nothing after the (unrecorded) failure was sent: {:?}", f.calls());

    let f = fixture();
    let report = f.run(&script.replace("FF", "false"), |_| {}).await;
    let results = report.value.expect("value").as_array().expect("array").clone();
    let failed: Vec<usize> = (0..20).filter(|i| results[*i]["ok"] == false).collect();
    assert_eq!(failed, vec![0, 7], "failures collected, the others done");
    assert_eq!(f.calls().len(), 18, "every other item ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_loops_and_recursion_are_stopped_with_a_clear_message() {
    let mut f = fixture();
    f.engine.limits_mut().max_operations = 200_000;
    let report = f.run("let x = 0; loop { x += 1; }", |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed);
    let d = report.diagnostic.expect("diagnostic");
    assert!(d.message.contains("stopped after 200000 operations"), "{}", d.message);
    assert!(d.help.as_deref().unwrap_or("").contains("loop"));

    let report = f.run("fn down(n) { down(n + 1) }\ndown(0);", |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed);
    let d = report.diagnostic.expect("diagnostic");
    assert!(d.message.contains("nested deeper than 64 levels"), "{}", d.message);

    f.engine.limits_mut().max_map_size = 1000;
    let report = f
        .run("let xs = []; for i in 0..500 { xs.push(i); }\nparallel(xs, |i| #{ a: i, b: i })", |_| {})
        .await;
    assert_eq!(report.status, RunStatus::Failed);
    let d = report.diagnostic.expect("diagnostic");
    assert!(d.message.contains("object map grew beyond the runbook limits"), "{}", d.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_time_limit_stops_a_loop_and_a_blocked_primitive() {
    let f = fixture();
    let report = f.run("loop { }", |o| o.timeout = Some(Duration::from_millis(300))).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(
        report.error.as_deref().unwrap_or("").contains("exceeded its time limit of 300ms"),
        "{:?}",
        report.error
    );

    let started = Instant::now();
    let report = f
        .run(r#"test::mutate(#{ name: "slow", delay_ms: 60000 })"#, |o| {
            o.timeout = Some(Duration::from_millis(300))
        })
        .await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.error.as_deref().unwrap_or("").contains("exceeded its time limit"), "{:?}", report.error);
    assert!(started.elapsed() < Duration::from_secs(30), "the blocked call noticed the limit");
    // The journal says how far the run got: the call started and ended as stopped.
    let evs = events(&report);
    assert!(evs.iter().any(|e| matches!(e, Event::CallFinished { ok: false, .. })));
    assert!(matches!(evs.last(), Some(Event::RunFinished { status: RunStatus::Failed, .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_stops_the_run_without_undoing() {
    let f = fixture();
    let cancel = tokio_util::sync::CancellationToken::new();
    let c2 = cancel.clone();
    let recorder = f.recorder.clone();
    tokio::spawn(async move {
        // Interrupt while the mutating call is in flight.
        while recorder.in_flight.load(Ordering::SeqCst) == 0
            || recorder.calls.lock().map(|c| c.is_empty()).unwrap_or(true)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        c2.cancel();
    });
    let script = r#"
stage("one", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));
test::mutate(#{ name: "slow", delay_ms: 500 });
sleep("1h");
test::mutate(#{ name: "never" });
"#;
    let report = f.run(script, |o| o.cancel = cancel).await;
    // No undo was tried, so none failed: the run is left as it was, resumable (exit 3).
    assert_eq!(report.status, RunStatus::Interrupted, "an interrupted run is left resumable");
    assert_eq!(report.exit_code, 3);
    assert_eq!(report.undo_pending, vec!["one"]);
    // The mutation in flight finished (the safe point), so its outcome is journaled, not in doubt.
    assert_eq!(f.calls(), vec!["a", "slow"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_deny_without_a_terminal_and_pass_with_yes_or_dry_run() {
    let f = fixture();
    let script = r#"
stage("one", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));
approve("swap production back?");
test::mutate(#{ name: "prod" });
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Denied);
    assert_eq!(report.exit_code, 4);
    assert_eq!(f.calls(), vec!["a"], "stopped at the approval; nothing undone");

    let report = f.run(script, |o| o.yes = true).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(
        events(&report)
            .iter()
            .any(|e| matches!(e, Event::Approval { approved: true, by, .. } if by == "--yes"))
    );

    let report = f.run(script, |o| o.dry_run = true).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(report.plan.iter().any(|p| p.call == "approve" && p.effect.contains("swap production back?")));
}

#[tokio::test(flavor = "multi_thread")]
async fn primitive_errors_are_catchable_maps_with_a_kind() {
    let f = fixture();
    let script = r#"
let kind = "";
try { test::mutate(#{ name: "x", fail: true }); } catch (e) { kind = e.kind + "|" + e.target; }
let bad = "";
try { test::mutate(#{ nme: "x" }); } catch (e) { bad = e.message; }
#{ kind: kind, bad: bad }
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let v = report.value.expect("value");
    assert_eq!(v["kind"], "conflict|test/x");
    assert_eq!(v["bad"], "test::mutate: unknown key `nme`; did you mean `name`?");
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_and_wait_until_behave_as_documented() {
    let f = fixture();
    let script = r#"
let n = 0;
let got = retry(#{ attempts: 3, interval: "10ms" }, || { n += 1; if n < 3 { throw "flaky" } n });
let m = 0;
let ok = wait_until(#{ timeout: "2s", interval: "10ms" }, || { m += 1; m >= 3 });
let never = wait_until(#{ timeout: "50ms", interval: "10ms" }, || false);
let failed = "";
try { retry(#{ attempts: 2, interval: "10ms" }, || throw "always"); } catch (e) { failed = e; }
#{ got: got, ok: ok, never: never, failed: failed }
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    let v = report.value.expect("value");
    assert_eq!(v["got"], 3);
    assert_eq!(v["ok"], true);
    assert_eq!(v["never"], false);
    assert_eq!(v["failed"], "always");
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_come_from_the_stdlib_or_the_runbook_folder_only() {
    let f = fixture();
    write(f.dir.path(), "lib/util.rhai", "fn twice(x) { x * 2 }");
    let report = f.run("import \"lib/util\" as u;\nimport \"std/health\" as h;\nu::twice(21)", |_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.value.expect("value"), 42);

    let report = f.run("import \"../outside\" as o;", |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(
        report.error.as_deref().unwrap_or("").contains("leaves the runbook's folder"),
        "{:?}",
        report.error
    );

    let report = f.run("import \"/etc/hosts\" as o;", |_| {}).await;
    assert!(
        report.error.as_deref().unwrap_or("").contains("absolute paths are not allowed"),
        "{:?}",
        report.error
    );

    let report = f.run("import \"std/helth\" as o;", |_| {}).await;
    assert!(
        report.error.as_deref().unwrap_or("").contains("did you mean `std/health`"),
        "{:?}",
        report.error
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn params_arrive_typed_and_constant() {
    let f = fixture();
    let path = write(
        f.dir.path(),
        "p.rhai",
        r#"const RUNBOOK = #{ name: "p", version: "1.0.0", params: #{
    n: #{ type: "int" }, hosts: #{ type: "list", default_value: [] }, wait: #{ type: "duration", default_value: "1m" } } };
#{ n: params.n + 1, hosts: params.hosts, wait: duration_secs(params.wait) }"#,
    );
    let runbook = f.engine.load(&path).expect("loads");
    let report = f
        .engine
        .run(
            &runbook,
            &[("n".into(), "41".into()), ("hosts".into(), "a,b".into())],
            RunOptions::new(f.dir.path().join("state")),
        )
        .await
        .expect("starts");
    let v = report.value.expect("value");
    assert_eq!(v, serde_json::json!({ "n": 42, "hosts": ["a", "b"], "wait": 60 }));

    let err = f
        .engine
        .run(&runbook, &[("n".into(), "x".into())], RunOptions::new(f.dir.path().join("state")))
        .await
        .err();
    assert_eq!(err.map(|e| e.to_string()).as_deref(), Some("param `n`: `x` is not an int"));
}

#[tokio::test(flavor = "multi_thread")]
async fn journal_is_write_ahead_and_names_the_runbook() {
    let f = fixture();
    let report = f.run(r#"test::mutate(#{ name: "a" }); info("done")"#, |_| {}).await;
    let read = read_journal(&report.journal).expect("parses");
    assert!(!read.torn_tail);
    let kinds: Vec<&str> = read
        .records
        .iter()
        .map(|r| match &r.event {
            Event::RunStarted { .. } => "run_started",
            Event::CallStarted { .. } => "call_started",
            Event::CallFinished { .. } => "call_finished",
            Event::Log { .. } => "log",
            Event::RunFinished { .. } => "run_finished",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["run_started", "call_started", "call_finished", "log", "run_finished"]);
    let Event::RunStarted { runbook, .. } = &read.records[0].event else { panic!("first event") };
    assert_eq!(runbook.name, "runbook");
    assert!(runbook.hash.starts_with("sha256:"));
    assert!(read.records.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_outside_the_scope_is_refused_before_it_is_sent() {
    let f = fixture();
    let script = r#"
const RUNBOOK = #{ name: "scoped", version: "1.0.0", scope: ["test/shop-*"] };
test::mutate(#{ name: "shop-web" });
test::mutate(#{ name: "payments" });
"#;
    let report = f.run(script, |_| {}).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(f.calls(), vec!["shop-web"], "the out-of-scope call was never sent");
    let error = report.error.clone().unwrap_or_default();
    assert!(
        error.contains("denied: `test/payments` is outside the runbook's scope (test/shop-*)"),
        "{error}"
    );
    assert!(
        !events(&report)
            .iter()
            .any(|e| matches!(e, Event::CallStarted { target: Some(t), .. } if t == "test/payments"))
    );

    // --allow narrows further, and its error names the flag.
    let f = fixture();
    let report = f.run(script, |o| o.allow = vec!["test/nothing".into()]).await;
    assert!(f.calls().is_empty());
    assert!(report.error.unwrap_or_default().contains("add `--allow test/shop-web`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_a_locked_target_fails_fast_with_exit_5() {
    let f = Arc::new(fixture());
    let slow = r#"stage("hold", || test::mutate(#{ name: "web", delay_ms: 3000 }));"#;
    let first = {
        let f = f.clone();
        tokio::spawn(async move { f.run(slow, |_| {}).await })
    };
    // Wait until the first run holds the lock (its call is in flight).
    for _ in 0..200 {
        if f.recorder.in_flight.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let path = write(f.dir.path(), "second.rhai", r#"test::mutate(#{ name: "web" })"#);
    let runbook = f.engine.load(&path).expect("loads");
    let started = Instant::now();
    let second =
        f.engine.run(&runbook, &[], RunOptions::new(f.dir.path().join("state"))).await.expect("starts");
    assert!(started.elapsed() < Duration::from_secs(2), "it waited for nothing");
    assert_eq!(second.status, RunStatus::Locked, "{:?}", second.error);
    assert_eq!(second.exit_code, 5);
    let error = second.error.unwrap_or_default();
    assert!(error.contains("`test/web` is locked by run") && error.contains("since"), "{error}");

    let first = first.await.expect("first run");
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert!(error.contains(&first.run_id), "the holder is named: {error}");
    // Released at the end: a third run goes through.
    let third =
        f.engine.run(&runbook, &[], RunOptions::new(f.dir.path().join("state"))).await.expect("starts");
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.error);
}

/// Cuts a finished run's journal just after the `CallStarted` of the call named `name`, as if
/// the process had been killed between sending that call and journaling its outcome.
fn crash_after_sending(report: &RunReport, name: &str) {
    let text = std::fs::read_to_string(&report.journal).expect("journal");
    let mut kept = String::new();
    for line in text.lines() {
        kept.push_str(line);
        kept.push('\n');
        if line.contains("\"type\":\"call_started\"") && line.contains(&format!("\"name\":\"{name}\"")) {
            break;
        }
    }
    kept.push_str("{\"seq\":99,\"ts\":\"2026-11-"); // and a torn line for good measure
    std::fs::write(&report.journal, kept).expect("rewrite journal");
}

const THREE_STAGES: &str = r#"
let a = stage("one", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));
stage("two", || test::mutate(#{ name: "b" }));
stage("three", || test::mutate(#{ name: "c" }));
a.name
"#;

async fn resume(f: &Fixture, run_id: &str, force: bool) -> Result<RunReport, rollbook::engine::EngineError> {
    let state = f.dir.path().join("state");
    let (runbook, params, from) = f.engine.prepare_resume(&state, run_id, force, &[])?;
    let mut opts = RunOptions::new(state);
    opts.resume = Some(from);
    f.engine.run(&runbook, &params, opts).await
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_replays_completed_stages_and_checks_the_call_in_doubt() {
    let f = fixture();
    let first = f.run(THREE_STAGES, |_| {}).await;
    assert_eq!(first.status, RunStatus::Succeeded);
    crash_after_sending(&first, "b");
    f.recorder.calls.lock().expect("recorder").retain(|c| c != "c"); // stage three never ran

    let report = resume(&f, &first.run_id, false).await.expect("resumes");
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.run_id, first.run_id, "the same run continues");
    assert_eq!(report.value, Some(serde_json::json!("a")), "stage one's value came from the journal");
    assert_eq!(f.calls(), vec!["a", "b", "c"], "nothing was applied twice");
    let evs = events(&report);
    assert!(evs.iter().any(|e| matches!(e, Event::RunResumed { .. })));
    assert!(evs.iter().any(|e| matches!(e, Event::Replayed { what } if what == "stage one")));
    assert!(evs.iter().any(|e| matches!(e, Event::CallVerified { applied: Some(true), primitive, .. } if primitive == "test::mutate")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_in_doubt_that_did_not_happen_is_sent_and_a_blind_one_stops_for_a_person() {
    let f = fixture();
    let first = f.run(THREE_STAGES, |_| {}).await;
    crash_after_sending(&first, "b");
    f.recorder.calls.lock().expect("recorder").retain(|c| c == "a"); // b was lost on the way
    let report = resume(&f, &first.run_id, false).await.expect("resumes");
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(f.calls(), vec!["a", "b", "c"]);

    let f = fixture();
    let blind = r#"stage("one", || test::mutate(#{ name: "a" }), || test::mutate(#{ name: "undo-a" }));
test::mutate(#{ name: "blind-swap" });"#;
    let first = f.run(blind, |_| {}).await;
    crash_after_sending(&first, "blind-swap");
    let report = resume(&f, &first.run_id, false).await.expect("resumes");
    assert_eq!(report.status, RunStatus::UndoFailed);
    assert_eq!(report.exit_code, 3);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("`test::mutate` on `test/blind-swap` was sent at")
            && error.contains("outcome is unknown"),
        "{error}"
    );
    assert_eq!(f.calls(), vec!["a", "blind-swap"], "not resent, and nothing undone while in doubt");
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_refuses_a_changed_runbook_unless_forced_and_a_finished_run() {
    let f = fixture();
    let first = f.run(THREE_STAGES, |_| {}).await;
    let err = resume(&f, &first.run_id, false).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("already ended (succeeded)"), "{err}");

    crash_after_sending(&first, "b");
    write(f.dir.path(), "runbook.rhai", &format!("{THREE_STAGES}\n// edited\n"));
    let err = resume(&f, &first.run_id, false).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("changed since run") && err.contains("--force"), "{err}");
    let report = resume(&f, &first.run_id, true).await.expect("forced");
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert!(events(&report).iter().any(|e| matches!(e, Event::RunResumed { forced: true, .. })));
}
