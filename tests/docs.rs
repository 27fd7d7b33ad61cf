//! The documentation in `docs/` stays true to the build: the primitive reference is exactly what
//! `rollbook docs --format markdown` prints, and every relative link between pages resolves.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first line where two texts differ (1-based), with both versions of it.
fn first_difference(want: &str, have: &str) -> Option<(usize, String, String)> {
    let (mut w, mut h) = (want.lines(), have.lines());
    for n in 1.. {
        match (w.next(), h.next()) {
            (None, None) => return None,
            (a, b) if a == b => continue,
            (a, b) => {
                let show = |l: Option<&str>| l.map(str::to_string).unwrap_or_else(|| "<end of file>".into());
                return Some((n, show(a), show(b)));
            }
        }
    }
    None
}

#[test]
fn primitives_page_is_what_rollbook_docs_prints() {
    let out = crate::support::rollbook(&["docs", "--format", "markdown"]);
    assert!(out.status.success(), "rollbook docs failed: {}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).expect("rollbook docs prints UTF-8");
    let path = repo().join("docs/primitives.md");
    let page = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some((line, want, have)) = first_difference(&generated, &page) {
        panic!(
            "docs/primitives.md is stale (first difference at line {line}):\n  rollbook docs: {want}\n  docs/primitives.md: {have}\n\
             regenerate it with `cargo run -- docs --format markdown > docs/primitives.md` and commit it"
        );
    }
    assert_eq!(generated, page, "docs/primitives.md differs in line endings; regenerate it");
}

/// Relative link targets in a Markdown text: `](target)` with no scheme, anchors cut off; code
/// blocks (fenced with three backticks) are left out.
fn relative_links(text: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let mut links = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        let target = target.split('#').next().unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            links.push(target.to_string());
        }
    }
    links
}

#[test]
fn links_between_documentation_pages_resolve() {
    let root = repo();
    let mut pages: Vec<PathBuf> = ["CONTRIBUTING.md", "CHANGELOG.md"].iter().map(|p| root.join(p)).collect();
    let docs = std::fs::read_dir(root.join("docs")).expect("docs/ exists");
    pages.extend(
        docs.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let Ok(text) = std::fs::read_to_string(page) else {
            broken.push(format!("{} is missing", page.display()));
            continue;
        };
        let dir = page.parent().unwrap_or(Path::new("."));
        for link in relative_links(&text) {
            checked += 1;
            if !dir.join(&link).exists() {
                broken.push(format!("{}: link `{link}` does not resolve", page.display()));
            }
        }
    }
    assert!(checked > 0, "no relative links found: the docs index should link its pages");
    assert!(broken.is_empty(), "broken documentation links:\n{}", broken.join("\n"));
}

#[test]
fn the_documented_examples_check_and_rehearse() {
    let examples = repo().join("docs/examples");
    let dir = examples.to_str().expect("a UTF-8 path");
    let check = crate::support::rollbook(&["check", dir]);
    let (out, err) = crate::support::texts(&check);
    assert!(check.status.success(), "rollbook check docs/examples failed:\n{out}\n{err}");
    assert!(out.contains("swap-back.rhai"), "{out}");
    let test = crate::support::rollbook(&["test", dir]);
    let (out, err) = crate::support::texts(&test);
    assert!(test.status.success(), "rollbook test docs/examples failed:\n{out}\n{err}");
    assert!(out.contains("0 failed") && !out.contains(" 0 passed"), "{out}");
}
