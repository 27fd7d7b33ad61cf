//! Git dependencies through the `git` command: listing semver tags, fetching into a mirror
//! under the state directory, and checking out one commit's files.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Runs git; its stderr becomes the error.
fn git(args: &[&str], cwd: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.args(args).env("GIT_TERMINAL_PROMPT", "0").env("GIT_ASKPASS", "true");
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("git failed").trim().to_string())
    }
}

/// A semver tag of a repository and the commit it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The tag as written (`v2.1.0` or `2.1.0`).
    pub name: String,
    /// The version it names.
    pub version: semver::Version,
    /// The commit (annotated tags peeled).
    pub commit: String,
}

/// The semver tags of the repository at `url` (others are ignored).
pub fn tags(url: &str) -> Result<Vec<Tag>, String> {
    let out = git(&["ls-remote", "--tags", url], None)?;
    Ok(parse_tags(&out))
}

/// Parses `git ls-remote --tags`, preferring the peeled commit of annotated tags.
pub fn parse_tags(out: &str) -> Vec<Tag> {
    let mut tags: Vec<Tag> = Vec::new();
    for line in out.lines() {
        let Some((sha, reference)) = line.split_once('\t') else { continue };
        let Some(name) = reference.strip_prefix("refs/tags/") else { continue };
        let (name, peeled) = match name.strip_suffix("^{}") {
            Some(n) => (n, true),
            None => (name, false),
        };
        let Ok(version) = semver::Version::parse(name.strip_prefix('v').unwrap_or(name)) else { continue };
        match tags.iter_mut().find(|t| t.name == name) {
            Some(t) if peeled => t.commit = sha.to_string(),
            Some(_) => {}
            None => tags.push(Tag { name: name.to_string(), version, commit: sha.to_string() }),
        }
    }
    tags
}

/// The highest tag matching `req`.
pub fn best<'a>(tags: &'a [Tag], req: &semver::VersionReq) -> Option<&'a Tag> {
    tags.iter().filter(|t| req.matches(&t.version)).max_by(|a, b| a.version.cmp(&b.version))
}

/// The mirror of `url` under `cache`, fetched now (every branch and tag).
pub fn fetch(cache: &Path, url: &str) -> Result<PathBuf, String> {
    let key = hex::encode(Sha256::digest(url.as_bytes()));
    let mirror = cache.join("git").join(&key[..16]);
    if !mirror.join("HEAD").exists() {
        std::fs::create_dir_all(&mirror).map_err(|e| format!("cannot create `{}`: {e}", mirror.display()))?;
        git(&["init", "--quiet", "--bare"], Some(&mirror))?;
    }
    git(
        &[
            "fetch",
            "--quiet",
            "--force",
            "--prune",
            url,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        ],
        Some(&mirror),
    )?;
    Ok(mirror)
}

/// The full commit id `rev` names in `mirror`.
pub fn rev_parse(mirror: &Path, rev: &str) -> Result<String, String> {
    if rev.starts_with('-') {
        return Err(format!("`{rev}` is not a revision"));
    }
    Ok(git(&["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")], Some(mirror))
        .map_err(|_| format!("no revision `{rev}`"))?
        .trim()
        .to_string())
}

/// The files of `commit`, checked out (without `.git`) into `dest`, which must not exist.
pub fn checkout(mirror: &Path, commit: &str, dest: &Path) -> Result<(), String> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    let tmp = parent.join(format!(".tmp-{}-{}", std::process::id(), fastrand::u64(..)));
    let tmp_s = tmp.display().to_string();
    let mirror_s = mirror.display().to_string();
    let result = git(&["clone", "--quiet", "--no-checkout", &mirror_s, &tmp_s], None)
        .and_then(|_| git(&["checkout", "--quiet", "--detach", commit], Some(&tmp)))
        .and_then(|_| {
            std::fs::remove_dir_all(tmp.join(".git")).map_err(|e| format!("cannot clean `{tmp_s}`: {e}"))
        })
        .and_then(|_| {
            std::fs::rename(&tmp, dest).map_err(|e| format!("cannot move into `{}`: {e}", dest.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_matching_peeled_tag() {
        let out = "a1\trefs/tags/v2.1.0\nb1\trefs/tags/2.2.0\nb2\trefs/tags/2.2.0^{}\nc1\trefs/tags/v3.0.0\nd\trefs/tags/latest\n";
        let tags = parse_tags(out);
        assert_eq!(tags.len(), 3);
        let req = semver::VersionReq::parse("^2.1").unwrap();
        let t = best(&tags, &req).unwrap();
        assert_eq!((t.name.as_str(), t.commit.as_str()), ("2.2.0", "b2"));
    }
}
