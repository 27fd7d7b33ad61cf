//! `logicapp::runs`: a promote verified by the runs that follow it — live and under dry-run
//! (a read runs for real and changes nothing).

use serde_json::Value;

use crate::azure_support::start;

const RUNS: &str = r#"logicapp::runs(#{ group: "rg-shop", workflow: "orders", top: 3 })"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_promote_is_verified_by_its_next_runs() {
    let az = start("").await;
    let before = az.value(RUNS).await;
    let runs = before.as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 3, "{before}");
    assert!(runs.iter().all(|r| r["status"] == "Failed"), "the current version is broken: {before}");
    assert_eq!(runs[0]["version"], "08585000000000000002");
    assert!(
        runs[0]["start_time"].as_str().unwrap_or("") >= runs[1]["start_time"].as_str().unwrap_or(""),
        "newest first"
    );

    let script = r#"
        logicapp::promote(#{ group: "rg-shop", workflow: "orders", version: "08585000000000000001" });
        let current = logicapp::versions(#{ group: "rg-shop", workflow: "orders" }).filter(|v| v.current)[0].version;
        let next = logicapp::runs(#{ group: "rg-shop", workflow: "orders", top: 1 })[0];
        #{ current: current, next: next }
    "#;
    let v = az.value(script).await;
    assert_eq!(v["next"]["status"], "Succeeded", "{v}");
    assert_eq!(v["next"]["version"], v["current"], "{v}");

    let report = az.dry(RUNS, &["logicapp/rg-shop/orders"]).await;
    assert_eq!(report.value.as_ref().and_then(Value::as_array).map(Vec::len), Some(3));
    assert!(report.plan.is_empty());
    let e = az.caught(r#"logicapp::runs(#{ group: "rg-shop", workflow: "orders", top: 0 })"#).await;
    assert_eq!(e["kind"], "invalid", "{e}");
}
