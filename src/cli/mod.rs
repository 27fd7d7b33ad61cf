//! The command line: parses flags, runs commands, renders results, picks exit codes.

// Terminal output that never panics: a closed stdout or stderr (`rollbook run … | head`) is
// ignored, so output can never kill a run; the journal goes on being written.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}
// stderr is unbuffered: a line is formatted first and written whole, one system call instead of
// one per piece of the format (a fleet run prints some 20,000 call lines).
macro_rules! errln {
    () => {{
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(b"\n");
    }};
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut line = format!($($t)*);
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}
macro_rules! errout {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(format!($($t)*).as_bytes());
    }};
}

mod error;
mod library;
mod man;
#[cfg(feature = "sim")]
mod rehearse;
mod render;
#[cfg(feature = "sim")]
mod sandbox;
#[cfg(not(feature = "sim"))]
#[path = "no_sandbox.rs"]
mod sandbox;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, RunOptions};
use crate::model::Dur;
use crate::run;

pub use error::{CliError, CliResult, EXIT_INVALID};

#[derive(Parser)]
#[command(
    name = "rollbook",
    version,
    about = "Recovery runbooks for Azure and Kubernetes: dry-run, journal, undo, simulator"
)]
struct Cli {
    /// More detail on stderr (`-v` debug, `-vv` trace); RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DocsFormat {
    Markdown,
    Definitions,
}

