//! Finding a runbook by what the command line or a config names: a file, `<library>/<runbook>`
//! in the library of a folder or one of its dependencies, or `BUNDLE#<library>/<runbook>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::{Engine, EngineError};
use crate::library::{self, Mode, Resolved};

fn here() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// Finds the runbook `arg` names: a file; `<library>/<path>` in the library of the current
/// folder or one of its dependencies; or `BUNDLE#<library>/<path>` inside a bundle made by
/// `rollbook pack`. Returns the file and its library, resolved.
pub fn find_runbook(arg: &Path, state_dir: &Path) -> Result<(PathBuf, Option<Arc<Resolved>>), EngineError> {
    find_runbook_in(arg, None, state_dir)
}

/// As [`find_runbook`], with relative files and library names taken from `dir` (the nearest
/// `rollbook.toml` at or above it) instead of the current folder: how a scenario names its
/// runbook.
pub fn find_runbook_in(
    arg: &Path,
    dir: Option<&Path>,
    state_dir: &Path,
) -> Result<(PathBuf, Option<Arc<Resolved>>), EngineError> {
    let as_file = match dir {
        Some(d) => d.join(arg),
        None => arg.to_path_buf(),
    };
    if as_file.is_file() {
        let lib = Engine::library_for(&as_file, state_dir)?;
        return Ok((as_file, lib));
    }
    let text = arg.to_string_lossy();
    if let Some((bundle, name)) = text.rsplit_once('#') {
        let bundle_file = match dir {
            Some(d) => d.join(bundle),
            None => PathBuf::from(bundle),
        };
        if bundle_file.is_file() {
            let resolved = library::bundle::open(&bundle_file, state_dir)?;
            return by_name(&resolved, name).map(|(f, r)| (f, Some(r))).ok_or_else(|| {
                EngineError::Params(format!(
                    "bundle `{bundle}` has no runbook `{name}`; name it as <library>/<path>, e.g. `{}/…`",
                    resolved.root.name
                ))
            });
        }
    }
    let base = dir.map(Path::to_path_buf).unwrap_or_else(here);
    if arg.extension().is_none()
        && text.contains('/')
        && let Some(manifest) = library::manifest::find(&base)
    {
        let resolved = library::resolve(&manifest, state_dir, Mode::Run)?;
        if let Some(found) = by_name(&resolved, &text) {
            return Ok((found.0, Some(found.1)));
        }
        let lib = text.split('/').next().unwrap_or_default();
        if lib == resolved.root.name || resolved.deps.contains_key(lib) {
            return Err(EngineError::Params(format!(
                "library `{lib}` has no runbook `{text}`; see `rollbook list`"
            )));
        }
    }
    if let Some(rest) = text.strip_prefix(&format!("{}/", library::shipped::NAME))
        && arg.extension().is_none()
    {
        let lib = library::shipped::unpack(state_dir)?;
        let file = lib.root.join(format!("{rest}.rhai"));
        if !rest.contains("..") && file.is_file() {
            let resolved = Resolved {
                manifest: lib.root.join(library::manifest::MANIFEST),
                root: lib,
                deps: Default::default(),
                changes: Vec::new(),
                wrote_lock: None,
            };
            return Ok((file, Some(Arc::new(resolved))));
        }
        return Err(EngineError::Params(format!("rollbook ships no runbook `{rest}`; see `rollbook list`")));
    }
    // Not found as a name: loading reports the missing file.
    Ok((as_file, None))
}

/// `<library>/<path>` in `resolved`: the file, and the library scoped to the one holding it.
fn by_name(resolved: &Resolved, name: &str) -> Option<(PathBuf, Arc<Resolved>)> {
    let (lib, rest) = name.split_once('/')?;
    let owner = if lib == resolved.root.name {
        Some(resolved.root.clone())
    } else {
        resolved.deps.get(lib).cloned()
    }?;
    let rest = rest.strip_suffix(".rhai").unwrap_or(rest);
    if !rest.split('/').all(|p| !p.is_empty() && p != ".." && p != ".") {
        return None;
    }
    let file = owner.root.join(format!("{rest}.rhai"));
    if !file.is_file() {
        return None;
    }
    let mut scoped = resolved.clone();
    scoped.root = owner;
    Some((file, Arc::new(scoped)))
}
