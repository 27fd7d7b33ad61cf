//! `rollbook man` and `rollbook completions`: manual pages (one for the command and one per
//! subcommand, with EXIT STATUS, ENVIRONMENT and FILES) and shell completion scripts that also
//! complete run ids and library runbook names.

use std::io::Write;
use std::path::Path;

use clap::Command;

use super::{CliError, CliResult};

/// The exit codes every command uses, as the man pages list them.
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "succeeded (for a dry-run: the whole runbook was planned; for check: no problems, maybe warnings)"),
    ("1", "the runbook failed, after undoing its completed stages; `test`: an expectation did not hold"),
    (
        "2",
        "invalid input: runbook, params, scenario, flags, a malformed or out-of-scope --allow, or a preflight that found credentials, the subscription or a Kubernetes context missing",
    ),
    (
        "3",
        "an undo failed or a person must look (the journal path is printed); also a run stopped and left resumable",
    ),
    ("4", "an approval was denied (or needed with no terminal and no --yes)"),
    ("5", "a target is locked by another run"),
];

/// The environment rollbook reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "ROLLBOOK_STATE_DIR",
        "where journals, locks and fetched libraries live (default: the platform's state dir); --state-dir wins",
    ),
    ("KUBECONFIG", "kubeconfig files (colon-separated; default ~/.kube/config); --kubeconfig wins"),
    ("KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT", "in a pod: the in-cluster configuration"),
    ("ROLLBOOK_KUBE_REQUEST_TIMEOUT", "the longest one Kubernetes request may take (default 30s)"),
    ("ROLLBOOK_ARM_ENDPOINT", "the Azure Resource Manager endpoint (default https://management.azure.com)"),
    ("ROLLBOOK_ARM_TIMEOUT", "the longest one ARM request may take"),
    ("AZURE_SUBSCRIPTION_ID", "the default subscription of Azure primitives"),
    ("ROLLBOOK_AZURE_TOKEN", "an Azure bearer token (first in the credential order)"),
    ("AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET", "a service principal"),
    ("AZURE_FEDERATED_TOKEN_FILE", "workload identity (with AZURE_TENANT_ID and AZURE_CLIENT_ID)"),
    (
        "IDENTITY_ENDPOINT, IDENTITY_HEADER, MSI_ENDPOINT, MSI_SECRET, ROLLBOOK_AZURE_MANAGED_IDENTITY",
        "managed identity",
    ),
    ("AZURE_AUTHORITY_HOST", "the Microsoft Entra authority (default https://login.microsoftonline.com)"),
    ("NO_COLOR", "no colours on the terminal"),
    ("RUST_LOG", "log filter for -v output"),
];

/// The files rollbook reads and writes.
const FILES: &[(&str, &str)] = &[
    (
        "STATE_DIR/runs/RUN-ID.jsonl",
        "the journal of each run (JSON Lines); `rollbook runs`, `resume` and `undo` read it",
    ),
    ("STATE_DIR/locks/", "target locks held by running runs (with --lock file)"),
    ("STATE_DIR/libraries/", "fetched playbook libraries and the unpacked shipped library"),
    (
        "rollbook.toml, rollbook.lock, rollbook.sig",
        "a playbook library's manifest, pinned dependencies and signature",
    ),
    ("~/.kube/config", "the default kubeconfig"),
];

fn section(out: &mut String, title: &str, items: &[(&str, &str)]) {
    out.push_str(&format!(".SH \"{title}\"\n"));
    for (term, text) in items {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", escape(term), escape(text)));
    }
}

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would read as a request.
fn escape(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') { format!("\\&{t}") } else { t }
}

