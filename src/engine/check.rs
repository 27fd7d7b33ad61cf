//! `rollbook check`: compiles, validates metadata, and flags calls to unknown namespaces and
//! functions and, where the argument is a literal map, unknown keys — without running anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::builtin_list::BUILTINS;
use super::diag::Diagnostic;
use super::{Engine, EngineError, STDLIB};
use crate::model::{ResourceKey, nearest};

pub use super::docs::suggest_function;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(&'static str),
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    col: usize,
}

/// The literal paths of `import "…"` statements in `src`, in order.
pub(crate) fn import_paths(src: &str) -> Vec<String> {
    let tokens = tokenize(src);
    tokens
        .windows(2)
        .filter_map(|w| match (&w[0].tok, &w[1].tok) {
            (Tok::Ident(kw), Tok::Str(path)) if kw == "import" => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// Where `src` has an `import` whose path is not one string literal (`import p as m;`,
/// `import "a" + x as m;`): 1-based line and column. Such imports cannot be known before the
/// run, so they could not be journaled or checked; they are refused at load time.
pub(crate) fn non_literal_imports(src: &str) -> Vec<(usize, usize)> {
    let tokens = tokenize(src);
    let lines: Vec<&str> = src.lines().collect();
    let char_at = |t: &Token| lines.get(t.line - 1).and_then(|l| l.chars().nth(t.col - 1));
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.tok != Tok::Ident("import".into()) {
            continue;
        }
        if i > 0 && matches!(tokens[i - 1].tok, Tok::Punct(".") | Tok::Punct("::")) {
            continue;
        }
        let literal = match (tokens.get(i + 1).map(|t| &t.tok), tokens.get(i + 2)) {
            (Some(Tok::Str(_)), None) => true,
            (Some(Tok::Str(_)), Some(next)) => {
                next.tok == Tok::Ident("as".into()) || (next.tok == Tok::Other && char_at(next) == Some(';'))
            }
            _ => false,
        };
        if !literal {
            found.push((t.line, t.col));
        }
    }
    found
}

/// Splits Rhai source into the few tokens the checks need; strings and comments are skipped.
fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let advance = |i: &mut usize, line: &mut usize, col: &mut usize, chars: &[char]| {
        if chars[*i] == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        let (tl, tc) = (line, col);
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, &chars);
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                advance(&mut i, &mut line, &mut col, &chars);
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    advance(&mut i, &mut line, &mut col, &chars);
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    advance(&mut i, &mut line, &mut col, &chars);
                    if depth == 0 {
                        advance(&mut i, &mut line, &mut col, &chars);
                        break;
                    }
                }
                advance(&mut i, &mut line, &mut col, &chars);
            }
        } else if c == '"' || c == '`' || c == '\'' {
            let quote = c;
            let mut text = String::new();
            advance(&mut i, &mut line, &mut col, &chars);
            while i < chars.len() && chars[i] != quote {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    advance(&mut i, &mut line, &mut col, &chars);
                }
                text.push(chars[i]);
                advance(&mut i, &mut line, &mut col, &chars);
            }
            if i < chars.len() {
                advance(&mut i, &mut line, &mut col, &chars);
            }
            out.push(Token { tok: Tok::Str(text), line: tl, col: tc });
        } else if c.is_alphabetic() || c == '_' {
            let mut word = String::new();
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                word.push(chars[i]);
                advance(&mut i, &mut line, &mut col, &chars);
            }
            out.push(Token { tok: Tok::Ident(word), line: tl, col: tc });
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let punct = match two.as_str() {
                "::" => Some("::"),
                "#{" => Some("#{"),
                _ => None,
            };
            if let Some(p) = punct {
                advance(&mut i, &mut line, &mut col, &chars);
                advance(&mut i, &mut line, &mut col, &chars);
                out.push(Token { tok: Tok::Punct(p), line: tl, col: tc });
                continue;
            }
            let p = match c {
                '(' => Some("("),
                ')' => Some(")"),
                '{' => Some("{"),
                '}' => Some("}"),
                '[' => Some("["),
                ']' => Some("]"),
                ':' => Some(":"),
                ',' => Some(","),
                '.' => Some("."),
                '|' => Some("|"),
                _ => None,
            };
            advance(&mut i, &mut line, &mut col, &chars);
            out.push(Token { tok: p.map(Tok::Punct).unwrap_or(Tok::Other), line: tl, col: tc });
        }
    }
    out
}

