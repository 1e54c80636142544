//! The validator's own syntax tree: the parts of Python the rules look at, in types this
//! crate owns. `parse` lowers the third-party parser's tree into it, so no rule depends on
//! that crate (unmaintained, and replaceable by any parser that can fill these types).
//!
//! The tree keeps what the rules need by name (imports, assignments, calls, attributes,
//! strings and how they are built, `try` handlers) and folds everything else into
//! `Other` nodes that still carry their children, so a walk sees every expression.

/// A byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// The first byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// A parsed script.
#[derive(Debug, Default)]
pub struct Module {
    /// Its top-level statements.
    pub body: Vec<Stmt>,
}

/// A statement and where it is.
#[derive(Debug)]
pub struct Stmt {
    /// Where the statement is.
    pub span: Span,
    /// What it is.
    pub kind: StmtKind,
}

/// The statements the rules tell apart.
#[derive(Debug)]
pub enum StmtKind {
    /// `import a.b as c, d`.
    Import(Vec<Alias>),
    /// `from module import a as b`; `level` counts the leading dots.
    ImportFrom {
        /// The module, absent for `from . import x`.
        module: Option<String>,
        /// The relative level (0 for an absolute import).
        level: u32,
        /// The imported names.
        names: Vec<Alias>,
    },
    /// `a = b = value`, an annotated assignment with a value, or `a += value` (as
    /// `a = a + value`).
    Assign {
        /// The targets.
        targets: Vec<Expr>,
        /// The assigned value.
        value: Expr,
    },
    /// A `def` or `async def`.
    FunctionDef {
        /// The function's name.
        name: String,
        /// Decorators, parameter defaults and annotations.
        exprs: Vec<Expr>,
        /// The body.
        body: Vec<Stmt>,
    },
    /// `try` (and `try`/`except*`).
    Try {
        /// The guarded block.
        body: Vec<Stmt>,
        /// The `except` clauses.
        handlers: Vec<Handler>,
        /// The `else` and `finally` blocks.
        rest: Vec<Vec<Stmt>>,
    },
    /// An expression on its own line.
    Expr(Expr),
    /// Any other statement: its expressions and nested blocks, in source order.
    Other {
        /// The statement's expressions.
        exprs: Vec<Expr>,
        /// Its blocks (a class body, loop and branch bodies, `with` bodies, match cases).
        bodies: Vec<Vec<Stmt>>,
    },
}

/// One name of an import.
#[derive(Debug)]
pub struct Alias {
    /// The dotted name imported.
    pub name: String,
    /// The `as` name, if any.
    pub asname: Option<String>,
}

/// An `except` clause.
#[derive(Debug)]
pub struct Handler {
    /// The exception type expression, absent for a bare `except:`.
    pub type_: Option<Expr>,
    /// The clause's block.
    pub body: Vec<Stmt>,
}

/// An expression and where it is.
#[derive(Debug)]
pub struct Expr {
    /// Where the expression is.
    pub span: Span,
    /// What it is.
    pub kind: ExprKind,
}

/// The expressions the rules tell apart.
#[derive(Debug)]
pub enum ExprKind {
    /// A name.
    Name(String),
    /// `value.attr`.
    Attribute {
        /// The object.
        value: Box<Expr>,
        /// The attribute's name.
        attr: String,
    },
    /// `func(args, name=value)`.
    Call {
        /// The called expression.
        func: Box<Expr>,
        /// Positional arguments (a `*args` argument is an `Other` wrapping it).
        args: Vec<Expr>,
        /// Keyword arguments.
        keywords: Vec<Keyword>,
    },
    /// A string literal (implicitly concatenated literals are one).
    Str(String),
    /// An f-string: literal parts as `Str`, replacement fields as their expressions.
    FString(Vec<Expr>),
    /// A binary operation.
    BinOp {
        /// The operator, as far as the rules care.
        op: BinOp,
        /// The left operand.
        left: Box<Expr>,
        /// The right operand.
        right: Box<Expr>,
    },
    /// `value[index]`.
    Subscript {
        /// The subscripted object.
        value: Box<Expr>,
        /// The index expression.
        index: Box<Expr>,
    },
    /// A dict display; `None` keys are `**spread` entries.
    Dict {
        /// The keys.
        keys: Vec<Option<Expr>>,
        /// The values, paired with `keys`.
        values: Vec<Expr>,
    },
    /// Any other expression, with its sub-expressions in source order.
    Other(Vec<Expr>),
}