#[derive(Subcommand)]
enum Command {
    /// Run a runbook.
    Run {
        /// The runbook: a file (.rhai); `<library>/<runbook>` in the current library or a
        /// dependency; or `BUNDLE#<library>/<runbook>` in a bundle made by `rollbook pack`.
        runbook: PathBuf,
        /// A param, KEY=VALUE (repeatable).
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        #[command(flatten)]
        flags: RunFlags,
    },
    /// Rehearse: run each scenario's [test] in the simulator and check its expectations.
    Test {
        /// Scenario files, or folders to search for scenarios with a [test] section.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also write a JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Show each scenario's run (a failing one's is always shown).
        #[arg(long)]
        log: bool,
        /// Where libraries that runbooks import from are cached.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// The built-in simulator of ARM, Kubernetes and health endpoints.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Compile and validate runbooks without running them.
    Check {
        /// Runbook files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Where libraries that runbooks import from are cached.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Continue a run that was interrupted (crash, kill, lost machine) where it stopped.
    Resume {
        /// The run id (a unique prefix or suffix, or `last`).
        run_id: String,
        #[command(flatten)]
        flags: ResumeFlags,
    },
    /// Undo a stopped, denied or failed run: its completed stages' undos, newest first.
    Undo {
        /// The run id (a unique prefix or suffix, or `last`).
        run_id: String,
        #[command(flatten)]
        flags: ResumeFlags,
    },
    /// Past runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Pin every dependency of the current library in rollbook.lock (and check existing pins).
    Lock {
        /// Where fetched libraries are cached.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Move the pins of DEP (or of every dependency) to the newest versions the manifest allows.
    Update {
        /// The dependency to update (default: all).
        dep: Option<String>,
        /// Where fetched libraries are cached.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// The runbooks of the current library and of its dependencies.
    List {
        /// text or json.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Only the names `rollbook run` takes (`<library>/<runbook>`), one a line.
        #[arg(long)]
        names: bool,
        /// Where fetched libraries are cached.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Write the library, its locked dependencies and their hashes into one file (a bundle).
    Pack {
        /// The bundle to write (default `<name>-<version>.rbk`).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        out: Option<PathBuf>,
        /// Sign the bundle as a whole with this secret key file (see `rollbook keygen`).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Where fetched libraries are cached.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Write a new ed25519 key file (and FILE.pub with its public key) for `rollbook sign`.
    Keygen {
        /// The secret key file to write.
        file: PathBuf,
    },
    /// Sign the current library (writes rollbook.sig over its content hash).
    Sign {
        /// The secret key file (see `rollbook keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Check the current library's signature, and its dependencies against `[trust] keys`.
    Verify {
        /// Where fetched libraries are cached.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Shell completions for bash, zsh, fish, elvish or powershell (bash and fish also complete
    /// run ids and library runbook names, through `runs list --ids` and `list --names`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The manual page (roff), e.g. `rollbook man > rollbook.1`; `rollbook man run` for a
    /// subcommand's page; `--dir DIR` writes every page (rollbook.1, rollbook-run.1, …).
    Man {
        /// The subcommand whose page to print (`run`, `runs list`); none: the command's page.
        subcommand: Vec<String>,
        /// Write every page into this folder instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Check that this machine can run runbooks: the state dir, Azure credentials and
    /// subscription, Kubernetes contexts; with RUNBOOK, what that runbook needs (exit 2 if missing).
    Doctor {
        /// A runbook (file or `<library>/<runbook>`) whose needs to check.
        runbook: Option<PathBuf>,
        /// A param, KEY=VALUE (repeatable), as `run` would get it.
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        /// Where journals go (default: ROLLBOOK_STATE_DIR, else the platform's state dir).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Run runbooks when alerts arrive (Alertmanager, Azure Monitor), as a config's routes say.
    #[cfg(feature = "serve")]
    Serve {
        /// The config file (TOML): [server], [[route]], [[notify]].
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Address to listen on (default: the config's `listen`, else 127.0.0.1:9095).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Where journals go (default: ROLLBOOK_STATE_DIR, else the platform's state dir);
        /// replicas share one.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Where target locks live: `file` (the state dir) or `k8s:<context>/<namespace>` (Leases).
        #[arg(long, value_name = "BACKEND", default_value = "file")]
        lock: String,
        /// After SIGTERM, how long runs in flight get to finish before they are stopped
        /// (resumable).
        #[arg(long, value_name = "DURATION", default_value = "30s")]
        grace: Dur,
        /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
    },
    /// Answer a run's approval that waits in `rollbook serve`.
    Approve {
        /// The run id.
        run_id: String,
        /// Deny instead of approve.
        #[arg(long)]
        deny: bool,
        /// Who answers (journaled).
        #[arg(long, value_name = "NAME")]
        by: String,
        /// Why (sent with the answer).
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// The server (default: ROLLBOOK_SERVER, else http://127.0.0.1:9095); the token is read
        /// from ROLLBOOK_SERVE_TOKEN.
        #[arg(long, value_name = "URL", env = "ROLLBOOK_SERVER", default_value = "http://127.0.0.1:9095")]
        server: String,
    },
    /// The reference of every primitive and built-in.
    Docs {
        /// markdown or definitions (.d.rhai).
        #[arg(long, value_enum, default_value = "markdown")]
        format: DocsFormat,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// Serve a scenario on loopback until killed; prints one JSON line with the endpoints.
    Serve {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Address to listen on (loopback only); default 127.0.0.1 on a free port.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Where to write the kubeconfig (one context per simulated cluster).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        /// Serve HTTPS with a CA generated for this run; its PEM is written beside the
        /// kubeconfig (`<kubeconfig>.ca.pem`) and named by `ca_file` in the JSON line.
        #[arg(long)]
        tls: bool,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List {
        /// text or json.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Only the run ids, one a line (for shell completion and scripts).
        #[arg(long)]
        ids: bool,
        /// Only runs of this mode.
        #[arg(long, value_name = "MODE", value_parser = ["real", "dry-run", "sandbox"])]
        mode: Option<String>,
        /// Where journals are.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// One run's timeline: stages, calls, results, durations, undo.
    Show {
        /// The run id (a unique prefix or suffix, or `last`).
        run_id: String,
        /// text or json (the raw events).
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Where journals are.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

/// Runs the command line and returns the process exit code; the one place a command's error
/// is shown.
pub fn main() -> i32 {
    match run_cli() {
        Ok(()) => 0,
        Err(e) => {
            render::cli_error(&e);
            e.exit_code()
        }
    }
}

fn run_cli() -> CliResult {
    let cli = Cli::try_parse().map_err(CliError::Usage)?;
    init_tracing(cli.verbose);
    render::install_miette_hook();
    raise_open_files_limit();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    // `TOKIO_WORKER_THREADS` in the environment still decides, as tokio documents.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(runtime_workers());
    }
    let runtime =
        builder.build().map_err(|e| CliError::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(dispatch(cli.command))
}

/// Raises this process' soft limit of open files to its hard limit, as Go programs and most
/// servers do. A run keeps one lock file open per target it changes (so two runs never change the
/// same thing at once), and the common default soft limit is 1,024: a fleet rollback of 2,000
/// Deployments refused every undo past the ~940th with "Too many open files". The hard limit,
/// the one an administrator sets, still bounds it (then the lock error says so).
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    /// Linux's own ceiling on a process' open files (`fs.nr_open`, 1,048,576 by default), for a
    /// hard limit of "unlimited", which the soft limit of open files may not be.
    const NR_OPEN: u64 = 1 << 20;
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let want = maximum.unwrap_or(NR_OPEN);
    if current.is_some_and(|c| c < want) {
        let raised = setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum });
        if let Err(e) = raised {
            tracing::debug!("open files: the soft limit stays at {current:?} (raising it to {want}: {e})");
        }
    }
}

/// Workers of the async runtime: half the CPUs (at least one). The runtime sends requests and
/// reads answers; a `parallel` batch's script threads, which evaluate the runbook, take the other
/// half. On two CPUs one worker instead of two cost a fleet run 7% less CPU and a quarter fewer
/// context switches, in less time (BENCHMARKS.md).
fn runtime_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get() / 2).unwrap_or(1).max(1)
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "rollbook=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn dispatch(command: Command) -> CliResult {
    match command {
        Command::Run { runbook, params, flags } => run_command(runbook, params, flags).await,
        #[cfg(feature = "sim")]
        Command::Test { paths, junit, log, state_dir } => {
            rehearse::test_command(&paths, junit.as_deref(), log, &run::state_dir(state_dir.as_deref())).await
        }
        #[cfg(feature = "sim")]
        Command::Sim { command: SimCommand::Serve { scenario, listen, kubeconfig, tls } } => {
            let opts = crate::sim::ServeOptions { listen, kubeconfig, tls };
            crate::sim::serve_opts(&scenario, &opts).await.map_err(|e| CliError::invalid(e.to_string()))
        }
        #[cfg(not(feature = "sim"))]
        Command::Test { .. } | Command::Sim { .. } => Err(CliError::invalid(sandbox::NO_SIMULATOR)),
        Command::Resume { run_id, flags } => resume_command(run_id, flags, false).await,
        Command::Undo { run_id, flags } => resume_command(run_id, flags, true).await,
        Command::Completions { shell } => {
            man::completions_command(<Cli as clap::CommandFactory>::command(), shell)
        }
        Command::Man { subcommand, dir } => {
            man::man_command(<Cli as clap::CommandFactory>::command(), &subcommand, dir.as_deref())
        }
        Command::Check { paths, state_dir } => check_command(&paths, &run::state_dir(state_dir.as_deref())),
        Command::Lock { state_dir } => {
            library::lock_command(crate::library::Mode::Lock, &run::state_dir(state_dir.as_deref()))
        }
        Command::Update { dep, state_dir } => {
            library::lock_command(crate::library::Mode::Update(dep), &run::state_dir(state_dir.as_deref()))
        }
        Command::Pack { out, key, state_dir } => {
            library::pack_command(out, key.as_deref(), &run::state_dir(state_dir.as_deref()))
        }
        Command::Keygen { file } => library::keygen_command(&file),
        Command::Sign { key } => library::sign_command(&key),
        Command::Verify { state_dir } => library::verify_command(&run::state_dir(state_dir.as_deref())),
        Command::List { output, names, state_dir } => {
            library::list_command(output, names, &run::state_dir(state_dir.as_deref()))
        }
        Command::Runs { command } => runs_command(command),
        Command::Doctor { runbook, params, kubeconfig, state_dir } => {
            doctor_command(runbook, &params, kubeconfig, &run::state_dir(state_dir.as_deref()))
        }
        #[cfg(feature = "serve")]
        Command::Serve { config, listen, state_dir, lock, grace, kubeconfig } => {
            match crate::serve::serve(crate::serve::ServeOptions {
                config,
                listen,
                state_dir: run::state_dir(state_dir.as_deref()),
                lock,
                grace: grace.get(),
                kubeconfig,
            })
            .await
            {
                0 => Ok(()),
                code => Err(CliError::Finished(code)),
            }
        }
        Command::Approve { run_id, deny, by, comment, server } => {
            approve_command(&run_id, !deny, &by, comment, &server).await
        }
        Command::Docs { format } => {
            let engine = Engine::new();
            let text = match format {
                DocsFormat::Markdown => crate::engine::docs::markdown(&engine),
                DocsFormat::Definitions => crate::engine::docs::definitions(&engine),
            };
            out!("{text}");
            Ok(())
        }
    }
}

fn parse_params(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    raw.iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!("-p `{p}`: write params as KEY=VALUE")),
        })
        .collect()
}

/// The flags of `rollbook run` that shape one run.
#[derive(clap::Args)]
struct RunFlags {
    /// Perform reads, plan mutations, change nothing; print the plan.
    #[arg(long)]
    dry_run: bool,
    /// Answer every approval with yes.
    #[arg(long)]
    yes: bool,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Where journals go (default: ROLLBOOK_STATE_DIR, else the platform's state dir).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Stop the run after this long ("30m"); completed stages are undone.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<Dur>,
    /// Only change targets matching this pattern (repeatable), e.g. `k8s/prod/shop/*`.
    #[arg(long = "allow", value_name = "PATTERN")]
    allow: Vec<String>,
    /// Run against the built-in simulator loaded with this scenario (nothing real is touched).
    #[arg(long, value_name = "SCENARIO")]
    sandbox: Option<PathBuf>,
    #[command(flatten)]
    reach: ReachFlags,
    /// Take over file locks left by a dead run even though it completed stages (it will not be
    /// resumable safely afterwards; prefer `rollbook resume` or `rollbook undo` of that run).
    #[arg(long)]
    force: bool,
    /// Grant every approval of this run, for this reason (journaled with your user name and
    /// announced); scope and locks still hold.
    #[arg(long, value_name = "REASON")]
    break_glass: Option<String>,
}

/// The flags `run`, `resume` and `undo` share: how the systems and the target locks are reached.
#[derive(clap::Args)]
struct ReachFlags {
    /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Where target locks live: `file` (the state dir) or `k8s:<context>/<namespace>` (Leases).
    #[arg(long, value_name = "BACKEND", default_value = "file")]
    lock: String,
}

/// Text safe to show on a terminal (control characters escaped).
pub(crate) fn safe_text(text: &str) -> String {
    render::safe(text).into_owned()
}

/// `rollbook approve`: answers a run's pending approval through the server.
async fn approve_command(
    run_id: &str,
    approved: bool,
    by: &str,
    comment: Option<String>,
    server: &str,
) -> CliResult {
    if by.trim().is_empty() {
        return Err(CliError::invalid("--by: say who answers"));
    }
    let action = if approved { "approve" } else { "deny" };
    let url = format!("{}/v1/runs/{run_id}/{action}", server.trim_end_matches('/'));
    let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build() {
        Ok(c) => c,
        Err(e) => return Err(CliError::invalid(format!("cannot make an HTTP client: {e}"))),
    };
    let mut req = client.post(&url).json(&serde_json::json!({ "by": by, "comment": comment }));
    if let Some(token) = std::env::var("ROLLBOOK_SERVE_TOKEN").ok().filter(|t| !t.is_empty()) {
        req = req.bearer_auth(token);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            if status.is_success() {
                outln!("run {run_id}: {} by {by}", if approved { "approved" } else { "denied" });
                Ok(())
            } else {
                let why = body.get("error").and_then(|e| e.as_str()).unwrap_or("no reason given");
                Err(CliError::invalid(format!("{server} refused ({status}): {}", safe_text(why))))
            }
        }
        Err(e) => Err(CliError::invalid(format!("cannot reach {server}: {}", e.without_url()))),
    }
}

async fn run_command(path: PathBuf, raw_params: Vec<String>, flags: RunFlags) -> CliResult {
    let params = parse_params(&raw_params).map_err(CliError::invalid)?;
    let engine = Engine::new();
    let state_dir = run::state_dir(flags.state_dir.as_deref());
    let (path, lib) = library::find_runbook(&path, &state_dir)?;
    let runbook = engine.load_with(&path, lib)?;
    let scenario = match &flags.sandbox {
        None => None,
        Some(path) => match sandbox::load_scenario(path) {
            Ok(s) => Some(s),
            Err(e) => return Err(CliError::invalid(e.to_string())),
        },
    };
    // A sandbox run takes the scenario's `[test] params` for any declared param not given with
    // -p (only declared ones: the scenario may have been written for another runbook).
    let mut params = params;
    if let Some(scenario) = &scenario {
        for (key, value) in sandbox::test_params(scenario) {
            let declared = runbook.meta.params.iter().any(|p| p.name == key);
            if declared && !params.iter().any(|(k, _)| *k == key) {
                params.push((key, value));
            }
        }
    }
    // Secret values given with -p are masked from here on, even in the message that refuses
    // an ill-typed one.
    let secrets = params.iter().filter(|(k, _)| runbook.meta.params.iter().any(|p| p.secret && &p.name == k));
    crate::run::redact::register(&crate::run::redact::Redactor::new(secrets.map(|(_, v)| v.clone())));
    // Params are refused before anything is shown or started (the engine checks them again).
    if let Err(why) = runbook.meta.resolve_params(&params) {
        return Err(CliError::invalid(why));
    }
    // So are `--allow` patterns that could allow nothing (not only at the first change).
    if let Some(why) = crate::engine::check::allow_problem(&flags.allow, &runbook.meta.scope) {
        return Err(CliError::invalid(why));
    }
    let break_glass = match flags.break_glass.as_deref().map(str::trim) {
        None => None,
        Some("") => {
            return Err(CliError::invalid("--break-glass: give the reason (it is journaled and announced)"));
        }
        Some(reason) => {
            errln!(
                "BREAK-GLASS by {}: every approval of this run is granted — {}",
                crate::run::current_user(),
                render::safe(reason)
            );
            Some(reason.to_string())
        }
    };
    let text = flags.output == Output::Text;
    let cancel = CancellationToken::new();
    let terminate = CancellationToken::new();
    let reporter = Arc::new(render::TextReporter::new(!text));
    // The printed `resume`/`undo` commands name the base state dir: they find sandbox runs too.
    reporter.set_state_dir(&state_dir);
    spawn_signals(cancel.clone(), terminate.clone(), reporter.clone());
    // Sandbox runs keep their journals and locks apart: they never block or mix with real runs.
    let state_dir = if flags.sandbox.is_some() { sandbox_state_dir(&state_dir) } else { state_dir };
    let mut opts = RunOptions::new(state_dir);
    opts.terminate = terminate;
    opts.dry_run = flags.dry_run;
    opts.yes = flags.yes;
    opts.timeout = flags.timeout.map(Dur::get);
    opts.cancel = cancel;
    opts.reporter = reporter.clone();
    opts.allow = flags.allow;
    opts.settings.kubeconfig = flags.reach.kubeconfig;
    opts.take_over = flags.force;
    opts.break_glass = break_glass;
    let sandbox = match (&flags.sandbox, scenario) {
        (Some(path), Some(scenario)) => match start_sandbox(path, scenario, &mut opts, text).await {
            Ok(sb) => Some(sb),
            Err(why) => return Err(CliError::invalid(why)),
        },
        _ => None,
    };
    opts.locks = crate::providers::k8s::lease::lock_opener(&flags.reach.lock, &opts.settings)
        .map_err(CliError::invalid)?;
    // Preflight: credentials, subscription and contexts are there before the first probe.
    let needs = crate::engine::preflight::needs(&runbook, &params);
    if let Some(why) =
        crate::engine::preflight::problems(&crate::engine::preflight::check(&needs, &opts.settings))
    {
        if let Some(sb) = sandbox {
            sb.stop().await;
        }
        return Err(CliError::invalid(format!(
            "{why} (`rollbook doctor {}` shows every check)",
            path.display()
        )));
    }
    if text {
        render::run_header(&runbook, flags.dry_run);
    }
    let ended = execute(&engine, &runbook, &params, opts, &reporter, text).await;
    if let Some(sb) = sandbox {
        if text {
            sandbox::print_changes(&sb);
        }
        sb.stop().await;
    }
    ended
}

/// Runs (or resumes) a loaded runbook and prints its report; an unsuccessful run is
/// [`CliError::Finished`] with its exit code.
async fn execute(
    engine: &Engine,
    runbook: &crate::engine::Runbook,
    params: &[(String, String)],
    opts: RunOptions,
    reporter: &render::TextReporter,
    text: bool,
) -> CliResult {
    match engine.run(runbook, params, opts).await {
        Ok(report) => {
            reporter.finish();
            if text {
                render::run_report(&report);
            } else {
                render::json(&report)?;
            }
            if report.exit_code == 0 { Ok(()) } else { Err(CliError::Finished(report.exit_code)) }
        }
        Err(e) => {
            reporter.finish();
            Err(e.into())
        }
    }
}

/// Where sandbox runs keep their journals and locks, under the state dir.
fn sandbox_state_dir(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("sandbox")
}

/// Starts the simulator for a sandbox run (or its resume) and points `opts` at it; the
/// scenario's path and hash go into the journal.
async fn start_sandbox(
    path: &std::path::Path,
    scenario: sandbox::Scenario,
    opts: &mut RunOptions,
    text: bool,
) -> Result<sandbox::Sandbox, String> {
    let hash = scenario_hash(path)?;
    let sb = sandbox::Sandbox::start(scenario, &opts.state_dir).await?;
    opts.settings = sb.settings(&opts.settings);
    opts.url_rewrites = sb.url_rewrites();
    // A rehearsal checks what the runbook does, not how long it waits.
    opts.clock = sb.clock();
    opts.sandbox = Some(crate::run::ScenarioInfo {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string(),
        hash,
    });
    if text {
        sandbox::print_start(&sb, path);
    }
    Ok(sb)
}

/// `sha256:` of a scenario file's content.
fn scenario_hash(path: &std::path::Path) -> Result<String, String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read scenario `{}`: {e}", path.display()))?;
    Ok(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))))
}

/// The flags of `rollbook resume` and `rollbook undo`.
#[derive(clap::Args)]
struct ResumeFlags {
    /// Resume even though the runbook changed since the run began; take over file locks left by
    /// a dead run that completed stages.
    #[arg(long)]
    force: bool,
    /// Answer every approval with yes (also continues a run that stopped at a denied approval).
    #[arg(long)]
    yes: bool,
    /// A param to give again (secret params are never journaled), KEY=VALUE.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Where journals are.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Stop the resumed run after this long.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<Dur>,
    #[command(flatten)]
    reach: ReachFlags,
    /// For a sandbox run: the scenario to rebuild the simulator from, when the recorded one
    /// changed or moved (by default the recorded file, refused if its content changed).
    #[arg(long, value_name = "SCENARIO")]
    sandbox: Option<PathBuf>,
    /// A call left in doubt that you checked by other means and that did NOT take effect: its
    /// call number or journal line (see `rollbook runs show`); journaled with your user name,
    /// and sent again when the run reaches it (repeatable).
    #[arg(long = "assume-not-applied", value_name = "CALL")]
    assume_not_applied: Vec<u64>,
}

async fn resume_command(run_id: String, flags: ResumeFlags, undo: bool) -> CliResult {
    use crate::run::{RunMode, RunStatus};
    let extra = parse_params(&flags.params).map_err(CliError::invalid)?;
    let base = run::state_dir(flags.state_dir.as_deref());
    let journal = find_run(&base, &run_id).map_err(CliError::invalid)?;
    let run_id = journal.file_stem().and_then(|s| s.to_str()).unwrap_or(&run_id).to_string();
    // The state dir the run lives in (the sandbox one for sandbox runs).
    let state_dir = journal.parent().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or(base);
    let read = match run::journal::read_journal(&journal) {
        Ok(read) => read,
        Err(e) => return Err(CliError::invalid(format!("cannot read the journal of run `{run_id}`: {e}"))),
    };
    let mode = run::journal::mode_of(&read.records);
    let recorded_scenario = match read.records.first().map(|r| &r.event) {
        Some(run::Event::RunStarted { scenario, .. }) => scenario.clone(),
        _ => None,
    };
    if undo && run::journal::summarize(&read.records).is_some_and(|r| r.status == "succeeded") {
        return Err(CliError::invalid(format!(
            "run `{run_id}` succeeded: `rollbook undo` undoes stopped, denied or failed runs only"
        )));
    }
    let ended: Vec<RunStatus> = if undo {
        vec![
            RunStatus::Failed,
            RunStatus::UndoFailed,
            RunStatus::Denied,
            RunStatus::Cancelled,
            RunStatus::Locked,
            RunStatus::Incomplete,
        ]
    } else if flags.yes {
        vec![RunStatus::Denied]
    } else {
        Vec::new()
    };
    let engine = Engine::new();
    let (runbook, params, mut resume) =
        engine.prepare_resume_after(&state_dir, &run_id, flags.force, &extra, &ended)?;
    resume.undo = undo;
    for id in &flags.assume_not_applied {
        match resume.replay.assume_not_applied(*id) {
            Some(d) => resume.assumed_not_applied.push(d),
            None => {
                return Err(CliError::invalid(format!(
                    "--assume-not-applied {id}: no call {id} is in doubt in run `{run_id}` (see `rollbook runs show {run_id}`)"
                )));
            }
        }
    }
    let text = flags.output == Output::Text;
    if text {
        for d in resume.replay.in_doubt() {
            errln!(
                "call {} `{}` (journal line {}) was sent at {} and has no outcome: it will be checked before anything is sent again",
                d.call,
                d.primitive,
                d.seq,
                d.started.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    }
    let cancel = CancellationToken::new();
    let terminate = CancellationToken::new();
    let reporter = Arc::new(render::TextReporter::new(!text));
    reporter.set_state_dir(&state_dir);
    reporter.set_run_id(&run_id);
    spawn_signals(cancel.clone(), terminate.clone(), reporter.clone());
    let mut opts = RunOptions::new(state_dir);
    opts.terminate = terminate;
    opts.yes = flags.yes;
    opts.timeout = flags.timeout.map(Dur::get);
    opts.cancel = cancel;
    opts.reporter = reporter.clone();
    opts.settings.kubeconfig = flags.reach.kubeconfig;
    opts.take_over = flags.force;
    let sandbox = match (mode, &flags.sandbox) {
        (RunMode::Sandbox, given) => {
            // A sandbox run continues only in a simulator rebuilt from its own scenario.
            let path = match (given, &recorded_scenario) {
                (Some(p), _) => p.clone(),
                (None, Some(info)) => {
                    let path = PathBuf::from(&info.path);
                    match scenario_hash(&path) {
                        Ok(hash) if hash == info.hash => path,
                        Ok(_) => {
                            return Err(CliError::invalid(format!(
                                "run `{run_id}` is a sandbox run and its scenario `{}` changed since it began; give the scenario to rebuild the simulator from with --sandbox FILE",
                                info.path
                            )));
                        }
                        Err(why) => {
                            return Err(CliError::invalid(format!(
                                "run `{run_id}` is a sandbox run and its scenario is gone ({why}); give it again with --sandbox FILE"
                            )));
                        }
                    }
                }
                (None, None) => {
                    return Err(CliError::invalid(format!(
                        "run `{run_id}` is a sandbox run with no recorded scenario; give it with --sandbox FILE"
                    )));
                }
            };
            let scenario = sandbox::load_scenario(&path).map_err(CliError::invalid)?;
            match start_sandbox(&path, scenario, &mut opts, text).await {
                Ok(sb) => Some(sb),
                Err(why) => return Err(CliError::invalid(why)),
            }
        }
        (_, Some(_)) => {
            return Err(CliError::invalid(format!(
                "run `{run_id}` is a {} run: it cannot continue in a simulator (drop --sandbox)",
                mode.as_str()
            )));
        }
        _ => None,
    };
    opts.locks = crate::providers::k8s::lease::lock_opener(&flags.reach.lock, &opts.settings)
        .map_err(CliError::invalid)?;
    opts.resume = Some(resume);
    if text {
        render::run_header(&runbook, false);
        if undo {
            errln!("undoing run {run_id}: its completed stages' undos run, newest first");
        }
    }
    let ended = execute(&engine, &runbook, &params, opts, &reporter, text).await;
    if let Some(sb) = sandbox {
        if text {
            sandbox::print_changes(&sb);
        }
        sb.stop().await;
    }
    match ended {
        // For `undo`, a run that ended failed with every undo done is what was asked for.
        Err(CliError::Finished(code)) if undo && code == RunStatus::Failed.exit_code() => Ok(()),
        ended => ended,
    }
}

/// Interrupts: the first Ctrl-C stops the run at its next safe point (on a terminal the
/// operator then chooses: undo the completed stages, or leave the run resumable); SIGTERM stops
/// it the same way without asking (resumable). A second signal stops at once, still resumable:
/// exit 3 with the commands that continue or undo the run.
fn spawn_signals(
    cancel: CancellationToken,
    terminate: CancellationToken,
    reporter: Arc<render::TextReporter>,
) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        #[cfg(unix)]
        let term = async move {
            match sigterm.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::pin!(term);
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if r.is_err() { return; }
                errln!("\ninterrupted: stopping at the next safe point (press Ctrl-C again to stop at once; the run stays resumable)");
                cancel.cancel();
            }
            _ = &mut term => {
                errln!("\nterminated: stopping at the next safe point; the run stays resumable");
                terminate.cancel();
            }
        }
        tokio::select! {
            r = tokio::signal::ctrl_c() => { if r.is_err() { return; } }
            _ = &mut term => {}
        }
        errln!("stopped at once.");
        if let Some(id) = reporter.run_id() {
            render::resume_hint(&id, reporter.state_dir().as_deref());
        }
        std::process::exit(run::RunStatus::Interrupted.exit_code());
    });
}

/// `rollbook doctor [RUNBOOK]`: every preflight check, one a line; exit 2 when one fails.
fn doctor_command(
    path: Option<PathBuf>,
    raw_params: &[String],
    kubeconfig: Option<PathBuf>,
    state_dir: &std::path::Path,
) -> CliResult {
    use crate::engine::preflight::{self, Finding, Needs};
    let params = parse_params(raw_params).map_err(CliError::invalid)?;
    let mut settings = crate::providers::Settings::from_env();
    settings.kubeconfig = kubeconfig;
    let needs = match &path {
        Some(path) => {
            let engine = Engine::new();
            let (path, lib) = library::find_runbook(path, state_dir)?;
            let runbook = engine.load_with(&path, lib)?;
            if let Err(why) = runbook.meta.resolve_params(&params) {
                return Err(CliError::invalid(why));
            }
            preflight::needs(&runbook, &params)
        }
        // Without a runbook: everything a runbook could need.
        None => Needs { azure: true, kubernetes: true, ..Needs::default() },
    };
    let mut findings = vec![Finding {
        what: "state dir".into(),
        result: run::ensure_state_dir(state_dir).map(|()| state_dir.display().to_string()),
    }];
    findings.extend(preflight::check(&needs, &settings));
    if path.is_some() && !needs.azure && !needs.kubernetes {
        outln!("ok       the runbook calls neither Azure nor Kubernetes");
    }
    let mut missing = 0;
    for f in &findings {
        match &f.result {
            Ok(found) => outln!("ok       {}: {found}", f.what),
            Err(why) => {
                missing += 1;
                outln!("missing  {}: {why}", f.what);
            }
        }
    }
    if missing > 0 { Err(CliError::Problems(format!("{missing} check(s) failed"))) } else { Ok(()) }
}

fn check_command(paths: &[PathBuf], state_dir: &std::path::Path) -> CliResult {
    let engine = Engine::new();
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(crate::model::file::files_under(p, &|p| {
                p.extension().and_then(|e| e.to_str()) == Some("rhai")
            }));
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err(CliError::invalid("no .rhai files found in the given folders"));
    }
    // Checked on every core (a library of a thousand runbooks in well under a second), and
    // reported in the order given.
    let reports = check_all(&engine, &files, state_dir);
    let mut bad = 0;
    for (file, report) in files.iter().zip(reports) {
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                render::error(&e);
                bad += 1;
                continue;
            }
        };
        for w in &report.warnings {
            errln!("warning: {}: {}", w.location(), w.message);
            if let Some(help) = &w.help {
                errln!("  help: {help}");
            }
        }
        let diags = report.problems;
        if diags.is_empty() {
            outln!("ok    {}", file.display());
        } else {
            bad += 1;
            for d in diags {
                render::diagnostic(&d);
            }
        }
    }
    if bad > 0 {
        Err(CliError::Problems(format!("{bad} of {} runbook(s) have problems", files.len())))
    } else {
        Ok(())
    }
}