/// The top-level keys of the literal map starting at `tokens[start]` (a `#{`), with positions.
/// Where the `n`th (from 0) argument of the call whose `(` is at `open` starts.
fn nth_argument(tokens: &[Token], open: usize, n: usize) -> Option<usize> {
    let mut depth = 0i32;
    let mut seen = 0;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match &t.tok {
            Tok::Punct("#{") | Tok::Punct("{") | Tok::Punct("(") | Tok::Punct("[") => depth += 1,
            Tok::Punct("}") | Tok::Punct(")") | Tok::Punct("]") => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            Tok::Punct(",") if depth == 1 => {
                seen += 1;
                if seen == n {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn literal_keys(tokens: &[Token], start: usize) -> Vec<(String, usize, usize)> {
    let mut keys = Vec::new();
    let mut depth = 0i32;
    let mut expect_key = true;
    for (i, t) in tokens.iter().enumerate().skip(start) {
        match &t.tok {
            Tok::Punct("#{") | Tok::Punct("{") | Tok::Punct("(") | Tok::Punct("[") => {
                depth += 1;
                if depth == 1 {
                    expect_key = true;
                }
            }
            Tok::Punct("}") | Tok::Punct(")") | Tok::Punct("]") => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Tok::Punct(",") if depth == 1 => expect_key = true,
            Tok::Ident(name) | Tok::Str(name) if depth == 1 && expect_key => {
                if tokens.get(i + 1).map(|n| &n.tok) == Some(&Tok::Punct(":")) {
                    keys.push((name.clone(), t.line, t.col));
                }
                expect_key = false;
            }
            _ if depth == 1 => expect_key = false,
            _ => {}
        }
    }
    keys
}

const KEYWORDS: &[&str] = &[
    "if",
    "else",
    "while",
    "for",
    "loop",
    "do",
    "until",
    "in",
    "switch",
    "return",
    "throw",
    "try",
    "catch",
    "fn",
    "let",
    "const",
    "import",
    "export",
    "as",
    "private",
    "global",
    "this",
    "break",
    "continue",
    "Fn",
    "call",
    "curry",
    "type_of",
    "print",
    "debug",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "true",
    "false",
];

/// Checks a runbook; an empty list means it is fine.
pub fn check(engine: &Engine, path: &Path) -> Vec<Diagnostic> {
    check_with(engine, path, None)
}

/// As [`check`], inside a resolved library: imports of its dependencies are checked too.
pub fn check_with(
    engine: &Engine,
    path: &Path,
    library: Option<std::sync::Arc<crate::library::Resolved>>,
) -> Vec<Diagnostic> {
    check_report(engine, path, library).problems
}

/// What `rollbook check` found in one runbook.
#[derive(Debug, Default)]
pub struct Report {
    /// Mistakes: the runbook would fail or misbehave (exit 2).
    pub problems: Vec<Diagnostic>,
    /// Worth a look, but the runbook may be right (exit 0).
    pub warnings: Vec<Diagnostic>,
}

/// As [`check_with`], with the warnings too.
pub fn check_report(
    engine: &Engine,
    path: &Path,
    library: Option<std::sync::Arc<crate::library::Resolved>>,
) -> Report {
    let runbook = match engine.load_with(path, library) {
        Ok(r) => r,
        Err(EngineError::Script(d)) => return Report { problems: vec![*d], warnings: Vec::new() },
        Err(e) => {
            return Report {
                problems: vec![Diagnostic::at(
                    &path.display().to_string(),
                    None,
                    None,
                    None,
                    e.to_string(),
                    String::new(),
                    None,
                )],
                warnings: Vec::new(),
            };
        }
    };
    let file = path.display().to_string();
    let src = &runbook.source;
    let tokens = tokenize(src);
    let mut found = Vec::new();

    let known_plain = plain_function_names(&runbook);
    let root = super::runbook_root(path);
    let mut warnings = Vec::new();
    // Mutating calls, direct or through an imported module: (what, line, column).
    let mut mutating: Vec<(String, usize, usize)> = Vec::new();

    // Imports: alias -> functions it exports.
    let mut aliases: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.tok != Tok::Ident("import".into()) {
            continue;
        }
        let (
            Some(Token { tok: Tok::Str(module), line, col }),
            Some(Token { tok: Tok::Ident(kw), .. }),
            Some(Token { tok: Tok::Ident(alias), .. }),
        ) = (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
        else {
            continue;
        };
        if kw != "as" {
            continue;
        }
        match module_functions(engine, &root, runbook.library.clone(), module) {
            Ok((fns, mutates)) => {
                aliases.insert(alias.clone(), fns);
                if let Some(call) = mutates {
                    mutating.push((format!("{alias}::… (which calls {call})"), *line, *col));
                }
            }
            Err(why) => found.push(Diagnostic::at(
                &file,
                Some(src),
                Some(*line),
                Some(*col),
                why,
                "imported here".into(),
                None,
            )),
        }
    }

    let namespaces: BTreeSet<&str> = engine.primitives().map(|p| p.meta().namespace).collect();
    for (i, t) in tokens.iter().enumerate() {
        let Tok::Ident(name) = &t.tok else { continue };
        let prev = i.checked_sub(1).map(|p| &tokens[p].tok);
        if matches!(prev, Some(Tok::Punct(".")) | Some(Tok::Punct("::")))
            || prev == Some(&Tok::Ident("fn".into()))
        {
            continue;
        }
        // ns::f(
        if tokens.get(i + 1).map(|n| &n.tok) == Some(&Tok::Punct("::")) {
            let Some(Token { tok: Tok::Ident(func), line, col }) = tokens.get(i + 2) else {
                continue;
            };
            if tokens.get(i + 3).map(|n| &n.tok) != Some(&Tok::Punct("(")) {
                continue;
            }
            if name == "global" {
                continue;
            }
            if let Some(fns) = aliases.get(name) {
                if !fns.contains(func) {
                    let hint = nearest(func, fns.iter().map(String::as_str))
                        .map(|b| format!("did you mean `{name}::{b}`?"));
                    found.push(Diagnostic::at(
                        &file,
                        Some(src),
                        Some(*line),
                        Some(*col),
                        format!("`{name}` has no function `{func}`"),
                        "unknown function".into(),
                        hint,
                    ));
                }
                continue;
            }
            if namespaces.contains(name.as_str()) {
                let full = format!("{name}::{func}");
                let Some(p) = engine.primitives().find(|p| p.meta().full_name() == full) else {
                    let names: Vec<String> = engine
                        .primitives()
                        .filter(|p| p.meta().namespace == name)
                        .map(|p| p.meta().name.to_string())
                        .collect();
                    let hint = nearest(func, names.iter().map(String::as_str))
                        .map(|b| format!("did you mean `{name}::{b}`?"))
                        .or_else(|| Some(format!("`{name}` has: {}", names.join(", "))));
                    found.push(Diagnostic::at(
                        &file,
                        Some(src),
                        Some(*line),
                        Some(*col),
                        format!("unknown primitive `{full}`"),
                        "unknown function".into(),
                        hint,
                    ));
                    continue;
                };
                if p.meta().access == crate::model::Access::Mutate {
                    mutating.push((full.clone(), *line, *col));
                    if let Some(problem) = scope_problem(p, &tokens, i + 4, &runbook.meta.scope) {
                        found.push(Diagnostic::at(
                            &file,
                            Some(src),
                            Some(*line),
                            Some(*col),
                            problem,
                            "outside the scope".into(),
                            Some("widen `scope` in RUNBOOK, or fix the target".into()),
                        ));
                    }
                }
                if tokens.get(i + 4).map(|n| &n.tok) == Some(&Tok::Punct("#{")) {
                    // Probes only read: a literal method other than GET or HEAD is refused here,
                    // as the call itself refuses it before any request.
                    if full.starts_with("health::")
                        && let Some(Some(method)) = literal_values(&tokens, i + 4).get("method")
                        && !["GET", "HEAD"].contains(&method.to_ascii_uppercase().as_str())
                    {
                        found.push(Diagnostic::at(
                            &file,
                            Some(src),
                            Some(*line),
                            Some(*col),
                            format!("`{full}` probes with GET or HEAD only, not `{method}`"),
                            "not a read".into(),
                            Some("a probe must not change what it checks; use GET or HEAD".into()),
                        ));
                    }
                    let valid = p.keys();
                    for (key, kl, kc) in literal_keys(&tokens, i + 4) {
                        if !valid.contains(&key.as_str()) {
                            let hint = nearest(&key, valid.iter().copied())
                                .map(|b| format!("did you mean `{b}`?"))
                                .unwrap_or_else(|| format!("valid keys: {}", valid.join(", ")));
                            found.push(Diagnostic::at(
                                &file,
                                Some(src),
                                Some(kl),
                                Some(kc),
                                format!("`{full}` has no key `{key}`"),
                                "unknown key".into(),
                                Some(hint),
                            ));
                        }
                    }
                }
                continue;
            }
            // Any other namespace is refused at compile time (strict variables).
            continue;
        }
        // f(
        if tokens.get(i + 1).map(|n| &n.tok) != Some(&Tok::Punct("(")) || KEYWORDS.contains(&name.as_str()) {
            continue;
        }
        if !known_plain.contains(name.as_str()) && !rhai_function_names().contains(name.as_str()) {
            let all = known_plain.iter().chain(rhai_function_names()).map(String::as_str);
            let hint = nearest(name, all).map(|b| format!("did you mean `{b}`?"));
            found.push(Diagnostic::at(
                &file,
                Some(src),
                Some(t.line),
                Some(t.col),
                format!("unknown function `{name}`"),
                "unknown function".into(),
                hint.or(Some("`rollbook docs` lists every built-in".into())),
            ));
            continue;
        }
        // Built-in option maps: where each built-in's map goes and its keys come from the list.
        let options = BUILTINS.iter().find(|b| b.name == name.as_str()).and_then(|b| b.options.as_ref());
        let (builtin_keys, map_at): (Option<&[&str]>, Option<usize>) = match options {
            Some(o) if o.at == 0 => (Some((o.keys)()), Some(i + 2)),
            Some(o) => (Some((o.keys)()), nth_argument(&tokens, i + 1, o.at)),
            None => (None, None),
        };
        if let (Some(valid), Some(at)) = (builtin_keys, map_at)
            && tokens.get(at).map(|n| &n.tok) == Some(&Tok::Punct("#{"))
        {
            for (key, kl, kc) in literal_keys(&tokens, at) {
                if !valid.contains(&key.as_str()) {
                    let hint = nearest(&key, valid.iter().copied()).map(|b| format!("did you mean `{b}`?"));
                    found.push(Diagnostic::at(
                        &file,
                        Some(src),
                        Some(kl),
                        Some(kc),
                        format!("`{name}` has no key `{key}`"),
                        "unknown key".into(),
                        hint,
                    ));
                }
            }
        }
    }
    found.extend(undeclared_params(&file, src, &tokens, &runbook.meta));
    if runbook.meta.scope.is_empty()
        && let Some((what, line, col)) = mutating.first()
    {
        warnings.push(Diagnostic::at(
            &file,
            Some(src),
            Some(*line),
            Some(*col),
            format!(
                "the runbook changes things ({what}) but declares no `scope`: a run may change any target"
            ),
            "mutates without a scope".into(),
            Some("add `scope: [\"k8s/prod/shop/*\"]` (the resource keys it may change) to RUNBOOK".into()),
        ));
    }
    Report { problems: found, warnings }
}

/// `params.X` where `X` is not a declared param (the run would fail there).
fn undeclared_params(file: &str, src: &str, tokens: &[Token], meta: &super::RunbookMeta) -> Vec<Diagnostic> {
    let declared: Vec<&str> = meta.params.iter().map(|p| p.name.as_str()).collect();
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.tok != Tok::Ident("params".into()) {
            continue;
        }
        let prev = i.checked_sub(1).map(|p| &tokens[p].tok);
        if matches!(prev, Some(Tok::Punct(".")) | Some(Tok::Punct("::"))) {
            continue;
        }
        let (Some(Token { tok: Tok::Punct("."), .. }), Some(Token { tok: Tok::Ident(name), line, col })) =
            (tokens.get(i + 1), tokens.get(i + 2))
        else {
            continue;
        };
        // A method of the map itself (`params.keys()`), not a param.
        if tokens.get(i + 3).map(|n| &n.tok) == Some(&Tok::Punct("(")) || declared.contains(&name.as_str()) {
            continue;
        }
        let hint = match nearest(name, declared.iter().copied()) {
            Some(best) => format!("did you mean `params.{best}`?"),
            None if declared.is_empty() => "declare it under `params` in RUNBOOK".to_string(),
            None => format!("declared params: {}", declared.join(", ")),
        };
        found.push(Diagnostic::at(
            file,
            Some(src),
            Some(*line),
            Some(*col),
            format!("`params.{name}` is not a declared param"),
            "undeclared param".into(),
            Some(hint),
        ));
    }
    found
}

/// The literal string value of each top-level key of the map at `tokens[start]` (a `#{`):
/// `Some(text)` for a plain string literal, `None` for anything computed.
fn literal_values(tokens: &[Token], start: usize) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let mut depth = 0i32;
    let mut i = start;
    while i < tokens.len() {
        match &tokens[i].tok {
            Tok::Punct("#{") | Tok::Punct("{") | Tok::Punct("(") | Tok::Punct("[") => depth += 1,
            Tok::Punct("}") | Tok::Punct(")") | Tok::Punct("]") => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Tok::Ident(key) | Tok::Str(key)
                if depth == 1
                    && tokens.get(i + 1).map(|n| &n.tok) == Some(&Tok::Punct(":"))
                    && matches!(
                        tokens.get(i.wrapping_sub(1)).map(|p| &p.tok),
                        Some(Tok::Punct("#{")) | Some(Tok::Punct(","))
                    ) =>
            {
                let value = match (tokens.get(i + 2).map(|t| &t.tok), tokens.get(i + 3).map(|t| &t.tok)) {
                    (Some(Tok::Str(v)), Some(Tok::Punct(",")) | Some(Tok::Punct("}")))
                        if !v.contains("${") =>
                    {
                        Some(v.clone())
                    }
                    _ => None,
                };
                out.insert(key.clone(), value);
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Every `ns::f(...)` call in `src`: the full name and the literal string values of its map
/// argument (`None` for a computed value; no entry for a key not given).
pub(crate) fn primitive_calls(src: &str) -> Vec<(String, BTreeMap<String, Option<String>>)> {
    let tokens = tokenize(src);
    let mut out = Vec::new();
    for (i, w) in tokens.windows(4).enumerate() {
        if let (Tok::Ident(ns), Tok::Punct("::"), Tok::Ident(f), Tok::Punct("(")) =
            (&w[0].tok, &w[1].tok, &w[2].tok, &w[3].tok)
        {
            let values = if tokens.get(i + 4).map(|t| &t.tok) == Some(&Tok::Punct("#{")) {
                literal_values(&tokens, i + 4)
            } else {
                BTreeMap::new()
            };
            out.push((format!("{ns}::{f}"), values));
        }
    }
    out
}

/// A mutating call whose target, from its literal keys (anything computed may be anything),
/// can never fall inside the declared scope.
fn scope_problem(
    p: &std::sync::Arc<dyn crate::providers::DynPrimitive>,
    tokens: &[Token],
    map_at: usize,
    scope: &[String],
) -> Option<String> {
    if scope.is_empty() || tokens.get(map_at).map(|n| &n.tok) != Some(&Tok::Punct("#{")) {
        return None;
    }
    let values = literal_values(tokens, map_at);
    let (_, _, shape) = KEY_SHAPES.iter().find(|(prefix, _, _)| *prefix == p.meta().namespace)?;
    // The key's shape with each `<key>` filled from a literal value, else `*` (computed, or a
    // default from the environment at run time: any value).
    let target: Vec<String> = shape
        .split('/')
        .map(|segment| match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            Some(key) => values.get(key).cloned().flatten().unwrap_or_else(|| "*".into()),
            None => segment.to_string(),
        })
        .collect();
    let target = target.join("/");
    if scope.iter().any(|s| patterns_overlap(s, &target)) {
        return None;
    }
    Some(format!(
        "`{}` changes `{target}`, which can never be inside the runbook's scope ({})",
        p.meta().full_name(),
        scope.join(", ")
    ))
}

/// Whether some resource key matches both patterns (`*` within a segment, `**` across).
/// Non-`k8s/` keys compare without case, as scope checks do.
pub fn patterns_overlap(a: &str, b: &str) -> bool {
    let fold = !(ResourceKey::is_case_sensitive(a) || ResourceKey::is_case_sensitive(b));
    let (a, b) = if fold { (a.to_ascii_lowercase(), b.to_ascii_lowercase()) } else { (a.into(), b.into()) };
    let sa: Vec<&str> = a.split('/').collect();
    let sb: Vec<&str> = b.split('/').collect();
    segments_overlap(&sa, &sb)
}

fn segments_overlap(a: &[&str], b: &[&str]) -> bool {
    match (a.first(), b.first()) {
        (None, None) => true,
        (Some(&"**"), _) => segments_overlap(&a[1..], b) || (!b.is_empty() && segments_overlap(a, &b[1..])),
        (_, Some(&"**")) => segments_overlap(b, a),
        (Some(x), Some(y)) if x.contains("**") || y.contains("**") => true,
        (Some(x), Some(y)) => {
            segment_overlap(x.as_bytes(), y.as_bytes()) && segments_overlap(&a[1..], &b[1..])
        }
        _ => false,
    }
}

fn segment_overlap(a: &[u8], b: &[u8]) -> bool {
    match (a.first(), b.first()) {
        (None, None) => true,
        (Some(b'*'), _) => segment_overlap(&a[1..], b) || (!b.is_empty() && segment_overlap(a, &b[1..])),
        (_, Some(b'*')) => segment_overlap(b, a),
        (Some(x), Some(y)) => x == y && segment_overlap(&a[1..], &b[1..]),
        _ => false,
    }
}

/// The resource keys mutating primitives change, by provider: `(prefix, segments, shape)`.
const KEY_SHAPES: &[(&str, usize, &str)] = &[
    ("k8s", 4, "k8s/<context>/<namespace>/<deployment>"),
    ("appservice", 3, "appservice/<group>/<site>"),
    ("arm", 2, "arm/<group>"),
    ("logicapp", 3, "logicapp/<group>/<workflow>"),
];

/// Why a scope or `--allow` pattern can match no resource key, if it cannot.
pub fn pattern_problem(pattern: &str) -> Option<String> {
    if pattern.trim().is_empty() {
        return Some("an empty pattern matches nothing; write a resource key like `k8s/prod/shop/*`".into());
    }
    if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "`{}` has a space or control character; resource keys have none",
            pattern.escape_debug()
        ));
    }
    let segments: Vec<&str> = pattern.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Some(format!("`{pattern}` has an empty segment (a leading, trailing or doubled `/`)"));
    }
    if pattern.contains("**") {
        return None;
    }
    let first = segments[0];
    if first.contains('*') {
        return None;
    }
    match KEY_SHAPES.iter().find(|(p, _, _)| *p == first) {
        None => {
            let known: Vec<&str> = KEY_SHAPES.iter().map(|(p, _, _)| *p).collect();
            let hint = nearest(first, known.iter().copied())
                .map(|b| format!("did you mean `{b}`?"))
                .unwrap_or_else(|| format!("keys start with {}", known.join(", ")));
            Some(format!("`{pattern}` starts with `{first}`, which no resource key does; {hint}"))
        }
        Some((_, n, shape)) if segments.len() != *n => Some(format!(
            "`{pattern}` has {} segments but {first} keys have {n} ({shape}); use `*` for a whole segment or `**` for several",
            segments.len()
        )),
        _ => None,
    }
}

/// Checks `--allow` against the runbook's scope before a run starts: a malformed pattern, or
/// one that no key inside the scope can match, is refused (the run would be refused later at
/// its first change, after the probes).
pub fn allow_problem(allow: &[String], scope: &[String]) -> Option<String> {
    for pattern in allow {
        if let Some(why) = pattern_problem(pattern) {
            return Some(format!("--allow {why}"));
        }
        if !scope.is_empty() && !scope.iter().any(|s| patterns_overlap(s, pattern)) {
            return Some(format!(
                "--allow `{pattern}` can never match anything inside the runbook's scope ({}): the run could change nothing it allows",
                scope.join(", ")
            ));
        }
    }
    None
}

/// The built-ins and the runbook's own functions; Rhai's own are in [`rhai_function_names`],
/// shared by every runbook checked rather than copied for each.
fn plain_function_names(runbook: &super::Runbook) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = BUILTINS.iter().map(|b| b.name.to_string()).collect();
    for f in runbook.ast.iter_functions() {
        names.insert(f.name.to_string());
    }
    names
}

