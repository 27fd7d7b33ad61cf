//! The simulated ARM over real loopback HTTP: reqwest and curl against `AzureWorld::router`,
//! answers compared with the official example payloads in `tests/fixtures/azure-rest-examples`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use reqwest::header::HeaderMap;
use rollbook::sim::Scenario;
use rollbook::sim::arm_router::{AzureWorld, KubeServerFor};
use serde_json::{Value, json};

const SUB: &str = "00000000-0000-0000-0000-000000000000";
const WEB: &str = "api-version=2025-05-01";
const RES: &str = "api-version=2026-06-01";
const LOGIC: &str = "api-version=2019-05-01";
const AKS: &str = "api-version=2026-08-01";

/// The shared Azure test world plus an AKS cluster whose credentials reach context `prod`.
fn world() -> String {
    format!(
        "{}\n[[aks.clusters]]\ngroup = \"rg-shop\"\nname = \"aks-prod\"\ncontext = \"prod\"\n",
        crate::azure_support::WORLD
    )
}

struct Sim {
    base: String,
    world: Arc<AzureWorld>,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn serve_with(text: &str) -> Sim {
    let scenario = Scenario::parse(Path::new("arm.toml"), text).expect("scenario parses");
    let world = Arc::new(AzureWorld::from_scenario(&scenario));
    let kube: KubeServerFor =
        Arc::new(|ctx: &str| (ctx == "prod").then(|| "http://127.0.0.1:7443/k8s/prod".to_string()));
    let app = world.clone().router(kube);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Sim { base: format!("http://{addr}"), world, http: reqwest::Client::new() }
}

async fn serve() -> Sim {
    serve_with(&world()).await
}

fn rg() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-shop")
}

fn site() -> String {
    format!("{}/providers/Microsoft.Web/sites/shop-web", rg())
}

fn deployments() -> String {
    format!("/subscriptions/{SUB}/resourcegroups/rg-shop/providers/Microsoft.Resources/deployments")
}

fn workflow() -> String {
    format!("{}/providers/Microsoft.Logic/workflows/orders", rg())
}

impl Sim {
    /// `path_and_query` is relative to the server, or an absolute URL (a `Location` or `nextLink`).
    async fn call(&self, method: &str, path_and_query: &str, body: Option<Value>) -> Answer {
        let url = if path_and_query.starts_with("http") {
            path_and_query.to_string()
        } else {
            format!("{}{}", self.base, path_and_query)
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self
            .http
            .request(method, url)
            .bearer_auth("any-token")
            .header("x-ms-correlation-request-id", "corr-1");
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request reaches the simulator");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer { status, headers, body }
    }

    async fn get(&self, p: &str) -> Answer {
        self.call("GET", p, None).await
    }

    /// curl, as a user would type it; returns (status, headers text, body JSON).
    async fn curl(&self, args: Vec<String>) -> (u16, String, Value) {
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("/usr/bin/curl").args(["-s", "-i"]).args(&args).output()
        })
        .await
        .expect("join")
        .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = serde_json::from_str(body).unwrap_or(Value::Null);
        (status, head.to_ascii_lowercase(), body)
    }
}

