//! The one module that touches `rustpython-parser`: it parses a script and lowers the
//! parser's tree into [`crate::validate::ast`]. The crate is no longer maintained, so
//! keeping it behind this file means a replacement parser changes nothing else.
//!
//! Lowering is recursive and bounded: past [`MAX_DEPTH`] nested nodes the script is
//! refused as too deeply nested (CPython itself refuses such code, at a smaller depth for
//! brackets), so no input can exhaust the stack here.

use rustpython_parser::ast::{self as py, Ranged};
use rustpython_parser::{Mode, text_size::TextRange};

use super::ast::{Alias, BinOp, Expr, ExprKind, Handler, Keyword, Module, Span, Stmt, StmtKind};

/// Deeper trees than this are refused rather than lowered.
pub const MAX_DEPTH: usize = 1_000;

/// Why a script could not be lowered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The parser's message.
    pub message: String,
    /// The byte offset it points at.
    pub offset: u32,
}

/// Parses `source` into the validator's tree.
pub fn parse(source: &str) -> Result<Module, SyntaxError> {
    let tree = rustpython_parser::parse(source, Mode::Module, "<script>")
        .map_err(|e| SyntaxError { message: e.error.to_string(), offset: u32::from(e.offset) })?;
    let py::Mod::Module(module) = tree else {
        return Err(SyntaxError { message: "not a module".into(), offset: 0 });
    };
    let mut lower = Lower { depth: 0 };
    let body = lower.stmts(&module.body)?;
    Ok(Module { body })
}

fn span(range: TextRange) -> Span {
    Span { start: u32::from(range.start()), end: u32::from(range.end()) }
}

struct Lower {
    depth: usize,
}

