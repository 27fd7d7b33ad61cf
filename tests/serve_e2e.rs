//! From alert to recovery with the real, unmodified servers: the simulator serves a world whose
//! App Service production slot is unhealthy, a real Prometheus scrapes its `/health/metrics` and
//! fires a rule, a real Alertmanager posts the alert to a webhook, and the alert resolves once
//! the site is healthy again.
//!
//! Prometheus and Alertmanager are Debian's `prometheus` and `prometheus-alertmanager` packages
//! (`.ci/run` installs them); a missing binary fails the test with how to install it. Each server
//! gets a generated config, a free loopback port and a temporary storage folder, and is killed
//! when the test ends.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rollbook::sim::{Scenario, Sim, SimHandle};
use serde_json::Value;

use crate::support::write;

/// The site the alert is about.
pub const SITE: &str = "appservice/rg-shop/shop-web";

/// The token the webhook must carry.
pub const TOKEN: &str = "e2e-serve-token-5b0c";

/// The world: production runs the broken 1.5.0, staging still has 1.4.0.
pub const WORLD: &str = r#"
name = "serve e2e: 1.5.0 broke production"

[[appservice.sites]]
group = "rg-shop"
name = "shop-web"
slots = { production = "1.5.0", staging = "1.4.0" }
broken = ["1.5.0"]
"#;

/// The simulator of [`WORLD`].
pub async fn start_sim() -> SimHandle {
    let scenario = Scenario::parse(Path::new("serve-e2e.toml"), WORLD).expect("scenario parses");
    Sim::start(scenario, None).await.expect("simulator starts")
}

/// The longest wait for any one step of the loop (servers are real and the machine is shared).
const STEP: Duration = Duration::from_secs(120);

/// A server process, killed (and reaped) when dropped; its output goes to a log file.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr into `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Proc { name: name.to_string(), child, log }
    }

    /// What the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a server binary: `$env` if set, else the first of `names` on PATH; a missing
/// one fails the test with how to install it.
pub fn tool(env: &str, names: &[&str], package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from) {
        assert!(p.is_file(), "{env}={} is not a file", p.display());
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let candidate = dir.join(n);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "`{}` is not on PATH: install Debian's `{package}` package \
         (as root: apt-get update && apt-get install -y --no-install-recommends prometheus prometheus-alertmanager; \
         .ci/run does this), or point {env} at the binary",
        names.join("` or `")
    );
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr").port()
}

