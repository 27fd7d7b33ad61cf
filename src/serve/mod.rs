//! `rollbook serve`: runs runbooks when alerts arrive (Alertmanager, Azure Monitor), through
//! routes that match labels and fill params; the runs are the same runs as `rollbook run`'s
//! (engine, journal, locks, scope, limits), started by the server and recorded with their trigger.

pub mod alerts;
pub mod claims;
pub mod config;
mod http;
pub mod metrics;
pub mod notify;
pub mod template;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, RunOptions, Runbook};
use crate::run::RunStatus;
use alerts::Alert;
use config::{Approval, Config, Mode, NotifyEvent, Route, Source};

/// How `rollbook serve` was started.
pub struct ServeOptions {
    /// The config file.
    pub config: PathBuf,
    /// `--listen` (overrides the config).
    pub listen: Option<SocketAddr>,
    /// Where journals, locks and the replicas' shared records are.
    pub state_dir: PathBuf,
    /// `--lock`: `file` or `k8s:<context>/<namespace>`.
    pub lock: String,
    /// How long runs in flight get to finish after SIGTERM.
    pub grace: Duration,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
}

/// Exit code for invalid input.
const EXIT_INVALID: i32 = 2;

/// What became of one alert.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The alert's identity.
    pub fingerprint: String,
    /// The route that took it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// `started`, `queued`, `deduplicated`, `cooldown`, `no_route`, `resolved_ignored`, `invalid`.
    pub decision: &'static str,
    /// The run started, queued, or already running for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why, for `invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A run to start.
struct Job {
    run_id: String,
    route: usize,
    params: Vec<(String, String)>,
    trigger: Value,
    mode: Mode,
    /// The claim (route + alert identity) it holds.
    claim: Option<String>,
    /// Route + params: when it ends, this key's cooldown begins.
    cooldown_key: String,
    /// A run to resume instead.
    resume: bool,
}

struct Slots {
    running: usize,
    queue: VecDeque<Job>,
}

/// The server's state, shared by every request and run.
pub(crate) struct App {
    config: Config,
    runbooks: Vec<Arc<Runbook>>,
    state_dir: PathBuf,
    engine: Arc<Engine>,
    settings: crate::providers::Settings,
    locks: Option<crate::run::locks::LockOpener>,
    token: Option<String>,
    slots: Mutex<Slots>,
    idle: tokio::sync::Notify,
    draining: AtomicBool,
    metrics: metrics::Metrics,
    notifier: notify::Notifier,
    /// Cancelled when the grace after SIGTERM is over: runs in flight stop, resumable.
    terminate: CancellationToken,
    /// Serializes decisions, so two alerts of one payload never both claim one key.
    decide: tokio::sync::Mutex<()>,
}

/// Runs `rollbook serve` until SIGTERM (or Ctrl-C) and the drain after it; returns the exit code.
pub async fn serve(opts: ServeOptions) -> i32 {
    match start(opts).await {
        Ok(code) => code,
        Err(why) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "error: {why}");
            EXIT_INVALID
        }
    }
}