/// The check report of each file (or why its library cannot be had), in the order of `files`,
/// worked out on as many threads as there are cores.
fn check_all(
    engine: &Engine,
    files: &[PathBuf],
    state_dir: &std::path::Path,
) -> Vec<Result<crate::engine::check::Report, String>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let check = |file: &PathBuf| {
        Engine::library_for(file, state_dir)
            .map(|library| crate::engine::check::check_report(engine, file, library))
            .map_err(|e| e.to_string())
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len());
    if workers <= 1 {
        return files.iter().map(check).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<crate::engine::check::Report, String>>>> =
        files.iter().map(|_| Mutex::new(None)).collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(file) = files.get(i) else { break };
            let report = check(file);
            if let Ok(mut slot) = slots[i].lock() {
                *slot = Some(report);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            // A thread that cannot be started only makes the check slower.
            let _ = std::thread::Builder::new()
                .name("check".into())
                .stack_size(crate::engine::SCRIPT_STACK)
                .spawn_scoped(scope, work);
        }
        work();
    });
    slots
        .into_iter()
        .zip(files)
        .map(|(slot, file)| {
            // Every slot is filled once the scope ends; were one not, its file is checked here.
            slot.into_inner().ok().flatten().unwrap_or_else(|| check(file))
        })
        .collect()
}

