//! The command line (API.md §4): parses flags, runs commands, renders results, picks exit codes.

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
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}
macro_rules! errout {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

mod library;
mod rehearse;
mod render;
mod sandbox;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, RunOptions};
use crate::model::Dur;
use crate::run;

/// Exit code for invalid input (runbook, params, scenario, flags).
pub const EXIT_INVALID: i32 = 2;

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
enum Output {
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
        /// The run id (a unique prefix is enough).
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
        /// Where fetched libraries are cached.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Write the library, its locked dependencies and their hashes into one file (a bundle).
    Pack {
        /// The bundle to write (default `<name>-<version>.rbk`).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        out: Option<PathBuf>,
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
    /// Shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The manual page (roff), e.g. `rollbook man > rollbook.1`.
    Man,
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
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List {
        /// text or json.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Where journals are.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// One run's timeline: stages, calls, results, durations, undo.
    Show {
        /// The run id (a unique prefix is enough).
        run_id: String,
        /// text or json (the raw events).
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Where journals are.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_INVALID } else { 0 };
        }
    };
    init_tracing(cli.verbose);
    render::install_miette_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(dispatch(cli.command))
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

async fn dispatch(command: Command) -> i32 {
    match command {
        Command::Run { runbook, params, flags } => run_command(runbook, params, flags).await,
        Command::Test { paths, junit } => rehearse::test_command(&paths, junit.as_deref()).await,
        Command::Sim { command: SimCommand::Serve { scenario, listen, kubeconfig } } => {
            match crate::sim::serve(&scenario, listen, kubeconfig.as_deref()).await {
                Ok(()) => 0,
                Err(e) => render::invalid(&e.to_string()),
            }
        }
        Command::Resume { run_id, flags } => resume_command(run_id, flags).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rollbook", &mut std::io::stdout());
            0
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => render::invalid(&format!("cannot write the man page: {e}")),
            }
        }
        Command::Check { paths, state_dir } => check_command(&paths, &run::state_dir(state_dir.as_deref())),
        Command::Lock { state_dir } => {
            library::lock_command(crate::library::Mode::Lock, &run::state_dir(state_dir.as_deref()))
        }
        Command::Update { dep, state_dir } => {
            library::lock_command(crate::library::Mode::Update(dep), &run::state_dir(state_dir.as_deref()))
        }
        Command::Pack { out, state_dir } => library::pack_command(out, &run::state_dir(state_dir.as_deref())),
        Command::Keygen { file } => library::keygen_command(&file),
        Command::Sign { key } => library::sign_command(&key),
        Command::Verify { state_dir } => library::verify_command(&run::state_dir(state_dir.as_deref())),
        Command::List { output, state_dir } => {
            library::list_command(output, &run::state_dir(state_dir.as_deref()))
        }
        Command::Runs { command } => runs_command(command),
        Command::Docs { format } => {
            let engine = Engine::new();
            let text = match format {
                DocsFormat::Markdown => crate::engine::docs::markdown(&engine),
                DocsFormat::Definitions => crate::engine::docs::definitions(&engine),
            };
            out!("{text}");
            0
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
    /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Where target locks live: `file` (the state dir) or `k8s:<context>/<namespace>` (Leases).
    #[arg(long, value_name = "BACKEND", default_value = "file")]
    lock: String,
}

/// The lock backend `--lock` names (`None`: files in the state dir).
fn lock_opener(
    spec: &str,
    settings: &crate::providers::Settings,
) -> Result<Option<crate::run::locks::LockOpener>, String> {
    match spec {
        "file" => Ok(None),
        _ => match spec.strip_prefix("k8s:") {
            Some(rest) => {
                let store = crate::providers::k8s::lease::LeaseStore::parse(rest)?;
                Ok(Some(crate::providers::k8s::lease::opener(settings.clone(), store)))
            }
            None => Err(format!("--lock `{spec}`: use `file` or `k8s:<context>/<namespace>`")),
        },
    }
}

async fn run_command(path: PathBuf, raw_params: Vec<String>, flags: RunFlags) -> i32 {
    let params = match parse_params(&raw_params) {
        Ok(p) => p,
        Err(why) => return render::invalid(&why),
    };
    let engine = Engine::new();
    let state_dir = run::state_dir(flags.state_dir.as_deref());
    let (path, lib) = match library::find_runbook(&path, &state_dir) {
        Ok(found) => found,
        Err(e) => return render::engine_error(e),
    };
    let runbook = match engine.load_with(&path, lib) {
        Ok(r) => r,
        Err(e) => return render::engine_error(e),
    };
    // Params are refused before anything is shown or started (the engine checks them again).
    if let Err(why) = runbook.meta.resolve_params(&params) {
        return render::invalid(&why);
    }
    let text = flags.output == Output::Text;
    let cancel = CancellationToken::new();
    let terminate = CancellationToken::new();
    let reporter = Arc::new(render::TextReporter::new(!text));
    reporter.set_state_dir(&state_dir);
    spawn_signals(cancel.clone(), terminate.clone(), reporter.clone());
    let mut opts = RunOptions::new(state_dir);
    opts.terminate = terminate;
    opts.dry_run = flags.dry_run;
    opts.yes = flags.yes;
    opts.timeout = flags.timeout.map(Dur::get);
    opts.cancel = cancel;
    opts.reporter = reporter.clone();
    opts.allow = flags.allow;
    opts.settings.kubeconfig = flags.kubeconfig;
    let sandbox = match &flags.sandbox {
        None => None,
        Some(path) => {
            let scenario = match crate::sim::Scenario::load(path) {
                Ok(s) => s,
                Err(e) => return render::invalid(&e.to_string()),
            };
            match sandbox::Sandbox::start(scenario, &opts.state_dir.join("sandbox")).await {
                Ok(sb) => {
                    opts.settings = sb.settings(&opts.settings);
                    opts.url_rewrites = sb.url_rewrites();
                    // A rehearsal checks what the runbook does, not how long it waits.
                    opts.clock = Arc::new(crate::providers::ScaledClock::new(rehearse::REHEARSAL_SPEEDUP));
                    if text {
                        sandbox::print_start(&sb, path);
                    }
                    Some(sb)
                }
                Err(why) => return render::invalid(&why),
            }
        }
    };
    opts.locks = match lock_opener(&flags.lock, &opts.settings) {
        Ok(l) => l,
        Err(why) => return render::invalid(&why),
    };
    if text {
        render::run_header(&runbook, flags.dry_run);
    }
    let mode = if sandbox.is_some() { Some("sandbox") } else { None };
    let code = execute(&engine, &runbook, &params, opts, &reporter, text, mode).await;
    if let Some(sb) = sandbox {
        if text {
            sandbox::print_changes(&sb);
        }
        sb.stop().await;
    }
    code
}

/// Runs (or resumes) a loaded runbook and prints its report; returns the exit code.
async fn execute(
    engine: &Engine,
    runbook: &crate::engine::Runbook,
    params: &[(String, String)],
    opts: RunOptions,
    reporter: &render::TextReporter,
    text: bool,
    mode: Option<&str>,
) -> i32 {
    match engine.run(runbook, params, opts).await {
        Ok(mut report) => {
            reporter.finish();
            if let Some(mode) = mode {
                report.mode = mode.to_string();
            }
            if text {
                render::run_report(&report);
            } else {
                outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            }
            report.exit_code
        }
        Err(e) => {
            reporter.finish();
            render::engine_error(e)
        }
    }
}

/// The flags of `rollbook resume`.
#[derive(clap::Args)]
struct ResumeFlags {
    /// Resume even though the runbook changed since the run began.
    #[arg(long)]
    force: bool,
    /// Answer every approval with yes.
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
    /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Where target locks live: `file` (the state dir) or `k8s:<context>/<namespace>` (Leases).
    #[arg(long, value_name = "BACKEND", default_value = "file")]
    lock: String,
}

async fn resume_command(run_id: String, flags: ResumeFlags) -> i32 {
    let extra = match parse_params(&flags.params) {
        Ok(p) => p,
        Err(why) => return render::invalid(&why),
    };
    let state_dir = run::state_dir(flags.state_dir.as_deref());
    let run_id = match find_run(&state_dir, &run_id) {
        Ok(path) => path.file_stem().and_then(|s| s.to_str()).unwrap_or(&run_id).to_string(),
        Err(why) => return render::invalid(&why),
    };
    let engine = Engine::new();
    let (runbook, params, resume) = match engine.prepare_resume(&state_dir, &run_id, flags.force, &extra) {
        Ok(prepared) => prepared,
        Err(e) => return render::engine_error(e),
    };
    let text = flags.output == Output::Text;
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
    opts.settings.kubeconfig = flags.kubeconfig;
    opts.locks = match lock_opener(&flags.lock, &opts.settings) {
        Ok(l) => l,
        Err(why) => return render::invalid(&why),
    };
    opts.resume = Some(resume);
    if text {
        render::run_header(&runbook, false);
    }
    execute(&engine, &runbook, &params, opts, &reporter, text, None).await
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

fn check_command(paths: &[PathBuf], state_dir: &std::path::Path) -> i32 {
    let engine = Engine::new();
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect_rhai(p, &mut files);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return render::invalid("no .rhai files found in the given folders");
    }
    let mut bad = 0;
    for file in &files {
        let diags = match Engine::library_for(file, state_dir) {
            Ok(library) => crate::engine::check::check_with(&engine, file, library),
            Err(e) => {
                render::invalid(&e.to_string());
                bad += 1;
                continue;
            }
        };
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
        errln!("{bad} of {} runbook(s) have problems", files.len());
        EXIT_INVALID
    } else {
        0
    }
}

fn collect_rhai(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect_rhai(&p, out);
        } else if p.extension().and_then(|e| e.to_str()) == Some("rhai") {
            out.push(p);
        }
    }
}

