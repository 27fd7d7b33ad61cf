//! The App Service, ARM, Logic Apps and AKS operations an operator reaches for, over real HTTP
//! with the official request shapes: site lists, config, app settings, slot-config names, slot
//! diffs, restart/stop/start (a stopped site is unhealthy), slot delete; deployment operations,
//! deployment delete (202 + `Location`), resources, resource groups, subscriptions, tenants;
//! workflow list, runs (following the current version's health), triggers, PATCH, DELETE;
//! managed cluster lists.

use std::path::Path;

use rollbook::sim::{Scenario, Sim, SimHandle};
use serde_json::{Value, json};

use crate::azure_support::{SUB, WORLD};

const WEB: &str = "api-version=2024-11-01";
const RES: &str = "api-version=2025-04-01";
const LOGIC: &str = "api-version=2019-05-01";
const AKS: &str = "api-version=2025-10-01";

async fn sim() -> SimHandle {
    let text = format!(
        "{WORLD}\n[[aks.clusters]]\ngroup = \"rg-shop\"\nname = \"aks-prod\"\ncontext = \"prod\"\n\n\
         [[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nrevisions = [\"shop/web:1.4.0\"]\n"
    );
    let scenario = Scenario::parse(Path::new("ops.toml"), &text).expect("scenario parses");
    Sim::start(scenario, None).await.expect("simulator starts")
}

/// (status, headers, body) of a call; `path` is relative to the server or an absolute URL.
async fn call(
    sim: &SimHandle,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url =
        if path.starts_with("http") { path.to_string() } else { format!("{}{path}", sim.arm_endpoint()) };
    let mut rb = reqwest::Client::new()
        .request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), url)
        .bearer_auth("t");
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("request reaches the simulator");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every item of a paged list, following `nextLink`.
async fn all(sim: &SimHandle, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some(path.to_string());
    while let Some(p) = next {
        let (status, _, body) = call(sim, "GET", &p, None).await;
        assert_eq!(status, 200, "{p}: {body}");
        out.extend(body["value"].as_array().cloned().unwrap_or_default());
        next = body["nextLink"].as_str().map(str::to_string);
    }
    out
}

fn names(items: &[Value]) -> Vec<String> {
    items.iter().filter_map(|v| v["name"].as_str().map(str::to_string)).collect()
}

fn rg() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-shop")
}

fn site() -> String {
    format!("{}/providers/Microsoft.Web/sites/shop-web", rg())
}

#[tokio::test]
async fn app_service_lists_config_settings_and_diffs() {
    let sim = sim().await;
    let by_group = all(&sim, &format!("{}/providers/Microsoft.Web/sites?{WEB}", rg())).await;
    assert_eq!(names(&by_group), ["shop-web"]);
    assert_eq!(by_group[0]["type"], "Microsoft.Web/sites");
    let by_sub = all(&sim, &format!("/subscriptions/{SUB}/providers/Microsoft.Web/sites?{WEB}")).await;
    assert_eq!(names(&by_sub), ["shop-web"]);

    let (status, _, web) = call(&sim, "GET", &format!("{}/config/web?{WEB}", site()), None).await;
    assert_eq!(status, 200, "{web}");
    assert_eq!(web["name"], "web");
    assert_eq!(web["type"], "Microsoft.Web/sites/config");
    assert_eq!(web["properties"]["linuxFxVersion"], "DOCKER|shop-web:1.5.0");
    let (_, _, web) = call(&sim, "GET", &format!("{}/slots/staging/config/web?{WEB}", site()), None).await;
    assert_eq!(web["properties"]["linuxFxVersion"], "DOCKER|shop-web:1.4.0");

    let (status, _, settings) =
        call(&sim, "POST", &format!("{}/config/appsettings/list?{WEB}", site()), None).await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["name"], "appsettings");
    assert_eq!(settings["properties"]["APP_BUILD"], "1.5.0");
    let (status, _, _) = call(&sim, "GET", &format!("{}/config/appsettings/list?{WEB}", site()), None).await;
    assert_eq!(status, 405, "listing settings is a POST");

    let (status, _, names_) =
        call(&sim, "GET", &format!("{}/config/slotConfigNames?{WEB}", site()), None).await;
    assert_eq!(status, 200, "{names_}");
    assert_eq!(names_["name"], "slotConfigNames");
    assert!(names_["properties"].get("appSettingNames").is_some(), "{names_}");

    let (status, _, diffs) = call(
        &sim,
        "POST",
        &format!("{}/slots/staging/slotsdiffs?{WEB}", site()),
        Some(json!({ "targetSlot": "production" })),
    )
    .await;
    assert_eq!(status, 200, "{diffs}");
    assert_eq!(diffs["value"][0]["properties"]["settingName"], "linuxFxVersion");
    assert_eq!(diffs["value"][0]["properties"]["valueInCurrentSlot"], "DOCKER|shop-web:1.4.0");
}

