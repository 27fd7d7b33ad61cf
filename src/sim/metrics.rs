//! Prometheus metrics of the simulated world at `<health_base>/metrics`, so a real Prometheus can
//! scrape the simulator and alert on it: health per resource, simulated traffic whose error codes
//! follow that health, App Service slots and their builds, and Deployment readiness and images.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use crate::sim::scenario::Scenario;

/// Simulated requests a second each resource serves.
pub const REQUESTS_PER_SECOND: u64 = 10;

/// The Prometheus text exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the metrics need beyond the live world: the builds that break App Service slots (the
/// world only tells a site's production health) and the simulated traffic counters.
#[derive(Debug)]
pub struct SimMetrics {
    /// `appservice/<group>/<site>` → builds that make health fail.
    broken_builds: HashMap<String, Vec<String>>,
    traffic: Mutex<Traffic>,
}

impl SimMetrics {
    /// The metrics state of a scenario's world, its traffic starting now.
    pub fn from_scenario(scenario: &Scenario) -> SimMetrics {
        let broken_builds = scenario
            .appservice
            .sites
            .iter()
            .map(|s| (format!("appservice/{}/{}", s.group, s.name), s.broken.clone()))
            .collect();
        SimMetrics { broken_builds, traffic: Mutex::new(Traffic::new(Instant::now())) }
    }

    fn slot_healthy(&self, key: &str, build: &str) -> bool {
        !self.broken_builds.get(key).is_some_and(|b| b.iter().any(|x| x == build))
    }
}

/// Simulated traffic: every resource serves [`REQUESTS_PER_SECOND`]; time between two scrapes
/// counts under the code the resource answers at the later one (200 healthy, 503 not).
#[derive(Debug)]
struct Traffic {
    last: Instant,
    /// resource → (milliseconds answered 200, milliseconds answered 503).
    served_ms: BTreeMap<String, (u128, u128)>,
}

impl Traffic {
    fn new(start: Instant) -> Traffic {
        Traffic { last: start, served_ms: BTreeMap::new() }
    }

    /// Counts the time since the last call for each resource under its health now; returns the
    /// request totals `(200, 503)` per resource.
    fn advance(&mut self, now: Instant, health: &[(String, bool)]) -> BTreeMap<String, (u64, u64)> {
        let elapsed = now.saturating_duration_since(self.last).as_millis();
        self.last = self.last.max(now);
        for (key, healthy) in health {
            let entry = self.served_ms.entry(key.clone()).or_default();
            if *healthy {
                entry.0 += elapsed;
            } else {
                entry.1 += elapsed;
            }
        }
        let per_ms =
            |ms: u128| u64::try_from(ms * u128::from(REQUESTS_PER_SECOND) / 1000).unwrap_or(u64::MAX);
        health
            .iter()
            .filter_map(|(k, _)| {
                self.served_ms.get(k).map(|(ok, bad)| (k.clone(), (per_ms(*ok), per_ms(*bad))))
            })
            .collect()
    }
}

/// A label value escaped as the text format wants it (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One metric family: its `# HELP`/`# TYPE` lines and samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, String)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family { name, help, kind, samples: Vec::new() }
    }

    fn push(&mut self, labels: Vec<(&'static str, String)>, value: impl ToString) {
        self.samples.push((labels, value.to_string()));
    }

    fn render(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = writeln!(out, "{}{{{}}} {}", self.name, labels.join(","), value);
        }
    }
}

fn int(state: &Value, field: &str) -> i64 {
    state.get(field).and_then(Value::as_i64).unwrap_or(0)
}

/// The exposition text for every resource key (duplicates once), reading health and state
/// through the two lookups the health routes use.
pub fn render(
    metrics: &SimMetrics,
    keys: &[String],
    healthy: impl Fn(&str) -> Option<bool>,
    state: impl Fn(&str) -> Option<Value>,
) -> String {
    render_at(metrics, keys, Instant::now(), healthy, state)
}