fn runs_command(command: RunsCommand) -> CliResult {
    match command {
        RunsCommand::List { output, ids, mode, state_dir } => {
            let dir = run::state_dir(state_dir.as_deref());
            match all_runs(&dir) {
                Ok(runs) => {
                    let runs: Vec<run::RunSummary> = runs
                        .into_iter()
                        .map(|(r, _)| r)
                        .filter(|r| mode.as_deref().is_none_or(|m| r.mode == m))
                        .collect();
                    if ids {
                        use std::io::Write as _;
                        let mut out = std::io::stdout().lock();
                        for r in &runs {
                            if writeln!(out, "{}", r.id).is_err() {
                                break;
                            }
                        }
                        return Ok(());
                    }
                    match output {
                        Output::Json => render::json(&runs)?,
                        Output::Text => render::runs_table(&runs),
                    }
                    Ok(())
                }
                Err(e) => Err(CliError::invalid(format!("cannot read runs in `{}`: {e}", dir.display()))),
            }
        }
        RunsCommand::Show { run_id, output, state_dir } => {
            let dir = run::state_dir(state_dir.as_deref());
            let path = find_run(&dir, &run_id).map_err(CliError::invalid)?;
            match run::journal::read_journal(&path) {
                Ok(read) => {
                    match output {
                        Output::Json => render::json(&read.records)?,
                        Output::Text => render::timeline(&path, &read),
                    }
                    Ok(())
                }
                Err(e) => Err(CliError::invalid(format!("cannot read `{}`: {e}", path.display()))),
            }
        }
    }
}

