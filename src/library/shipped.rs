//! The library the binary ships: the ready runbooks of `runbooks/`, compiled in, unpacked on
//! use under `<state>/libraries/shipped/<hash>/` and runnable as `rollbook/<runbook>`.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Library, LibraryError, Manifest, content_hash, hash_entries};

/// The name the shipped library is run and listed by.
pub const NAME: &str = "rollbook";

/// Its files: relative path → text.
pub const FILES: &[(&str, &str)] = &[
    ("rollbook.toml", include_str!("../../runbooks/rollbook.toml")),
    ("aks-fleet-undo.rhai", include_str!("../../runbooks/aks-fleet-undo.rhai")),
    ("appservice-swap-back.rhai", include_str!("../../runbooks/appservice-swap-back.rhai")),
    ("arm-redeploy-last-good.rhai", include_str!("../../runbooks/arm-redeploy-last-good.rhai")),
    ("k8s-gitops-undo.rhai", include_str!("../../runbooks/k8s-gitops-undo.rhai")),
    ("k8s-roll-forward.rhai", include_str!("../../runbooks/k8s-roll-forward.rhai")),
    ("k8s-rollout-undo.rhai", include_str!("../../runbooks/k8s-rollout-undo.rhai")),
    ("logicapp-promote-previous.rhai", include_str!("../../runbooks/logicapp-promote-previous.rhai")),
    ("shop-release-rollback.rhai", include_str!("../../runbooks/shop-release-rollback.rhai")),
];

/// The shipped library, unpacked under `state_dir`: written into a temporary folder and moved
/// into place whole, and checked against the copy compiled in on every use (unpacked again
/// when it differs, e.g. half-written or edited).
pub fn unpack(state_dir: &Path) -> Result<Library, LibraryError> {
    let mut hasher = Sha256::new();
    for (path, text) in FILES {
        hasher.update(path.as_bytes());
        hasher.update(text.as_bytes());
    }
    let id = hex::encode(hasher.finalize());
    let parent = state_dir.join("libraries").join("shipped");
    let dir = parent.join(&id[..16]);
    let fail = |why: String| LibraryError::Files { dir: dir.clone(), why };
    let want = hash_entries(FILES.iter().map(|(p, t)| (*p, t.as_bytes())));
    if !(dir.is_dir() && content_hash(&dir).is_ok_and(|h| h == want)) {
        crate::model::file::create_private_dir(&parent)
            .map_err(|e| fail(format!("cannot create it: {e}")))?;
        let tmp = parent.join(format!(".tmp-{}-{}", std::process::id(), fastrand::u64(..)));
        let write_all = || -> Result<(), String> {
            crate::model::file::create_private_dir(&tmp)
                .map_err(|e| format!("cannot create `{}`: {e}", tmp.display()))?;
            for (path, text) in FILES {
                std::fs::write(tmp.join(path), text).map_err(|e| format!("cannot write `{path}`: {e}"))?;
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot replace it: {e}"))?;
            }
            std::fs::rename(&tmp, &dir).map_err(|e| format!("cannot move it into place: {e}"))
        };
        if let Err(why) = write_all() {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another process may have put the same content in place meanwhile.
            if !content_hash(&dir).is_ok_and(|h| h == want) {
                return Err(fail(why));
            }
        }
    }
    let manifest = Manifest::load(&dir.join("rollbook.toml"))?;
    let hash = content_hash(&dir)?;
    if hash != want {
        return Err(fail(format!("its content ({hash}) is not the shipped library's ({want})")));
    }
    Ok(Library {
        name: manifest.name,
        version: manifest.version.to_string(),
        description: manifest.description,
        root: dir.clone(),
        source: Some("builtin".into()),
        commit: None,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_half_written_copy_is_unpacked_again() {
        let state = tempfile::tempdir().unwrap();
        let lib = unpack(state.path()).unwrap();
        let (name, text) = FILES[1];
        std::fs::write(lib.root.join(name), "const RUNBOOK = #{ name: \"evil\" };").unwrap();
        std::fs::remove_file(lib.root.join(FILES[2].0)).unwrap();
        let again = unpack(state.path()).unwrap();
        assert_eq!(again.root, lib.root);
        assert_eq!(std::fs::read_to_string(again.root.join(name)).unwrap(), text);
        assert!(again.root.join(FILES[2].0).is_file());
        let leftovers: Vec<_> = std::fs::read_dir(lib.root.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary folders are left behind");
    }

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