async fn start(opts: ServeOptions) -> Result<i32, String> {
    let config = Config::load(&opts.config, &opts.state_dir)?;
    crate::run::ensure_state_dir(&opts.state_dir)?;
    let listen = opts.listen.unwrap_or(config.server.listen);
    let token = std::env::var(&config.server.token_env).ok().filter(|t| !t.is_empty());
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {listen} without a token: set {} to a bearer token (or listen on loopback)",
            config.server.token_env
        ));
    }
    let engine = Arc::new(Engine::new());
    let mut runbooks = Vec::new();
    for route in &config.routes {
        let lib = Engine::library_for(&route.runbook_path, &opts.state_dir)
            .map_err(|e| format!("route `{}`: {e}", route.name))?;
        let rb = engine
            .load_with(&route.runbook_path, lib)
            .map_err(|e| format!("route `{}`: runbook `{}`: {e}", route.name, route.runbook))?;
        for key in route.params.keys() {
            if !rb.meta.params.iter().any(|p| &p.name == key) {
                return Err(format!(
                    "route `{}`: runbook `{}` declares no param `{key}`",
                    route.name, route.runbook
                ));
            }
        }
        if let Some(why) = crate::engine::check::allow_problem(&route.allow, &rb.meta.scope) {
            return Err(format!("route `{}`: {why}", route.name));
        }
        runbooks.push(Arc::new(rb));
    }
    let mut settings = crate::providers::Settings::from_env();
    settings.kubeconfig = opts.kubeconfig.clone();
    let locks = crate::providers::k8s::lease::lock_opener(&opts.lock, &settings)?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Arc::new(App {
        notifier: notify::Notifier::new(config.notify.clone()),
        slots: Mutex::new(Slots { running: 0, queue: VecDeque::new() }),
        config,
        runbooks,
        state_dir: opts.state_dir.clone(),
        engine,
        settings,
        locks,
        token,
        idle: tokio::sync::Notify::new(),
        draining: AtomicBool::new(false),
        metrics: metrics::Metrics::default(),
        terminate: CancellationToken::new(),
        decide: tokio::sync::Mutex::new(()),
    });
    // One line for scripts and tests that start the server on port 0.
    {
        use std::io::Write as _;
        let line = json!({ "listen": bound.to_string(), "url": format!("http://{bound}"), "state_dir": opts.state_dir.display().to_string() });
        let _ = writeln!(std::io::stdout(), "{line}");
        let _ = std::io::stdout().flush();
    }
    if app.config.server.resume_on_start {
        resume_incomplete(&app);
    }
    let router = http::router(app.clone());
    let stop_http = CancellationToken::new();
    let server = {
        let stop = stop_http.clone();
        tokio::spawn(async move {
            axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await }).await
        })
    };
    wait_for_signal().await;
    app.draining.store(true, Ordering::SeqCst);
    let dropped = {
        let mut slots = app.slots.lock().map_err(|_| "the run table is unavailable".to_string())?;
        std::mem::take(&mut slots.queue)
    };
    for job in dropped {
        // Queued runs never began: nothing to resume; the alert may start one elsewhere.
        if let Some(key) = &job.claim {
            claims::release(&app.state_dir, key, &job.run_id);
        }
    }
    log(&format!("draining: runs in flight get {}s to finish", opts.grace.as_secs_f64()));
    let grace_over = tokio::time::sleep(opts.grace);
    tokio::pin!(grace_over);
    loop {
        let notified = app.idle.notified();
        if app.slots.lock().map(|s| s.running == 0).unwrap_or(true) {
            break;
        }
        tokio::select! {
            _ = notified => {}
            _ = &mut grace_over, if !app.terminate.is_cancelled() => {
                log("grace is over: stopping runs in flight at their next safe point (they stay resumable)");
                app.terminate.cancel();
            }
        }
    }
    stop_http.cancel();
    let _ = server.await;
    Ok(0)
}

/// Text with control characters escaped (safe in a log line).
fn safe_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

fn log(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resumes the incomplete runs this server started that no live process holds.
fn resume_incomplete(app: &Arc<App>) {
    let Ok(runs) = crate::run::journal::list_runs(&app.state_dir) else { return };
    for r in runs.into_iter().filter(|r| r.status == "incomplete" && r.mode == "real") {
        let path = crate::run::journal::journal_path(&app.state_dir, &r.id);
        let Ok(read) = crate::run::journal::read_journal(&path) else { continue };
        let Some(crate::run::Event::RunStarted { trigger: Some(trigger), .. }) =
            read.records.first().map(|r| &r.event)
        else {
            continue;
        };
        let route_name = trigger.get("route").and_then(|r| r.as_str()).unwrap_or_default();
        let Some(route) = app.config.routes.iter().position(|r| r.name == route_name) else {
            log(&format!(
                "run {}: its route `{route_name}` is no longer configured; resume it with `rollbook resume {}`",
                r.id, r.id
            ));
            continue;
        };
        let claim = trigger.get("claim").and_then(|c| c.as_str()).map(String::from);
        let job = Job {
            run_id: r.id.clone(),
            route,
            params: Vec::new(),
            trigger: trigger.clone(),
            mode: Mode::Act,
            claim,
            cooldown_key: trigger
                .get("cooldown_key")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            resume: true,
        };
        log(&format!("resuming run {}", r.id));
        enqueue(app, job, true);
    }
}

impl App {
    fn route_for(&self, alert: &Alert) -> Option<usize> {
        self.config.routes.iter().position(|r| {
            (r.source == Source::Any || r.source == alert.source)
                && r.matchers.iter().all(|(k, m)| m.matches(alert.labels.get(k).map(String::as_str)))
        })
    }

    fn render_params(
        &self,
        route: &Route,
        runbook: &Runbook,
        alert: &Alert,
    ) -> Result<Vec<(String, String)>, String> {
        let lookup = |k: &str| alert.vars.get(k).cloned();
        let mut params = Vec::new();
        for (key, template) in &route.params {
            let value = template::render(template, &lookup).map_err(|why| format!("param `{key}`: {why}"))?;
            params.push((key.clone(), value));
        }
        runbook.meta.resolve_params(&params)?;
        Ok(params)
    }

    fn free_capacity(&self) -> usize {
        self.slots
            .lock()
            .map(|s| {
                (self.config.server.max_runs + self.config.server.queue)
                    .saturating_sub(s.running + s.queue.len())
            })
            .unwrap_or(0)
    }
}

/// Why a payload is refused as a whole.
pub(crate) enum Refused {
    /// The queue cannot take the runs it would start (429).
    Full(usize),
    /// Draining after SIGTERM (503).
    Draining,
}

/// An alert that would start a run: its route, params, and the alert.
type Planned<'a> = (usize, Vec<(String, String)>, &'a Alert);

