//! `appservice::restart`, `appservice::stop`, `appservice::start` against the simulator: live
//! (a stopped site is unhealthy on its health endpoint until started), on a slot, dry-run
//! (plan, world unchanged), an ambiguous fault (retried, applied once), and resume after a
//! crash between sending and journaling (the check finds it applied, nothing is sent again).

use serde_json::{Value, json};

use crate::azure_support::{Azure, crash_after_sending, start, verified};

/// A healthy site beside the test world's broken one.
const API: &str = r#"
[[appservice.sites]]
group = "rg-shop"
name = "api"
slots = { production = "2.0.0", staging = "2.1.0" }

[[health]]
url = "https://api.example.com/healthz"
follows = "appservice/rg-shop/api"
"#;

const KEY: &str = "appservice/rg-shop/api";

async fn health(az: &Azure) -> u16 {
    let url = format!("{}/{KEY}", az.sim.health_base());
    reqwest::get(url).await.expect("health endpoint answers").status().as_u16()
}

/// `properties.state` of a slot, read over ARM.
async fn slot_state(az: &Azure, slot: &str) -> String {
    let path = if slot == "production" { String::new() } else { format!("/slots/{slot}") };
    let url = format!(
        "{}/subscriptions/{}/resourceGroups/rg-shop/providers/Microsoft.Web/sites/api{path}?api-version=2024-11-01",
        az.sim.arm_endpoint(),
        crate::azure_support::SUB
    );
    let v: Value = reqwest::Client::new()
        .get(url)
        .bearer_auth("t")
        .send()
        .await
        .expect("site answers")
        .json()
        .await
        .expect("json");
    v["properties"]["state"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_makes_the_site_unhealthy_and_start_brings_it_back() {
    let az = start(API).await;
    assert_eq!(health(&az).await, 200);
    let v = az.value(r#"appservice::stop(#{ group: "rg-shop", site: "api" })"#).await;
    assert_eq!(v, json!({ "changed": true }));
    assert_eq!(slot_state(&az, "production").await, "Stopped");
    assert_eq!(health(&az).await, 503, "a stopped site is unhealthy");
    let again = az.value(r#"appservice::stop(#{ group: "rg-shop", site: "api" })"#).await;
    assert_eq!(again, json!({ "changed": false }), "already stopped");
    assert_eq!(az.requests_to("POST", "/sites/api/stop").len(), 1, "the second stop sent nothing");

    let v = az.value(r#"appservice::start(#{ group: "rg-shop", site: "api" })"#).await;
    assert_eq!(v, json!({ "changed": true }));
    assert_eq!(health(&az).await, 200);
    let v = az.value(r#"appservice::start(#{ group: "rg-shop", site: "api" })"#).await;
    assert_eq!(v, json!({ "changed": false }));
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_always_restarts_and_slots_have_their_own_power_state() {
    let az = start(API).await;
    let v = az.value(r#"appservice::restart(#{ group: "rg-shop", site: "api" })"#).await;
    assert_eq!(v, json!({ "changed": true }));
    az.value(r#"appservice::restart(#{ group: "rg-shop", site: "api" })"#).await;
    assert_eq!(az.requests_to("POST", "/sites/api/restart").len(), 2);

    az.value(r#"appservice::stop(#{ group: "rg-shop", site: "api", slot: "staging" })"#).await;
    assert_eq!(az.requests_to("POST", "/sites/api/slots/staging/stop").len(), 1);
    assert_eq!(slot_state(&az, "staging").await, "Stopped");
    assert_eq!(slot_state(&az, "production").await, "Running");
    assert_eq!(health(&az).await, 200, "a stopped staging slot does not make the site unhealthy");

    let e = az.caught(r#"appservice::restart(#{ group: "rg-shop", site: "api", slot: "nope" })"#).await;
    assert_eq!(e["kind"], "not_found", "{e}");
    let e = az.caught(r#"appservice::stop(#{ group: "rg-shop", site: "api", slott: "x" })"#).await;
    assert_eq!(e["kind"], "invalid", "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_plans_without_changing_anything() {
    let az = start(API).await;
    let report = az
        .dry(
            r#"appservice::stop(#{ group: "rg-shop", site: "api" });
               appservice::restart(#{ group: "rg-shop", site: "api", slot: "staging" });
               appservice::start(#{ group: "rg-shop", site: "api" })"#,
            &[KEY],
        )
        .await;
    let effects: Vec<String> = report.plan.iter().map(|p| p.effect.clone()).collect();
    assert_eq!(effects.len(), 3, "{effects:?}");
    assert_eq!(effects[0], "stop site `api` in group `rg-shop` (now Running)");
    assert!(
        effects[1].starts_with("restart slot `staging` of site `api` in group `rg-shop` (now Running)"),
        "{effects:?}"
    );
    assert_eq!(effects[2], "nothing: site `api` in group `rg-shop` is already Running");
    assert!(az.requests().iter().all(|r| r.method == "GET"), "a dry-run only reads");
    assert_eq!(health(&az).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ambiguous_failure_is_retried_and_applied_once() {
    let fault = "[[faults]]\nmethod = \"POST\"\npath = \"*/stop\"\ndrop = true\napplied = true\ntimes = 1\n";
    let az = start(&format!("{API}\n{fault}")).await;
    let v = az.value(r#"appservice::stop(#{ group: "rg-shop", site: "api" })"#).await;
    assert_eq!(v["changed"], true);
    assert_eq!(az.requests_to("POST", "/sites/api/stop").len(), 2, "the dropped answer was retried");
    assert_eq!(slot_state(&az, "production").await, "Stopped");

    let refused = "[[faults]]\nmethod = \"POST\"\npath = \"*/restart\"\nstatus = 403\ntimes = 1\n";
    let az = start(&format!("{API}\n{refused}")).await;
    let e = az.caught(r#"appservice::restart(#{ group: "rg-shop", site: "api" })"#).await;
    assert_eq!(e["kind"], "forbidden", "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_after_a_crash_mid_stop_checks_the_state_and_does_not_resend() {
    let az = start(API).await;
    let script = "stage(\"stop\", || appservice::stop(#{ group: \"rg-shop\", site: \"api\" }));\n\"done\"";
    let first = az.run_with(script, false).await;
    assert_eq!(slot_state(&az, "production").await, "Stopped", "{:?}", first.error);
    crash_after_sending(&first, "appservice::stop");
    let report = az.resume(&first.run_id).await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Succeeded, "{:?}", report.error);
    assert!(verified(&report, true), "the check found the site stopped");
    assert_eq!(az.requests_to("POST", "/sites/api/stop").len(), 1, "not sent again");

    // A restart that never arrived is found not applied and sent on resume.
    let fresh = start(API).await;
    let script =
        "stage(\"restart\", || appservice::restart(#{ group: \"rg-shop\", site: \"api\" }));\n\"done\"";
    let first = az.run_with(script, false).await;
    crash_after_sending(&first, "appservice::restart");
    fresh.adopt(&first.journal);
    let report = fresh.resume(&first.run_id).await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Succeeded, "{:?}", report.error);
    assert!(verified(&report, false), "the check found no restart");
    assert_eq!(fresh.requests_to("POST", "/sites/api/restart").len(), 1, "sent on resume");
}
