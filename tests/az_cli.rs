//! The real Azure CLI (2.9x, from the cached virtualenv) against `rollbook sim serve --tls`,
//! unmodified: cloud registration with endpoint discovery, a service-principal login, web app
//! list/show/restart/stop/start, slot list and swap, a template deployment from a JSONC file
//! (valid, and refused with ARM's error when a parameter does not fit), deployment operations,
//! and AKS credentials.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::azure_support::{SUB, WORLD};
use crate::pyvenv_az::venv;
use crate::support::write;

const TENANT: &str = "72f988bf-0000-4000-8000-00000000a2b1";

/// A `rollbook sim serve --tls` process: its ARM endpoint and CA file (killed on drop).
pub struct Served {
    child: Child,
    /// The ARM endpoint (`https://127.0.0.1:PORT`).
    pub arm: String,
    /// The simulator's CA certificate.
    pub ca: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves the Azure test world (plus an AKS cluster) over TLS from `dir`.
pub fn serve(dir: &Path) -> Served {
    let scenario = write(
        dir,
        "world.toml",
        &format!(
            "{WORLD}\n[[aks.clusters]]\ngroup = \"rg-shop\"\nname = \"aks-prod\"\ncontext = \"prod\"\n\n\
             [[k8s.deployments]]\ncontext = \"prod\"\nnamespace = \"shop\"\nname = \"web\"\nrevisions = [\"shop/web:1.4.0\"]\n"
        ),
    );
    let kubeconfig = dir.join("sim-kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["sim", "serve", "--tls", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sim serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let info: Value = serde_json::from_str(&line).expect("one JSON line");
    let arm = info["arm_endpoint"].as_str().expect("arm_endpoint").to_string();
    assert!(arm.starts_with("https://127.0.0.1:"), "{info}");
    let ca = PathBuf::from(info["ca_file"].as_str().expect("ca_file in the JSON line"));
    assert!(std::fs::read_to_string(&ca).unwrap_or_default().contains("BEGIN CERTIFICATE"), "{info}");
    Served { child, arm, ca }
}

struct Az {
    bin: PathBuf,
    config: PathBuf,
    ca: PathBuf,
}

impl Az {
    /// Runs `az args…`; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .env("AZURE_CONFIG_DIR", &self.config)
            .env("REQUESTS_CA_BUNDLE", &self.ca)
            .env("AZURE_CORE_INSTANCE_DISCOVERY", "false")
            .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
            .env("AZURE_CORE_SURVEY_MESSAGE", "false")
            .env("AZURE_CORE_NO_COLOR", "true")
            .env("AZURE_EXTENSION_USE_DYNAMIC_INSTALL", "no")
            .env_remove("AZURE_CLI_DISABLE_CONNECTION_VERIFICATION")
            .stdin(Stdio::null())
            .output()
            .expect("az runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `az args… -o json`, which must succeed; returns its JSON (null when empty).
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let (ok, stdout, stderr) = self.run(&all);
        assert!(ok, "az {} failed:\n{stderr}", args.join(" "));
        if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap_or(Value::String(stdout))
        }
    }
}

const TEMPLATE: &str = r#"{
  // The shop's plan, as a person writes it: comments and all.
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "sku": { "type": "string", "allowedValues": [ "S1", "P1v3" ] } /* no default */
  },
  "resources": [
    {
      "type": "Microsoft.Web/serverfarms",
      "apiVersion": "2024-11-01",
      "name": "plan",
      "location": "eastus",
      "sku": { "name": "[parameters('sku')]" }
    }
  ]
}
"#;

