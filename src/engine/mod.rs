//! The Rhai host, and the only module that imports rhai: builds a sandboxed engine per run,
//! binds primitives and built-ins to the run's session, evaluates, and undoes on failure.

mod builtin_list;
mod builtins;
pub mod check;
pub mod diag;
pub mod docs;
pub mod find;
mod invoke;
pub mod meta;
mod modules;
mod names;
mod planned;
pub mod preflight;
mod session;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rhai::{AST, Dynamic, EvalAltResult, FuncRegistration, Map, Module, NativeCallContext, Scope};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub use diag::Diagnostic;
pub use meta::{ParamSpec, ParamType, RunbookMeta};
pub use modules::STDLIB;

/// Stack size of threads that compile or evaluate script code (deep but bounded nesting must
/// not crash).
pub const SCRIPT_STACK: usize = builtins::SCRIPT_STACK;

use crate::providers::{CallCx, DynPrimitive, Primitive};
use crate::run::{Event, Journal, PlanEntry, Reporter, RunStatus, RunbookInfo};
use session::{Session, Stop};

/// Limits every script runs under: a runaway script is stopped, not the machine.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Script operations per evaluation.
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting (top level, inside functions).
    pub max_expr_depths: (usize, usize),
    /// Bytes in one string.
    pub max_string_size: usize,
    /// Items in one array, nested arrays' items included.
    pub max_array_size: usize,
    /// Properties in one map, nested maps' properties included (Rhai counts a value's maps as
    /// a whole: a `parallel` result over a fleet holds a few maps per item).
    pub max_map_size: usize,
    /// Modules one run may import.
    pub max_modules: usize,
    /// Bytes the process may grow by while a run's script is evaluated (captured closure values
    /// included); checked on Linux, where the process's resident size can be read. 0: unchecked.
    pub max_memory: u64,
    /// The highest `concurrency` a `parallel` call may ask for.
    pub max_concurrency: usize,
    /// How deeply `parallel` calls may nest inside each other's items.
    pub max_parallel_nesting: usize,
    /// Worker threads all `parallel` batches of one run may use at once (the calling thread
    /// always works too, so nested batches never wait for each other).
    pub max_parallel_threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_expr_depths: (64, 32),
            max_string_size: 4 * 1024 * 1024,
            max_array_size: 100_000,
            // Room for fleets: 100,000 items of a `parallel` batch with outputs of ~10 properties.
            max_map_size: 1_000_000,
            max_modules: 64,
            max_memory: 512 * 1024 * 1024,
            max_concurrency: 256,
            max_parallel_nesting: 3,
            max_parallel_threads: 256,
        }
    }
}

/// A runbook read and compiled, its metadata validated.
pub struct Runbook {
    /// The file.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// `sha256:` of the text.
    pub hash: String,
    /// `RUNBOOK`, validated.
    pub meta: RunbookMeta,
    /// The library it belongs to, with its dependencies resolved and locked.
    pub library: Option<Arc<crate::library::Resolved>>,
    /// Every module it imports (directly or through modules), with where each came from.
    pub modules: Vec<crate::run::ModuleInfo>,
    ast: AST,
}

/// Why a runbook could not be started (exit 2: invalid input).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The runbook file could not be read.
    #[error("cannot read runbook `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A syntax or metadata error, with its place in the script.
    #[error("{0}")]
    Script(Box<Diagnostic>),
    /// Params did not match the declarations.
    #[error("{0}")]
    Params(String),
    /// The state directory cannot hold a journal.
    #[error("{0}")]
    StateDir(String),
    /// The run cannot be resumed (finished, runbook changed, secret params missing).
    #[error("{0}")]
    Resume(String),
    /// Another live process is acting for this run (exit 5).
    #[error("{0}")]
    Locked(String),
    /// The runbook's library, its lock or a dependency cannot be used.
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Record mutating calls as planned instead of performing them.
    pub dry_run: bool,
    /// Answer every approval with yes.
    pub yes: bool,
    /// Where journals go.
    pub state_dir: PathBuf,
    /// Wall-clock limit for the run.
    pub timeout: Option<Duration>,
    /// Cancelled by the caller on an interrupt (Ctrl-C): the run stops at the next safe point
    /// (a mutating call in flight finishes first); on a terminal the operator chooses between
    /// undoing the completed stages and leaving the run resumable, elsewhere it stays resumable.
    pub cancel: CancellationToken,
    /// Cancelled by the caller on SIGTERM: as `cancel`, but never asks; the run stays resumable.
    pub terminate: CancellationToken,
    /// Output and questions.
    pub reporter: Arc<dyn Reporter>,
    /// URL prefix rewrites (the sandbox points scenario URLs at the simulator).
    pub url_rewrites: Vec<(String, String)>,
    /// Connection settings; `Settings::from_env()` by default.
    pub settings: crate::providers::Settings,
    /// The clock every wait goes through (tests skip waits with `SkipClock`).
    pub clock: Arc<dyn crate::providers::Clock>,
    /// `--allow` patterns that narrow the runbook's scope for this run.
    pub allow: Vec<String>,
    /// Continue an interrupted run instead of starting a new one (`rollbook resume`).
    pub resume: Option<ResumeFrom>,
    /// Where target locks are kept (`--lock`); `None`: files in the state dir.
    pub locks: Option<crate::run::locks::LockOpener>,
    /// Take over file locks left by dead runs even when those runs completed stages (`--force`).
    pub take_over: bool,
    /// The scenario of a `--sandbox` run (journaled, so a resume rebuilds the same simulator).
    pub sandbox: Option<crate::run::ScenarioInfo>,
    /// The id to give a new run (a server answers with it before the run starts); `None`: a
    /// fresh one.
    pub run_id: Option<String>,
    /// What started the run (journaled in its first event), e.g. the alert `rollbook serve` got.
    pub trigger: Option<serde_json::Value>,
    /// `--break-glass REASON`: every approval is granted, journaled with the reason and user.
    pub break_glass: Option<String>,
}

/// What `Engine::prepare_resume` gives back: the runbook, its params, and the run to continue.
pub type PreparedResume = (Runbook, Vec<(String, String)>, ResumeFrom);

/// An interrupted run to continue: its id and what its journal says was done.
#[derive(Clone)]
pub struct ResumeFrom {
    /// The run to continue (its journal is appended to).
    pub run_id: String,
    /// Completed stages and calls, answered approvals, calls in doubt.
    pub replay: crate::run::replay::Replay,
    /// Whether `--force` overrode a changed runbook.
    pub forced: bool,
    /// `rollbook undo`: replay the completed stages, then undo them instead of going on.
    pub undo: bool,
    /// Calls in doubt an operator checked by other means and says did not take effect
    /// (`--assume-not-applied`); journaled with who said so, then sent again when reached.
    pub assumed_not_applied: Vec<crate::run::replay::InDoubt>,
    /// The mode the run began in: a sandbox run continues only in a simulator.
    pub mode: crate::run::RunMode,
}

