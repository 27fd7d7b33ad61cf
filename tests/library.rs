//! Playbook libraries: git dependencies in local bare repositories (`file://` URLs),
//! `rollbook.lock`, `update`, imports across libraries, provenance in the journal, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{texts, write};

/// Runs git in `dir`, with a fixed identity.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs the binary in `dir`.
pub fn rollbook_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollbook"))
        .args(args)
        .current_dir(dir)
        .env_remove("ROLLBOOK_STATE_DIR")
        .env_remove("ROLLBOOK_TRUST_KEYS")
        .env("ROLLBOOK_GIT_ALLOW_FILE", "1")
        .env("NO_COLOR", "1")
        .output()
        .expect("run rollbook")
}

/// A library published in a bare repository, from a work tree.
pub struct Repo {
    pub work: PathBuf,
    bare: PathBuf,
    /// `file://` URL of the bare repository.
    pub url: String,
}

impl Repo {
    pub fn new(root: &Path, name: &str) -> Repo {
        let work = root.join(format!("{name}-work"));
        let bare = root.join(format!("{name}.git"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--quiet", "--bare"]);
        git(&work, &["init", "--quiet", "-b", "main"]);
        let url = format!("file://{}", bare.display());
        git(&work, &["remote", "add", "origin", &url]);
        Repo { work, bare, url }
    }

    /// Commits the `platform` library at `version` and tags it `v<version>` (or moves the tag).
    pub fn release(&self, version: &str, marker: &str) {
        write(
            &self.work,
            "rollbook.toml",
            &format!(
                "[library]\nname = \"platform\"\nversion = \"{version}\"\ndescription = \"platform playbooks\"\n"
            ),
        );
        write(
            &self.work,
            "k8s/helpers.rhai",
            &format!(
                "import \"k8s/inner\" as inner;\nfn version() {{ `{version}{marker}` }}\nfn inner() {{ inner::x() }}\n"
            ),
        );
        write(&self.work, "k8s/inner.rhai", "fn x() { 42 }\n");
        write(
            &self.work,
            "aks-undo.rhai",
            &format!(
                "const RUNBOOK = #{{ name: \"aks-undo\", version: \"{version}\", description: \"undo an aks rollout\", params: #{{ cluster: #{{ type: \"string\" }} }} }};\ninfo(params.cluster);\n"
            ),
        );
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "--quiet", "--allow-empty", "-m", &format!("release {version}{marker}")]);
        git(&self.work, &["tag", "-f", &format!("v{version}")]);
        git(&self.work, &["push", "--quiet", "--force", "origin", "main", "--tags"]);
    }

    /// As `release`, signed with `key` (`rollbook sign`) before committing.
    pub fn release_signed(&self, version: &str, key: &Path) {
        self.release(version, "");
        let out = rollbook_in(&self.work, &["sign", "--key", key.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "--quiet", "-m", &format!("sign {version}")]);
        git(&self.work, &["tag", "-f", &format!("v{version}")]);
        git(&self.work, &["push", "--quiet", "--force", "origin", "main", "--tags"]);
    }

    /// Changes a module after signing and tags that as `tag`, without signing again.
    pub fn tamper(&self, tag: &str) {
        write(&self.work, "k8s/helpers.rhai", "fn version() { `evil` }\nfn inner() { 0 }\n");
        git(&self.work, &["commit", "--quiet", "-am", "tamper"]);
        git(&self.work, &["tag", "-f", tag]);
        git(&self.work, &["push", "--quiet", "--force", "origin", "main", "--tags"]);
    }

    pub fn bare(&self) -> &Path {
        &self.bare
    }

    /// Tags the current commit as `tag` too (moving it if it exists) and publishes it.
    pub fn tag(&self, tag: &str) {
        git(&self.work, &["tag", "-f", tag]);
        git(&self.work, &["push", "--quiet", "--force", "origin", "main", "--tags"]);
    }
}

