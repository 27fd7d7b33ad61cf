//! `appservice::*` against the simulator: live, dry-run (world unchanged, plan says what would
//! change), faults; the at-most-once swap under every fault kind; the stdlib swap-back.

use serde_json::{Value, json};

use crate::azure_support::{Azure, SUB, start};

const SITE: &str = "appservice/rg-shop/shop-web";
const SWAP: &str = r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#;

fn state(az: &Azure) -> Value {
    az.state(SITE).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_lists_every_page_without_production() {
    let az = start("").await;
    let v = az.value(r#"appservice::slots(#{ group: "rg-shop", site: "shop-web" })"#).await;
    let names: Vec<&str> = v.as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "{v}");
    assert!(names.contains(&"staging") && names.contains(&"qa"), "{v}");
    let staging =
        v.as_array().into_iter().flatten().find(|s| s["name"] == "staging").cloned().unwrap_or_default();
    assert_eq!(staging["state"], "Running");
    assert_eq!(staging["host_name"], "shop-web-staging.azurewebsites.net");
    // A read runs for real under dry-run too, and changes nothing.
    let report = az.dry(r#"appservice::slots(#{ group: "rg-shop", site: "shop-web" }).len()"#, &[SITE]).await;
    assert_eq!(report.value, Some(json!(2)));
    assert!(report.plan.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_into_production_waits_and_last_swap_reports_it() {
    let az = start("").await;
    let none = az.value(r#"appservice::last_swap(#{ group: "rg-shop", site: "shop-web" })"#).await;
    assert_eq!(none, Value::Null, "never swapped: ()");
    let v = az.value(SWAP).await;
    assert_eq!(v, json!({"site": "shop-web", "slot": "staging", "target": "production", "swapped": true}));
    assert_eq!(state(&az)["production"], "1.4.0");
    assert_eq!(state(&az)["staging"], "1.5.0");
    let posts = az.requests_to("POST", "/sites/shop-web/slotsswap");
    assert_eq!(posts.len(), 1, "site-level swap into production, sent once");
    let body: Value = serde_json::from_str(posts[0].body.as_deref().unwrap_or("{}")).unwrap_or_default();
    assert_eq!(body, json!({"targetSlot": "staging", "preserveVnet": true}));
    let last = az.value(r#"appservice::last_swap(#{ group: "rg-shop", site: "shop-web" })"#).await;
    assert_eq!(last["source"], "staging");
    assert_eq!(last["destination"], "production");
    assert!(last["time"].as_str().is_some_and(|t| t.starts_with("20")), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_between_slots_uses_the_slot_level_call() {
    let az = start("").await;
    az.value(r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "qa", target: "staging" })"#)
        .await;
    assert_eq!(state(&az), json!({"production": "1.5.0", "staging": "1.3.0", "qa": "1.4.0"}));
    let posts = az.requests_to("POST", "/sites/shop-web/slots/qa/slotsswap");
    assert_eq!(posts.len(), 1);
    assert!(posts[0].body.as_deref().unwrap_or_default().contains(r#""targetSlot":"staging""#));
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_dry_run_says_which_build_ends_up_where_and_changes_nothing() {
    let az = start("").await;
    let report = az.dry(SWAP, &[SITE]).await;
    assert_eq!(report.plan.len(), 1);
    let p = &report.plan[0];
    assert_eq!(p.call, "appservice::swap");
    assert_eq!(p.target.as_deref(), Some(SITE));
    assert_eq!(
        p.effect,
        "swap slot `staging` (runs shop-web:1.4.0) with `production` (runs shop-web:1.5.0) on site `shop-web` in group `rg-shop`: `production` would run shop-web:1.4.0 and `staging` would run shop-web:1.5.0"
    );
    assert_eq!(report.value.as_ref().map(|v| v["swapped"].clone()), Some(json!(false)));
    assert!(az.requests_to("POST", "/slotsswap").is_empty(), "nothing was sent");
    // A plan reads the slots, so a missing slot fails the dry-run as the real call would.
    let bad =
        az.run_with(r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "nope" })"#, true).await;
    assert!(bad.error.unwrap_or_default().contains("slot `nope` of site `shop-web`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_refuses_nonsense_before_sending_anything() {
    let az = start("").await;
    let v = az
        .caught(r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging", target: "STAGING" })"#)
        .await;
    assert_eq!(v["kind"], "invalid");
    let v = az.caught(r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slott: "staging" })"#).await;
    assert!(v["message"].as_str().unwrap_or_default().contains("did you mean `slot`"), "{v}");
    assert!(az.requests().is_empty());
}

/// Which POSTs to `slotsswap` started a swap, replaying the simulator's documented rules over
/// the request record: every request that reaches the site observes its running operation
/// (which completes at the observation after `lro_polls` = 2), and a swap POST starts a swap
/// only when none is in flight. Faulted requests reach the site only when the fault is
/// `applied`. For answered, unfaulted POSTs the replay is checked against the real status.
fn swaps_started(az: &Azure, applied: bool) -> u32 {
    let prefix =
        format!("/subscriptions/{SUB}/resourceGroups/rg-shop/providers/Microsoft.Web/sites/shop-web")
            .to_ascii_lowercase();
    let mut in_flight: Option<u32> = None;
    let mut started = 0;
    for r in az.requests() {
        let path = r.path.to_ascii_lowercase();
        if !path.starts_with(&prefix) || (r.fault && !applied) {
            continue;
        }
        match in_flight {
            Some(0) => in_flight = None,
            Some(n) => in_flight = Some(n - 1),
            None => {}
        }
        if r.method == "POST" && path.ends_with("/slotsswap") {
            let starts = in_flight.is_none();
            if starts {
                in_flight = Some(2);
                started += 1;
            }
            if !r.fault {
                assert_eq!(r.status == Some(202), starts, "replay disagrees with the simulator at {r:?}");
            }
        }
    }
    started
}

/// Done-when 2: whatever fails around the swap request, production ends up running the intended
/// build and the swap is applied exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_swap_is_applied_exactly_once_under_every_fault() {
    let kinds =
        ["status = 500", "status = 503", "status = 429\nretry_after = \"2s\"", "status = 409", "drop = true"];
    let mut cases = 0;
    for kind in kinds {
        for applied in [false, true] {
            for times in 1..=3 {
                let fault = format!(
                    "[[faults]]\nmethod = \"POST\"\npath = \"*/slotsswap\"\n{kind}\ntimes = {times}\napplied = {applied}\n"
                );
                let az = start(&fault).await;
                let case = format!("{kind} applied={applied} times={times}");
                let v = az.value(SWAP).await;
                assert_eq!(v["swapped"], true, "{case}: {v}");
                assert_eq!(state(&az)["production"], "1.4.0", "{case}: production runs the intended build");
                assert_eq!(state(&az)["staging"], "1.5.0", "{case}");
                assert_eq!(swaps_started(&az, applied), 1, "{case}: exactly one swap applied");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_poll_of_the_swap_is_just_polled_again() {
    let az = start("[[faults]]\nmethod = \"GET\"\npath = \"*/operationresults/*\"\ndrop = true\ntimes = 2\n")
        .await;
    az.value(SWAP).await;
    assert_eq!(state(&az)["production"], "1.4.0");
    assert_eq!(swaps_started(&az, false), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_definite_refusal_is_not_retried() {
    let az = start("[[faults]]\nmethod = \"POST\"\npath = \"*/slotsswap\"\nstatus = 400\ntimes = 1\n").await;
    let v = az.caught(SWAP).await;
    assert_eq!(v["kind"], "invalid", "{v}");
    assert_eq!(az.requests_to("POST", "/slotsswap").len(), 1);
    assert_eq!(state(&az)["production"], "1.5.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_with_preview_start_complete_and_cancel() {
    let az = start("").await;
    let preview = r#"appservice::swap_preview(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#;
    let v = az.value(preview).await;
    assert_eq!(v, json!({"site": "shop-web", "slot": "staging", "target": "production"}));
    assert_eq!(state(&az)["production"], "1.5.0", "a preview swaps nothing");
    let apply = az.requests_to("POST", "/sites/shop-web/applySlotConfig");
    assert_eq!(apply.len(), 1);
    assert!(apply[0].body.as_deref().unwrap_or_default().contains(r#""targetSlot":"staging""#));
    // Another pair is refused while the preview is pending.
    let v = az
        .caught(r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "qa", timeout: "20s" })"#)
        .await["kind"]
        .clone();
    assert_eq!(v, "conflict");
    let v = az
        .value(r#"appservice::swap_complete(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#)
        .await;
    assert_eq!(v["swapped"], true);
    assert_eq!(state(&az)["production"], "1.4.0");

    az.value(preview).await;
    let v = az.value(r#"appservice::swap_cancel(#{ group: "rg-shop", site: "shop-web" })"#).await;
    assert_eq!(v, json!({"site": "shop-web", "target": "production"}));
    assert_eq!(az.requests_to("POST", "/sites/shop-web/resetSlotConfig").len(), 1);
    // After the cancel, another pair may swap again.
    az.value(r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "qa" })"#).await;
    assert_eq!(state(&az)["production"], "1.3.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_phases_dry_run_and_plan() {
    let az = start("").await;
    let report = az
        .dry(
            r#"
appservice::swap_preview(#{ group: "rg-shop", site: "shop-web", slot: "staging" });
appservice::swap_complete(#{ group: "rg-shop", site: "shop-web", slot: "staging" });
appservice::swap_cancel(#{ group: "rg-shop", site: "shop-web" });
"#,
            &[SITE],
        )
        .await;
    let effects: Vec<&str> = report.plan.iter().map(|p| p.effect.as_str()).collect();
    assert_eq!(effects.len(), 3);
    assert!(effects[0].starts_with("start a swap with preview of slot `staging` (runs shop-web:1.4.0) with `production` (runs shop-web:1.5.0)"), "{}", effects[0]);
    assert!(effects[1].starts_with("complete the swap with preview of slot `staging`"), "{}", effects[1]);
    assert!(effects[1].contains("`production` would run shop-web:1.4.0"), "{}", effects[1]);
    assert_eq!(
        effects[2],
        "cancel any swap with preview into `production` on site `shop-web` in group `rg-shop`: the source slot would get its own settings back"
    );
    assert!(az.requests().iter().all(|r| r.method == "GET"), "a plan only reads");
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_and_cancel_are_retried_as_idempotent() {
    let faults = "[[faults]]\nmethod = \"POST\"\npath = \"*/applySlotConfig\"\nstatus = 503\ntimes = 1\n\
                  [[faults]]\nmethod = \"POST\"\npath = \"*/resetSlotConfig\"\ndrop = true\napplied = true\ntimes = 1\n";
    let az = start(faults).await;
    az.value(r#"appservice::swap_preview(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#).await;
    az.value(r#"appservice::swap_cancel(#{ group: "rg-shop", site: "shop-web" })"#).await;
    assert_eq!(az.requests_to("POST", "/applySlotConfig").len(), 2);
    assert_eq!(az.requests_to("POST", "/resetSlotConfig").len(), 2);
    assert_eq!(state(&az)["production"], "1.5.0");
    let v = az.caught(r#"appservice::last_swap(#{ group: "rg-shop", site: "nope" })"#).await["kind"].clone();
    assert_eq!(v, "not_found");
}

const BOTH_BROKEN: &str = r#"
[[appservice.sites]]
group = "rg-shop"
name = "shop-api"
slots = { production = "2.1.0", staging = "2.0.0" }
broken = ["2.1.0", "2.0.0"]

[[health]]
url = "https://api.example.com/healthz"
follows = "appservice/rg-shop/shop-api"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn stdlib_swap_back_verified_swaps_and_checks_health() {
    let az = start("").await;
    let script = r#"
import "std/appservice" as slots;
slots::recover(#{ group: "rg-shop", site: "shop-web", slot: "staging", health_url: "https://shop.example.com/healthz" })
"#;
    let report = az.dry(script, &[SITE]).await;
    assert_eq!(report.plan.len(), 1, "a dry-run plans the swap only");
    let v = az.value(script).await;
    assert_eq!(v["swapped"], true, "{v}");
    assert_eq!(v["health"]["ok"], true);
    assert_eq!(v["last_swap"]["source"], "staging");
    assert_eq!(state(&az)["production"], "1.4.0");
    // Healthy now: recover does nothing.
    let v = az.value(script).await;
    assert_eq!(v["swapped"], false, "{v}");
    assert_eq!(az.requests_to("POST", "/slotsswap").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdlib_swap_back_is_undone_when_health_stays_bad() {
    let az = start(BOTH_BROKEN).await;
    let report = az
        .run_with(
            r#"
import "std/appservice" as slots;
slots::swap_back_verified(#{ group: "rg-shop", site: "shop-api", slot: "staging", health_url: "https://api.example.com/healthz", within: "1m" })
"#,
            false,
        )
        .await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Failed);
    assert!(
        report
            .error
            .unwrap_or_default()
            .contains("shop-api is still unhealthy after swapping staging into production")
    );
    assert_eq!(report.undone, ["swap staging into production of shop-api"]);
    assert_eq!(
        az.state("appservice/rg-shop/shop-api").unwrap_or_default()["production"],
        "2.1.0",
        "swapped back"
    );
    assert_eq!(az.requests_to("POST", "/sites/shop-api/slotsswap").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_swap_looks_then_waits_what_retry_after_asks() {
    let az = start("[[faults]]\nmethod = \"POST\"\npath = \"*/slotsswap\"\nstatus = 429\nretry_after = \"9s\"\ntimes = 1\n").await;
    az.value(SWAP).await;
    assert_eq!(az.clock.slept().first(), Some(&std::time::Duration::from_secs(9)), "{:?}", az.clock.slept());
    let posts = az.requests_to("POST", "/slotsswap");
    assert_eq!(posts.len(), 2);
    // Between the two POSTs the site was read (slotSwapStatus) before sending again.
    let record = az.requests();
    let first = record.iter().position(|r| r.method == "POST").unwrap_or_default();
    assert_eq!(record[first + 1].method, "GET");
    assert!(record[first + 1].path.ends_with("/sites/shop-web"), "{:?}", record[first + 1]);
    assert_eq!(state(&az)["production"], "1.4.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn swap_complete_and_last_swap_under_faults() {
    let faults = "[[faults]]\nmethod = \"POST\"\npath = \"*/slotsswap\"\ndrop = true\napplied = true\ntimes = 1\n\
                  [[faults]]\nmethod = \"GET\"\npath = \"*/sites/shop-web\"\nstatus = 503\ntimes = 1\n";
    let az = start(faults).await;
    az.value(r#"appservice::swap_preview(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#).await;
    // The first read of the site (slotSwapStatus before the swap) meets the 503 and is retried.
    let v = az
        .value(r#"appservice::swap_complete(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#)
        .await;
    assert_eq!(v["swapped"], true);
    assert_eq!(state(&az)["production"], "1.4.0", "completed once although its answer was lost");
    assert_eq!(swaps_started(&az, true), 1);
    let last = az.value(r#"appservice::last_swap(#{ group: "rg-shop", site: "shop-web" })"#).await;
    assert_eq!(last["destination"], "production");
}

/// `rollbook resume` after a crash between sending a swap and journaling it: the swap's check
/// finds it in slotSwapStatus, so it is not sent again.
#[tokio::test(flavor = "multi_thread")]
async fn resume_after_a_crash_mid_swap_does_not_swap_again() {
    use crate::azure_support::{crash_after_sending, verified};
    let az = start("").await;
    let script = format!("stage(\"swap\", || {SWAP});\n\"done\"");
    let first = az.run_with(&script, false).await;
    assert_eq!(state(&az)["production"], "1.4.0", "{:?}", first.error);
    crash_after_sending(&first, "appservice::swap");
    let fresh = start("").await; // a world the call never reached, for the second half
    fresh.adopt(&first.journal);
    let report = az.resume(&first.run_id).await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Succeeded, "{:?}", report.error);
    assert!(verified(&report, true), "the check found the swap applied");
    assert_eq!(az.requests_to("POST", "/slotsswap").len(), 1, "not sent again");
    assert_eq!(state(&az)["production"], "1.4.0");

    // The same journal against a world where the swap never arrived: the check looks until
    // the swap's timeout has passed since it was sent (it could have been still running), then
    // finds it not applied, and it is sent once.
    let report = fresh.resume(&first.run_id).await;
    assert_eq!(report.status, rollbook::run::journal::RunStatus::Succeeded, "{:?}", report.error);
    assert!(verified(&report, false), "the check found the swap not applied");
    assert_eq!(fresh.requests_to("POST", "/slotsswap").len(), 1, "sent once");
    assert_eq!(state(&fresh)["production"], "1.4.0");
}