impl RunOptions {
    /// What this run acts on, as the journal and the report name it.
    pub fn mode(&self) -> crate::run::RunMode {
        match (self.dry_run, &self.sandbox) {
            (true, _) => crate::run::RunMode::DryRun,
            (false, Some(_)) => crate::run::RunMode::Sandbox,
            (false, None) => crate::run::RunMode::Real,
        }
    }

    /// Options for a quiet, non-interactive run with journals under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        RunOptions {
            dry_run: false,
            yes: false,
            state_dir: state_dir.into(),
            timeout: None,
            cancel: CancellationToken::new(),
            terminate: CancellationToken::new(),
            reporter: Arc::new(crate::run::QuietReporter),
            url_rewrites: Vec::new(),
            settings: crate::providers::Settings::from_env(),
            clock: Arc::new(crate::providers::RealClock),
            allow: Vec::new(),
            resume: None,
            locks: None,
            take_over: false,
            sandbox: None,
            run_id: None,
            trigger: None,
            break_glass: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Run id (for `rollbook runs show`).
    pub run_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// The process exit code.
    pub exit_code: i32,
    /// The script's final value, when it succeeded.
    pub value: Option<serde_json::Value>,
    /// The error in words, when it did not.
    pub error: Option<String>,
    /// The error with its place in the script.
    #[serde(skip)]
    pub diagnostic: Option<Box<Diagnostic>>,
    /// Under `--dry-run`: what would have been changed.
    pub plan: Vec<PlanEntry>,
    /// Stages undone, in the order undone.
    pub undone: Vec<String>,
    /// Stages whose undo failed or did not run (a person must look).
    pub undo_pending: Vec<String>,
    /// The journal file.
    pub journal: PathBuf,
    /// Whether this was a dry-run.
    pub dry_run: bool,
    /// `real`, `dry-run` or `sandbox` (the command line sets `sandbox`).
    pub mode: String,
    /// Every stage the run reached, in order, with what became of it.
    pub stages: Vec<StageReport>,
    /// Every mutating call, performed or planned, in order.
    pub mutations: Vec<MutationReport>,
}

/// One stage of a run, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Its name.
    pub name: String,
    /// `completed`, `failed`, `undone`, `undo_failed` or `replayed` (done before a resume).
    pub status: String,
    /// Whether it declared an undo.
    pub has_undo: bool,
}

/// One mutating call of a run, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MutationReport {
    /// `namespace::name`.
    pub primitive: String,
    /// The resource key.
    pub target: Option<String>,
    /// The enclosing stage.
    pub stage: Option<String>,
    /// `ok`, `failed`, `in_doubt` (no answer journaled) or `planned` (dry-run).
    pub status: String,
}

impl RunReport {
    /// Stages that completed, have no undo and were not undone: kept as they are.
    pub fn kept_without_undo(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|s| !s.has_undo && matches!(s.status.as_str(), "completed" | "replayed"))
            .map(|s| s.name.clone())
            .collect()
    }
}

/// Stages and mutations of a run, read back from its journal.
fn stages_and_mutations(journal: &Path) -> (Vec<StageReport>, Vec<MutationReport>) {
    /// What the report needs of a `call_finished` line; its output, often most of the line, is
    /// skipped without being built.
    #[derive(serde::Deserialize)]
    struct Finished {
        #[serde(rename = "type")]
        kind: String,
        call: u64,
        ok: bool,
    }
    /// What the report needs of a `stage_finished` line; its value (a fleet batch's results)
    /// is skipped without being built.
    #[derive(serde::Deserialize)]
    struct StageDone {
        #[serde(rename = "type")]
        kind: String,
        stage: String,
        ok: bool,
        has_undo: bool,
    }
    let mut stages: Vec<StageReport> = Vec::new();
    let mut mutations: Vec<MutationReport> = Vec::new();
    let mut calls: BTreeMap<u64, usize> = BTreeMap::new();
    let set = |stages: &mut Vec<StageReport>, name: &str, status: &str, has_undo: Option<bool>| match stages
        .iter_mut()
        .rev()
        .find(|s| s.name == name)
    {
        Some(s) => {
            s.status = status.into();
            if let Some(h) = has_undo {
                s.has_undo = h;
            }
        }
        None => stages.push(StageReport {
            name: name.into(),
            status: status.into(),
            has_undo: has_undo.unwrap_or(false),
        }),
    };
    // One line at a time: the journal of a 10,000-target run, read whole, held more memory
    // than the run itself. A journal that cannot be read leaves the report without them.
    let _ = crate::run::journal::each_line(journal, |text| {
        // Each line is read for its type once, and only the lines the report needs are parsed:
        // a fleet's journal is tens of thousands of lines, most of them reads and batch items.
        let Some(kind) = event_type(text) else { return };
        match kind {
            "call_finished" => {
                // Only the end of a mutation still open changes the report.
                if call_number(text).is_some_and(|call| !calls.contains_key(&call)) {
                    return;
                }
                if let Ok(f) = serde_json::from_str::<Finished>(text)
                    && f.kind == "call_finished"
                    && let Some(m) = calls.remove(&f.call).and_then(|i| mutations.get_mut(i))
                {
                    m.status = if f.ok { "ok" } else { "failed" }.into();
                }
                return;
            }
            "stage_finished" => {
                if let Ok(done) = serde_json::from_str::<StageDone>(text)
                    && done.kind == "stage_finished"
                {
                    let status = if done.ok { "completed" } else { "failed" };
                    set(&mut stages, &done.stage, status, Some(done.has_undo));
                }
                return;
            }
            // A call that only reads is no mutation (the text is a filter: a line that has it
            // is parsed and looked at as an event).
            "call_started" if !text.contains("\"access\":\"mutate\"") => return,
            "call_started" | "call_planned" | "replayed" | "undo_finished" => {}
            _ => return,
        }
        // A torn last line (or any line that is no event) adds nothing.
        let Ok(r) = serde_json::from_str::<crate::run::journal::Record>(text) else { return };
        match &r.event {
            Event::Replayed { what } => {
                if let Some(stage) = what.strip_prefix("stage ") {
                    set(&mut stages, stage, "replayed", None);
                }
            }
            Event::UndoFinished { stage, ok, .. } => {
                set(&mut stages, stage, if *ok { "undone" } else { "undo_failed" }, None)
            }
            Event::CallStarted {
                call,
                primitive,
                access: crate::model::Access::Mutate,
                target,
                stage,
                ..
            } => {
                calls.insert(*call, mutations.len());
                mutations.push(MutationReport {
                    primitive: primitive.clone(),
                    target: target.clone(),
                    stage: stage.clone(),
                    status: "in_doubt".into(),
                });
            }
            Event::CallPlanned { primitive, target, stage, .. } => mutations.push(MutationReport {
                primitive: primitive.clone(),
                target: target.clone(),
                stage: stage.clone(),
                status: "planned".into(),
            }),
            _ => {}
        }
    });
    (stages, mutations)
}