fn fixture(rel: &str) -> Value {
    let path: PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/azure-rest-examples", rel].iter().collect();
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `expected` is in `actual` with the same JSON type, recursively (except `exempt`
/// dotted paths); each element of an expected array has a same-shaped element in the actual one.
fn shape_errors(expected: &Value, actual: &Value, path: &str, exempt: &[&str], out: &mut Vec<String>) {
    if exempt.contains(&path) {
        return;
    }
    if kind(expected) != kind(actual) {
        out.push(format!("{path}: expected {}, found {}", kind(expected), kind(actual)));
        return;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if exempt.contains(&p.as_str()) {
                    continue;
                }
                match a.get(k) {
                    Some(av) => shape_errors(ev, av, &p, exempt, out),
                    None => out.push(format!("{p}: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, ev) in e.iter().enumerate() {
                let fits = a.iter().any(|av| {
                    let mut errs = Vec::new();
                    shape_errors(ev, av, &format!("{path}[]"), exempt, &mut errs);
                    errs.is_empty()
                });
                if !fits {
                    let mut errs = Vec::new();
                    if let Some(first) = a.first() {
                        shape_errors(ev, first, &format!("{path}[]"), exempt, &mut errs);
                    }
                    out.push(format!("{path}[{i}]: no element of that shape ({})", errs.join("; ")));
                }
            }
        }
        _ => {}
    }
}

fn assert_shape(expected: &Value, actual: &Value, exempt: &[&str]) {
    let mut errs = Vec::new();
    shape_errors(expected, actual, "", exempt, &mut errs);
    assert!(
        errs.is_empty(),
        "shape differs from the official example:\n{}\nactual: {actual:#}",
        errs.join("\n")
    );
}

fn example(rel: &str, status: &str) -> Value {
    fixture(rel)["responses"][status]["body"].clone()
}

// ---------------------------------------------------------------- App Service

#[tokio::test]
async fn site_slot_and_slot_list_match_the_official_examples() {
    let sim = serve().await;
    let exempt = ["properties.workloadProfileName", "properties.resourceConfig"];

    let site_ans = sim.get(&format!("{}?{WEB}", site())).await;
    assert_eq!(site_ans.status, 200, "{:?}", site_ans.body);
    assert_shape(&example("web/GetWebApp.json", "200"), &site_ans.body, &exempt);
    assert_eq!(site_ans.body["name"], "shop-web");
    assert_eq!(site_ans.body["properties"]["siteConfig"]["linuxFxVersion"], "DOCKER|shop-web:1.5.0");

    let slot = sim.get(&format!("{}/slots/staging?{WEB}", site())).await;
    assert_eq!(slot.status, 200);
    assert_shape(&example("web/GetWebAppSlot.json", "200"), &slot.body, &[]);
    assert_eq!(slot.body["name"], "shop-web/staging");
    assert_eq!(slot.body["type"], "Microsoft.Web/sites/slots");

    // The listing through curl, as an operator would ask for it; two slots fit one page.
    let (status, headers, body) = sim
        .curl(vec![
            "-H".into(),
            "Authorization: Bearer x".into(),
            format!("{}{}/slots?{WEB}", sim.base, site()),
        ])
        .await;
    assert_eq!(status, 200);
    assert!(headers.contains("x-ms-request-id:"), "{headers}");
    assert_shape(&example("web/ListWebAppSlots.json", "200"), &body, &[]);
    let names: Vec<&str> =
        body["value"].as_array().expect("value").iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, vec!["shop-web/qa", "shop-web/staging"], "production is not listed");
    assert!(body.get("nextLink").is_none());

    let missing = sim.get(&format!("{}/slots/nope?{WEB}", site())).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "ResourceNotFound");
    assert_eq!(
        missing.body["error"]["message"],
        "The Resource 'Microsoft.Web/sites/shop-web/slots/nope' under resource group 'rg-shop' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    );
}

#[tokio::test]
async fn slot_swap_is_long_running_and_shows_in_status_state_and_health() {
    let sim = serve().await;
    assert_eq!(sim.world.healthy("appservice/rg-shop/shop-web"), Some(false));

    let start = sim
        .call(
            "POST",
            &format!("{}/slots/staging/slotsswap?{WEB}", site()),
            Some(json!({ "targetSlot": "production", "preserveVnet": true })),
        )
        .await;
    assert_eq!(start.status, 202, "{:?}", start.body);
    assert_eq!(start.body, Value::Null, "202 has no body");
    assert_eq!(start.header("retry-after"), Some("1"));
    let location = start.header("location").expect("Location").to_string();
    assert!(location.starts_with(&sim.base), "absolute: {location}");
    assert!(location.contains("/slots/staging/operationresults/"), "{location}");

    // A retry while the swap is in flight cannot apply it twice (it also observes the site).
    let again = sim
        .call(
            "POST",
            &format!("{}/slotsswap?{WEB}", site()),
            Some(json!({ "targetSlot": "staging", "preserveVnet": true })),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"]["code"], "Conflict");
    assert_eq!(
        sim.world.state("appservice/rg-shop/shop-web"),
        Some(json!({ "production": "1.5.0", "staging": "1.4.0", "qa": "1.3.0" })),
        "nothing changes before completion"
    );

    let poll = sim.get(&location).await;
    assert_eq!(poll.status, 202, "second observation: still running");
    assert!(poll.header("retry-after").is_some());
    let done = sim.get(&location).await;
    assert_eq!(done.status, 200, "completes after lro_polls observations");
    assert_eq!(done.body, Value::Null);

    assert_eq!(
        sim.world.state("appservice/rg-shop/shop-web"),
        Some(json!({ "production": "1.4.0", "staging": "1.5.0", "qa": "1.3.0" }))
    );
    assert_eq!(sim.world.healthy("appservice/rg-shop/shop-web"), Some(true));

    let site_ans = sim.get(&format!("{}?{WEB}", site())).await;
    let status = &site_ans.body["properties"]["slotSwapStatus"];
    assert_eq!(status["sourceSlotName"], "staging");
    assert_eq!(status["destinationSlotName"], "production");
    assert!(status["timestampUtc"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(site_ans.body["properties"]["siteConfig"]["linuxFxVersion"], "DOCKER|shop-web:1.4.0");
    let slot = sim.get(&format!("{}/slots/staging?{WEB}", site())).await;
    assert_eq!(slot.body["properties"]["slotSwapStatus"]["sourceSlotName"], "staging");

    // Swapping back at site level (the production-level form) restores the first state.
    let back = sim
        .call(
            "POST",
            &format!("{}/slotsswap?{WEB}", site()),
            Some(json!({ "targetSlot": "staging", "preserveVnet": true })),
        )
        .await;
    assert_eq!(back.status, 202);
    let loc = back.header("location").expect("Location").to_string();
    assert!(!loc.contains("/slots/"), "{loc}");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let a = sim.get(&loc).await;
        statuses.push(a.status);
        if a.status != 202 {
            break;
        }
    }
    assert_eq!(statuses, vec![202, 202, 200]);
    assert_eq!(sim.world.healthy("appservice/rg-shop/shop-web"), Some(false));
}

#[tokio::test]
async fn swap_with_preview_blocks_other_pairs_until_reset() {
    let sim = serve().await;
    let apply = sim
        .call(
            "POST",
            &format!("{}/applySlotConfig?{WEB}", site()),
            Some(json!({ "targetSlot": "staging", "preserveVnet": true })),
        )
        .await;
    assert_eq!(apply.status, 200);
    assert_eq!(apply.body, Value::Null);
    let other = sim
        .call(
            "POST",
            &format!("{}/slots/qa/slotsswap?{WEB}", site()),
            Some(json!({ "targetSlot": "production", "preserveVnet": true })),
        )
        .await;
    assert_eq!(other.status, 409, "{:?}", other.body);
    let reset = sim.call("POST", &format!("{}/resetSlotConfig?{WEB}", site()), None).await;
    assert_eq!(reset.status, 200);
    let now_ok = sim
        .call(
            "POST",
            &format!("{}/slots/qa/slotsswap?{WEB}", site()),
            Some(json!({ "targetSlot": "production", "preserveVnet": true })),
        )
        .await;
    assert_eq!(now_ok.status, 202);
    let no_target = sim.call("POST", &format!("{}/slotsswap?{WEB}", site()), Some(json!({}))).await;
    assert_eq!(no_target.status, 400);
}

// ---------------------------------------------------------------- ARM basics

#[tokio::test]
async fn api_version_missing_or_malformed_is_refused_as_arm_does() {
    let sim = serve().await;
    let auth = "Authorization: Bearer t".to_string();
    let (status, headers, body) =
        sim.curl(vec!["-H".into(), auth.clone(), format!("{}{}", sim.base, site())]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"code": "MissingApiVersionParameter", "message": "The api-version query parameter (?api-version=) is required for all requests."}})
    );
    assert!(
        headers.contains("x-ms-request-id:") && headers.contains("x-ms-correlation-request-id:"),
        "{headers}"
    );

    for bad in ["2025-13-01", "latest", "2025-05-01preview"] {
        let (status, _, body) = sim
            .curl(vec!["-H".into(), auth.clone(), format!("{}{}?api-version={bad}", sim.base, site())])
            .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "InvalidApiVersionParameter");
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(&format!("The api-version '{bad}' is invalid. The supported versions are '")),
            "{msg}"
        );
    }
    // Versions SDKs and the CLI send today, preview ones included.
    for v in ["2025-05-01", "2024-11-01", "2023-12-01", "2025-10-02-preview"] {
        let a = sim.get(&format!("{}?api-version={v}", site())).await;
        assert_eq!(a.status, 200, "{v}: {:?}", a.body);
    }
}

