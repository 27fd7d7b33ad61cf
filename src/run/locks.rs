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

use chrono::Utc;

pub use crate::model::lock::{Holder, LockBackend, LockError, LockOpener, TakenOver};

/// The locks one run holds (released when dropped).
pub struct FileLocks {
    dir: PathBuf,
    me: Holder,
    /// `me` as written into each lock file (made once: the same for every target).
    record: Vec<u8>,
    /// Each held target's open lock file, and the length of the record written to it.
    held: Mutex<HashMap<String, (File, usize)>>,
    force: bool,
}

impl FileLocks {
    /// Locks for run `run_id` under `state_dir/locks`.
    pub fn new(state_dir: &Path, run_id: &str) -> FileLocks {
        let me = Holder::me(run_id);
        FileLocks {
            dir: state_dir.join("locks"),
            // A holder is plain strings, numbers and a time: it always serializes.
            record: serde_json::to_vec(&me).unwrap_or_default(),
            me,
            held: Mutex::new(HashMap::new()),
            force: false,
        }
    }

    /// Whether to take over locks left by dead runs even when they completed stages (`--force`).
    pub fn with_force(mut self, force: bool) -> FileLocks {
        self.force = force;
        self
    }

    fn path_for(&self, target: &str) -> PathBuf {
        self.dir.join(lock_file_name(target))
    }

    /// Whether the dead run `holder` completed stages and never finished (its journal says so).
    fn stranded(&self, holder: &Holder) -> bool {
        let id = &holder.run_id;
        if id == &self.me.run_id
            || id.is_empty()
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return false;
        }
        let Some(state_dir) = self.dir.parent() else { return false };
        let Ok(read) = super::journal::read_journal(&super::journal::journal_path(state_dir, id)) else {
            return false;
        };
        let finished = read.records.iter().any(|r| matches!(r.event, super::Event::RunFinished { .. }));
        let completed =
            read.records.iter().any(|r| matches!(r.event, super::Event::StageFinished { ok: true, .. }));
        completed && !finished
    }
}

/// The longest lock file name (most file systems allow 255 bytes).
const MAX_LOCK_NAME: usize = 120;

/// The lock file name of `target`: the key with unsafe characters replaced, or, for a long key,
/// its start and a hash of the whole key, so every valid target can be locked.
pub fn lock_file_name(target: &str) -> String {
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
    if safe.len() + 5 <= MAX_LOCK_NAME {
        return format!("{safe}.lock");
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(target.as_bytes()));
    let head: String = safe.chars().take(MAX_LOCK_NAME - 5 - 1 - 32).collect();
    format!("{head}~{}.lock", &hash[..32])
}

