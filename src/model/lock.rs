//! The lock port: what a run needs of a store of target locks ([`LockBackend`]), who holds a
//! lock ([`Holder`]) and why one was not taken ([`LockError`]). The file backend lives in
//! `run::locks`, the Kubernetes Lease one with the k8s provider.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who holds a lock, written into the lock file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    /// The run holding it.
    pub run_id: String,
    /// Its process.
    pub pid: u32,
    /// Its machine.
    pub host: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

impl Holder {
    /// This process, holding locks for `run_id` from now on.
    pub fn me(run_id: &str) -> Holder {
        Holder {
            run_id: run_id.into(),
            pid: std::process::id(),
            host: super::host::current_host(),
            since: Utc::now(),
        }
    }
}

/// A store of target locks for one run: taken on a mutating call's target, kept until released.
pub trait LockBackend: Send + Sync {
    /// Takes the lock on `target` (no-op if this run holds it); fails at once if another live
    /// run does, and says whom it took over from when the previous holder is gone.
    fn acquire(&self, target: &str) -> Result<Option<TakenOver>, LockError>;
    /// Releases every lock this run holds.
    fn release_all(&self);
    /// Why a lock this run held was lost (taken by another runner, or not renewable in time),
    /// once one was: the run must not change anything after that.
    fn lost(&self) -> Option<String> {
        None
    }
}

/// Opens the lock backend of a run, given its id (the file backend when a run is given none).
pub type LockOpener = std::sync::Arc<dyn Fn(&str) -> Result<Box<dyn LockBackend>, String> + Send + Sync>;

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live run holds it.
    #[error("`{target}` is locked by run {} on {} (pid {}) since {}", .holder.run_id, .holder.host, .holder.pid, .holder.since.format("%Y-%m-%d %H:%M:%S UTC"))]
    Held {
        /// The target.
        target: String,
        /// Who holds it.
        holder: Holder,
    },
    /// The lock store (a remote one) could not be used.
    #[error("cannot lock `{target}` in {store}: {message}")]
    Store {
        /// The target.
        target: String,
        /// Where locks are kept.
        store: String,
        /// Why.
        message: String,
    },
    /// The lock was left by a run that died after completing stages: taking it over would let
    /// another run change what that run's undo (or resume) still needs.
    #[error("`{target}` is locked by run {} (pid {} on {}), which died after completing stages: finish it with `rollbook resume {}` or undo it with `rollbook undo {}`, or pass --force to take the lock over", .holder.run_id, .holder.pid, .holder.host, .holder.run_id, .holder.run_id)]
    Stranded {
        /// The target.
        target: String,
        /// The dead run.
        holder: Holder,
    },
    /// The lock file could not be used.
    #[error("cannot lock `{target}` in `{}`: {source}", .path.display())]
    Io {
        /// The target.
        target: String,
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A lock that was taken over from a run that died without releasing it.
#[derive(Debug, Clone)]
pub struct TakenOver {
    /// The previous holder.
    pub previous: Holder,
}