/// The type of a journal line, read where the journal writes it: every line starts with its
/// number and time (`{"seq":7,"ts":"…","type":"call_started",…`), so the first `"type":"` is
/// the event's own, before any text a primitive or a script chose.
fn event_type(line: &str) -> Option<&str> {
    const TAG: &str = "\"type\":\"";
    let at = line.find(TAG)? + TAG.len();
    let rest = &line[at..];
    rest.get(..rest.find('"')?)
}

/// The call number of a `call_started` or `call_finished` line, written right after its type.
fn call_number(line: &str) -> Option<u64> {
    const TAG: &str = "\",\"call\":";
    let at = line.find(TAG)? + TAG.len();
    let digits = line[at..].bytes().take_while(u8::is_ascii_digit).count();
    line[at..at + digits].parse().ok()
}

/// The embeddable engine: primitives, stdlib and limits. Cheap to share; one per process is enough.
pub struct Engine {
    primitives: BTreeMap<String, Arc<dyn DynPrimitive>>,
    limits: Limits,
    /// Built on first use, not before: loading the TLS roots is most of the start-up time
    /// of `rollbook check` and `docs`, which never send a request.
    http: crate::providers::LazyHttp,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// An engine with every primitive this build ships.
    pub fn new() -> Engine {
        let mut engine = Engine::empty();
        for p in crate::providers::builtin() {
            engine.register_dyn(p);
        }
        engine
    }

    /// An engine with built-ins only, for embedders that bring their own primitives.
    pub fn empty() -> Engine {
        Engine {
            primitives: BTreeMap::new(),
            limits: Limits::default(),
            http: crate::providers::LazyHttp::default(),
        }
    }

    /// Registers a primitive (replacing one of the same name).
    pub fn register<P: Primitive>(&mut self, primitive: P) -> &mut Self {
        self.register_dyn(crate::providers::erase(primitive))
    }

    /// Registers a type-erased primitive.
    pub fn register_dyn(&mut self, primitive: Arc<dyn DynPrimitive>) -> &mut Self {
        self.primitives.insert(primitive.meta().full_name(), primitive);
        self
    }

    /// Every registered primitive, by full name.
    pub fn primitives(&self) -> impl Iterator<Item = &Arc<dyn DynPrimitive>> {
        self.primitives.values()
    }

    /// The limits scripts run under.
    pub fn limits_mut(&mut self) -> &mut Limits {
        &mut self.limits
    }

    /// Builds a sandboxed rhai engine; with a session, primitives and built-ins act for that run.
    fn rhai(
        &self,
        root: &Path,
        slot: Arc<OnceLock<Arc<Session>>>,
        loaded: modules::Loaded,
        library: Option<Arc<crate::library::Resolved>>,
    ) -> rhai::Engine {
        let mut engine = rhai::Engine::new();
        let l = &self.limits;
        engine.set_max_operations(l.max_operations);
        engine.set_max_call_levels(l.max_call_levels);
        engine.set_max_expr_depths(l.max_expr_depths.0, l.max_expr_depths.1);
        engine.set_max_string_size(l.max_string_size);
        engine.set_max_array_size(l.max_array_size);
        engine.set_max_map_size(l.max_map_size);
        engine.set_max_modules(l.max_modules);
        engine.set_strict_variables(true);
        engine.disable_symbol("eval");
        engine.set_module_resolver(modules::Resolver::new(root.to_path_buf(), loaded).with_library(library));

        let progress_slot = slot.clone();
        engine.on_progress(move |ops| {
            let session = progress_slot.get()?;
            if let Some(limit) = session.budget.tick(ops) {
                return Some(limit.into());
            }
            match session.stop_state() {
                // A `parallel` item past its `timeout` is stopped alone (checked every 256
                // operations: reading the clock on every one would cost more than the loop).
                Stop::Running if ops % 256 == 0 && session::item_deadline().is_some_and(|d| d.passed()) => {
                    Some(session::Termination::ItemTimeout.into())
                }
                Stop::Running => None,
                Stop::Cancelled => Some(session::Termination::Cancelled.into()),
                Stop::TimedOut => Some(session::Termination::Timeout.into()),
                Stop::Interrupted => Some(session::Termination::Interrupted.into()),
            }
        });
        let print_slot = slot.clone();
        engine.on_print(move |text| {
            if let Some(s) = print_slot.get() {
                let _ = s.record(Event::Log { level: "print".into(), message: text.to_string() });
            }
        });
        engine.on_debug(
            |text, source, pos| tracing::debug!(source, %pos, "{}", crate::run::redact::scrub(text)),
        );

        let mut namespaces: BTreeMap<&'static str, Module> = BTreeMap::new();
        for primitive in self.primitives.values() {
            let meta = primitive.meta();
            let module = namespaces.entry(meta.namespace).or_default();
            let p = primitive.clone();
            let call_slot = slot.clone();
            FuncRegistration::new(meta.name)
                .with_comments([format!("/// {}", meta.doc)])
                .with_params_info(["options: Map", "Dynamic"])
                .set_into_module(module, move |ctx: NativeCallContext, options: Map| match call_slot.get() {
                    Some(session) => invoke::invoke(session, &p, options, ctx.call_position()),
                    None => Err(EvalAltResult::ErrorRuntime(
                        "primitives can only be called in a run".into(),
                        ctx.call_position(),
                    )
                    .into()),
                });
        }
        for (ns, module) in namespaces {
            engine.register_static_module(ns, module.into());
        }
        builtins::register_pure(&mut engine);
        engine
    }

    /// Reads, compiles and validates a runbook: syntax and `RUNBOOK` errors come back with
    /// their place in the file.
    pub fn load(&self, path: &Path) -> Result<Runbook, EngineError> {
        self.load_with(path, None)
    }

    /// As [`Engine::load`], inside a resolved library: imports of its dependencies resolve
    /// into their locked content.
    pub fn load_with(
        &self,
        path: &Path,
        library: Option<Arc<crate::library::Resolved>>,
    ) -> Result<Runbook, EngineError> {
        let source = crate::model::read_input_file(path)
            .map_err(|source| EngineError::Read { path: path.to_path_buf(), source })?;
        self.load_source_with(path, source, library)
    }

    /// As [`Engine::load`], from text already read.
    pub fn load_source(&self, path: &Path, source: String) -> Result<Runbook, EngineError> {
        self.load_source_with(path, source, None)
    }

