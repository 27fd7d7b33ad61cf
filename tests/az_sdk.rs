//! The real Azure SDK for Python (`azure-mgmt-web`, `azure-mgmt-resource`, from the cached
//! virtualenv) against `rollbook sim serve --tls`, unmodified: its normal bearer-token policy
//! over HTTPS, paging, a long-running slot swap polled to the end, a restart, and ARM's template
//! error surfacing as the SDK's `HttpResponseError` with ARM's code.

use std::process::Command;

use serde_json::Value;

use crate::az_cli::serve;
use crate::azure_support::SUB;
use crate::pyvenv_az::venv;
use crate::support::write;

/// The script: a token credential of its own (the SDK asks it for a token and sends it as a
/// bearer header, as with `DefaultAzureCredential`), then the operations an operator scripts.
const SCRIPT: &str = r#"
import json, sys
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resource import ResourceManagementClient
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import CsmSlotEntity

base, sub = sys.argv[1], sys.argv[2]

class Token:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("sdk-test-token", 4102444800)

scopes = [base + "/.default"]
web = WebSiteManagementClient(Token(), sub, base_url=base, credential_scopes=scopes)
arm = ResourceManagementClient(Token(), sub, base_url=base, credential_scopes=scopes)
out = {}
out["sites"] = sorted(s.name for s in web.web_apps.list())
out["site_state"] = web.web_apps.get("rg-shop", "shop-web").state
out["slots"] = sorted(s.name for s in web.web_apps.list_slots("rg-shop", "shop-web"))
web.web_apps.begin_swap_slot_with_production(
    "rg-shop", "shop-web", CsmSlotEntity(target_slot="staging", preserve_vnet=True)
).result()
web.web_apps.restart("rg-shop", "shop-web")
out["deployments"] = sorted(d.name for d in arm.deployments.list_by_resource_group("rg-shop"))
try:
    arm.deployments.begin_create_or_update(
        "rg-shop", "bad-params",
        {"properties": {"mode": "Incremental",
            "template": {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                         "contentVersion": "1.0.0.0",
                         "parameters": {"sku": {"type": "string", "allowedValues": ["S1", "P1v3"]}},
                         "resources": []},
            "parameters": {"sku": {"value": "X9"}}}},
    ).result()
    out["bad"] = "accepted"
except HttpResponseError as e:
    out["bad"] = {"status": e.status_code, "code": e.error.code if e.error else None}
print(json.dumps(out))
"#;

#[test]
fn the_azure_sdk_for_python_works_against_the_simulator_unmodified() {
    let venv = venv();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = serve(dir.path());
    let script = write(dir.path(), "sdk.py", SCRIPT);
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(&served.arm)
        .arg(SUB)
        .env("REQUESTS_CA_BUNDLE", &served.ca)
        .env_remove("AZURE_CLI_DISABLE_CONNECTION_VERIFICATION")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed:\n{stderr}\n{stdout}");
    let got: Value = serde_json::from_str(stdout.trim()).expect("one JSON line from the script");
    assert_eq!(got["sites"], serde_json::json!(["shop-web"]), "{got}");
    assert_eq!(got["site_state"], "Running", "{got}");
    let slots = got["slots"].as_array().expect("slots").iter().filter_map(Value::as_str).collect::<Vec<_>>();
    assert!(slots.iter().any(|s| s.ends_with("staging")), "{got}");
    assert!(got["deployments"].as_array().expect("deployments").len() >= 4, "{got}");
    assert_eq!(got["bad"]["status"], 400, "ARM refuses a parameter outside allowedValues: {got}");
    assert_eq!(got["bad"]["code"], "InvalidTemplate", "{got}");
}
