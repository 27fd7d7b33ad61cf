//! `rollbook serve` as a real process against the simulator: alerts from Alertmanager and Azure
//! Monitor start runbook runs through routes; dedup, cooldown, resolved alerts, plan mode,
//! approvals through `rollbook approve`, metrics, and the runs being ordinary runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollbook::run::journal::{Event, Record, read_journal};
use serde_json::{Value, json};

use super::support::write;
use super::support::{LiveSim, SUB};

/// The world: one App Service site whose production runs a broken build, and a cluster (for
/// Lease locks).
pub const WORLD: &str = r#"
[sim]
lro_polls = 0

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0" }
broken = ["1.5.0"]

[[appservice.sites]]
group = "rg-shop"
name = "shop-api"
slots = { production = "2.1.0", staging = "2.0.0" }

[[k8s.deployments]]
context = "prod"
namespace = "shop"
name = "web"
replicas = 1
revisions = ["shop/web:1.4.0", "shop/web:1.5.0"]
"#;

/// Swaps a site's slots in a stage; asks first when `ask`; holds the run `hold` after the swap.
pub const RUNBOOK: &str = r#"
const RUNBOOK = #{
    name: "swap-back",
    version: "1.0.0",
    params: #{
        group: #{ type: "string" },
        site: #{ type: "string" },
        ask: #{ type: "bool", default_value: false },
        hold: #{ type: "duration", default_value: "0s" },
        ask_after: #{ type: "bool", default_value: false },
    },
    scope: ["appservice/rg-shop/*"],
};
let t = #{ group: params.group, site: params.site, slot: "staging" };
if params.ask {
    approve(`swap production of ${params.site} back?`);
}
stage("swap", || appservice::swap(t), || appservice::swap(t));
sleep(params.hold);
if params.ask_after {
    approve(`keep ${params.site} swapped?`);
}
"swapped"
"#;

/// A route config for `RUNBOOK` (`runbooks/swap.rhai`) plus `extra` TOML.
pub fn config(extra: &str) -> String {
    format!(
        r#"
[server]
max_runs = 2
queue = 8

[[route]]
name = "web-down"
source = "alertmanager"
match = {{ alertname = "SiteDown", severity = "=~critical|page" }}
runbook = "runbooks/swap.rhai"
params = {{ group = "{{{{labels.group}}}}", site = "{{{{labels.site}}}}" }}
{extra}
"#
    )
}

/// A running `rollbook serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub addr: String,
    pub state: PathBuf,
    pub stderr: Arc<Mutex<String>>,
    pub token: Option<String>,
}

/// A temp folder with `runbooks/swap.rhai` and `serve.toml`.
pub fn folder(config_text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
    write(&dir.path().join("runbooks"), "swap.rhai", RUNBOOK);
    write(dir.path(), "serve.toml", config_text);
    dir
}

/// `rollbook serve` pointed at `live`, with the config in `dir`.
pub fn serve_cmd(live: &LiveSim, dir: &Path, state: &Path, args: &[&str]) -> Command {
    let mut c = live.rollbook("serve", state);
    c.arg("--config").arg(dir.join("serve.toml"));
    if !args.contains(&"--listen") {
        c.arg("--listen").arg("127.0.0.1:0");
    }
    c.args(args);
    c.env_remove("ROLLBOOK_SERVE_TOKEN");
    c
}