    /// As [`Engine::load_with`], from text already read.
    pub fn load_source_with(
        &self,
        path: &Path,
        source: String,
        library: Option<Arc<crate::library::Resolved>>,
    ) -> Result<Runbook, EngineError> {
        let root = runbook_root(path);
        let engine = self.rhai(&root, Arc::new(OnceLock::new()), modules::Loaded::default(), library.clone());
        // `params` is declared for strict variables but not as a constant: the optimizer would
        // otherwise fold `params.x` into `()` at compile time. At run time it is a constant.
        let mut scope = Scope::new();
        scope.push("params", Map::new());
        let display = path.display().to_string();
        let mut ast = engine.compile_with_scope(&scope, &source).map_err(|e| {
            let mut d = diag::from_parse(&display, &source, &e);
            if let rhai::ParseErrorType::ModuleUndefined(name) = e.err_type() {
                let namespaces: Vec<&str> = self.primitives.values().map(|p| p.meta().namespace).collect();
                d.help = Some(match crate::model::nearest(name, namespaces.iter().copied()) {
                    Some(best) => format!(
                        "did you mean `{best}`? or import a module with `import \"std/…\" as {name};`"
                    ),
                    None => format!("import a module first, like `import \"std/health\" as {name};`"),
                });
            }
            EngineError::Script(Box::new(d))
        })?;
        ast.set_source(display.clone());
        if let Some((line, col)) = check::non_literal_imports(&source).first() {
            return Err(EngineError::Script(Box::new(Diagnostic::at(
                &display,
                Some(&source),
                Some(*line),
                Some(*col),
                "`import` takes a string literal path (like `import \"std/k8s\" as k8s;`), so what a run loads is known before it starts and journaled".into(),
                "not a literal path".into(),
                Some("write the module's path in quotes; pick between modules with `if` after importing them".into()),
            ))));
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("runbook");
        let meta = read_meta(&ast, &source, stem).map_err(|(message, needle)| {
            EngineError::Script(Box::new(diag::at_text(&display, &source, &needle, message, None)))
        })?;
        let hash = sha256_text(&source);
        let modules = module_provenance(&root, library.clone(), &source);
        Ok(Runbook { path: path.to_path_buf(), source, hash, meta, library, modules, ast })
    }

    /// The library the runbook at `path` belongs to (the nearest `rollbook.toml` at or above its
    /// folder), resolved against its lock (locked now if it has none); none outside a library.
    pub fn library_for(
        path: &Path,
        state_dir: &Path,
    ) -> Result<Option<Arc<crate::library::Resolved>>, EngineError> {
        let Some(manifest) = crate::library::manifest::find(&runbook_root(path)) else {
            return Ok(None);
        };
        let dir = runbook_root(&manifest);
        // A library unpacked from a bundle resolves from that bundle, never from git.
        let resolved = match crate::library::bundle::kept_for(&dir) {
            Some(bundle) => {
                let mut all = crate::library::bundle::open(&bundle, state_dir)?;
                let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
                if let Some(lib) = all.deps.values().find(|l| canon(&l.root) == canon(&dir)) {
                    all.root = lib.clone();
                }
                all
            }
            None => crate::library::resolve(&manifest, state_dir, crate::library::Mode::Run)?,
        };
        Ok(Some(Arc::new(resolved)))
    }

    /// The journal's record of where the runbook comes from.
    pub fn runbook_info(runbook: &Runbook) -> RunbookInfo {
        RunbookInfo {
            name: runbook.meta.name.clone(),
            version: runbook.meta.version.clone(),
            path: std::path::absolute(&runbook.path)
                .unwrap_or_else(|_| runbook.path.clone())
                .display()
                .to_string(),
            hash: runbook.hash.clone(),
            library: runbook.library.as_ref().map(|l| library_info(&l.root)),
            modules: runbook.modules.clone(),
        }
    }

    /// Prepares `rollbook resume`: reads the interrupted run's journal, reloads its runbook
    /// (refusing one that changed since the run began, unless `force`), and rebuilds its params
    /// (secret ones were never journaled and must be given again in `extra`).
    pub fn prepare_resume(
        &self,
        state_dir: &Path,
        run_id: &str,
        force: bool,
        extra: &[(String, String)],
    ) -> Result<PreparedResume, EngineError> {
        self.prepare_resume_after(state_dir, run_id, force, extra, &[])
    }

    /// As [`Engine::prepare_resume`], also for a run that ended with one of `ended` (a denied
    /// run continued with `--yes`, a failed or stopped run to undo).
    pub fn prepare_resume_after(
        &self,
        state_dir: &Path,
        run_id: &str,
        force: bool,
        extra: &[(String, String)],
        ended: &[RunStatus],
    ) -> Result<PreparedResume, EngineError> {
        let path = crate::run::journal::journal_path(state_dir, run_id);
        let read = crate::run::journal::read_journal(&path)
            .map_err(|e| EngineError::Resume(format!("cannot read the journal of run `{run_id}`: {e}")))?;
        let (info, journaled, dry_run, _yes) = crate::run::replay::resumable_after(&read.records, ended)
            .map_err(|why| EngineError::Resume(format!("run `{run_id}`: {}", why.replace("<id>", run_id))))?;
        if dry_run {
            return Err(EngineError::Resume(format!(
                "run `{run_id}` was a dry-run: it changed nothing, so run it again instead"
            )));
        }
        let library = Engine::library_for(Path::new(&info.path), state_dir)?;
        let runbook = self.load_with(Path::new(&info.path), library)?;
        let changed_module = info
            .modules
            .iter()
            .find(|m| runbook.modules.iter().find(|now| now.id == m.id).is_none_or(|now| now.hash != m.hash));
        if runbook.hash != info.hash && !force {
            return Err(EngineError::Resume(format!(
                "runbook `{}` changed since run `{run_id}` began ({} → {}); review the change, then resume with --force",
                info.path, info.hash, runbook.hash
            )));
        }
        if let (Some(m), false) = (changed_module, force) {
            return Err(EngineError::Resume(format!(
                "module `{}` imported by runbook `{}` changed since run `{run_id}` began (was {}); review the change, then resume with --force",
                m.id, info.path, m.hash
            )));
        }
        let mut params: Vec<(String, String)> = Vec::new();
        if let serde_json::Value::Object(map) = journaled {
            for (key, value) in map {
                if let Some((_, given)) = extra.iter().find(|(k, _)| *k == key) {
                    params.push((key, given.clone()));
                    continue;
                }
                let secret = runbook.meta.params.iter().any(|p| p.name == key && p.secret);
                if secret {
                    return Err(EngineError::Resume(format!(
                        "param `{key}` is secret and was not journaled: give it again with -p {key}=…"
                    )));
                }
                params.push((key, param_text(&value)));
            }
        }
        for (key, given) in extra {
            if !params.iter().any(|(k, _)| k == key) {
                params.push((key.clone(), given.clone()));
            }
        }
        let replay = crate::run::replay::Replay::from_records(&read.records);
        let forced = force && (runbook.hash != info.hash || changed_module.is_some());
        Ok((
            runbook,
            params,
            ResumeFrom {
                run_id: run_id.to_string(),
                replay,
                forced,
                undo: false,
                assumed_not_applied: Vec::new(),
                mode: crate::run::journal::mode_of(&read.records),
            },
        ))
    }

    /// Runs a loaded runbook with `-p` params.
    /// Errors before the run starts are `EngineError`s
    /// (exit 2); everything after is in the report, and in the journal.
    pub async fn run(
        &self,
        runbook: &Runbook,
        params: &[(String, String)],
        opts: RunOptions,
    ) -> Result<RunReport, EngineError> {
        let values = runbook.meta.resolve_params(params).map_err(EngineError::Params)?;
        crate::run::ensure_state_dir(&opts.state_dir).map_err(EngineError::StateDir)?;
        let run_id = match &opts.resume {
            Some(r) => r.run_id.clone(),
            None => opts.run_id.clone().unwrap_or_else(crate::run::journal::new_run_id),
        };
        if let Some(r) = &opts.resume
            && r.mode == crate::run::RunMode::Sandbox
            && opts.sandbox.is_none()
        {
            return Err(EngineError::Resume(format!(
                "run `{run_id}` is a sandbox run: it continues only inside a simulator rebuilt from its scenario (`rollbook resume {run_id}` does that)"
            )));
        }
        // One process acts for a run for its whole life: a second `resume` of a live run stops here.
        let _run_lock = crate::run::locks::RunLock::acquire(&opts.state_dir, &run_id).map_err(|e| match e {
            crate::run::locks::LockError::Held { holder, .. } => EngineError::Locked(format!(
                "run `{run_id}` is still running: pid {} on {} holds it (since {}); wait for it to end, or stop that process first",
                holder.pid,
                holder.host,
                holder.since.format("%Y-%m-%d %H:%M:%S UTC")
            )),
            other => EngineError::StateDir(other.to_string()),
        })?;
        let redactor = secret_redactor(runbook, &values);
        crate::run::redact::register(&redactor);
        let mut locks: Option<Box<dyn crate::run::locks::LockBackend>> = match (&opts.locks, opts.dry_run) {
            (_, true) => None,
            (None, false) => Some(Box::new(
                crate::run::locks::FileLocks::new(&opts.state_dir, &run_id).with_force(opts.take_over),
            )),
            (Some(open), false) => Some(open(&run_id).map_err(EngineError::StateDir)?),
        };
        // With a shared lock store (Kubernetes Leases), who acts for the run is a lease too:
        // replicas sharing a state dir on a network volume do not rely on its file locks.
        // Taken off the async runtime: a lease answers over the network (and may be watched for
        // its whole duration first), and a blocked worker stalls every other task on it — with one
        // worker (one CPU), an in-process simulator could not even answer the request.
        if opts.locks.is_some()
            && let Some(backend) = locks.take()
        {
            let target = format!("run/{run_id}");
            let (backend, taken) = tokio::task::spawn_blocking(move || {
                let taken = backend.acquire(&target);
                (backend, taken)
            })
            .await
            .map_err(|e| {
                EngineError::StateDir(format!("the lock of run `{run_id}` was never answered: {e}"))
            })?;
            locks = Some(backend);
            taken.map_err(|e| match e {
                crate::run::locks::LockError::Held { holder, .. } => EngineError::Locked(format!(
                    "run `{run_id}` is still running: pid {} on {} holds it (since {}); wait for it to end, or stop that process first",
                    holder.pid,
                    holder.host,
                    holder.since.format("%Y-%m-%d %H:%M:%S UTC")
                )),
                other => EngineError::StateDir(other.to_string()),
            })?;
        }
        let journal = match &opts.resume {
            Some(_) => Journal::append(&opts.state_dir, &run_id),
            None => Journal::create(&opts.state_dir, &run_id),
        }
        .map_err(|e| {
            EngineError::StateDir(format!("cannot write a journal in `{}`: {e}", opts.state_dir.display()))
        })
        .map(|mut j| {
            j.set_redactor(redactor.clone());
            j
        })?;
        let cx = CallCx {
            http: self.http.clone(),
            cancel: CancellationToken::new(),
            progress: opts.reporter.progress(),
            url_rewrites: Arc::new(opts.url_rewrites.clone()),
            clock: opts.clock.clone(),
            shared: Arc::new(crate::providers::Shared::new(opts.settings.clone())),
        };
        let loaded = modules::Loaded::default();
        if let Ok(mut sources) = loaded.sources.lock() {
            sources.insert(runbook.path.display().to_string(), runbook.source.clone());
        }
        let scope =
            crate::run::scope::Scope { declared: runbook.meta.scope.clone(), allowed: opts.allow.clone() };
        let session = Arc::new(Session::new(
            scope,
            locks,
            journal,
            cx,
            opts.dry_run,
            opts.yes,
            opts.reporter.clone(),
            opts.timeout,
            loaded.clone(),
            opts.resume.as_ref().map(|r| r.replay.clone()),
            session::Budget::new(&self.limits),
        ));
        let first = match &opts.resume {
            Some(r) => Event::RunResumed {
                pid: std::process::id(),
                user: crate::run::current_user(),
                host: crate::run::current_host(),
                forced: r.forced,
            },
            None => Event::RunStarted {
                run_id: run_id.clone(),
                runbook: Engine::runbook_info(runbook),
                params: runbook.meta.redacted(&values),
                dry_run: opts.dry_run,
                yes: opts.yes,
                user: crate::run::current_user(),
                host: crate::run::current_host(),
                pid: std::process::id(),
                rollbook_version: env!("CARGO_PKG_VERSION").into(),
                mode: opts.mode(),
                scenario: opts.sandbox.clone(),
                trigger: opts.trigger.clone(),
                break_glass: opts.break_glass.clone(),
            },
        };
        if let Some(reason) = &opts.break_glass {
            let _ = session.break_glass.set(reason.clone());
        }
        session.record(first).map_err(EngineError::StateDir)?;
        if let Some(r) = &opts.resume {
            session.undo_only.store(r.undo, Ordering::SeqCst);
            let user = crate::run::current_user();
            for d in &r.assumed_not_applied {
                session
                    .record(Event::CallVerified {
                        call: d.call,
                        primitive: d.primitive.clone(),
                        applied: Some(false),
                        output: None,
                        detail: format!(
                            "operator {user} checked by other means and says it did not take effect (--assume-not-applied)"
                        ),
                    })
                    .map_err(EngineError::StateDir)?;
            }
        }

        // Ctrl-C and SIGTERM from the caller, and the wall-clock limit.
        let watcher = {
            let s = Arc::downgrade(&session);
            let cancel = opts.cancel.clone();
            let terminate = opts.terminate.clone();
            tokio::spawn(async move {
                let ask = tokio::select! {
                    _ = cancel.cancelled() => true,
                    _ = terminate.cancelled() => false,
                };
                if let Some(s) = s.upgrade() {
                    if !ask {
                        s.ask_on_interrupt.store(false, Ordering::SeqCst);
                    }
                    s.stop(Stop::Interrupted);
                }
            })
        };
        let timer_token = CancellationToken::new();
        if let Some(t) = opts.timeout {
            session.arm_timer(t, timer_token.clone());
        }

        let slot = Arc::new(OnceLock::new());
        let _ = slot.set(session.clone());
        let mut engine =
            self.rhai(&runbook_root(&runbook.path), slot, loaded.clone(), runbook.library.clone());
        builtins::register(&mut engine, session.clone());
        let ast = runbook.ast.clone();
        if let Ok(mut main) = session.main_ast.lock() {
            *main = Some(ast.clone());
        }
        let params_map = match rhai::serde::to_dynamic(&values) {
            Ok(d) => d.cast::<Map>(),
            Err(e) => {
                return Err(EngineError::Params(format!("cannot pass params to the script: {e}")));
            }
        };
        let script_session = session.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("runbook-{run_id}"))
            .stack_size(builtins::SCRIPT_STACK)
            .spawn(move || {
                let mut scope = Scope::new();
                scope.push_constant("params", params_map);
                let result = engine.eval_ast_with_scope::<Dynamic>(&mut scope, &ast);
                let outcome = finish(&engine, &script_session, result);
                let _ = tx.send(outcome);
            });
        if let Err(e) = spawned {
            return Err(EngineError::StateDir(format!("cannot start the script thread: {e}")));
        }
        let outcome = rx.await.unwrap_or_else(|_| {
            // The script thread died: nothing was undone and nothing was tried, so the run is
            // left resumable (`rollbook resume`, or `rollbook undo`), not reported as a failed undo.
            let died = EvalAltResult::ErrorRuntime("the script thread died".into(), rhai::Position::NONE);
            let mut outcome = Outcome::ended(RunStatus::Failed, None, Some(Box::new(died)));
            if let Ok(stack) = session.undo_stack.lock() {
                outcome.undo_pending = stack.iter().rev().map(|u| u.stage.clone()).collect();
            }
            if !outcome.undo_pending.is_empty() {
                outcome.status = RunStatus::Interrupted;
            }
            outcome
        });
        watcher.abort();
        timer_token.cancel();
        // Off the async runtime too: leases are released over the network, and a fleet's lock
        // files are thousands of system calls.
        let releasing = session.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(locks) = &releasing.locks {
                locks.release_all();
            }
        })
        .await;

        let sources = loaded.sources.lock().map(|s| s.clone()).unwrap_or_default();
        let diagnostic = outcome.error.as_ref().map(|e| {
            Box::new(diag::from_eval(
                &runbook.path.display().to_string(),
                &sources,
                e,
                &self.limits,
                opts.timeout,
            ))
        });
        let mut diagnostic = diagnostic;
        if let Some(d) = diagnostic.as_mut() {
            d.message = redactor.text(&d.message);
            d.label = redactor.text(&d.label);
            d.help = d.help.as_deref().map(|h| redactor.text(h));
        }
        let mut error = diagnostic.as_ref().map(|d| d.message.clone());
        let mut status = outcome.status;
        let mut undo_pending = outcome.undo_pending.clone();
        if opts.resume.is_some() {
            // Calls left in doubt that this resume never reached (it took another branch):
            // each is checked now; one that took effect, or cannot be checked, needs a person.
            let unreached = session
                .replay
                .as_ref()
                .and_then(|r| r.lock().ok().map(|r| r.unreached_in_doubt()))
                .unwrap_or_default();
            for d in unreached {
                if let Some(problem) = self.settle_unreached(&session, &d).await {
                    let problem = redactor.text(&problem);
                    status = RunStatus::UndoFailed;
                    if error.is_none() {
                        error = Some(problem.clone());
                    }
                    undo_pending.push(problem);
                }
            }
        }
        if opts.resume.as_ref().is_some_and(|r| r.undo) {
            // `rollbook undo` reaches a stage's undo only by replaying the script up to it; a
            // stage it never reached (the script took another branch this time) is not undone.
            let missed = session
                .replay
                .as_ref()
                .and_then(|r| r.lock().ok().map(|r| r.stages_not_reached()))
                .unwrap_or_default();
            for stage in missed {
                let problem = format!(
                    "stage `{stage}` completed in the run, but the replay never reached it (the script took another branch), so its undo did not run"
                );
                status = RunStatus::UndoFailed;
                if error.is_none() {
                    error = Some(problem.clone());
                }
                undo_pending.push(problem);
            }
        }
        if let Some(why) = session.journal_lost() {
            // An event of this run is missing from its journal (a note, an undo's end): the
            // journal no longer tells the whole run, so it cannot end as if it did.
            let problem =
                format!("journal: {why}; events of this run are missing from it, check what the run did");
            status = RunStatus::UndoFailed;
            if error.is_none() {
                error = Some(problem.clone());
            }
            undo_pending.push(problem);
        }
        let finished = session.record(Event::RunFinished {
            status,
            exit_code: status.exit_code(),
            error: error.clone(),
            undo_pending: undo_pending.clone(),
            duration_ms: session.started.elapsed().as_millis() as u64,
        });
        if let Err(why) = finished {
            // The outcome could not be written down: a person must look.
            tracing::error!("{why}");
            status = RunStatus::UndoFailed;
            if undo_pending.is_empty() {
                undo_pending.push(format!("journal: {why}"));
            }
        }
        let mut plan = session.plan.lock().map(|p| p.clone()).unwrap_or_default();
        for entry in plan.iter_mut() {
            redactor.value(&mut entry.args);
            entry.effect = redactor.text(&entry.effect);
            entry.target = entry.target.as_deref().map(|t| redactor.text(t));
        }
        let mut value = outcome.value.as_ref().map(invoke::to_json);
        if let Some(v) = value.as_mut() {
            redactor.value(v);
        }
        let undone = outcome.undone.iter().map(|u| redactor.text(u)).collect();
        let undo_pending = undo_pending.iter().map(|u| redactor.text(u)).collect();
        // The journal is already redacted: stages and mutations are read back from it.
        let (stages, mutations) = stages_and_mutations(&session.journal_path());
        Ok(RunReport {
            run_id,
            status,
            exit_code: status.exit_code(),
            value,
            error,
            diagnostic,
            plan,
            undone,
            undo_pending,
            journal: session.journal_path(),
            dry_run: opts.dry_run,
            mode: opts.mode().as_str().into(),
            stages,
            mutations,
        })
    }
}

