//! ARM template validation and lenient (JSONC) deployment bodies: PUT, validate and what-if
//! refuse what ARM refuses with 400 and its envelope before creating anything, over real HTTP;
//! an `arm::redeploy` whose parameters no longer fit the template fails, in the engine and in a
//! `rollbook test` rehearsal through the binary.

use std::path::Path;

use rollbook::sim::{Scenario, Sim, SimHandle};
use serde_json::{Value, json};

use crate::azure_support::{SUB, start};
use crate::support::{rollbook, texts, write};

const RES: &str = "api-version=2025-04-01";

/// A group with one good deployment whose template declares typed parameters.
const WORLD: &str = r#"
[[arm.deployments]]
group = "rg-val"
name = "base"
state = "Succeeded"
timestamp = "2026-11-20T10:00:00Z"
template = { contentVersion = "1.0.0.0", parameters = { sku = { type = "string", allowedValues = ["S1", "P1"] } }, resources = [] }
parameters = { sku = { value = "S1" } }
"#;

fn template() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "sku": { "type": "string", "allowedValues": ["S1", "P1"] },
            "count": { "type": "int", "defaultValue": 1 },
            "enabled": { "type": "bool", "defaultValue": true },
            "tags": { "type": "object", "defaultValue": {} },
            "zones": { "type": "array", "defaultValue": [] },
            "password": { "type": "securestring" },
            "settings": { "type": "secureObject", "defaultValue": {} }
        },
        "resources": [ {
            "type": "Microsoft.Web/serverfarms", "apiVersion": "2024-11-01", "name": "plan",
            "location": "eastus", "sku": { "name": "[parameters('sku')]" }
        } ]
    })
}

fn good_parameters() -> Value {
    json!({ "sku": { "value": "S1" }, "password": { "value": "pw" } })
}

async fn sim() -> SimHandle {
    let scenario = Scenario::parse(Path::new("val.toml"), WORLD).expect("scenario parses");
    Sim::start(scenario, None).await.expect("simulator starts")
}

fn url(sim: &SimHandle, tail: &str) -> String {
    format!(
        "{}/subscriptions/{SUB}/resourcegroups/rg-val/providers/Microsoft.Resources/deployments/{tail}?{RES}",
        sim.arm_endpoint()
    )
}

/// (status, body) of `method` with a raw `body` text.
async fn send(method: reqwest::Method, url: &str, body: String) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, url)
        .bearer_auth("t")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request reaches the simulator");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn deployment(parameters: Value, template: Value) -> String {
    json!({ "properties": { "mode": "Incremental", "template": template, "parameters": parameters } })
        .to_string()
}

async fn history(sim: &SimHandle) -> Vec<String> {
    let list = format!(
        "{}/subscriptions/{SUB}/resourcegroups/rg-val/providers/Microsoft.Resources/deployments?{RES}",
        sim.arm_endpoint()
    );
    let (_, body) = send(reqwest::Method::GET, &list, String::new()).await;
    body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str().map(str::to_string))
        .collect()
}

/// Asserts a 400 with `code` whose details name `target`.
fn refused(answer: &(u16, Value), code: &str, target: &str, words: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 400, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let details = body["error"]["details"].to_string();
    assert!(details.contains(&format!("\"target\":\"{target}\"")), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap_or("").contains(words) || details.contains(words),
        "{body}"
    );
}

#[tokio::test]
async fn put_validate_and_what_if_refuse_parameters_that_do_not_fit_the_template() {
    let sim = sim().await;
    let mut cases: Vec<(Value, &str, &str)> = Vec::new();
    let mut p = good_parameters();
    p.as_object_mut().map(|o| o.remove("password"));
    cases.push((p, "parameters.password", "The value for the template parameter 'password' is not provided"));
    let mut p = good_parameters();
    p["size"] = json!({ "value": 3 });
    cases.push((p, "parameters.size", "are not present in the original template"));
    for (name, bad) in [
        ("sku", json!(1)),
        ("count", json!("3")),
        ("enabled", json!("yes")),
        ("tags", json!([])),
        ("zones", json!({})),
        ("password", json!(42)),
        ("settings", json!("s")),
    ] {
        let mut p = good_parameters();
        p[name] = json!({ "value": bad });
        let target: &'static str = Box::leak(format!("parameters.{name}").into_boxed_str());
        cases.push((p, target, "JToken type is not valid"));
    }
    let mut p = good_parameters();
    p["sku"] = json!({ "value": "F1" });
    cases.push((p, "parameters.sku", "not part of the allowed value(s): 'S1,P1'"));

    for (parameters, target, words) in cases {
        let body = deployment(parameters, template());
        let put = send(reqwest::Method::PUT, &url(&sim, "d1"), body.clone()).await;
        refused(&put, "InvalidTemplate", target, words);
        let validate = send(reqwest::Method::POST, &url(&sim, "d1/validate"), body.clone()).await;
        refused(&validate, "InvalidTemplate", target, words);
        let what_if = send(reqwest::Method::POST, &url(&sim, "d1/whatIf"), body).await;
        refused(&what_if, "InvalidTemplate", target, words);
    }
    assert_eq!(history(&sim).await, ["base"], "nothing was created");

    let ok = send(reqwest::Method::PUT, &url(&sim, "d1"), deployment(good_parameters(), template())).await;
    assert_eq!(ok.0, 201, "{}", ok.1);
}

