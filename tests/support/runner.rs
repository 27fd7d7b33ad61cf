//! `Rollbook`: runs the real binary on a [`World`] with a private state dir, and `Outcome`: what
//! it did, with assertions that read like the product.
//!
//! ```ignore
//! Rollbook::new()
//!     .runbook("runbooks/k8s-rollout-undo.rhai")
//!     .world(world)
//!     .param("namespace", "shop")
//!     .dry_run()
//!     .sandbox()
//!     .run()
//!     .succeeds()
//!     .stdout_has("would undo")
//!     .journal_has("\"dry_run\":true");
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::rc::Rc;

use rollbook::run::journal::{Event, read_journal};
use rollbook::sim::record::RecordedRequest;

use super::sim::LiveSim;
use super::world::World;

/// The repository root: relative runbook paths are taken from here.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a run shares with the commands after it: its folder (state dir, files) and simulator.
struct Session {
    dir: tempfile::TempDir,
    live: Option<LiveSim>,
    scenario_file: String,
    clean_env: bool,
}

/// A run of the real `rollbook` binary, built step by step.
pub struct Rollbook {
    session: Rc<Session>,
    world: Option<World>,
    runbook: Option<String>,
    subcommand: Vec<String>,
    params: Vec<String>,
    flags: Vec<String>,
    env: Vec<(String, Option<String>)>,
    sandbox: bool,
    live: bool,
    stdin: Option<String>,
    scenario_file: String,
    sandbox_in: Option<String>,
    clean_env: bool,
}

impl Default for Rollbook {
    fn default() -> Self {
        Rollbook::new()
    }
}

impl Rollbook {
    /// `rollbook run`, in a fresh private folder whose `state/` is the state dir.
    pub fn new() -> Rollbook {
        let dir = tempfile::tempdir().expect("tempdir");
        Rollbook {
            session: Rc::new(Session {
                dir,
                live: None,
                scenario_file: "scenario.toml".into(),
                clean_env: false,
            }),
            world: None,
            runbook: None,
            subcommand: vec!["run".into()],
            params: Vec::new(),
            flags: Vec::new(),
            env: Vec::new(),
            sandbox: false,
            live: false,
            stdin: None,
            scenario_file: "scenario.toml".into(),
            sandbox_in: None,
            clean_env: false,
        }
    }

    /// Another subcommand instead of `run` (`["test"]`, `["runs", "list"]`); the runbook, if
    /// any, follows it.
    pub fn command(mut self, words: &[&str]) -> Rollbook {
        self.subcommand = words.iter().map(|w| w.to_string()).collect();
        self
    }

    /// The runbook to run: a file relative to the repository (or absolute), or a
    /// `<library>/<runbook>` name if no such file exists.
    pub fn runbook(mut self, path: &str) -> Rollbook {
        let file = repo().join(path);
        self.runbook = Some(if file.exists() { file.display().to_string() } else { path.to_string() });
        self
    }

    /// The runbook's source, written to `runbook.rhai` in the private folder.
    pub fn script(mut self, source: &str) -> Rollbook {
        let path = self.file("runbook.rhai", source);
        self.runbook = Some(path.display().to_string());
        self
    }

    /// The runbook's source, written to `name` in the private folder (imports resolve beside it).
    pub fn script_named(mut self, name: &str, source: &str) -> Rollbook {
        let path = self.file(name, source);
        self.runbook = Some(path.display().to_string());
        self
    }