/// Reads a lock file's (small) content: `read_to_end` would first ask the file's size, one
/// more system call per target of a fleet.
fn read_small(file: &mut File, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0_u8; 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads who holds a lock from a lock file's content (`None` when it names no one).
pub fn read_holder(text: &[u8]) -> Option<Holder> {
    serde_json::from_slice(text).ok()
}

/// `Too many open files` said in terms of the run: it holds one lock file open per target.
fn too_many_open(e: std::io::Error, holding: usize) -> std::io::Error {
    if e.raw_os_error() != Some(rustix::io::Errno::MFILE.raw_os_error()) {
        return e;
    }
    std::io::Error::new(
        e.kind(),
        format!(
            "{e}: this run holds {holding} lock files open, one per target it changed, and may not open \
             more; raise the limit of open files (`ulimit -Hn`, `LimitNOFILE=` for a service) or change \
             fewer targets in one run"
        ),
    )
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

impl FileLocks {
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
        if held.is_empty() {
            // Once per run (and again only if every lock was released): not a system call per target.
            super::create_private_dir(&self.dir).map_err(io)?;
        }
        let mut file = open_private(&path).map_err(|e| io(too_many_open(e, held.len())))?;
        let mut previous = Vec::new();
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                read_small(&mut file, &mut previous).map_err(io)?;
                let holder = read_holder(&previous).unwrap_or(Holder {
                    run_id: "unknown".into(),
                    pid: 0,
                    host: "unknown".into(),
                    since: Utc::now(),
                });
                return Err(LockError::Held { target: target.into(), holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        read_small(&mut file, &mut previous).map_err(io)?;
        let taken_over = read_holder(&previous).map(|previous| TakenOver { previous });
        if let Some(t) = &taken_over
            && !self.force
            && self.stranded(&t.previous)
        {
            // Dropping the file releases the OS lock; the dead run's holder record stays.
            return Err(LockError::Stranded { target: target.into(), holder: t.previous.clone() });
        }
        let mut record = self.record.clone();
        // Not fsynced: the flock is what excludes other runs (and dies with this process or the
        // machine); the holder text only names who held it, so a crash that loses it costs a
        // warning, while an fsync per target under the table's lock serialised a whole fleet.
        // Written in place (no seek) over what was there, padded with spaces (JSON allows them
        // after the value) rather than cut: the file keeps its size and its disk block, and a
        // fleet takes thousands of these.
        if previous.len() > record.len() {
            record.resize(previous.len(), b' ');
        }
        std::os::unix::fs::FileExt::write_all_at(&file, &record, 0).map_err(io)?;
        held.insert(target.to_string(), (file, record.len()));
        Ok(taken_over)
    }

    /// Releases every lock, blanking the holder so the next run sees a clean lock. Blanked with
    /// spaces, not cut to nothing: a file cut to zero gives its disk block back, and the next
    /// run's record takes one again (on ext4, `ftruncate` and `pwrite` into an empty file were
    /// 3% of a 10,000-target run's CPU).
    pub fn release_all(&self) {
        let mut held = match self.held.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut blank = Vec::new();
        for (_, (file, len)) in held.drain() {
            blank.resize(len, b' ');
            let _ = std::os::unix::fs::FileExt::write_all_at(&file, &blank[..len], 0);
            let _ = file.unlock();
        }
    }
}

/// The lock on a run itself, held by the one process acting for it for the run's whole life
/// (`locks/runs/<id>.lock`), so a second `rollbook resume` of a live run is refused.
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of run `run_id`, or says which live process holds it.
    pub fn acquire(state_dir: &Path, run_id: &str) -> Result<RunLock, LockError> {
        let path = state_dir.join("locks").join("runs").join(format!("{run_id}.lock"));
        let target = format!("run {run_id}");
        let io =
            |source: std::io::Error| LockError::Io { target: target.clone(), path: path.clone(), source };
        if let Some(dir) = path.parent() {
            super::create_private_dir(dir).map_err(io)?;
        }
        let mut file = open_private(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = Vec::new();
                file.read_to_end(&mut text).map_err(io)?;
                let holder = read_holder(&text).unwrap_or(Holder {
                    run_id: run_id.into(),
                    pid: 0,
                    host: "unknown".into(),
                    since: Utc::now(),
                });
                return Err(LockError::Held { target, holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let record = serde_json::to_vec(&Holder::me(run_id)).map_err(|e| io(std::io::Error::other(e)))?;
        file.write_all(&record).map_err(io)?;
        Ok(RunLock { _file: file })
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
        for (_, (f, _)) in held {
            f.unlock().unwrap();
        }
        let b = FileLocks::new(dir.path(), "run-b");
        let taken = b.acquire("arm/rg").unwrap().expect("took over");
        assert_eq!(taken.previous.run_id, "run-a");
    }

    #[test]
    fn a_released_lock_file_keeps_its_size_names_no_one_and_takes_a_shorter_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks").join(lock_file_name("k8s/prod/shop/web"));
        let long = FileLocks::new(dir.path(), &format!("run-{}", "a".repeat(60)));
        long.acquire("k8s/prod/shop/web").unwrap();
        let written = std::fs::read(&path).unwrap();
        long.release_all();
        let released = std::fs::read(&path).unwrap();
        assert_eq!(released.len(), written.len(), "blanked in place, not cut");
        assert!(released.iter().all(|b| *b == b' '), "a released file names no holder");
        assert!(read_holder(&released).is_none());
        // A shorter record over a longer one: padded, still read back as its holder.
        let short = FileLocks::new(dir.path(), "run-b");
        assert!(short.acquire("k8s/prod/shop/web").unwrap().is_none(), "a blank file is not taken over");
        let now = std::fs::read(&path).unwrap();
        assert_eq!(now.len(), written.len());
        assert_eq!(read_holder(&now).map(|h| h.run_id), Some("run-b".to_string()));
        // Held by run-b: another run is refused and told so.
        let err = FileLocks::new(dir.path(), "run-c").acquire("k8s/prod/shop/web").unwrap_err().to_string();
        assert!(err.contains("locked by run run-b"), "{err}");
    }

    #[test]
    fn too_many_open_files_is_said_in_terms_of_the_run() {
        let emfile = std::io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
        let said = too_many_open(emfile, 1021).to_string();
        assert!(said.contains("holds 1021 lock files open") && said.contains("ulimit -Hn"), "{said}");
        let other = too_many_open(std::io::Error::from(std::io::ErrorKind::PermissionDenied), 3);
        assert_eq!(other.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(!other.to_string().contains("lock files open"));
    }

    #[test]
    fn a_long_target_gets_a_bounded_distinct_file_name() {
        let a = lock_file_name(&"k".repeat(400));
        let b = lock_file_name(&format!("{}x", "k".repeat(400)));
        assert!(a.len() <= MAX_LOCK_NAME && b.len() <= MAX_LOCK_NAME);
        assert_ne!(a, b);
        assert_eq!(lock_file_name("k8s/prod/shop/web"), "k8s~prod~shop~web.lock");
    }

    #[test]
    fn a_run_lock_is_exclusive_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "r1").unwrap();
        let err = RunLock::acquire(dir.path(), "r1").err().unwrap().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        assert!(RunLock::acquire(dir.path(), "r1").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn reading_any_lock_file_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = read_holder(&bytes);
        }

        #[test]
        fn any_target_gets_a_usable_name(target in ".{0,400}") {
            let name = lock_file_name(&target);
            proptest::prop_assert!(name.len() <= MAX_LOCK_NAME);
            proptest::prop_assert!(!name.contains('/') && name != ".lock" || name.ends_with(".lock"));
        }
    }
}
