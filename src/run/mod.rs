//! Run bookkeeping that knows no Rhai: the journal, the dry-run plan, run outcomes, the state dir.

pub mod journal;
pub mod locks;
pub mod redact;
pub mod replay;
pub mod scope;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use journal::{
    Event, Journal, LibraryInfo, ModuleInfo, Record, RunMode, RunStatus, RunSummary, RunbookInfo,
    ScenarioInfo,
};

/// One entry of a dry-run plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEntry {
    /// `namespace::name`, or `approve`.
    pub call: String,
    /// Resource key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What would happen.
    pub effect: String,
    /// Arguments (redacted).
    pub args: serde_json::Value,
    /// Enclosing stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// Where runs keep journals and locks: `--state-dir`, `ROLLBOOK_STATE_DIR`, else the platform's state dir.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("ROLLBOOK_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("rollbook"))
        .unwrap_or_else(|| PathBuf::from(".rollbook"))
}

/// Checks that the state dir can hold journals, creating it (owner-only) if needed, and warns
/// once on stderr when it is open to the group or others.
pub fn ensure_state_dir(dir: &Path) -> Result<(), String> {
    let runs = dir.join("runs");
    create_private_dir(&runs).map_err(|e| format!("cannot use state directory `{}`: {e}", dir.display()))?;
    if let Some(why) = state_dir_warning(dir) {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            use std::io::Write as _;
            // A closed stderr must not kill a run.
            let _ = writeln!(std::io::stderr(), "warning: {why}");
        });
    }
    let probe = runs.join(format!(".probe-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&probe).map_err(|e| format!("cannot write in state directory `{}`: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

pub use crate::model::file::create_private_dir;

/// Why the state dir is unsafe, when the group or others may enter it (journals hold what a run
/// did and its outputs; lock files say who runs what).
pub fn state_dir_warning(dir: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "state directory `{}` is accessible to other users (mode {:o}); restrict it with `chmod 700 {}`",
                dir.display(),
                mode & 0o777,
                dir.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

pub use crate::model::host::{current_host, current_user};

/// Where a run shows what it does and asks the operator; the CLI renders text or JSON.
pub trait Reporter: Send + Sync {
    /// An event was journaled.
    fn event(&self, event: &Event);
    /// Where primitives report waits.
    fn progress(&self) -> std::sync::Arc<dyn crate::model::progress::Progress>;
    /// Asks a yes/no question; `None` when no one can answer (no terminal).
    fn ask(&self, question: &str) -> Option<bool>;
    /// Asks, giving up once `give_up()` turns true (an approval's `timeout`, an interrupt);
    /// reporters that cannot give up ask as [`Reporter::ask`] does.
    fn ask_until(&self, question: &str, give_up: &(dyn Fn() -> bool + Send + Sync)) -> Asked {
        let _ = give_up;
        match self.ask(question) {
            Some(answer) => Asked::Answer(answer),
            None => Asked::NoOne,
        }
    }
}

/// What became of a question asked with [`Reporter::ask_until`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Answered yes (`true`) or no.
    Answer(bool),
    /// No one can answer (no terminal).
    NoOne,
    /// Given up before an answer came.
    GaveUp,
}

/// A reporter that shows nothing and cannot ask (for embedding and tests).
pub struct QuietReporter;

impl Reporter for QuietReporter {
    fn event(&self, _event: &Event) {}
    fn progress(&self) -> std::sync::Arc<dyn crate::model::progress::Progress> {
        std::sync::Arc::new(crate::model::progress::Silent)
    }
    fn ask(&self, _question: &str) -> Option<bool> {
        None
    }
}