/// The names of Rhai's own functions, listed once per process: building them needs a whole
/// engine and every signature, which dominated `rollbook check` over many runbooks.
fn rhai_function_names() -> &'static BTreeSet<String> {
    static NAMES: std::sync::OnceLock<BTreeSet<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = BTreeSet::new();
        // Signatures read `take(value: &mut Dynamic) -> …`, without a leading `fn`.
        for sig in rhai::Engine::new().gen_fn_signatures(true) {
            let rest = sig.strip_prefix("fn ").unwrap_or(&sig);
            if let Some(name) = rest.split('(').next()
                && !name.trim().is_empty()
            {
                names.insert(name.trim().to_string());
            }
        }
        names
    })
}

/// The public functions of an imported module, and the first mutating primitive it calls.
fn module_functions(
    engine: &Engine,
    root: &Path,
    library: Option<std::sync::Arc<crate::library::Resolved>>,
    module: &str,
) -> Result<(BTreeSet<String>, Option<String>), String> {
    let source = if let Some((_, src)) = STDLIB.iter().find(|(id, _)| *id == module) {
        (*src).to_string()
    } else if module.starts_with("std/") {
        let names: Vec<&str> = STDLIB.iter().map(|(id, _)| *id).collect();
        return Err(format!("no stdlib module `{module}`; the stdlib has {}", names.join(", ")));
    } else {
        let resolver =
            super::modules::Resolver::new(root.to_path_buf(), Default::default()).with_library(library);
        let file = resolver.locate(module)?;
        std::fs::read_to_string(&file)
            .map_err(|e| format!("import `{module}`: cannot read `{}`: {e}", file.display()))?
    };
    // Compile under the run's limits: a default engine's are tighter in debug builds and would
    // refuse modules the runner accepts.
    let mut compiler = rhai::Engine::new();
    compiler.set_max_expr_depths(engine.limits.max_expr_depths.0, engine.limits.max_expr_depths.1);
    let ast = compiler.compile(&source).map_err(|e| format!("import `{module}`: {e}"))?;
    let tokens = tokenize(&source);
    let mutates = tokens.windows(4).find_map(|w| match (&w[0].tok, &w[1].tok, &w[2].tok, &w[3].tok) {
        (Tok::Ident(ns), Tok::Punct("::"), Tok::Ident(f), Tok::Punct("(")) => {
            let full = format!("{ns}::{f}");
            engine
                .primitives()
                .any(|p| p.meta().full_name() == full && p.meta().access == crate::model::Access::Mutate)
                .then_some(full)
        }
        _ => None,
    });
    let functions = ast
        .iter_functions()
        .filter(|f| f.access != rhai::FnAccess::Private)
        .map(|f| f.name.to_string())
        .collect();
    Ok((functions, mutates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_literal_keys_only() {
        let toks = tokenize("k8s::undo(#{ context: \"a\", nested: #{ inner: 1 }, \"quoted\": 2 })");
        let start = toks.iter().position(|t| t.tok == Tok::Punct("#{")).unwrap();
        let keys: Vec<String> = literal_keys(&toks, start).into_iter().map(|k| k.0).collect();
        assert_eq!(keys, vec!["context", "nested", "quoted"]);
    }

    #[test]
    fn skips_strings_and_comments() {
        let toks = tokenize("// k8s::x(\n let s = \"a::b(\"; /* c::d( */ e::f(");
        let idents: Vec<_> = toks
            .iter()
            .filter_map(|t| if let Tok::Ident(s) = &t.tok { Some(s.as_str()) } else { None })
            .collect();
        assert_eq!(idents, vec!["let", "s", "e", "f"]);
    }

    #[test]
    fn patterns_overlap_when_some_key_matches_both() {
        assert!(patterns_overlap("k8s/prod/*/*", "k8s/prod/shop/web"));
        assert!(patterns_overlap("k8s/*/shop/*", "k8s/prod/*/web"));
        assert!(patterns_overlap("k8s/**", "k8s/prod/shop/web"));
        assert!(patterns_overlap("k8s/prod/sh*/*", "k8s/prod/*op/web"));
        assert!(!patterns_overlap("k8s/prod/*/*", "k8s/staging/shop/web"));
        assert!(!patterns_overlap("k8s/prod/*", "k8s/prod/shop/web"), "`*` stays within a segment");
        assert!(!patterns_overlap("appservice/*/*", "k8s/prod/shop/web"));
        assert!(patterns_overlap("appservice/RG-Shop/*", "appservice/rg-shop/web"), "azure keys ignore case");
    }

    #[test]
    fn malformed_patterns_are_named() {
        assert!(pattern_problem("k8s/prod/shop/*").is_none());
        assert!(pattern_problem("k8s/**").is_none());
        assert!(pattern_problem("arm/rg-shop").is_none());
        assert!(pattern_problem("k8s/prod/*").unwrap().contains("3 segments"));
        assert!(pattern_problem("k8:prod/shop/web").is_some());
        assert!(pattern_problem("/k8s/prod/shop/web").unwrap().contains("empty segment"));
        assert!(pattern_problem("").is_some());
    }
}
