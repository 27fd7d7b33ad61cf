//! `rollbook docs`: the reference of every built-in and registered primitive, generated from
//! the registry, as markdown or as Rhai definitions (`.d.rhai`) for editors.

use super::Engine;
use crate::model::{Access, nearest};

/// The best built-in name for a misspelled function.
pub fn suggest_function(name: &str) -> Option<&'static str> {
    nearest(name, BUILTINS.iter().map(|b| b.name))
}

/// A built-in function as documented.
pub struct Builtin {
    /// Function name.
    pub name: &'static str,
    /// How it is called.
    pub signature: &'static str,
    /// `.d.rhai` lines (one per overload).
    pub definitions: &'static [&'static str],
    /// One line saying what it does.
    pub doc: &'static str,
}

/// Every built-in (and the few helpers beside them).
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "stage",
        signature: "stage(name, action) / stage(name, action, undo)",
        definitions: &[
            "fn stage(name: String, action: Fn) -> ?;",
            "fn stage(name: String, action: Fn, undo: Fn) -> ?;",
        ],
        doc: "Runs the closure `action`, journals it and returns its value; if the run fails later, the `undo` closures of completed stages run in reverse order.",
    },
    Builtin {
        name: "approve",
        signature: "approve(message) / approve(message, #{ timeout, approvers })",
        definitions: &[
            "fn approve(message: String) -> bool;",
            "fn approve(message: String, options: Map) -> bool;",
        ],
        doc: "Asks the operator yes/no (default no); `--yes` answers yes; with no terminal and no `--yes` it throws `denied` and the run stops with exit 4. With `timeout` (\"15m\") an unanswered approval is denied when it passes (journaled as timed out). `approvers` ([\"alice\", \"bob\"]) is journaled for `rollbook serve`; the journal records who answered (the OS user on the terminal, or with `--yes`).",
    },
    Builtin {
        name: "sleep",
        signature: "sleep(duration)",
        definitions: &["fn sleep(duration: String) -> ();"],
        doc: "Waits for a duration (\"30s\", \"5m\", at most \"365d\"; an int is seconds); skipped under --dry-run; stops at once when the run is interrupted.",
    },
    Builtin {
        name: "wait_until",
        signature: "wait_until(#{ timeout, interval }, closure)",
        definitions: &["fn wait_until(options: Map, check: Fn) -> bool;"],
        doc: "Calls the closure every `interval` (\"5s\") until it returns true or `timeout` (\"5m\") passes; returns whether it did.",
    },
    Builtin {
        name: "retry",
        signature: "retry(#{ attempts, interval }, closure)",
        definitions: &["fn retry(options: Map, body: Fn) -> ?;"],
        doc: "Calls the closure until it does not throw, at most `attempts` (3) times, `interval` (\"5s\") apart; rethrows the last error.",
    },
    Builtin {
        name: "parallel",
        signature: "parallel(items, closure) / parallel(items, closure, #{ concurrency, fail_fast, timeout })",
        definitions: &[
            "fn parallel(items: Array, body: Fn) -> Array;",
            "fn parallel(items: Array, body: Fn, options: Map) -> Array;",
        ],
        doc: "Calls the closure for each item, at most `concurrency` (10; at most 64) at once, nested at most 3 deep, on a pool of at most 64 worker threads per run shared by every batch (the calling thread works too); returns `[#{ item, ok, value, error }]` in input order. A failed item does not stop the others unless `fail_fast` (false) is set, which skips the rest; an item past `timeout` (none) is stopped alone and gets `error.kind == \"timeout\"`. Each item's outcome is journaled; a terminal shows done / failed / running.",
    },
    Builtin {
        name: "info",
        signature: "info(message)",
        definitions: &["fn info(message: ?) -> ();"],
        doc: "Writes an informational line to the run log and the journal.",
    },
    Builtin {
        name: "warn",
        signature: "warn(message)",
        definitions: &["fn warn(message: ?) -> ();"],
        doc: "Writes a warning to the run log and the journal.",
    },
    Builtin {
        name: "print",
        signature: "print(message)",
        definitions: &["fn print(message: ?) -> ();"],
        doc: "Writes a line to the run log and the journal.",
    },
    Builtin {
        name: "fail",
        signature: "fail(message)",
        definitions: &["fn fail(message: ?) -> !;"],
        doc: "Fails the run (completed stages are undone), with `message` as the reason.",
    },
    Builtin {
        name: "dry_run",
        signature: "dry_run()",
        definitions: &["fn dry_run() -> bool;"],
        doc: "True while the run only plans (`--dry-run`): mutating calls return their planned outputs (`planned: true`) and later reads of the same target see the planned state.",
    },
    Builtin {
        name: "duration_secs",
        signature: "duration_secs(duration)",
        definitions: &["fn duration_secs(duration: String) -> int;"],
        doc: "The number of whole seconds in a duration string (\"1h30m\" → 5400).",
    },
    Builtin {
        name: "duration_ms",
        signature: "duration_ms(duration)",
        definitions: &["fn duration_ms(duration: String) -> int;"],
        doc: "The number of milliseconds in a duration string (\"1.5s\" → 1500).",
    },
];

