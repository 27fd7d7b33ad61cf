//! Resolving a library's dependency graph against `rollbook.lock`: locking, updating within the
//! requirements, fetching git dependencies into the cache and checking their content hashes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::lock::{self, Lock, Locked};
use super::manifest::{DepSpec, GitPin, MANIFEST, Manifest};
use super::{LibraryError, content_hash, git};

/// What the caller wants from the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A run: use the lock as it is (write it if there is none); refuse one that no longer matches.
    Run,
    /// `rollbook lock`: keep pins that still match, pin what is new, check pins against sources.
    Lock,
    /// `rollbook update [DEP]`: move the pins of DEP (or all) to the newest matching versions.
    Update(Option<String>),
}

/// A library in use: the one run from, or a dependency.
#[derive(Debug, Clone)]
pub struct Library {
    /// `[library] name` of its manifest.
    pub name: String,
    /// Its version (for git, the tag's).
    pub version: String,
    /// `[library] description`.
    pub description: String,
    /// Its folder (for git, the checkout in the cache).
    pub root: PathBuf,
    /// `git+…` or `path+…`; none for the library run from.
    pub source: Option<String>,
    /// The git commit.
    pub commit: Option<String>,
    /// Its content hash (`sha256:`).
    pub hash: String,
}

/// One pin that moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The dependency.
    pub name: String,
    /// Before (`version (commit)`), none if new.
    pub from: Option<String>,
    /// After, none if removed.
    pub to: Option<String>,
}

/// A library with its dependencies resolved, fetched and checked.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The library itself.
    pub root: Library,
    /// Its manifest file.
    pub manifest: PathBuf,
    /// Every dependency (also of dependencies), by the name imports use.
    pub deps: BTreeMap<String, Library>,
    /// Pins that moved (for `lock` and `update`).
    pub changes: Vec<Change>,
    /// Where the lock was written, if it was.
    pub wrote_lock: Option<PathBuf>,
}

struct Ctx<'a> {
    mode: Mode,
    strict: bool,
    old: Option<&'a Lock>,
    lock_file: PathBuf,
    cache: PathBuf,
    deps: BTreeMap<String, Library>,
    locked: Vec<Locked>,
    trust: Vec<String>,
}

/// Resolves the library of `manifest_file` (see [`Mode`]); fetched libraries go under
/// `<state_dir>/libraries/`.
pub fn resolve(manifest_file: &Path, state_dir: &Path, mode: Mode) -> Result<Resolved, LibraryError> {
    let manifest = Manifest::load(manifest_file)?;
    let old = Lock::load(manifest_file)?;
    if let Mode::Update(Some(dep)) = &mode
        && old.as_ref().is_none_or(|l| l.get(dep).is_none())
        && !manifest.dependencies.contains_key(dep)
    {
        return Err(LibraryError::Manifest {
            file: manifest_file.to_path_buf(),
            why: format!("library `{}` has no dependency `{dep}`", manifest.name),
        });
    }
    let strict = mode == Mode::Run && old.is_some();
    let mut ctx = Ctx {
        mode: mode.clone(),
        strict,
        old: old.as_ref(),
        lock_file: lock::path_for(manifest_file),
        cache: state_dir.join("libraries"),
        deps: BTreeMap::new(),
        locked: Vec::new(),
        trust: {
            // The operator's policy: this manifest's `[trust] keys` and `ROLLBOOK_TRUST_KEYS`.
            let mut keys = manifest.trust_keys.clone();
            keys.extend(super::sign::env_keys());
            keys
        },
    };
    let root_dir = manifest.root();
    let mut stack = vec![manifest.name.clone()];
    visit(&mut ctx, &manifest, &root_dir, false, &mut stack)?;
    if strict && let Some(old) = &old {
        for o in &old.dependencies {
            if !ctx.deps.contains_key(&o.name) {
                return Err(LibraryError::Lock {
                    file: ctx.lock_file.clone(),
                    why: format!(
                        "rollbook.lock no longer matches rollbook.toml: it pins `{}`, which is no longer a dependency; run `rollbook lock`",
                        o.name
                    ),
                });
            }
        }
    }
    let mut new_lock = Lock { version: 1, dependencies: std::mem::take(&mut ctx.locked) };
    new_lock.dependencies.sort_by(|a, b| a.name.cmp(&b.name));
    let changes = diff(old.as_ref(), &new_lock);
    // A library without dependencies gets a lock only when asked for one.
    let wants_lock = mode != Mode::Run || (old.is_none() && !new_lock.dependencies.is_empty());
    let wrote_lock = if wants_lock {
        if old.as_ref() != Some(&new_lock) { Some(new_lock.save(manifest_file)?) } else { None }
    } else {
        None
    };
    let root = Library {
        name: manifest.name.clone(),
        version: manifest.version.to_string(),
        description: manifest.description.clone(),
        root: root_dir.clone(),
        source: None,
        commit: None,
        hash: content_hash(&root_dir)?,
    };
    Ok(Resolved { root, manifest: manifest_file.to_path_buf(), deps: ctx.deps, changes, wrote_lock })
}

