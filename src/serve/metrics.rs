//! The server's counters, rendered in the Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Upper bounds (seconds) of the run duration histogram.
const BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// Every counter of one server.
#[derive(Default)]
pub struct Metrics {
    alerts: Mutex<BTreeMap<(String, String), u64>>,
    runs: Mutex<BTreeMap<(String, String), u64>>,
    calls: Mutex<BTreeMap<(String, String), u64>>,
    in_flight: AtomicI64,
    durations: Mutex<(Vec<u64>, f64, u64)>,
}

fn bump(map: &Mutex<BTreeMap<(String, String), u64>>, a: &str, b: &str) {
    if let Ok(mut m) = map.lock() {
        *m.entry((a.to_string(), b.to_string())).or_default() += 1;
    }
}

/// A label value as the text format escapes it.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// An alert was decided.
    pub fn alert(&self, source: &str, decision: &str) {
        bump(&self.alerts, source, decision);
    }
    /// A run ended.
    pub fn run(&self, route: &str, outcome: &str, seconds: f64) {
        bump(&self.runs, route, outcome);
        if let Ok(mut d) = self.durations.lock() {
            if d.0.is_empty() {
                d.0 = vec![0; BUCKETS.len()];
            }
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    d.0[i] += 1;
                }
            }
            d.1 += seconds;
            d.2 += 1;
        }
    }
    /// A primitive call ended (or was planned).
    pub fn call(&self, primitive: &str, outcome: &str) {
        bump(&self.calls, primitive, outcome);
    }
    /// A run began (`1`) or ended (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::SeqCst);
    }

    /// The text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let pairs = |out: &mut String,
                     name: &str,
                     help: &str,
                     keys: (&str, &str),
                     map: &Mutex<BTreeMap<(String, String), u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            if let Ok(m) = map.lock() {
                for ((a, b), n) in m.iter() {
                    let _ =
                        writeln!(out, "{name}{{{}=\"{}\",{}=\"{}\"}} {n}", keys.0, esc(a), keys.1, esc(b));
                }
            }
        };
        pairs(
            &mut out,
            "rollbook_alerts_received_total",
            "Alerts received, by source and decision.",
            ("source", "decision"),
            &self.alerts,
        );
        pairs(
            &mut out,
            "rollbook_runs_total",
            "Runs ended, by route and outcome.",
            ("route", "outcome"),
            &self.runs,
        );
        let _ = writeln!(
            out,
            "# HELP rollbook_runs_in_flight Runs running now.\n# TYPE rollbook_runs_in_flight gauge\nrollbook_runs_in_flight {}",
            self.in_flight.load(Ordering::SeqCst)
        );
        let _ = writeln!(
            out,
            "# HELP rollbook_run_duration_seconds How long runs took.\n# TYPE rollbook_run_duration_seconds histogram"
        );
        if let Ok(d) = self.durations.lock() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rollbook_run_duration_seconds_bucket{{le=\"{b}\"}} {}",
                    d.0.get(i).copied().unwrap_or(0)
                );
            }
            let _ = writeln!(out, "rollbook_run_duration_seconds_bucket{{le=\"+Inf\"}} {}", d.2);
            let _ = writeln!(out, "rollbook_run_duration_seconds_sum {}", d.1);
            let _ = writeln!(out, "rollbook_run_duration_seconds_count {}", d.2);
        }
        pairs(
            &mut out,
            "rollbook_primitive_calls_total",
            "Primitive calls, by primitive and outcome.",
            ("primitive", "outcome"),
            &self.calls,
        );
        out
    }
}