impl Server {
    /// Starts it and waits for its first line (the address it listens on).
    pub fn start(mut cmd: Command, state: &Path, token: Option<&str>) -> Server {
        if let Some(t) = token {
            cmd.env("ROLLBOOK_SERVE_TOKEN", t);
        }
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start rollbook serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let sink = stderr.clone();
            let mut pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = out.read_to_string(&mut rest);
        });
        let first: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("serve did not start: {line:?}\nstderr: {}", stderr.lock().unwrap());
            }
        };
        let addr = first["listen"].as_str().unwrap().to_string();
        Server {
            child,
            url: format!("http://{addr}"),
            addr,
            state: state.to_path_buf(),
            stderr,
            token: token.map(String::from),
        }
    }

    /// An HTTP request; returns the status and body.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
        http(&self.addr, method, path, body, self.token.as_deref())
    }

    /// POSTs JSON; returns the status and the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (code, text) = self.request("POST", path, Some(body.to_string().as_bytes()));
        (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Sends an Alertmanager payload; returns the status and its decisions.
    pub fn alert(&self, payload: &Value) -> (u16, Value) {
        self.post("/v1/alerts/alertmanager", payload)
    }

    /// The journal of `run_id` once it has ended.
    pub fn finished(&self, run_id: &str) -> Vec<Record> {
        wait_finished(&self.state, run_id, &self.stderr)
    }

    /// Waits until the server counted `n` ended runs (their claims and cooldowns recorded).
    pub fn ended(&self, n: usize) {
        let want = format!("rollbook_run_duration_seconds_count {n}\n");
        wait_until("the server to count the runs", || {
            self.request("GET", "/metrics", None).1.contains(&want)
        });
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(&self.child, "TERM");
        self.child.wait().unwrap()
    }

    /// What it wrote on stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `SIG<name>` to a child.
pub fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(ok.success(), "kill -{name} failed");
}

/// A plain HTTP/1.1 request over loopback.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&[u8]>, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.unwrap_or(b"");
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    // The server may answer (413) and close before it has read a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    let body =
        if text.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body };
    (code, body)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits (bounded) until run `run_id`'s journal ends; returns its records.
pub fn wait_finished(state: &Path, run_id: &str, log: &Mutex<String>) -> Vec<Record> {
    let path = state.join("runs").join(format!("{run_id}.jsonl"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(read) = read_journal(&path)
            && read.records.iter().any(|r| matches!(r.event, Event::RunFinished { .. }))
        {
            return read.records;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} did not finish; serve log:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The status a journal ended with.
pub fn status(records: &[Record]) -> String {
    records
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::RunFinished { status, .. } => Some(status.as_str().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "incomplete".into())
}

/// An Alertmanager v4 payload.
pub fn am(alerts: Vec<Value>) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"SiteDown\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "rollbook",
        "groupLabels": { "alertname": "SiteDown" },
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    })
}

/// One firing alert for `site`.
pub fn firing(fingerprint: &str, site: &str) -> Value {
    json!({
        "status": "firing",
        "labels": { "alertname": "SiteDown", "severity": "critical", "group": "rg-shop", "site": site },
        "annotations": { "summary": format!("{site} is down") },
        "startsAt": "2026-11-29T02:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": fingerprint,
    })
}

/// The one decision of a one-alert answer.
pub fn decision(answer: &Value) -> (String, Option<String>) {
    let d = &answer["alerts"][0];
    (d["decision"].as_str().unwrap_or_default().to_string(), d["run_id"].as_str().map(String::from))
}

/// Swaps the simulator received for `site`.
pub fn swaps(live: &LiveSim, site: &str) -> usize {
    live.sim
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.path.contains(&format!("/sites/{site}/"))
                && r.path.ends_with("/slotsswap")
        })
        .count()
}

pub fn run_cli(live: &LiveSim, sub: &str, state: &Path, args: &[&str]) -> Output {
    live.rollbook(sub, state).args(args).output().unwrap()
}

pub fn started_event(records: &[Record]) -> Value {
    serde_json::to_value(&records[0].event).unwrap()
}

