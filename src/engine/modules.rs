//! Module resolution: `import "std/<name>"` from the stdlib compiled into the binary; other
//! imports from the runbook's folder, never outside it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::{AST, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

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

/// Resolves `std/…` and runbook-relative imports, confined to the runbook's folder.
pub(crate) struct Resolver {
    root: PathBuf,
    cache: Mutex<HashMap<String, SharedModule>>,
    loaded: Loaded,
}

impl Resolver {
    pub fn new(root: PathBuf, loaded: Loaded) -> Self {
        Resolver { root, cache: Mutex::new(HashMap::new()), loaded }
    }

    pub(crate) fn locate(&self, path: &str) -> Result<PathBuf, String> {
        let rel = Path::new(path);
        if rel.is_absolute() || path.starts_with('\\') || path.contains(':') {
            return Err(format!(
                "import `{path}`: absolute paths are not allowed; imports are relative to the runbook's folder `{}`",
                self.root.display()
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
                            "import `{path}` leaves the runbook's folder `{}`; only files inside it can be imported",
                            self.root.display()
                        ));
                    }
                }
                _ => return Err(format!("import `{path}`: not a relative path")),
            }
        }
        let mut file = self.root.join(&normal);
        file.set_extension("rhai");
        let real =
            file.canonicalize().map_err(|_| format!("import `{path}`: no file `{}`", file.display()))?;
        let root = self.root.canonicalize().unwrap_or_else(|_| self.root.clone());
        if !real.starts_with(&root) {
            return Err(format!(
                "import `{path}` resolves outside the runbook's folder `{}` (through a link)",
                self.root.display()
            ));
        }
        Ok(real)
    }

    fn load(
        &self,
        engine: &rhai::Engine,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
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
            let file =
                self.locate(path).map_err(|why| Box::new(EvalAltResult::ErrorRuntime(why.into(), pos)))?;
            std::fs::read_to_string(&file).map_err(|e| {
                Box::new(EvalAltResult::ErrorRuntime(
                    format!("import `{path}`: cannot read `{}`: {e}", file.display()).into(),
                    pos,
                ))
            })?
        };
        let mut ast = engine
            .compile(&source)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.into(), e.into(), pos)))?;
        ast.set_source(path);
        if let Ok(mut sources) = self.loaded.sources.lock() {
            sources.insert(path.to_string(), source);
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
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        if let Some(m) = self.cache.lock().ok().and_then(|c| c.get(path).cloned()) {
            return Ok(m);
        }
        let module = self.load(engine, path, pos)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(path.to_string(), module.clone());
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