/// The `payments` library depending on `platform` with `^2.1`, and a local module.
pub fn payments(root: &Path, url: &str) -> PathBuf {
    let dir = root.join("payments");
    write(
        &dir,
        "rollbook.toml",
        &format!(
            "[library]\nname = \"payments\"\nversion = \"1.4.0\"\ndescription = \"payments recovery\"\n\n[dependencies]\nplatform = {{ git = \"{url}\", version = \"^2.1\" }}\n"
        ),
    );
    write(&dir, "lib/util.rhai", "fn double(x) { x * 2 }\n");
    write(
        &dir,
        "runbooks/recover.rhai",
        "const RUNBOOK = #{ name: \"recover\", version: \"1.0.0\", description: \"recover payments\" };\nimport \"platform/k8s/helpers\" as h;\nimport \"lib/util\" as u;\ninfo(h::version());\n`${h::version()} ${u::double(h::inner())}`\n",
    );
    dir
}

pub fn published(root: &Path, versions: &[&str]) -> Repo {
    let repo = Repo::new(root, "platform");
    for v in versions {
        repo.release(v, "");
    }
    repo
}

pub fn lock_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("rollbook.lock")).expect("rollbook.lock written")
}

fn locked_version(dir: &Path) -> String {
    let lock: toml::Value = toml::from_str(&lock_text(dir)).unwrap();
    lock["dependency"][0]["version"].as_str().unwrap().to_string()
}

#[test]
fn lock_picks_the_highest_matching_tag_and_update_never_crosses_the_requirement() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = published(tmp.path(), &["2.1.0", "2.2.0", "3.0.0"]);
    let lib = payments(tmp.path(), &repo.url);
    let state = tmp.path().join("state");
    let s = state.to_str().unwrap();

    let out = rollbook_in(&lib, &["lock", "--state-dir", s]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("locked   platform 2.2.0"), "{stdout}");
    assert_eq!(locked_version(&lib), "2.2.0");
    let text = lock_text(&lib);
    for key in ["name = \"platform\"", "source = \"git+file://", "commit = \"", "hash = \"sha256:"] {
        assert!(text.contains(key), "{key} in {text}");
    }

    repo.release("2.3.0", "");
    let out = rollbook_in(&lib, &["update", "--state-dir", s]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("updated  platform 2.2.0") && stdout.contains("→ 2.3.0"), "{stdout}");
    assert_eq!(locked_version(&lib), "2.3.0");

    // Nothing newer within ^2.1: update says so and keeps 2.3.0 (never 3.0.0).
    let out = rollbook_in(&lib, &["update", "platform", "--state-dir", s]);
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("no changes"), "{stdout}");
    assert_eq!(locked_version(&lib), "2.3.0");
}

#[test]
fn a_rewritten_tag_or_changed_cache_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = published(tmp.path(), &["2.1.0", "2.2.0"]);
    let lib = payments(tmp.path(), &repo.url);
    let state = tmp.path().join("state");
    let s = state.to_str().unwrap();
    assert_eq!(rollbook_in(&lib, &["lock", "--state-dir", s]).status.code(), Some(0));

    // Someone moves the tag v2.2.0 to other content.
    repo.release("2.2.0", "-evil");
    let fresh = tmp.path().join("fresh-state");
    let out = rollbook_in(&lib, &["run", "runbooks/recover.rhai", "--state-dir", fresh.to_str().unwrap()]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("rewritten after locking") && stderr.contains("`platform`"), "{stderr}");
    assert!(stderr.contains("library `payments`") && stderr.contains("rollbook.toml"), "{stderr}");
    let out = rollbook_in(&lib, &["lock", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("rewritten after locking"));

    // The cached checkout is edited: its hash no longer matches the lock.
    let checkout =
        std::fs::read_dir(state.join("libraries/checkouts")).unwrap().next().unwrap().unwrap().path();
    write(&checkout, "k8s/helpers.rhai", "fn version() { `hacked` }\n");
    let out = rollbook_in(&lib, &["run", "runbooks/recover.rhai", "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not match its hash in rollbook.lock"), "{stderr}");
}