fn runs_command(command: RunsCommand) -> i32 {
    match command {
        RunsCommand::List { output, state_dir } => {
            let dir = run::state_dir(state_dir.as_deref());
            match run::journal::list_runs(&dir) {
                Ok(runs) => {
                    match output {
                        Output::Json => {
                            outln!("{}", serde_json::to_string_pretty(&runs).unwrap_or_default())
                        }
                        Output::Text => render::runs_table(&runs),
                    }
                    0
                }
                Err(e) => render::invalid(&format!("cannot read runs in `{}`: {e}", dir.display())),
            }
        }
        RunsCommand::Show { run_id, output, state_dir } => {
            let dir = run::state_dir(state_dir.as_deref());
            let path = match find_run(&dir, &run_id) {
                Ok(p) => p,
                Err(why) => return render::invalid(&why),
            };
            match run::journal::read_journal(&path) {
                Ok(read) => {
                    match output {
                        Output::Json => {
                            outln!("{}", serde_json::to_string_pretty(&read.records).unwrap_or_default())
                        }
                        Output::Text => render::timeline(&path, &read),
                    }
                    0
                }
                Err(e) => render::invalid(&format!("cannot read `{}`: {e}", path.display())),
            }
        }
    }
}

fn find_run(dir: &std::path::Path, id: &str) -> Result<PathBuf, String> {
    let exact = run::journal::journal_path(dir, id);
    if exact.exists() {
        return Ok(exact);
    }
    let runs =
        run::journal::list_runs(dir).map_err(|e| format!("cannot read runs in `{}`: {e}", dir.display()))?;
    let matches: Vec<_> = runs.iter().filter(|r| r.id.starts_with(id)).collect();
    match matches.as_slice() {
        [one] => Ok(run::journal::journal_path(dir, &one.id)),
        [] => Err(format!("no run `{id}` in `{}` (see `rollbook runs list`)", dir.display())),
        many => Err(format!("`{id}` matches {} runs; give more of the id", many.len())),
    }
}
