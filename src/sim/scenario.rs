//! The scenario file (docs/scenarios.md): a simulated world, its faults and an optional test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Dur;

/// The default subscription of simulated Azure resources.
pub const DEFAULT_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";

/// One scenario file, parsed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario rehearses, in words.
    #[serde(default)]
    pub name: Option<String>,
    /// Kubernetes resources.
    #[serde(default)]
    pub k8s: K8sSection,
    /// AKS clusters whose credentials reach simulated contexts.
    #[serde(default)]
    pub aks: AksSection,
    /// App Service sites.
    #[serde(default)]
    pub appservice: AppServiceSection,
    /// Resource-group template deployments.
    #[serde(default)]
    pub arm: ArmSection,
    /// Logic Apps workflows.
    #[serde(default)]
    pub logicapp: LogicAppSection,
    /// External health URLs that follow a simulated resource.
    #[serde(default)]
    pub health: Vec<HealthUrl>,
    /// Prometheus queries and their answers, optionally following a simulated resource.
    #[serde(default)]
    pub prometheus: Vec<PrometheusEntry>,
    /// GitOps objects (Argo CD Applications, Flux Kustomizations and HelmReleases).
    #[serde(default)]
    pub gitops: crate::sim::k8s::gitops::GitopsSection,
    /// Faults injected into HTTP answers.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Simulator settings.
    #[serde(default)]
    pub sim: SimSettings,
    /// The test `rollbook test` runs.
    #[serde(default)]
    pub test: Option<TestSpec>,
    /// Where the file was read from (set by the loader; test paths are relative to it).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// `[k8s]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sSection {
    /// `[[k8s.deployments]]`.
    #[serde(default)]
    pub deployments: Vec<K8sDeployment>,
}

fn default_context() -> String {
    "sim".into()
}
fn default_namespace() -> String {
    "default".into()
}
fn default_replicas() -> i64 {
    1
}
fn default_subscription() -> String {
    DEFAULT_SUBSCRIPTION.into()
}

/// `[[k8s.deployments]]`: a Deployment and its revision history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sDeployment {
    /// Kubeconfig context of the simulated cluster (default `sim`).
    #[serde(default = "default_context")]
    pub context: String,
    /// Namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Deployment name.
    pub name: String,
    /// Desired replicas (default 1).
    #[serde(default = "default_replicas")]
    pub replicas: i64,
    /// Image per revision, oldest first; the last is live.
    pub revisions: Vec<String>,
    /// Images whose pods never become ready.
    #[serde(default)]
    pub broken: Vec<String>,
    /// Extra containers beyond the first, as `name = image` (each revision keeps them).
    #[serde(default)]
    pub sidecars: BTreeMap<String, String>,
    /// Whether the Deployment starts paused.
    #[serde(default)]
    pub paused: bool,
    /// `spec.revisionHistoryLimit` (default 10).
    #[serde(default)]
    pub revision_history_limit: Option<i64>,
    /// How pods of a broken image fail: `CrashLoopBackOff` (the default) or `ImagePullBackOff`.
    #[serde(default)]
    pub broken_reason: Option<String>,
    /// `spec.progressDeadlineSeconds` (default 600).
    #[serde(default)]
    pub progress_deadline_seconds: Option<i64>,
    /// How long ago the live revision was rolled out (default: just now); a broken rollout
    /// dated back beyond its progress deadline starts out exceeded.
    #[serde(default)]
    pub rollout_age: Option<Dur>,
}

/// `[aks]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AksSection {
    /// `[[aks.clusters]]`.
    #[serde(default)]
    pub clusters: Vec<AksCluster>,
}

/// `[[aks.clusters]]`: an AKS cluster whose kubeconfig reaches a simulated context.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AksCluster {
    /// Subscription id (default all zeros).
    #[serde(default = "default_subscription")]
    pub subscription: String,
    /// Resource group.
    pub group: String,
    /// Cluster name.
    pub name: String,
    /// The simulated Kubernetes context it reaches.
    pub context: String,
}

/// `[appservice]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppServiceSection {
    /// `[[appservice.sites]]`.
    #[serde(default)]
    pub sites: Vec<AppServiceSite>,
}

