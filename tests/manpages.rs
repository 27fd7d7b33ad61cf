//! The manual pages (EXIT STATUS, ENVIRONMENT, FILES, a page per subcommand) and shell
//! completion of run ids and library runbook names, through the binary and a real bash.

use std::path::Path;
use std::process::Command;

use crate::support::{rollbook, texts, write};

#[test]
fn the_man_page_has_exit_status_environment_and_files() {
    let out = rollbook(&["man"]);
    let (page, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for section in [".SH \"EXIT STATUS\"", ".SH \"ENVIRONMENT\"", ".SH \"FILES\"", ".SH \"SEE ALSO\""] {
        assert!(page.contains(section), "missing {section}");
    }
    for code in ["\\fB0\\fR", "\\fB2\\fR", "\\fB5\\fR"] {
        assert!(page.contains(code), "exit code {code} listed");
    }
    assert!(
        page.contains("ROLLBOOK_STATE_DIR")
            && page.contains("KUBECONFIG")
            && page.contains("AZURE_SUBSCRIPTION_ID")
    );
    assert!(page.contains("rollbook\\-run"), "the command's page refers to the subcommands' pages");
}

#[test]
fn every_subcommand_has_its_own_page() {
    let out = rollbook(&["man", "runs", "list"]);
    let (page, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(page.contains(".TH rollbook-runs-list 1"), "{page}");
    assert!(page.contains(".SH \"EXIT STATUS\""), "{page}");
    assert!(page.contains("\\-\\-ids"), "its own options: {page}");

    let dir = tempfile::tempdir().expect("tempdir");
    let out = rollbook(&["man", "--dir", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
    for name in
        ["rollbook.1", "rollbook-run.1", "rollbook-check.1", "rollbook-runs-show.1", "rollbook-resume.1"]
    {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        assert!(text.contains(".SH \"EXIT STATUS\""), "{name} written with its sections");
    }

    let out = rollbook(&["man", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("no manual page for `nope`"));
}

/// Completes `words` (the last one being completed) with the bash script of the binary.
fn bash_complete(words: &[&str], state: &Path, cwd: &Path) -> Vec<String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_rollbook"));
    let script = String::from_utf8(rollbook(&["completions", "bash"]).stdout).expect("utf-8");
    let script_path = write(cwd, "complete.bash", &script);
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; _rollbook_dynamic rollbook '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script_path.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let path =
        format!("{}:{}", bin.parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .current_dir(cwd)
        .env("PATH", path)
        .env("ROLLBOOK_STATE_DIR", state)
        .output()
        .expect("run bash");
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).filter(|l| !l.is_empty()).collect()
}

#[test]
fn bash_completes_run_ids_and_library_runbook_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let book = write(dir.path(), "hello.rhai", "info(\"hello\");\n");
    let out = rollbook(&["run", &book.display().to_string(), "--state-dir", &state.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
    let ids = rollbook(&["runs", "list", "--ids", "--state-dir", &state.display().to_string()]);
    let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
    let id = ids.lines().next().expect("one run id").to_string();
    assert_eq!(ids.lines().count(), 1, "{ids}");

    let got = bash_complete(&["rollbook", "resume", ""], &state, dir.path());
    assert_eq!(got, vec![id.clone()], "resume completes the run id");
    let got = bash_complete(&["rollbook", "runs", "show", &id[..4]], &state, dir.path());
    assert_eq!(got, vec![id.clone()], "runs show completes a prefix");

    let got = bash_complete(&["rollbook", "run", "rollbook/k8s-r"], &state, dir.path());
    assert!(got.contains(&"rollbook/k8s-rollout-undo".to_string()), "{got:?}");
    assert!(got.contains(&"rollbook/k8s-roll-forward".to_string()), "{got:?}");
    // Subcommand names still complete as before.
    let got = bash_complete(&["rollbook", "ch"], &state, dir.path());
    assert!(got.contains(&"check".to_string()), "{got:?}");
}

#[test]
fn fish_completion_asks_rollbook_for_run_ids() {
    let out = rollbook(&["completions", "fish"]);
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("rollbook runs list --ids"), "{script}");
    assert!(script.contains("rollbook list --names"), "{script}");
}
