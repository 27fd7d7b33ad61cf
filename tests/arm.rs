//! `arm::*` against the simulator: history newest first over pages, the last successful
//! deployment, redeploy (live, dry-run with what-if, retried PUT that was applied), what-if,
//! and deploy with ARM's rollback on error.

use serde_json::{Value, json};

use crate::azure_support::{Azure, start};

const GROUP: &str = "arm/rg-shop";

fn state(az: &Azure) -> Value {
    az.state(GROUP).unwrap_or(Value::Null)
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|d| d["name"].as_str().map(str::to_string)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_are_listed_newest_first_across_pages() {
    let az = start("").await;
    let v = az.value(r#"arm::deployments(#{ group: "rg-shop" })"#).await;
    assert_eq!(names(&v), ["infra-42", "infra-41", "infra-40", "infra-39"]);
    assert_eq!(
        v[2],
        json!({"name": "infra-40", "state": "Failed", "timestamp": v[2]["timestamp"], "mode": "Incremental"})
    );
    assert!(v[0]["timestamp"].as_str().unwrap_or_default().starts_with("2026-11-21T10:00:00"), "{v}");
    let report = az.dry(r#"arm::deployments(#{ group: "rg-shop" }).len()"#, &[GROUP]).await;
    assert_eq!(report.value, Some(json!(4)));
}

#[tokio::test(flavor = "multi_thread")]
async fn last_successful_optionally_before_another() {
    let az = start("").await;
    let v = az.value(r#"arm::last_successful(#{ group: "rg-shop" })"#).await;
    assert_eq!(v["name"], "infra-42");
    let v = az.value(r#"arm::last_successful(#{ group: "rg-shop", before: "infra-42" })"#).await;
    assert_eq!(v["name"], "infra-41");
    let v = az.value(r#"arm::last_successful(#{ group: "rg-shop", before: "infra-41" })"#).await;
    assert_eq!(v["name"], "infra-39", "the failed infra-40 does not count");
    let v = az.value(r#"arm::last_successful(#{ group: "rg-shop", before: "infra-39" })"#).await;
    assert_eq!(v, Value::Null);
    let v = az.caught(r#"arm::last_successful(#{ group: "rg-shop", before: "nope" })"#).await;
    assert_eq!(v["kind"], "not_found");
    assert_eq!(v["message"], "deployment `nope` in group `rg-shop` not found (named in `before`)");
}

#[tokio::test(flavor = "multi_thread")]
async fn redeploy_deploys_the_template_and_parameters_of_a_previous_deployment() {
    let az = start("").await;
    let v = az.value(r#"arm::redeploy(#{ group: "rg-shop", from: "infra-41" })"#).await;
    assert_eq!(v["from"], "infra-41");
    assert_eq!(v["state"], "Succeeded", "{v}");
    assert_eq!(v["error"], Value::Null);
    let name = v["name"].as_str().unwrap_or_default().to_string();
    assert!(
        name.starts_with("rollbook-redeploy-infra-41-")
            && name.len() == "rollbook-redeploy-infra-41-".len() + 14,
        "{name}"
    );
    let s = state(&az);
    assert_eq!(s["live"], "infra-41", "the live content is infra-41's again: {s}");
    assert_eq!(s["deployments"][0], json!(name), "the new deployment is the newest");
    // The PUT carried the exported template and only the parameter values.
    let put = az.requests_to("PUT", &format!("/deployments/{name}"));
    assert_eq!(put.len(), 1);
    let body: Value = serde_json::from_str(put[0].body.as_deref().unwrap_or("{}")).unwrap_or_default();
    assert_eq!(body["properties"]["parameters"], json!({"sku": {"value": "S1"}}));
    assert_eq!(body["properties"]["mode"], "Incremental");
    assert_eq!(body["properties"]["template"]["resources"][0]["name"], "plan");
    assert_eq!(az.requests_to("POST", "/deployments/infra-41/exportTemplate").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn redeploy_last_successful_and_a_chosen_name() {
    let az = start("").await;
    let v = az.value(r#"arm::redeploy(#{ group: "rg-shop", from: "last-successful", name: "again", mode: "complete" })"#).await;
    assert_eq!(v["from"], "infra-42");
    assert_eq!(v["name"], "again");
    let d = az.value(r#"arm::deployments(#{ group: "rg-shop" })[0]"#).await;
    assert_eq!(
        d,
        json!({"name": "again", "state": "Succeeded", "timestamp": d["timestamp"], "mode": "Complete"})
    );
    let v = az.caught(r#"arm::redeploy(#{ group: "rg-shop", from: "infra-41", mode: "Sideways" })"#).await["message"].clone();
    assert_eq!(v, "`mode` must be \"Incremental\" or \"Complete\", not `Sideways`");
}

#[tokio::test(flavor = "multi_thread")]
async fn redeploy_dry_run_names_the_source_and_the_what_if_changes() {
    let az = start("").await;
    let report =
        az.dry(r#"arm::redeploy(#{ group: "rg-shop", from: "infra-41", name: "rb" })"#, &[GROUP]).await;
    assert_eq!(report.plan.len(), 1);
    let effect = &report.plan[0].effect;
    assert_eq!(
        effect,
        "redeploy the template and parameters of deployment `infra-41` (Succeeded at 2026-11-20T10:00:00.0000000Z) to group `rg-shop` as `rb` in Incremental mode; what-if: Modify /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-shop/providers/Microsoft.Web/serverfarms/plan"
    );
    assert!(az.requests_to("PUT", "").is_empty(), "nothing deployed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redeploy_whose_put_answer_was_lost_is_not_deployed_twice() {
    let az = start("[[faults]]\nmethod = \"PUT\"\npath = \"*/deployments/rb\"\nstatus = 500\napplied = true\ntimes = 1\n").await;
    let v = az.value(r#"arm::redeploy(#{ group: "rg-shop", from: "infra-41", name: "rb" })"#).await;
    assert_eq!(v["state"], "Succeeded", "{v}");
    let puts = az.requests_to("PUT", "/deployments/rb");
    assert_eq!(puts.len(), 2, "the PUT was sent again (it is idempotent by name)");
    assert_eq!(puts[1].status, Some(409), "and met the first one running (DeploymentActive)");
    let s = state(&az);
    assert_eq!(s["deployments"].as_array().map(Vec::len), Some(5), "one new deployment: {s}");
    assert_eq!(s["live"], "infra-41");
}

#[tokio::test(flavor = "multi_thread")]
async fn redeploy_of_a_missing_deployment_names_it() {
    let az = start("").await;
    let v = az.caught(r#"arm::redeploy(#{ group: "rg-shop", from: "infra-1" })"#).await;
    assert_eq!(v["kind"], "not_found");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("deployment `infra-1` in group `rg-shop`: not found (DeploymentNotFound"),
        "{v}"
    );
    assert_eq!(v["target"], GROUP);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_if_reports_changes_and_changes_nothing() {
    let az = start(
        "[[faults]]\nmethod = \"POST\"\npath = \"*/whatIf\"\nstatus = 429\nretry_after = \"3s\"\ntimes = 1\n",
    )
    .await;
    let before = state(&az);
    let v = az.value(r#"arm::what_if(#{ group: "rg-shop", from: "infra-41" })"#).await;
    assert_eq!(
        v,
        json!({"changes": [{"resource_id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-shop/providers/Microsoft.Web/serverfarms/plan", "change_type": "Modify"}]})
    );
    assert_eq!(state(&az), before);
    assert_eq!(az.clock.slept()[0], std::time::Duration::from_secs(3), "the 429 was waited out");
    let v = az.value(r#"arm::what_if(#{ group: "rg-shop", from: "infra-42" }).changes[0].change_type"#).await;
    assert_eq!(v, "NoChange");
}

const FAILING: &str = r#"#{ contentVersion: "1.0.0.0", resources: [ #{ type: "Microsoft.Web/serverfarms", apiVersion: "2024-11-01", name: "plan", location: "eastus", rollbookSim: #{ fail: true } } ] }"#;

#[tokio::test(flavor = "multi_thread")]
async fn deploy_rolls_back_with_on_error() {
    let az = start("").await;
    let v = az
        .value(&format!(r#"arm::deploy(#{{ group: "rg-shop", name: "bad-43", template: {FAILING}, on_error: "infra-41" }})"#))
        .await;
    assert_eq!(v["name"], "bad-43");
    assert_eq!(v["state"], "Failed", "{v}");
    assert_eq!(v["rolled_back_to"], "infra-41");
    assert!(v["error"].as_str().unwrap_or_default().starts_with("DeploymentFailed"), "{v}");
    assert_eq!(state(&az)["live"], "infra-41", "ARM re-ran infra-41");
    let put = az.requests_to("PUT", "/deployments/bad-43");
    assert!(
        put[0]
            .body
            .as_deref()
            .unwrap_or_default()
            .contains(r#""onErrorDeployment":{"deploymentName":"infra-41","type":"SpecificDeployment"}"#),
        "{:?}",
        put[0].body
    );

    let v = az
        .value(&format!(r#"arm::deploy(#{{ group: "rg-shop", name: "bad-44", template: {FAILING}, on_error: "last-successful" }})"#))
        .await;
    assert_eq!(v["rolled_back_to"], "infra-41", "the last successful one is infra-41 now");
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_rolls_forward_with_plain_parameters() {
    let az = start("").await;
    let template = r#"#{ contentVersion: "1.0.0.0", parameters: #{ sku: #{ type: "string" } }, resources: [ #{ type: "Microsoft.Web/serverfarms", apiVersion: "2024-11-01", name: "plan", location: "eastus", sku: #{ name: "[parameters('sku')]" } } ] }"#;
    let v = az
        .value(&format!(
            r#"arm::deploy(#{{ group: "rg-shop", template: {template}, parameters: #{{ sku: "S1" }} }})"#
        ))
        .await;
    assert_eq!(v["state"], "Succeeded", "{v}");
    assert!(v["name"].as_str().unwrap_or_default().starts_with("rollbook-deploy-"), "{v}");
    assert_eq!(state(&az)["live"], v["name"], "its content is live");
    let name = v["name"].as_str().unwrap_or_default();
    let put = az.requests_to("PUT", &format!("/deployments/{name}"));
    assert!(
        put[0].body.as_deref().unwrap_or_default().contains(r#""parameters":{"sku":{"value":"S1"}}"#),
        "{:?}",
        put[0].body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_dry_run_plans_rollback_and_what_if() {
    let az = start("").await;
    let report = az
        .dry(&format!(r#"arm::deploy(#{{ group: "rg-shop", name: "bad-43", template: {FAILING}, on_error: "last-successful" }})"#), &[GROUP])
        .await;
    let effect = &report.plan[0].effect;
    assert!(
        effect.starts_with("deploy `bad-43` to group `rg-shop` in Incremental mode, rolling back to the last successful deployment `infra-42` on failure; what-if: Modify"),
        "{effect}"
    );
    let bad = az.run_with(r#"arm::deploy(#{ group: "rg-shop", template: "nope" })"#, true).await;
    assert!(
        bad.error
            .unwrap_or_default()
            .contains("`template` of a deployment to group `rg-shop` must be an object map")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_on_error_to_a_deployment_that_failed_is_refused() {
    let az = start("").await;
    let v = az
        .caught(&format!(
            r#"arm::deploy(#{{ group: "rg-shop", name: "x", template: {FAILING}, on_error: "infra-40" }})"#
        ))
        .await;
    assert_eq!(v["kind"], "invalid", "{v}");
    assert!(v["message"].as_str().unwrap_or_default().contains("InvalidOnErrorDeployment"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdlib_redeploy_last_good_skips_the_broken_newest() {
    let az = start("").await;
    let script = r#"
import "std/arm" as infra;
infra::redeploy_last_good(#{ group: "rg-shop", health_url: "https://infra.example.com/healthz" })
"#;
    let report = az.dry(script, &[GROUP]).await;
    assert!(report.plan[0].effect.contains("deployment `infra-41`"), "{}", report.plan[0].effect);
    let v = az.value(script).await;
    assert_eq!(v["from"], "infra-41", "{v}");
    assert_eq!(v["state"], "Succeeded");
    assert_eq!(state(&az)["live"], "infra-41");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdlib_redeploy_last_good_fails_when_there_is_none() {
    let az = start(
        "[[arm.deployments]]\ngroup = \"rg-new\"\nname = \"only\"\nstate = \"Succeeded\"\ntimestamp = \"2026-11-21T10:00:00Z\"\n",
    )
    .await;
    let report = az
        .run_with("import \"std/arm\" as infra;\ninfra::redeploy_last_good(#{ group: \"rg-new\" })", false)
        .await;
    assert!(
        report.error.unwrap_or_default().contains("no successful deployment older than only in group rg-new")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_and_deploy_under_faults() {
    let faults = "[[faults]]\nmethod = \"GET\"\npath = \"*/providers/Microsoft.Resources/deployments\"\nstatus = 500\ntimes = 2\n\
                  [[faults]]\nmethod = \"PUT\"\npath = \"*/deployments/fwd\"\ndrop = true\napplied = true\ntimes = 1\n";
    let az = start(faults).await;
    let v = az.value(r#"arm::deployments(#{ group: "rg-shop" }).len()"#).await;
    assert_eq!(v, 4, "two 500s retried");
    let v = az.value(r#"arm::last_successful(#{ group: "rg-shop" }).name"#).await;
    assert_eq!(v, "infra-42");
    let v = az
        .value(r#"arm::deploy(#{ group: "rg-shop", name: "fwd", template: #{ contentVersion: "1.0.0.0", resources: [] } })"#)
        .await;
    assert_eq!(v["state"], "Succeeded", "{v}");
    let s = state(&az);
    assert_eq!(s["deployments"].as_array().map(Vec::len), Some(5), "deployed once: {s}");
    assert_eq!(s["live"], "fwd");
}

/// Resume after a crash mid-redeploy: the new deployment is in the history, so it is not
/// deployed again; in a world without it, it is sent.
#[tokio::test(flavor = "multi_thread")]
async fn resume_after_a_crash_mid_redeploy() {
    use crate::azure_support::{crash_after_sending, verified};
    let az = start("").await;
    let script =
        "let r = stage(\"redeploy\", || arm::redeploy(#{ group: \"rg-shop\", from: \"infra-41\" }));\nr.name";
    let first = az.run_with(script, false).await;
    crash_after_sending(&first, "arm::redeploy");
    let fresh = start("").await; // a world the call never reached, for the second half
    fresh.adopt(&first.journal);
    let report = az.resume(&first.run_id).await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Succeeded, "{:?}", report.error);
    assert!(verified(&report, true));
    assert_eq!(report.value, first.value, "the check reports the deployment the first try made");
    assert_eq!(az.requests_to("PUT", "").len(), 1, "deployed once");

    let report = fresh.resume(&first.run_id).await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Succeeded, "{:?}", report.error);
    assert!(verified(&report, false));
    assert_eq!(fresh.requests_to("PUT", "").len(), 1, "not there, so sent");
    assert_eq!(state(&fresh)["live"], "infra-41");
}
