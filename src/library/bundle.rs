//! Bundles for air-gapped use (`rollbook pack`): one file with a library, its locked
//! dependencies and their content hashes, runnable without the git repositories.
//!
//! **Format** (`.rbk`): a JSON document
//! `{"format": "rollbook-bundle/1", "root": KEY, "libraries": [LIB…]}` where each `LIB` is
//! `{"key", "name", "version", "description", "source", "commit", "hash", "files"}`: `key` is the
//! name imports use (the root library's own name for the root), `hash` its content hash (see
//! the module docs of `library`), and `files` maps each relative path (`/`-separated) to the
//! file's bytes in base64. A bundle is unpacked into `<state>/libraries/bundles/<id>/<key>/`
//! (`<id>`: the first 16 hex digits of the bundle's SHA-256) and every library's content is
//! checked against its hash before anything runs. `rollbook run BUNDLE#<library>/<runbook>`
//! runs a runbook from it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::manifest::MANIFEST;
use super::{Library, LibraryError, Manifest, Resolved, content_hash, files};

const FORMAT: &str = "rollbook-bundle/1";
/// The copy of the bundle kept beside its unpacked libraries (so resumes find it again).
pub const KEPT: &str = "bundle.rbk";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    format: String,
    root: String,
    libraries: Vec<Bundled>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundled {
    key: String,
    name: String,
    version: String,
    description: String,
    source: Option<String>,
    commit: Option<String>,
    hash: String,
    files: BTreeMap<String, String>,
}

fn bundled(key: &str, lib: &Library) -> Result<Bundled, LibraryError> {
    let hash = content_hash(&lib.root)?;
    if lib.commit.is_some() && hash != lib.hash {
        return Err(LibraryError::Files {
            dir: lib.root.clone(),
            why: format!("content of `{key}` ({hash}) does not match rollbook.lock ({})", lib.hash),
        });
    }
    let mut out = BTreeMap::new();
    for (rel, path) in files(&lib.root)? {
        let bytes = std::fs::read(&path).map_err(|e| LibraryError::Files {
            dir: lib.root.clone(),
            why: format!("cannot read `{rel}`: {e}"),
        })?;
        out.insert(rel, base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    Ok(Bundled {
        key: key.to_string(),
        name: lib.name.clone(),
        version: lib.version.clone(),
        description: lib.description.clone(),
        source: lib.source.clone(),
        commit: lib.commit.clone(),
        hash,
        files: out,
    })
}

/// Writes `resolved` (the library and every dependency) into one bundle file; returns the
/// number of libraries and files.
pub fn pack(resolved: &Resolved, out: &Path) -> Result<(usize, usize), LibraryError> {
    let mut libraries = vec![bundled(&resolved.root.name, &resolved.root)?];
    for (key, lib) in &resolved.deps {
        libraries.push(bundled(key, lib)?);
    }
    let count = libraries.iter().map(|l| l.files.len()).sum();
    let bundle = Bundle { format: FORMAT.into(), root: resolved.root.name.clone(), libraries };
    let text = serde_json::to_vec(&bundle).map_err(|e| LibraryError::Files {
        dir: out.to_path_buf(),
        why: format!("cannot encode the bundle: {e}"),
    })?;
    std::fs::write(out, text).map_err(|e| LibraryError::Files {
        dir: out.to_path_buf(),
        why: format!("cannot write the bundle: {e}"),
    })?;
    Ok((bundle.libraries.len(), count))
}

fn safe_rel(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty()
        && !rel.contains('\\')
        && !rel.contains(':')
        && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Unpacks (once) and checks the bundle at `file`; its libraries resolved as a run uses them.
pub fn open(file: &Path, state_dir: &Path) -> Result<Resolved, LibraryError> {
    let bad = |why: String| LibraryError::Files { dir: file.to_path_buf(), why };
    let bytes = std::fs::read(file).map_err(|e| bad(format!("cannot read the bundle: {e}")))?;
    let bundle: Bundle =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a rollbook bundle: {e}")))?;
    if bundle.format != FORMAT {
        return Err(bad(format!("unknown bundle format `{}` (this rollbook reads {FORMAT})", bundle.format)));
    }
    let id = hex::encode(Sha256::digest(&bytes));
    let base = state_dir.join("libraries").join("bundles").join(&id[..16]);
    let mut deps = BTreeMap::new();
    let mut root = None;
    for lib in &bundle.libraries {
        if !super::manifest::valid_name(&lib.key) {
            return Err(bad(format!("library key `{}` is not a valid name", lib.key)));
        }
        let dir = base.join(&lib.key);
        if !dir.is_dir() {
            let tmp = base.join(format!(".tmp-{}-{}", lib.key, std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            for (rel, data) in &lib.files {
                if !safe_rel(rel) {
                    return Err(bad(format!(
                        "library `{}`: file path `{rel}` is not a plain relative path",
                        lib.key
                    )));
                }
                let content = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| bad(format!("library `{}`: file `{rel}` is not base64: {e}", lib.key)))?;
                let path = tmp.join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| bad(format!("cannot create `{}`: {e}", parent.display())))?;
                }
                std::fs::write(&path, content)
                    .map_err(|e| bad(format!("cannot write `{}`: {e}", path.display())))?;
            }
            std::fs::rename(&tmp, &dir)
                .map_err(|e| bad(format!("cannot unpack into `{}`: {e}", dir.display())))?;
        }
        let hash = content_hash(&dir)?;
        if hash != lib.hash {
            return Err(bad(format!(
                "library `{}` {}: its content ({hash}) does not match its hash in the bundle ({})",
                lib.key, lib.version, lib.hash
            )));
        }
        let entry = Library {
            name: lib.name.clone(),
            version: lib.version.clone(),
            description: lib.description.clone(),
            root: dir,
            source: lib.source.clone(),
            commit: lib.commit.clone(),
            hash,
        };
        if lib.key == bundle.root {
            root = Some(entry);
        } else {
            deps.insert(lib.key.clone(), entry);
        }
    }
    let root = root.ok_or_else(|| bad(format!("the bundle has no library `{}`", bundle.root)))?;
    let kept = base.join(KEPT);
    if !kept.exists() {
        let _ = std::fs::write(&kept, &bytes);
    }
    let manifest = root.root.join(MANIFEST);
    let trust = Manifest::load(&manifest)?.trust_keys;
    if !trust.is_empty() {
        for (key, dep) in &deps {
            if dep.commit.is_some() {
                super::sign::verify(&dep.root, &trust).map_err(|why| LibraryError::Dependency {
                    library: root.name.clone(),
                    file: manifest.clone(),
                    dep: key.clone(),
                    why: format!("refused by `[trust] keys`: {why}"),
                })?;
            }
        }
    }
    Ok(Resolved { root, manifest, deps, changes: Vec::new(), wrote_lock: None })
}

/// The bundle a library unpacked from a bundle came from (for resuming its runs).
pub fn kept_for(library_root: &Path) -> Option<PathBuf> {
    let kept = library_root.parent()?.join(KEPT);
    let in_bundles = library_root.parent()?.parent()?.file_name()? == "bundles";
    (in_bundles && kept.is_file()).then_some(kept)
}
