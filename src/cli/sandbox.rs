//! Rehearsal plumbing shared by `run --sandbox` and `rollbook test`: start the simulator for a
//! scenario, point every connection setting at it, and say what changed in the simulated world.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use console::style;
use serde_json::Value;

use crate::model::clock::{Clock, ScaledClock};
use crate::providers::Settings;
pub(crate) use crate::sim::Scenario;
use crate::sim::{Sim, SimHandle};

/// Loads the scenario of a sandbox run.
pub(crate) fn load_scenario(path: &Path) -> Result<Scenario, String> {
    Scenario::load(path).map_err(|e| e.to_string())
}

/// The scenario's `[test] params`, as `-p KEY=VALUE` texts.
pub(crate) fn test_params(scenario: &Scenario) -> Vec<(String, String)> {
    let Some(test) = &scenario.test else { return Vec::new() };
    test.params.iter().map(|(k, v)| (k.clone(), super::rehearse::param_text(v))).collect()
}

/// A running simulator for one scenario, and the world as it was before the run.
pub(super) struct Sandbox {
    /// The simulator.
    pub sim: SimHandle,
    /// The scenario it was loaded from.
    pub scenario: Scenario,
    kubeconfig: PathBuf,
    before: BTreeMap<String, (Option<Value>, Option<bool>)>,
}

/// Credentials and endpoints that must never leak into a rehearsal from the real environment.
const REAL_CREDENTIALS: &[&str] = &[
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
];

impl Sandbox {
    /// How much faster than real time rehearsals run (a runbook's "15s" interval takes 300 ms).
    pub(super) const SPEEDUP: f64 = 50.0;

    /// The clock a rehearsal runs on: [`Sandbox::SPEEDUP`] times faster than real time, so a
    /// runbook's intervals and timeouts keep their proportions but take a fraction.
    pub(super) fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(ScaledClock::new(Self::SPEEDUP))
    }

    /// Starts the simulator for `scenario`; its kubeconfig is written under `work_dir`.
    pub(super) async fn start(scenario: Scenario, work_dir: &Path) -> Result<Sandbox, String> {
        let sim = Sim::start(scenario.clone(), None)
            .await
            .map_err(|e| format!("cannot start the simulator: {e}"))?;
        crate::run::create_private_dir(work_dir)
            .map_err(|e| format!("cannot create `{}`: {e}", work_dir.display()))?;
        let kubeconfig = work_dir.join(format!("sandbox-kubeconfig-{}", sim.addr().port()));
        std::fs::write(&kubeconfig, sim.kubeconfig_yaml())
            .map_err(|e| format!("cannot write `{}`: {e}", kubeconfig.display()))?;
        let before = snapshot(&sim, &scenario);
        Ok(Sandbox { sim, scenario, kubeconfig, before })
    }

    /// `base` with ARM, Kubernetes and credentials pointed at the simulator, nothing real left.
    pub(super) fn settings(&self, base: &Settings) -> Settings {
        let mut settings = base.clone();
        for key in REAL_CREDENTIALS {
            settings.env.remove(*key);
        }
        // Real Prometheus tokens stay out of rehearsals too.
        settings.env.retain(|k, _| !k.starts_with("ROLLBOOK_PROMETHEUS_TOKEN"));
        settings.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), self.sim.arm_endpoint());
        settings.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "rollbook-sandbox".into());
        let subscription = self.default_subscription();
        settings.env.insert("AZURE_SUBSCRIPTION_ID".into(), subscription);
        settings.env.insert("KUBECONFIG".into(), self.kubeconfig.display().to_string());
        settings.kubeconfig = Some(self.kubeconfig.clone());
        settings.sandbox = Some(self.sim.arm_endpoint());
        settings
    }

    fn default_subscription(&self) -> String {
        let s = &self.scenario;
        s.appservice
            .sites
            .iter()
            .map(|x| x.subscription.clone())
            .chain(s.arm.deployments.iter().map(|x| x.subscription.clone()))
            .chain(s.logicapp.workflows.iter().map(|x| x.subscription.clone()))
            .chain(s.aks.clusters.iter().map(|x| x.subscription.clone()))
            .next()
            .unwrap_or_else(|| crate::sim::scenario::DEFAULT_SUBSCRIPTION.to_string())
    }

    /// URL rewrites so the scenario's health and Prometheus URLs reach the simulator.
    pub(super) fn url_rewrites(&self) -> Vec<(String, String)> {
        self.sim.url_rewrites()
    }

    /// What changed since the start: per resource key, the fields that differ and health.
    pub(super) fn changes(&self) -> Vec<Change> {
        let after = snapshot(&self.sim, &self.scenario);
        let mut changes = Vec::new();
        for (key, (state_before, health_before)) in &self.before {
            let (state_after, health_after) = after.get(key).cloned().unwrap_or((None, None));
            let mut fields = Vec::new();
            if let (Some(Value::Object(b)), Some(Value::Object(a))) = (state_before, &state_after) {
                for (field, new) in a {
                    let old = b.get(field).cloned().unwrap_or(Value::Null);
                    if &old != new
                        && !matches!(
                            field.as_str(),
                            "healthy"
                                | "generation"
                                | "deployments"
                                | "versions"
                                | "live_matches"
                                | "updated"
                                | "ready"
                                | "available"
                        )
                    {
                        fields.push((field.clone(), old, new.clone()));
                    }
                }
            }
            if !fields.is_empty() || health_before != &health_after {
                changes.push(Change { key: key.clone(), fields, health: (*health_before, health_after) });
            }
        }
        changes
    }

    /// Health of every resource key now.
    pub(super) fn health(&self) -> Vec<(String, Option<bool>)> {
        self.scenario
            .resource_keys()
            .into_iter()
            .map(|k| {
                let h = self.sim.healthy(&k);
                (k, h)
            })
            .collect()
    }

    /// Removes the sandbox's kubeconfig.
    pub(super) async fn stop(self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        self.sim.shutdown().await;
    }
}

