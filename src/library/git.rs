//! Git dependencies through the `git` command: listing semver tags, fetching into a mirror
//! under the state directory, and checking out one commit's files.
//!
//! A repository URL comes from a manifest, which may be someone else's (a dependency of a
//! dependency), so it is checked before git sees it ([`check_url`]): only `https://`,
//! `ssh://` and scp-like `user@host:path` are accepted (`file://` and absolute local paths
//! only when `ROLLBOOK_GIT_ALLOW_FILE=1`); every URL and revision is passed after `--` or
//! validated, git may use no other transport (`GIT_ALLOW_PROTOCOL`), never prompts, and always
//! runs inside a folder of ours under the state directory, never in the user's working folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The environment variable that allows `file://` URLs and local paths as git sources.
pub const ALLOW_FILE_ENV: &str = "ROLLBOOK_GIT_ALLOW_FILE";

fn file_allowed() -> bool {
    std::env::var(ALLOW_FILE_ENV).is_ok_and(|v| v == "1")
}

/// Checks that `url` names a repository git may be handed: `https://`, `ssh://` or
/// `user@host:path` (and, with `ROLLBOOK_GIT_ALLOW_FILE=1`, `file://` or an absolute path).
pub fn check_url(url: &str) -> Result<(), String> {
    check_url_with(url, file_allowed())
}

fn check_url_with(url: &str, allow_file: bool) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("git URL `{}` is refused: {why}", url.escape_default()));
    if url.is_empty() {
        return refuse("it is empty");
    }
    if url.starts_with('-') {
        return refuse("it starts with `-` (git would read it as an option)");
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("it contains spaces or control characters");
    }
    let host_ok = |host: &str| {
        !host.is_empty()
            && !host.starts_with('-')
            && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-_[]:%".contains(c))
    };
    let file_hint = if allow_file { "" } else { " (local repositories need ROLLBOOK_GIT_ALLOW_FILE=1)" };
    for scheme in ["https://", "ssh://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let authority = rest.split('/').next().unwrap_or_default();
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let user_ok = authority.rsplit_once('@').is_none_or(|(u, _)| !u.starts_with('-'));
            if !user_ok || !host_ok(host) {
                return refuse("its host is not a plain host name");
            }
            return Ok(());
        }
    }
    if let Some(rest) = url.strip_prefix("file://") {
        if !allow_file {
            return refuse(&format!("`file://` sources are off{file_hint}"));
        }
        if !rest.starts_with('/') {
            return refuse("a `file://` URL needs an absolute path");
        }
        return Ok(());
    }
    if url.starts_with('/') {
        if !allow_file {
            return refuse(&format!("local paths are off{file_hint}"));
        }
        return Ok(());
    }
    if url.contains("://") || url.contains("::") {
        return refuse("use `https://`, `ssh://` or `user@host:path`");
    }
    // scp-like: user@host:path, with no `/` before the `:`.
    if let Some((before, path)) = url.split_once(':')
        && let Some((user, host)) = before.split_once('@')
        && !user.is_empty()
        && !user.starts_with('-')
        && !before.contains('/')
        && host_ok(host)
        && !path.is_empty()
        && !path.starts_with('-')
    {
        return Ok(());
    }
    refuse(&format!("use `https://`, `ssh://` or `user@host:path`{file_hint}"))
}

/// Which transports git may use for a command.
#[derive(Clone, Copy)]
enum Net {
    /// Talking to a dependency's repository.
    Remote,
    /// Only our own local mirror.
    Local,
}

