//! Bundles for air-gapped use (`rollbook pack`): one file with a library, its locked
//! dependencies and their content hashes, runnable without the git repositories.
//!
//! **Format** (`.rbk`): a JSON document
//! `{"format": "rollbook-bundle/1", "root": KEY, "libraries": [LIB…]}` where each `LIB` is
//! `{"key", "name", "version", "description", "source", "commit", "hash", "files"}`: `key` is the
//! name imports use (the root library's own name for the root), `hash` its content hash (see
//! the module docs of `library`), and `files` maps each relative path (`/`-separated) to the
//! file's bytes in base64.
//!
//! **Signed as a whole** (`rollbook pack --key FILE`): the document above, as bytes, is wrapped
//! in `{"format": "rollbook-signed-bundle/1", "key": HEX, "signature": HEX, "bundle": BASE64}`,
//! where `signature` is the ed25519 signature by public `key` of the text
//! `rollbook-bundle-signature-v1\n<sha256 of the inner bytes, hex>\n`.
//!
//! **Opening** checks everything in memory before one file is written: the whole-bundle
//! signature (when there is one) must be valid; every library's files must match its hash;
//! and under the operator's trust policy (see `sign::operator_keys`: never anything inside the
//! bundle) either the whole bundle is signed by a trusted key, or every library in it, the
//! root included and whatever its `commit`, carries a `rollbook.sig` by a trusted key over its
//! content. Only then is it unpacked into `<state>/libraries/bundles/<id>/<key>/` (`<id>`: the
//! first 16 hex digits of the file's SHA-256; an unpacked copy whose content no longer matches
//! is unpacked again). `rollbook run BUNDLE#<library>/<runbook>` runs a runbook from it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::manifest::MANIFEST;
use super::sign::SIGFILE;
use super::{Library, LibraryError, Manifest, Resolved, content_hash, files, hash_entries};

const FORMAT: &str = "rollbook-bundle/1";
const SIGNED_FORMAT: &str = "rollbook-signed-bundle/1";
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

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    format: String,
    key: String,
    signature: String,
    bundle: String,
}

#[derive(Deserialize)]
struct FormatOnly {
    format: String,
}

