//! The crate's top-level modules depend on each other without cycles and only downward:
//! `scripts/module-graph.sh` computes the graph (the same script CONTRIBUTING.md shows), and
//! these tests hold it to the layering the code documents.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the module-graph script on `src`: (exit success, stdout, stderr).
fn module_graph(src: &Path) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg(repo().join("scripts/module-graph.sh"))
        .arg(src)
        .output()
        .expect("bash runs (install bash to run the layering tests)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The edges `from -> to` the script printed.
fn edges(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .collect()
}

#[test]
fn top_level_modules_have_no_cycles() {
    let (ok, stdout, stderr) = module_graph(&repo().join("src"));
    assert!(ok, "the module graph has a cycle:\n{stdout}{stderr}");
    assert!(stdout.contains("no cycles between top-level modules"), "{stdout}");
    assert!(!edges(&stdout).is_empty(), "the script found no edges at all:\n{stdout}");
}

#[test]
fn layers_depend_only_downward() {
    let (_, stdout, _) = module_graph(&repo().join("src"));
    // What each layer may use; a layer not named may use anything but `cli`.
    let allowed: &[(&str, &[&str])] = &[
        ("model", &[]),
        ("azure", &["model"]),
        ("library", &["model"]),
        ("run", &["model", "azure"]),
        ("providers", &["model", "azure"]),
        ("sim", &["model", "azure", "run", "library"]),
    ];
    for (from, to) in edges(&stdout) {
        if let Some((_, may)) = allowed.iter().find(|(m, _)| *m == from) {
            assert!(may.contains(&to.as_str()), "`{from}` must not depend on `{to}`:\n{stdout}");
        } else {
            assert_ne!(to, "cli", "`{from}` must not depend on `cli`:\n{stdout}");
        }
    }
}

#[test]
fn the_script_reports_a_cycle_and_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("low")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod low;\npub mod high;\n").expect("write");
    std::fs::write(
        src.join("low/mod.rs"),
        "// crate::high in a comment is not a use\nuse crate::{high::Up, other};\n",
    )
    .expect("write");
    std::fs::write(src.join("high.rs"), "use crate::low::Down;\n").expect("write");
    let (ok, stdout, stderr) = module_graph(src);
    assert!(!ok, "a cycle must fail the check:\n{stdout}");
    assert!(stdout.contains("high -> low") && stdout.contains("low -> high"), "{stdout}");
    assert!(stdout.contains("cycle: high <-> low"), "{stdout}");
    assert!(stderr.contains("1 cycle(s)"), "{stderr}");

    // Without the grouped use the graph is a chain, and the check passes.
    std::fs::write(src.join("low/mod.rs"), "// use crate::high::Up;\n").expect("write");
    let (ok, stdout, _) = module_graph(src);
    assert!(ok, "{stdout}");
    assert_eq!(edges(&stdout), vec![("high".to_string(), "low".to_string())]);
}