/// One resource that changed in the simulated world.
pub(super) struct Change {
    /// Resource key.
    pub key: String,
    /// (field, before, after).
    pub fields: Vec<(String, Value, Value)>,
    /// Health before and after.
    pub health: (Option<bool>, Option<bool>),
}

fn snapshot(sim: &SimHandle, scenario: &Scenario) -> BTreeMap<String, (Option<Value>, Option<bool>)> {
    scenario
        .resource_keys()
        .into_iter()
        .map(|k| {
            let state = sim.resource_state(&k);
            let health = sim.healthy(&k);
            (k, (state, health))
        })
        .collect()
}

fn health_word(h: Option<bool>) -> console::StyledObject<&'static str> {
    match h {
        Some(true) => style("healthy").green(),
        Some(false) => style("failing").red(),
        None => style("unknown").dim(),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// Prints the sandbox banner and the health of every simulated resource.
pub(super) fn print_start(sandbox: &Sandbox, scenario_path: &Path) {
    let name = sandbox.scenario.name.clone().unwrap_or_else(|| scenario_path.display().to_string());
    errln!(
        "{} {} {}",
        style("sandbox").magenta().bold(),
        style(name).bold(),
        style(format!(
            "(simulator at {}; waits run {}× faster)",
            sandbox.sim.arm_endpoint(),
            Sandbox::SPEEDUP
        ))
        .dim()
    );
    for (key, health) in sandbox.health() {
        errln!("  {:<8} {key}", health_word(health));
    }
}

/// Prints what the run changed in the simulated world.
pub(super) fn print_changes(sandbox: &Sandbox) {
    let changes = sandbox.changes();
    errln!();
    if changes.is_empty() {
        errln!("{} nothing changed in the simulated world", style("sandbox").magenta().bold());
        return;
    }
    errln!("{} what changed in the simulated world:", style("sandbox").magenta().bold());
    for c in changes {
        let health = if c.health.0 != c.health.1 {
            format!("  {} → {}", health_word(c.health.0), health_word(c.health.1))
        } else {
            format!("  {}", health_word(c.health.1))
        };
        errln!("  {}{health}", style(&c.key).bold());
        for (field, old, new) in c.fields {
            errln!("      {field}: {} → {}", show(&old), style(show(&new)).cyan());
        }
    }
}
