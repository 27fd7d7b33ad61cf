//! The one list of built-ins: each descriptor carries its name, signature, doc and option keys
//! and how it is registered, so the engine's registration, `rollbook docs` and `rollbook check`
//! all derive from it. A built-in is added here, with its install function in `builtins.rs`.

use std::sync::Arc;

use super::builtins;
use super::session::Session;

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
    /// Its option map, if it takes one: `rollbook check` checks the keys of a literal map there.
    pub(crate) options: Option<Options>,
    /// How it is put on an engine.
    pub(crate) install: Install,
}

/// Where a built-in's option map goes and which keys it takes.
pub(crate) struct Options {
    /// The argument (from 0) that is the option map.
    pub(crate) at: usize,
    /// The valid keys, read from the options type the built-in decodes.
    pub(crate) keys: fn() -> &'static [&'static str],
}

/// How a built-in is put on an engine.
pub(crate) enum Install {
    /// Bound to a run's session (only on a run's engine).
    Run(fn(&mut rhai::Engine, &Arc<Session>)),
    /// Needs no run: also on the engine `rollbook check` and loading use.
    Pure(fn(&mut rhai::Engine)),
    /// Rhai's own `print`, routed to the run log and journal by the engine's print hook.
    PrintHook,
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
        options: None,
        install: Install::Run(builtins::install_stage),
    },
    Builtin {
        name: "approve",
        signature: "approve(message) / approve(message, #{ timeout, approvers })",
        definitions: &[
            "fn approve(message: String) -> bool;",
            "fn approve(message: String, options: Map) -> bool;",
        ],
        doc: "Asks the operator yes/no (default no); `--yes` answers yes; with no terminal and no `--yes` it throws `denied` and the run stops with exit 4. With `timeout` (\"15m\") an unanswered approval is denied when it passes (journaled as timed out). `approvers` ([\"alice\", \"bob\"]) is journaled for `rollbook serve`; the journal records who answered (the OS user on the terminal, or with `--yes`).",
        options: Some(Options { at: 1, keys: builtins::approve_keys }),
        install: Install::Run(builtins::install_approve),
    },
    Builtin {
        name: "sleep",
        signature: "sleep(duration)",
        definitions: &["fn sleep(duration: String) -> ();"],
        doc: "Waits for a duration (\"30s\", \"5m\", at most \"365d\"; an int is seconds); skipped under --dry-run; stops at once when the run is interrupted.",
        options: None,
        install: Install::Run(builtins::install_sleep),
    },
    Builtin {
        name: "wait_until",
        signature: "wait_until(#{ timeout, interval }, closure)",
        definitions: &["fn wait_until(options: Map, check: Fn) -> bool;"],
        doc: "Calls the closure every `interval` (\"5s\") until it returns true or `timeout` (\"5m\") passes; returns whether it did.",
        options: Some(Options { at: 0, keys: builtins::wait_keys }),
        install: Install::Run(builtins::install_wait_until),
    },
    Builtin {
        name: "retry",
        signature: "retry(#{ attempts, interval }, closure)",
        definitions: &["fn retry(options: Map, body: Fn) -> ?;"],
        doc: "Calls the closure until it does not throw, at most `attempts` (3) times, `interval` (\"5s\") apart; rethrows the last error.",
        options: Some(Options { at: 0, keys: builtins::retry_keys }),
        install: Install::Run(builtins::install_retry),
    },
    Builtin {
        name: "parallel",
        signature: "parallel(items, closure) / parallel(items, closure, #{ concurrency, fail_fast, timeout })",
        definitions: &[
            "fn parallel(items: Array, body: Fn) -> Array;",
            "fn parallel(items: Array, body: Fn, options: Map) -> Array;",
        ],
        doc: "Calls the closure for each item, at most `concurrency` (10; at most 256) at once, nested at most 3 deep, on a pool of at most 256 worker threads per run shared by every batch (the calling thread works too); returns `[#{ item, ok, value, error }]` in input order. A failed item does not stop the others unless `fail_fast` (false) is set, which skips the rest; an item past `timeout` (none) is stopped alone and gets `error.kind == \"timeout\"`. Each item's outcome is journaled; a terminal shows done / failed / running.",
        options: Some(Options { at: 2, keys: builtins::parallel_keys }),
        install: Install::Run(builtins::install_parallel),
    },
    Builtin {
        name: "info",
        signature: "info(message)",
        definitions: &["fn info(message: ?) -> ();"],
        doc: "Writes an informational line to the run log and the journal.",
        options: None,
        install: Install::Run(builtins::install_info),
    },
    Builtin {
        name: "warn",
        signature: "warn(message)",
        definitions: &["fn warn(message: ?) -> ();"],
        doc: "Writes a warning to the run log and the journal.",
        options: None,
        install: Install::Run(builtins::install_warn),
    },
    Builtin {
        name: "print",
        signature: "print(message)",
        definitions: &["fn print(message: ?) -> ();"],
        doc: "Writes a line to the run log and the journal.",
        options: None,
        install: Install::PrintHook,
    },
    Builtin {
        name: "fail",
        signature: "fail(message)",
        definitions: &["fn fail(message: ?) -> !;"],
        doc: "Fails the run (completed stages are undone), with `message` as the reason.",
        options: None,
        install: Install::Run(builtins::install_fail),
    },
    Builtin {
        name: "dry_run",
        signature: "dry_run()",
        definitions: &["fn dry_run() -> bool;"],
        doc: "True while the run only plans (`--dry-run`): mutating calls return their planned outputs (`planned: true`) and later reads of the same target see the planned state.",
        options: None,
        install: Install::Run(builtins::install_dry_run),
    },
    Builtin {
        name: "duration_secs",
        signature: "duration_secs(duration)",
        definitions: &["fn duration_secs(duration: String) -> int;"],
        doc: "The number of whole seconds in a duration string (\"1h30m\" → 5400).",
        options: None,
        install: Install::Pure(builtins::install_duration_secs),
    },
    Builtin {
        name: "duration_ms",
        signature: "duration_ms(duration)",
        definitions: &["fn duration_ms(duration: String) -> int;"],
        doc: "The number of milliseconds in a duration string (\"1.5s\" → 1500).",
        options: None,
        install: Install::Pure(builtins::install_duration_ms),
    },
];
