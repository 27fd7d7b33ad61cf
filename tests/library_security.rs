//! Libraries and bundles handed to rollbook by someone else: git URLs that are really options,
//! bundles changed after packing, trust that a bundle claims for itself, tags that lie about
//! their version, and rehearsing a library's runbooks with `rollbook test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;

use crate::library::{Repo, git, keygen, payments, published, rollbook_in, trust};
use crate::support::{texts, write};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Runs the binary in `dir` with extra environment.
fn rollbook_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollbook"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("ROLLBOOK_STATE_DIR")
        .env_remove("ROLLBOOK_TRUST_KEYS")
        .env_remove("ROLLBOOK_GIT_ALLOW_FILE")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rollbook")
}

fn hello(dir: &Path, name: &str, deps: &str) -> PathBuf {
    write(
        dir,
        "rollbook.toml",
        &format!("[library]\nname = \"{name}\"\nversion = \"1.0.0\"\n\n[dependencies]\n{deps}\n"),
    );
    write(dir, "hello.rhai", "const RUNBOOK = #{ name: \"hello\" };\ninfo(\"hi\");\n")
}

#[test]
fn a_git_url_that_is_an_option_runs_nothing_in_any_command() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let state = t.join("state");
    let s = state.to_str().unwrap();
    // The operator works inside a git checkout whose `origin` is a local repository: plain
    // `git ls-remote` there would talk to it (and run an `--upload-pack` command).
    let remote = t.join("remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "--quiet", "--bare"]);
    git(t, &["init", "--quiet", "-b", "main"]);
    git(t, &["remote", "add", "origin", remote.to_str().unwrap()]);

    for (case, pin) in [("rev", "rev = \"main\""), ("version", "version = \"^1\"")] {
        for transitive in [false, true] {
            let name = format!("{case}{}", if transitive { "-deep" } else { "" });
            let marker = t.join(format!("PWNED-{name}"));
            let evil = format!(
                "x = {{ git = \"--upload-pack=touch {};git-upload-pack\", {pin} }}",
                marker.display()
            );
            let lib = t.join(&name);
            let runbook = if transitive {
                hello(&t.join(format!("{name}-mid")), "mid", &evil);
                hello(&lib, "top", &format!("mid = {{ path = \"../{name}-mid\" }}"))
            } else {
                hello(&lib, "top", &evil)
            };
            let commands: [&[&str]; 4] = [
                &["run", runbook.to_str().unwrap(), "--state-dir", s],
                &["lock", "--state-dir", s],
                &["check", runbook.to_str().unwrap(), "--state-dir", s],
                &["list", "--state-dir", s],
            ];
            for args in commands {
                let out = rollbook_in(&lib, args);
                let (stdout, stderr) = texts(&out);
                assert!(!marker.exists(), "{name} {args:?}: git ran the command: {stdout}{stderr}");
                assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stdout}{stderr}");
                assert!(
                    stderr.contains("is refused") && stderr.contains("dependency `x`"),
                    "{name}: {stderr}"
                );
                assert!(!stdout.contains("hi"), "{name} ran: {stdout}");
            }
        }
    }
}

#[test]
fn local_git_sources_need_the_operator_to_allow_them() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = published(tmp.path(), &["2.1.0"]);
    let lib = payments(tmp.path(), &repo.url);
    let s = tmp.path().join("state");
    let out = rollbook_env(&lib, &["lock", "--state-dir", s.to_str().unwrap()], &[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("ROLLBOOK_GIT_ALLOW_FILE=1") && stderr.contains("dependency `platform`"),
        "{stderr}"
    );
    assert!(!lib.join("rollbook.lock").exists());
    let out = rollbook_env(
        &lib,
        &["lock", "--state-dir", s.to_str().unwrap()],
        &[("ROLLBOOK_GIT_ALLOW_FILE", "1")],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
}

#[test]
fn a_tag_whose_signed_manifest_names_another_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "platform.key");
    let repo = Repo::new(tmp.path(), "platform");
    repo.release_signed("2.1.0", &key);
    // The signed 2.1.0 is tagged again as 2.2.0.
    repo.tag("v2.2.0");
    let lib = payments(tmp.path(), &repo.url);
    trust(&lib, &public);
    let s = tmp.path().join("state");
    let out = rollbook_in(&lib, &["lock", "--state-dir", s.to_str().unwrap()]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("tag and manifest disagree") && stderr.contains("version 2.1.0"), "{stderr}");
    assert!(!lib.join("rollbook.lock").exists(), "nothing is locked as 2.2.0");
}

