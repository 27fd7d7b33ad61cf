//! Shared setup of the Azure tests: the simulator (with `[[faults]]`) over loopback, settings
//! pointing the ARM client at it with a test token, a skipping clock, and runbook runs.

use std::path::Path;
use std::sync::Arc;

use rollbook::engine::{Engine, RunOptions, RunReport};
use rollbook::providers::{Settings, SkipClock};
use rollbook::sim::{RecordedRequest, Scenario, Sim, SimHandle};
use serde_json::Value;

use crate::support::write;

/// The bearer token every Azure test run uses (searched for in the token grep test).
pub const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.rollbook-test-secret-7c1d.signature";

/// The default subscription of scenarios.
pub const SUB: &str = "00000000-0000-0000-0000-000000000000";

/// One site, four deployments (infra-42 broken), one workflow (its current version broken).
pub const WORLD: &str = r#"
name = "azure"

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0", qa = "1.3.0" }
broken = ["1.5.0"]

[[arm.deployments]]
group = "rg-shop"
name = "infra-39"
state = "Succeeded"
timestamp = "2026-11-18T10:00:00Z"
template = { contentVersion = "1.0.0.0", parameters = { sku = { type = "string" } }, resources = [] }
parameters = { sku = { value = "S0" } }

[[arm.deployments]]
group = "rg-shop"
name = "infra-40"
state = "Failed"
timestamp = "2026-11-19T10:00:00Z"
template = { contentVersion = "1.0.0.0", parameters = { sku = { type = "string" } }, resources = [] }
parameters = { sku = { value = "X9" } }