fn pin_text(l: &Locked) -> String {
    match &l.commit {
        Some(c) => format!("{} ({})", l.version, &c[..c.len().min(12)]),
        None => l.version.clone(),
    }
}

fn diff(old: Option<&Lock>, new: &Lock) -> Vec<Change> {
    let mut changes = Vec::new();
    let empty = Lock::default();
    let old = old.unwrap_or(&empty);
    for n in &new.dependencies {
        match old.get(&n.name) {
            Some(o) if o == n => {}
            Some(o) => {
                changes.push(Change { name: n.name.clone(), from: Some(pin_text(o)), to: Some(pin_text(n)) })
            }
            None => changes.push(Change { name: n.name.clone(), from: None, to: Some(pin_text(n)) }),
        }
    }
    for o in &old.dependencies {
        if new.get(&o.name).is_none() {
            changes.push(Change { name: o.name.clone(), from: Some(pin_text(o)), to: None });
        }
    }
    changes
}

fn visit(
    ctx: &mut Ctx<'_>,
    lib: &Manifest,
    lib_dir: &Path,
    in_git: bool,
    stack: &mut Vec<String>,
) -> Result<(), LibraryError> {
    for (name, spec) in &lib.dependencies {
        let err = |why: String| LibraryError::Dependency {
            library: lib.name.clone(),
            file: lib.file.clone(),
            dep: name.clone(),
            why,
        };
        let source = spec.source();
        if let Some(existing) = ctx.deps.get(name) {
            if stack.contains(&existing.name) {
                return Err(err(format!(
                    "cycle between libraries: {} → {}",
                    stack.join(" → "),
                    existing.name
                )));
            }
            if existing.source.as_deref() == Some(source.as_str()) {
                continue;
            }
            return Err(err(format!(
                "two dependencies are named `{name}`: `{}` and `{source}`; rename one",
                existing.source.as_deref().unwrap_or("")
            )));
        }
        let (dir, pinned) = match spec {
            DepSpec::Path(p) => {
                if in_git {
                    return Err(err("a git dependency cannot have path dependencies".into()));
                }
                let dir = lib_dir.join(p);
                if !dir.join(MANIFEST).is_file() {
                    return Err(err(format!("no `{MANIFEST}` in `{}`", dir.display())));
                }
                (dir, None)
            }
            DepSpec::Git { url, pin } => {
                let (dir, locked) = git_dep(ctx, name, url, pin).map_err(err)?;
                (dir, Some(locked))
            }
        };
        let dep = Manifest::load(&dir.join(MANIFEST))
            .map_err(|e| err(format!("no usable `{MANIFEST}` in `{}`: {e}", dir.display())))?;
        if stack.contains(&dep.name) {
            return Err(err(format!("cycle between libraries: {} → {}", stack.join(" → "), dep.name)));
        }
        if pinned.is_some() && !ctx.trust.is_empty() {
            super::sign::verify(&dir, &ctx.trust)
                .map_err(|why| err(format!("refused by `[trust] keys`: {why}")))?;
        }
        // A tag names a version: the library it holds must be that version (a signed 2.1.0
        // tagged again as v2.2.0 is not 2.2.0).
        if let Some(l) = &pinned
            && l.rev.is_none()
            && l.version != dep.version.to_string()
        {
            return Err(err(format!(
                "the tag for version {} holds library `{}` version {}: tag and manifest disagree; refusing it",
                l.version, dep.name, dep.version
            )));
        }
        let locked = match pinned {
            Some(l) => l,
            None => {
                let hash = content_hash(&dir)?;
                let l = Locked {
                    name: name.clone(),
                    source: source.clone(),
                    version: dep.version.to_string(),
                    commit: None,
                    rev: None,
                    hash,
                };
                if ctx.strict && ctx.old.and_then(|o| o.get(name)).is_none_or(|o| o.source != source) {
                    return Err(not_matching(ctx, name, &source));
                }
                l
            }
        };
        ctx.deps.insert(
            name.clone(),
            Library {
                name: dep.name.clone(),
                version: locked.version.clone(),
                description: dep.description.clone(),
                root: dir.clone(),
                source: Some(source),
                commit: locked.commit.clone(),
                hash: locked.hash.clone(),
            },
        );
        ctx.locked.push(locked);
        stack.push(dep.name.clone());
        visit(ctx, &dep, &dir, in_git || matches!(spec, DepSpec::Git { .. }), stack)?;
        stack.pop();
    }
    Ok(())
}

fn not_matching(ctx: &Ctx<'_>, name: &str, source: &str) -> LibraryError {
    LibraryError::Lock {
        file: ctx.lock_file.clone(),
        why: format!(
            "rollbook.lock no longer matches rollbook.toml: dependency `{name}` ({source}) is not locked as declared; run `rollbook lock` (or `rollbook update {name}`)"
        ),
    }
}