/// Polls `probe` every 200 ms until it gives a value; panics after [`STEP`] naming `what` and
/// the logs of `procs`.
pub async fn wait_for<T, F, Fut>(what: &str, procs: &mut [&mut Proc], mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        for p in procs.iter_mut() {
            p.assert_running();
        }
        if start.elapsed() > STEP {
            let logs: Vec<String> =
                procs.iter().map(|p| format!("--- {} log:\n{}", p.name, p.log())).collect();
            panic!("gave up waiting for {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET `url` as JSON; None on any failure (the server may not be up yet).
pub async fn get_json(url: &str) -> Option<Value> {
    let resp = reqwest::get(url).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// The alerting rule: fires while an App Service site's health metric is 0, with the site's
/// group and name as labels (parsed from the resource key) and its health URL as an annotation.
pub fn rules_yaml(health_base: &str) -> String {
    r#"groups:
  - name: appservice
    rules:
      - alert: AppServiceSiteDown
        expr: |
          label_replace(
            label_replace(rollbook_sim_healthy{resource=~"appservice/.+/.+"} == 0,
              "group", "$1", "resource", "appservice/([^/]+)/.+"),
            "site", "$1", "resource", "appservice/[^/]+/(.+)")
        for: 0s
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.site }} in {{ $labels.group }} is unhealthy"
          health_url: "HEALTH_BASE/{{ $labels.resource }}"
"#
    .replace("HEALTH_BASE", health_base)
}

/// The simulator, Prometheus scraping it every second, and Alertmanager posting to `webhook`.
pub struct Loop {
    /// The simulated world.
    pub sim: SimHandle,
    /// Prometheus's base URL.
    pub prometheus_url: String,
    /// Alertmanager's base URL.
    pub alertmanager_url: String,
    /// Prometheus (killed on drop).
    pub prometheus: Proc,
    /// Alertmanager (killed on drop).
    pub alertmanager: Proc,
    /// Configs, storage and logs (removed with the loop).
    _dir: tempfile::TempDir,
}

impl Loop {
    /// Starts Prometheus (scraping `sim`) and Alertmanager (posting to `webhook`) and waits until
    /// both are ready.
    pub async fn start(sim: SimHandle, webhook: &str) -> Loop {
        let prometheus_bin = tool("ROLLBOOK_PROMETHEUS", &["prometheus"], "prometheus");
        let alertmanager_bin = tool(
            "ROLLBOOK_ALERTMANAGER",
            &["prometheus-alertmanager", "alertmanager"],
            "prometheus-alertmanager",
        );
        let dir = tempfile::tempdir().expect("tempdir");

        let am_port = free_port();
        let alertmanager_url = format!("http://127.0.0.1:{am_port}");
        let token_file = write(dir.path(), "webhook-token", TOKEN);
        let am_config = write(
            dir.path(),
            "alertmanager.yml",
            &format!(
                r#"route:
  receiver: rollbook
  group_by: [alertname, resource]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: rollbook
    webhook_configs:
      - url: "{webhook}"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: "{}"
"#,
                token_file.display()
            ),
        );
        let mut cmd = Command::new(&alertmanager_bin);
        cmd.arg(format!("--config.file={}", am_config.display()))
            .arg(format!("--storage.path={}", dir.path().join("alertmanager-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            // No cluster: no gossip port, no peers.
            .arg("--cluster.listen-address=");
        let mut alertmanager = Proc::spawn("alertmanager", cmd, dir.path().join("alertmanager.log"));

        let prom_port = free_port();
        let prometheus_url = format!("http://127.0.0.1:{prom_port}");
        write(dir.path(), "rules.yml", &rules_yaml(&sim.health_base()));
        let prom_config = write(
            dir.path(),
            "prometheus.yml",
            &format!(
                r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: rollbook-sim
    metrics_path: /health/metrics
    static_configs:
      - targets: ["{}"]
"#,
                sim.addr()
            ),
        );
        let mut cmd = Command::new(&prometheus_bin);
        cmd.arg(format!("--config.file={}", prom_config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("prometheus-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
        let mut prometheus = Proc::spawn("prometheus", cmd, dir.path().join("prometheus.log"));

        for (url, proc_) in [(&alertmanager_url, &mut alertmanager), (&prometheus_url, &mut prometheus)] {
            let ready = format!("{url}/-/ready");
            wait_for(&format!("{ready} to answer 200"), &mut [proc_], || async {
                reqwest::get(&ready).await.ok().filter(|r| r.status().is_success()).map(|_| ())
            })
            .await;
        }
        Loop { sim, prometheus_url, alertmanager_url, prometheus, alertmanager, _dir: dir }
    }

    /// Waits until Prometheus has scraped the simulator (target up: the page parsed) and its
    /// query API gives `rollbook_sim_healthy` for the site; returns that value.
    pub async fn site_health_in_prometheus(&mut self, want: f64) -> f64 {
        let url = format!(
            "{}/api/v1/query?query=rollbook_sim_healthy%7Bresource%3D%22{}%22%7D",
            self.prometheus_url,
            SITE.replace('/', "%2F")
        );
        let targets = format!("{}/api/v1/targets", self.prometheus_url);
        let mut procs = [&mut self.prometheus];
        wait_for("the simulator's target to be up in Prometheus", &mut procs, || async {
            let t = get_json(&targets).await?;
            let active = t["data"]["activeTargets"].as_array()?.first()?.clone();
            (active["health"] == "up").then_some(())
        })
        .await;
        wait_for(
            &format!("rollbook_sim_healthy of the site to be {want} in Prometheus"),
            &mut procs,
            || async {
                let v = get_json(&url).await?;
                let sample = v["data"]["result"].as_array()?.first()?.clone();
                let value: f64 = sample["value"][1].as_str()?.parse().ok()?;
                (value == want).then_some(value)
            },
        )
        .await
    }

    /// Waits until Prometheus's `/api/v1/alerts` has the site's alert in `state`; returns it.
    pub async fn prometheus_alert(&mut self, state: &str) -> Value {
        let url = format!("{}/api/v1/alerts", self.prometheus_url);
        wait_for(
            &format!("AppServiceSiteDown to be {state} in Prometheus"),
            &mut [&mut self.prometheus],
            || async {
                let v = get_json(&url).await?;
                v["data"]["alerts"]
                    .as_array()?
                    .iter()
                    .find(|a| a["labels"]["alertname"] == "AppServiceSiteDown" && a["state"] == state)
                    .cloned()
            },
        )
        .await
    }

    /// Waits until neither Prometheus nor Alertmanager has an active alert for the site.
    pub async fn alert_resolved_everywhere(&mut self) {
        let prom = format!("{}/api/v1/alerts", self.prometheus_url);
        wait_for("the alert to leave Prometheus", &mut [&mut self.prometheus], || async {
            let v = get_json(&prom).await?;
            let alerts = v["data"]["alerts"].as_array()?;
            (!alerts.iter().any(|a| a["labels"]["alertname"] == "AppServiceSiteDown")).then_some(())
        })
        .await;
        let am = format!("{}/api/v2/alerts?active=true&silenced=true&inhibited=true", self.alertmanager_url);
        wait_for("Alertmanager to have no active alert", &mut [&mut self.alertmanager], || async {
            let v = get_json(&am).await?;
            v.as_array()?.is_empty().then_some(())
        })
        .await;
    }

    /// Waits until Alertmanager lists the site's alert as active.
    pub async fn alertmanager_has_alert(&mut self) -> Value {
        let am = format!("{}/api/v2/alerts", self.alertmanager_url);
        wait_for("Alertmanager to hold the alert", &mut [&mut self.alertmanager], || async {
            let v = get_json(&am).await?;
            v.as_array()?.iter().find(|a| a["labels"]["alertname"] == "AppServiceSiteDown").cloned()
        })
        .await
    }
}

/// What a loopback webhook received: (Authorization header, body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn capture(State(got): State<Received>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    got.lock().unwrap_or_else(|e| e.into_inner()).push((auth, value));
    StatusCode::ACCEPTED
}

/// The loop up to the webhook: the real Alertmanager posts the firing alert (payload version 4,
/// the bearer token, the labels the rule parsed) to a loopback receiver, and posts it again as
/// resolved once the site is healthy (swapped here through the simulator's ARM API).
#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_posts_the_firing_and_then_the_resolved_alert_to_a_webhook() {
    let got: Received = Arc::default();
    let router = axum::Router::new().route("/v1/alerts/alertmanager", post(capture)).with_state(got.clone());
    let base = crate::support::serve(router).await;
    let mut lp = Loop::start(start_sim().await, &format!("{base}/v1/alerts/alertmanager")).await;

    assert_eq!(lp.site_health_in_prometheus(0.0).await, 0.0);
    let firing = lp.prometheus_alert("firing").await;
    assert_eq!(firing["labels"]["group"], "rg-shop", "{firing}");
    assert_eq!(firing["labels"]["site"], "shop-web", "{firing}");
    let posted = |status: &'static str| {
        let got = got.clone();
        move || {
            let got = got.clone();
            async move {
                let all = got.lock().unwrap_or_else(|e| e.into_inner()).clone();
                all.into_iter().find(|(_, v)| v["status"] == status)
            }
        }
    };
    let (auth, payload) =
        wait_for("Alertmanager to post the firing alert", &mut [&mut lp.alertmanager], posted("firing"))
            .await;
    assert_eq!(auth, format!("Bearer {TOKEN}"));
    assert_eq!(payload["version"], "4", "{payload}");
    assert_eq!(payload["receiver"], "rollbook");
    let alert = &payload["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "AppServiceSiteDown", "{payload}");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["annotations"]["health_url"], format!("{}/{SITE}", lp.sim.health_base()));
    assert!(alert["fingerprint"].as_str().is_some_and(|f| !f.is_empty()), "{payload}");
    lp.alertmanager_has_alert().await;

    // Recovery by hand here (the full loop does it through `rollbook serve`).
    let az = AzureClient::new(&lp.sim);
    az.swap_to_staging().await;
    assert_eq!(lp.site_health_in_prometheus(1.0).await, 1.0);
    lp.alert_resolved_everywhere().await;
    let (_, resolved) =
        wait_for("Alertmanager to post the resolved alert", &mut [&mut lp.alertmanager], posted("resolved"))
            .await;
    assert_eq!(resolved["alerts"][0]["status"], "resolved", "{resolved}");
    assert_eq!(resolved["alerts"][0]["fingerprint"], alert["fingerprint"], "the same alert resolves");
}

/// Swaps the site's production and staging through the simulator's ARM API with the library's
/// own primitive, as an operator would by hand.
struct AzureClient {
    settings: rollbook::providers::Settings,
}

impl AzureClient {
    fn new(sim: &SimHandle) -> AzureClient {
        let mut settings = rollbook::providers::Settings::default();
        settings.env.insert("ROLLBOOK_ARM_ENDPOINT".into(), sim.arm_endpoint());
        settings.env.insert("ROLLBOOK_AZURE_TOKEN".into(), "e2e-arm-token".into());
        settings.env.insert("AZURE_SUBSCRIPTION_ID".into(), "00000000-0000-0000-0000-000000000000".into());
        AzureClient { settings }
    }

    async fn swap_to_staging(&self) {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = write(
            dir.path(),
            "swap.rhai",
            r#"appservice::swap(#{ group: "rg-shop", site: "shop-web", slot: "staging" })"#,
        );
        let engine = rollbook::engine::Engine::new();
        let runbook = engine.load(&script).expect("script loads");
        let mut opts = rollbook::engine::RunOptions::new(dir.path().join("state"));
        opts.settings = self.settings.clone();
        opts.yes = true;
        let report = engine.run(&runbook, &[], opts).await.expect("run starts");
        assert_eq!(
            report.status,
            rollbook::run::journal::RunStatus::Succeeded,
            "swap by hand: {:?}",
            report.error
        );
    }
}

/// `rollbook serve` with one route from the site's alert to the ready swap-back runbook (copied
/// beside the config, where routes may name runbooks), acting on the simulator.
pub struct Serve {
    /// The server (killed on drop).
    pub proc_: Proc,
    /// Its base URL.
    pub url: String,
    /// Its endpoints, with the token.
    pub api: Api,
    /// Its state directory.
    pub state_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// The serve config of the end-to-end test: the route takes the rule's labels and annotation as
/// the runbook's params (one probe before swapping: the alert already says production is down).
pub fn serve_config(port: u16, extra: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
token_env = "ROLLBOOK_SERVE_TOKEN"
max_runs = 2

[[route]]
name = "shop-web-down"
source = "alertmanager"
match = {{ alertname = "AppServiceSiteDown", severity = "=~critical|page" }}
runbook = "runbooks/appservice-swap-back.rhai"
params = {{ group = "{{{{labels.group}}}}", site = "{{{{labels.site}}}}", health_url = "{{{{annotations.health_url}}}}", attempts = "1" }}
mode = "act"
approval = "auto"
cooldown = "10m"
{extra}"#
    )
}

impl Serve {
    /// Starts `rollbook serve` on a free port with [`serve_config`] and waits for `/readyz`.
    pub async fn start(sim: &SimHandle, extra_config: &str, extra_args: &[&str]) -> Serve {
        let dir = tempfile::tempdir().expect("tempdir");
        let runbook = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/appservice-swap-back.rhai"),
        )
        .expect("the ready runbook");
        write(dir.path(), "runbooks/appservice-swap-back.rhai", &runbook);
        let port = free_port();
        let config = write(dir.path(), "serve.toml", &serve_config(port, extra_config));
        let state_dir = dir.path().join("state");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollbook"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(extra_args)
            .env_remove("ROLLBOOK_STATE_DIR")
            .env("NO_COLOR", "1")
            .env("ROLLBOOK_SERVE_TOKEN", TOKEN)
            .env("ROLLBOOK_ARM_ENDPOINT", sim.arm_endpoint())
            .env("ROLLBOOK_AZURE_TOKEN", "e2e-arm-token")
            .env("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000");
        let mut proc_ = Proc::spawn("rollbook serve", cmd, dir.path().join("serve.log"));
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/readyz");
        wait_for("rollbook serve to be ready", &mut [&mut proc_], || async {
            reqwest::get(&ready).await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        Serve { proc_, api: Api { url: url.clone() }, url, state_dir, _dir: dir }
    }
}

/// The endpoints of a running `rollbook serve`.
pub struct Api {
    url: String,
}

impl Api {
    /// GET a `/v1/...` path with the token, as JSON.
    pub async fn get(&self, path: &str) -> Option<Value> {
        let resp =
            reqwest::Client::new().get(format!("{}{path}", self.url)).bearer_auth(TOKEN).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// The value of one sample of `/metrics` (no token), e.g.
    /// `rollbook_runs_total{route="shop-web-down",outcome="succeeded"}`; None when absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.url)).await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

/// The whole loop: the site is unhealthy, Prometheus fires, Alertmanager posts to `rollbook
/// serve`, the route runs the swap-back runbook, the simulator records one swap, the metric
/// recovers and the alert resolves in Prometheus and Alertmanager; the run, its journal (with
/// its trigger) and the server's metrics say so.
#[tokio::test(flavor = "multi_thread")]
async fn an_alert_runs_the_swap_back_through_rollbook_serve_and_then_resolves() {
    let sim = start_sim().await;
    let mut serve = Serve::start(&sim, "", &[]).await;
    let webhook = format!("{}/v1/alerts/alertmanager", serve.url);
    let mut lp = Loop::start(sim, &webhook).await;

    // The alert fires.
    assert_eq!(lp.site_health_in_prometheus(0.0).await, 0.0);
    let firing = lp.prometheus_alert("firing").await;
    assert_eq!(
        (firing["labels"]["group"].as_str(), firing["labels"]["site"].as_str()),
        (Some("rg-shop"), Some("shop-web"))
    );
    let held = lp.alertmanager_has_alert().await;
    let fingerprint = held["fingerprint"].as_str().unwrap_or_default().to_string();
    assert!(!fingerprint.is_empty(), "{held}");

    // rollbook serve starts one run for it, which succeeds.
    let run = wait_for("the run to succeed", &mut [&mut serve.proc_], || async {
        let runs = serve.api.get("/v1/runs").await?;
        let run = runs.as_array()?.first()?.clone();
        (run["status"] == "succeeded").then_some(run)
    })
    .await;
    let run_id = run["id"].as_str().expect("a run id").to_string();
    eprintln!("run {run_id} of {}: {run}", run["runbook"]);
    let runs = serve.api.get("/v1/runs").await.expect("runs list");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "one alert, one run: {runs}");

    // Its journal: the trigger, the swap stage, the outcome.
    let journal = serve.api.get(&format!("/v1/runs/{run_id}")).await.expect("the run's journal");
    let text = journal.to_string();
    assert!(text.contains("alertmanager"), "the journal names the trigger's source: {text}");
    assert!(text.contains("shop-web-down"), "the journal names the route: {text}");
    assert!(text.contains(&fingerprint), "the journal names the alert: {text}");
    assert!(text.contains("appservice::swap"), "the journal has the swap: {text}");
    let journal_file = serve.state_dir.join("runs").join(format!("{run_id}.jsonl"));
    assert!(journal_file.is_file(), "the journal is under the state dir: {}", journal_file.display());
    let shown = Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(["runs", "show", &run_id, "--output", "json", "--state-dir"])
        .arg(&serve.state_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("rollbook runs show");
    assert!(shown.status.success(), "rollbook runs show: {}", String::from_utf8_lossy(&shown.stderr));

    // The simulator swapped the slot back, once.
    let swaps: Vec<_> = lp
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/sites/shop-web/slotsswap"))
        .collect();
    assert_eq!(swaps.len(), 1, "one swap: {swaps:?}");
    assert_eq!(swaps[0].status, Some(202), "{swaps:?}");
    let state = lp.sim.resource_state(SITE).expect("site state");
    assert_eq!(state["production"], "1.4.0", "{state}");

    // The metric recovers and the alert resolves everywhere; serve ignores the resolved alert.
    assert_eq!(lp.site_health_in_prometheus(1.0).await, 1.0);
    lp.alert_resolved_everywhere().await;
    let ignored = "rollbook_alerts_received_total{source=\"alertmanager\",decision=\"resolved_ignored\"}";
    wait_for("serve to receive the resolved alert", &mut [&mut serve.proc_], || async {
        serve.api.metric(ignored).await.filter(|v| *v >= 1.0)
    })
    .await;
    assert_eq!(
        serve.api.metric("rollbook_runs_total{route=\"shop-web-down\",outcome=\"succeeded\"}").await,
        Some(1.0),
        "one run, succeeded"
    );
    let runs = serve.api.get("/v1/runs").await.expect("runs list");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "the resolved alert started nothing: {runs}");
}