#[tokio::test]
async fn requests_without_a_bearer_token_get_401_with_request_ids() {
    let sim = serve().await;
    let (status, headers, body) = sim.curl(vec![format!("{}{}?{WEB}", sim.base, site())]).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": {"code": "AuthenticationFailed", "message": "Authentication failed. The 'Authorization' header is missing."}})
    );
    assert!(headers.contains("www-authenticate: bearer"), "{headers}");
    assert!(headers.contains("x-ms-request-id:"), "{headers}");
    let (status, _, body) = sim
        .curl(vec!["-H".into(), "Authorization: Basic abc".into(), format!("{}{}?{WEB}", sim.base, site())])
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "AuthenticationFailedInvalidHeader");
}

#[tokio::test]
async fn every_answer_has_fresh_request_ids_and_the_callers_correlation_id() {
    let sim = serve().await;
    let a = sim.get(&format!("{}?{WEB}", site())).await;
    let b = sim.get(&format!("{}/slots/nope?{WEB}", site())).await;
    let ida = a.header("x-ms-request-id").expect("request id");
    let idb = b.header("x-ms-request-id").expect("request id on errors too");
    assert_ne!(ida, idb);
    assert_eq!(ida.len(), 36);
    assert_eq!(a.header("x-ms-correlation-request-id"), Some("corr-1"));
    assert_eq!(b.header("x-ms-correlation-request-id"), Some("corr-1"));

    let group = sim
        .get(&format!("/subscriptions/{SUB}/resourceGroups/nope/providers/Microsoft.Web/sites/x?{WEB}"))
        .await;
    assert_eq!(group.status, 404);
    assert_eq!(group.body["error"]["code"], "ResourceGroupNotFound");
    assert_eq!(group.body["error"]["message"], "Resource group 'nope' could not be found.");
    let sub = sim
        .get(&format!("/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-shop?{RES}"))
        .await;
    assert_eq!(sub.body["error"]["code"], "SubscriptionNotFound");
    let dep = sim.get(&format!("{}/nope?{RES}", deployments())).await;
    assert_eq!(dep.status, 404);
    assert_eq!(dep.body["error"]["code"], "DeploymentNotFound");
}