/// Every run, real and sandbox, newest first, with its journal.
fn all_runs(dir: &std::path::Path) -> std::io::Result<Vec<(run::RunSummary, PathBuf)>> {
    let mut all = Vec::new();
    for d in [dir.to_path_buf(), sandbox_state_dir(dir)] {
        for r in run::journal::list_runs(&d)? {
            let path = run::journal::journal_path(&d, &r.id);
            all.push((r, path));
        }
    }
    all.sort_by(|(a, _), (b, _)| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
    Ok(all)
}

/// The journal of run `id`: its full id, `last` (the newest run), or a unique prefix or suffix.
fn find_run(dir: &std::path::Path, id: &str) -> Result<PathBuf, String> {
    if !id.is_empty() && !id.contains(['/', '\\']) && id != "." && id != ".." {
        for d in [dir.to_path_buf(), sandbox_state_dir(dir)] {
            let exact = run::journal::journal_path(&d, id);
            if exact.exists() {
                return Ok(exact);
            }
        }
    }
    let runs = all_runs(dir).map_err(|e| format!("cannot read runs in `{}`: {e}", dir.display()))?;
    if id == "last" {
        return runs
            .into_iter()
            .next()
            .map(|(_, p)| p)
            .ok_or_else(|| format!("no runs yet in `{}`", dir.display()));
    }
    let matches: Vec<_> = runs.iter().filter(|(r, _)| r.id.starts_with(id) || r.id.ends_with(id)).collect();
    match matches.as_slice() {
        [(_, path)] => Ok(path.clone()),
        [] => Err(format!("no run `{id}` in `{}` (see `rollbook runs list`)", dir.display())),
        many => Err(format!(
            "`{id}` matches {} runs ({}); give more of the id",
            many.len(),
            many.iter().take(5).map(|(r, _)| r.id.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}