#[test]
fn an_alertmanager_alert_starts_a_run_that_is_an_ordinary_run() {
    let dir = folder(&config(""));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let (code, answer) = server.alert(&am(vec![firing("fp-1", "shop-web")]));
    assert_eq!(code, 202, "{answer}");
    let (d, run) = decision(&answer);
    assert_eq!(d, "started", "{answer}");
    assert_eq!(answer["alerts"][0]["route"], "web-down");
    let run = run.unwrap();
    let records = server.finished(&run);
    assert_eq!(status(&records), "succeeded", "{}", server.log());
    assert_eq!(swaps(&live, "shop-web"), 1);
    // The journal names the trigger.
    let first = started_event(&records);
    assert_eq!(first["trigger"]["source"], "alertmanager");
    assert_eq!(first["trigger"]["route"], "web-down");
    assert_eq!(first["trigger"]["fingerprint"], "fp-1");
    assert_eq!(first["trigger"]["labels"]["site"], "shop-web");
    assert_eq!(first["params"]["site"], "shop-web");
    // `runs list` and `runs show` read it like any run; the API says the same.
    let out = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["runs", "list", "--output", "json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["id"], run.as_str());
    assert_eq!(runs[0]["status"], "succeeded");
    let (code, body) = server.request("GET", "/v1/runs", None);
    assert_eq!(code, 200);
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api[0]["id"], run.as_str());
    let (code, body) = server.request("GET", &format!("/v1/runs/{run}"), None);
    assert_eq!(code, 200);
    let shown: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown.as_array().unwrap().len(), records.len());
    // Metrics count the alert and the run.
    server.ended(1);
    let (code, metrics) = server.request("GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("rollbook_alerts_received_total{source=\"alertmanager\",decision=\"started\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rollbook_runs_total{route=\"web-down\",outcome=\"succeeded\"} 1"), "{metrics}");
    assert!(
        metrics.contains("rollbook_primitive_calls_total{primitive=\"appservice::swap\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rollbook_run_duration_seconds_count 1"), "{metrics}");
    assert!(metrics.contains("rollbook_runs_in_flight 0"), "{metrics}");
    assert_eq!(server.request("GET", "/healthz", None).0, 200);
    assert_eq!(server.request("GET", "/readyz", None).0, 200);
}

#[test]
fn an_azure_monitor_alert_fills_params_from_its_target() {
    let extra = r#"
[[route]]
name = "azure-web"
source = "azure-monitor"
match = { alertRule = "shop-web-5xx", monitorCondition = "Fired" }
runbook = "runbooks/swap.rhai"
params = { group = "{{target.group}}", site = "{{target.name}}" }
"#;
    let dir = folder(&config(extra));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let payload = |condition: &str| {
        json!({
            "schemaId": "azureMonitorCommonAlertSchema",
            "data": {
                "essentials": {
                    "alertId": format!("/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/b9569717-bc32-442f-add5-83a997729330"),
                    "alertRule": "shop-web-5xx",
                    "severity": "Sev1",
                    "signalType": "Metric",
                    "monitorCondition": condition,
                    "monitoringService": "Platform",
                    "alertTargetIDs": [format!("/subscriptions/{SUB}/resourceGroups/rg-shop/providers/Microsoft.Web/sites/shop-web")],
                    "originAlertId": "3f2d4487-b0fc-4125-8bd5-7ad17384221e_PipeLineAlertRG_microsoft.insights_metricAlerts_WCUS-R2-Gen2_-117781227",
                    "firedDateTime": "2026-11-29T02:00:00.000Z",
                    "description": "",
                    "essentialsVersion": "1.0",
                    "alertContextVersion": "1.0"
                },
                "alertContext": {}
            }
        })
    };
    let (code, answer) = server.post("/v1/alerts/azure-monitor", &payload("Fired"));
    assert_eq!(code, 202, "{answer}");
    let (d, run) = decision(&answer);
    assert_eq!(d, "started", "{answer}");
    assert_eq!(answer["alerts"][0]["route"], "azure-web");
    let records = server.finished(&run.unwrap());
    assert_eq!(status(&records), "succeeded", "{}", server.log());
    assert_eq!(started_event(&records)["trigger"]["source"], "azure-monitor");
    assert_eq!(swaps(&live, "shop-web"), 1);
    let (code, answer) = server.post("/v1/alerts/azure-monitor", &payload("Resolved"));
    assert_eq!(code, 202);
    assert_eq!(decision(&answer).0, "resolved_ignored", "{answer}");
}