#[tokio::test]
async fn paths_match_case_insensitively() {
    let sim = serve().await;
    let upper = format!(
        "/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/RG-SHOP/PROVIDERS/MICROSOFT.WEB/SITES/SHOP-WEB/SLOTS/STAGING?{WEB}"
    );
    let a = sim.get(&upper).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["name"], "shop-web/staging", "names keep the scenario's case");
    let mixed = format!(
        "/Subscriptions/{SUB}/resourcegroups/rg-shop/providers/microsoft.resources/DEPLOYMENTS/Infra-41?{RES}"
    );
    let b = sim.get(&mixed).await;
    assert_eq!(b.status, 200, "{:?}", b.body);
    assert_eq!(b.body["name"], "infra-41");
}

// ---------------------------------------------------------------- Deployments

#[tokio::test]
async fn deployment_list_is_newest_first_and_paged_through_next_link() {
    let sim = serve().await;
    let mut url = format!("{}?{RES}", deployments());
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let a = sim.get(&url).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        pages += 1;
        for d in a.body["value"].as_array().expect("value") {
            names.push(d["name"].as_str().unwrap_or_default().to_string());
        }
        match a.body["nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&sim.base), "absolute nextLink: {next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(names, vec!["infra-42", "infra-41", "infra-40", "infra-39"]);
    assert_eq!(pages, 2, "small pages force clients to follow nextLink");

    let top = sim.get(&format!("{}?{RES}&$top=3", deployments())).await;
    assert_eq!(top.body["value"].as_array().map(Vec::len), Some(2));
    let next = top.body["nextLink"].as_str().expect("nextLink").to_string();
    let rest = sim.get(&next).await;
    assert_eq!(rest.body["value"].as_array().map(Vec::len), Some(1), "$top caps the listing");
    assert!(rest.body.get("nextLink").is_none());

    let failed = sim.get(&format!("{}?{RES}&$filter=provisioningState%20eq%20'Failed'", deployments())).await;
    assert_eq!(failed.body["value"][0]["name"], "infra-40");
    assert_eq!(failed.body["value"].as_array().map(Vec::len), Some(1));
}

fn template(fail: bool) -> Value {
    let mut plan = json!({
        "type": "Microsoft.Web/serverfarms", "apiVersion": "2024-11-01", "name": "plan",
        "location": "eastus", "sku": { "name": "[parameters('sku')]" }, "tags": { "app": "shop" }
    });
    if fail {
        plan["rollbookSim"] = json!({ "fail": true });
    }
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": { "sku": { "type": "string" } },
        "resources": [ plan, {
            "type": "Microsoft.Storage/storageAccounts", "apiVersion": "2024-01-01",
            "name": "shopdata", "location": "eastus", "kind": "StorageV2", "tags": { "app": "shop" }
        } ]
    })
}

