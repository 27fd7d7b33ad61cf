//! The official Python `kubernetes` client, from a virtualenv the tests create once and cache at
//! `target/venv-k8s` (CI may create it beforehand: `python3 -m venv target/venv-k8s &&
//! target/venv-k8s/bin/pip install kubernetes==37.0.2`). Concurrent test processes share it
//! through a lock file; a machine that cannot install it fails the test with that command.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The pinned client version.
pub const KUBERNETES_PY: &str = "kubernetes==37.0.2";

fn venv_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("venv-k8s")
}

/// Removes the lock file when dropped.
struct Lock(PathBuf);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn lock(path: PathBuf) -> Lock {
    loop {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => return Lock(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A lock left by a killed process goes stale after a quarter of an hour.
                let stale = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > Duration::from_secs(900));
                if stale {
                    let _ = std::fs::remove_file(&path);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot create the lock file {}: {e}", path.display()),
        }
    }
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e} (is python3 installed?)"));
    if !out.status.success() {
        panic!(
            "{what} failed (is the Python package registry reachable?); create the virtualenv by hand with \
             `python3 -m venv {dir} && {dir}/bin/pip install {KUBERNETES_PY}`:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            dir = venv_dir().display()
        );
    }
    out
}

/// The virtualenv's python, with the `kubernetes` client installed (created on first use).
pub fn python() -> PathBuf {
    static ONCE: Mutex<()> = Mutex::new(());
    let _in_process = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    let ready = dir.join(".rollbook-ready");
    let installed = || std::fs::read_to_string(&ready).is_ok_and(|v| v.trim() == KUBERNETES_PY);
    if installed() {
        return python;
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).expect("target dir");
    }
    let _lock = lock(dir.with_extension("lock"));
    if installed() {
        return python;
    }
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir), "python3 -m venv");
    }
    run(
        Command::new(dir.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            KUBERNETES_PY,
        ]),
        &format!("pip install {KUBERNETES_PY}"),
    );
    std::fs::write(&ready, KUBERNETES_PY).expect("virtualenv marker written");
    python
}

/// Runs a Python script with the client, the kubeconfig as its first argument; returns its
/// standard output, panicking with its output unless it succeeded.
pub async fn run_script(kubeconfig: &Path, script: &str) -> String {
    let python = tokio::task::spawn_blocking(python).await.expect("virtualenv ready");
    let out = tokio::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(kubeconfig)
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "the python script failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
