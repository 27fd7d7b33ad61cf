//! Module resolution: `import "std/<name>"` from the stdlib compiled into the binary;
//! `import "<dependency>/<path>"` from that dependency of the runbook's library,
//! never outside its folder; other imports from the runbook's folder (or, inside a library,
//! its root), never outside it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::{AST, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use crate::library::Resolved;

type SharedModule = Shared<Module>;

/// The stdlib: `std/<name>` → source, compiled into the binary.
pub const STDLIB: &[(&str, &str)] = &[
    ("std/appservice", include_str!("../../stdlib/appservice.rhai")),
    ("std/arm", include_str!("../../stdlib/arm.rhai")),
    ("std/health", include_str!("../../stdlib/health.rhai")),
    ("std/k8s", include_str!("../../stdlib/k8s.rhai")),
    ("std/logicapp", include_str!("../../stdlib/logicapp.rhai")),
];

/// Sources and ASTs of every module a run loaded (for diagnostics and deferred closure calls).
#[derive(Default, Clone)]
pub(crate) struct Loaded {
    /// Module id → source text.
    pub sources: Arc<Mutex<HashMap<String, String>>>,
    /// Compiled modules, for calling their closures later (undo, parallel).
    pub asts: Arc<Mutex<Vec<AST>>>,
}

/// Resolves `std/…`, dependency and runbook-relative imports, each confined to its folder.
pub(crate) struct Resolver {
    root: PathBuf,
    library: Option<Arc<Resolved>>,
    cache: Mutex<HashMap<String, SharedModule>>,
    loaded: Loaded,
}

impl Resolver {
    pub(super) fn new(root: PathBuf, loaded: Loaded) -> Self {
        Resolver { root, library: None, cache: Mutex::new(HashMap::new()), loaded }
    }

    /// Resolves imports of dependencies through `library` too.
    pub(super) fn with_library(mut self, library: Option<Arc<Resolved>>) -> Self {
        self.library = library;
        self
    }

    /// The file an import path names, and the library (dependency name) it is from.
    pub(crate) fn locate(&self, path: &str) -> Result<PathBuf, String> {
        self.locate_from(None, path).map(|(file, _)| file)
    }

    /// As `locate`, for an import written in module `importer` (a dependency's module resolves
    /// its own relative imports inside that dependency).
    pub(crate) fn locate_from(
        &self,
        importer: Option<&str>,
        path: &str,
    ) -> Result<(PathBuf, Option<String>), String> {
        if let Some(lib) = &self.library {
            if let Some((first, rest)) = path.split_once('/')
                && let Some(dep) = lib.deps.get(first)
            {
                return confined(&dep.root, rest, path, &format!("dependency `{first}`"))
                    .map(|f| (f, Some(first.to_string())));
            }
            if let Some(first) = importer.and_then(|i| i.split_once('/')).map(|(f, _)| f)
                && let Some(dep) = lib.deps.get(first)
            {
                return confined(&dep.root, path, path, &format!("dependency `{first}`"))
                    .map(|f| (f, Some(first.to_string())));
            }
            return match confined(&self.root, path, path, "the runbook's folder") {
                Ok(f) => Ok((f, None)),
                Err(why) if why.contains("no file") => {
                    confined(&lib.root.root, path, path, &format!("library `{}`", lib.root.name))
                        .map(|f| (f, None))
                        .map_err(|_| why)
                }
                Err(why) => Err(why),
            };
        }
        confined(&self.root, path, path, "the runbook's folder").map(|f| (f, None))
    }
}