#[tokio::test]
async fn deployment_create_is_long_running_and_shaped_like_the_examples() {
    let sim = serve().await;
    let put = sim
        .call(
            "PUT",
            &format!("{}/infra-43?{RES}", deployments()),
            Some(json!({ "properties": { "mode": "Incremental", "template": template(false), "parameters": { "sku": { "value": "S2" } } } })),
        )
        .await;
    assert_eq!(put.status, 201, "{:?}", put.body);
    assert_shape(
        &example("resources/PutDeploymentResourceGroup.json", "201"),
        &put.body,
        &["properties.templateLink"],
    );
    assert_eq!(put.body["properties"]["provisioningState"], "Accepted");
    let async_op = put.header("azure-asyncoperation").expect("Azure-AsyncOperation").to_string();
    assert!(async_op.contains("/deployments/infra-43/operationStatuses/"), "{async_op}");
    assert!(put.header("location").is_some());

    let mut seen = Vec::new();
    for _ in 0..5 {
        let a = sim.get(&async_op).await;
        assert_eq!(a.status, 200);
        let s = a.body["status"].as_str().unwrap_or_default().to_string();
        seen.push(s.clone());
        if s == "Succeeded" {
            break;
        }
    }
    assert_eq!(seen, vec!["Running", "Running", "Succeeded"]);

    let got = sim.get(&format!("{}/infra-43?{RES}", deployments())).await;
    assert_shape(
        &example("resources/PutDeploymentResourceGroup.json", "200"),
        &got.body,
        &["properties.templateLink"],
    );
    assert_eq!(got.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(got.body["properties"]["parameters"]["sku"], json!({ "type": "String", "value": "S2" }));
    let state = sim.world.state("arm/rg-shop").expect("state");
    assert_eq!(state["live"], "infra-43");
    assert_eq!(state["deployments"][0], "infra-43");

    let export = sim.call("POST", &format!("{}/infra-43/exportTemplate?{RES}", deployments()), None).await;
    assert_eq!(export.status, 200);
    assert_eq!(export.body["template"], template(false));

    let bad = sim
        .call(
            "PUT",
            &format!("{}/infra-44?{RES}", deployments()),
            Some(json!({ "properties": { "template": template(false) } })),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], "InvalidRequestContent");
}

#[tokio::test]
async fn redeploying_exported_content_makes_an_old_deployment_live_again() {
    let sim = serve().await;
    assert_eq!(sim.world.healthy("arm/rg-shop"), Some(false), "infra-42 is broken");
    let export = sim.call("POST", &format!("{}/infra-41/exportTemplate?{RES}", deployments()), None).await;
    let old = sim.get(&format!("{}/infra-41?{RES}", deployments())).await;
    // Parameters as GET shows them (with `type`) are sent back as they are.
    let put = sim
        .call(
            "PUT",
            &format!("{}/redeploy-infra-41?{RES}", deployments()),
            Some(json!({ "properties": { "mode": "Incremental", "template": export.body["template"], "parameters": old.body["properties"]["parameters"] } })),
        )
        .await;
    assert_eq!(put.status, 201);
    let location = put.header("location").expect("Location").to_string();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let a = sim.get(&location).await;
        statuses.push(a.status);
        if a.status == 200 {
            assert_eq!(a.body["properties"]["provisioningState"], "Succeeded");
            break;
        }
    }
    assert_eq!(statuses, vec![202, 202, 200]);
    let state = sim.world.state("arm/rg-shop").expect("state");
    assert_eq!(state["live"], "infra-41", "the oldest deployment with the live content");
    assert_eq!(state["live_matches"], json!(["infra-41", "redeploy-infra-41"]));
    assert_eq!(sim.world.healthy("arm/rg-shop"), Some(true));
}