/// Two libraries on disk: `app` (runbook `go` returns `common::word()`) and its path
/// dependency `common`; `[trust]` in `app` names `trusted_in_app`.
fn two_libraries(t: &Path, trusted_in_app: &str) -> (PathBuf, PathBuf) {
    let shared = t.join("common");
    write(&shared, "rollbook.toml", "[library]\nname = \"common\"\nversion = \"1.0.0\"\n");
    write(&shared, "util.rhai", "fn word() { \"good\" }\n");
    let app = t.join("app");
    write(
        &app,
        "rollbook.toml",
        &format!(
            "[library]\nname = \"app\"\nversion = \"1.0.0\"\n\n[dependencies]\ncommon = {{ path = \"../common\" }}\n\n[trust]\nkeys = [\"{trusted_in_app}\"]\n"
        ),
    );
    write(
        &app,
        "go.rhai",
        "const RUNBOOK = #{ name: \"go\" };\nimport \"common/util\" as u;\ninfo(u::word());\nu::word()\n",
    );
    (app, shared)
}

/// Signs the library in `dir` (locked first, so the lock is part of what is signed).
fn sign(dir: &Path, key: &Path) {
    let state = dir.join("..").join("sign-state");
    let out = rollbook_in(dir, &["lock", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
    let out = rollbook_in(dir, &["sign", "--key", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
}

fn pack(app: &Path, out: &Path, state: &Path, key: Option<&Path>) {
    let mut args = vec!["pack", "-o", out.to_str().unwrap(), "--state-dir", state.to_str().unwrap()];
    if let Some(k) = key {
        args.extend(["--key", k.to_str().unwrap()]);
    }
    let res = rollbook_in(app, &args);
    assert_eq!(res.status.code(), Some(0), "{:?}", texts(&res));
}

/// Replaces `file` of library `key` in the bundle and recomputes that library's hash, as an
/// attacker who can write the bundle would.
fn tamper(bundle: &Path, key: &str, file: &str, text: &str, out: &Path) {
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    let libs = doc["libraries"].as_array_mut().unwrap();
    let lib = libs.iter_mut().find(|l| l["key"] == key).unwrap();
    lib["files"][file] = serde_json::json!(B64.encode(text));
    let dir = tempfile::tempdir().unwrap();
    for (rel, data) in lib["files"].as_object().unwrap() {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, B64.decode(data.as_str().unwrap()).unwrap()).unwrap();
    }
    lib["hash"] = serde_json::json!(rollbook::library::content_hash(dir.path()).unwrap());
    std::fs::write(out, serde_json::to_vec(&doc).unwrap()).unwrap();
}

fn run_bundle(dir: &Path, bundle: &Path, state: &Path, env: &[(&str, &str)]) -> Output {
    let target = format!("{}#app/go", bundle.display());
    let mut env = env.to_vec();
    env.push(("ROLLBOOK_GIT_ALLOW_FILE", "1"));
    rollbook_env(dir, &["run", &target, "--output", "json", "--state-dir", state.to_str().unwrap()], &env)
}

#[test]
fn under_a_trust_policy_every_library_of_a_bundle_must_verify_root_and_path_dependencies_too() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (key, public) = keygen(t, "op.key");
    let (app, shared) = two_libraries(t, &public);
    sign(&shared, &key);
    sign(&app, &key);
    let bundle = t.join("app.rbk");
    pack(&app, &bundle, &t.join("pack-state"), None);
    let ops = t.join("ops");
    std::fs::create_dir_all(&ops).unwrap();
    let policy = [("ROLLBOOK_TRUST_KEYS", public.as_str())];

    let out = run_bundle(&ops, &bundle, &t.join("s0"), &policy);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["value"], "good");

    // A signed path dependency (its `commit` is null) changed inside the bundle, hash recomputed.
    let bad_dep = t.join("bad-dep.rbk");
    tamper(&bundle, "common", "util.rhai", "fn word() { \"evil\" }\n", &bad_dep);
    let state = t.join("s1");
    let out = run_bundle(&ops, &bad_dep, &state, &policy);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("evil"), "{stdout}");
    assert!(stderr.contains("library `common`") && stderr.contains("changed after signing"), "{stderr}");
    assert!(!state.join("libraries/bundles").exists(), "nothing is unpacked from a refused bundle");

    // The root library changed inside the bundle, hash recomputed.
    let bad_root = t.join("bad-root.rbk");
    tamper(&bundle, "app", "go.rhai", "const RUNBOOK = #{ name: \"go\" };\n\"pwned\"\n", &bad_root);
    let out = run_bundle(&ops, &bad_root, &t.join("s2"), &policy);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("pwned"), "{stdout}");
    assert!(stderr.contains("library `app`") && stderr.contains("changed after signing"), "{stderr}");

    // The same policy from the operator's own rollbook.toml instead of the environment.
    write(
        &ops,
        "rollbook.toml",
        &format!("[library]\nname = \"ops\"\nversion = \"0.1.0\"\n[trust]\nkeys = [\"{public}\"]\n"),
    );
    let out = run_bundle(&ops, &bad_dep, &t.join("s3"), &[]);
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
    let out = run_bundle(&ops, &bundle, &t.join("s4"), &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
}