impl Lower {
    fn enter(&mut self, range: TextRange) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError {
                message: format!("the code is nested more than {MAX_DEPTH} levels deep"),
                offset: u32::from(range.start()),
            });
        }
        Ok(())
    }

    fn stmts(&mut self, body: &[py::Stmt]) -> Result<Vec<Stmt>, SyntaxError> {
        body.iter().map(|s| self.stmt(s)).collect()
    }

    fn exprs<'a>(&mut self, exprs: impl IntoIterator<Item = &'a py::Expr>) -> Result<Vec<Expr>, SyntaxError> {
        exprs.into_iter().map(|e| self.expr(e)).collect()
    }

    fn stmt(&mut self, stmt: &py::Stmt) -> Result<Stmt, SyntaxError> {
        self.enter(stmt.range())?;
        let kind = self.stmt_kind(stmt)?;
        self.depth -= 1;
        Ok(Stmt { span: span(stmt.range()), kind })
    }

    fn other(&mut self, exprs: Vec<&py::Expr>, bodies: Vec<&[py::Stmt]>) -> Result<StmtKind, SyntaxError> {
        Ok(StmtKind::Other {
            exprs: self.exprs(exprs)?,
            bodies: bodies.into_iter().map(|b| self.stmts(b)).collect::<Result<_, _>>()?,
        })
    }

    fn arguments<'a>(args: &'a py::Arguments, out: &mut Vec<&'a py::Expr>) {
        let all = args.posonlyargs.iter().chain(&args.args).chain(&args.kwonlyargs);
        for arg in all {
            out.extend(arg.default.as_deref());
            out.extend(arg.def.annotation.as_deref());
        }
        for arg in args.vararg.iter().chain(&args.kwarg) {
            out.extend(arg.annotation.as_deref());
        }
    }

    fn stmt_kind(&mut self, stmt: &py::Stmt) -> Result<StmtKind, SyntaxError> {
        use py::Stmt as S;
        Ok(match stmt {
            S::Import(s) => StmtKind::Import(s.names.iter().map(alias).collect()),
            S::ImportFrom(s) => StmtKind::ImportFrom {
                module: s.module.as_ref().map(|m| m.to_string()),
                level: s.level.map_or(0, |l| l.to_u32()),
                names: s.names.iter().map(alias).collect(),
            },
            S::Assign(s) => StmtKind::Assign { targets: self.exprs(&s.targets)?, value: self.expr(&s.value)? },
            S::AnnAssign(s) => match &s.value {
                Some(value) => StmtKind::Assign { targets: vec![self.expr(&s.target)?], value: self.expr(value)? },
                None => self.other(vec![&s.target, &s.annotation], vec![])?,
            },
            S::AugAssign(s) => {
                // `a += b` is lowered as `a = a + b`, so a string built up piece by piece
                // is seen as built.
                let target = self.expr(&s.target)?;
                let left = self.expr(&s.target)?;
                let right = self.expr(&s.value)?;
                let value = Expr {
                    span: span(s.range),
                    kind: ExprKind::BinOp { op: binop(&s.op), left: Box::new(left), right: Box::new(right) },
                };
                StmtKind::Assign { targets: vec![target], value }
            }
            S::FunctionDef(s) => self.function(&s.name, &s.decorator_list, &s.args, s.returns.as_deref(), &s.body)?,
            S::AsyncFunctionDef(s) => {
                self.function(&s.name, &s.decorator_list, &s.args, s.returns.as_deref(), &s.body)?
            }
            S::ClassDef(s) => {
                let exprs = s.decorator_list.iter().chain(&s.bases).chain(s.keywords.iter().map(|k| &k.value));
                self.other(exprs.collect(), vec![&s.body])?
            }
            S::Try(s) => self.try_(&s.body, &s.handlers, &s.orelse, &s.finalbody)?,
            S::TryStar(s) => self.try_(&s.body, &s.handlers, &s.orelse, &s.finalbody)?,
            S::Expr(s) => StmtKind::Expr(self.expr(&s.value)?),
            S::Return(s) => self.other(s.value.as_deref().into_iter().collect(), vec![])?,
            S::Delete(s) => self.other(s.targets.iter().collect(), vec![])?,
            S::TypeAlias(s) => self.other(vec![&s.name, &s.value], vec![])?,
            S::For(s) => self.other(vec![&s.target, &s.iter], vec![&s.body, &s.orelse])?,
            S::AsyncFor(s) => self.other(vec![&s.target, &s.iter], vec![&s.body, &s.orelse])?,
            S::While(s) => self.other(vec![&s.test], vec![&s.body, &s.orelse])?,
            S::If(s) => self.other(vec![&s.test], vec![&s.body, &s.orelse])?,
            S::With(s) => self.other(with_exprs(&s.items), vec![&s.body])?,
            S::AsyncWith(s) => self.other(with_exprs(&s.items), vec![&s.body])?,
            S::Match(s) => {
                let mut exprs = vec![s.subject.as_ref()];
                for case in &s.cases {
                    pattern_exprs(&case.pattern, &mut exprs);
                    exprs.extend(case.guard.as_deref());
                }
                self.other(exprs, s.cases.iter().map(|c| c.body.as_slice()).collect())?
            }
            S::Raise(s) => self.other(s.exc.as_deref().into_iter().chain(s.cause.as_deref()).collect(), vec![])?,
            S::Assert(s) => self.other(std::iter::once(s.test.as_ref()).chain(s.msg.as_deref()).collect(), vec![])?,
            S::Global(_) | S::Nonlocal(_) | S::Pass(_) | S::Break(_) | S::Continue(_) => {
                StmtKind::Other { exprs: Vec::new(), bodies: Vec::new() }
            }
        })
    }

    /// A `def` or `async def`: decorators, parameter defaults and annotations, then the body.
    fn function(
        &mut self,
        name: &str,
        decorators: &[py::Expr],
        args: &py::Arguments,
        returns: Option<&py::Expr>,
        body: &[py::Stmt],
    ) -> Result<StmtKind, SyntaxError> {
        let mut exprs: Vec<&py::Expr> = decorators.iter().collect();
        Self::arguments(args, &mut exprs);
        exprs.extend(returns);
        Ok(StmtKind::FunctionDef { name: name.to_string(), exprs: self.exprs(exprs)?, body: self.stmts(body)? })
    }

    fn try_(
        &mut self,
        body: &[py::Stmt],
        handlers: &[py::ExceptHandler],
        orelse: &[py::Stmt],
        finalbody: &[py::Stmt],
    ) -> Result<StmtKind, SyntaxError> {
        let handlers = handlers
            .iter()
            .map(|h| {
                let py::ExceptHandler::ExceptHandler(h) = h;
                Ok(Handler { type_: h.type_.as_deref().map(|t| self.expr(t)).transpose()?, body: self.stmts(&h.body)? })
            })
            .collect::<Result<_, SyntaxError>>()?;
        Ok(StmtKind::Try { body: self.stmts(body)?, handlers, rest: vec![self.stmts(orelse)?, self.stmts(finalbody)?] })
    }

    fn expr(&mut self, expr: &py::Expr) -> Result<Expr, SyntaxError> {
        self.enter(expr.range())?;
        let kind = self.expr_kind(expr)?;
        self.depth -= 1;
        Ok(Expr { span: span(expr.range()), kind })
    }

    fn boxed(&mut self, expr: &py::Expr) -> Result<Box<Expr>, SyntaxError> {
        self.expr(expr).map(Box::new)
    }

    fn expr_kind(&mut self, expr: &py::Expr) -> Result<ExprKind, SyntaxError> {
        use py::Expr as E;
        let other = |this: &mut Self, children: Vec<&py::Expr>| this.exprs(children).map(ExprKind::Other);
        Ok(match expr {
            E::Name(e) => ExprKind::Name(e.id.to_string()),
            E::Attribute(e) => ExprKind::Attribute { value: self.boxed(&e.value)?, attr: e.attr.to_string() },
            E::Call(e) => ExprKind::Call {
                func: self.boxed(&e.func)?,
                args: self.exprs(&e.args)?,
                keywords: e
                    .keywords
                    .iter()
                    .map(|k| Ok(Keyword { name: k.arg.as_ref().map(|a| a.to_string()), value: self.expr(&k.value)? }))
                    .collect::<Result<_, SyntaxError>>()?,
            },
            E::Constant(e) => match &e.value {
                py::Constant::Str(s) => ExprKind::Str(s.clone()),
                _ => ExprKind::Other(Vec::new()),
            },
            E::JoinedStr(e) => {
                // A replacement field's own f-string parts (its format spec) stay nested.
                ExprKind::FString(self.exprs(&e.values)?)
            }
            E::FormattedValue(e) => {
                let mut children = vec![e.value.as_ref()];
                children.extend(e.format_spec.as_deref());
                other(self, children)?
            }
            E::BinOp(e) => {
                ExprKind::BinOp { op: binop(&e.op), left: self.boxed(&e.left)?, right: self.boxed(&e.right)? }
            }
            E::Subscript(e) => ExprKind::Subscript { value: self.boxed(&e.value)?, index: self.boxed(&e.slice)? },
            E::Dict(e) => ExprKind::Dict {
                keys: e.keys.iter().map(|k| k.as_ref().map(|k| self.expr(k)).transpose()).collect::<Result<_, _>>()?,
                values: self.exprs(&e.values)?,
            },
            E::BoolOp(e) => other(self, e.values.iter().collect())?,
            E::NamedExpr(e) => other(self, vec![&e.target, &e.value])?,
            E::UnaryOp(e) => other(self, vec![&e.operand])?,
            E::Lambda(e) => {
                let mut children = Vec::new();
                Self::arguments(&e.args, &mut children);
                children.push(&e.body);
                other(self, children)?
            }
            E::IfExp(e) => other(self, vec![&e.test, &e.body, &e.orelse])?,
            E::Set(e) => other(self, e.elts.iter().collect())?,
            E::List(e) => other(self, e.elts.iter().collect())?,
            E::Tuple(e) => other(self, e.elts.iter().collect())?,
            E::ListComp(e) => other(self, comprehension(&[&e.elt], &e.generators))?,
            E::SetComp(e) => other(self, comprehension(&[&e.elt], &e.generators))?,
            E::GeneratorExp(e) => other(self, comprehension(&[&e.elt], &e.generators))?,
            E::DictComp(e) => other(self, comprehension(&[&e.key, &e.value], &e.generators))?,
            E::Await(e) => other(self, vec![&e.value])?,
            E::Yield(e) => other(self, e.value.as_deref().into_iter().collect())?,
            E::YieldFrom(e) => other(self, vec![&e.value])?,
            E::Compare(e) => other(self, std::iter::once(e.left.as_ref()).chain(&e.comparators).collect())?,
            E::Starred(e) => other(self, vec![&e.value])?,
            E::Slice(e) => other(
                self,
                e.lower.as_deref().into_iter().chain(e.upper.as_deref()).chain(e.step.as_deref()).collect(),
            )?,
        })
    }
}

