//! Benchmark of `rollbook serve` against the simulator (run by `bench/run.sh`; prints Markdown
//! rows for BENCHMARKS.md):
//!
//! 1. latency from an Alertmanager webhook request arriving to the run's first mutating request
//!    (the slot swap) reaching the simulator, over 200 alerts sent one at a time;
//! 2. a burst of 1,000 distinct alerts in 10 s (100 payloads of 10): every alert decided, no run
//!    lost (each ends), `max_runs` held (runs in flight sampled from `/metrics`), and the peak
//!    RSS of `serve`.
//!
//! `cargo run --release --example serve_bench -- [--rollbook target/release/rollbook] [--smoke]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rollbook::sim::{Scenario, Sim, SimHandle};
use serde_json::{Value, json};

const TOKEN: &str = "bench-token";
const MAX_RUNS: usize = 4;

/// `rollbook serve`, killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9095)
}

fn world(sites: usize) -> String {
    let mut s = String::from("name = \"serve bench\"\n[sim]\nlro_polls = 0\n");
    for i in 0..sites {
        s += &format!(
            "[[appservice.sites]]\ngroup = \"rg-bench\"\nname = \"site{i}\"\nslots = {{ production = \"2.0.{i}\", staging = \"1.0.{i}\" }}\nbroken = [\"2.0.{i}\"]\n"
        );
    }
    s
}

const SWAP: &str = r#"const RUNBOOK = #{ name: "bench-swap", version: "1.0.0",
    params: #{ site: #{ type: "string" } }, scope: ["appservice/*/*"] };