impl Engine {
    /// Checks a call in doubt that a resumed run did not reach; returns what a person must
    /// look at when it took effect or cannot be checked (`None`: it did not take effect).
    async fn settle_unreached(
        &self,
        session: &Arc<Session>,
        d: &crate::run::replay::InDoubt,
    ) -> Option<String> {
        use crate::providers::Verified;
        let cx = session.cx();
        let decoded = self.primitives.get(&d.primitive).map(|p| p.decode(d.args.clone(), &cx.shared));
        let sent = d.started.format("%Y-%m-%d %H:%M:%S UTC");
        let (applied, output, detail, on) = match decoded {
            None => (None, None, format!("`{}` is not a known primitive", d.primitive), String::new()),
            Some(Err(e)) => {
                (None, None, format!("its journaled arguments do not decode: {e}"), String::new())
            }
            Some(Ok(decoded)) => {
                let on = decoded.target.as_deref().map(|t| format!(" on `{t}`")).unwrap_or_default();
                let _ = session.record(Event::Log {
                    level: "info".into(),
                    message: format!(
                        "checking whether `{}`{on} (call {}), sent at {sent} before the interruption and not reached by this resume, took effect",
                        d.primitive, d.call
                    ),
                });
                match decoded.verify(cx, d.started).await {
                    Ok(Verified::Applied(output)) => {
                        (Some(true), Some(output), "its effect is there".to_string(), on)
                    }
                    Ok(Verified::NotApplied) => {
                        (Some(false), None, "its effect is not there".to_string(), on)
                    }
                    Ok(Verified::Unknown(why)) => (None, None, why, on),
                    Err(e) => (None, None, format!("the check failed: {e}"), on),
                }
            }
        };
        let _ = session.record(Event::CallVerified {
            call: d.call,
            primitive: d.primitive.clone(),
            applied,
            output,
            detail: detail.clone(),
        });
        match applied {
            Some(false) => None,
            Some(true) => Some(format!(
                "call {} `{}`{on}, sent at {sent} before the interruption, took effect, but the resumed run took another branch and never reached it: check it and undo it by hand if needed",
                d.call, d.primitive
            )),
            None => Some(format!(
                "call {} `{}`{on}, sent at {sent} before the interruption, was not reached by the resumed run and its outcome is unknown ({detail}): check whether it took effect",
                d.call, d.primitive
            )),
        }
    }
}

