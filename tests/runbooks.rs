//! Every ready runbook in `runbooks/` is rehearsed by `cargo test`: each `<name>.rhai` with each
//! of its scenarios `<name>.<case>.toml`, through `rollbook test` (the scenario's `[test]` and
//! `[test.expect]`). New runbooks and scenarios are picked up without editing this file.

use std::path::PathBuf;

use crate::support::{Rollbook, repo};

/// The `.rhai` files directly in `runbooks/`, sorted.
fn ready_runbooks() -> Vec<PathBuf> {
    let dir = repo().join("runbooks");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    all.sort();
    all
}

/// The scenarios of a runbook: `runbooks/<name>.<case>.toml`, sorted.
fn scenarios_of(runbook: &std::path::Path) -> Vec<PathBuf> {
    let stem = runbook.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    let dir = runbook.parent().map(PathBuf::from).unwrap_or_default();
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.strip_prefix(&format!("{stem}."))
                .and_then(|rest| rest.strip_suffix(".toml"))
                .is_some_and(|case| !case.is_empty() && !case.contains('.'))
        })
        .collect();
    all.sort();
    all
}

fn relative(p: &std::path::Path) -> String {
    p.strip_prefix(repo()).unwrap_or(p).display().to_string()
}

#[test]
fn every_runbook_passes_every_one_of_its_scenarios() {
    let runbooks = ready_runbooks();
    assert!(!runbooks.is_empty(), "no runbooks found in {}", repo().join("runbooks").display());
    let mut failures = Vec::new();
    let mut rehearsed = 0;
    for runbook in &runbooks {
        for scenario in scenarios_of(runbook) {
            rehearsed += 1;
            let out = Rollbook::new().command(&["test"]).arg(&scenario.display().to_string()).run();
            if out.code() != Some(0) {
                failures.push(format!(
                    "{} rehearsed with {}: exit {:?}\n{}",
                    relative(runbook),
                    relative(&scenario),
                    out.code(),
                    out.both().trim_end()
                ));
            }
        }
    }
    assert!(rehearsed >= runbooks.len(), "every runbook has a scenario (see the test below)");
    assert!(
        failures.is_empty(),
        "{} of {rehearsed} rehearsals failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_runbook_has_a_scenario_that_rehearses_it() {
    let mut missing = Vec::new();
    for runbook in ready_runbooks() {
        let name = runbook.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let rehearsing: Vec<PathBuf> = scenarios_of(&runbook)
            .into_iter()
            .filter(|s| {
                let text = std::fs::read_to_string(s).unwrap_or_default();
                text.contains(&format!("runbook = \"{name}\""))
            })
            .collect();
        if rehearsing.is_empty() {
            let stem = name.trim_end_matches(".rhai");
            missing.push(format!(
                "{}: no scenario `runbooks/{stem}.<case>.toml` with `[test] runbook = \"{name}\"`",
                relative(&runbook)
            ));
        }
    }
    assert!(missing.is_empty(), "runbooks nobody rehearses:\n{}", missing.join("\n"));
}

#[test]
fn the_world_builder_writes_a_scenario_the_simulator_reads() {
    use crate::support::{Deployment, Fault, Site, World};
    let world = World::new("built in code")
        .deployment(
            Deployment::new("prod", "shop", "web")
                .replicas(2)
                .revisions(["shop/web:1.4.0", "shop/web:1.5.0"])
                .broken(["shop/web:1.5.0"]),
        )
        .site(Site::new("rg-shop", "shop-web").slot("production", "1.5.0").slot("staging", "1.4.0"))
        .health("https://shop.example.com/healthz", "appservice/rg-shop/shop-web")
        .fault(Fault::new("*/slotsswap").method("POST").status(500).applied())
        .sim("lro_polls", 0);
    let text = world.to_toml();
    let scenario = rollbook::sim::Scenario::parse(std::path::Path::new("built.toml"), &text);
    assert!(scenario.is_ok(), "{text}\n{:?}", scenario.err());

    let out = Rollbook::new()
        .script(
            r#"
let s = #{ group: "rg-shop", site: "shop-web", slot: "staging" };
appservice::swap(s);
"swapped"
"#,
        )
        .world(world)
        .live()
        .run()
        .succeeds()
        .journal_has("appservice::swap");
    assert_eq!(out.state_of("appservice/rg-shop/shop-web")["production"], "1.4.0", "{}", out.both());
    assert_eq!(
        out.mutations().iter().filter(|m| m.ends_with("/slotsswap")).count(),
        1,
        "{:?}",
        out.mutations()
    );
}

/// The example of "Writing a test" in CONTRIBUTING.md, kept running.
#[test]
fn the_contributing_example_runs() {
    use crate::support::{Deployment, Site, World};
    let world = World::new("shop-web 2.0.0 fails its health check")
        .deployment(Deployment::new("prod", "shop", "web").revisions(["shop/web:1.4.0", "shop/web:1.5.0"]))
        .site(
            Site::new("rg-shop", "shop-web")
                .slot("production", "2.0.0")
                .slot("staging", "1.9.0")
                .broken(["2.0.0"]),
        )
        .health("https://shop.example.com/healthz", "appservice/rg-shop/shop-web");
    let out = Rollbook::new()
        .runbook("runbooks/appservice-swap-back.rhai")
        .world(world)
        .param("group", "rg-shop")
        .param("site", "shop-web")
        .param("health_url", "https://shop.example.com/healthz")
        .sandbox()
        .run()
        .succeeds()
        .stderr_has("appservice::swap")
        .stderr_has("production: 2.0.0 → 1.9.0")
        .journal_has("\"mode\":\"sandbox\"");
    out.then(&["runs", "show", "last"]).succeeds().stdout_has("mode     sandbox");
}
