//! `rollbook lock`, `update`, `list`, and finding a runbook by `<library>/<runbook>` name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::Engine;
use crate::library::{self, Mode, Resolved};

use super::{CliError, CliResult, Output, render};

fn here() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

fn manifest_here() -> Result<PathBuf, String> {
    let dir = here();
    library::manifest::find(&dir).ok_or_else(|| library::LibraryError::NoManifest(dir).to_string())
}

fn print_changes(resolved: &Resolved) {
    if resolved.changes.is_empty() {
        outln!("no changes: every dependency stays where it is");
    }
    for c in &resolved.changes {
        match (&c.from, &c.to) {
            (None, Some(to)) => outln!("locked   {} {to}", c.name),
            (Some(from), Some(to)) => outln!("updated  {} {from} → {to}", c.name),
            (Some(from), None) => outln!("removed  {} {from}", c.name),
            (None, None) => {}
        }
    }
    if let Some(file) = &resolved.wrote_lock {
        outln!("wrote {}", file.display());
    }
}

/// `rollbook lock` and `rollbook update [DEP]`.
pub(super) fn lock_command(mode: Mode, state_dir: &Path) -> CliResult {
    let manifest = manifest_here().map_err(CliError::invalid)?;
    match library::resolve(&manifest, state_dir, mode) {
        Ok(resolved) => {
            print_changes(&resolved);
            Ok(())
        }
        Err(e) => Err(CliError::invalid(e.to_string())),
    }
}

pub(super) use crate::engine::find::find_runbook;
#[cfg(feature = "sim")]
pub(super) use crate::engine::find::find_runbook_in;

/// `rollbook pack [-o FILE] [--key FILE]`: the library, its locked dependencies and their
/// hashes in one file, signed as a whole with `key` when given.
pub(super) fn pack_command(out: Option<PathBuf>, key: Option<&Path>, state_dir: &Path) -> CliResult {
    let manifest = manifest_here().map_err(CliError::invalid)?;
    let resolved =
        library::resolve(&manifest, state_dir, Mode::Run).map_err(|e| CliError::invalid(e.to_string()))?;
    let out =
        out.unwrap_or_else(|| PathBuf::from(format!("{}-{}.rbk", resolved.root.name, resolved.root.version)));
    match library::bundle::pack(&resolved, &out, key) {
        Ok((libs, files)) => {
            outln!("wrote {} ({libs} libraries, {files} files)", out.display());
            if key.is_some() {
                outln!(
                    "signed as a whole; operators trust it by listing the public key in `[trust] keys` or ROLLBOOK_TRUST_KEYS"
                );
            }
            outln!("run from it with: rollbook run '{}#{}/<runbook>'", out.display(), resolved.root.name);
            Ok(())
        }
        Err(e) => Err(CliError::invalid(e.to_string())),
    }
}

/// One runbook, as `rollbook list` shows it.
#[derive(serde::Serialize)]
struct Listed {
    run: String,
    library: String,
    library_version: String,
    name: String,
    version: String,
    description: Option<String>,
    params: Vec<crate::engine::ParamSpec>,
}