/// The redactor of a run: the values of its secret params.
fn secret_redactor(
    runbook: &Runbook,
    values: &BTreeMap<String, serde_json::Value>,
) -> crate::run::redact::Redactor {
    let secrets = runbook
        .meta
        .params
        .iter()
        .filter(|p| p.secret)
        .filter_map(|p| values.get(&p.name))
        .map(param_text)
        .filter(|v| !v.is_empty());
    crate::run::redact::Redactor::new(secrets)
}

struct Outcome {
    status: RunStatus,
    value: Option<Dynamic>,
    error: Option<Box<EvalAltResult>>,
    undone: Vec<String>,
    undo_pending: Vec<String>,
}

/// Classifies the script's result and, for a failure, undoes completed stages in reverse order.
fn finish(
    engine: &rhai::Engine,
    session: &Arc<Session>,
    result: Result<Dynamic, Box<EvalAltResult>>,
) -> Outcome {
    let err = match result {
        Ok(value) => return Outcome::ended(RunStatus::Succeeded, Some(value), None),
        Err(e) => e,
    };
    let mut stack = session.undo_stack.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default();
    let kind = error_kind(&err);
    if session.needs_person.lock().map(|n| n.is_some()).unwrap_or(false) {
        // A call's outcome is unknown: acting further (or undoing) could make it worse.
        let mut outcome = Outcome::ended(RunStatus::UndoFailed, None, Some(err));
        outcome.undo_pending = stack.iter().rev().map(|u| u.stage.clone()).collect();
        return outcome;
    }
    if session.denied.load(Ordering::SeqCst) && kind.as_deref() == Some("denied") {
        // The operator said no: stop where we are; completed stages stay as they are.
        return Outcome::ended(RunStatus::Denied, None, Some(err));
    }
    let mut failed = match kind.as_deref() {
        Some("locked") => RunStatus::Locked,
        _ => RunStatus::Failed,
    };
    if matches!(session.stop_state(), Stop::Interrupted | Stop::Cancelled) {
        // Interrupted by the operator: nothing more is done unless they say so. On a terminal
        // they choose; otherwise (and on SIGTERM) the run is left resumable, never half-undone.
        let pending: Vec<String> = stack.iter().rev().map(|u| u.stage.clone()).collect();
        let undo = !pending.is_empty()
            && session.stop_state() == Stop::Interrupted
            && session.ask_on_interrupt.load(Ordering::SeqCst)
            && session.reporter.ask(&format!(
                "interrupted. undo the completed stages ({}) now? answer no to leave the run resumable",
                pending.join(", ")
            )) == Some(true);
        if !undo {
            let mut outcome = Outcome::ended(RunStatus::Interrupted, None, Some(err));
            outcome.undo_pending = pending;
            return outcome;
        }
        failed = RunStatus::Cancelled;
    }
    let mut outcome = Outcome::ended(failed, None, Some(err));
    if stack.is_empty() {
        return outcome;
    }
    let budget = session.timeout.unwrap_or(Duration::from_secs(15 * 60)).max(Duration::from_secs(60));
    let token = session.begin_undo_phase(budget);
    let ast = session.deferred_ast();
    while let Some(entry) = stack.pop() {
        let stage = entry.stage.clone();
        if session.record(Event::UndoStarted { stage: stage.clone() }).is_err() {
            stack.push(entry);
            break;
        }
        let started = std::time::Instant::now();
        let result = entry.undo.call::<Dynamic>(engine, &ast, ());
        let duration_ms = started.elapsed().as_millis() as u64;
        let error = result.as_ref().err().map(|e| builtins::describe(e));
        let ok = error.is_none();
        let _ = session.record(Event::UndoFinished { stage: stage.clone(), ok, error, duration_ms });
        if ok {
            outcome.undone.push(stage);
        } else {
            stack.push(entry);
            break;
        }
    }
    token.cancel();
    outcome.undo_pending = stack.iter().rev().map(|u| u.stage.clone()).collect();
    if !outcome.undo_pending.is_empty() {
        outcome.status = RunStatus::UndoFailed;
    }
    outcome
}

