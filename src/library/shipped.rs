//! The library the binary ships: the ready runbooks of `runbooks/`, compiled in, unpacked on
//! use under `<state>/libraries/shipped/<hash>/` and runnable as `rollbook/<runbook>`.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Library, LibraryError, Manifest, content_hash};

/// The name the shipped library is run and listed by.
pub const NAME: &str = "rollbook";

/// Its files: relative path → text.
pub const FILES: &[(&str, &str)] = &[
    ("rollbook.toml", include_str!("../../runbooks/rollbook.toml")),
    ("appservice-swap-back.rhai", include_str!("../../runbooks/appservice-swap-back.rhai")),
    ("arm-redeploy-last-good.rhai", include_str!("../../runbooks/arm-redeploy-last-good.rhai")),
    ("k8s-roll-forward.rhai", include_str!("../../runbooks/k8s-roll-forward.rhai")),
    ("k8s-rollout-undo.rhai", include_str!("../../runbooks/k8s-rollout-undo.rhai")),
    ("logicapp-promote-previous.rhai", include_str!("../../runbooks/logicapp-promote-previous.rhai")),
    ("shop-release-rollback.rhai", include_str!("../../runbooks/shop-release-rollback.rhai")),
];

/// The shipped library, unpacked (once per content) under `state_dir`.
pub fn unpack(state_dir: &Path) -> Result<Library, LibraryError> {
    let mut hasher = Sha256::new();
    for (path, text) in FILES {
        hasher.update(path.as_bytes());
        hasher.update(text.as_bytes());
    }
    let id = hex::encode(hasher.finalize());
    let dir = state_dir.join("libraries").join("shipped").join(&id[..16]);
    let fail = |why: String| LibraryError::Files { dir: dir.clone(), why };
    if !dir.join("rollbook.toml").is_file() {
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
        for (path, text) in FILES {
            std::fs::write(dir.join(path), text).map_err(|e| fail(format!("cannot write `{path}`: {e}")))?;
        }
    }
    let manifest = Manifest::load(&dir.join("rollbook.toml"))?;
    Ok(Library {
        name: manifest.name,
        version: manifest.version.to_string(),
        description: manifest.description,
        root: dir.clone(),
        source: Some("builtin".into()),
        commit: None,
        hash: content_hash(&dir)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ships_every_runbook_of_the_runbooks_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".rhai") || n == "rollbook.toml")
            .collect();
        on_disk.sort();
        let mut shipped: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        shipped.sort();
        assert_eq!(shipped, on_disk, "add new runbooks to library::shipped::FILES");
    }
}