#[tokio::test]
async fn stop_start_restart_and_slot_delete() {
    let sim = sim().await;
    // A healthy site first: swap the good build in.
    let (status, _, _) =
        call(&sim, "POST", &format!("{}/slotsswap?{WEB}", site()), Some(json!({ "targetSlot": "staging" })))
            .await;
    assert_eq!(status, 202);
    for _ in 0..3 {
        call(&sim, "GET", &format!("{}?{WEB}", site()), None).await;
    }
    let health = format!("{}/appservice/rg-shop/shop-web", sim.health_base());
    let health_status = || async { reqwest::get(&health).await.expect("health").status().as_u16() };
    assert_eq!(health_status().await, 200);

    let (status, _, body) = call(&sim, "POST", &format!("{}/stop?{WEB}", site()), None).await;
    assert_eq!((status, body), (200, Value::Null));
    let (_, _, s) = call(&sim, "GET", &format!("{}?{WEB}", site()), None).await;
    assert_eq!(s["properties"]["state"], "Stopped");
    assert_eq!(health_status().await, 503, "a stopped site is unhealthy");
    let (status, _, _) =
        call(&sim, "POST", &format!("{}/restart?{WEB}&softRestart=true", site()), None).await;
    assert_eq!(status, 200);
    assert_eq!(health_status().await, 503, "a restart does not start a stopped site");
    let (status, _, _) = call(&sim, "POST", &format!("{}/start?{WEB}", site()), None).await;
    assert_eq!(status, 200);
    assert_eq!(health_status().await, 200);
    let (status, _, _) = call(&sim, "GET", &format!("{}/stop?{WEB}", site()), None).await;
    assert_eq!(status, 405);

    let (status, _, _) = call(&sim, "DELETE", &format!("{}/slots/qa?{WEB}", site()), None).await;
    assert_eq!(status, 200, "as DeleteWebAppSlot.json: 200 when it existed");
    let (status, _, _) = call(&sim, "DELETE", &format!("{}/slots/qa?{WEB}", site()), None).await;
    assert_eq!(status, 204, "and 204 when it did not");
    let slots = all(&sim, &format!("{}/slots?{WEB}", site())).await;
    assert_eq!(names(&slots), ["shop-web/staging"]);
    let (status, _, _) = call(&sim, "DELETE", &format!("{}/slots/production?{WEB}", site()), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn deployment_operations_delete_resources_and_groups() {
    let sim = sim().await;
    let base =
        format!("/subscriptions/{SUB}/resourceGroups/rg-shop/providers/Microsoft.Resources/deployments");
    let ops = all(&sim, &format!("{base}/infra-41/operations?{RES}")).await;
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["properties"]["provisioningState"], "Succeeded");
    assert_eq!(ops[0]["properties"]["targetResource"]["resourceType"], "Microsoft.Web/serverfarms");
    assert!(ops[0]["id"].as_str().unwrap_or("").contains("/deployments/infra-41/operations/"), "{ops:?}");
    let (status, _, _) = call(&sim, "GET", &format!("{base}/nope/operations?{RES}"), None).await;
    assert_eq!(status, 404);

    let (status, headers, _) = call(&sim, "DELETE", &format!("{base}/infra-39?{RES}"), None).await;
    assert_eq!(status, 202);
    let location = headers.get("location").and_then(|v| v.to_str().ok()).expect("Location").to_string();
    assert!(location.starts_with(&sim.arm_endpoint()), "absolute: {location}");
    let mut done = 0;
    for _ in 0..5 {
        let (status, _, _) = call(&sim, "GET", &location, None).await;
        if status == 200 {
            done += 1;
            break;
        }
        assert_eq!(status, 202);
    }
    assert_eq!(done, 1, "the delete completed");
    let history = all(&sim, &format!("{base}?{RES}")).await;
    assert!(!names(&history).contains(&"infra-39".to_string()), "{history:?}");
    let (status, _, _) = call(&sim, "DELETE", &format!("{base}/infra-39?{RES}"), None).await;
    assert_eq!(status, 204);

    let resources = all(&sim, &format!("{}/resources?{RES}", rg())).await;
    let types: Vec<&str> = resources.iter().filter_map(|r| r["type"].as_str()).collect();
    for t in [
        "Microsoft.Web/sites",
        "Microsoft.Web/sites/slots",
        "Microsoft.Logic/workflows",
        "Microsoft.ContainerService/ManagedClusters",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    let groups = all(&sim, &format!("/subscriptions/{SUB}/resourcegroups?{RES}")).await;
    assert_eq!(names(&groups), ["rg-shop"]);
    let subs = all(&sim, &format!("/subscriptions?{RES}")).await;
    assert_eq!(subs[0]["subscriptionId"], SUB);
    assert!(subs[0]["tenantId"].is_string());
    let (status, _, tenants) = call(&sim, "GET", &format!("/tenants?{RES}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(tenants["value"][0]["tenantId"], subs[0]["tenantId"]);

    let clusters =
        all(&sim, &format!("{}/providers/Microsoft.ContainerService/managedClusters?{AKS}", rg())).await;
    assert_eq!(names(&clusters), ["aks-prod"]);
    let clusters = all(
        &sim,
        &format!("/subscriptions/{SUB}/providers/Microsoft.ContainerService/managedClusters?{AKS}"),
    )
    .await;
    assert_eq!(names(&clusters), ["aks-prod"]);
}

#[tokio::test]
async fn workflow_list_runs_triggers_patch_and_delete() {
    let sim = sim().await;
    let wf = format!("{}/providers/Microsoft.Logic/workflows/orders", rg());
    let list = all(&sim, &format!("{}/providers/Microsoft.Logic/workflows?{LOGIC}", rg())).await;
    assert_eq!(names(&list), ["orders"]);
    let list = all(&sim, &format!("/subscriptions/{SUB}/providers/Microsoft.Logic/workflows?{LOGIC}")).await;
    assert_eq!(names(&list), ["orders"]);

    // The current version (…02) is broken: its runs fail.
    let runs = all(&sim, &format!("{wf}/runs?{LOGIC}")).await;
    assert!(runs.len() >= 3, "{runs:?}");
    assert_eq!(runs[0]["properties"]["status"], "Failed");
    assert_eq!(runs[0]["properties"]["workflow"]["name"], "08585000000000000002");
    assert_eq!(runs[0]["type"], "Microsoft.Logic/workflows/runs");
    let one = runs[0]["name"].as_str().unwrap_or_default().to_string();
    let (status, _, run) = call(&sim, "GET", &format!("{wf}/runs/{one}?{LOGIC}"), None).await;
    assert_eq!((status, run["name"].as_str()), (200, Some(one.as_str())));

    // Promote version 1 (its definition PUT back): the next runs succeed and name it... as the
    // new version the PUT made, whose definition is version 1's.
    let (_, _, v1) = call(&sim, "GET", &format!("{wf}/versions/08585000000000000001?{LOGIC}"), None).await;
    let body = json!({ "location": "eastus", "properties": { "definition": v1["properties"]["definition"], "parameters": v1["properties"]["parameters"] } });
    let (status, _, put) = call(&sim, "PUT", &format!("{wf}?{LOGIC}"), Some(body)).await;
    assert_eq!(status, 200, "{put}");
    let runs = all(&sim, &format!("{wf}/runs?{LOGIC}")).await;
    assert_eq!(runs[0]["properties"]["status"], "Succeeded");
    assert_eq!(runs[0]["properties"]["workflow"]["name"], put["properties"]["version"]);
    assert_eq!(runs[1]["properties"]["status"], "Failed", "the older runs keep their outcome");

    let triggers = all(&sim, &format!("{wf}/triggers?{LOGIC}")).await;
    assert_eq!(triggers[0]["type"], "Microsoft.Logic/workflows/triggers");

    let (status, _, patched) = call(
        &sim,
        "PATCH",
        &format!("{wf}?{LOGIC}"),
        Some(json!({ "tags": { "team": "orders" }, "properties": { "state": "Disabled" } })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["tags"]["team"], "orders");
    assert_eq!(patched["properties"]["state"], "Disabled");
    let before = all(&sim, &format!("{wf}/runs?{LOGIC}")).await.len();
    let after = all(&sim, &format!("{wf}/runs?{LOGIC}")).await.len();
    assert_eq!(before, after, "a disabled workflow does not run");

    let (status, _, _) = call(&sim, "DELETE", &format!("{wf}?{LOGIC}"), None).await;
    assert_eq!(status, 200);
    let (status, _, _) = call(&sim, "DELETE", &format!("{wf}?{LOGIC}"), None).await;
    assert_eq!(status, 204);
    let (status, _, _) = call(&sim, "GET", &format!("{wf}?{LOGIC}"), None).await;
    assert_eq!(status, 404);
}