    /// Writes another file into the private folder (a module, a kubeconfig); returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        super::write(self.session.dir.path(), name, text)
    }

    /// The simulated world, written to `scenario.toml` for `--sandbox`, served by `live()`, or
    /// (with `command(&["test"])`) the scenario `rollbook test` runs.
    pub fn world(mut self, world: World) -> Rollbook {
        self.world = Some(world);
        self
    }

    /// The name of the scenario file the world is written to (default `scenario.toml`).
    pub fn scenario_file(mut self, name: &str) -> Rollbook {
        self.scenario_file = name.to_string();
        self
    }

    /// `-p key=value`.
    pub fn param(mut self, key: &str, value: &str) -> Rollbook {
        self.params.push(format!("{key}={value}"));
        self
    }

    /// `--dry-run`.
    pub fn dry_run(self) -> Rollbook {
        self.arg("--dry-run")
    }

    /// `--yes`.
    pub fn yes(self) -> Rollbook {
        self.arg("--yes")
    }

    /// `--output json`: the outcome's [`Outcome::report`] is the JSON report.
    pub fn json(self) -> Rollbook {
        self.args(&["--output", "json"])
    }

    /// `--allow pattern`.
    pub fn allow(self, pattern: &str) -> Rollbook {
        self.args(&["--allow", pattern])
    }

    /// `--sandbox scenario.toml`: the built-in simulator of this run, loaded with the world.
    pub fn sandbox(mut self) -> Rollbook {
        self.sandbox = true;
        self
    }

    /// `--sandbox path`: a scenario file of the repository (or absolute), instead of a world.
    pub fn sandbox_in(mut self, scenario: &str) -> Rollbook {
        self.sandbox_in = Some(repo().join(scenario).display().to_string());
        self
    }

    /// Serves the world from a simulator in this test (kept for every later command of the
    /// outcome) and points the binary's Azure endpoint and kubeconfig at it, so the outcome can
    /// show the simulator's request record and resource states.
    pub fn live(mut self) -> Rollbook {
        self.live = true;
        self
    }

    /// Any other argument after the runbook.
    pub fn arg(mut self, arg: &str) -> Rollbook {
        self.flags.push(arg.to_string());
        self
    }

    /// Other arguments after the runbook.
    pub fn args(mut self, args: &[&str]) -> Rollbook {
        self.flags.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// An environment variable of the process.
    pub fn env(mut self, key: &str, value: &str) -> Rollbook {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Only the environment given with `env` (plus `PATH`, `NO_COLOR`, the state dir and a
    /// `HOME` that is the private folder, also the working directory): nothing of the
    /// developer's machine leaks in, and no endpoints are set.
    pub fn env_clear(mut self) -> Rollbook {
        self.clean_env = true;
        self
    }

    /// Removes an environment variable from the process.
    pub fn env_remove(mut self, key: &str) -> Rollbook {
        self.env.push((key.into(), None));
        self
    }

    /// Text fed to the process' standard input (none: stdin is closed, so no terminal).
    pub fn stdin(mut self, text: &str) -> Rollbook {
        self.stdin = Some(text.to_string());
        self
    }

    /// The private folder (runbooks, scenario, `state/`).
    pub fn dir(&self) -> &Path {
        self.session.dir.path()
    }

    /// The command line, with the world written out and the simulator started.
    fn prepare(&mut self) -> Vec<String> {
        let mut argv = self.subcommand.clone();
        if let Some(runbook) = &self.runbook {
            argv.push(runbook.clone());
        }
        if let Some(session) = Rc::get_mut(&mut self.session) {
            session.scenario_file = self.scenario_file.clone();
            session.clean_env = self.clean_env;
        }
        if let Some(world) = &self.world {
            let scenario = self.file(&self.scenario_file, &world.to_toml());
            if self.subcommand.first().is_some_and(|c| c == "test") {
                argv.push(scenario.display().to_string());
            }
            if self.sandbox {
                argv.push("--sandbox".into());
                argv.push(scenario.display().to_string());
            }
            if self.live {
                let live = LiveSim::start(self.session.dir.path(), &world.to_toml());
                let session = Rc::get_mut(&mut self.session).expect("a fresh session");
                session.live = Some(live);
            }
        } else {
            assert!(!self.sandbox && !self.live, "sandbox() and live() need a world()");
        }
        if let Some(scenario) = &self.sandbox_in {
            argv.push("--sandbox".into());
            argv.push(scenario.clone());
        }
        for p in &self.params {
            argv.push("-p".into());
            argv.push(p.clone());
        }
        argv.extend(self.flags.iter().cloned());
        argv
    }

    /// Runs the binary to its end.
    pub fn run(mut self) -> Outcome {
        let argv = self.prepare();
        exec(&self.session, &self.env, &argv, self.stdin.as_deref())
    }

    /// Starts the binary in the background (no terminal, output piped).
    pub fn spawn(mut self) -> Running {
        let argv = self.prepare();
        let child = command(&self.session, &self.env, &argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rollbook");
        Running { child, session: self.session.clone(), env: self.env.clone() }
    }
}

/// A run of the binary in the background ([`Rollbook::spawn`]).
pub struct Running {
    child: std::process::Child,
    session: Rc<Session>,
    env: Vec<(String, Option<String>)>,
}

impl Running {
    /// Waits (polling, up to a generous bound) until the newest journal contains `needle`;
    /// returns its text.
    #[track_caller]
    pub fn wait_for_journal(&self, needle: &str) -> String {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let newest = journals_in(&self.session.dir.path().join("state")).pop();
            if let Some(text) = newest.and_then(|p| std::fs::read_to_string(p).ok())
                && text.contains(needle)
            {
                return text;
            }
            assert!(std::time::Instant::now() < until, "the journal never showed {needle}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends `sig` (`libc::SIGINT`, …) to the process.
    #[track_caller]
    pub fn signal(&self, sig: i32) {
        let pid = self.child.id() as i32;
        // SAFETY: sends a signal to our own child process, whose pid we hold and have not waited for.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    /// Waits for the process to end.
    pub fn finish(self) -> Outcome {
        let out = self.child.wait_with_output().expect("rollbook ends");
        Outcome { session: self.session, env: self.env, out }
    }
}

/// A finished command: its exit, output, journal and (under `live()`) the simulator's record.
pub struct Outcome {
    session: Rc<Session>,
    env: Vec<(String, Option<String>)>,
    /// The process' exit status and output.
    pub out: Output,
}

/// The binary with `argv`, in `session`'s state dir and environment.
fn command(session: &Rc<Session>, env: &[(String, Option<String>)], argv: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollbook"));
    if session.clean_env {
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", session.dir.path())
            .current_dir(session.dir.path());
    }
    cmd.args(argv).env("NO_COLOR", "1").env("ROLLBOOK_STATE_DIR", session.dir.path().join("state"));
    match &session.live {
        _ if session.clean_env => {}
        Some(live) => {
            cmd.env("ROLLBOOK_ARM_ENDPOINT", live.sim.arm_endpoint())
                .env("ROLLBOOK_AZURE_TOKEN", "test-token")
                .env("AZURE_SUBSCRIPTION_ID", super::sim::SUB)
                .env("KUBECONFIG", &live.kubeconfig);
        }
        None => {
            // Real endpoints at a closed loopback port: a run that wrongly leaves the
            // sandbox fails here instead of reaching anything.
            cmd.env("ROLLBOOK_ARM_ENDPOINT", "http://127.0.0.1:9")
                .env("ROLLBOOK_AZURE_TOKEN", "not-a-real-token")
                .env("AZURE_SUBSCRIPTION_ID", super::sim::SUB)
                .env("KUBECONFIG", session.dir.path().join("no-kubeconfig"));
        }
    }
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

/// Runs the binary with `argv` in `session` and waits for it.
fn exec(
    session: &Rc<Session>,
    env: &[(String, Option<String>)],
    argv: &[String],
    stdin: Option<&str>,
) -> Outcome {
    let mut cmd = command(session, env, argv);
    let out = match stdin {
        None => cmd.stdin(Stdio::null()).output().expect("run rollbook"),
        Some(text) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            if let Some(mut s) = child.stdin.take() {
                let _ = s.write_all(text.as_bytes());
            }
            child.wait_with_output().expect("run rollbook")
        }
    };
    Outcome { session: session.clone(), env: env.to_vec(), out }
}

impl Outcome {
    /// Runs another command in the same folder, state dir, environment and simulator
    /// (`["runs", "show", "last"]`, `["resume", id, "--yes"]`).
    pub fn then(&self, argv: &[&str]) -> Outcome {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        exec(&self.session, &self.env, &argv, None)
    }

    /// The private folder.
    pub fn dir(&self) -> &Path {
        self.session.dir.path()
    }

    /// The scenario file the world was written to.
    pub fn scenario(&self) -> PathBuf {
        self.session.dir.path().join(&self.session.scenario_file)
    }

    /// Writes another file into the private folder (a second runbook); returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        super::write(self.session.dir.path(), name, text)
    }

    /// The state dir (`<dir>/state`).
    pub fn state_dir(&self) -> PathBuf {
        self.session.dir.path().join("state")
    }

    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Standard output then standard error.
    pub fn both(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    fn show(&self) -> String {
        format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code(), self.stdout(), self.stderr())
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn exits(self, code: i32) -> Outcome {
        assert_eq!(self.code(), Some(code), "expected exit {code}: {}", self.show());
        self
    }

    /// Asserts exit 0.
    #[track_caller]
    pub fn succeeds(self) -> Outcome {
        self.exits(0)
    }

    /// Asserts a non-zero exit.
    #[track_caller]
    pub fn fails(self) -> Outcome {
        assert!(!self.out.status.success(), "expected a failure: {}", self.show());
        self
    }

    /// Asserts standard output contains `needle`.
    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Outcome {
        assert!(self.stdout().contains(needle), "stdout lacks {needle:?}: {}", self.show());
        self
    }

    /// Asserts standard output does not contain `needle`.
    #[track_caller]
    pub fn stdout_lacks(self, needle: &str) -> Outcome {
        assert!(!self.stdout().contains(needle), "stdout has {needle:?}: {}", self.show());
        self
    }

    /// Asserts standard error contains `needle`.
    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Outcome {
        assert!(self.stderr().contains(needle), "stderr lacks {needle:?}: {}", self.show());
        self
    }

    /// Asserts standard output or standard error contains `needle`.
    #[track_caller]
    pub fn output_has(self, needle: &str) -> Outcome {
        assert!(self.both().contains(needle), "output lacks {needle:?}: {}", self.show());
        self
    }

    /// Asserts neither standard output nor standard error contains `needle`.
    #[track_caller]
    pub fn output_lacks(self, needle: &str) -> Outcome {
        assert!(!self.both().contains(needle), "output has {needle:?}: {}", self.show());
        self
    }

    /// The JSON report on standard output (`json()`).
    #[track_caller]
    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is no JSON report ({e}): {}", self.show()))
    }

    /// Every journal under the state dir (real and sandbox runs), oldest first.
    pub fn journals(&self) -> Vec<PathBuf> {
        journals_in(&self.state_dir())
    }

    /// The newest journal.
    #[track_caller]
    pub fn journal(&self) -> PathBuf {
        self.journals()
            .pop()
            .unwrap_or_else(|| panic!("no journal under {}: {}", self.state_dir().display(), self.show()))
    }

    /// The newest journal's run id.
    #[track_caller]
    pub fn run_id(&self) -> String {
        self.journal().file_stem().and_then(|s| s.to_str()).expect("a run id").to_string()
    }

    /// The newest journal's text.
    #[track_caller]
    pub fn journal_text(&self) -> String {
        std::fs::read_to_string(self.journal()).expect("journal reads")
    }

    /// The newest journal's events.
    #[track_caller]
    pub fn events(&self) -> Vec<Event> {
        journal_events(&self.journal())
    }

    /// Asserts the newest journal's text contains `needle`.
    #[track_caller]
    pub fn journal_has(self, needle: &str) -> Outcome {
        let text = self.journal_text();
        assert!(text.contains(needle), "the journal lacks {needle:?}:\n{text}");
        self
    }

    /// Asserts the newest journal's text does not contain `needle`.
    #[track_caller]
    pub fn journal_lacks(self, needle: &str) -> Outcome {
        let text = self.journal_text();
        assert!(!text.contains(needle), "the journal has {needle:?}:\n{text}");
        self
    }

    /// The simulator (`live()` only).
    #[track_caller]
    pub fn sim(&self) -> &LiveSim {
        self.session.live.as_ref().expect("the outcome of a live() run")
    }

    /// Every request the simulator served (`live()` only).
    #[track_caller]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sim().sim.requests()
    }

    /// `METHOD path` of each request that was not a GET or HEAD (`live()` only).
    #[track_caller]
    pub fn mutations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// The simulated state of a resource key (`live()` only).
    #[track_caller]
    pub fn state_of(&self, key: &str) -> serde_json::Value {
        self.sim().sim.resource_state(key).unwrap_or_else(|| panic!("no simulated resource {key}"))
    }
}

/// Every event of the journal at `path`.
#[track_caller]
pub fn journal_events(path: &Path) -> Vec<Event> {
    read_journal(path).expect("journal parses").records.into_iter().map(|r| r.event).collect()
}

/// Every journal under `state` (real and sandbox runs), oldest first.
fn journals_in(state: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for runs in [state.join("runs"), state.join("sandbox").join("runs")] {
        let Ok(entries) = std::fs::read_dir(&runs) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) == Some("jsonl") {
                let modified = e.metadata().and_then(|m| m.modified()).ok();
                found.push((modified, p));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}