/// `rel` (an import path without extension) inside `root`, never outside it.
fn confined(root: &Path, rel_path: &str, path: &str, what: &str) -> Result<PathBuf, String> {
    let rel = Path::new(rel_path);
    if rel.is_absolute() || path.starts_with('\\') || path.contains(':') {
        return Err(format!(
            "import `{path}`: absolute paths are not allowed; imports are relative to {what} `{}`",
            root.display()
        ));
    }
    let mut normal = PathBuf::new();
    for part in rel.components() {
        match part {
            Component::Normal(p) => normal.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(format!(
                        "import `{path}` leaves {what} `{}`; only files inside it can be imported",
                        root.display()
                    ));
                }
            }
            _ => return Err(format!("import `{path}`: not a relative path")),
        }
    }
    let mut file = root.join(&normal);
    file.set_extension("rhai");
    let real = file.canonicalize().map_err(|_| format!("import `{path}`: no file `{}`", file.display()))?;
    let canon_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if !real.starts_with(&canon_root) {
        return Err(format!("import `{path}` resolves outside {what} `{}` (through a link)", root.display()));
    }
    Ok(real)
}

impl Resolver {
    fn load(
        &self,
        engine: &rhai::Engine,
        importer: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let mut id = path.to_string();
        let source = if let Some((_, src)) = STDLIB.iter().find(|(id, _)| *id == path) {
            (*src).to_string()
        } else if path.starts_with("std/") {
            let names: Vec<&str> = STDLIB.iter().map(|(id, _)| *id).collect();
            let hint = crate::model::nearest(path, names.iter().copied())
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_else(|| format!("; the stdlib has {}", names.join(", ")));
            return Err(
                EvalAltResult::ErrorRuntime(format!("no stdlib module `{path}`{hint}").into(), pos).into()
            );
        } else {
            let (file, dep) = self
                .locate_from(importer, path)
                .map_err(|why| Box::new(EvalAltResult::ErrorRuntime(why.into(), pos)))?;
            if let (Some(dep), Some(lib)) = (dep, &self.library)
                && !path.starts_with(&format!("{dep}/"))
                && lib.deps.contains_key(&dep)
            {
                // Module ids name their dependency, so their own imports resolve inside it.
                id = format!("{dep}/{path}");
            }
            crate::model::read_input_file(&file).map_err(|e| {
                Box::new(EvalAltResult::ErrorRuntime(
                    format!("import `{path}`: cannot read `{}`: {e}", file.display()).into(),
                    pos,
                ))
            })?
        };
        if let Some((line, col)) = super::check::non_literal_imports(&source).first() {
            return Err(Box::new(EvalAltResult::ErrorRuntime(
                format!(
                    "module `{path}` line {line}, column {col}: `import` takes a string literal path, so what a run loads is known before it starts"
                )
                .into(),
                pos,
            )));
        }
        let mut ast = engine
            .compile(&source)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.into(), e.into(), pos)))?;
        ast.set_source(id.as_str());
        if let Ok(mut sources) = self.loaded.sources.lock() {
            sources.insert(id.clone(), source);
        }
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.into(), e, pos)))?;
        if let Ok(mut asts) = self.loaded.asts.lock() {
            asts.push(ast.clone_functions_only());
        }
        Ok(module.into())
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &rhai::Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let dep_of = source
            .and_then(|s| s.split_once('/'))
            .map(|(f, _)| f)
            .filter(|f| self.library.as_ref().is_some_and(|l| l.deps.contains_key(*f)));
        let key = match dep_of {
            Some(dep) if !path.starts_with("std/") => format!("{dep}:{path}"),
            _ => path.to_string(),
        };
        if let Some(m) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(m);
        }
        let module = self.load(engine, dep_of.and(source), path, pos)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, module.clone());
        }
        Ok(module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes_and_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/ok.rhai"), "fn f() { 1 }").unwrap();
        let r = Resolver::new(dir.path().to_path_buf(), Loaded::default());
        assert!(r.locate("lib/ok").is_ok());
        assert!(r.locate("lib/../lib/ok").is_ok());
        assert!(r.locate("../x").unwrap_err().contains("leaves the runbook's folder"));
        assert!(r.locate("/etc/passwd").unwrap_err().contains("absolute paths are not allowed"));
        assert!(r.locate("lib/missing").unwrap_err().contains("no file"));
    }
}
