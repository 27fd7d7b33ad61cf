//! `logicapp::*` against the simulator: versions newest first, promote (live, dry-run, a PUT
//! whose answer was lost), enable and disable.

use serde_json::{Value, json};

use crate::azure_support::{Azure, start};

const WF: &str = "logicapp/rg-shop/orders";
const V1: &str = "08585000000000000001";
const V2: &str = "08585000000000000002";
const V3: &str = "08585000000000000003";

fn state(az: &Azure) -> Value {
    az.state(WF).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_newest_first_with_current_marked() {
    let az = start(
        "[[faults]]\nmethod = \"GET\"\npath = \"*/workflows/orders/versions\"\nstatus = 502\ntimes = 1\n",
    )
    .await;
    let v = az.value(r#"logicapp::versions(#{ group: "rg-shop", workflow: "orders" })"#).await;
    let ids: Vec<&str> = v.as_array().into_iter().flatten().filter_map(|x| x["version"].as_str()).collect();
    assert_eq!(ids, [V2, V1]);
    assert_eq!(v[0]["current"], true);
    assert_eq!(v[1]["current"], false);
    assert_eq!(v[0]["state"], "Enabled");
    assert!(v[0]["changed"].as_str().unwrap_or_default() > v[1]["changed"].as_str().unwrap_or_default());
    assert_eq!(az.requests_to("GET", "/versions").len(), 2, "the 502 was retried");
    az.dry(r#"logicapp::versions(#{ group: "rg-shop", workflow: "orders" })"#, &[WF]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_makes_a_previous_version_current_as_a_new_version() {
    let az = start("").await;
    let v = az
        .value(&format!(r#"logicapp::promote(#{{ group: "rg-shop", workflow: "orders", version: "{V1}" }})"#))
        .await;
    assert_eq!(v, json!({"from_version": V2, "new_version": V3}));
    assert_eq!(state(&az), json!({"current": V1, "state": "Enabled", "versions": 3}));
    let put = az.requests_to("PUT", "/workflows/orders");
    let body: Value = serde_json::from_str(put[0].body.as_deref().unwrap_or("{}")).unwrap_or_default();
    assert_eq!(body["location"], "eastus", "the workflow's own properties are kept");
    assert_eq!(body["properties"]["definition"]["actions"]["Response"]["inputs"]["body"]["version"], V1);
    let cur = az.value(r#"logicapp::versions(#{ group: "rg-shop", workflow: "orders" })[0]"#).await;
    assert_eq!((cur["version"].as_str(), cur["current"].as_bool()), (Some(V3), Some(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_dry_run_says_which_definition_becomes_current() {
    let az = start("").await;
    let report = az
        .dry(
            &format!(r#"logicapp::promote(#{{ group: "rg-shop", workflow: "orders", version: "{V1}" }})"#),
            &[WF],
        )
        .await;
    let effect = &report.plan[0].effect;
    assert!(effect.starts_with(&format!("make version `{V1}` (saved ")), "{effect}");
    assert!(
        effect.ends_with(&format!(
            "of workflow `orders` in group `rg-shop` current again: its definition and parameters would replace those of the current version `{V2}` as a new version"
        )),
        "{effect}"
    );
    let missing = az
        .run_with(r#"logicapp::promote(#{ group: "rg-shop", workflow: "orders", version: "1" })"#, true)
        .await;
    assert!(missing.error.unwrap_or_default().contains("version `1` of workflow `orders`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promote_whose_answer_was_lost_saves_one_version_only() {
    let az = start("[[faults]]\nmethod = \"PUT\"\npath = \"*/workflows/orders\"\ndrop = true\napplied = true\ntimes = 3\n").await;
    let v = az
        .value(&format!(r#"logicapp::promote(#{{ group: "rg-shop", workflow: "orders", version: "{V1}" }})"#))
        .await;
    assert_eq!(v, json!({"from_version": V2, "new_version": V3}));
    assert_eq!(az.requests_to("PUT", "/workflows/orders").len(), 1, "the workflow was read, not PUT again");
    assert_eq!(state(&az)["versions"], 3);

    let az =
        start("[[faults]]\nmethod = \"PUT\"\npath = \"*/workflows/orders\"\nstatus = 503\ntimes = 1\n").await;
    let v = az
        .value(&format!(r#"logicapp::promote(#{{ group: "rg-shop", workflow: "orders", version: "{V1}" }})"#))
        .await;
    assert_eq!(v["new_version"], V3, "not applied: sent again once");
    assert_eq!(az.requests_to("PUT", "/workflows/orders").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_and_enable_say_whether_they_changed_anything() {
    let az = start("[[faults]]\nmethod = \"POST\"\npath = \"*/disable\"\nstatus = 500\ntimes = 1\n").await;
    let report = az.dry(r#"logicapp::disable(#{ group: "rg-shop", workflow: "orders" })"#, &[WF]).await;
    assert_eq!(report.plan[0].effect, "disable workflow `orders` in group `rg-shop` (now Enabled)");
    let v = az.value(r#"logicapp::disable(#{ group: "rg-shop", workflow: "orders" })"#).await;
    assert_eq!(v, json!({"changed": true}));
    assert_eq!(state(&az)["state"], "Disabled");
    assert_eq!(az.requests_to("POST", "/disable").len(), 2, "a 500 on disable is retried (idempotent)");
    let v = az.value(r#"logicapp::disable(#{ group: "rg-shop", workflow: "orders" })"#).await;
    assert_eq!(v, json!({"changed": false}));
    let report = az.dry(r#"logicapp::disable(#{ group: "rg-shop", workflow: "orders" })"#, &[WF]).await;
    assert_eq!(report.plan[0].effect, "nothing: workflow `orders` in group `rg-shop` is already Disabled");
    let v = az.value(r#"logicapp::enable(#{ group: "rg-shop", workflow: "orders" })"#).await;
    assert_eq!(v, json!({"changed": true}));
    assert_eq!(state(&az)["state"], "Enabled");
    let v = az.caught(r#"logicapp::enable(#{ group: "rg-shop", workflow: "nope" })"#).await["kind"].clone();
    assert_eq!(v, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdlib_promote_previous_and_verify() {
    let az = start("").await;
    let script = r#"
import "std/logicapp" as la;
la::promote_previous(#{ group: "rg-shop", workflow: "orders", health_url: "https://orders.example.com/healthz" })
"#;
    let report = az.dry(script, &[WF]).await;
    assert!(report.plan[0].effect.starts_with(&format!("make version `{V1}`")), "{}", report.plan[0].effect);
    let v = az.value(script).await;
    assert_eq!(v, json!({"promoted": V1, "from_version": V2, "new_version": V3}));
    assert_eq!(state(&az)["current"], V1);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdlib_promote_previous_is_undone_when_health_stays_bad() {
    let az = start(
        "[[logicapp.workflows]]\ngroup = \"rg-shop\"\nname = \"billing\"\nversions = [\"1\", \"2\"]\nbroken = [\"1\", \"2\"]\n\
         [[health]]\nurl = \"https://billing.example.com/healthz\"\nfollows = \"logicapp/rg-shop/billing\"\n",
    )
    .await;
    let report = az
        .run_with(
            "import \"std/logicapp\" as la;\nla::promote_previous(#{ group: \"rg-shop\", workflow: \"billing\", health_url: \"https://billing.example.com/healthz\", within: \"30s\" })",
            false,
        )
        .await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Failed, "{:?}", report.error);
    assert_eq!(report.undone.len(), 1);
    let s = az.state("logicapp/rg-shop/billing").unwrap_or_default();
    assert_eq!(s["current"], "2", "promoted back: {s}");
    assert_eq!(s["versions"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn enable_under_a_dropped_connection() {
    let az = start(
        "[[logicapp.workflows]]\ngroup = \"rg-shop\"\nname = \"paused\"\nversions = [\"1\"]\nstate = \"Disabled\"\n\
         [[faults]]\nmethod = \"POST\"\npath = \"*/workflows/paused/enable\"\ndrop = true\napplied = true\ntimes = 1\n",
    )
    .await;
    let report = az
        .dry(r#"logicapp::enable(#{ group: "rg-shop", workflow: "paused" })"#, &["logicapp/rg-shop/paused"])
        .await;
    assert_eq!(report.plan[0].effect, "enable workflow `paused` in group `rg-shop` (now Disabled)");
    let v = az.value(r#"logicapp::enable(#{ group: "rg-shop", workflow: "paused" })"#).await;
    assert_eq!(v, json!({"changed": true}));
    assert_eq!(az.state("logicapp/rg-shop/paused").unwrap_or_default()["state"], "Enabled");
    assert_eq!(az.requests_to("POST", "/enable").len(), 2, "enable is idempotent, so it was sent again");
}

/// Resume after a crash mid-promote: a version with that definition saved since then means it
/// happened; the workflow is not PUT again.
#[tokio::test(flavor = "multi_thread")]
async fn resume_after_a_crash_mid_promote() {
    use crate::azure_support::{crash_after_sending, verified};
    let az = start("").await;
    let script = format!(
        "let r = stage(\"promote\", || logicapp::promote(#{{ group: \"rg-shop\", workflow: \"orders\", version: \"{V1}\" }}));\nr"
    );
    let first = az.run_with(&script, false).await;
    crash_after_sending(&first, "logicapp::promote");
    let fresh = start("").await; // a world the call never reached, for the second half
    fresh.adopt(&first.journal);
    let report = az.resume(&first.run_id).await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Succeeded, "{:?}", report.error);
    assert!(verified(&report, true));
    assert_eq!(report.value, Some(json!({"from_version": V2, "new_version": V3})));
    assert_eq!(state(&az)["versions"], 3, "no second version");

    let report = fresh.resume(&first.run_id).await;
    assert!(verified(&report, false), "{:?}", report.error);
    assert_eq!(state(&fresh), json!({"current": V1, "state": "Enabled", "versions": 3}));
}
