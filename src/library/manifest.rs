//! The `rollbook.toml` manifest: the library's name, version and description, its
//! dependencies (by `path`, or by `git` with a semver requirement or an exact `rev`) and the keys
//! its git dependencies must be signed with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::LibraryError;

/// The manifest's file name.
pub const MANIFEST: &str = "rollbook.toml";

/// A library's manifest, validated.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The `rollbook.toml` file.
    pub file: PathBuf,
    /// `[library] name`.
    pub name: String,
    /// `[library] version`.
    pub version: semver::Version,
    /// `[library] description`.
    pub description: String,
    /// `[dependencies]`, by the name imports use.
    pub dependencies: BTreeMap<String, DepSpec>,
    /// `[trust] keys`: public keys (hex ed25519) git dependencies must be signed by.
    pub trust_keys: Vec<String>,
}

/// Where a dependency comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepSpec {
    /// A folder, relative to the declaring library.
    Path(String),
    /// A git repository, at the highest tag matching `version`, or at `rev`.
    Git {
        /// The repository URL.
        url: String,
        /// What to pick.
        pin: GitPin,
    },
}

/// How a git dependency is pinned in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitPin {
    /// A Cargo-style requirement matched against the repository's semver tags.
    Version(semver::VersionReq),
    /// An exact revision (commit, tag or branch).
    Rev(String),
}

impl DepSpec {
    /// The `source` written in the lock: `git+<url>` or `path+<path>`.
    pub fn source(&self) -> String {
        match self {
            DepSpec::Path(p) => format!("path+{p}"),
            DepSpec::Git { url, .. } => format!("git+{url}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    library: RawLibrary,
    #[serde(default)]
    dependencies: BTreeMap<String, RawDep>,
    #[serde(default)]
    trust: RawTrust,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibrary {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDep {
    path: Option<String>,
    git: Option<String>,
    version: Option<String>,
    rev: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    keys: Vec<String>,
}

/// Whether `name` can name a library or dependency (and be the first part of an import path).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "std"
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Manifest {
    /// Reads and validates `file`.
    pub fn load(file: &Path) -> Result<Manifest, LibraryError> {
        let text = std::fs::read_to_string(file).map_err(|e| LibraryError::Manifest {
            file: file.to_path_buf(),
            why: format!("cannot read it: {e}"),
        })?;
        Manifest::parse(file, &text)
    }

    /// Validates manifest text read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Manifest, LibraryError> {
        let bad = |why: String| LibraryError::Manifest { file: file.to_path_buf(), why };
        let raw: RawManifest = toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        let name = raw.library.name;
        if !valid_name(&name) {
            return Err(bad(format!(
                "library name `{name}` must be lowercase letters, digits, `-` or `_` (and not `std`)"
            )));
        }
        let version = semver::Version::parse(&raw.library.version).map_err(|e| {
            bad(format!("library `{name}`: version `{}` is not semver: {e}", raw.library.version))
        })?;
        let mut dependencies = BTreeMap::new();
        for (dep, d) in raw.dependencies {
            let bad_dep = |why: &str| bad(format!("library `{name}`: dependency `{dep}`: {why}"));
            if !valid_name(&dep) {
                return Err(bad_dep("names are lowercase letters, digits, `-` or `_` (and not `std`)"));
            }
            if dep == name {
                return Err(bad_dep("a library cannot depend on itself"));
            }
            let spec = match (d.path, d.git, d.version, d.rev) {
                (None, Some(url), _, _) if url.starts_with('-') || url.chars().any(char::is_control) => {
                    return Err(bad_dep(&format!(
                        "git URL `{}` is refused: use `https://`, `ssh://` or `user@host:path`",
                        url.escape_default()
                    )));
                }
                (None, Some(_), None, Some(rev)) if rev.starts_with('-') => {
                    return Err(bad_dep(&format!("`{}` is not a revision", rev.escape_default())));
                }
                (Some(p), None, None, None) => DepSpec::Path(p),
                (None, Some(url), Some(req), None) => {
                    let req = semver::VersionReq::parse(&req)
                        .map_err(|e| bad_dep(&format!("version `{req}` is not a requirement: {e}")))?;
                    DepSpec::Git { url, pin: GitPin::Version(req) }
                }
                (None, Some(url), None, Some(rev)) => DepSpec::Git { url, pin: GitPin::Rev(rev) },
                (None, Some(_), None, None) => {
                    return Err(bad_dep(
                        "a git dependency needs `version` (a requirement like \"^2.1\") or `rev`",
                    ));
                }
                (None, Some(_), Some(_), Some(_)) => {
                    return Err(bad_dep("give `version` or `rev`, not both"));
                }
                _ => return Err(bad_dep("give either `path`, or `git` with `version` or `rev`")),
            };
            dependencies.insert(dep, spec);
        }
        Ok(Manifest {
            file: file.to_path_buf(),
            name,
            version,
            description: raw.library.description,
            dependencies,
            trust_keys: raw.trust.keys,
        })
    }

    /// The library's folder.
    pub fn root(&self) -> PathBuf {
        match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// The nearest `rollbook.toml` at or above `dir`.
pub fn find(dir: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    start.ancestors().map(|d| d.join(MANIFEST)).find(|f| f.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_dependency_kinds() {
        let m = Manifest::parse(
            Path::new("rollbook.toml"),
            r#"
[library]
name = "payments"
version = "1.4.0"
description = "d"
[dependencies]
platform = { git = "https://git.example.com/x.git", version = "^2.1" }
tools = { git = "git@git.example.com:t.git", rev = "3f2a9c1" }
common = { path = "../common" }
[trust]
keys = ["ab"]
"#,
        )
        .unwrap();
        assert_eq!(m.version.to_string(), "1.4.0");
        assert_eq!(m.dependencies.len(), 3);
        assert_eq!(m.dependencies["common"], DepSpec::Path("../common".into()));
        assert_eq!(m.trust_keys, vec!["ab".to_string()]);
    }

    #[test]
    fn refuses_bad_input_naming_the_file() {
        let cases = [
            ("[library]\nname='x'\nversion='1.0'\n", "not semver"),
            ("[library]\nname='x'\nversion='1.0.0'\n[dependencies]\na={git='u'}\n", "needs `version`"),
            (
                "[library]\nname='x'\nversion='1.0.0'\n[dependencies]\na={git='u',version='^1',rev='r'}\n",
                "not both",
            ),
            ("[library]\nname='X y'\nversion='1.0.0'\n", "lowercase"),
            ("[library]\nname='x'\nversion='1.0.0'\n[dependencies]\nx={path='.'}\n", "itself"),
            (
                "[library]\nname='x'\nversion='1.0.0'\n[dependencies]\na={git='--upload-pack=touch /tmp/x;git-upload-pack',rev='main'}\n",
                "is refused",
            ),
        ];
        for (text, want) in cases {
            let e = Manifest::parse(Path::new("lib/rollbook.toml"), text).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("lib/rollbook.toml"), "{e}");
        }
    }
}
