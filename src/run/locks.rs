//! Target locks: a mutating call locks its target for the rest of the run, so two runs never
//! change the same thing at once. [`LockBackend`] is what a run needs of a lock store; the file
//! backend here uses OS file locks in the state dir (a lock held by a process that died is
//! released by the OS and taken over with a warning). Other backends (the Kubernetes Lease one
//! lives with the k8s provider) plug in through [`LockOpener`], so this layer knows no client.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
            host: super::current_host(),
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

/// The locks one run holds (released when dropped).
pub struct FileLocks {
    dir: PathBuf,
    me: Holder,
    held: Mutex<HashMap<String, File>>,
}

/// A lock that was taken over from a run that died without releasing it.
#[derive(Debug, Clone)]
pub struct TakenOver {
    /// The previous holder.
    pub previous: Holder,
}

impl FileLocks {
    /// Locks for run `run_id` under `state_dir/locks`.
    pub fn new(state_dir: &Path, run_id: &str) -> FileLocks {
        FileLocks { dir: state_dir.join("locks"), me: Holder::me(run_id), held: Mutex::new(HashMap::new()) }
    }

    fn path_for(&self, target: &str) -> PathBuf {
        let safe: String = target
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c.to_ascii_lowercase()
                } else {
                    '~'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.lock"))
    }

    /// Takes the lock on `target` (no-op if this run holds it). Fails at once if another run does.
    pub fn acquire(&self, target: &str) -> Result<Option<TakenOver>, LockError> {
        let mut held = self.held.lock().map_err(|_| LockError::Io {
            target: target.into(),
            path: self.dir.clone(),
            source: std::io::Error::other("lock table poisoned"),
        })?;
        if held.contains_key(target) {
            return Ok(None);
        }
        let path = self.path_for(target);
        let io = |source: std::io::Error| LockError::Io { target: target.into(), path: path.clone(), source };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        let mut previous = String::new();
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                file.read_to_string(&mut previous).map_err(io)?;
                let holder = serde_json::from_str(&previous).unwrap_or(Holder {
                    run_id: "unknown".into(),
                    pid: 0,
                    host: "unknown".into(),
                    since: Utc::now(),
                });
                return Err(LockError::Held { target: target.into(), holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.read_to_string(&mut previous).map_err(io)?;
        let taken_over =
            serde_json::from_str::<Holder>(&previous).ok().map(|previous| TakenOver { previous });
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let record = serde_json::to_vec(&self.me).map_err(|e| io(std::io::Error::other(e)))?;
        // Not fsynced: the flock is what excludes other runs (and dies with this process or the
        // machine); the holder text only names who held it, so a crash that loses it costs a
        // warning, while an fsync per target under the table's lock serialised a whole fleet.
        file.write_all(&record).map_err(io)?;
        held.insert(target.to_string(), file);
        Ok(taken_over)
    }

    /// Releases every lock (clearing the holder so the next run sees a clean lock).
    pub fn release_all(&self) {
        if let Ok(mut held) = self.held.lock() {
            for (_, file) in held.drain() {
                let _ = file.set_len(0);
                let _ = file.unlock();
            }
        }
    }
}

impl LockBackend for FileLocks {
    fn acquire(&self, target: &str) -> Result<Option<TakenOver>, LockError> {
        FileLocks::acquire(self, target)
    }
    fn release_all(&self) {
        FileLocks::release_all(self)
    }
}

impl Drop for FileLocks {
    fn drop(&mut self) {
        self.release_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileLocks::new(dir.path(), "run-a");
        let b = FileLocks::new(dir.path(), "run-b");
        assert!(a.acquire("k8s/prod/shop/web").unwrap().is_none());
        assert!(a.acquire("k8s/prod/shop/web").unwrap().is_none(), "re-entrant for the same run");
        let err = b.acquire("k8s/prod/shop/web").unwrap_err().to_string();
        assert!(err.contains("locked by run run-a"), "{err}");
        assert!(b.acquire("k8s/prod/shop/api").is_ok(), "other targets are free");
        a.release_all();
        assert!(b.acquire("k8s/prod/shop/web").unwrap().is_none(), "released cleanly, nothing to take over");
    }

    #[test]
    fn a_lock_left_by_a_dead_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileLocks::new(dir.path(), "run-a");
        a.acquire("arm/rg").unwrap();
        // Simulate a crash: the OS lock goes away but the holder record stays.
        let held = std::mem::take(&mut *a.held.lock().unwrap());
        for (_, f) in held {
            f.unlock().unwrap();
        }
        let b = FileLocks::new(dir.path(), "run-b");
        let taken = b.acquire("arm/rg").unwrap().expect("took over");
        assert_eq!(taken.previous.run_id, "run-a");
    }
}