[[arm.deployments]]
group = "rg-shop"
name = "infra-41"
state = "Succeeded"
timestamp = "2026-11-20T10:00:00Z"
template = { "$schema" = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", contentVersion = "1.0.0.0", parameters = { sku = { type = "string" } }, resources = [ { type = "Microsoft.Web/serverfarms", apiVersion = "2024-11-01", name = "plan", location = "eastus", sku = { name = "[parameters('sku')]" } } ] }
parameters = { sku = { value = "S1" } }

[[arm.deployments]]
group = "rg-shop"
name = "infra-42"
state = "Succeeded"
timestamp = "2026-11-21T10:00:00Z"
template = { "$schema" = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", contentVersion = "1.0.0.0", parameters = { sku = { type = "string" } }, resources = [ { type = "Microsoft.Web/serverfarms", apiVersion = "2024-11-01", name = "plan", location = "eastus", sku = { name = "[parameters('sku')]" } } ] }
parameters = { sku = { value = "P1v3" } }
broken = true

[[logicapp.workflows]]
group = "rg-shop"
name = "orders"
versions = ["08585000000000000001", "08585000000000000002"]
broken = ["08585000000000000002"]

[[health]]
url = "https://shop.example.com/healthz"
follows = "appservice/rg-shop/shop-web"

[[health]]
url = "https://infra.example.com/healthz"
follows = "arm/rg-shop"

[[health]]
url = "https://orders.example.com/healthz"
follows = "logicapp/rg-shop/orders"
"#;

/// A simulator of [`WORLD`] plus `extra` TOML (faults, `[sim]`), with an engine to run runbooks.
pub struct Azure {
    /// The running simulator.
    pub sim: SimHandle,
    /// The clock of every run: waits are recorded, not slept.
    pub clock: Arc<SkipClock>,
    dir: tempfile::TempDir,
    engine: Engine,
}

/// Starts the simulator of `WORLD` + `extra`.
pub async fn start(extra: &str) -> Azure {
    let text = format!("{WORLD}\n{extra}");
    let scenario = Scenario::parse(Path::new("azure.toml"), &text).expect("scenario parses");
    let sim = Sim::start(scenario, None).await.expect("simulator starts");
    Azure {
        sim,
        clock: Arc::new(SkipClock::default()),
        dir: tempfile::tempdir().expect("tempdir"),
        engine: Engine::new(),
    }
}

impl Azure {
    /// Settings pointing the ARM client at the simulator with [`TOKEN`].
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), self.sim.arm_endpoint());
        s.env.insert("ROLLBOOK_AZURE_TOKEN".into(), TOKEN.into());
        s.env.insert("AZURE_SUBSCRIPTION_ID".into(), SUB.into());
        s
    }

    /// Runs `script` live with extra settings.
    pub async fn run_with_settings(&self, script: &str, extra: &[(&str, &str)]) -> RunReport {
        let path = write(self.dir.path(), "runbook.rhai", script);
        let runbook = self.engine.load(&path).expect("runbook loads");
        let mut opts = RunOptions::new(self.dir.path().join("state"));
        opts.settings = self.settings();
        for (k, v) in extra {
            opts.settings.env.insert((*k).into(), (*v).into());
        }
        opts.clock = self.clock.clone();
        self.engine.run(&runbook, &[], opts).await.expect("run starts")
    }

    /// Runs `script` (live, or as a dry-run).
    pub async fn run_with(&self, script: &str, dry_run: bool) -> RunReport {
        let path = write(self.dir.path(), "runbook.rhai", script);
        let runbook = self.engine.load(&path).expect("runbook loads");
        let mut opts = RunOptions::new(self.dir.path().join("state"));
        opts.settings = self.settings();
        opts.clock = self.clock.clone();
        opts.dry_run = dry_run;
        opts.yes = true;
        opts.url_rewrites = self.sim.url_rewrites();
        self.engine.run(&runbook, &[], opts).await.expect("run starts")
    }

    /// Runs `script` live and returns its value, failing the test if the run failed.
    pub async fn value(&self, script: &str) -> Value {
        let report = self.run_with(script, false).await;
        assert_eq!(
            report.status,
            rollbook::run::journal::RunStatus::Succeeded,
            "run failed: {:?}",
            report.error
        );
        report.value.unwrap_or(Value::Null)
    }

    /// Runs `expr` (live) and returns the error map it throws, or `"no error"`.
    pub async fn caught(&self, expr: &str) -> Value {
        self.value(&format!(
            "let caught = \"no error\";\ntry {{ {expr}; }} catch (e) {{ caught = e; }}\ncaught"
        ))
        .await
    }

    /// Dry-runs `script`: returns the report and checks the world did not change.
    pub async fn dry(&self, script: &str, keys: &[&str]) -> RunReport {
        let before: Vec<Option<Value>> = keys.iter().map(|k| self.state(k)).collect();
        let report = self.run_with(script, true).await;
        assert_eq!(report.status, rollbook::run::journal::RunStatus::Succeeded, "{:?}", report.error);
        let after: Vec<Option<Value>> = keys.iter().map(|k| self.state(k)).collect();
        assert_eq!(before, after, "a dry-run changed the world");
        report
    }

    /// Resumes run `run_id` of this simulator's state directory (`rollbook resume`).
    pub async fn resume(&self, run_id: &str) -> RunReport {
        let state = self.dir.path().join("state");
        let (runbook, params, from) =
            self.engine.prepare_resume(&state, run_id, false, &[]).expect("the run can be resumed");
        let mut opts = RunOptions::new(state);
        opts.settings = self.settings();
        opts.clock = self.clock.clone();
        opts.yes = true;
        opts.url_rewrites = self.sim.url_rewrites();
        opts.resume = Some(from);
        self.engine.run(&runbook, &params, opts).await.expect("resume starts")
    }

    /// Adopts another test's journal as if that run had happened against this simulator.
    pub fn adopt(&self, journal: &Path) {
        let runs = self.dir.path().join("state").join("runs");
        std::fs::create_dir_all(&runs).expect("runs dir");
        let name = journal.file_name().expect("journal file name");
        std::fs::copy(journal, runs.join(name)).expect("copy journal");
    }

    /// Observable state of a resource key.
    pub fn state(&self, key: &str) -> Option<Value> {
        self.sim.resource_state(key)
    }

    /// The simulator's request record.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sim.requests()
    }

    /// Recorded requests with `method` whose path ends with `suffix` (case-insensitive).
    pub fn requests_to(&self, method: &str, suffix: &str) -> Vec<RecordedRequest> {
        let suffix = suffix.to_ascii_lowercase();
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.to_ascii_lowercase().ends_with(&suffix))
            .collect()
    }
}

/// Cuts a finished run's journal just after it started calling `primitive`, as if the process
/// had been killed between sending that call and journaling its outcome.
pub fn crash_after_sending(report: &RunReport, primitive: &str) {
    let text = std::fs::read_to_string(&report.journal).expect("journal");
    let mut kept = String::new();
    for line in text.lines() {
        kept.push_str(line);
        kept.push('\n');
        if line.contains("\"type\":\"call_started\"")
            && line.contains(&format!("\"primitive\":\"{primitive}\""))
        {
            break;
        }
    }
    std::fs::write(&report.journal, kept).expect("rewrite journal");
}

/// Whether the journal says a call in doubt was checked and found `applied`.
pub fn verified(report: &RunReport, applied: bool) -> bool {
    let text = std::fs::read_to_string(&report.journal).unwrap_or_default();
    text.lines()
        .any(|l| l.contains("\"type\":\"call_verified\"") && l.contains(&format!("\"applied\":{applied}")))
}