#[test]
fn the_trust_a_bundle_carries_for_itself_defines_no_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, operator) = keygen(t, "op.key");
    let (evil_key, evil) = keygen(t, "evil.key");
    // The attacker's bundle trusts the attacker's key and is signed by it throughout.
    let (app, shared) = two_libraries(t, &evil);
    write(&shared, "util.rhai", "fn word() { \"evil\" }\n");
    sign(&shared, &evil_key);
    sign(&app, &evil_key);
    let bundle = t.join("app.rbk");
    pack(&app, &bundle, &t.join("pack-state"), None);
    let ops = t.join("ops");
    std::fs::create_dir_all(&ops).unwrap();
    let out = run_bundle(&ops, &bundle, &t.join("s1"), &[("ROLLBOOK_TRUST_KEYS", operator.as_str())]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("evil"), "{stdout}");
    assert!(stderr.contains("not among the trusted keys") && stderr.contains(&evil), "{stderr}");
}

#[test]
fn a_bundle_signed_as_a_whole_is_verified_before_anything_is_unpacked() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (key, public) = keygen(t, "op.key");
    let (evil_key, _) = keygen(t, "evil.key");
    // Neither library is signed on its own: the whole-bundle signature vouches for both.
    let (app, _) = two_libraries(t, &public);
    let bundle = t.join("app.rbk");
    pack(&app, &bundle, &t.join("pack-state"), Some(&key));
    let ops = t.join("ops");
    std::fs::create_dir_all(&ops).unwrap();
    let policy = [("ROLLBOOK_TRUST_KEYS", public.as_str())];
    let out = run_bundle(&ops, &bundle, &t.join("s0"), &policy);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["value"], "good");

    // One byte of the signed content changed: refused before unpacking, policy or not.
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let inner = B64.decode(doc["bundle"].as_str().unwrap()).unwrap();
    let text = String::from_utf8(inner).unwrap();
    let changed =
        text.replacen(&B64.encode("fn word() { \"good\" }\n"), &B64.encode("fn word() { \"evil\" }\n"), 1);
    assert_ne!(changed, text);
    doc["bundle"] = serde_json::json!(B64.encode(changed));
    let tampered = t.join("tampered.rbk");
    std::fs::write(&tampered, serde_json::to_vec(&doc).unwrap()).unwrap();
    for env in [&policy[..], &[]] {
        let state = t.join(format!("s-{}", env.len()));
        let out = run_bundle(&ops, &tampered, &state, env);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        assert!(stderr.contains("whole-bundle signature does not verify"), "{stderr}");
        assert!(!state.join("libraries/bundles").exists(), "nothing is unpacked");
    }

    // Signed as a whole by a key the operator does not trust, libraries unsigned: refused.
    let other = t.join("other.rbk");
    pack(&app, &other, &t.join("pack-state"), Some(&evil_key));
    let out = run_bundle(&ops, &other, &t.join("s5"), &policy);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("which is not trusted") && stderr.contains("not signed"), "{stderr}");
}

