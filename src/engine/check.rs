//! `rollbook check`: compiles, validates metadata, and flags calls to unknown namespaces and
//! functions and, where the argument is a literal map, unknown keys — without running anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::diag::Diagnostic;
use super::docs::BUILTINS;
use super::{Engine, EngineError, STDLIB};
use crate::model::nearest;

/// The best built-in name for a misspelled function.
pub fn suggest_function(name: &str) -> Option<&'static str> {
    nearest(name, BUILTINS.iter().map(|b| b.name))
}

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
    let runbook = match engine.load_with(path, library) {
        Ok(r) => r,
        Err(EngineError::Script(d)) => return vec![*d],
        Err(e) => {
            return vec![Diagnostic::at(
                &path.display().to_string(),
                None,
                None,
                None,
                e.to_string(),
                String::new(),
                None,
            )];
        }
    };
    let file = path.display().to_string();
    let src = &runbook.source;
    let tokens = tokenize(src);
    let mut found = Vec::new();

    let known_plain = plain_function_names(&runbook);
    let root = super::runbook_root(path);

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
            Ok(fns) => {
                aliases.insert(alias.clone(), fns);
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
                if tokens.get(i + 4).map(|n| &n.tok) == Some(&Tok::Punct("#{")) {
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
        if !known_plain.contains(name.as_str()) {
            let hint =
                nearest(name, known_plain.iter().map(String::as_str)).map(|b| format!("did you mean `{b}`?"));
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
        // Built-in option maps (first argument).
        let (builtin_keys, map_at): (Option<&[&str]>, Option<usize>) = match name.as_str() {
            "retry" => (Some(&["attempts", "interval"]), Some(i + 2)),
            "wait_until" => (Some(&["timeout", "interval"]), Some(i + 2)),
            // parallel(items, closure, #{ … }): the map is the third argument.
            "parallel" => (Some(&["concurrency", "fail_fast", "timeout"]), nth_argument(&tokens, i + 1, 2)),
            _ => (None, None),
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
    found
}

fn plain_function_names(runbook: &super::Runbook) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = BUILTINS.iter().map(|b| b.name.to_string()).collect();
    for f in runbook.ast.iter_functions() {
        names.insert(f.name.to_string());
    }
    names.extend(rhai_function_names().iter().cloned());
    names
}

/// The names of Rhai's own functions, listed once per process: building them needs a whole
/// engine and every signature, which dominated `rollbook check` over many runbooks.
fn rhai_function_names() -> &'static BTreeSet<String> {
    static NAMES: std::sync::OnceLock<BTreeSet<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = BTreeSet::new();
        for sig in rhai::Engine::new().gen_fn_signatures(true) {
            if let Some(rest) = sig.strip_prefix("fn ").or_else(|| sig.split("fn ").nth(1))
                && let Some(name) = rest.split('(').next()
            {
                names.insert(name.trim().to_string());
            }
        }
        names
    })
}

fn module_functions(
    engine: &Engine,
    root: &Path,
    library: Option<std::sync::Arc<crate::library::Resolved>>,
    module: &str,
) -> Result<BTreeSet<String>, String> {
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
    Ok(ast
        .iter_functions()
        .filter(|f| f.access != rhai::FnAccess::Private)
        .map(|f| f.name.to_string())
        .collect())
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
}
