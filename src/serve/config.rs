//! The `rollbook serve` config file (TOML): the server, the routes from alerts to runbooks,
//! and where notifications go. Paths in it are relative to the file's folder, and a runbook
//! outside that folder is refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::model::Dur;

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9095";
/// The default environment variable holding the bearer token.
pub const DEFAULT_TOKEN_ENV: &str = "ROLLBOOK_SERVE_TOKEN";
/// The default largest request body (1 MiB).
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// A loaded, checked config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file.
    pub path: PathBuf,
    /// `[server]`.
    pub server: Server,
    /// `[[route]]`, in file order (the first that matches an alert wins).
    pub routes: Vec<Route>,
    /// `[[notify]]`.
    pub notify: Vec<Notify>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The environment variable that holds the bearer token.
    pub token_env: String,
    /// Runs at once.
    pub max_runs: usize,
    /// Runs that may wait for a free slot; more are refused (429).
    pub queue: usize,
    /// Resume incomplete runs found in the state dir at start.
    pub resume_on_start: bool,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
}

/// Where alerts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Alertmanager webhook (payload version 4).
    Alertmanager,
    /// Azure Monitor action group webhook, common alert schema.
    AzureMonitor,
    /// Either.
    Any,
}

impl Source {
    /// The word used in the config, the journal and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::AzureMonitor => "azure-monitor",
            Source::Any => "any",
        }
    }
}

/// `act` or `plan` (dry-run only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Runs the runbook.
    Act,
    /// Dry-run only: the plan is journaled.
    Plan,
}

/// `auto` or `required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Every `approve()` is granted.
    Auto,
    /// Every `approve()` waits for `rollbook approve` (or the approve endpoint).
    Required,
}

/// One label (or essentials field) condition.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal to.
    Equals(String),
    /// Matches the whole value (`=~`).
    Regex(regex::Regex),
}

impl Matcher {
    /// Whether `value` (absent: empty) satisfies the condition.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        match self {
            Matcher::Equals(want) => value == want,
            Matcher::Regex(re) => re.is_match(value),
        }
    }
}

/// `[[route]]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique name (metrics, journal, cooldown).
    pub name: String,
    /// Which alerts it takes.
    pub source: Source,
    /// Label (or essentials field) conditions, all of which must hold.
    pub matchers: Vec<(String, Matcher)>,
    /// The runbook as written in the config.
    pub runbook: String,
    /// The runbook file it names.
    pub runbook_path: PathBuf,
    /// Param templates.
    pub params: BTreeMap<String, String>,
    /// act or plan.
    pub mode: Mode,
    /// auto or required.
    pub approval: Approval,
    /// The window after a run with the same params in which no new run starts.
    pub cooldown: Duration,
    /// Stop a run of this route after this long.
    pub timeout: Option<Duration>,
    /// Only change targets matching these patterns (as `rollbook run --allow`).
    pub allow: Vec<String>,
}

/// A notification event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// A run started.
    Started,
    /// A run ended.
    Finished,
    /// A run waits for an approval.
    Approval,
}

impl NotifyEvent {
    /// The word used in the config and payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Started => "started",
            NotifyEvent::Finished => "finished",
            NotifyEvent::Approval => "approval",
        }
    }
}

/// The body a notification is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// `{"text": ...}`.
    Slack,
    /// A message card.
    Teams,
    /// The event as JSON.
    Json,
}

/// `[[notify]]`.
#[derive(Debug, Clone)]
pub struct Notify {
    /// Where to POST.
    pub url: String,
    /// How.
    pub format: NotifyFormat,
    /// Which events.
    pub events: Vec<NotifyEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    notify: Vec<RawNotify>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    token_env: Option<String>,
    max_runs: Option<usize>,
    queue: Option<usize>,
    #[serde(default)]
    resume_on_start: bool,
    max_body_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    #[serde(default = "any")]
    source: Source,
    #[serde(default, rename = "match")]
    matches: BTreeMap<String, String>,
    runbook: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default = "act")]
    mode: Mode,
    #[serde(default = "auto")]
    approval: Approval,
    #[serde(default)]
    cooldown: Option<Dur>,
    #[serde(default)]
    timeout: Option<Dur>,
    #[serde(default)]
    allow: Vec<String>,
}

fn any() -> Source {
    Source::Any
}
fn act() -> Mode {
    Mode::Act
}
fn auto() -> Approval {
    Approval::Auto
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    url: String,
    #[serde(default = "json_format")]
    format: NotifyFormat,
    #[serde(default = "all_events")]
    events: Vec<NotifyEvent>,
}

fn json_format() -> NotifyFormat {
    NotifyFormat::Json
}
fn all_events() -> Vec<NotifyEvent> {
    vec![NotifyEvent::Started, NotifyEvent::Finished, NotifyEvent::Approval]
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|b| **b == b'\n').count() + 1
}

impl Config {
    /// Reads and checks the config at `path`; `state_dir` is where library runbooks are cached.
    pub fn load(path: &Path, state_dir: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config `{}`: {e}", path.display()))?;
        Config::parse(path, &text, state_dir)
    }

