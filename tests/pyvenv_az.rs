//! The Azure CLI and the Azure SDK for Python in a cached virtualenv (`target/venv-az`), made
//! once per checkout under a lock so concurrent tests do not race: `python3 -m venv`, then
//! `pip install azure-cli` (2.9x), `azure-mgmt-web`, `azure-mgmt-resource` and
//! `azure-identity`. A missing `python3` or an unreachable package registry fails the test
//! with a message saying how to install by hand.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What is installed, and the pins.
pub const PACKAGES: &[&str] =
    &["azure-cli>=2.90,<3", "azure-mgmt-web", "azure-mgmt-resource", "azure-identity"];

/// The virtualenv's directory, ready to use (created on first call).
pub fn venv() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let dir = target.join("venv-az");
    let ready = dir.join(".rollbook-ready");
    if ready.exists() {
        return dir;
    }
    std::fs::create_dir_all(&target).expect("target directory");
    let lock = File::create(target.join("venv-az.lock")).expect("venv lock file");
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "cannot lock target/venv-az.lock");
    if ready.exists() {
        return dir;
    }
    let how = format!(
        "install by hand: python3 -m venv {d} && {d}/bin/pip install {p}",
        d = dir.display(),
        p = PACKAGES.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(" ")
    );
    if !dir.join("bin/python").exists() {
        let out = Command::new("python3").args(["-m", "venv"]).arg(&dir).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("python3 -m venv failed: {}\n{how}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!(
                "python3 is needed for the Azure CLI tests ({e}); install python3 (with venv), then {how}"
            ),
        }
    }
    let out = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES)
        .output()
        .expect("pip runs");
    assert!(
        out.status.success(),
        "pip could not install the Azure CLI (is the package registry reachable?): {}\n{how}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&ready, PACKAGES.join("\n")).expect("mark the virtualenv ready");
    dir
}
