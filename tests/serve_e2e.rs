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
    /// Starts the three servers and waits until both real servers are ready.
    pub async fn start(webhook: &str) -> Loop {
        let prometheus_bin = tool("ROLLBOOK_PROMETHEUS", &["prometheus"], "prometheus");
        let alertmanager_bin = tool(
            "ROLLBOOK_ALERTMANAGER",
            &["prometheus-alertmanager", "alertmanager"],
            "prometheus-alertmanager",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let scenario = Scenario::parse(Path::new("serve-e2e.toml"), WORLD).expect("scenario parses");
        let sim = Sim::start(scenario, None).await.expect("simulator starts");

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
    let mut lp = Loop::start(&format!("{base}/v1/alerts/alertmanager")).await;

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