/// The reference as markdown.
pub fn markdown(engine: &Engine) -> String {
    let mut out = String::from("# rollbook reference\n\n");
    out.push_str("Generated by `rollbook docs` from the registry of this build.\n\n");
    out.push_str("Every primitive takes one object map and returns an object map (or an array of maps). ");
    out.push_str("Unknown keys are an error naming the nearest valid key. Errors are catchable maps `#{ kind, message, target }`.\n\n");
    out.push_str("## Built-ins\n\n");
    for b in BUILTINS {
        out.push_str(&format!("### `{}`\n\n{}\n\n", b.signature, b.doc));
    }
    out.push_str("`params` is the constant map of validated parameters.\n\n");
    let mut namespace = "";
    for p in engine.primitives() {
        let m = p.meta();
        if m.namespace != namespace {
            namespace = m.namespace;
            out.push_str(&format!("## {namespace}\n\n"));
        }
        let access = match m.access {
            Access::Read => "reads",
            Access::Mutate => "mutates (planned under --dry-run, journaled write-ahead)",
        };
        out.push_str(&format!(
            "### `{}(#{{ … }})`\n\n{}\n\n- **Keys:** {}\n- **Returns:** {}\n- **Access:** {}\n\n",
            m.full_name(),
            m.doc,
            m.keys_doc,
            m.returns,
            access
        ));
    }
    out.push_str("## Standard library\n\n");
    for (id, source) in super::STDLIB {
        out.push_str(&format!("### `import \"{id}\"`\n\n"));
        for (doc, sig) in stdlib_functions(source) {
            out.push_str(&format!("- `{sig}`: {doc}\n"));
        }
        out.push('\n');
    }
    out
}

/// The reference as Rhai definitions (`.d.rhai`).
pub fn definitions(engine: &Engine) -> String {
    let mut out = String::from(
        "// rollbook API definitions, generated by `rollbook docs --format definitions`.\nmodule static;\n\n",
    );
    for b in BUILTINS {
        out.push_str(&format!("/// {}\n", b.doc));
        for d in b.definitions {
            out.push_str(d);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str("/// The validated runbook parameters.\nconst params: Map;\n\n");
    let mut namespace = "";
    for p in engine.primitives() {
        let m = p.meta();
        if m.namespace != namespace {
            if !namespace.is_empty() {
                out.push_str("}\n\n");
            }
            namespace = m.namespace;
            out.push_str(&format!("module {namespace} {{\n"));
        }
        out.push_str(&format!(
            "    /// {}\n    ///\n    /// Keys: {}\n    /// Returns: {}\n    fn {}(options: Map) -> ?;\n\n",
            m.doc, m.keys_doc, m.returns, m.name
        ));
    }
    if !namespace.is_empty() {
        out.push_str("}\n");
    }
    out
}

/// `(doc, signature)` of each documented function in a stdlib module.
pub fn stdlib_functions(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut doc = Vec::new();
    for line in source.lines() {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if let Some(sig) = t.strip_prefix("fn ") {
            let sig = sig.trim_end_matches('{').trim().to_string();
            if !doc.is_empty() {
                out.push((doc.join(" "), sig));
            }
            doc.clear();
        } else {
            doc.clear();
        }
    }
    out
}