fn alias(a: &py::Alias) -> Alias {
    Alias { name: a.name.to_string(), asname: a.asname.as_ref().map(|n| n.to_string()) }
}

fn binop(op: &py::Operator) -> BinOp {
    match op {
        py::Operator::Add => BinOp::Add,
        py::Operator::Mod => BinOp::Mod,
        _ => BinOp::Other,
    }
}

fn with_exprs(items: &[py::WithItem]) -> Vec<&py::Expr> {
    items.iter().flat_map(|i| std::iter::once(&i.context_expr).chain(i.optional_vars.as_deref())).collect()
}

fn comprehension<'a>(elts: &[&'a py::Expr], generators: &'a [py::Comprehension]) -> Vec<&'a py::Expr> {
    let mut out: Vec<&py::Expr> = elts.to_vec();
    for g in generators {
        out.push(&g.target);
        out.push(&g.iter);
        out.extend(&g.ifs);
    }
    out
}

/// The expressions inside a match pattern (values and class names).
fn pattern_exprs<'a>(pattern: &'a py::Pattern, out: &mut Vec<&'a py::Expr>) {
    use py::Pattern as P;
    match pattern {
        P::MatchValue(p) => out.push(&p.value),
        P::MatchSingleton(_) | P::MatchStar(_) => {}
        P::MatchSequence(p) => p.patterns.iter().for_each(|p| pattern_exprs(p, out)),
        P::MatchMapping(p) => {
            out.extend(&p.keys);
            p.patterns.iter().for_each(|p| pattern_exprs(p, out));
        }
        P::MatchClass(p) => {
            out.push(&p.cls);
            p.patterns.iter().chain(&p.kwd_patterns).for_each(|p| pattern_exprs(p, out));
        }
        P::MatchAs(p) => p.pattern.iter().for_each(|p| pattern_exprs(p, out)),
        P::MatchOr(p) => p.patterns.iter().for_each(|p| pattern_exprs(p, out)),
    }
}