/// Runs git inside `dir` (a folder of ours); its stderr becomes the error.
fn git(args: &[&str], dir: &Path, net: Net) -> Result<String, String> {
    let allow = match net {
        Net::Remote if file_allowed() => "https:ssh:file",
        Net::Remote => "https:ssh",
        Net::Local => "file",
    };
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env("GIT_ALLOW_PROTOCOL", allow)
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GIT_CEILING_DIRECTORIES", dir.parent().unwrap_or(dir))
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
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

/// The semver tags of the repository at `url` (others are ignored); git runs in the mirror
/// of `url` under `cache`.
pub fn tags(cache: &Path, url: &str) -> Result<Vec<Tag>, String> {
    check_url(url)?;
    let mirror = mirror(cache, url)?;
    let out = git(&["ls-remote", "--tags", "--", url], &mirror, Net::Remote)?;
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

/// The bare mirror of `url` under `cache` (created empty if new).
fn mirror(cache: &Path, url: &str) -> Result<PathBuf, String> {
    let key = hex::encode(Sha256::digest(url.as_bytes()));
    let mirror = cache.join("git").join(&key[..16]);
    if !mirror.join("HEAD").exists() {
        crate::model::file::create_private_dir(&mirror)
            .map_err(|e| format!("cannot create `{}`: {e}", mirror.display()))?;
        git(&["init", "--quiet", "--bare"], &mirror, Net::Local)?;
    }
    Ok(mirror)
}

/// The mirror of `url` under `cache`, fetched now (every branch and tag).
pub fn fetch(cache: &Path, url: &str) -> Result<PathBuf, String> {
    check_url(url)?;
    let mirror = mirror(cache, url)?;
    git(
        &[
            "fetch",
            "--quiet",
            "--force",
            "--prune",
            "--no-recurse-submodules",
            "--",
            url,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        ],
        &mirror,
        Net::Remote,
    )?;
    Ok(mirror)
}

/// The full commit id `rev` names in `mirror`.
pub fn rev_parse(mirror: &Path, rev: &str) -> Result<String, String> {
    if rev.is_empty() || rev.starts_with('-') || rev.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("`{}` is not a revision", rev.escape_default()));
    }
    Ok(git(
        &["rev-parse", "--verify", "--quiet", "--end-of-options", &format!("{rev}^{{commit}}")],
        mirror,
        Net::Local,
    )
    .map_err(|_| format!("no revision `{rev}`"))?
    .trim()
    .to_string())
}

fn is_commit_id(commit: &str) -> bool {
    matches!(commit.len(), 40 | 64) && commit.chars().all(|c| c.is_ascii_hexdigit())
}

/// The files of `commit`, checked out (without `.git`) into `dest`, which must not exist.
pub fn checkout(mirror: &Path, commit: &str, dest: &Path) -> Result<(), String> {
    if !is_commit_id(commit) {
        return Err(format!("`{}` is not a full commit id", commit.escape_default()));
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    crate::model::file::create_private_dir(parent)
        .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    let tmp = parent.join(format!(".tmp-{}-{}", std::process::id(), fastrand::u64(..)));
    let tmp_s = tmp.display().to_string();
    let mirror_s = mirror.display().to_string();
    let result = git(&["clone", "--quiet", "--no-checkout", "--", &mirror_s, &tmp_s], mirror, Net::Local)
        .and_then(|_| git(&["checkout", "--quiet", "--detach", commit, "--"], &tmp, Net::Local))
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

    #[test]
    fn only_remote_transports_pass_unless_local_ones_are_allowed() {
        for ok in [
            "https://git.example.com/sre/platform.git",
            "ssh://git@git.example.com:2222/sre/platform.git",
            "git@github.com:sre/platform.git",
        ] {
            assert!(check_url_with(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "--upload-pack=touch /tmp/x;git-upload-pack",
            "-oProxyCommand=x",
            "ssh://-oProxyCommand=touch%20x/y",
            "ext::sh -c touch% /tmp/x",
            "ext::sh",
            "http://plain.example.com/x.git",
            "git://example.com/x.git",
            "file:///srv/x.git",
            "/srv/x.git",
            "../x",
            "x",
            "host:path",
            "a b@host:path",
            "git@-host:path",
            "",
        ] {
            let e = check_url_with(bad, false).unwrap_err();
            assert!(e.contains("is refused"), "{bad}: {e}");
        }
        assert!(check_url_with("file:///srv/x.git", true).is_ok());
        assert!(check_url_with("/srv/x.git", true).is_ok());
        assert!(check_url_with("file://relative", true).is_err());
        assert!(check_url_with("--upload-pack=x", true).is_err());
    }
}