#[tokio::test]
async fn on_error_deployment_rolls_back_to_the_last_successful_one() {
    let sim = serve().await;
    let put = sim
        .call(
            "PUT",
            &format!("{}/infra-43?{RES}", deployments()),
            Some(json!({ "properties": {
                "mode": "Incremental", "template": template(true),
                "parameters": { "sku": { "value": "S3" } },
                "onErrorDeployment": { "type": "LastSuccessful" }
            } })),
        )
        .await;
    assert_eq!(put.status, 201, "{:?}", put.body);
    assert_shape(
        &example("resources/PutDeploymentWithOnErrorDeploymentLastSuccessful.json", "201"),
        &put.body,
        &["properties.templateLink", "properties.dependencies"],
    );
    assert_eq!(
        put.body["properties"]["onErrorDeployment"],
        json!({ "type": "LastSuccessful", "deploymentName": "infra-42" })
    );
    let location = put.header("location").expect("Location").to_string();
    let mut last = None;
    for _ in 0..5 {
        let a = sim.get(&location).await;
        if a.status == 200 {
            last = Some(a);
            break;
        }
    }
    let done = last.expect("the deployment finishes");
    assert_eq!(done.body["properties"]["provisioningState"], "Failed");
    assert_eq!(done.body["properties"]["error"]["code"], "DeploymentFailed");
    assert_eq!(done.body["properties"]["onErrorDeployment"]["provisioningState"], "Succeeded");

    let list = sim.get(&format!("{}?{RES}&$top=2", deployments())).await;
    let names: Vec<&str> =
        list.body["value"].as_array().expect("value").iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, vec!["infra-42", "infra-43"], "the rollback re-ran infra-42 and is newest");
    assert_eq!(list.body["value"][0]["properties"]["mode"], "Complete");
    assert_eq!(sim.world.state("arm/rg-shop").expect("state")["live"], "infra-42");

    // A specific target that is not in the history is refused up front.
    let bad = sim
        .call(
            "PUT",
            &format!("{}/infra-44?{RES}", deployments()),
            Some(json!({ "properties": {
                "mode": "Incremental", "template": template(true), "parameters": { "sku": { "value": "S1" } },
                "onErrorDeployment": { "type": "SpecificDeployment", "deploymentName": "infra-1" }
            } })),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], "InvalidOnErrorDeployment");

    // A specific good target: redeployed, and health follows its content (infra-41 is good).
    let put = sim
        .call(
            "PUT",
            &format!("{}/infra-45?{RES}", deployments()),
            Some(json!({ "properties": {
                "mode": "Incremental", "template": template(true), "parameters": { "sku": { "value": "S3" } },
                "onErrorDeployment": { "type": "SpecificDeployment", "deploymentName": "infra-41" }
            } })),
        )
        .await;
    assert_eq!(put.status, 201);
    let op = put.header("azure-asyncoperation").expect("op").to_string();
    let mut status = String::new();
    for _ in 0..5 {
        status = sim.get(&op).await.body["status"].as_str().unwrap_or_default().to_string();
        if status != "Running" {
            break;
        }
    }
    assert_eq!(status, "Failed");
    assert_eq!(sim.world.state("arm/rg-shop").expect("state")["live"], "infra-41");
    assert_eq!(sim.world.healthy("arm/rg-shop"), Some(true));
}