#[test]
fn dedup_cooldown_resolved_and_no_route() {
    // `hold` keeps the first run going while the same alert arrives again.
    let dir = folder(&config("cooldown = \"1h\"").replace(
        "site = \"{{labels.site}}\" }",
        "site = \"{{labels.site}}\", hold = \"{{annotations.hold}}\" }",
    ));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let mut alert = firing("fp-dup", "shop-web");
    alert["annotations"]["hold"] = json!("1h");
    let (_, first) = server.alert(&am(vec![alert.clone()]));
    let (d, run) = decision(&first);
    assert_eq!(d, "started", "{first}");
    let run = run.unwrap();
    wait_until("the swap", || swaps(&live, "shop-web") == 1);
    // The same alert while its run is going: deduplicated, naming the run.
    let (code, again) = server.alert(&am(vec![alert.clone()]));
    assert_eq!(code, 202);
    assert_eq!(decision(&again), ("deduplicated".to_string(), Some(run.clone())), "{again}");
    // Resolved alerts never start runs; alerts no route takes are said so.
    let mut resolved = firing("fp-other", "shop-api");
    resolved["status"] = json!("resolved");
    let mut other = firing("fp-nomatch", "shop-api");
    other["labels"]["severity"] = json!("info");
    let (_, answer) = server.alert(&am(vec![resolved, other]));
    assert_eq!(answer["alerts"][0]["decision"], "resolved_ignored", "{answer}");
    assert_eq!(answer["alerts"][1]["decision"], "no_route", "{answer}");
    assert_eq!(swaps(&live, "shop-web"), 1);
    let _ = run;
}

#[test]
fn cooldown_holds_after_a_run_with_the_same_params_ends() {
    let dir = folder(&config("cooldown = \"1h\""));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let (_, first) = server.alert(&am(vec![firing("fp-a", "shop-web")]));
    let run = decision(&first).1.unwrap();
    server.finished(&run);
    server.ended(1);
    // Another alert (another fingerprint) with the same params: cooldown.
    let (_, second) = server.alert(&am(vec![firing("fp-b", "shop-web")]));
    assert_eq!(decision(&second).0, "cooldown", "{second}");
    // Other params are not cooling down.
    let (_, third) = server.alert(&am(vec![firing("fp-c", "shop-api")]));
    assert_eq!(decision(&third).0, "started", "{third}");
    server.finished(&decision(&third).1.unwrap());
    assert_eq!(swaps(&live, "shop-web"), 1);
    assert_eq!(swaps(&live, "shop-api"), 1);
    let (_, metrics) = server.request("GET", "/metrics", None);
    assert!(metrics.contains("decision=\"cooldown\"} 1"), "{metrics}");
}

#[test]
fn plan_mode_changes_nothing_and_keeps_the_plan_in_the_journal() {
    let dir = folder(&config("mode = \"plan\""));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let (_, answer) = server.alert(&am(vec![firing("fp-plan", "shop-web")]));
    let run = decision(&answer).1.unwrap();
    let records = server.finished(&run);
    assert_eq!(status(&records), "succeeded");
    assert_eq!(swaps(&live, "shop-web"), 0, "plan mode sent a swap");
    let (code, body) = server.request("GET", &format!("/v1/runs/{run}"), None);
    assert_eq!(code, 200);
    let shown: Value = serde_json::from_str(&body).unwrap();
    let planned: Vec<&Value> =
        shown.as_array().unwrap().iter().filter(|r| r["type"] == "call_planned").collect();
    assert_eq!(planned.len(), 1, "{body}");
    assert_eq!(planned[0]["primitive"], "appservice::swap");
    assert_eq!(shown[0]["mode"], "dry-run");
    server.ended(1);
    let (_, metrics) = server.request("GET", "/metrics", None);
    assert!(metrics.contains("rollbook_runs_total{route=\"web-down\",outcome=\"planned\"} 1"), "{metrics}");
}

