//! Crash safety of the real binary: a three-stage rollback (App Service swap, Kubernetes undo,
//! Logic Apps promote) against the simulator is killed with SIGKILL at many points, then
//! `rollbook resume` (a new process, same simulator) must finish it every time with the right
//! final state, each mutation applied exactly once (counted on the simulator's request record)
//! and a journal that still parses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollbook::run::journal::{Event, read_journal};
use rollbook::run::{RunStatus, journal::Record};
use rollbook::sim::SimHandle;
use rollbook::sim::record::RecordedRequest;

use super::support::write;

const RUNBOOK: &str = r#"
const RUNBOOK = #{
    name: "crash-rollback",
    version: "1.0.0",
    scope: ["appservice/rg-shop/*", "k8s/prod/shop/*", "logicapp/rg-shop/*"],
};
let s = #{ group: "rg-shop", site: "shop-web", slot: "staging", timeout: "5s" };
stage("swap", || appservice::swap(s), || appservice::swap(s));
let k = #{ context: "prod", namespace: "shop", deployment: "web", to_revision: 1 };
stage("undo", || k8s::undo(k), || k8s::undo(k + #{ to_revision: 2 }));
let w = #{ group: "rg-shop", workflow: "orders", version: "08585000000000000001" };
stage("promote", || logicapp::promote(w), || ());
"rolled back"
"#;

/// The world of the crash test. `lro_polls = 0`: a swap completes at its first observation,
/// as a real swap completes on its own whether or not anyone polls; the latency faults hold
/// each first mutating request in flight so a kill can land between send and outcome, and the
/// small latency on every answer lets kills land while reads are in flight too.
pub const SCENARIO: &str = r#"
[sim]
lro_polls = 0
latency = "15ms"

[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 1
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0" }

[[logicapp.workflows]]
group = "rg-shop"
name = "orders"
versions = ["08585000000000000001", "08585000000000000002"]

[[faults]]
method = "POST"
path = "*/slotsswap"
latency = "150ms"

[[faults]]
method = "PATCH"
path = "/k8s/prod/apis/apps/v1/namespaces/shop/deployments/web"
latency = "150ms"

[[faults]]
method = "PUT"
path = "*/workflows/orders"
latency = "150ms"
"#;

pub use super::support::LiveSim;

/// What makes the test kill the first run.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// Once the journal has this many whole lines.
    Lines(usize),
    /// Once the Nth mutating request reached the simulator (still in flight).
    Sent(usize),
    /// Once the Nth mutating request was answered (its outcome not yet journaled, usually).
    Answered(usize),
    /// Once the simulator has seen this many requests of any kind (reads included).
    Requests(usize),
    /// Once the simulator has answered this many requests of any kind.
    Replies(usize),
    /// After this long.
    After(u64),
}

/// Which request is one of the three mutations, by index 0 (swap), 1 (undo), 2 (promote).
fn mutation(r: &RecordedRequest) -> Option<usize> {
    let path = r.path.to_ascii_lowercase();
    match r.method.as_str() {
        "POST" if path.ends_with("/slotsswap") => Some(0),
        "PATCH" if path == "/k8s/prod/apis/apps/v1/namespaces/shop/deployments/web" => Some(1),
        "PUT" if path.ends_with("/workflows/orders") => Some(2),
        _ => None,
    }
}

fn journal_lines(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0)
}

fn the_journal(state: &Path) -> Option<PathBuf> {
    std::fs::read_dir(state.join("runs"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
}

fn fired(trigger: Trigger, started: Instant, state: &Path, sim: &SimHandle) -> bool {
    match trigger {
        Trigger::Lines(n) => the_journal(state).is_some_and(|p| journal_lines(&p) >= n),
        Trigger::Sent(n) => sim.requests().iter().filter(|r| mutation(r).is_some()).count() >= n,
        Trigger::Answered(n) => {
            sim.requests().iter().filter(|r| mutation(r).is_some() && r.status.is_some()).count() >= n
        }
        Trigger::Requests(n) => sim.requests().len() >= n,
        Trigger::Replies(n) => sim.requests().iter().filter(|r| r.status.is_some()).count() >= n,
        Trigger::After(ms) => started.elapsed() >= Duration::from_millis(ms),
    }
}

/// Where the kill landed: journal lines, the last event, mutations sent and answered, and
/// requests of any kind seen and answered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KillPoint {
    lines: usize,
    last: String,
    sent: usize,
    answered: usize,
    requests: usize,
    replies: usize,
}

fn event_name(r: &Record) -> String {
    serde_json::to_value(&r.event)
        .ok()
        .and_then(|v| v.get("type").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| format!("{:?}", r.event).chars().take(20).collect())
}

fn texts(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One trial: a fresh simulator, a run killed at `trigger`, a resume. Returns the kill point,
/// or `None` when the run finished before the trigger fired.
fn trial(trigger: Trigger, n: usize) -> Option<KillPoint> {
    trial_in(SCENARIO, trigger, n)
}

fn trial_in(scenario: &str, trigger: Trigger, n: usize) -> Option<KillPoint> {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = LiveSim::start(dir.path(), scenario);
    let runbook = write(dir.path(), "crash-rollback.rhai", RUNBOOK);
    let state = dir.path().join("state");
    let started = Instant::now();
    let mut child: Child = live
        .rollbook("run", &state)
        .arg(&runbook)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn run");
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0), "trial {n} ({trigger:?}): the uninterrupted run failed");
            return None;
        }
        if fired(trigger, started, &state, &live.sim) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "trial {n} ({trigger:?}): never fired");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().expect("SIGKILL");
    let killed = child.wait().expect("reap");
    if killed.code().is_some() {
        // It exited on its own just before the kill.
        return None;
    }
    let Some(journal) = the_journal(&state).filter(|j| journal_lines(j) > 0) else {
        // Killed before the run began: there is nothing to resume (and nothing was sent).
        assert!(
            live.sim.requests().iter().all(|r| mutation(r).is_none()),
            "trial {n}: sent before journaling"
        );
        return None;
    };
    let read =
        read_journal(&journal).unwrap_or_else(|e| panic!("trial {n}: journal unreadable after kill: {e}"));
    let requests = live.sim.requests();
    let point = KillPoint {
        lines: read.records.len(),
        last: read.records.last().map(event_name).unwrap_or_default(),
        sent: requests.iter().filter(|r| mutation(r).is_some()).count(),
        answered: requests.iter().filter(|r| mutation(r).is_some() && r.status.is_some()).count(),
        requests: requests.len(),
        replies: requests.iter().filter(|r| r.status.is_some()).count(),
    };
    let run_id = journal.file_stem().and_then(|s| s.to_str()).expect("run id").to_string();
    // A request cut off mid-flight is either dropped with its connection or lands within its
    // latency: give it that long, as an operator's resume would.
    std::thread::sleep(Duration::from_millis(200));
    let out = live.rollbook("resume", &state).arg(&run_id).output().expect("resume");
    let ended = point.last == "run_finished";
    if ended {
        // Killed after the end was journaled: resume says so and does nothing.
        assert_eq!(out.status.code(), Some(2), "trial {n}: {}", texts(&out));
        assert!(texts(&out).contains("nothing to resume"), "trial {n}: {}", texts(&out));
    } else {
        assert_eq!(
            out.status.code(),
            Some(0),
            "trial {n} ({trigger:?}, killed at {point:?}): resume failed\n{}",
            texts(&out)
        );
    }

    // The world is rolled back, exactly once each.
    let site = live.sim.resource_state("appservice/rg-shop/shop-web").expect("site");
    assert_eq!(site["production"], "1.4.0", "trial {n} ({trigger:?} at {point:?}): {site}");
    let web = live.sim.resource_state("k8s/prod/shop/web").expect("deployment");
    assert_eq!(web["image"], "shop/web:1.4.0", "trial {n} ({trigger:?} at {point:?}): {web}");
    let orders = live.sim.resource_state("logicapp/rg-shop/orders").expect("workflow");
    assert_eq!(orders["current"], "08585000000000000001", "trial {n} ({trigger:?} at {point:?}): {orders}");
    let mut effective = [0usize; 3];
    for r in live.sim.requests() {
        if let (Some(i), Some(200..=299)) = (mutation(&r), r.status) {
            effective[i] += 1;
        }
    }
    assert_eq!(
        effective,
        [1, 1, 1],
        "trial {n} ({trigger:?} at {point:?}): mutations applied (swap, undo, promote)"
    );

    // The journal parses whole and ends in success.
    let read =
        read_journal(&journal).unwrap_or_else(|e| panic!("trial {n}: journal unreadable after resume: {e}"));
    assert!(!read.torn_tail, "trial {n}: resume leaves no torn line");
    let last = read.records.last().map(|r| &r.event);
    assert!(
        matches!(last, Some(Event::RunFinished { status: RunStatus::Succeeded, .. })),
        "trial {n}: journal ends with {last:?}"
    );
    assert!(
        ended || read.records.iter().any(|r| matches!(r.event, Event::RunResumed { .. })),
        "trial {n}: resume journaled"
    );
    if point.last == "call_started" {
        // The call in doubt was settled by its primitive's check, and that decision is journaled.
        assert!(
            read.records.iter().any(|r| matches!(r.event, Event::CallVerified { applied: Some(_), .. })),
            "trial {n} ({trigger:?} at {point:?}): no verification journaled"
        );
    }
    Some(point)
}