/// `rollbook list`: the runbooks of this library and of its dependencies.
pub(super) fn list_command(output: Output, names: bool, state_dir: &Path) -> CliResult {
    let shipped = library::shipped::unpack(state_dir).map_err(|e| CliError::invalid(e.to_string()))?;
    // Outside a library, the shipped runbooks alone.
    let resolved = match library::manifest::find(&here()) {
        Some(manifest) => match library::resolve(&manifest, state_dir, Mode::Run) {
            Ok(r) => Arc::new(r),
            Err(e) => return Err(CliError::invalid(e.to_string())),
        },
        None => Arc::new(Resolved {
            manifest: shipped.root.join(library::manifest::MANIFEST),
            root: shipped.clone(),
            deps: Default::default(),
            changes: Vec::new(),
            wrote_lock: None,
        }),
    };
    let engine = Engine::new();
    let mut listed = Vec::new();
    let mut libs = vec![(resolved.root.name.clone(), resolved.root.clone())];
    libs.extend(resolved.deps.iter().map(|(k, l)| (k.clone(), l.clone())));
    if resolved.root.root != shipped.root && !resolved.deps.contains_key(library::shipped::NAME) {
        libs.push((library::shipped::NAME.to_string(), shipped));
    }
    for (key, lib) in libs {
        let files = library::files(&lib.root).map_err(|e| CliError::invalid(e.to_string()))?;
        let mut scoped = (*resolved).clone();
        scoped.root = lib.clone();
        let scoped = Arc::new(scoped);
        for (rel, path) in files {
            let Some(stem) = rel.strip_suffix(".rhai") else { continue };
            let Ok(source) = std::fs::read_to_string(&path) else { continue };
            if !source.contains("RUNBOOK") {
                continue;
            }
            match engine.load_source_with(&path, source, Some(scoped.clone())) {
                Ok(rb) => listed.push(Listed {
                    run: format!("{key}/{stem}"),
                    library: lib.name.clone(),
                    library_version: lib.version.clone(),
                    name: rb.meta.name.clone(),
                    version: rb.meta.version.clone(),
                    description: rb.meta.description.clone(),
                    params: rb.meta.params.clone(),
                }),
                Err(e) => errln!("warning: `{}`: {e}", path.display()),
            }
        }
    }
    if names {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for l in &listed {
            if writeln!(out, "{}", l.run).is_err() {
                break;
            }
        }
        return Ok(());
    }
    match output {
        Output::Json => return render::json(&listed),
        Output::Text => {
            for l in &listed {
                let params: Vec<String> = l
                    .params
                    .iter()
                    .map(|p| if p.default_value.is_some() { format!("[{}]", p.name) } else { p.name.clone() })
                    .collect();
                outln!("{}  ({} {}, {} {})", l.run, l.name, l.version, l.library, l.library_version);
                if let Some(d) = &l.description {
                    outln!("    {d}");
                }
                if !params.is_empty() {
                    outln!("    params: {}", params.join(", "));
                }
            }
        }
    }
    Ok(())
}

/// `rollbook keygen FILE`.
pub(super) fn keygen_command(file: &Path) -> CliResult {
    match library::sign::keygen(file) {
        Ok(public) => {
            outln!("wrote {} (secret: keep it safe) and {}.pub", file.display(), file.display());
            outln!("public key: {public}");
            outln!("trust it with: [trust] keys = [\"{public}\"]");
            Ok(())
        }
        Err(why) => Err(CliError::invalid(why)),
    }
}

fn load_here() -> Result<library::Manifest, String> {
    let file = manifest_here()?;
    library::Manifest::load(&file).map_err(|e| e.to_string())
}

/// `rollbook sign --key FILE`.
pub(super) fn sign_command(key: &Path) -> CliResult {
    let manifest = load_here().map_err(CliError::invalid)?;
    match library::sign::sign(&manifest, key) {
        Ok(sig) => {
            outln!("signed {} {} ({}) with key {}", sig.library, sig.version, sig.hash, sig.key);
            outln!("wrote {}", manifest.root().join(library::sign::SIGFILE).display());
            Ok(())
        }
        Err(why) => Err(CliError::invalid(format!(
            "library `{}` (`{}`): {why}",
            manifest.name,
            manifest.file.display()
        ))),
    }
}

/// `rollbook verify`: this library's signature, then its dependencies (against `[trust] keys`).
pub(super) fn verify_command(state_dir: &Path) -> CliResult {
    let manifest = load_here().map_err(CliError::invalid)?;
    match library::sign::verify(&manifest.root(), &[]) {
        Ok(sig) => outln!("ok  {} {} signed by {}", sig.library, sig.version, sig.key),
        Err(why) => {
            return Err(CliError::invalid(format!(
                "library `{}` (`{}`): {why}",
                manifest.name,
                manifest.file.display()
            )));
        }
    }
    match library::resolve(&manifest.file, state_dir, Mode::Run) {
        Ok(resolved) => {
            for (name, dep) in &resolved.deps {
                let policy = !manifest.trust_keys.is_empty() || !library::sign::env_keys().is_empty();
                let how = if dep.commit.is_some() && policy {
                    "signed by a trusted key"
                } else {
                    "matches rollbook.lock"
                };
                outln!("ok  {name}: {} {} {how}", dep.name, dep.version);
            }
            Ok(())
        }
        Err(e) => Err(CliError::invalid(e.to_string())),
    }
}
