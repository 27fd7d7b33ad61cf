//! Run modes and the operator commands on a stopped run, with the real binary and the built-in
//! simulator: a sandbox run stays a sandbox run (listed, filtered, resumed only in a simulator
//! rebuilt from its scenario), `rollbook undo`, `resume --yes` after a denial,
//! `--assume-not-applied`, and `runs show last` / by suffix.

use rollbook::run::journal::{Event, RunStatus};

use crate::support::{Outcome, Rollbook, World, journal_events as events, texts};

const SCENARIO: &str = r#"
name = "two slots"

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0" }

[test]
runbook = "swap.rhai"
params = { site = "shop-web" }
"#;

/// Swaps, then asks; the swap's undo swaps back.
const RUNBOOK: &str = r#"
const RUNBOOK = #{
    name: "swap-then-ask",
    params: #{ site: #{ type: "string" } },
    scope: ["appservice/rg-shop/*"],
};
let t = #{ group: "rg-shop", site: params.site, slot: "staging" };
stage("swap", || appservice::swap(t), || appservice::swap(t));
approve("keep the swap?");
stage("after", || 42);
"done"
"#;

/// A sandbox run of `runbook` (as `swap.rhai`, with params from the scenario's `[test]`); it
/// stops at the approval (exit 4). Later commands run in its state dir with real endpoints
/// pointed at a closed loopback port (so a run that wrongly leaves the sandbox fails).
fn denied_sandbox_run_of(runbook: &str) -> Outcome {
    let out = Rollbook::new()
        .script_named("swap.rhai", runbook)
        .world(World::toml(SCENARIO))
        .scenario_file("swap.toml")
        .sandbox()
        .run()
        .exits(4);
    assert!(
        out.journal().starts_with(out.state_dir().join("sandbox").join("runs")),
        "sandbox journals live under <state>/sandbox/runs"
    );
    out
}

fn denied_sandbox_run() -> Outcome {
    denied_sandbox_run_of(RUNBOOK)
}

#[test]
fn a_sandbox_run_records_its_mode_and_scenario_and_lives_apart() {
    let w = denied_sandbox_run();
    let (id, journal) = (w.run_id(), w.journal());
    let Some(Event::RunStarted { mode, scenario, params, .. }) = events(&journal).into_iter().next() else {
        panic!("run_started first")
    };
    assert_eq!(mode, rollbook::run::RunMode::Sandbox);
    let scenario = scenario.expect("the scenario is journaled");
    assert!(scenario.path.ends_with("swap.toml") && scenario.hash.starts_with("sha256:"), "{scenario:?}");
    assert_eq!(params["site"], "shop-web", "params came from the scenario's [test] params");
    assert!(!w.state_dir().join("runs").join(format!("{id}.jsonl")).exists(), "not among real runs");
    assert!(!w.state_dir().join("locks").exists(), "sandbox locks never block real runs");

    let list = w.then(&["runs", "list", "--output", "json"]).out;
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(runs[0]["id"], id.as_str());
    assert_eq!(runs[0]["mode"], "sandbox");
    let real = w.then(&["runs", "list", "--output", "json", "--mode", "real"]).out;
    let real: serde_json::Value = serde_json::from_slice(&real.stdout).expect("json");
    assert_eq!(real.as_array().map(Vec::len), Some(0), "{real}");
    let text = texts(&w.then(&["runs", "list"]).out).0;
    assert!(text.contains("MODE") && text.contains("sandbox"), "{text}");
}

#[test]
fn runs_show_accepts_last_and_a_unique_suffix() {
    let w = denied_sandbox_run();
    let id = w.run_id();
    for key in ["last", &id[id.len() - 6..]] {
        let out = w.then(&["runs", "show", key]).out;
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{key}: {stderr}");
        assert!(stdout.contains(&format!("run {id}")) && stdout.contains("mode     sandbox"), "{stdout}");
    }
}

#[test]
fn resume_yes_continues_a_run_stopped_at_a_denied_approval() {
    let w = denied_sandbox_run();
    let (id, journal) = (w.run_id(), w.journal());
    let out = w.then(&["resume", &id, "--yes"]).out;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let evs = events(&journal);
    assert!(evs.iter().any(|e| matches!(e, Event::Approval { approved: true, by, .. } if by == "--yes")));
    assert!(
        evs.iter().any(|e| matches!(e, Event::StageFinished { stage, ok: true, .. } if stage == "after"))
    );
    assert!(
        evs.iter().any(|e| matches!(e, Event::Replayed { what } if what == "stage swap")),
        "not swapped twice"
    );
    assert!(matches!(evs.last(), Some(Event::RunFinished { status: RunStatus::Succeeded, .. })));
    // Without --yes, a denied run is not resumed.
    let again = w.then(&["resume", &id]).out;
    assert_eq!(again.status.code(), Some(2), "{:?}", texts(&again));
}

#[test]
fn undo_runs_the_recorded_undos_of_a_denied_run_in_its_own_journal() {
    let w = denied_sandbox_run();
    let (id, journal) = (w.run_id(), w.journal());
    let out = w.then(&["undo", &id]).out;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let evs = events(&journal);
    assert!(
        evs.iter().any(|e| matches!(e, Event::UndoFinished { stage, ok: true, .. } if stage == "swap")),
        "{evs:?}"
    );
    assert!(
        !evs.iter().any(|e| matches!(e, Event::StageStarted { stage } if stage == "after")),
        "undo acts on nothing past the stop"
    );
    assert!(!evs.iter().any(|e| matches!(e, Event::Approval { approved: true, .. })), "nothing was approved");
    // Undone once: a second undo finds nothing left to undo and changes nothing.
    let again = w.then(&["undo", &id]).out;
    assert_eq!(again.status.code(), Some(0), "{:?}", texts(&again));
    let undos = events(&journal).iter().filter(|e| matches!(e, Event::UndoStarted { .. })).count();
    assert_eq!(undos, 1, "the swap was undone exactly once");
}

