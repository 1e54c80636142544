//! What names mean in a script, as far as a flow-insensitive look can tell: which module
//! or function an imported name stands for, and which values a variable is assigned.
//! Rules use it to see `sp.run` as `subprocess.run` and `db.query(sql)` as a call with
//! the SQL that `sql` was assigned.

use std::collections::HashMap;

use super::ast::{BinOp, Expr, ExprKind, Span, Stmt, StmtKind};

/// How deep `static_string` follows variables and concatenations.
const STATIC_DEPTH: usize = 8;

/// One `import` or `from … import` statement, flattened.
#[derive(Debug)]
pub struct Import<'a> {
    /// The statement.
    pub stmt: &'a Stmt,
    /// The dotted names it brings in: `a.b` for `import a.b`, `m.x` and `m.y` for
    /// `from m import x, y` (`m.*` for a star import).
    pub names: Vec<String>,
}

impl Import<'_> {
    /// Where the statement is.
    pub fn span(&self) -> Span {
        self.stmt.span
    }

    /// The top-level modules the statement needs (`a` for `import a.b`).
    pub fn top_level_modules(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.names.iter().map(|n| n.split('.').next().unwrap_or(n)).collect();
        out.dedup();
        out
    }
}

/// Names and bindings of one script.
pub struct Semantic<'a> {
    /// Local name → the dotted name it was imported as.
    aliases: HashMap<&'a str, String>,
    /// Variable → every value assigned to it anywhere.
    assignments: HashMap<&'a str, Vec<&'a Expr>>,
    /// The script's imports, in source order.
    pub imports: Vec<Import<'a>>,
}

impl<'a> Semantic<'a> {
    /// Collects imports and assignments from every statement.
    pub fn new(statements: &[&'a Stmt]) -> Self {
        let mut aliases = HashMap::new();
        let mut assignments: HashMap<&str, Vec<&Expr>> = HashMap::new();
        let mut imports = Vec::new();
        for stmt in statements {
            match &stmt.kind {
                StmtKind::Import(names) => {
                    for a in names {
                        match &a.asname {
                            Some(asname) => aliases.insert(asname.as_str(), a.name.clone()),
                            None => {
                                let top = a.name.split('.').next().unwrap_or(&a.name);
                                aliases.insert(top, top.to_string())
                            }
                        };
                    }
                    imports.push(Import { stmt, names: names.iter().map(|a| a.name.clone()).collect() });
                }
                StmtKind::ImportFrom { module, level, names } => {
                    // Relative imports name the script's own package, which has none.
                    if *level > 0 {
                        continue;
                    }
                    let module = module.as_deref().unwrap_or_default();
                    for a in names {
                        let local = a.asname.as_deref().unwrap_or(&a.name);
                        if a.name != "*" {
                            aliases.insert(local, format!("{module}.{}", a.name));
                        }
                    }
                    imports
                        .push(Import { stmt, names: names.iter().map(|a| format!("{module}.{}", a.name)).collect() });
                }
                StmtKind::Assign { targets, value } => {
                    for target in targets {
                        if let ExprKind::Name(name) = &target.kind {
                            assignments.entry(name.as_str()).or_default().push(value);
                        }
                    }
                }
                _ => {}
            }
        }
        Semantic { aliases, assignments, imports }
    }

    /// The dotted name an expression stands for: `subprocess.run` for `sp.run` after
    /// `import subprocess as sp`, `eval` for `builtins.eval`. `None` for anything that
    /// is not a name or an attribute chain on one.
    pub fn qualified_name(&self, expr: &Expr) -> Option<String> {
        let mut parts = Vec::new();
        let mut current = expr;
        loop {
            match &current.kind {
                ExprKind::Attribute { value, attr } => {
                    parts.push(attr.as_str());
                    current = value;
                }
                ExprKind::Name(name) => {
                    let head = self.aliases.get(name.as_str()).map_or(name.as_str(), String::as_str);
                    parts.push(head);
                    break;
                }
                // A module fetched by a literal name is that module:
                // `__import__("os").system` and `sys.modules["os"].system` are `os.system`.
                _ => {
                    let module = self.module_by_name(current)?;
                    parts.reverse();
                    parts.insert(0, &module);
                    return Some(parts.join("."));
                }
            }
        }
        parts.reverse();
        let joined = parts.join(".");
        Some(match joined.strip_prefix("builtins.").or_else(|| joined.strip_prefix("__builtins__.")) {
            Some(rest) => rest.to_string(),
            None => joined,
        })
    }

    /// The module an expression loads by a literal name: `__import__("os")`,
    /// `importlib.import_module("os")`, `sys.modules["os"]`.
    fn module_by_name(&self, expr: &Expr) -> Option<String> {
        match &expr.kind {
            ExprKind::Call { func, args, .. } => {
                let callee = self.qualified_name(func)?;
                matches!(callee.as_str(), "__import__" | "importlib.import_module")
                    .then(|| self.static_string(args.first()?))?
            }
            ExprKind::Subscript { value, index } if self.qualified_name(value).as_deref() == Some("sys.modules") => {
                self.static_string(index)
            }
            _ => None,
        }
    }

    /// Whether a name was bound by an import (so it stands for a module or an object
    /// from one).
    pub fn is_imported(&self, name: &str) -> bool {
        self.aliases.contains_key(name)
    }

    /// Every value assigned to a variable.
    pub fn assigned(&self, name: &str) -> &[&'a Expr] {
        self.assignments.get(name).map_or(&[], Vec::as_slice)
    }

    /// The string an expression always evaluates to, when the script spells it out:
    /// literals, f-strings without fields, `+` of such, and variables assigned exactly
    /// once to such.
    pub fn static_string(&self, expr: &Expr) -> Option<String> {
        self.static_string_at(expr, 0)
    }

    fn static_string_at(&self, expr: &Expr, depth: usize) -> Option<String> {
        if depth > STATIC_DEPTH {
            return None;
        }
        match &expr.kind {
            ExprKind::Str(s) => Some(s.clone()),
            ExprKind::FString(parts) => parts.iter().map(|p| p.as_str()).collect::<Option<String>>(),
            ExprKind::BinOp { op: BinOp::Add, left, right } => {
                Some(self.static_string_at(left, depth + 1)? + &self.static_string_at(right, depth + 1)?)
            }
            ExprKind::Name(name) => match self.assigned(name) {
                [value] => self.static_string_at(value, depth + 1),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Whether `module` is `pattern` or inside it (`urllib.request.urlopen` is inside
/// `urllib.request`). A pattern starting with `=` matches only exactly.
pub fn module_matches(module: &str, pattern: &str) -> bool {
    match pattern.strip_prefix('=') {
        Some(exact) => module == exact,
        None => module == pattern || module.strip_prefix(pattern).is_some_and(|rest| rest.starts_with('.')),
    }
}

/// The first pattern an import matches, with the statement.
pub fn find_import<'a, 'p>(imports: &'a [Import<'a>], patterns: &[&'p str]) -> Vec<(&'a Import<'a>, &'p str)> {
    let mut out = Vec::new();
    for import in imports {
        let hit = import.names.iter().find_map(|n| patterns.iter().find(|p| module_matches(n, p)));
        if let Some(pattern) = hit {
            out.push((import, pattern.trim_start_matches('=')));
        }
    }
    out
}
