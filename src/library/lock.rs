//! `rollbook.lock`: the pins of every dependency (name, source, version, commit, content hash).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LibraryError;

/// The lock's file name, beside the manifest.
pub const LOCKFILE: &str = "rollbook.lock";

/// The whole lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Format version (1).
    pub version: u32,
    /// Every dependency of the library and of its dependencies, by name.
    #[serde(default, rename = "dependency")]
    pub dependencies: Vec<Locked>,
}

/// One pinned dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    /// The name imports use.
    pub name: String,
    /// `git+<url>` or `path+<path>`.
    pub source: String,
    /// The library version (the tag's, for git).
    pub version: String,
    /// The git commit (none for path dependencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The `rev` of the manifest, for dependencies pinned by revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// `sha256:` of the library's files (see `library::content_hash`).
    pub hash: String,
}

impl Lock {
    /// The lock beside `manifest`, if there is one.
    pub fn load(manifest: &Path) -> Result<Option<Lock>, LibraryError> {
        let file = path_for(manifest);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LibraryError::Lock { file, why: format!("cannot read it: {e}") }),
        };
        Lock::parse(&file, &text).map(Some)
    }

    /// Validates lock text read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Lock, LibraryError> {
        let bad = |why: String| LibraryError::Lock { file: file.to_path_buf(), why };
        let lock: Lock = toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        if lock.version != 1 {
            return Err(bad(format!("unknown lock version {}", lock.version)));
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &lock.dependencies {
            if !super::manifest::valid_name(&d.name) {
                return Err(bad(format!(
                    "dependency name `{}` is not a valid name",
                    d.name.escape_default()
                )));
            }
            if !seen.insert(d.name.as_str()) {
                return Err(bad(format!("dependency `{}` is pinned twice", d.name)));
            }
            if d.commit
                .as_deref()
                .is_some_and(|c| !(matches!(c.len(), 40 | 64) && c.chars().all(|ch| ch.is_ascii_hexdigit())))
            {
                return Err(bad(format!("dependency `{}`: commit is not a full commit id", d.name)));
            }
        }
        Ok(lock)
    }

    /// Writes the lock beside `manifest`.
    pub fn save(&self, manifest: &Path) -> Result<PathBuf, LibraryError> {
        let file = path_for(manifest);
        let body = toml::to_string_pretty(self)
            .map_err(|e| LibraryError::Lock { file: file.clone(), why: format!("cannot encode: {e}") })?;
        let text =
            format!("# written by `rollbook lock`; pins every dependency. Do not edit by hand.\n{body}");
        std::fs::write(&file, text)
            .map_err(|e| LibraryError::Lock { file: file.clone(), why: format!("cannot write it: {e}") })?;
        Ok(file)
    }

    /// The pin of dependency `name`.
    pub fn get(&self, name: &str) -> Option<&Locked> {
        self.dependencies.iter().find(|d| d.name == name)
    }
}

/// `rollbook.lock` beside `manifest`.
pub fn path_for(manifest: &Path) -> PathBuf {
    manifest.with_file_name(LOCKFILE)
}