#[test]
fn a_sandbox_run_resumes_only_in_a_simulator_rebuilt_from_its_own_scenario() {
    let w = denied_sandbox_run();
    let (id, journal) = (w.run_id(), w.journal());
    // Made resumable: the approval and the end are cut off, as if the process had been killed.
    let text = std::fs::read_to_string(&journal).expect("journal");
    let kept: Vec<&str> = text.lines().take_while(|l| !l.contains("\"type\":\"approval\"")).collect();
    std::fs::write(&journal, kept.join("\n") + "\n").expect("rewrite");

    // The scenario changed: refused (exit 2), nothing appended.
    let original = std::fs::read_to_string(w.scenario()).expect("scenario");
    std::fs::write(w.scenario(), original.replace("1.4.0", "1.3.0")).expect("edit scenario");
    let refused = w.then(&["resume", &id, "--yes"]).out;
    let (_, stderr) = texts(&refused);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sandbox") && stderr.contains("changed"), "{stderr}");
    assert!(!events(&journal).iter().any(|e| matches!(e, Event::RunResumed { .. })));

    // Given again explicitly, it resumes in the simulator (the real endpoint is a closed port).
    let out = w.then(&["resume", &id, "--yes", "--sandbox", w.scenario().to_str().expect("path")]).out;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(matches!(events(&journal).last(), Some(Event::RunFinished { status: RunStatus::Succeeded, .. })));
}

#[test]
fn a_sandbox_run_whose_scenario_is_gone_is_refused() {
    let w = denied_sandbox_run();
    let (id, journal) = (w.run_id(), w.journal());
    let text = std::fs::read_to_string(&journal).expect("journal");
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("\"type\":\"run_finished\"")).collect();
    std::fs::write(&journal, kept.join("\n") + "\n").expect("rewrite");
    std::fs::remove_file(w.scenario()).expect("remove scenario");
    let out = w.then(&["resume", &id, "--yes"]).out;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--sandbox"), "says how to go on: {stderr}");
}

#[test]
fn assume_not_applied_settles_a_call_in_doubt_and_journals_who_said_so() {
    let w = denied_sandbox_run();
    let (id, journal) = (w.run_id(), w.journal());
    // Killed right after the swap was sent: the swap is in doubt.
    let text = std::fs::read_to_string(&journal).expect("journal");
    let mut kept = Vec::new();
    let mut call = 0;
    for line in text.lines() {
        kept.push(line);
        if line.contains("\"type\":\"call_started\"") && line.contains("appservice::swap") {
            let v: serde_json::Value = serde_json::from_str(line).expect("record");
            call = v["call"].as_u64().expect("call number");
            break;
        }
    }
    std::fs::write(&journal, kept.join("\n") + "\n").expect("rewrite");
    let bad = w.then(&["resume", &id, "--yes", "--assume-not-applied", "999"]).out;
    assert_eq!(bad.status.code(), Some(2), "an unknown call is refused: {:?}", texts(&bad));
    let out = w.then(&["resume", &id, "--yes", "--assume-not-applied", &call.to_string()]).out;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let evs = events(&journal);
    let user = rollbook::run::current_user();
    assert!(
        evs.iter().any(|e| matches!(e, Event::CallVerified { call: c, applied: Some(false), detail, .. }
            if *c == call && detail.contains("--assume-not-applied") && detail.contains(&user))),
        "{evs:?}"
    );
}

#[test]
fn resume_shows_the_call_in_doubt_its_deadline_and_what_each_look_sees() {
    let w = denied_sandbox_run_of(
        &RUNBOOK.replace(r#"slot: "staging" }"#, r#"slot: "staging", timeout: "20s" }"#),
    );
    let (id, journal) = (w.run_id(), w.journal());
    let text = std::fs::read_to_string(&journal).expect("journal");
    let mut kept = Vec::new();
    for line in text.lines() {
        kept.push(line);
        if line.contains("\"type\":\"call_started\"") && line.contains("appservice::swap") {
            break;
        }
    }
    std::fs::write(&journal, kept.join("\n") + "\n").expect("rewrite");
    let out = w.then(&["resume", &id, "--yes"]).out;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("has no outcome: it will be checked"), "names the call in doubt first: {stderr}");
    assert!(stderr.contains("deciding by"), "shows the deadline: {stderr}");
    assert!(stderr.contains("no swap on record"), "shows what the look saw: {stderr}");
    let evs = events(&journal);
    assert!(evs.iter().any(|e| matches!(e, Event::CallVerified { applied: Some(false), .. })), "{evs:?}");
}

#[test]
fn undo_of_a_succeeded_run_is_refused() {
    let w = denied_sandbox_run();
    let id = w.run_id();
    let done = w.then(&["resume", &id, "--yes"]).out;
    assert_eq!(done.status.code(), Some(0), "{:?}", texts(&done));
    let out = w.then(&["undo", &id]).out;
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("succeeded") && stderr.contains("undo"), "{stderr}");
}