/// Decides every alert of one payload; starts or queues runs. All or nothing on capacity.
pub(crate) async fn decide(app: &Arc<App>, alerts: Vec<Alert>) -> Result<Vec<Decision>, Refused> {
    if app.draining.load(Ordering::SeqCst) {
        return Err(Refused::Draining);
    }
    let _one_at_a_time = app.decide.lock().await;
    // First pass: what each alert would do, without claiming anything.
    let mut planned: Vec<(Decision, Option<Planned<'_>>)> = Vec::new();
    for alert in &alerts {
        let mut d = Decision {
            fingerprint: alert.fingerprint.clone(),
            route: None,
            decision: "invalid",
            run_id: None,
            reason: None,
        };
        if alert.resolved {
            d.decision = "resolved_ignored";
            planned.push((d, None));
            continue;
        }
        let Some(ri) = app.route_for(alert) else {
            d.decision = "no_route";
            planned.push((d, None));
            continue;
        };
        let route = &app.config.routes[ri];
        d.route = Some(route.name.clone());
        if let Some(key) = alert.control_character() {
            d.reason =
                Some(format!("`{key}` holds a control character; such values are never put into params"));
            planned.push((d, None));
            continue;
        }
        match app.render_params(route, &app.runbooks[ri], alert) {
            Ok(params) => planned.push((d, Some((ri, params, alert)))),
            Err(why) => {
                d.reason = Some(why);
                planned.push((d, None));
            }
        }
    }
    // Alerts repeated within the payload need one run between them.
    let wanted = planned
        .iter()
        .filter_map(|(_, p)| p.as_ref().map(|(ri, _, a)| (*ri, a.fingerprint.as_str())))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if wanted > app.free_capacity() {
        for (d, _) in &planned {
            app.metrics.alert(
                alerts.first().map(|a| a.source.as_str()).unwrap_or("unknown"),
                if d.decision == "invalid" { "invalid" } else { "refused" },
            );
        }
        return Err(Refused::Full(app.free_capacity()));
    }
    let mut out = Vec::with_capacity(planned.len());
    for (mut d, p) in planned {
        if let Some((ri, params, alert)) = p {
            let route = &app.config.routes[ri];
            let run_id = crate::run::journal::new_run_id();
            let claim_key = format!("{}\n{}\n{}", route.name, alert.source.as_str(), alert.fingerprint);
            let cooldown_key = format!(
                "{}\n{}",
                route.name,
                params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n")
            );
            match claims::claim(&app.state_dir, &claim_key, &run_id) {
                Err(why) => {
                    d.decision = "invalid";
                    d.reason = Some(why);
                }
                Ok(Err(holder)) => {
                    d.decision = "deduplicated";
                    d.run_id = Some(holder);
                }
                Ok(Ok(())) => {
                    let cooling = !route.cooldown.is_zero()
                        && claims::last_ended(&app.state_dir, &cooldown_key).is_some_and(|t| {
                            (chrono::Utc::now() - t).to_std().map(|age| age < route.cooldown).unwrap_or(true)
                        });
                    if cooling {
                        claims::release(&app.state_dir, &claim_key, &run_id);
                        d.decision = "cooldown";
                    } else {
                        let labels: serde_json::Map<String, Value> =
                            alert.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                        let trigger = json!({
                            "source": alert.source.as_str(),
                            "route": route.name,
                            "fingerprint": alert.fingerprint,
                            "labels": labels,
                            "claim": claim_key,
                            "cooldown_key": cooldown_key,
                        });
                        let job = Job {
                            run_id: run_id.clone(),
                            route: ri,
                            params,
                            trigger,
                            mode: route.mode,
                            claim: Some(claim_key),
                            cooldown_key,
                            resume: false,
                        };
                        d.decision = if enqueue(app, job, false) { "started" } else { "queued" };
                        d.run_id = Some(run_id);
                    }
                }
            }
        }
        app.metrics.alert(alerts.first().map(|a| a.source.as_str()).unwrap_or("unknown"), d.decision);
        out.push(d);
    }
    Ok(out)
}

/// Starts a run requested through `POST /v1/runs` (a runbook a route names).
pub(crate) fn start_requested(
    app: &Arc<App>,
    runbook: &str,
    params: Vec<(String, String)>,
    mode: Option<Mode>,
) -> Result<Result<String, Refused>, String> {
    if app.draining.load(Ordering::SeqCst) {
        return Ok(Err(Refused::Draining));
    }
    let Some(ri) = app.config.routes.iter().position(|r| r.runbook == runbook) else {
        return Err(format!(
            "no route names runbook `{runbook}`; only runbooks routes name can be started here"
        ));
    };
    app.runbooks[ri].meta.resolve_params(&params)?;
    if app.free_capacity() == 0 {
        return Ok(Err(Refused::Full(0)));
    }
    let route = &app.config.routes[ri];
    let run_id = crate::run::journal::new_run_id();
    let job = Job {
        run_id: run_id.clone(),
        route: ri,
        trigger: json!({ "source": "api", "route": route.name }),
        cooldown_key: format!(
            "{}\n{}",
            route.name,
            params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n")
        ),
        params,
        mode: mode.unwrap_or(route.mode),
        claim: None,
        resume: false,
    };
    enqueue(app, job, false);
    Ok(Ok(run_id))
}

/// Starts `job` if a slot is free (true), else queues it.
fn enqueue(app: &Arc<App>, job: Job, _resume: bool) -> bool {
    let start = match app.slots.lock() {
        Ok(mut s) if s.running < app.config.server.max_runs => {
            s.running += 1;
            Some(job)
        }
        Ok(mut s) => {
            s.queue.push_back(job);
            None
        }
        Err(_) => None,
    };
    match start {
        Some(job) => {
            spawn_run(app.clone(), job);
            true
        }
        None => false,
    }
}

fn spawn_run(app: Arc<App>, job: Job) {
    tokio::spawn(async move {
        let mut job = job;
        loop {
            execute(&app, &job).await;
            let next = match app.slots.lock() {
                Ok(mut s) => match s.queue.pop_front() {
                    Some(next) if !app.draining.load(Ordering::SeqCst) => Some(next),
                    other => {
                        if let Some(dropped) = other
                            && let Some(key) = &dropped.claim
                        {
                            claims::release(&app.state_dir, key, &dropped.run_id);
                        }
                        s.running -= 1;
                        None
                    }
                },
                Err(_) => None,
            };
            match next {
                Some(n) => job = n,
                None => break,
            }
        }
        app.idle.notify_waiters();
    });
}

/// The outcome word of a run in metrics.
fn outcome(status: RunStatus, plan: bool) -> &'static str {
    match status {
        RunStatus::Succeeded if plan => "planned",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed | RunStatus::Cancelled => "failed",
        RunStatus::Denied => "denied",
        RunStatus::Locked => "locked",
        RunStatus::UndoFailed | RunStatus::Interrupted | RunStatus::Incomplete => "needs_attention",
    }
}