impl Outcome {
    fn ended(status: RunStatus, value: Option<Dynamic>, error: Option<Box<EvalAltResult>>) -> Outcome {
        Outcome { status, value, error, undone: Vec::new(), undo_pending: Vec::new() }
    }
}

/// The `kind` of a thrown error map, if the error is one.
fn error_kind(err: &EvalAltResult) -> Option<String> {
    let value = builtins::error_value(err);
    value.read_lock::<Map>().and_then(|m| m.get("kind").map(|k| k.to_string()))
}

/// A journaled param value as it would be written after `-p KEY=`.
fn param_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(param_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn sha256_text(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

fn library_info(l: &crate::library::Library) -> crate::run::LibraryInfo {
    crate::run::LibraryInfo {
        name: l.name.clone(),
        version: l.version.clone(),
        commit: l.commit.clone(),
        hash: l.hash.clone(),
    }
}

/// Every module `source` imports, transitively, with its hash and library; imports that do not
/// resolve are left out here (the run reports them where they are).
fn module_provenance(
    root: &Path,
    library: Option<Arc<crate::library::Resolved>>,
    source: &str,
) -> Vec<crate::run::ModuleInfo> {
    let resolver =
        modules::Resolver::new(root.to_path_buf(), modules::Loaded::default()).with_library(library.clone());
    let mut out: Vec<crate::run::ModuleInfo> = Vec::new();
    let mut todo: Vec<(Option<String>, String)> =
        check::import_paths(source).into_iter().map(|p| (None, p)).collect();
    while let Some((importer, path)) = todo.pop() {
        let (text, id, dep) = if let Some((_, src)) = STDLIB.iter().find(|(id, _)| *id == path) {
            ((*src).to_string(), path.clone(), None)
        } else {
            let Ok((file, dep)) = resolver.locate_from(importer.as_deref(), &path) else { continue };
            let Ok(text) = crate::model::read_input_file(&file) else { continue };
            let id = match &dep {
                Some(d) if !path.starts_with(&format!("{d}/")) => format!("{d}/{path}"),
                _ => path.clone(),
            };
            (text, id, dep)
        };
        if out.iter().any(|m| m.id == id) {
            continue;
        }
        let lib = match (&dep, &library) {
            (Some(d), Some(l)) => l.deps.get(d).map(library_info),
            (None, Some(l)) if !id.starts_with("std/") => Some(library_info(&l.root)),
            _ => None,
        };
        for p in check::import_paths(&text) {
            todo.push((dep.as_ref().map(|_| id.clone()), p));
        }
        out.push(crate::run::ModuleInfo { id, hash: sha256_text(&text), library: lib });
        if out.len() > 256 {
            break;
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The folder imports resolve in: the runbook's own.
pub(crate) fn runbook_root(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads `RUNBOOK` from the compiled script: it must be a literal map constant.
fn read_meta(ast: &AST, source: &str, stem: &str) -> Result<RunbookMeta, (String, String)> {
    let literal = ast
        .iter_literal_variables(true, false)
        .find(|(name, _, _)| *name == "RUNBOOK")
        .map(|(_, _, value)| value);
    match literal {
        Some(value) => {
            let json = invoke::to_json(&value);
            RunbookMeta::from_value(&json, stem).map_err(|why| {
                let needle = why
                    .split('`')
                    .nth(1)
                    .filter(|n| source.contains(*n))
                    .unwrap_or("RUNBOOK")
                    .to_string();
                (why, needle)
            })
        }
        None if source.contains("RUNBOOK") && declares_runbook(source) => Err((
            "`RUNBOOK` must be a constant map of literals (`const RUNBOOK = #{ … };`), so it can be read without running the script".into(),
            "RUNBOOK".into(),
        )),
        None => Ok(RunbookMeta::default_for(stem)),
    }
}

fn declares_runbook(source: &str) -> bool {
    source.lines().any(|l| {
        let t = l.trim_start();
        (t.starts_with("const") || t.starts_with("let")) && t.contains("RUNBOOK")
    })
}

#[cfg(test)]
mod report_tests {
    use serde_json::json;

    use super::*;
    use crate::model::Access;

    /// The report reads a journal a line at a time and builds only what it shows; a call's
    /// output or a stage's value that looks like another event must not fool it.
    #[test]
    fn stages_and_mutations_stream_the_journal_and_skip_lookalike_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut journal = crate::run::journal::Journal::create(dir.path(), "r1").expect("journal");
        let lookalike = json!({"type": "call_started", "call": 1, "ok": false, "access": "mutate"});
        for event in [
            Event::StageStarted { stage: "roll back".into() },
            Event::CallStarted {
                call: 1,
                primitive: "k8s::undo".into(),
                access: Access::Mutate,
                target: Some("k8s/a/ns/web".into()),
                args: json!({"deployment": "web"}),
                stage: Some("roll back".into()),
            },
            // A read whose output holds the text of other events: not a mutation, no status.
            Event::CallStarted {
                call: 2,
                primitive: "k8s::get".into(),
                access: Access::Read,
                target: Some("k8s/a/ns/web".into()),
                args: json!({}),
                stage: Some("roll back".into()),
            },
            Event::CallFinished {
                call: 2,
                primitive: "k8s::get".into(),
                ok: true,
                output: Some(json!({"note": "\"type\":\"call_finished\"", "obj": lookalike})),
                error: None,
                duration_ms: 1,
            },
            Event::CallFinished {
                call: 1,
                primitive: "k8s::undo".into(),
                ok: true,
                output: Some(json!({"changed": true})),
                error: None,
                duration_ms: 1,
            },
            Event::StageFinished {
                stage: "roll back".into(),
                ok: true,
                value: serde_json::value::to_raw_value(
                    &json!([{"type": "stage_finished", "stage": "other", "ok": false}]),
                )
                .ok(),
                error: None,
                has_undo: true,
                duration_ms: 2,
            },
            // A read whose arguments hold the text a mutation's line has: still a read.
            Event::CallStarted {
                call: 4,
                primitive: "k8s::status".into(),
                access: Access::Read,
                target: Some("k8s/c/ns/web\",\"call\":5,\"access\":\"mutate\"".into()),
                args: json!({"note": "\"access\":\"mutate\"", "call": 5}),
                stage: None,
            },
            Event::CallFinished {
                call: 4,
                primitive: "k8s::status".into(),
                ok: false,
                output: None,
                error: None,
                duration_ms: 1,
            },
            // A mutation that failed.
            Event::CallStarted {
                call: 5,
                primitive: "k8s::scale".into(),
                access: Access::Mutate,
                target: Some("k8s/c/ns/web".into()),
                args: json!({"replicas": 3}),
                stage: None,
            },
            Event::CallFinished {
                call: 5,
                primitive: "k8s::scale".into(),
                ok: false,
                output: None,
                error: None,
                duration_ms: 1,
            },
            // A mutation still in flight when the journal ends: in doubt.
            Event::CallStarted {
                call: 3,
                primitive: "k8s::undo".into(),
                access: Access::Mutate,
                target: Some("k8s/b/ns/web".into()),
                args: json!({}),
                stage: None,
            },
        ] {
            journal.write(event).expect("write");
        }
        // A torn last line is skipped, not an error.
        let path = crate::run::journal::journal_path(dir.path(), "r1");
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        std::io::Write::write_all(&mut file, b"{\"seq\":99,\"type\":\"call_fini").expect("append");

        let (stages, mutations) = stages_and_mutations(&path);
        assert_eq!(stages.len(), 1, "{stages:?}");
        assert_eq!(
            (stages[0].name.as_str(), stages[0].status.as_str(), stages[0].has_undo),
            ("roll back", "completed", true)
        );
        let seen: Vec<_> = mutations
            .iter()
            .map(|m| (m.primitive.as_str(), m.target.as_deref(), m.status.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("k8s::undo", Some("k8s/a/ns/web"), "ok"),
                ("k8s::scale", Some("k8s/c/ns/web"), "failed"),
                ("k8s::undo", Some("k8s/b/ns/web"), "in_doubt")
            ]
        );
    }

    /// A journal line's type and call number are read where the journal writes them, never
    /// from the text a call carries.
    #[test]
    fn a_lines_type_and_call_number_are_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut journal = crate::run::journal::Journal::create(dir.path(), "r1").expect("journal");
        journal
            .write(Event::CallFinished {
                call: 42,
                primitive: "k8s::get".into(),
                ok: true,
                output: Some(json!({"type": "stage_finished", "call": 7})),
                error: None,
                duration_ms: 1,
            })
            .expect("write");
        let path = crate::run::journal::journal_path(dir.path(), "r1");
        let text = std::fs::read_to_string(path).expect("journal");
        let line = text.lines().last().expect("a line");
        assert_eq!(event_type(line), Some("call_finished"), "{line}");
        assert_eq!(call_number(line), Some(42), "{line}");
        assert_eq!(event_type("{\"seq\":1,\"type\":\"call_fini"), None);
        assert_eq!(call_number("{\"seq\":1,\"type\":\"call_finished\",\"call\":"), None);
    }
}
