//! Dry-run plans the whole runbook: after a planned mutation, reads and waits on that target see
//! the planned state, every planned output says `planned: true`, and scripts can ask
//! `dry_run()`. Driven through the binary against the simulator.

use std::path::{Path, PathBuf};

use crate::support::{Rollbook, World, rollbook, texts};

/// The `-p KEY=VALUE` arguments of a scenario's `[test] params`.
fn scenario_params(scenario: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(scenario).expect("read scenario");
    let doc: toml::Table = text.parse().expect("scenario parses");
    let mut out = Vec::new();
    let params = doc.get("test").and_then(|t| t.get("params")).and_then(|p| p.as_table());
    for (key, value) in params.into_iter().flatten() {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(String::from).unwrap_or(i.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        out.push("-p".into());
        out.push(format!("{key}={value}"));
    }
    out
}

/// The names (or the literal prefix of a template name) of every `stage(...)` in a runbook.
fn stage_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("stage(") {
        rest = &rest[at + "stage(".len()..];
        let trimmed = rest.trim_start();
        let Some(quote) = trimmed.chars().next().filter(|c| *c == '"' || *c == '`') else { continue };
        let body = &trimmed[1..];
        let Some(end) = body.find(quote) else { continue };
        let name = &body[..end];
        let literal = name.split("${").next().unwrap_or(name).to_string();
        if !literal.is_empty() {
            names.push(literal);
        }
    }
    names
}

fn runbooks() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("runbooks dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    all.sort();
    all
}

#[test]
fn every_ready_runbook_dry_runs_its_incident_to_the_end() {
    let books = runbooks();
    assert!(books.len() >= 6, "the ready runbooks are found: {books:?}");
    let state = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for book in &books {
        let scenario = book.with_extension("incident.toml");
        assert!(scenario.exists(), "{} has an incident scenario", book.display());
        let mut args: Vec<String> = vec![
            "run".into(),
            book.display().to_string(),
            "--dry-run".into(),
            "--sandbox".into(),
            scenario.display().to_string(),
            "--output".into(),
            "json".into(),
            "--state-dir".into(),
            state.path().display().to_string(),
        ];
        args.extend(scenario_params(&scenario));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rollbook(&argv);
        let (stdout, stderr) = texts(&out);
        if out.status.code() != Some(0) {
            failures.push(format!("{}: exit {:?}\n{stderr}", book.display(), out.status.code()));
            continue;
        }
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
        assert_eq!(report["status"], "succeeded", "{}: {stdout}", book.display());
        assert_eq!(report["dry_run"], true);
        let plan = report["plan"].as_array().cloned().unwrap_or_default();
        assert!(!plan.is_empty(), "{} plans something", book.display());
        let planned_stages: Vec<String> =
            plan.iter().filter_map(|p| p["stage"].as_str().map(String::from)).collect();
        let source = std::fs::read_to_string(book).expect("read runbook");
        for stage in stage_names(&source) {
            assert!(
                planned_stages.iter().any(|s| s.starts_with(&stage)),
                "{}: the plan names stage `{stage}`; it has {planned_stages:?}",
                book.display()
            );
        }
        // Only the stages' own steps are planned: no undo of an undo.
        assert!(
            plan.iter().all(|p| p["stage"].is_string() || p["call"] == "approve"),
            "{}: every planned mutation belongs to a stage: {plan:?}",
            book.display()
        );
        assert!(
            report["undone"].as_array().is_none_or(|u| u.is_empty()),
            "{}: nothing undone",
            book.display()
        );
    }
    assert!(failures.is_empty(), "runbooks that did not dry-run to the end:\n{}", failures.join("\n"));
}