#[test]
fn sigkill_at_many_points_then_resume_finishes_once() {
    let mut triggers: Vec<Trigger> = Vec::new();
    triggers.extend((1..=14).map(Trigger::Lines));
    triggers.extend((1..=3).map(Trigger::Sent));
    triggers.extend((1..=3).map(Trigger::Answered));
    triggers.extend((1..=10).map(Trigger::Requests));
    triggers.extend((1..=10).map(Trigger::Replies));
    triggers
        .extend([0, 40, 80, 120, 160, 200, 300, 450, 600, 800, 1000, 1150, 1300, 1500].map(Trigger::After));
    let queue = Arc::new(Mutex::new(triggers.into_iter().enumerate().collect::<Vec<_>>()));
    let points = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let queue = queue.clone();
            let points = points.clone();
            std::thread::spawn(move || {
                loop {
                    let next = queue.lock().expect("queue").pop();
                    let Some((n, trigger)) = next else { break };
                    if let Some(p) = trial(trigger, n) {
                        points.lock().expect("points").push(p);
                    }
                }
            })
        })
        .collect();
    let mut panicked = None;
    for w in workers {
        if let Err(e) = w.join() {
            panicked = Some(e);
        }
    }
    if let Some(e) = panicked {
        std::panic::resume_unwind(e);
    }
    let points = points.lock().expect("points").clone();
    let distinct: BTreeSet<_> = points.iter().cloned().collect();
    let in_doubt = points.iter().filter(|p| p.last == "call_started").count();
    eprintln!(
        "crash: {} kills, {} distinct kill points, {} with a call sent and no outcome journaled",
        points.len(),
        distinct.len(),
        in_doubt
    );
    for p in &distinct {
        eprintln!("  killed at {p:?}");
    }
    assert!(points.len() >= 30, "only {} kills landed", points.len());
    assert!(distinct.len() >= 25, "only {} distinct kill points", distinct.len());
    assert!(in_doubt >= 10, "kills between a call's send and its outcome: {in_doubt}");
}

#[test]
fn a_swap_accepted_but_unfinished_at_the_kill_is_not_swapped_again() {
    // Swaps take two polls to finish here: the kill lands while the accepted swap is still
    // running, so the resume's check must keep looking until it completes, and not re-send it.
    let slow = SCENARIO.replace("lro_polls = 0", "lro_polls = 2");
    let point = trial_in(&slow, Trigger::Answered(1), 0).expect("killed while the swap ran");
    assert_eq!((point.sent, point.answered, point.last.as_str()), (1, 1, "call_started"), "{point:?}");
}