/// The roff of one page: clap's sections, then EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO.
fn page(cmd: &Command, see_also: &[String]) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone()).source(concat!("rollbook ", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    let mut extra = String::new();
    section(&mut extra, "EXIT STATUS", EXIT_STATUS);
    section(&mut extra, "ENVIRONMENT", ENVIRONMENT);
    section(&mut extra, "FILES", FILES);
    if !see_also.is_empty() {
        extra.push_str(".SH \"SEE ALSO\"\n");
        let refs: Vec<String> = see_also.iter().map(|p| format!("\\fB{}\\fR(1)", escape(p))).collect();
        extra.push_str(&refs.join(", "));
        extra.push('\n');
    }
    out.extend_from_slice(extra.as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// Every page: the command's and each (nested) subcommand's, as `(name, command)`.
fn pages(root: &Command) -> Vec<(String, Command)> {
    fn walk(cmd: &Command, name: String, out: &mut Vec<(String, Command)>) {
        out.push((name.clone(), cmd.clone().display_name(name.clone())));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            walk(sub, format!("{name}-{}", sub.get_name()), out);
        }
    }
    let mut out = Vec::new();
    walk(root, root.get_name().to_string(), &mut out);
    out
}

/// The command's page refers to every subcommand's; a subcommand's to the command's.
fn see_also(cmd: &Command, names: &[String], name: &str) -> Vec<String> {
    if name == cmd.get_name() {
        names.iter().skip(1).cloned().collect()
    } else {
        vec![cmd.get_name().to_string()]
    }
}

/// `rollbook man [SUBCOMMAND...] [--dir DIR]`: prints the page of the command (or of a
/// subcommand, `rollbook man runs list`), or writes every page into DIR.
pub(super) fn man_command(mut cmd: Command, subcommand: &[String], dir: Option<&Path>) -> CliResult {
    cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let all = pages(&cmd);
    let names: Vec<String> = all.iter().map(|(n, _)| n.clone()).collect();
    if let Some(dir) = dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return Err(CliError::invalid(format!("cannot create `{}`: {e}", dir.display())));
        }
        for (name, page_cmd) in &all {
            let see = see_also(&cmd, &names, name);
            let path = dir.join(format!("{name}.1"));
            let written = page(page_cmd, &see).and_then(|bytes| std::fs::write(&path, bytes));
            if let Err(e) = written {
                return Err(CliError::invalid(format!("cannot write `{}`: {e}", path.display())));
            }
        }
        outln!("wrote {} manual pages into {}", all.len(), dir.display());
        return Ok(());
    }
    let wanted = std::iter::once(cmd.get_name().to_string())
        .chain(subcommand.iter().cloned())
        .collect::<Vec<_>>()
        .join("-");
    let Some((name, page_cmd)) = all.iter().find(|(n, _)| *n == wanted) else {
        let subs: Vec<&str> = names.iter().skip(1).map(|n| n.trim_start_matches("rollbook-")).collect();
        return Err(CliError::invalid(format!(
            "no manual page for `{}`; there are pages for: {}",
            subcommand.join(" "),
            subs.join(", ")
        )));
    };
    match page(page_cmd, &see_also(&cmd, &names, name)) {
        Ok(bytes) => {
            let _ = std::io::stdout().write_all(&bytes);
            Ok(())
        }
        Err(e) => Err(CliError::invalid(format!("cannot write the man page: {e}"))),
    }
}

/// The bash completion clap generates, wrapped so that run ids (`resume`, `undo`, `runs show`)
/// and library runbook names (`run`) complete from `rollbook runs list --ids` and
/// `rollbook list --names`.
const BASH_DYNAMIC: &str = r#"
# Run ids and library runbook names, asked of rollbook itself.
_rollbook_dynamic() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local words=""
    case "${COMP_WORDS[1]}" in
        resume|undo)
            [ "$COMP_CWORD" -eq 2 ] && words="$(rollbook runs list --ids 2>/dev/null)" ;;
        runs)
            [ "${COMP_WORDS[2]}" = show ] && [ "$COMP_CWORD" -eq 3 ] && words="$(rollbook runs list --ids 2>/dev/null)" ;;
        run)
            [ "$COMP_CWORD" -eq 2 ] && words="$(rollbook list --names 2>/dev/null)" ;;
    esac
    if [ -n "$words" ]; then
        COMPREPLY=( $(compgen -W "$words" -- "$cur") )
        [ "${COMP_WORDS[1]}" = run ] && COMPREPLY+=( $(compgen -f -- "$cur") )
        return 0
    fi
    _rollbook "$@"
}
complete -F _rollbook_dynamic -o nosort -o bashdefault -o default rollbook
"#;

/// The same for fish.
const FISH_DYNAMIC: &str = r#"
# Run ids and library runbook names, asked of rollbook itself.
complete -c rollbook -n "__fish_seen_subcommand_from resume undo" -f -a "(rollbook runs list --ids 2>/dev/null)"
complete -c rollbook -n "__fish_seen_subcommand_from runs; and __fish_seen_subcommand_from show" -f -a "(rollbook runs list --ids 2>/dev/null)"
complete -c rollbook -n "__fish_seen_subcommand_from run" -a "(rollbook list --names 2>/dev/null)"
"#;

/// `rollbook completions SHELL`.
pub(super) fn completions_command(mut cmd: Command, shell: clap_complete::Shell) -> CliResult {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rollbook", &mut out);
    match shell {
        clap_complete::Shell::Bash => out.extend_from_slice(BASH_DYNAMIC.as_bytes()),
        clap_complete::Shell::Fish => out.extend_from_slice(FISH_DYNAMIC.as_bytes()),
        _ => {}
    }
    let _ = std::io::stdout().write_all(&out);
    Ok(())
}