#[tokio::test]
async fn malformed_resources_are_refused_before_anything_is_created() {
    let sim = sim().await;
    let p = good_parameters();
    let mut t = template();
    t["resources"] = json!({ "plan": {} });
    let a = send(reqwest::Method::PUT, &url(&sim, "d2"), deployment(p.clone(), t)).await;
    refused(&a, "InvalidTemplate", "resources", "'resources' is not valid");
    let mut t = template();
    t["resources"][0].as_object_mut().map(|o| o.remove("apiVersion"));
    let a = send(reqwest::Method::POST, &url(&sim, "d2/validate"), deployment(p.clone(), t)).await;
    refused(&a, "InvalidTemplate", "resources[0]", "Required property 'apiVersion' not found");
    let mut t = template();
    t["resources"][0]["type"] = json!("serverfarms");
    let (status, body) = send(reqwest::Method::PUT, &url(&sim, "d2"), deployment(p, t)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "InvalidTemplateDeployment", "{body}");
    assert_eq!(body["error"]["details"][0]["details"][0]["target"], "resources[0]", "{body}");
    assert_eq!(history(&sim).await, ["base"]);
}

#[tokio::test]
async fn jsonc_bodies_as_az_sends_them_are_accepted() {
    let sim = sim().await;
    // What `az deployment group create --template-file` sends: the JSON properties with the
    // template file's text spliced in behind an unquoted key, comments and all.
    let file = r#"{
  // shop infrastructure
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  contentVersion: "1.0.0.0", /* unquoted, as JSON.NET reads */
  "parameters": { "sku": { "type": "string", "allowedValues": ["S1", "P1"] } },
  "resources": [
    { "type": "Microsoft.Web/serverfarms", "apiVersion": "2024-11-01", "name": "plan", "location": "eastus", },
  ],
}"#;
    let body = format!(
        r#"{{"properties": {{"mode": "Incremental", "parameters": {{"sku": {{"value": "P1"}}}}, template:{file}}}}}"#
    );
    let validate = send(reqwest::Method::POST, &url(&sim, "jc/validate"), body.clone()).await;
    assert_eq!(validate.0, 200, "{}", validate.1);
    let what_if = send(reqwest::Method::POST, &url(&sim, "jc/whatIf"), body.clone()).await;
    assert_eq!(what_if.0, 202, "{}", what_if.1);
    let put = send(reqwest::Method::PUT, &url(&sim, "jc"), body).await;
    assert_eq!(put.0, 201, "{}", put.1);
    assert_eq!(put.1["properties"]["parameters"]["sku"]["value"], "P1");
    // Invalid parameters in a JSONC body are still refused.
    let bad = format!(
        r#"{{"properties": {{"mode": "Incremental", "parameters": {{"sku": {{"value": "F1"}}}}, template:{file}}}}}"#
    );
    refused(
        &send(reqwest::Method::PUT, &url(&sim, "jc2"), bad).await,
        "InvalidTemplate",
        "parameters.sku",
        "allowed",
    );
    // Text that is not even lenient JSON is still a 400 InvalidRequestContent.
    let (status, body) = send(reqwest::Method::PUT, &url(&sim, "jc3"), "{properties: /* open".into()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("InvalidRequestContent")), "{body}");
}

/// infra-41's template now requires `tier`, which its recorded parameters lack.
const DRIFTED: &str = r#"
[[arm.deployments]]
group = "rg-drift"
name = "infra-41"
state = "Succeeded"
timestamp = "2026-11-20T10:00:00Z"
template = { contentVersion = "1.0.0.0", parameters = { sku = { type = "string" }, tier = { type = "string" } }, resources = [] }
parameters = { sku = { value = "S1" } }

[[arm.deployments]]
group = "rg-drift"
name = "infra-42"
state = "Succeeded"
timestamp = "2026-11-21T10:00:00Z"
template = { contentVersion = "1.0.0.0", parameters = { sku = { type = "string" }, tier = { type = "string" } }, resources = [] }
parameters = { sku = { value = "F1" }, tier = { value = "Basic" } }
broken = true
"#;

#[tokio::test(flavor = "multi_thread")]
async fn redeploy_whose_parameters_no_longer_fit_fails_in_the_engine() {
    let az = start(DRIFTED).await;
    let e = az.caught(r#"arm::redeploy(#{ group: "rg-drift", from: "infra-41" })"#).await;
    let message = e["message"].as_str().unwrap_or_default();
    assert!(message.contains("InvalidTemplate") && message.contains("'tier'"), "{e}");
    assert_eq!(
        az.state("arm/rg-drift").map(|s| s["live"].clone()),
        Some(json!("infra-42")),
        "nothing deployed"
    );
}

#[test]
fn redeploy_rehearsal_whose_parameters_no_longer_fit_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/arm-redeploy-last-good.rhai");
    let runbook = std::fs::read_to_string(runbook).expect("runbook exists");
    write(dir.path(), "arm-redeploy-last-good.rhai", &runbook);
    let case = format!(
        "{DRIFTED}\n[[health]]\nurl = \"https://shop.example.com/healthz\"\nfollows = \"arm/rg-drift\"\n\n\
         [test]\nrunbook = \"arm-redeploy-last-good.rhai\"\n\
         params = {{ group = \"rg-drift\", health_url = \"https://shop.example.com/healthz\" }}\n\
         [test.expect]\noutcome = \"succeeded\"\n"
    );
    let file = write(dir.path(), "drift.toml", &case);
    let out = rollbook(&["test", file.to_str().expect("utf-8")]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("FAIL") && stdout.contains("expected `succeeded`, found `failed`"), "{stdout}");
    assert!(stdout.contains("tier"), "the failure names the parameter: {stdout}");
}