/// Runs one job to its end (or its stop after the grace).
async fn execute(app: &Arc<App>, job: &Job) {
    let route = &app.config.routes[job.route];
    let started = Instant::now();
    app.metrics.in_flight(1);
    let reporter = Arc::new(ServeReporter {
        app: Arc::downgrade(app),
        run_id: job.run_id.clone(),
        route: route.name.clone(),
        state_dir: app.state_dir.clone(),
        required: route.approval == Approval::Required,
    });
    let mut opts = RunOptions::new(app.state_dir.clone());
    opts.run_id = Some(job.run_id.clone());
    opts.dry_run = job.mode == Mode::Plan;
    opts.yes = route.approval == Approval::Auto;
    opts.reporter = reporter;
    opts.settings = app.settings.clone();
    opts.locks = app.locks.clone();
    opts.terminate = app.terminate.child_token();
    opts.trigger = Some(job.trigger.clone());
    opts.timeout = route.timeout;
    opts.allow = route.allow.clone();
    let plan = opts.dry_run;
    let mode_word = if plan { "plan" } else { "act" };
    app.notifier.send(
        NotifyEvent::Started,
        format!(
            "rollbook: run {} of `{}` started (route `{}`, {mode_word})",
            job.run_id, route.runbook, route.name
        ),
        json!({ "run_id": job.run_id, "route": route.name, "runbook": route.runbook, "mode": mode_word }),
    );
    let result = if job.resume {
        match app.engine.prepare_resume(&app.state_dir, &job.run_id, false, &[]) {
            Ok((runbook, params, resume)) => {
                opts.yes = route.approval == Approval::Auto;
                opts.resume = Some(resume);
                app.engine.run(&runbook, &params, opts).await
            }
            Err(e) => Err(e),
        }
    } else {
        app.engine.run(&app.runbooks[job.route], &job.params, opts).await
    };
    if job.resume
        && let Err(e) = &result
    {
        // Not resumed here (another process holds it, or it cannot be resumed): its claim
        // stays with it.
        app.metrics.in_flight(-1);
        log(&format!("run {} not resumed: {}", job.run_id, safe_text(&e.to_string())));
        return;
    }
    let (status, error) = match &result {
        Ok(report) => (report.status, report.error.clone()),
        Err(crate::engine::EngineError::Locked(why)) => (RunStatus::Locked, Some(why.clone())),
        Err(e) => (RunStatus::Failed, Some(e.to_string())),
    };
    let word = outcome(status, plan);
    let seconds = started.elapsed().as_secs_f64();
    if status != RunStatus::Interrupted && status != RunStatus::Incomplete {
        if let Some(key) = &job.claim {
            claims::release(&app.state_dir, key, &job.run_id);
        }
        if !job.cooldown_key.is_empty() {
            claims::ended(&app.state_dir, &job.cooldown_key);
        }
    }
    // Counted once its claim and cooldown are recorded.
    app.metrics.in_flight(-1);
    app.metrics.run(&route.name, word, seconds);
    if let Some(why) = &error {
        log(&format!(
            "run {} (route `{}`): {} — {}",
            job.run_id,
            route.name,
            status.as_str(),
            safe_text(why)
        ));
    } else {
        log(&format!("run {} (route `{}`): {}", job.run_id, route.name, status.as_str()));
    }
    app.notifier.send(
        NotifyEvent::Finished,
        format!("rollbook: run {} of `{}` {} (route `{}`)", job.run_id, route.runbook, word, route.name),
        json!({ "run_id": job.run_id, "route": route.name, "runbook": route.runbook, "status": status.as_str(), "outcome": word, "error": error }),
    );
}

