//! Playbook libraries: the `rollbook.toml` manifest, dependencies by path or git,
//! `rollbook.lock`, content hashes and the cache of fetched libraries under the state
//! directory. Below `engine`, above `model`; knows no Rhai.
//!
//! **Content hash** of a library (`sha256:<hex>`): every regular file under the library's
//! folder except the top-level `.git/` and the top-level `rollbook.sig`, taken in the order of
//! their relative paths (`/`-separated, compared as bytes); for each file the SHA-256 input is
//! its path (UTF-8), one `0` byte, its length as an 8-byte big-endian integer, then its bytes.
//! Symbolic links are refused. A `.git` folder below the top level is content like any other
//! (it is importable, so it is hashed); git never checks one out and a bundle never holds a
//! top-level one.

pub mod bundle;
pub mod git;
pub mod lock;
pub mod manifest;
mod resolve;
pub mod shipped;
pub mod sign;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use lock::{Lock, Locked};
pub use manifest::{DepSpec, GitPin, Manifest};
pub use resolve::{Change, Library, Mode, Resolved, resolve};

/// Why a library could not be used (exit 2: invalid input).
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// `rollbook.toml` is unreadable or invalid.
    #[error("`{file}`: {why}")]
    Manifest {
        /// The manifest.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `rollbook.lock` is unreadable, invalid, or no longer matches the manifest.
    #[error("`{file}`: {why}")]
    Lock {
        /// The lock file.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A dependency cannot be found, fetched, matched or trusted.
    #[error("library `{library}` (`{file}`): dependency `{dep}`: {why}")]
    Dependency {
        /// The library that declares it.
        library: String,
        /// Its manifest.
        file: PathBuf,
        /// The dependency's name.
        dep: String,
        /// What is wrong.
        why: String,
    },
    /// No `rollbook.toml` where one is needed.
    #[error("no `rollbook.toml` at or above `{0}`: commands on libraries run inside one")]
    NoManifest(PathBuf),
    /// Files of a library cannot be read.
    #[error("library at `{dir}`: {why}")]
    Files {
        /// The library's folder.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The content hash of the library in `dir` (see the module docs for the exact definition).
pub fn content_hash(dir: &Path) -> Result<String, LibraryError> {
    let mut entries = Vec::new();
    for (rel, path) in files(dir)? {
        if rel == sign::SIGFILE {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| LibraryError::Files {
            dir: dir.to_path_buf(),
            why: format!("cannot read `{rel}`: {e}"),
        })?;
        entries.push((rel, bytes));
    }
    Ok(hash_entries(entries.iter().map(|(r, b)| (r.as_str(), b.as_slice()))))
}

/// The content hash of files held in memory (relative path, bytes), as [`content_hash`]
/// computes it from a folder: the top-level `rollbook.sig` and `.git/` are left out.
pub fn hash_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut entries: Vec<(&str, &[u8])> = entries
        .into_iter()
        .filter(|(rel, _)| *rel != sign::SIGFILE && *rel != ".git" && !rel.starts_with(".git/"))
        .collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut hasher = Sha256::new();
    for (rel, bytes) in entries {
        hasher.update(rel.as_bytes());
        hasher.update([0u8]);
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The relative paths (`/`-separated) and full paths of a library's files, the top-level
/// `.git` left out.
pub fn files(dir: &Path) -> Result<Vec<(String, PathBuf)>, LibraryError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(files)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), LibraryError> {
    let fail = |why: String| LibraryError::Files { dir: root.to_path_buf(), why };
    let entries =
        std::fs::read_dir(dir).map_err(|e| fail(format!("cannot list `{}`: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail(format!("cannot list `{}`: {e}", dir.display())))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| fail(format!("cannot stat `{}`: {e}", path.display())))?;
        if dir == root && entry.file_name() == ".git" {
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .map_err(|_| fail(format!("`{}` is outside the library", path.display())))?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if kind.is_symlink() {
            return Err(fail(format!("`{rel}` is a symbolic link; libraries hold plain files only")));
        } else if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            out.push((rel, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_git_folder_below_the_top_is_hashed_like_any_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/.git")).unwrap();
        std::fs::write(dir.path().join("a.rhai"), "1").unwrap();
        std::fs::write(dir.path().join("sub/.git/evil.rhai"), "fn f() { 1 }").unwrap();
        let h1 = content_hash(dir.path()).unwrap();
        std::fs::write(dir.path().join("sub/.git/evil.rhai"), "fn f() { 2 }").unwrap();
        assert_ne!(content_hash(dir.path()).unwrap(), h1, "an importable file changed, so must the hash");
        assert!(files(dir.path()).unwrap().iter().any(|(rel, _)| rel == "sub/.git/evil.rhai"));
        let mem =
            [("a.rhai", &b"1"[..]), ("sub/.git/evil.rhai", &b"fn f() { 2 }"[..]), (".git/x", &b"y"[..])];
        assert_eq!(hash_entries(mem), content_hash(dir.path()).unwrap());
    }

    #[test]
    fn hash_depends_on_paths_and_contents_not_git_or_signature() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rhai"), "1").unwrap();
        std::fs::create_dir(dir.path().join("k8s")).unwrap();
        std::fs::write(dir.path().join("k8s/b.rhai"), "2").unwrap();
        let h1 = content_hash(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        std::fs::write(dir.path().join("rollbook.sig"), "x").unwrap();
        assert_eq!(content_hash(dir.path()).unwrap(), h1);
        std::fs::write(dir.path().join("k8s/b.rhai"), "3").unwrap();
        assert_ne!(content_hash(dir.path()).unwrap(), h1);
    }
}