#[test]
fn approval_required_waits_for_rollbook_approve_and_deny() {
    let dir = folder(
        &config("approval = \"required\"")
            .replace("site = \"{{labels.site}}\" }", "site = \"{{labels.site}}\", ask = \"true\" }"),
    );
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, Some("s3cret"));
    let approve = |run: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rollbook"))
            .args(["approve", run, "--by", "alice", "--server", &server.url])
            .args(extra)
            .env("ROLLBOOK_SERVE_TOKEN", "s3cret")
            .output()
            .unwrap()
    };
    // Approved.
    let (_, a) = server.alert(&am(vec![firing("fp-yes", "shop-web")]));
    let run = decision(&a).1.unwrap();
    wait_until("the approval question", || {
        state.join("serve/approvals").join(format!("{run}.pending")).exists()
    });
    assert_eq!(swaps(&live, "shop-web"), 0, "swapped before the approval");
    let out = approve(&run, &["--comment", "looks right"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let records = server.finished(&run);
    assert_eq!(status(&records), "succeeded", "{}", server.log());
    let approval = records.iter().find_map(|r| match &r.event {
        Event::Approval { approved, by, user, comment, .. } => {
            Some((*approved, by.clone(), user.clone(), comment.clone()))
        }
        _ => None,
    });
    assert_eq!(approval, Some((true, "server".into(), Some("alice".into()), Some("looks right".into()))));
    assert_eq!(swaps(&live, "shop-web"), 1);
    // Answering again: the run waits for nothing (exit 2, said why).
    let out = approve(&run, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not waiting"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Denied.
    let (_, a) = server.alert(&am(vec![firing("fp-no", "shop-api")]));
    let run = decision(&a).1.unwrap();
    wait_until("the approval question", || {
        state.join("serve/approvals").join(format!("{run}.pending")).exists()
    });
    let out = approve(&run, &["--deny"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let records = server.finished(&run);
    assert_eq!(status(&records), "denied");
    assert_eq!(swaps(&live, "shop-api"), 0);
    server.ended(2);
    let (_, metrics) = server.request("GET", "/metrics", None);
    assert!(metrics.contains("rollbook_runs_total{route=\"web-down\",outcome=\"denied\"} 1"), "{metrics}");
}

#[test]
fn runs_started_through_the_api_and_a_full_queue() {
    let dir = folder(&config("").replace("max_runs = 2\nqueue = 8", "max_runs = 1\nqueue = 1"));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let hold = |site: &str| json!({ "runbook": "runbooks/swap.rhai", "params": { "group": "rg-shop", "site": site, "hold": "1h" } });
    let (code, a) = server.post("/v1/runs", &hold("shop-web"));
    assert_eq!(code, 202, "{a}");
    let (code, b) = server.post("/v1/runs", &hold("shop-api"));
    assert_eq!(code, 202, "{b}");
    // One running, one queued: the next is refused.
    let (code, c) = server.post("/v1/runs", &hold("shop-web"));
    assert_eq!(code, 429, "{c}");
    let (code, d) = server.alert(&am(vec![firing("fp-full", "shop-api")]));
    assert_eq!(code, 429, "{d}");
    // A runbook no route names is refused.
    let (code, e) = server.post("/v1/runs", &json!({ "runbook": "/etc/passwd", "params": {} }));
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("no route"), "{e}");
    wait_until("the first swap", || swaps(&live, "shop-web") == 1);
    let (_, metrics) = server.request("GET", "/metrics", None);
    assert!(metrics.contains("rollbook_runs_in_flight 1"), "{metrics}");
    assert_eq!(swaps(&live, "shop-api"), 0, "max_runs = 1 let a second run start");
}

#[test]
fn notifications_go_to_slack_teams_and_json_webhooks_retried_and_never_fail_a_run() {
    use axum::extract::{Path as AxPath, State};
    type Seen = Arc<Mutex<Vec<(String, Value)>>>;
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let receiver = super::support::serve_in_background(move || async move {
        axum::Router::new()
            .route(
                "/{kind}",
                axum::routing::post(
                    |State(seen): State<Seen>, AxPath(kind): AxPath<String>, body: axum::Json<Value>| async move {
                        let mut s = seen.lock().unwrap();
                        let first = !s.iter().any(|(k, _)| *k == kind);
                        s.push((kind, body.0));
                        // The first request to each hook fails: it is tried again.
                        if first { axum::http::StatusCode::INTERNAL_SERVER_ERROR } else { axum::http::StatusCode::OK }
                    },
                ),
            )
            .with_state(recorded)
    });
    let hooks = format!(
        r#"
[[notify]]
url = "{receiver}/slack"
format = "slack"

[[notify]]
url = "{receiver}/teams"
format = "teams"
events = ["finished"]

[[notify]]
url = "{receiver}/json"
format = "json"

[[notify]]
url = "http://127.0.0.1:9/nobody-listens"
format = "json"
"#
    );
    let dir = folder(&format!("{}{hooks}", config("")));
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let (_, a) = server.alert(&am(vec![firing("fp-n", "shop-web")]));
    let run = decision(&a).1.unwrap();
    assert_eq!(status(&server.finished(&run)), "succeeded", "a notification failed the run");
    let count = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
        seen.lock().unwrap().iter().filter(|(k, v)| k == kind && pred(v)).count()
    };
    wait_until("every notification", || {
        count("slack", &|v| v["text"].as_str().is_some_and(|t| t.contains("succeeded"))) >= 1
            && count("slack", &|v| v["text"].as_str().is_some_and(|t| t.contains("started"))) >= 1
            && count("teams", &|v| v["@type"] == "MessageCard") >= 2
            && count("json", &|v| v["event"] == "finished" && v["status"] == "succeeded") >= 1
            && count("json", &|v| v["event"] == "started") >= 1
    });
    // Teams gets only what it asked for, and every JSON event names the run.
    assert_eq!(count("teams", &|v| v["text"].as_str().is_some_and(|t| t.contains("started"))), 0);
    assert_eq!(count("json", &|v| v["run_id"] != run.as_str()), 0);
}

#[test]
fn only_the_named_approvers_may_answer() {
    let guarded = r#"
const RUNBOOK = #{ name: "guarded", version: "1.0.0", params: #{ site: #{ type: "string" } }, scope: ["appservice/rg-shop/*"] };
approve(`swap ${params.site}?`, #{ approvers: ["alice", "bob"] });
appservice::swap(#{ group: "rg-shop", site: params.site, slot: "staging" });
"#;
    let extra = r#"
[[route]]
name = "guarded"
match = { alertname = "Guarded" }
runbook = "runbooks/guarded.rhai"
params = { site = "{{labels.site}}" }
approval = "required"
"#;
    let dir = folder(&config(extra));
    write(&dir.path().join("runbooks"), "guarded.rhai", guarded);
    let live = LiveSim::start(dir.path(), WORLD);
    let state = dir.path().join("state");
    let server = Server::start(serve_cmd(&live, dir.path(), &state, &[]), &state, None);
    let mut alert = firing("fp-g", "shop-web");
    alert["labels"]["alertname"] = json!("Guarded");
    let (_, a) = server.alert(&am(vec![alert]));
    assert_eq!(a["alerts"][0]["route"], "guarded", "{a}");
    let run = decision(&a).1.unwrap();
    wait_until("the approval question", || {
        state.join("serve/approvals").join(format!("{run}.pending")).exists()
    });
    let (code, body) = server.post(&format!("/v1/runs/{run}/approve"), &json!({ "by": "mallory" }));
    assert_eq!(code, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("alice, bob"), "{body}");
    let (code, body) = server.post(&format!("/v1/runs/{run}/approve"), &json!({ "by": "" }));
    assert_eq!(code, 400, "{body}");
    assert_eq!(swaps(&live, "shop-web"), 0);
    let (code, body) = server.post(&format!("/v1/runs/{run}/approve"), &json!({ "by": "bob" }));
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(&server.finished(&run)), "succeeded");
    assert_eq!(swaps(&live, "shop-web"), 1);
}