#[tokio::test]
async fn what_if_is_long_running_and_shaped_like_the_example() {
    let sim = serve().await;
    let post = sim
        .call(
            "POST",
            &format!("{}/infra-43/whatIf?{RES}", deployments()),
            Some(json!({ "properties": { "mode": "Incremental", "template": template(false), "parameters": { "sku": { "value": "S2" } } } })),
        )
        .await;
    assert_eq!(post.status, 202, "{:?}", post.body);
    let location = post.header("location").expect("Location").to_string();
    let mut result = None;
    for _ in 0..5 {
        let a = sim.get(&location).await;
        if a.status == 200 {
            result = Some(a.body);
            break;
        }
        assert_eq!(a.status, 202);
    }
    let result = result.expect("what-if finishes");
    // Tag names are the template's own.
    assert_shape(
        &example("resources/PostDeploymentWhatIfOnResourceGroup.json", "200"),
        &result,
        &["properties.changes[].after.tags.myNewTag", "properties.changes[].after.tags.myOtherNewTag"],
    );
    let changes: Vec<(String, String)> = result["properties"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["resourceId"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                c["changeType"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![("plan".to_string(), "Modify".to_string()), ("shopdata".to_string(), "Create".to_string())]
    );
    assert_eq!(
        result["properties"]["changes"][0]["delta"],
        json!([
            { "path": "sku.name", "propertyChangeType": "Modify", "before": "P1v3", "after": "S2" },
            { "path": "tags", "propertyChangeType": "Create", "after": { "app": "shop" } }
        ])
    );
    assert_eq!(sim.world.state("arm/rg-shop").expect("state")["live"], "infra-42", "what-if changes nothing");
}

// ---------------------------------------------------------------- Logic Apps

#[tokio::test]
async fn logic_app_versions_and_promote_through_get_version_and_put() {
    let sim = serve().await;
    assert_eq!(sim.world.healthy("logicapp/rg-shop/orders"), Some(false));

    let list = sim.get(&format!("{}/versions?{LOGIC}", workflow())).await;
    assert_eq!(list.status, 200);
    assert_shape(
        &example("logic/WorkflowVersions_List.json", "200"),
        &list.body,
        &["value[].properties.integrationAccount"],
    );
    let ids: Vec<&str> = list.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|v| v["properties"]["version"].as_str())
        .collect();
    assert_eq!(ids, vec!["08585000000000000002", "08585000000000000001"], "newest first");

    let wf = sim.get(&format!("{}?{LOGIC}", workflow())).await;
    assert_shape(
        &example("logic/Workflows_Get.json", "200"),
        &wf.body,
        &["properties.integrationAccount", "properties.integrationServiceEnvironment"],
    );

    // Promote 01: read it, PUT its definition and parameters on the workflow.
    let old = sim.get(&format!("{}/versions/08585000000000000001?{LOGIC}", workflow())).await;
    assert_eq!(old.status, 200);
    assert_shape(
        &example("logic/WorkflowVersions_Get.json", "200"),
        &old.body,
        &["properties.integrationAccount"],
    );
    let mut body = wf.body.clone();
    body["properties"] = json!({
        "definition": old.body["properties"]["definition"],
        "parameters": old.body["properties"]["parameters"],
    });
    let put = sim.call("PUT", &format!("{}?{LOGIC}", workflow()), Some(body)).await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_shape(
        &example("logic/Workflows_CreateOrUpdate.json", "200"),
        &put.body,
        &[
            "properties.integrationAccount",
            "properties.integrationServiceEnvironment",
            "properties.accessControl",
        ],
    );
    let new_id = put.body["properties"]["version"].as_str().expect("version").to_string();
    assert_eq!(new_id, "08585000000000000003");

    let state = sim.world.state("logicapp/rg-shop/orders").expect("state");
    assert_eq!(state, json!({ "current": "08585000000000000001", "state": "Enabled", "versions": 3 }));
    assert_eq!(sim.world.healthy("logicapp/rg-shop/orders"), Some(true));

    let disable = sim.call("POST", &format!("{}/disable?{LOGIC}", workflow()), None).await;
    assert_eq!(disable.status, 200);
    assert_eq!(sim.world.state("logicapp/rg-shop/orders").expect("state")["state"], "Disabled");
    let enable = sim.call("POST", &format!("{}/enable?{LOGIC}", workflow()), None).await;
    assert_eq!(enable.status, 200);

    let missing = sim.get(&format!("{}/versions/1?{LOGIC}", workflow())).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn logic_app_versions_page_through_next_link() {
    let sim = serve().await;
    for _ in 0..2 {
        let wf = sim.get(&format!("{}?{LOGIC}", workflow())).await;
        let put = sim.call("PUT", &format!("{}?{LOGIC}", workflow()), Some(wf.body)).await;
        assert_eq!(put.status, 200);
    }
    let first = sim.get(&format!("{}/versions?{LOGIC}", workflow())).await;
    assert_eq!(first.body["value"].as_array().map(Vec::len), Some(2));
    let next = first.body["nextLink"].as_str().expect("nextLink").to_string();
    let second = sim.get(&next).await;
    let ids: Vec<&str> = second.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|v| v["properties"]["version"].as_str())
        .collect();
    assert_eq!(ids, vec!["08585000000000000002", "08585000000000000001"]);
}

// ---------------------------------------------------------------- AKS

#[tokio::test]
async fn aks_credentials_decode_to_a_kubeconfig_for_the_simulated_context() {
    let sim = serve().await;
    let cluster = format!("{}/providers/Microsoft.ContainerService/managedClusters/aks-prod", rg());
    let user = sim.call("POST", &format!("{cluster}/listClusterUserCredential?{AKS}"), None).await;
    assert_eq!(user.status, 200, "{:?}", user.body);
    assert_shape(
        &example("containerservice/ManagedClustersListClusterUserCredentials.json", "200"),
        &user.body,
        &[],
    );
    assert_eq!(user.body["kubeconfigs"][0]["name"], "clusterUser");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(user.body["kubeconfigs"][0]["value"].as_str().expect("value"))
        .expect("base64");
    let config = String::from_utf8(raw).expect("utf8");
    assert!(config.contains("server: http://127.0.0.1:7443/k8s/prod\n"), "{config}");
    assert!(config.contains("current-context: aks-prod\n"), "{config}");
    assert!(config.contains("name: clusterUser_rg-shop_aks-prod\n"), "{config}");
    assert!(config.contains("token: "), "{config}");
    // kubectl reads it as a kubeconfig and finds the simulated context's server.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config");
    std::fs::write(&file, &config).expect("write kubeconfig");
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&file)
        .args(["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"])
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "http://127.0.0.1:7443/k8s/prod");

    let admin = sim.call("POST", &format!("{cluster}/listClusterAdminCredential?{AKS}"), None).await;
    assert_eq!(admin.body["kubeconfigs"][0]["name"], "clusterAdmin");
    let get = sim.get(&format!("{cluster}?{AKS}")).await;
    assert_eq!(get.body["properties"]["provisioningState"], "Succeeded");
    let wrong = sim.get(&format!("{cluster}/listClusterUserCredential?{AKS}")).await;
    assert_eq!(wrong.status, 405);
    let none = sim
        .call("POST", &format!("{}/providers/Microsoft.ContainerService/managedClusters/nope/listClusterUserCredential?{AKS}", rg()), None)
        .await;
    assert_eq!(none.body["error"]["code"], "ResourceNotFound");
}