/// `[[appservice.sites]]`: a site, its slots and the build each runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppServiceSite {
    /// Subscription id (default all zeros).
    #[serde(default = "default_subscription")]
    pub subscription: String,
    /// Resource group.
    pub group: String,
    /// Site name.
    pub name: String,
    /// Slot name → build it runs; `production` is the site itself.
    pub slots: BTreeMap<String, String>,
    /// Builds that make health fail.
    #[serde(default)]
    pub broken: Vec<String>,
}

/// `[arm]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSection {
    /// `[[arm.deployments]]`, oldest first.
    #[serde(default)]
    pub deployments: Vec<ArmDeployment>,
}

/// `[[arm.deployments]]`: one entry of a resource group's deployment history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmDeployment {
    /// Subscription id (default all zeros).
    #[serde(default = "default_subscription")]
    pub subscription: String,
    /// Resource group.
    pub group: String,
    /// Deployment name.
    pub name: String,
    /// `Succeeded`, `Failed` or `Canceled`.
    pub state: String,
    /// RFC 3339 timestamp.
    pub timestamp: String,
    /// The template (any JSON/TOML table).
    #[serde(default)]
    pub template: Option<serde_json::Value>,
    /// The parameters (`{ name = { value = … } }`).
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    /// Whether this deployment's content makes health fail.
    #[serde(default)]
    pub broken: bool,
    /// Deployment mode (default `Incremental`).
    #[serde(default)]
    pub mode: Option<String>,
}

/// `[logicapp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicAppSection {
    /// `[[logicapp.workflows]]`.
    #[serde(default)]
    pub workflows: Vec<LogicAppWorkflow>,
}

/// `[[logicapp.workflows]]`: a consumption workflow and its versions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicAppWorkflow {
    /// Subscription id (default all zeros).
    #[serde(default = "default_subscription")]
    pub subscription: String,
    /// Resource group.
    pub group: String,
    /// Workflow name.
    pub name: String,
    /// Version ids, oldest first; the last is current.
    pub versions: Vec<String>,
    /// Versions whose definition makes health fail.
    #[serde(default)]
    pub broken: Vec<String>,
    /// `Enabled` (default) or `Disabled`.
    #[serde(default)]
    pub state: Option<String>,
}

/// `[[health]]`: an external URL that is healthy iff the followed resource is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthUrl {
    /// The URL runbooks probe.
    pub url: String,
    /// The resource key it follows (§6 keys).
    pub follows: String,
}

/// `[[prometheus]]`: the answer to one instant query on one Prometheus base URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusEntry {
    /// The server base URL runbooks query.
    pub url: String,
    /// The PromQL query (compared without whitespace).
    pub query: String,
    /// The answer while healthy.
    pub value: f64,
    /// The resource key whose health the answer follows (§6 keys).
    #[serde(default)]
    pub follows: Option<String>,
    /// The answer while `follows` is unhealthy.
    #[serde(default)]
    pub broken_value: Option<f64>,
}

impl PrometheusEntry {
    /// Whether this entry answers `query` (whitespace is not significant).
    pub fn answers(&self, query: &str) -> bool {
        let squash = |q: &str| q.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        squash(&self.query) == squash(query)
    }
}

/// `[[faults]]`: an injected answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Glob on the request path (`*` matches any run of characters).
    pub path: String,
    /// Status to answer (500, 503, 429, 409…).
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` for a 429/503.
    #[serde(default)]
    pub retry_after: Option<Dur>,
    /// Close the connection without an answer.
    #[serde(default)]
    pub drop: bool,
    /// How many matching requests get the fault (default 1), then normal answers.
    #[serde(default)]
    pub times: Option<u32>,
    /// The request takes effect first, then the fault is answered.
    #[serde(default)]
    pub applied: bool,
    /// Extra latency for the matching answers.
    #[serde(default)]
    pub latency: Option<Dur>,
}

/// `[sim]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    /// Added to every answer.
    #[serde(default)]
    pub latency: Option<Dur>,
    /// How many polls a long-running ARM operation takes before it finishes (default 2).
    #[serde(default)]
    pub lro_polls: Option<u32>,
    /// How many controller steps a rollout takes to become ready (default 1).
    #[serde(default)]
    pub rollout_steps: Option<u32>,
}