const STUCK: &str = r#"
name = "web 1.5.0 is stuck"
[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
broken = ["shop/web:1.5.0"]
"#;

fn dry_run_value(script: &str, dry_run: bool) -> (Option<i32>, serde_json::Value, String) {
    let mut run =
        Rollbook::new().script_named("b.rhai", script).world(World::toml(STUCK)).sandbox().json().yes();
    if dry_run {
        run = run.dry_run();
    }
    let out = run.run();
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap_or(serde_json::Value::Null);
    (out.code(), report, out.stderr())
}

#[test]
fn reads_and_waits_after_a_planned_undo_see_the_planned_state() {
    let script = r#"
        let k = #{ context: "prod", namespace: "shop", deployment: "web" };
        let u = stage("undo", || k8s::undo(k));
        let s = k8s::status(k + #{ timeout: "10m" });
        let g = k8s::get(k);
        let h = k8s::history(k);
        let current = h.filter(|e| e.current);
        #{
            dry: dry_run(),
            undo_planned: u.planned,
            complete: s.complete,
            status_planned: s.planned,
            revision: g.revision,
            image: g.images.web,
            get_planned: g.planned,
            current_revision: current[0].revision,
            current_image: current[0].images.web,
        }
    "#;
    let (code, report, stderr) = dry_run_value(script, true);
    assert_eq!(code, Some(0), "{stderr}\n{report}");
    let v = &report["value"];
    assert_eq!(v["dry"], true, "{v}");
    assert_eq!(v["undo_planned"], true, "k8s::undo's planned output says planned: {v}");
    assert_eq!(v["complete"], true, "the status after a planned undo completes at once: {v}");
    assert_eq!(v["status_planned"], true, "{v}");
    assert_eq!(v["revision"], 3, "the planned undo makes revision 3: {v}");
    assert_eq!(v["image"], "shop/web:1.4.0", "{v}");
    assert_eq!(v["get_planned"], true, "{v}");
    assert_eq!(v["current_revision"], 3, "{v}");
    assert_eq!(v["current_image"], "shop/web:1.4.0", "{v}");
}

#[test]
fn a_planned_set_image_then_its_undo_plans_from_the_planned_state() {
    let script = r#"
        let k = #{ context: "prod", namespace: "shop", deployment: "web" };
        let a = k8s::set_image(k + #{ image: "shop/web:1.5.1" });
        let g = k8s::get(k);
        let b = k8s::set_image(k + #{ image: a.from_image });
        let s = k8s::scale(k + #{ replicas: 5 });
        let after = k8s::get(k);
        #{ a: a.planned, image: g.images.web, back_from: b.from_image, back_changed: b.changed,
           scale_planned: s.planned, replicas: after.replicas, final_image: after.images.web }
    "#;
    let (code, report, stderr) = dry_run_value(script, true);
    assert_eq!(code, Some(0), "{stderr}\n{report}");
    let v = &report["value"];
    assert_eq!(v["a"], true, "{v}");
    assert_eq!(v["image"], "shop/web:1.5.1", "get shows the planned image: {v}");
    assert_eq!(v["back_from"], "shop/web:1.5.1", "the second plan starts from the first: {v}");
    assert_eq!(v["back_changed"], true, "{v}");
    assert_eq!(v["scale_planned"], true, "{v}");
    assert_eq!(v["replicas"], 5, "{v}");
    assert_eq!(v["final_image"], "shop/web:1.5.0", "{v}");
}

#[test]
fn dry_run_is_false_in_a_real_run_and_the_world_is_read_for_real() {
    let script = r#"
        let k = #{ context: "prod", namespace: "shop", deployment: "web" };
        #{ dry: dry_run(), planned: k8s::get(k).planned }
    "#;
    let (code, report, stderr) = dry_run_value(script, false);
    assert_eq!(code, Some(0), "{stderr}\n{report}");
    assert_eq!(report["value"]["dry"], false, "{report}");
    assert!(report["value"]["planned"].is_null(), "a real read is not planned: {report}");
}

#[test]
fn a_health_probe_after_a_planned_fix_is_reported_as_would_be_checked() {
    let scenario_extra = r#"
[[health]]
url = "https://shop.example.com/web/healthz"
follows = "k8s/prod/shop/web"
"#;
    let report = dry_run_report(
        Rollbook::new()
            .script_named(
                "b.rhai",
                r#"
        let url = "https://shop.example.com/web/healthz";
        let k = #{ context: "prod", namespace: "shop", deployment: "web" };
        let before = health::http(#{ url: url });
        stage("undo", || k8s::undo(k));
        let after = health::http(#{ url: url, attempts: 40, interval: "15s" });
        if !after.ok { fail("still unhealthy"); }
        #{ before: before.ok, after: after.ok, planned: after.planned, observed: after.observed.ok, attempts: after.attempts }
    "#,
            )
            .world(World::toml(&format!("{STUCK}{scenario_extra}")))
            .sandbox(),
    );
    let v = &report["value"];
    assert_eq!(v["before"], false, "a probe before any planned change is real: {v}");
    assert_eq!(v["after"], true, "{v}");
    assert_eq!(v["planned"], true, "{v}");
    assert_eq!(v["observed"], false, "the real answer is kept: {v}");
    assert_eq!(v["attempts"], 1, "the probe is sent once, without waiting through its attempts: {v}");
}

#[test]
fn a_context_fetched_through_aks_has_one_name_in_keys_allow_scenario_and_journal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    // Every ready scenario names the simulated context of an AKS cluster as AKS names it.
    for entry in std::fs::read_dir(&root).expect("runbooks dir").flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") || path.ends_with("rollbook.toml") {
            continue;
        }
        let doc: toml::Table = std::fs::read_to_string(&path).expect("read").parse().expect("toml");
        let clusters = doc.get("aks").and_then(|a| a.get("clusters")).and_then(|c| c.as_array());
        for cluster in clusters.into_iter().flatten() {
            assert_eq!(
                cluster.get("context"),
                cluster.get("name"),
                "{}: the simulated context of an AKS cluster is named after the cluster, as its kubeconfig names it",
                path.display()
            );
        }
    }
    // A sandbox run: `--allow` with that name is accepted, the journal's target uses it, and it
    // is the key the scenario's expectations use.
    let scenario = root.join("k8s-rollout-undo.incident.toml");
    let doc: toml::Table = std::fs::read_to_string(&scenario).expect("read").parse().expect("toml");
    let expected_key = "k8s/aks-prod/shop/web";
    assert!(
        doc["test"]["expect"]["state"].as_table().is_some_and(|s| s.contains_key(expected_key)),
        "the scenario's state key is {expected_key}"
    );
    let state = tempfile::tempdir().expect("tempdir");
    let mut args: Vec<String> = vec![
        "run".into(),
        root.join("k8s-rollout-undo.rhai").display().to_string(),
        "--sandbox".into(),
        scenario.display().to_string(),
        "--allow".into(),
        expected_key.into(),
        "--output".into(),
        "json".into(),
        "--state-dir".into(),
        state.path().display().to_string(),
    ];
    args.extend(scenario_params(&scenario));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = rollbook(&argv);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let journal =
        std::fs::read_to_string(report["journal"].as_str().expect("journal path")).expect("journal");
    let targets: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["primitive"] == "k8s::undo")
        .filter_map(|e| e["target"].as_str().map(String::from))
        .collect();
    assert!(!targets.is_empty() && targets.iter().all(|t| t == expected_key), "{targets:?}");
}

fn dry_run_in(scenario: &str, script: &str) -> serde_json::Value {
    let run = Rollbook::new().script_named("b.rhai", script).sandbox_in(&format!("runbooks/{scenario}"));
    dry_run_report(run)["value"].clone()
}

#[test]
fn azure_reads_after_a_planned_write_see_it() {
    let v = dry_run_in(
        "shop-release-rollback.incident.toml",
        r#"
        let s = #{ group: "rg-shop", site: "shop-web" };
        let before = appservice::last_swap(s);
        let swap = appservice::swap(s + #{ slot: "staging" });
        let after = appservice::last_swap(s);
        let w = #{ group: "rg-shop", workflow: "orders" };
        let old = logicapp::versions(w);
        let p = logicapp::promote(w + #{ version: old[1].version });
        let now = logicapp::versions(w);
        #{ before: before, swap_planned: swap.planned, after: after, promote_planned: p.planned,
           old_len: old.len(), now_len: now.len(), now_current: now[0].current, now_planned: now[0].planned,
           was_current: now[1].current, from: now[0].promoted_from, target: old[1].version }
    "#,
    );
    assert!(v["before"].is_null(), "no swap before: {v}");
    assert_eq!(v["swap_planned"], true, "{v}");
    assert_eq!(v["after"]["source"], "staging", "{v}");
    assert_eq!(v["after"]["destination"], "production", "{v}");
    assert_eq!(v["after"]["planned"], true, "{v}");
    assert_eq!(v["promote_planned"], true, "{v}");
    assert_eq!(v["now_len"].as_i64(), v["old_len"].as_i64().map(|n| n + 1), "{v}");
    assert_eq!(v["now_current"], true, "{v}");
    assert_eq!(v["now_planned"], true, "{v}");
    assert_eq!(v["was_current"], false, "{v}");
    assert_eq!(v["from"], v["target"], "{v}");

    let v = dry_run_in(
        "arm-redeploy-last-good.incident.toml",
        r#"
        let g = #{ group: "rg-shop" };
        let old = arm::deployments(g);
        let r = arm::redeploy(g + #{ from: "infra-41" });
        let now = arm::deployments(g);
        let last = arm::last_successful(g);
        #{ planned: r.planned, name: r.name, old_len: old.len(), now_len: now.len(), newest: now[0].name,
           newest_planned: now[0].planned, last: last.name, last_planned: last.planned }
    "#,
    );
    assert_eq!(v["planned"], true, "{v}");
    assert_eq!(v["now_len"].as_i64(), v["old_len"].as_i64().map(|n| n + 1), "{v}");
    assert_eq!(v["newest"], v["name"], "{v}");
    assert_eq!(v["newest_planned"], true, "{v}");
    assert_eq!(v["last"], v["name"], "{v}");
    assert_eq!(v["last_planned"], true, "{v}");
}

/// `run` as a dry-run with a JSON report: it must exit 0; its report.
fn dry_run_report(run: Rollbook) -> serde_json::Value {
    run.dry_run().json().run().succeeds().report()
}