#[test]
fn rollbook_test_rehearses_a_librarys_runbooks_and_shows_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = published(tmp.path(), &["2.1.0"]);
    let lib = payments(tmp.path(), &repo.url);
    let s = tmp.path().join("state");
    let s = s.to_str().unwrap();
    // By library name (a dependency's runbook and the library's own), and by file importing
    // from a dependency.
    write(
        &lib,
        "scenarios/by-name.toml",
        "name = \"by name\"\n[test]\nrunbook = \"payments/runbooks/recover\"\n[test.expect]\noutcome = \"succeeded\"\n",
    );
    write(
        &lib,
        "scenarios/dependency.toml",
        "name = \"a dependency's runbook\"\n[test]\nrunbook = \"platform/aks-undo\"\nparams = { cluster = \"aks-rehearsal\" }\n[test.expect]\noutcome = \"succeeded\"\n",
    );
    write(
        &lib,
        "scenarios/by-file.toml",
        "name = \"by file\"\n[test]\nrunbook = \"../runbooks/recover.rhai\"\n[test.expect]\noutcome = \"succeeded\"\n",
    );
    // Run from elsewhere: the library is found from the scenario's folder.
    let out = rollbook_in(
        tmp.path(),
        &["test", lib.join("scenarios").to_str().unwrap(), "--log", "--state-dir", s],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("info: 2.1.0") && stdout.contains("info: aks-rehearsal"),
        "the runs are shown: {stdout}"
    );
    assert!(stdout.contains("module   platform/k8s/helpers"), "{stdout}");

    // A failing expectation shows its run without --log.
    write(
        &lib,
        "failing/wrong.toml",
        "[test]\nrunbook = \"platform/aks-undo\"\nparams = { cluster = \"c-7\" }\n[test.expect]\noutcome = \"failed\"\n",
    );
    let out = rollbook_in(&lib, &["test", "failing", "--state-dir", s]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("expected `failed`, found `succeeded`"), "{stdout}");
    assert!(stdout.contains("info: c-7") && stdout.contains("■ succeeded"), "transcript: {stdout}");
}

#[test]
fn a_git_folder_below_the_top_of_a_library_is_inside_its_content_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path();
    write(lib, "rollbook.toml", "[library]\nname = \"p\"\nversion = \"1.0.0\"\n");
    write(lib, "k8s/.git/helpers.rhai", "fn version() { `good` }\n");
    let before = rollbook::library::content_hash(lib).unwrap();
    // Importable as `p/k8s/.git/helpers`, so a change to it must change the hash.
    write(lib, "k8s/.git/helpers.rhai", "fn version() { `evil` }\n");
    assert_ne!(rollbook::library::content_hash(lib).unwrap(), before);
}

#[test]
fn keygen_never_writes_a_secret_key_through_an_existing_link() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("somewhere-else");
    let link = tmp.path().join("signing.key");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = rollbook_in(tmp.path(), &["keygen", link.to_str().unwrap()]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("exists already"), "{stderr}");
    assert!(!target.exists(), "the key was written through the link");

    let key = tmp.path().join("new.key");
    let out = rollbook_in(tmp.path(), &["keygen", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn the_shipped_library_is_restored_when_its_unpacked_copy_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("state");
    let s = s.to_str().unwrap();
    let list = |dir: &Path| {
        let out = rollbook_in(dir, &["list", "--output", "json", "--state-dir", s]);
        assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
        serde_json::from_str::<serde_json::Value>(&texts(&out).0).unwrap()
    };
    let first = list(tmp.path());
    let shipped = std::fs::read_dir(tmp.path().join("state/libraries/shipped"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Edited (or left half-written by a crash): one runbook replaced, another missing.
    write(
        &shipped,
        "k8s-rollout-undo.rhai",
        "const RUNBOOK = #{ name: \"k8s-rollout-undo\", description: \"tampered\" };\n",
    );
    std::fs::remove_file(shipped.join("k8s-roll-forward.rhai")).unwrap();
    let again = list(tmp.path());
    assert_eq!(again, first, "the shipped library is unpacked again from the binary");
    assert!(!again.to_string().contains("tampered"));
}
