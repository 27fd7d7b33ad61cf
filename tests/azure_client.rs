//! The ARM client through real primitives against the simulator: throttling honoured and
//! bounded, 5xx and dropped connections retried, 401 refreshes once, errors mapped to kinds
//! with ARM's request id, long-running operations and pages followed, and no token anywhere
//! in journals or logs.

use std::time::Duration;

use crate::azure_support::{SUB, TOKEN, start};
use crate::support::Rollbook;

const SLOTS: &str = r#"appservice::slots(#{ group: "rg-shop", site: "shop-web" })"#;

fn fault(method: &str, path: &str, rest: &str) -> String {
    format!("[[faults]]\nmethod = \"{method}\"\npath = \"{path}\"\n{rest}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_waits_exactly_what_retry_after_asks() {
    let az =
        start(&fault("GET", "*/sites/shop-web/slots", "status = 429\nretry_after = \"7s\"\ntimes = 2")).await;
    let v = az.value(SLOTS).await;
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    let record = az.requests_to("GET", "/sites/shop-web/slots");
    let statuses: Vec<Option<u16>> = record.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [Some(429), Some(429), Some(200)],
        "the request record shows two 429s, then success"
    );
    assert_eq!(
        az.clock.slept(),
        [Duration::from_secs(7), Duration::from_secs(7)],
        "waited Retry-After on the clock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_stops_at_the_bound_with_a_throttled_error() {
    let az =
        start(&fault("GET", "*/sites/shop-web/slots", "status = 429\nretry_after = \"7s\"\ntimes = 100"))
            .await;
    let v = az.caught(SLOTS).await;
    assert_eq!(v["kind"], "throttled", "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains("gave up after 5 attempt(s)"), "{message}");
    assert!(message.contains("slots of site `shop-web` in group `rg-shop`"), "{message}");
    assert_eq!(v["target"], "appservice/rg-shop/shop-web");
    assert_eq!(az.requests_to("GET", "/sites/shop-web/slots").len(), 5, "five attempts, then stop");
    assert_eq!(az.clock.slept(), vec![Duration::from_secs(7); 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_dropped_connections_are_retried_with_backoff() {
    let faults = format!(
        "{}{}",
        fault("GET", "*/sites/shop-web/slots", "status = 503\ntimes = 1"),
        fault("GET", "*/sites/shop-web/slots", "drop = true\ntimes = 1")
    );
    let az = start(&faults).await;
    az.value(SLOTS).await;
    let record = az.requests_to("GET", "/sites/shop-web/slots");
    assert_eq!(record.len(), 3);
    assert!(record[1].dropped && record[2].status == Some(200));
    // 503 carries Retry-After: 1 (the simulator's default); the drop backs off about 2s ±20%.
    let slept = az.clock.slept();
    assert_eq!(slept[0], Duration::from_secs(1));
    assert!(slept[1] >= Duration::from_millis(1600) && slept[1] <= Duration::from_millis(2400), "{slept:?}");

    let az = start(&fault("GET", "*/sites/shop-web/slots", "status = 500\ntimes = 100")).await;
    let v = az.caught(SLOTS).await;
    assert_eq!(v["kind"], "server", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_refreshes_the_token_once() {
    let az = start(&fault("GET", "*/sites/shop-web/slots", "status = 401\ntimes = 1")).await;
    az.value(SLOTS).await;
    assert_eq!(az.requests_to("GET", "/sites/shop-web/slots").len(), 2);
    assert!(az.clock.slept().is_empty(), "a 401 is retried at once, after a refresh");

    let az = start(&fault("GET", "*/sites/shop-web/slots", "status = 401\ntimes = 5")).await;
    let v = az.caught(SLOTS).await;
    assert_eq!(v["kind"], "unauthorized", "{v}");
    assert_eq!(az.requests_to("GET", "/sites/shop-web/slots").len(), 2, "refreshed once only");
}

#[tokio::test(flavor = "multi_thread")]
async fn arm_errors_keep_the_request_id_and_name_the_resource() {
    let az = start("").await;
    let v = az.caught(r#"appservice::slots(#{ group: "rg-shop", site: "nope" })"#).await;
    assert_eq!(v["kind"], "not_found", "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("slots of site `nope` in group `rg-shop`: not found (ResourceNotFound"),
        "{message}"
    );
    assert_eq!(v["request_id"].as_str().map(str::len), Some(36), "ARM's x-ms-request-id is kept: {v}");

    let v = az.caught(r#"arm::deployments(#{ group: "rg-none" })"#).await;
    assert_eq!(v["kind"], "not_found", "{v}");
    assert!(v["message"].as_str().unwrap_or_default().contains("ResourceGroupNotFound"), "{v}");

    let v = az
        .caught(
            r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging", target: "nope" })"#,
        )
        .await;
    assert_eq!(v["kind"], "not_found", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subscription_comes_from_settings_or_the_call() {
    let az = start("").await;
    let v = az
        .caught(r#"arm::deployments(#{ group: "rg-shop", subscription: "11111111-1111-1111-1111-111111111111" })"#)
        .await;
    assert_eq!(v["kind"], "not_found", "{v}");
    assert!(v["message"].as_str().unwrap_or_default().contains("SubscriptionNotFound"), "{v}");
    let v =
        az.value(&format!(r#"arm::deployments(#{{ group: "rg-shop", subscription: "{SUB}" }}).len()"#)).await;
    assert_eq!(v, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_running_operations_and_pages_are_followed() {
    let az = start("").await;
    az.value(r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#).await;
    let polls =
        az.requests_to("GET", "").into_iter().filter(|r| r.path.contains("/operationresults/")).count();
    assert!(polls >= 1, "the swap's Location was polled");
    assert!(
        az.clock.slept().iter().all(|d| *d == Duration::from_secs(1)),
        "Retry-After: 1 honoured: {:?}",
        az.clock.slept()
    );

    let v = az.value(r#"arm::deployments(#{ group: "rg-shop" })"#).await;
    assert_eq!(v.as_array().map(Vec::len), Some(4));
    let pages = az.requests_to("GET", "/providers/Microsoft.Resources/deployments");
    assert_eq!(pages.len(), 2, "two pages of two");
    assert!(pages[1].query.as_deref().unwrap_or_default().contains("skiptoken"), "{:?}", pages[1]);
}

/// Done-when 4: a run with a token set leaves it in no journal and no log line, errors included.
#[tokio::test(flavor = "multi_thread")]
async fn no_token_in_journals_or_logs() {
    let faults = format!(
        "{}{}",
        fault("POST", "*/slotsswap", "status = 500\napplied = true\ntimes = 1"),
        fault("GET", "*/sites/shop-web/slots", "status = 401\ntimes = 2")
    );
    let az = start(&faults).await;
    let endpoint = az.sim.arm_endpoint();
    tokio::task::spawn_blocking(move || {
        let secret = &TOKEN[TOKEN.len() - 30..];
        let out = Rollbook::new()
            .script_named(
                "leak.rhai",
                r#"
let slots = ();
try { slots = appservice::slots(#{ group: "rg-shop", site: "shop-web" }); } catch (e) { info(`slots failed: ${e.message}`); slots = e; }
info(`slots: ${slots}`);
stage("swap", || appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging" }));
let d = arm::deployments(#{ group: "rg-shop" });
try { arm::redeploy(#{ group: "rg-shop", from: "nope" }) } catch (e) { warn(e.message) }
logicapp::versions(#{ group: "rg-shop", workflow: "orders" });
"done"
"#,
            )
            .yes()
            .arg("-vv")
            .env("ROLLBOOK_ARM_ENDPOINT", &endpoint)
            .env("ROLLBOOK_AZURE_TOKEN", TOKEN)
            .env("AZURE_SUBSCRIPTION_ID", SUB)
            .env("RUST_LOG", "trace")
            .run()
            .succeeds()
            .stderr_has("arm request")
            .output_lacks(secret);
        let mut journals = 0;
        for entry in walk(&out.state_dir()) {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            journals += 1;
            assert!(!text.contains(secret), "token in {}", entry.display());
        }
        assert!(journals > 0, "a journal was written");
    })
    .await
    .expect("joined");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_longer_than_the_bound_gives_up_instead_of_retrying_early() {
    let az = start(&fault("GET", "*/sites/shop-web/slots", "status = 429\nretry_after = \"10m\"\ntimes = 1"))
        .await;
    let v = az.caught(SLOTS).await;
    assert_eq!(v["kind"], "throttled", "{v}");
    assert_eq!(az.requests_to("GET", "/sites/shop-web/slots").len(), 1, "no retry before ARM allows one");
    assert!(az.clock.slept().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_with_no_answer_in_time_is_retried_then_reported_as_timeout() {
    let az = start(&fault("GET", "*/sites/shop-web/slots", "latency = \"2s\"\ntimes = 1")).await;
    let script = format!("{SLOTS}.len()");
    let report = az.run_with_settings(&script, &[("ROLLBOOK_ARM_TIMEOUT", "300ms")]).await;
    assert_eq!(report.value, Some(serde_json::json!(2)), "{:?}", report.error);
    assert_eq!(az.requests_to("GET", "/sites/shop-web/slots").len(), 2, "timed out once, then answered");

    let az = start(&fault("GET", "*/sites/shop-web/slots", "latency = \"2s\"\ntimes = 10")).await;
    let script = format!("let c = (); try {{ {SLOTS}; }} catch (e) {{ c = e; }} c");
    let report = az.run_with_settings(&script, &[("ROLLBOOK_ARM_TIMEOUT", "200ms")]).await;
    let v = report.value.unwrap_or_default();
    assert_eq!(v["kind"], "timeout", "{v}");
    assert_eq!(v["message"], "slots of site `shop-web` in group `rg-shop`: no answer within 200ms");
}