/// Shows nothing, counts primitive calls, and asks approvals through the state dir, where the
/// approve endpoint of any replica answers them.
struct ServeReporter {
    app: std::sync::Weak<App>,
    run_id: String,
    route: String,
    state_dir: PathBuf,
    required: bool,
}

impl crate::run::Reporter for ServeReporter {
    fn event(&self, event: &crate::run::Event) {
        let Some(app) = self.app.upgrade() else { return };
        match event {
            crate::run::Event::CallFinished { primitive, ok, .. } => {
                app.metrics.call(primitive, if *ok { "ok" } else { "error" })
            }
            crate::run::Event::CallPlanned { primitive, .. } => app.metrics.call(primitive, "planned"),
            _ => {}
        }
    }
    fn progress(&self) -> Arc<dyn crate::providers::Progress> {
        Arc::new(crate::providers::Silent)
    }
    fn ask(&self, _question: &str) -> Option<bool> {
        None
    }
    fn ask_approval(
        &self,
        question: &str,
        approvers: &[String],
        give_up: &(dyn Fn() -> bool + Send + Sync),
    ) -> (crate::run::Asked, Option<crate::run::Answerer>) {
        use crate::run::Asked;
        if !self.required {
            return (Asked::NoOne, None);
        }
        let pending = claims::Pending {
            message: question.into(),
            approvers: approvers.to_vec(),
            since: chrono::Utc::now(),
        };
        if let Err(why) = claims::ask(&self.state_dir, &self.run_id, &pending) {
            log(&format!("run {}: {why}", self.run_id));
            return (Asked::NoOne, None);
        }
        if let Some(app) = self.app.upgrade() {
            app.notifier.send(
                NotifyEvent::Approval,
                format!(
                    "rollbook: run {} (route `{}`) waits for approval: {question} — `rollbook approve {}`",
                    self.run_id, self.route, self.run_id
                ),
                json!({ "run_id": self.run_id, "route": self.route, "message": question, "approvers": approvers }),
            );
        }
        loop {
            if let Some(a) = claims::take_answer(&self.state_dir, &self.run_id) {
                return (
                    Asked::Answer(a.approved),
                    Some(crate::run::Answerer { name: a.by, comment: a.comment }),
                );
            }
            if give_up() {
                claims::forget(&self.state_dir, &self.run_id);
                return (Asked::GaveUp, None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Constant-time equality of two secrets (their digests, so the length does not leak either).
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    use sha2::Digest;
    let x = sha2::Sha256::digest(a.as_bytes());
    let y = sha2::Sha256::digest(b.as_bytes());
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}