#[test]
fn a_run_imports_across_libraries_and_journals_versions_and_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = published(tmp.path(), &["2.1.0", "2.2.0", "3.0.0"]);
    let lib = payments(tmp.path(), &repo.url);
    let state = tmp.path().join("state");
    let s = state.to_str().unwrap();

    // No lock yet: the first run locks.
    let out = rollbook_in(&lib, &["run", "payments/runbooks/recover", "--output", "json", "--state-dir", s]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(locked_version(&lib), "2.2.0");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["value"], "2.2.0 84");
    let run_id = report["run_id"].as_str().unwrap().to_string();

    let out = rollbook_in(&lib, &["runs", "show", &run_id, "--output", "json", "--state-dir", s]);
    let records: serde_json::Value = serde_json::from_str(&texts(&out).0).unwrap();
    let runbook = &records[0]["runbook"];
    assert_eq!(runbook["library"]["name"], "payments");
    assert_eq!(runbook["library"]["version"], "1.4.0");
    let modules = runbook["modules"].as_array().unwrap();
    let helpers = modules.iter().find(|m| m["id"] == "platform/k8s/helpers").expect("helpers journaled");
    assert_eq!(helpers["library"]["name"], "platform");
    assert_eq!(helpers["library"]["version"], "2.2.0");
    let lock: toml::Value = toml::from_str(&lock_text(&lib)).unwrap();
    assert_eq!(helpers["library"]["commit"].as_str(), lock["dependency"][0]["commit"].as_str());
    assert_eq!(helpers["library"]["hash"].as_str(), lock["dependency"][0]["hash"].as_str());
    assert!(helpers["hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(modules.iter().any(|m| m["id"] == "platform/k8s/inner"), "{modules:?}");
    assert!(modules.iter().any(|m| m["id"] == "lib/util"), "{modules:?}");

    let out = rollbook_in(&lib, &["runs", "show", &run_id, "--state-dir", s]);
    let (text, _) = texts(&out);
    assert!(text.contains("library  payments 1.4.0"), "{text}");
    assert!(
        text.contains("module   platform/k8s/helpers sha256:")
            && text.contains("from platform 2.2.0 (commit "),
        "{text}"
    );

    // `check` resolves imports of dependencies too.
    let out = rollbook_in(&lib, &["check", "runbooks/recover.rhai", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));

    // A dependency's runbook runs by name.
    let out = rollbook_in(&lib, &["run", "platform/aks-undo", "-p", "cluster=aks-prod", "--state-dir", s]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");

    // Resume refuses when an imported module changed since the run began.
    let journal = state.join("runs").join(format!("{run_id}.jsonl"));
    let text = std::fs::read_to_string(&journal).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("\"run_finished\"")).collect();
    std::fs::write(&journal, kept.join("\n") + "\n").unwrap();
    write(&lib, "lib/util.rhai", "fn double(x) { x * 3 }\n");
    let out = rollbook_in(&lib, &["resume", &run_id, "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("module `lib/util`") && stderr.contains("changed since run"), "{stderr}");
    write(&lib, "runbooks/recover.rhai", "info(\"changed\");\n");
    let out = rollbook_in(&lib, &["resume", &run_id, "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("changed since run"), "{stderr}");
}

#[test]
fn list_shows_runbooks_of_the_library_and_its_dependencies() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = published(tmp.path(), &["2.1.0"]);
    let lib = payments(tmp.path(), &repo.url);
    let state = tmp.path().join("state");
    let out = rollbook_in(&lib, &["list", "--output", "json", "--state-dir", state.to_str().unwrap()]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let runs: Vec<&str> = listed.as_array().unwrap().iter().map(|l| l["run"].as_str().unwrap()).collect();
    assert_eq!(runs[..2], ["payments/runbooks/recover", "platform/aks-undo"]);
    assert!(runs.contains(&"rollbook/k8s-rollout-undo"), "the shipped runbooks are listed: {runs:?}");
    assert_eq!(listed[1]["version"], "2.1.0");
    assert_eq!(listed[1]["description"], "undo an aks rollout");
    assert_eq!(listed[1]["params"][0]["name"], "cluster");
}

fn library(dir: &Path, name: &str, deps: &str) -> PathBuf {
    write(
        dir,
        "rollbook.toml",
        &format!("[library]\nname = \"{name}\"\nversion = \"1.0.0\"\n\n[dependencies]\n{deps}\n"),
    );
    write(dir, "hello.rhai", "const RUNBOOK = #{ name: \"hello\" };\ninfo(\"hi\");\n");
    dir.join("hello.rhai")
}

#[test]
fn bad_dependencies_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let state = t.join("state");
    let s = state.to_str().unwrap();
    let repo = published(t, &["1.0.0"]);
    let missing_bare = format!("file://{}", t.join("nowhere.git").display());
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing", "x = { path = \"../absent\" }".into(), "no `rollbook.toml`"),
        (
            "unreachable",
            format!("x = {{ git = \"{missing_bare}\", version = \"^1\" }}"),
            "cannot list the tags",
        ),
        ("notag", format!("x = {{ git = \"{}\", version = \"^2.1\" }}", repo.url), "no tag of"),
        ("badrev", format!("x = {{ git = \"{}\", rev = \"deadbeef\" }}", repo.url), "no revision `deadbeef`"),
    ];
    for (name, deps, want) in cases {
        let runbook = library(&t.join(name), name, &deps);
        let out = rollbook_in(t, &["run", runbook.to_str().unwrap(), "--state-dir", s]);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {stdout}{stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("library `{name}`")) && stderr.contains("rollbook.toml"),
            "{stderr}"
        );
        assert!(!stdout.contains("hi"), "{name} ran: {stdout}");
    }

    // A cycle: a → b → a.
    library(&t.join("b"), "b", "a = { path = \"../a\" }");
    let runbook = library(&t.join("a"), "a", "b = { path = \"../b\" }");
    let out = rollbook_in(t, &["run", runbook.to_str().unwrap(), "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cycle between libraries: a → b → a"), "{stderr}");

    // Two dependencies named alike from different sources.
    library(&t.join("c1"), "c", "");
    library(&t.join("c2"), "c", "");
    library(&t.join("d"), "d", "shared = { path = \"../c2\" }");
    let runbook = library(&t.join("e"), "e", "shared = { path = \"../c1\" }\nd = { path = \"../d\" }");
    let out = rollbook_in(t, &["run", runbook.to_str().unwrap(), "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("two dependencies are named `shared`"), "{stderr}");

    // A lock that no longer matches the manifest.
    let runbook = library(&t.join("f"), "f", &format!("x = {{ git = \"{}\", version = \"^1\" }}", repo.url));
    assert_eq!(rollbook_in(&t.join("f"), &["lock", "--state-dir", s]).status.code(), Some(0));
    library(&t.join("f"), "f", &format!("x = {{ git = \"{}\", version = \"^2\" }}", repo.url));
    let out = rollbook_in(t, &["run", runbook.to_str().unwrap(), "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no longer matches rollbook.toml"), "{stderr}");
    let _ = repo.bare();
}

pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = rollbook_in(dir, &["keygen", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap().trim().to_string();
    (key, public)
}

pub fn trust(lib: &Path, key: &str) {
    let manifest = lib.join("rollbook.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}\n[trust]\nkeys = [\"{key}\"]\n")).unwrap();
}

#[test]
fn signed_dependencies_pass_and_tampered_or_untrusted_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path(), "platform.key");
    let repo = Repo::new(tmp.path(), "platform");
    repo.release_signed("2.1.0", &key);
    let lib = payments(tmp.path(), &repo.url);
    trust(&lib, &public);
    let state = tmp.path().join("state");
    let s = state.to_str().unwrap();

    let out = rollbook_in(&repo.work, &["verify", "--state-dir", s]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("ok  platform 2.1.0 signed by {public}")), "{stdout}");
    let out = rollbook_in(&lib, &["lock", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
    let out = rollbook_in(&lib, &["run", "runbooks/recover.rhai", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));

    // Content changed after signing, published as 2.1.1: refused by update and by verify.
    repo.tamper("v2.1.1");
    let out = rollbook_in(&lib, &["update", "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refused by `[trust] keys`") && stderr.contains("changed after signing"),
        "{stderr}"
    );
    assert!(stderr.contains("library `payments`") && stderr.contains("dependency `platform`"), "{stderr}");
    let out = rollbook_in(&repo.work, &["verify", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(locked_version(&lib), "2.1.0");

    // Signed, but by a key the manifest does not trust.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let repo2 = Repo::new(&other, "platform");
    repo2.release("2.1.0", "");
    let lib2 = payments(&other, &repo2.url);
    trust(&lib2, &public);
    let out = rollbook_in(&lib2, &["lock", "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not signed"), "{stderr}");
    let (key2, _) = keygen(&other, "intruder.key");
    repo2.release_signed("2.2.0", &key2);
    let out = rollbook_in(&lib2, &["lock", "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not among the trusted keys"), "{stderr}");
}

#[test]
fn a_bundle_runs_with_the_git_repositories_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = published(tmp.path(), &["2.1.0", "2.2.0", "3.0.0"]);
    let lib = payments(tmp.path(), &repo.url);
    let bundle = tmp.path().join("payments.rbk");
    let out = rollbook_in(
        &lib,
        &["pack", "-o", bundle.to_str().unwrap(), "--state-dir", tmp.path().join("state").to_str().unwrap()],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("2 libraries"), "{stdout}");

    // An air-gapped machine: no repositories, no library folder, no cache.
    std::fs::remove_dir_all(repo.bare()).unwrap();
    std::fs::remove_dir_all(&repo.work).unwrap();
    std::fs::remove_dir_all(&lib).unwrap();
    std::fs::remove_dir_all(tmp.path().join("state")).unwrap();
    let state = tmp.path().join("airgap");
    let s = state.to_str().unwrap();
    let target = format!("{}#payments/runbooks/recover", bundle.display());
    let out = rollbook_in(tmp.path(), &["run", &target, "--output", "json", "--state-dir", s]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["value"], "2.2.0 84");
    let run_id = report["run_id"].as_str().unwrap();
    let out = rollbook_in(tmp.path(), &["runs", "show", run_id, "--state-dir", s]);
    assert!(texts(&out).0.contains("from platform 2.2.0 (commit "), "{:?}", texts(&out));
    let target = format!("{}#platform/aks-undo", bundle.display());
    let out = rollbook_in(tmp.path(), &["run", &target, "-p", "cluster=c", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));

    // A bundle whose content was changed is refused.
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    doc["libraries"][1]["files"]["k8s/inner.rhai"] = serde_json::json!("Zm4geCgpIHsgMCB9"); // "fn x() { 0 }"
    let tampered = tmp.path().join("tampered.rbk");
    std::fs::write(&tampered, serde_json::to_vec(&doc).unwrap()).unwrap();
    let target = format!("{}#payments/runbooks/recover", tampered.display());
    let out = rollbook_in(tmp.path(), &["run", &target, "--state-dir", s]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not match its hash in the bundle") && stderr.contains("`platform`"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_runbooks_are_a_library() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("state");
    let out = rollbook_in(tmp.path(), &["list", "--state-dir", s.to_str().unwrap()]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for name in
        ["appservice-swap-back", "arm-redeploy-last-good", "k8s-rollout-undo", "logicapp-promote-previous"]
    {
        assert!(stdout.contains(&format!("rollbook/{name}  ({name} 1.0.0, rollbook ")), "{name}: {stdout}");
    }
    let out = rollbook_in(tmp.path(), &["run", "rollbook/nope", "--state-dir", s.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("rollbook ships no runbook `nope`"));
    // Running a shipped runbook by name reaches its params check (it loaded from the library).
    let out =
        rollbook_in(tmp.path(), &["run", "rollbook/k8s-rollout-undo", "--state-dir", s.to_str().unwrap()]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("param"), "{stderr}");
}