fn pin_matches(o: &Locked, pin: &GitPin) -> bool {
    match pin {
        GitPin::Version(req) => {
            o.rev.is_none() && semver::Version::parse(&o.version).is_ok_and(|v| req.matches(&v))
        }
        GitPin::Rev(r) => o.rev.as_deref() == Some(r.as_str()),
    }
}

/// Resolves, fetches and checks one git dependency; returns its checkout and pin.
fn git_dep(ctx: &mut Ctx<'_>, name: &str, url: &str, pin: &GitPin) -> Result<(PathBuf, Locked), String> {
    git::check_url(url)?;
    let source = format!("git+{url}");
    let refresh = match &ctx.mode {
        Mode::Update(None) => true,
        Mode::Update(Some(d)) => d == name,
        _ => false,
    };
    let old =
        ctx.old.and_then(|l| l.get(name)).filter(|o| o.source == source && pin_matches(o, pin) && !refresh);
    let checkouts = ctx.cache.join("checkouts");
    if let Some(o) = old.cloned() {
        let commit = o.commit.clone().ok_or_else(|| format!("rollbook.lock has no commit for `{name}`"))?;
        let dir = checkouts.join(format!("{name}-{commit}"));
        if ctx.mode == Mode::Run && dir.is_dir() {
            let hash = content_hash(&dir).map_err(|e| e.to_string())?;
            if hash != o.hash {
                return Err(format!(
                    "the cached content of {} at `{}` ({hash}) does not match its hash in rollbook.lock ({}); delete that folder to fetch it again",
                    o.version,
                    dir.display(),
                    o.hash
                ));
            }
            return Ok((dir, o));
        }
        // Fetch again and check the pin against the source: a tag may have been rewritten.
        if let GitPin::Version(_) = pin {
            let tags =
                git::tags(&ctx.cache, url).map_err(|e| format!("cannot list the tags of `{url}`: {e}"))?;
            let tag = tags
                .iter()
                .find(|t| t.version.to_string() == o.version)
                .ok_or_else(|| format!("the tag of locked version {} is gone from `{url}`", o.version))?;
            if tag.commit != commit {
                return Err(format!(
                    "tag `{}` of `{url}` now points to commit {}, but rollbook.lock pins {commit}: the tag was rewritten after locking; review the change, then `rollbook update {name}`",
                    tag.name, tag.commit
                ));
            }
        }
        let mirror = git::fetch(&ctx.cache, url).map_err(|e| format!("cannot fetch `{url}`: {e}"))?;
        git::rev_parse(&mirror, &commit)
            .map_err(|e| format!("locked commit {commit} is not in `{url}`: {e}"))?;
        fresh_checkout(&mirror, &commit, &dir)?;
        let hash = content_hash(&dir).map_err(|e| e.to_string())?;
        if hash != o.hash {
            return Err(format!(
                "the content of {} (commit {commit}) is {hash}, but rollbook.lock says {}: it changed after locking; refusing it",
                o.version, o.hash
            ));
        }
        return Ok((dir, o));
    }
    if ctx.strict {
        return Err(format!(
            "rollbook.lock (`{}`) no longer matches rollbook.toml: `{name}` is not locked as declared; run `rollbook lock` (or `rollbook update {name}`)",
            ctx.lock_file.display()
        ));
    }
    let (version, commit, rev) = match pin {
        GitPin::Version(req) => {
            let tags =
                git::tags(&ctx.cache, url).map_err(|e| format!("cannot list the tags of `{url}`: {e}"))?;
            let best = git::best(&tags, req).ok_or_else(|| {
                let mut have: Vec<String> = tags.iter().map(|t| t.version.to_string()).collect();
                have.sort();
                format!(
                    "no tag of `{url}` matches `{req}` (tags: {})",
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                )
            })?;
            (Some(best.version.to_string()), best.commit.clone(), None)
        }
        GitPin::Rev(r) => (None, String::new(), Some(r.clone())),
    };
    let mirror = git::fetch(&ctx.cache, url).map_err(|e| format!("cannot fetch `{url}`: {e}"))?;
    let commit = match &rev {
        Some(r) => git::rev_parse(&mirror, r).map_err(|e| format!("`{url}`: {e}"))?,
        None => git::rev_parse(&mirror, &commit).map_err(|e| format!("`{url}`: {e}"))?,
    };
    let dir = checkouts.join(format!("{name}-{commit}"));
    fresh_checkout(&mirror, &commit, &dir)?;
    let hash = content_hash(&dir).map_err(|e| e.to_string())?;
    let version = match version {
        Some(v) => v,
        None => {
            Manifest::load(&dir.join(MANIFEST)).map(|m| m.version.to_string()).map_err(|e| e.to_string())?
        }
    };
    Ok((dir, Locked { name: name.to_string(), source, version, commit: Some(commit), rev, hash }))
}

fn fresh_checkout(mirror: &Path, commit: &str, dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot replace `{}`: {e}", dir.display()))?;
    }
    git::checkout(mirror, commit, dir)
}