/// Binary operators, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`.
    Add,
    /// `%`.
    Mod,
    /// Any other operator.
    Other,
}

/// A keyword argument; `name` is `None` for `**kwargs`.
#[derive(Debug)]
pub struct Keyword {
    /// The keyword.
    pub name: Option<String>,
    /// The argument.
    pub value: Expr,
}

impl Expr {
    /// The expression's direct children, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Name(_) | ExprKind::Str(_) => Vec::new(),
            ExprKind::Attribute { value, .. } => vec![value],
            ExprKind::Call { func, args, keywords } => {
                let mut out: Vec<&Expr> = vec![func];
                out.extend(args);
                out.extend(keywords.iter().map(|k| &k.value));
                out
            }
            ExprKind::FString(parts) | ExprKind::Other(parts) => parts.iter().collect(),
            ExprKind::BinOp { left, right, .. } => vec![left, right],
            ExprKind::Subscript { value, index } => vec![value, index],
            ExprKind::Dict { keys, values } => {
                let mut out = Vec::with_capacity(keys.len() + values.len());
                for (key, value) in keys.iter().zip(values) {
                    out.extend(key.iter());
                    out.push(value);
                }
                out
            }
        }
    }

    /// The string, when the expression is a plain string literal.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl Stmt {
    /// The statement's own expressions (not those of nested statements).
    pub fn exprs(&self) -> Vec<&Expr> {
        match &self.kind {
            StmtKind::Import(_) | StmtKind::ImportFrom { .. } => Vec::new(),
            StmtKind::Assign { targets, value } => targets.iter().chain(std::iter::once(value)).collect(),
            StmtKind::FunctionDef { exprs, .. } | StmtKind::Other { exprs, .. } => exprs.iter().collect(),
            StmtKind::Try { handlers, .. } => handlers.iter().filter_map(|h| h.type_.as_ref()).collect(),
            StmtKind::Expr(expr) => vec![expr],
        }
    }

    /// The statement's nested blocks.
    pub fn bodies(&self) -> Vec<&[Stmt]> {
        match &self.kind {
            StmtKind::FunctionDef { body, .. } => vec![body],
            StmtKind::Try { body, handlers, rest } => {
                let mut out: Vec<&[Stmt]> = vec![body];
                out.extend(handlers.iter().map(|h| h.body.as_slice()));
                out.extend(rest.iter().map(Vec::as_slice));
                out
            }
            StmtKind::Other { bodies, .. } => bodies.iter().map(Vec::as_slice).collect(),
            _ => Vec::new(),
        }
    }
}

impl Module {
    /// Every statement, nested ones included, in source order.
    pub fn statements(&self) -> Vec<&Stmt> {
        let mut out = Vec::new();
        let mut stack: Vec<&Stmt> = self.body.iter().rev().collect();
        while let Some(stmt) = stack.pop() {
            out.push(stmt);
            for body in stmt.bodies().into_iter().rev() {
                stack.extend(body.iter().rev());
            }
        }
        out
    }
}

/// Every expression of `statements` (as [`Module::statements`] lists them), nested ones
/// included, parents before children. Iterative, so a deeply nested expression cannot
/// overflow the stack here.
pub fn expressions<'a>(statements: &[&'a Stmt]) -> Vec<&'a Expr> {
    let mut out = Vec::new();
    for stmt in statements {
        let mut stack: Vec<&Expr> = stmt.exprs().into_iter().rev().collect();
        while let Some(expr) = stack.pop() {
            out.push(expr);
            stack.extend(expr.children().into_iter().rev());
        }
    }
    out
}