    /// Parses and checks config `text` (read from `path`).
    pub fn parse(path: &Path, text: &str, state_dir: &Path) -> Result<Config, String> {
        let shown = path.display();
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => format!("config `{shown}` line {}: {message}", line_of(text, span.start)),
                None => format!("config `{shown}`: {message}"),
            }
        })?;
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let folder_abs =
            folder.canonicalize().map_err(|e| format!("config `{shown}`: cannot resolve its folder: {e}"))?;
        let s = raw.server.unwrap_or_default();
        let listen_text = s.listen.unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            format!("config `{shown}`: [server] listen `{listen_text}` is not an address like 127.0.0.1:9095")
        })?;
        let max_runs = s.max_runs.unwrap_or(4);
        if max_runs == 0 {
            return Err(format!("config `{shown}`: [server] max_runs must be at least 1"));
        }
        let server = Server {
            listen,
            token_env: s.token_env.unwrap_or_else(|| DEFAULT_TOKEN_ENV.into()),
            max_runs,
            queue: s.queue.unwrap_or(64),
            resume_on_start: s.resume_on_start,
            max_body_bytes: s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        };
        let mut routes: Vec<Route> = Vec::new();
        for r in raw.route {
            let name = r.name.trim().to_string();
            let at = format!("config `{shown}`: route `{name}`");
            if name.is_empty() {
                return Err(format!("config `{shown}`: a route has an empty name"));
            }
            if routes.iter().any(|o| o.name == name) {
                return Err(format!("{at}: two routes have this name"));
            }
            let mut matchers = Vec::new();
            for (key, value) in r.matches {
                let m = match value.strip_prefix("=~") {
                    Some(re) => Matcher::Regex(
                        regex::Regex::new(&format!("^(?:{re})$"))
                            .map_err(|e| format!("{at}: match `{key}`: invalid regex `{re}`: {e}"))?,
                    ),
                    None => Matcher::Equals(value),
                };
                matchers.push((key, m));
            }
            for (key, template) in &r.params {
                super::template::check(template).map_err(|why| format!("{at}: param `{key}`: {why}"))?;
            }
            let runbook_path = resolve_runbook(&r.runbook, folder, &folder_abs, state_dir)
                .map_err(|why| format!("{at}: {why}"))?;
            routes.push(Route {
                name,
                source: r.source,
                matchers,
                runbook: r.runbook,
                runbook_path,
                params: r.params,
                mode: r.mode,
                approval: r.approval,
                cooldown: r.cooldown.map(Dur::get).unwrap_or(Duration::ZERO),
                timeout: r.timeout.map(Dur::get),
                allow: r.allow,
            });
        }
        let mut notify = Vec::new();
        for n in raw.notify {
            if !(n.url.starts_with("http://") || n.url.starts_with("https://")) {
                return Err(format!("config `{shown}`: notify url `{}` must be http:// or https://", n.url));
            }
            notify.push(Notify { url: n.url, format: n.format, events: n.events });
        }
        Ok(Config { path: path.to_path_buf(), server, routes, notify })
    }
}

/// The file a route's `runbook` names: a path relative to the config's folder (which it must
/// not leave), or `library/runbook` in the library at that folder.
fn resolve_runbook(
    runbook: &str,
    folder: &Path,
    folder_abs: &Path,
    state_dir: &Path,
) -> Result<PathBuf, String> {
    if runbook.trim().is_empty() {
        return Err("runbook is empty".into());
    }
    let given = Path::new(runbook);
    if given.is_absolute() || given.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        // Resolve what it names, to refuse it with a clear message whether it exists or not.
        return Err(format!(
            "runbook `{runbook}` is outside the config's folder `{}`; keep runbooks in that folder",
            folder_abs.display()
        ));
    }
    let as_file = folder.join(given);
    if as_file.is_file() {
        let real =
            as_file.canonicalize().map_err(|e| format!("runbook `{runbook}`: cannot resolve it: {e}"))?;
        if !real.starts_with(folder_abs) {
            return Err(format!(
                "runbook `{runbook}` is outside the config's folder `{}` (it resolves to `{}`); keep runbooks in that folder",
                folder_abs.display(),
                real.display()
            ));
        }
        return Ok(real);
    }
    match crate::engine::find::find_runbook_in(given, Some(folder), state_dir) {
        Ok((file, _)) => Ok(file),
        Err(e) => Err(format!("runbook `{runbook}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[server]\nlisten = \"127.0.0.1:1\"\nmax_run = 3\n";
        let err = Config::parse(&dir.path().join("serve.toml"), text, dir.path()).unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("max_run"), "{err}");
    }

    #[test]
    fn regex_matches_the_whole_value() {
        let m = Matcher::Regex(regex::Regex::new("^(?:critical|page)$").unwrap());
        assert!(m.matches(Some("page")));
        assert!(!m.matches(Some("pager")));
        assert!(!m.matches(None));
    }
}