fn render_at(
    metrics: &SimMetrics,
    keys: &[String],
    now: Instant,
    healthy: impl Fn(&str) -> Option<bool>,
    state: impl Fn(&str) -> Option<Value>,
) -> String {
    let mut seen = BTreeSet::new();
    let keys: Vec<&String> = keys.iter().filter(|k| seen.insert(k.as_str())).collect();
    let health: Vec<(String, bool)> =
        keys.iter().filter_map(|k| healthy(k).map(|h| ((*k).clone(), h))).collect();
    let totals = metrics.traffic.lock().unwrap_or_else(|e| e.into_inner()).advance(now, &health);

    let mut up = Family::new(
        "rollbook_sim_healthy",
        "gauge",
        "Whether the simulated resource is healthy (1) or not (0).",
    );
    let mut requests = Family::new(
        "rollbook_sim_http_requests_total",
        "counter",
        "Simulated requests served by the resource, by status code (503 while it is unhealthy).",
    );
    for (key, h) in &health {
        up.push(vec![("resource", key.clone())], u8::from(*h));
        let (ok, bad) = totals.get(key).copied().unwrap_or_default();
        requests.push(vec![("resource", key.clone()), ("code", "200".into())], ok);
        requests.push(vec![("resource", key.clone()), ("code", "503".into())], bad);
    }

    let mut slot_up = Family::new(
        "rollbook_sim_appservice_slot_healthy",
        "gauge",
        "Whether the build an App Service slot runs is healthy (1) or not (0); slot=\"production\" is the site.",
    );
    let mut slot_build = Family::new(
        "rollbook_sim_appservice_slot_build_info",
        "gauge",
        "The build an App Service slot runs (always 1).",
    );
    let mut replicas =
        Family::new("rollbook_sim_deployment_replicas", "gauge", "Desired replicas of a Deployment.");
    let mut ready =
        Family::new("rollbook_sim_deployment_replicas_ready", "gauge", "Ready replicas of a Deployment.");
    let mut updated = Family::new(
        "rollbook_sim_deployment_replicas_updated",
        "gauge",
        "Replicas of a Deployment's current template.",
    );
    let mut available = Family::new(
        "rollbook_sim_deployment_replicas_available",
        "gauge",
        "Available replicas of a Deployment.",
    );
    let mut revision =
        Family::new("rollbook_sim_deployment_revision", "gauge", "A Deployment's current revision.");
    let mut paused =
        Family::new("rollbook_sim_deployment_paused", "gauge", "Whether a Deployment's rollout is paused.");
    let mut image = Family::new(
        "rollbook_sim_deployment_image_info",
        "gauge",
        "An image of a Deployment's pod template (always 1).",
    );
    let mut arm_live = Family::new(
        "rollbook_sim_arm_live_deployment_info",
        "gauge",
        "The oldest template deployment whose content is live in a resource group (always 1).",
    );
    let mut logic_current = Family::new(
        "rollbook_sim_logicapp_current_version_info",
        "gauge",
        "The oldest Logic App version whose definition is current (always 1).",
    );
    let mut logic_enabled =
        Family::new("rollbook_sim_logicapp_enabled", "gauge", "Whether a Logic App workflow is enabled.");

    for key in &keys {
        let Some(s) = state(key) else { continue };
        let r = || ("resource", (*key).clone());
        if key.starts_with("appservice/") {
            if let Some(slots) = s.as_object() {
                for (slot, build) in slots {
                    let build = build.as_str().unwrap_or_default();
                    slot_up
                        .push(vec![r(), ("slot", slot.clone())], u8::from(metrics.slot_healthy(key, build)));
                    slot_build.push(vec![r(), ("slot", slot.clone()), ("build", build.to_string())], 1);
                }
            }
        } else if key.starts_with("k8s/") {
            replicas.push(vec![r()], int(&s, "replicas"));
            ready.push(vec![r()], int(&s, "ready"));
            updated.push(vec![r()], int(&s, "updated"));
            available.push(vec![r()], int(&s, "available"));
            revision.push(vec![r()], int(&s, "revision"));
            paused.push(vec![r()], u8::from(s.get("paused").and_then(Value::as_bool).unwrap_or(false)));
            let images: BTreeSet<&str> = s
                .get("images")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for i in images {
                image.push(vec![r(), ("image", i.to_string())], 1);
            }
        } else if key.starts_with("arm/") {
            if let Some(live) = s.get("live").and_then(Value::as_str) {
                arm_live.push(vec![r(), ("deployment", live.to_string())], 1);
            }
        } else if key.starts_with("logicapp/") {
            if let Some(cur) = s.get("current").and_then(Value::as_str) {
                logic_current.push(vec![r(), ("version", cur.to_string())], 1);
            }
            let enabled =
                s.get("state").and_then(Value::as_str).is_none_or(|st| st.eq_ignore_ascii_case("enabled"));
            logic_enabled.push(vec![r()], u8::from(enabled));
        }
    }

    let mut out = String::new();
    for f in [
        &up,
        &requests,
        &slot_up,
        &slot_build,
        &replicas,
        &ready,
        &updated,
        &available,
        &revision,
        &paused,
        &image,
        &arm_live,
        &logic_current,
        &logic_enabled,
    ] {
        f.render(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn scenario(text: &str) -> Scenario {
        Scenario::parse(std::path::Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn traffic_counts_ten_a_second_under_the_code_of_the_health_seen() {
        let t0 = Instant::now();
        let mut t = Traffic::new(t0);
        let key = "appservice/g/s".to_string();
        let a = t.advance(t0 + Duration::from_millis(2500), &[(key.clone(), true)]);
        assert_eq!(a[&key], (25, 0));
        let b = t.advance(t0 + Duration::from_millis(4000), &[(key.clone(), false)]);
        assert_eq!(b[&key], (25, 15));
        // A clock that steps back adds nothing and never goes back.
        let c = t.advance(t0 + Duration::from_millis(3000), &[(key.clone(), false)]);
        assert_eq!(c[&key], (25, 15));
    }

    #[test]
    fn renders_health_traffic_and_slots_once_per_key_escaped() {
        let s = scenario(
            r#"
[[appservice.sites]]
group = "g"
name = "s"
slots = { production = "1.5.0", staging = "1.4.0" }
broken = ["1.5.0"]
"#,
        );
        let m = SimMetrics::from_scenario(&s);
        let keys = vec!["appservice/g/s".to_string(), "appservice/g/s".to_string(), "arm/a\"b".to_string()];
        let one_second_later = m.traffic.lock().unwrap().last + Duration::from_secs(1);
        let text = render_at(
            &m,
            &keys,
            one_second_later,
            |k| Some(k == "arm/a\"b"),
            |k| match k {
                "appservice/g/s" => Some(json!({"production": "1.5.0", "staging": "1.4.0"})),
                _ => Some(json!({"live": "d1"})),
            },
        );
        assert_eq!(text.matches("rollbook_sim_healthy{resource=\"appservice/g/s\"} 0").count(), 1, "{text}");
        assert!(text.contains("rollbook_sim_healthy{resource=\"arm/a\\\"b\"} 1"), "{text}");
        assert!(
            text.contains("rollbook_sim_http_requests_total{resource=\"appservice/g/s\",code=\"503\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("rollbook_sim_http_requests_total{resource=\"appservice/g/s\",code=\"200\"} 0"),
            "{text}"
        );
        assert!(text.contains(
            "rollbook_sim_appservice_slot_healthy{resource=\"appservice/g/s\",slot=\"staging\"} 1"
        ));
        assert!(text.contains(
            "rollbook_sim_appservice_slot_healthy{resource=\"appservice/g/s\",slot=\"production\"} 0"
        ));
        assert!(text.contains(
            "rollbook_sim_appservice_slot_build_info{resource=\"appservice/g/s\",slot=\"production\",build=\"1.5.0\"} 1"
        ));
        assert!(
            text.contains(
                "rollbook_sim_arm_live_deployment_info{resource=\"arm/a\\\"b\",deployment=\"d1\"} 1"
            )
        );
        assert_eq!(text.matches("# TYPE rollbook_sim_healthy gauge").count(), 1);
        assert!(!text.contains("rollbook_sim_deployment_replicas"), "no family without samples: {text}");
    }
}
