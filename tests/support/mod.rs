//! Test support: a fluent builder that runs the real binary on a world built in code
//! ([`Rollbook`], [`World`]), a simulator kept alive for a test ([`LiveSim`]), loopback HTTP
//! servers with scripted answers, a recording test primitive for in-process engine tests
//! ([`Fixture`]), and small helpers.
//!
//! New tests start from [`Rollbook`]; see "Writing a test" in CONTRIBUTING.md.

// Not every test uses every method of the builders.
#![allow(dead_code)]

mod runner;
mod sim;
mod world;

#[allow(unused_imports)]
pub use runner::{Outcome, Rollbook, Running, journal_events, repo};
#[allow(unused_imports)]
pub use sim::{LiveSim, SUB};
#[allow(unused_imports)]
pub use world::{ArmDeployment, Deployment, Fault, Prometheus, Site, Workflow, World};

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollbook::model::{Access, ErrorKind, PrimitiveError};
use rollbook::providers::{CallCx, Meta, Planned, Primitive, Verified};
use serde::{Deserialize, Serialize};

/// Serves `router` on 127.0.0.1 (a free port) for the rest of the test; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Starts a server on its own runtime thread, for tests that drive the binary synchronously.
pub fn serve_in_background<F, Fut>(make: F) -> String
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = axum::Router>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let url = serve(make().await).await;
            tx.send(url).expect("send url");
            std::future::pending::<()>().await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("server started")
}

/// Runs the real `rollbook` binary.
pub fn rollbook(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(args)
        .env_remove("ROLLBOOK_STATE_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run rollbook")
}

/// stdout and stderr of a finished command, as text.
pub fn texts(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write file");
    path
}

/// What the recording primitive saw.
#[derive(Default)]
pub struct Recorder {
    /// Names of performed calls, in order.
    pub calls: Mutex<Vec<String>>,
    /// Calls in flight now.
    pub in_flight: AtomicUsize,
    /// The most ever in flight at once.
    pub max_in_flight: AtomicUsize,
}

/// `test::mutate`: a mutating primitive that records its calls, can wait and can fail.
pub struct Mutate(pub Arc<Recorder>);

/// Keys of `test::mutate`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutateArgs {
    /// Recorded name.
    pub name: String,
    /// Fail with a `conflict` error.
    #[serde(default)]
    pub fail: bool,
    /// Hold the call this long.
    #[serde(default)]
    pub delay_ms: u64,
}

/// Result of `test::mutate`.
#[derive(Serialize)]
pub struct MutateOutput {
    /// The name again.
    pub name: String,
    /// Always true.
    pub changed: bool,
}

impl Primitive for Mutate {
    type Args = MutateArgs;
    type Output = MutateOutput;

    fn meta(&self) -> Meta {
        Meta {
            namespace: "test",
            name: "mutate",
            doc: "Records a mutation (tests only).",
            keys_doc: "`name`, `fail` (false), `delay_ms` (0)",
            returns: "`#{ name, changed }`",
            access: Access::Mutate,
        }
    }

    fn target(&self, args: &MutateArgs) -> Option<String> {
        Some(format!("test/{}", args.name))
    }

    async fn call(&self, cx: &CallCx, args: MutateArgs) -> Result<MutateOutput, PrimitiveError> {
        let now = self.0.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let waited = cx.sleep(Duration::from_millis(args.delay_ms)).await;
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        waited?;
        if args.fail {
            return Err(PrimitiveError::new(ErrorKind::Conflict, format!("{} refused", args.name))
                .with_target(format!("test/{}", args.name)));
        }
        self.0.calls.lock().expect("recorder").push(args.name.clone());
        Ok(MutateOutput { name: args.name, changed: true })
    }

    async fn verify(
        &self,
        _cx: &CallCx,
        args: &MutateArgs,
        _sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Verified, PrimitiveError> {
        if args.name.starts_with("blind") {
            return Ok(Verified::Unknown("the test system keeps no record of blind calls".into()));
        }
        let done = self.0.calls.lock().expect("recorder").contains(&args.name);
        Ok(if done {
            Verified::Applied(serde_json::json!({ "name": args.name, "changed": true }))
        } else {
            Verified::NotApplied
        })
    }

    async fn plan(&self, _cx: &CallCx, args: &MutateArgs) -> Result<Planned, PrimitiveError> {
        Ok(Planned {
            effect: format!("would mutate `{}`", args.name),
            output: serde_json::json!({ "name": args.name, "changed": false }),
        })
    }
}

/// An engine with the recording `Mutate` primitive and a temporary folder for its runs.
pub struct Fixture {
    /// Where runbooks and the state dir go.
    pub dir: tempfile::TempDir,
    /// What `Mutate` was called with.
    pub recorder: std::sync::Arc<Recorder>,
    /// The engine under test.
    pub engine: rollbook::engine::Engine,
}

/// A fresh [`Fixture`].
pub fn fixture() -> Fixture {
    let recorder = std::sync::Arc::new(Recorder::default());
    let mut engine = rollbook::engine::Engine::new();
    engine.register(Mutate(recorder.clone()));
    Fixture { dir: tempfile::tempdir().expect("tempdir"), recorder, engine }
}

impl Fixture {
    /// Runs `script` (tweaked options) and returns its report.
    pub async fn run(
        &self,
        script: &str,
        tweak: impl FnOnce(&mut rollbook::engine::RunOptions),
    ) -> rollbook::engine::RunReport {
        let path = write(self.dir.path(), "runbook.rhai", script);
        let runbook = self.engine.load(&path).expect("runbook loads");
        let mut opts = rollbook::engine::RunOptions::new(self.dir.path().join("state"));
        tweak(&mut opts);
        self.engine.run(&runbook, &[], opts).await.expect("run starts")
    }

    /// The primitive calls recorded so far.
    pub fn calls(&self) -> Vec<String> {
        self.recorder.calls.lock().expect("recorder").clone()
    }
}

/// Every event of a run's journal.
pub fn events(report: &rollbook::engine::RunReport) -> Vec<rollbook::run::journal::Event> {
    rollbook::run::journal::read_journal(&report.journal)
        .expect("journal parses")
        .records
        .into_iter()
        .map(|r| r.event)
        .collect()
}