#[tokio::test]
async fn lro_polls_zero_completes_on_the_first_poll() {
    let text = world().replace("name = \"azure\"\n", "name = \"azure\"\n[sim]\nlro_polls = 0\n");
    let sim = serve_with(&text).await;
    let start = sim
        .call(
            "POST",
            &format!("{}/slots/staging/slotsswap?{WEB}", site()),
            Some(json!({ "targetSlot": "production", "preserveVnet": true })),
        )
        .await;
    let loc = start.header("location").expect("Location").to_string();
    assert_eq!(sim.get(&loc).await.status, 200);
    assert_eq!(sim.world.healthy("appservice/rg-shop/shop-web"), Some(true));
}

#[tokio::test]
async fn validate_head_and_cancel_behave_as_documented() {
    let sim = serve().await;
    let body = json!({ "properties": { "mode": "Incremental", "template": template(false), "parameters": { "sku": { "value": "S2" } } } });
    let v = sim.call("POST", &format!("{}/infra-43/validate?{RES}", deployments()), Some(body.clone())).await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(v.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(v.body["properties"]["validatedResources"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        sim.call("HEAD", &format!("{}/infra-43?{RES}", deployments()), None).await.status,
        404,
        "validate creates nothing"
    );
    assert_eq!(sim.call("HEAD", &format!("{}/infra-41?{RES}", deployments()), None).await.status, 204);

    let put = sim.call("PUT", &format!("{}/infra-43?{RES}", deployments()), Some(body.clone())).await;
    assert_eq!(put.status, 201);
    let op = put.header("azure-asyncoperation").expect("op").to_string();
    let busy = sim.call("PUT", &format!("{}/infra-43?{RES}", deployments()), Some(body)).await;
    assert_eq!(busy.status, 409);
    assert_eq!(busy.body["error"]["code"], "DeploymentActive");
    let cancel = sim.call("POST", &format!("{}/infra-43/cancel?{RES}", deployments()), None).await;
    assert_eq!(cancel.status, 204);
    assert_eq!(sim.get(&op).await.body["status"], "Canceled");
    let got = sim.get(&format!("{}/infra-43?{RES}", deployments())).await;
    assert_eq!(got.body["properties"]["provisioningState"], "Canceled");
    assert_eq!(sim.world.state("arm/rg-shop").expect("state")["live"], "infra-42", "nothing deployed");
    let again = sim.call("POST", &format!("{}/infra-43/cancel?{RES}", deployments()), None).await;
    assert_eq!(again.status, 409);
}