/// `[test]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// The runbook, relative to the scenario file.
    pub runbook: String,
    /// Params as `-p` would give them.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// Answer every approval with yes.
    #[serde(default)]
    pub yes: bool,
    /// What must hold afterwards.
    #[serde(default)]
    pub expect: Option<TestExpect>,
}

/// `[test.expect]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestExpect {
    /// `succeeded`, `failed` or `denied`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Mutating calls that took effect, in order.
    #[serde(default)]
    pub mutations: Option<Vec<String>>,
    /// Resource key → expected fields.
    #[serde(default)]
    pub state: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

/// A scenario that could not be loaded: where and what.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match §6.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The content is well-formed but inconsistent (an unknown `follows` target, a duplicate).
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending entry (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = crate::model::read_input_file(path)
            .map_err(|source| ScenarioError::Read { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Parses and validates scenario text; `path` is used in messages and to resolve the test runbook.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|span| line_col(text, span.start)).unwrap_or((1, 1));
            ScenarioError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        scenario.path = Some(path.to_path_buf());
        scenario.validate(text)?;
        Ok(scenario)
    }

    /// Every resource key the scenario defines (§6 keys).
    pub fn resource_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for d in &self.k8s.deployments {
            keys.push(format!("k8s/{}/{}/{}", d.context, d.namespace, d.name));
        }
        for s in &self.appservice.sites {
            keys.push(format!("appservice/{}/{}", s.group, s.name));
        }
        let mut groups: Vec<String> =
            self.arm.deployments.iter().map(|d| format!("arm/{}", d.group)).collect();
        groups.dedup();
        keys.extend(groups);
        for w in &self.logicapp.workflows {
            keys.push(format!("logicapp/{}/{}", w.group, w.name));
        }
        keys
    }

    fn validate(&self, text: &str) -> Result<(), ScenarioError> {
        let path = self.path.clone().unwrap_or_default();
        let invalid = |needle: &str, message: String| ScenarioError::Invalid {
            path: path.clone(),
            line: find_line(text, needle),
            message,
        };
        let keys = self.resource_keys();
        let mut seen = std::collections::BTreeSet::new();
        for key in &keys {
            if !seen.insert(key.as_str()) && !key.starts_with("arm/") {
                let name = key.rsplit('/').next().unwrap_or(key);
                return Err(invalid(&format!("\"{name}\""), format!("`{key}` is defined twice")));
            }
        }
        for h in &self.health {
            if !keys.iter().any(|k| k == &h.follows) {
                let mut hint = String::new();
                if let Some(best) = crate::model::nearest(&h.follows, keys.iter().map(String::as_str)) {
                    hint = format!(" (did you mean `{best}`?)");
                }
                return Err(invalid(&h.follows, format!("unknown `follows` target `{}`{hint}", h.follows)));
            }
        }
        for p in &self.prometheus {
            if let Some(follows) = &p.follows
                && !keys.iter().any(|k| k == follows)
            {
                let mut hint = String::new();
                if let Some(best) = crate::model::nearest(follows, keys.iter().map(String::as_str)) {
                    hint = format!(" (did you mean `{best}`?)");
                }
                return Err(invalid(follows, format!("unknown `follows` target `{follows}`{hint}")));
            }
            if p.follows.is_some() != p.broken_value.is_some() {
                return Err(invalid(
                    &p.url,
                    format!("[[prometheus]] `{}`: give `follows` and `broken_value` together", p.query),
                ));
            }
            if !p.url.starts_with("http://") && !p.url.starts_with("https://") {
                return Err(invalid(&p.url, format!("[[prometheus]] url `{}` must be http(s)", p.url)));
            }
        }
        if let Err((needle, message)) = crate::sim::k8s::gitops::validate(&self.gitops, &keys) {
            return Err(invalid(&needle, message));
        }
        for d in &self.k8s.deployments {
            if d.revisions.is_empty() {
                return Err(invalid(
                    &format!("\"{}\"", d.name),
                    format!("deployment `{}` needs at least one revision", d.name),
                ));
            }
            if let Some(reason) = &d.broken_reason
                && reason != "CrashLoopBackOff"
                && reason != "ImagePullBackOff"
            {
                return Err(invalid(
                    "broken_reason",
                    format!(
                        "deployment `{}`: broken_reason must be `CrashLoopBackOff` or `ImagePullBackOff`, not `{reason}`",
                        d.name
                    ),
                ));
            }
            if let Some(secs) = d.progress_deadline_seconds
                && !(1..=i64::from(i32::MAX)).contains(&secs)
            {
                return Err(invalid(
                    "progress_deadline_seconds",
                    format!(
                        "deployment `{}`: progress_deadline_seconds must be between 1 and {}, not {secs}",
                        d.name,
                        i32::MAX
                    ),
                ));
            }
        }
        for w in &self.logicapp.workflows {
            if w.versions.is_empty() {
                return Err(invalid(
                    &format!("\"{}\"", w.name),
                    format!("workflow `{}` needs at least one version", w.name),
                ));
            }
        }
        for s in &self.appservice.sites {
            if !s.slots.contains_key("production") {
                return Err(invalid(
                    &format!("\"{}\"", s.name),
                    format!("site `{}` needs a `production` slot", s.name),
                ));
            }
        }
        for d in &self.arm.deployments {
            if !["Succeeded", "Failed", "Canceled"].contains(&d.state.as_str()) {
                return Err(invalid(
                    &format!("\"{}\"", d.state),
                    format!(
                        "deployment `{}` has state `{}`: use Succeeded, Failed or Canceled",
                        d.name, d.state
                    ),
                ));
            }
        }
        if let Some(expect) = self.test.as_ref().and_then(|t| t.expect.as_ref()) {
            if let Some(outcome) = &expect.outcome
                && !["succeeded", "failed", "denied"].contains(&outcome.as_str())
            {
                return Err(invalid(
                    "outcome",
                    format!("outcome `{outcome}`: use succeeded, failed or denied"),
                ));
            }
            let gitops_keys = crate::sim::k8s::gitops::resource_keys(&self.gitops);
            for key in expect.state.keys() {
                if !keys.iter().chain(&gitops_keys).any(|k| k == key) {
                    return Err(invalid(key, format!("[test.expect.state] names unknown resource `{key}`")));
                }
            }
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

fn find_line(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "web 1.5.0 broke production"

[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 3
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
broken = ["shop/web:1.5.0"]

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0" }
broken = ["1.5.0"]

[[health]]
url = "https://shop.example.com/healthz"
follows = "appservice/rg-shop/shop-web"

[[faults]]
method = "POST"
path = "*/slotsswap"
status = 500
times = 2
"#;

    #[test]
    fn parses_the_contract_example() {
        let s = Scenario::parse(Path::new("x.toml"), EXAMPLE).unwrap();
        assert_eq!(s.k8s.deployments[0].replicas, 3);
        assert_eq!(s.appservice.sites[0].slots["staging"], "1.4.0");
        assert_eq!(s.faults[0].times, Some(2));
        assert_eq!(
            s.resource_keys(),
            vec!["k8s/prod/shop/web".to_string(), "appservice/rg-shop/shop-web".to_string()]
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = "name = \"x\"\n[[k8s.deployments]]\nname = \"web\"\nrevisons = [\"a\"]\n";
        match Scenario::parse(Path::new("bad.toml"), text).unwrap_err() {
            ScenarioError::Parse { line, message, .. } => {
                assert_eq!(line, 4);
                assert!(message.contains("revisons"), "{message}");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn unknown_follows_target_is_named_with_its_line() {
        let text = "[[appservice.sites]]\ngroup = \"g\"\nname = \"s\"\nslots = { production = \"1\" }\n\n[[health]]\nurl = \"http://x\"\nfollows = \"appservice/g/t\"\n";
        let err = Scenario::parse(Path::new("bad.toml"), text).unwrap_err();
        match &err {
            ScenarioError::Invalid { line, message, .. } => {
                assert_eq!(*line, 8);
                assert!(message.contains("appservice/g/t"));
                assert!(message.contains("did you mean `appservice/g/s`"), "{message}");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn bad_toml_is_a_parse_error() {
        let err = Scenario::parse(Path::new("bad.toml"), "name = \n").unwrap_err();
        assert!(matches!(err, ScenarioError::Parse { line: 1, .. }), "{err}");
    }
}