stage("swap", || appservice::swap(#{ group: "rg-bench", site: params.site, slot: "staging" }));
"#;

const HOLD: &str = r#"const RUNBOOK = #{ name: "bench-hold", version: "1.0.0",
    params: #{ site: #{ type: "string" } } };
let slots = appservice::slots(#{ group: "rg-bench", site: params.site });
sleep("200ms");
info(`site ${params.site} has ${slots.len()} slots`);
"#;

fn config(port: u16) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
token_env = "ROLLBOOK_SERVE_TOKEN"
max_runs = {MAX_RUNS}
queue = 2000

[[route]]
name = "swap"
source = "alertmanager"
match = {{ alertname = "SiteDown" }}
runbook = "swap.rhai"
params = {{ site = "{{{{labels.site}}}}" }}
cooldown = "0s"

[[route]]
name = "hold"
source = "alertmanager"
match = {{ alertname = "Burst" }}
runbook = "hold.rhai"
params = {{ site = "{{{{labels.site}}}}" }}
cooldown = "0s"
"#
    )
}

fn payload(alertname: &str, sites: &[usize], batch: usize) -> Value {
    let alerts: Vec<Value> = sites
        .iter()
        .map(|i| {
            json!({"status": "firing", "labels": {"alertname": alertname, "site": format!("site{i}"), "batch": batch.to_string()},
                "annotations": {}, "startsAt": "2026-11-29T03:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "", "fingerprint": format!("{alertname}-{i}-{batch}")})
        })
        .collect();
    json!({"version": "4", "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"), "truncatedAlerts": 0,
        "status": "firing", "receiver": "rollbook", "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname}, "commonAnnotations": {}, "externalURL": "", "alerts": alerts})
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

async fn metric(client: &reqwest::Client, base: &str, series: &str) -> f64 {
    let Ok(resp) = client.get(format!("{base}/metrics")).send().await else { return 0.0 };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Index of the first recorded request after `from` that is the swap of `site`.
fn swap_seen(sim: &SimHandle, site: usize, from: usize) -> Option<usize> {
    let want = format!("/sites/site{site}/slotsswap");
    sim.requests()
        .iter()
        .skip(from)
        .position(|r| r.method == "POST" && r.path.ends_with(&want))
        .map(|p| p + from)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let rollbook = args
        .iter()
        .position(|a| a == "--rollbook")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/rollbook"));
    let (latency_alerts, payloads, per_payload) = if smoke { (10, 5, 10) } else { (200, 100, 10) };
    let burst_alerts = payloads * per_payload;

    let sites = latency_alerts.max(burst_alerts);
    let scenario = match Scenario::parse(Path::new("serve-bench.toml"), &world(sites)) {
        Ok(s) => s,
        Err(e) => return eprintln!("serve_bench: {e}"),
    };
    let sim = match Sim::start(scenario, None).await {
        Ok(s) => s,
        Err(e) => return eprintln!("serve_bench: {e}"),
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return eprintln!("serve_bench: {e}"),
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    for (name, text) in [("swap.rhai", SWAP), ("hold.rhai", HOLD), ("serve.toml", &config(port))] {
        if let Err(e) = std::fs::write(dir.path().join(name), text) {
            return eprintln!("serve_bench: {e}");
        }
    }
    let child = Command::new(&rollbook)
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("serve.toml"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("ROLLBOOK_SERVE_TOKEN", TOKEN)
        .env("ROLLBOOK_ARM_ENDPOINT", sim.arm_endpoint())
        .env("ROLLBOOK_AZURE_TOKEN", "bench")
        .env("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let serve = match child {
        Ok(c) => Serve(c),
        Err(e) => return eprintln!("serve_bench: cannot start {}: {e}", rollbook.display()),
    };
    let pid = serve.0.id();
    let client = reqwest::Client::new();
    let ready = Instant::now();
    while client.get(format!("{base}/readyz")).send().await.map(|r| r.status().is_success()).ok()
        != Some(true)
    {
        if ready.elapsed() > Duration::from_secs(30) {
            return eprintln!("serve_bench: rollbook serve did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let post = |body: Value| {
        client.post(format!("{base}/v1/alerts/alertmanager")).bearer_auth(TOKEN).json(&body).send()
    };

    // 1. Latency: one alert at a time; the next once the previous run has ended.
    let mut latencies = Vec::new();
    for i in 0..latency_alerts {
        let from = sim.requests().len();
        let t0 = Instant::now();
        let resp = match post(payload("SiteDown", &[i], 0)).await {
            Ok(r) => r,
            Err(e) => return eprintln!("serve_bench: alert {i}: {e}"),
        };
        let answer: Value = resp.json().await.unwrap_or_default();
        let run_id = answer["alerts"][0]["run_id"].as_str().unwrap_or_default().to_string();
        let seen = loop {
            if swap_seen(&sim, i, from).is_some() {
                break t0.elapsed();
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return eprintln!("serve_bench: alert {i} never swapped: {answer}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push(seen.as_secs_f64() * 1000.0);
        loop {
            let Ok(r) = client.get(format!("{base}/v1/runs/{run_id}")).bearer_auth(TOKEN).send().await else {
                break;
            };
            let text = r.text().await.unwrap_or_default();
            if text.contains("\"run_finished\"") {
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let median = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);

    // 2. Burst: 100 payloads of 10 distinct alerts, one payload every 100 ms; a 429 is sent
    // again (as Alertmanager does).
    let started = Instant::now();
    let mut decided = 0usize;
    let mut refused = 0usize;
    let mut decisions = std::collections::BTreeMap::<String, usize>::new();
    let mut in_flight_max = 0.0f64;
    for b in 0..payloads {
        let due = started + Duration::from_millis(100 * b as u64);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let sites: Vec<usize> = (b * per_payload..(b + 1) * per_payload).collect();
        loop {
            let Ok(resp) = post(payload("Burst", &sites, b)).await else {
                return eprintln!("serve_bench: post failed");
            };
            if resp.status().as_u16() == 429 {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let v: Value = resp.json().await.unwrap_or_default();
            for a in v["alerts"].as_array().into_iter().flatten() {
                decided += 1;
                *decisions.entry(a["decision"].as_str().unwrap_or("?").to_string()).or_default() += 1;
            }
            break;
        }
        in_flight_max = in_flight_max.max(metric(&client, &base, "rollbook_runs_in_flight").await);
    }
    let sent_in = started.elapsed();
    // Every run ends; sample runs in flight meanwhile.
    let mut ended;
    loop {
        in_flight_max = in_flight_max.max(metric(&client, &base, "rollbook_runs_in_flight").await);
        ended = metric(&client, &base, "rollbook_runs_total{route=\"hold\"").await;
        if ended as usize >= burst_alerts || started.elapsed() > Duration::from_secs(900) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = started.elapsed();
    let hwm = rss_kib(pid, "VmHWM:") as f64 / 1024.0;
    let succeeded = metric(&client, &base, "rollbook_runs_total{route=\"hold\",outcome=\"succeeded\"}").await;
    drop(serve);

    println!("| # | measurement | result | target |");
    println!("|---|---|---|---|");
    println!(
        "| S1 | webhook arrival → first mutating request at the simulator, {} alerts one at a time | median {median:.1} ms, p99 {p99:.1} ms (min {:.1}, max {:.1}) | median ≤ 20 ms |",
        latencies.len(),
        latencies.first().copied().unwrap_or(f64::NAN),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "| S2 | {burst_alerts} distinct alerts, {payloads} payloads of {per_payload}, sent over {:.1} s | {decided} decided ({}), {refused} payloads answered 429 and sent again | all decided |",
        sent_in.as_secs_f64(),
        decisions.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "| S3 | the burst's runs | {ended} ended ({succeeded} succeeded) after {:.1} s; at most {in_flight_max} in flight | none lost, ≤ max_runs = {MAX_RUNS} |",
        drained.as_secs_f64()
    );
    println!("| S4 | peak RSS of `rollbook serve` (VmHWM) | {hwm:.1} MiB | < 128 MiB |");
}