fn bundle_message(inner: &[u8]) -> String {
    format!("rollbook-bundle-signature-v1\n{}\n", hex::encode(Sha256::digest(inner)))
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

/// Writes `resolved` (the library and every dependency) into one bundle file, signed as a
/// whole with the secret key in `key` when given; returns the number of libraries and files.
pub fn pack(resolved: &Resolved, out: &Path, key: Option<&Path>) -> Result<(usize, usize), LibraryError> {
    let fail = |why: String| LibraryError::Files { dir: out.to_path_buf(), why };
    let mut libraries = vec![bundled(&resolved.root.name, &resolved.root)?];
    for (key, lib) in &resolved.deps {
        libraries.push(bundled(key, lib)?);
    }
    let count = libraries.iter().map(|l| l.files.len()).sum();
    let bundle = Bundle { format: FORMAT.into(), root: resolved.root.name.clone(), libraries };
    let mut text = serde_json::to_vec(&bundle).map_err(|e| fail(format!("cannot encode the bundle: {e}")))?;
    if let Some(key_file) = key {
        let (public, signature) = super::sign::sign_message(key_file, bundle_message(&text).as_bytes())
            .map_err(|why| fail(format!("cannot sign the bundle: {why}")))?;
        let signed = Signed {
            format: SIGNED_FORMAT.into(),
            key: public,
            signature,
            bundle: base64::engine::general_purpose::STANDARD.encode(&text),
        };
        text = serde_json::to_vec(&signed).map_err(|e| fail(format!("cannot encode the bundle: {e}")))?;
    }
    std::fs::write(out, text).map_err(|e| fail(format!("cannot write the bundle: {e}")))?;
    Ok((bundle.libraries.len(), count))
}

fn safe_rel(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty()
        && !rel.contains('\\')
        && !rel.contains(':')
        && !rel.chars().any(char::is_control)
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        // Left out of the content hash, so never carried in a bundle.
        && rel != ".git"
        && !rel.starts_with(".git/")
}

/// One library of a bundle, checked in memory.
pub struct CheckedLibrary {
    /// The name imports use.
    pub key: String,
    /// `[library] name`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `[library] description`.
    pub description: String,
    /// `git+…` or `path+…`; none for the root.
    pub source: Option<String>,
    /// The git commit, if it came from git.
    pub commit: Option<String>,
    /// Its content hash, checked against its files.
    pub hash: String,
    /// Its files: relative path → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A bundle read and checked in memory (nothing unpacked yet).
pub struct Checked {
    /// The key of the root library.
    pub root: String,
    /// Every library, the root included.
    pub libraries: Vec<CheckedLibrary>,
    /// The key that signed the whole bundle, if it is signed.
    pub signed_by: Option<String>,
}

/// Reads and checks the bytes of a bundle under the trust policy `trusted` (public keys, hex;
/// empty: no policy), without touching the disk. See the module docs for what is checked.
pub fn read(bytes: &[u8], trusted: &[String]) -> Result<Checked, String> {
    let head: FormatOnly =
        serde_json::from_slice(bytes).map_err(|e| format!("not a rollbook bundle: {e}"))?;
    let (inner, signed_by): (Vec<u8>, Option<String>) = match head.format.as_str() {
        FORMAT => (bytes.to_vec(), None),
        SIGNED_FORMAT => {
            let signed: Signed =
                serde_json::from_slice(bytes).map_err(|e| format!("not a signed rollbook bundle: {e}"))?;
            let inner = base64::engine::general_purpose::STANDARD
                .decode(&signed.bundle)
                .map_err(|e| format!("the signed bundle's content is not base64: {e}"))?;
            super::sign::check_signature(&signed.key, &signed.signature, bundle_message(&inner).as_bytes())
                .map_err(|why| format!("its whole-bundle signature does not verify: {why}; it was changed after signing or is damaged"))?;
            (inner, Some(signed.key.to_ascii_lowercase()))
        }
        other => {
            return Err(format!(
                "unknown bundle format `{}` (this rollbook reads {FORMAT} and {SIGNED_FORMAT})",
                other.escape_default()
            ));
        }
    };
    let bundle: Bundle = serde_json::from_slice(&inner).map_err(|e| format!("not a rollbook bundle: {e}"))?;
    if bundle.format != FORMAT {
        return Err(format!(
            "unknown bundle format `{}` (this rollbook reads {FORMAT})",
            bundle.format.escape_default()
        ));
    }
    let mut keys = BTreeSet::new();
    let mut libraries = Vec::new();
    for lib in bundle.libraries {
        let key = lib.key;
        if !super::manifest::valid_name(&key) {
            return Err(format!("library key `{}` is not a valid name", key.escape_default()));
        }
        if !keys.insert(key.clone()) {
            return Err(format!("library `{key}` appears twice"));
        }
        let mut contents = BTreeMap::new();
        for (rel, data) in &lib.files {
            if !safe_rel(rel) {
                return Err(format!(
                    "library `{key}`: file path `{}` is not a plain relative path",
                    rel.escape_default()
                ));
            }
            let content = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| format!("library `{key}`: file `{rel}` is not base64: {e}"))?;
            contents.insert(rel.clone(), content);
        }
        let hash = hash_entries(contents.iter().map(|(r, b)| (r.as_str(), b.as_slice())));
        if hash != lib.hash {
            return Err(format!(
                "library `{key}` {}: its content ({hash}) does not match its hash in the bundle ({})",
                lib.version, lib.hash
            ));
        }
        libraries.push(CheckedLibrary {
            key,
            name: lib.name,
            version: lib.version,
            description: lib.description,
            source: lib.source,
            commit: lib.commit,
            hash,
            files: contents,
        });
    }
    if !keys.contains(&bundle.root) {
        return Err(format!("the bundle has no library `{}`", bundle.root.escape_default()));
    }
    let whole_trusted = signed_by.as_deref().is_some_and(|k| super::sign::is_trusted(k, trusted));
    if !trusted.is_empty() && !whole_trusted {
        for lib in &libraries {
            verify_library(lib)
                .and_then(|(manifest, sig)| {
                    super::sign::verify_parts(&manifest, &sig, &lib.hash, trusted).map(|_| ())
                })
                .map_err(|why| {
                    let whole = match &signed_by {
                        Some(k) => format!("the bundle is signed by key {k}, which is not trusted, and "),
                        None => "the bundle is not signed as a whole, and ".to_string(),
                    };
                    format!(
                        "refused by the trust policy: {whole}library `{}` {} does not verify: {why}",
                        lib.key, lib.version
                    )
                })?;
        }
    }
    Ok(Checked { root: bundle.root, libraries, signed_by })
}

/// The manifest and signature text of a library held in memory.
fn verify_library(lib: &CheckedLibrary) -> Result<(Manifest, String), String> {
    let manifest_text = lib
        .files
        .get(MANIFEST)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .ok_or_else(|| format!("it has no `{MANIFEST}`"))?;
    let manifest = Manifest::parse(Path::new(MANIFEST), &manifest_text).map_err(|e| e.to_string())?;
    let sig = lib
        .files
        .get(SIGFILE)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .ok_or_else(|| format!("it is not signed (no `{SIGFILE}`)"))?;
    Ok((manifest, sig))
}

fn unpack_one(base: &Path, lib: &CheckedLibrary) -> Result<PathBuf, String> {
    let dir = base.join(&lib.key);
    if dir.is_dir() {
        if content_hash(&dir).is_ok_and(|h| h == lib.hash) {
            return Ok(dir);
        }
        // The unpacked copy changed since: unpack it again from the checked bundle.
        std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot replace `{}`: {e}", dir.display()))?;
    }
    let tmp = base.join(format!(".tmp-{}-{}-{}", lib.key, std::process::id(), fastrand::u64(..)));
    let write_all = || -> Result<(), String> {
        crate::model::file::create_private_dir(&tmp)
            .map_err(|e| format!("cannot create `{}`: {e}", tmp.display()))?;
        for (rel, content) in &lib.files {
            let path = tmp.join(rel);
            if let Some(parent) = path.parent() {
                crate::model::file::create_private_dir(parent)
                    .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
            }
            std::fs::write(&path, content).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| format!("cannot unpack into `{}`: {e}", dir.display()))
    };
    if let Err(why) = write_all() {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process may have unpacked the same bundle meanwhile.
        if !dir.is_dir() {
            return Err(why);
        }
    }
    let hash = content_hash(&dir).map_err(|e| e.to_string())?;
    if hash != lib.hash {
        return Err(format!(
            "library `{}` {}: its unpacked content ({hash}) does not match its hash in the bundle ({})",
            lib.key, lib.version, lib.hash
        ));
    }
    Ok(dir)
}

/// Checks and unpacks (once) the bundle at `file` under the operator's trust policy (the
/// working folder's nearest `rollbook.toml` and `ROLLBOOK_TRUST_KEYS`); its libraries
/// resolved as a run uses them.
pub fn open(file: &Path, state_dir: &Path) -> Result<Resolved, LibraryError> {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let trusted = super::sign::operator_keys(&here)?;
    open_with(file, state_dir, &trusted)
}

/// As [`open`], under the trust policy `trusted`.
pub fn open_with(file: &Path, state_dir: &Path, trusted: &[String]) -> Result<Resolved, LibraryError> {
    let bad = |why: String| LibraryError::Files { dir: file.to_path_buf(), why };
    let bytes = std::fs::read(file).map_err(|e| bad(format!("cannot read the bundle: {e}")))?;
    let checked = read(&bytes, trusted).map_err(bad)?;
    let id = hex::encode(Sha256::digest(&bytes));
    let base = state_dir.join("libraries").join("bundles").join(&id[..16]);
    let mut deps = BTreeMap::new();
    let mut root = None;
    for lib in &checked.libraries {
        let dir = unpack_one(&base, lib).map_err(bad)?;
        let entry = Library {
            name: lib.name.clone(),
            version: lib.version.clone(),
            description: lib.description.clone(),
            root: dir,
            source: lib.source.clone(),
            commit: lib.commit.clone(),
            hash: lib.hash.clone(),
        };
        if lib.key == checked.root {
            root = Some(entry);
        } else {
            deps.insert(lib.key.clone(), entry);
        }
    }
    let root = root.ok_or_else(|| bad(format!("the bundle has no library `{}`", checked.root)))?;
    let kept = base.join(KEPT);
    if !kept.exists() {
        let _ = std::fs::write(&kept, &bytes);
    }
    let manifest = root.root.join(MANIFEST);
    Ok(Resolved { root, manifest, deps, changes: Vec::new(), wrote_lock: None })
}

/// The bundle a library unpacked from a bundle came from (for resuming its runs).
pub fn kept_for(library_root: &Path) -> Option<PathBuf> {
    let kept = library_root.parent()?.join(KEPT);
    let in_bundles = library_root.parent()?.parent()?.file_name()? == "bundles";
    (in_bundles && kept.is_file()).then_some(kept)
}