#[test]
fn az_cli_works_against_the_simulator_unmodified() {
    let venv = venv();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = serve(dir.path());
    let az = Az { bin: venv.join("bin/az"), config: dir.path().join("azure"), ca: served.ca.clone() };

    az.json(&[
        "cloud",
        "register",
        "-n",
        "RollbookSim",
        "--endpoint-resource-manager",
        &format!("{}/", served.arm),
    ]);
    az.json(&["cloud", "set", "-n", "RollbookSim"]);
    let login =
        az.json(&["login", "--service-principal", "-u", "rollbook-app", "-p", "s3cret", "--tenant", TENANT]);
    assert_eq!(login[0]["id"], SUB, "{login}");
    assert_eq!(login[0]["tenantId"], TENANT, "{login}");

    let apps = az.json(&["webapp", "list"]);
    assert_eq!(apps[0]["name"], "shop-web", "{apps}");
    let show = az.json(&["webapp", "show", "-g", "rg-shop", "-n", "shop-web"]);
    assert_eq!(show["state"], "Running", "{show}");
    az.json(&["webapp", "stop", "-g", "rg-shop", "-n", "shop-web"]);
    assert_eq!(az.json(&["webapp", "show", "-g", "rg-shop", "-n", "shop-web"])["state"], "Stopped");
    az.json(&["webapp", "start", "-g", "rg-shop", "-n", "shop-web"]);
    az.json(&["webapp", "restart", "-g", "rg-shop", "-n", "shop-web"]);
    assert_eq!(az.json(&["webapp", "show", "-g", "rg-shop", "-n", "shop-web"])["state"], "Running");

    let slots = az.json(&["webapp", "deployment", "slot", "list", "-g", "rg-shop", "-n", "shop-web"]);
    let mut names: Vec<&str> =
        slots.as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["qa", "staging"], "{slots}");
    az.json(&[
        "webapp",
        "deployment",
        "slot",
        "swap",
        "-g",
        "rg-shop",
        "-n",
        "shop-web",
        "--slot",
        "staging",
    ]);
    let show = az.json(&["webapp", "show", "-g", "rg-shop", "-n", "shop-web"]);
    assert_eq!(show["siteConfig"]["linuxFxVersion"], "DOCKER|shop-web:1.4.0", "the swap took effect: {show}");

    let template = write(dir.path(), "plan.jsonc", TEMPLATE);
    let template = template.to_str().expect("utf-8");
    let created = az.json(&[
        "deployment",
        "group",
        "create",
        "-g",
        "rg-shop",
        "-n",
        "infra-50",
        "--template-file",
        template,
        "--parameters",
        "sku=S1",
    ]);
    assert_eq!(created["properties"]["provisioningState"], "Succeeded", "{created}");
    let (ok, _, stderr) = az.run(&[
        "deployment",
        "group",
        "create",
        "-g",
        "rg-shop",
        "-n",
        "infra-51",
        "--template-file",
        template,
        "--parameters",
        "sku=F1",
    ]);
    assert!(!ok, "a value outside allowedValues is refused");
    assert!(stderr.contains("InvalidTemplate") && stderr.contains("sku"), "{stderr}");
    let (ok, _, stderr) = az.run(&[
        "deployment",
        "group",
        "validate",
        "-g",
        "rg-shop",
        "-n",
        "infra-52",
        "--template-file",
        template,
    ]);
    assert!(!ok && stderr.contains("sku"), "a missing required parameter is refused: {stderr}");

    let ops = az.json(&["deployment", "operation", "group", "list", "-g", "rg-shop", "-n", "infra-50"]);
    assert_eq!(ops.as_array().map(Vec::len), Some(1), "{ops}");
    assert_eq!(ops[0]["properties"]["targetResource"]["resourceName"], "plan", "{ops}");

    let kubeconfig = dir.path().join("aks-kubeconfig");
    az.json(&[
        "aks",
        "get-credentials",
        "-g",
        "rg-shop",
        "-n",
        "aks-prod",
        "--file",
        kubeconfig.to_str().expect("utf-8"),
    ]);
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written");
    // The cluster's own API server, at the root of its own HTTPS port (no path prefix).
    assert!(text.contains("current-context: aks-prod"), "{text}");
    assert!(text.contains("server: https://127.0.0.1:") && !text.contains("/k8s/"), "{text}");
}
