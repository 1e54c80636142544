//! The script validator: the early, explainable check that catches what a reviewer would
//! reject before anything runs, and feeds precise findings back to the model that wrote
//! the script. The sandbox stays the security boundary; this is the first filter.
//!
//! [`validate`] parses the script (`parse`, the only user of the third-party parser),
//! runs every rule of [`rules::RULES`] on the tree, checks literal SQL against the
//! database's tables, chooses the backend from the imports, and scores the result from 0
//! to 1 as the original validator did (threshold 0.7): any error, or a score under the
//! threshold, rejects; warnings alone warn.
//!
//! Syntax newer than the parser knows is not held against a script: when the parser fails
//! and CPython 3.14 itself (asked through a [`SyntaxOracle`], the sandboxed interpreter)
//! compiles the script, the failure becomes a warning, the lines the parser cannot read
//! are set aside, and the rules run on the rest.

pub mod ast;
pub mod backend;
mod lines;
pub mod parse;
pub mod render;
pub mod rules;
pub mod semantic;
pub mod sql;
pub mod suggest;
pub mod tables;

use serde::{Deserialize, Serialize};

pub use backend::{Backend, BackendChoice, BackendRequest};
pub use lines::LineIndex;
pub use tables::{TableColumns, Tables};

use rules::{Context, Hit, RULES, Rule};

/// The default score under which a script is rejected.
pub const DEFAULT_THRESHOLD: f64 = 0.7;
/// Scripts larger than this are refused unread.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;
/// How many unreadable lines are set aside before giving up on a script CPython accepts.
const MAX_SET_ASIDE: usize = 32;
/// The validation thread's stack: deep (but legal) nesting recurses in the parser.
const STACK_BYTES: usize = 256 << 20;

/// The syntax finding's code (not a rule: it decides whether rules can run at all).
pub const SYNTAX_CODE: &str = "MX000";
const SYNTAX_NAME: &str = "syntax-error";

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Rejects the script.
    Error,
    /// Lowers the score; the script may run.
    Warning,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// The validator's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No findings.
    Pass,
    /// Warnings only, score at or above the threshold: the script may run.
    Warn,
    /// An error, or a score under the threshold: the script must not run as is.
    Reject,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Reject => "reject",
        })
    }
}

/// How far the script could be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Syntax {
    /// Parsed; every rule ran on the whole script.
    Ok,
    /// CPython accepts syntax the parser does not; the rules ran on the lines it could read.
    NewerThanParser,
    /// Not valid Python; no rule ran.
    Invalid,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule's code (`MX001`).
    pub code: String,
    /// The rule's name (`dynamic-code`).
    pub name: String,
    /// How serious it is.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to do instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The 1-based line.
    pub line: u32,
    /// The 1-based column, in characters.
    pub column: u32,
    /// The line the finding ends on.
    pub end_line: u32,
    /// The column it ends at (exclusive).
    pub end_column: u32,
    /// The text of `line`.
    pub source_line: String,
}

/// Everything the validator says about a script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The script's file name, as given.
    pub file: String,
    /// The decision.
    pub verdict: Verdict,
    /// 1 minus the findings' penalties, at least 0.
    pub score: f64,
    /// The score under which the script is rejected.
    pub threshold: f64,
    /// How far the script parsed.
    pub syntax: Syntax,
    /// Where the script should run.
    pub backend: BackendChoice,
    /// The findings, by line.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The findings that reject the script.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Error)
    }
}

/// CPython's own opinion of a script's syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiled {
    /// `compile()` accepted it.
    Ok,
    /// `compile()` raised `SyntaxError`.
    SyntaxError {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// CPython's message.
        message: String,
    },
}

/// Asks CPython whether a script compiles: the sandboxed interpreter in the product, an
/// answer from a table in tests.
pub trait SyntaxOracle: Sync {
    /// Compiles `source` as `file_name`; `Err` when CPython could not be asked.
    fn compile(&self, source: &str, file_name: &str) -> Result<Compiled, String>;
}

/// What to validate against.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// The script's file name, for messages.
    pub file_name: &'a str,
    /// The database's tables, for the SQL check; `None` skips it.
    pub tables: Option<&'a Tables>,
    /// The backend asked for.
    pub backend: BackendRequest,
    /// The score under which a script is rejected.
    pub threshold: f64,
    /// CPython, for syntax the parser does not know.
    pub oracle: Option<&'a dyn SyntaxOracle>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            file_name: "script.py",
            tables: None,
            backend: BackendRequest::Auto,
            threshold: DEFAULT_THRESHOLD,
            oracle: None,
        }
    }
}

/// Where `source` runs when `request` is asked for: the validator's backend choice
/// alone, for callers that have checked the script already or only route it.
pub fn choose_backend(source: &str, file_name: &str, request: BackendRequest) -> BackendChoice {
    validate(source, &Options { file_name, backend: request, ..Options::default() }).backend
}

/// Validates a script. Never panics on any input and never fails: a script that cannot
/// be read is a finding like any other.
pub fn validate(source: &str, options: &Options<'_>) -> Report {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("metaexec-validate".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, || validate_here(source, options));
        match worker {
            Ok(handle) => handle.join().unwrap_or_else(|_| internal_failure(source, options)),
            // No thread to be had: validate on this one (the stack is then the caller's).
            Err(_) => validate_here(source, options),
        }
    })
}

/// A report for the impossible case of a rule panicking: the script is rejected, with a
/// message that says the validator failed, not the script.
fn internal_failure(source: &str, options: &Options<'_>) -> Report {
    let finding = syntax_finding(
        &LineIndex::new(source),
        0,
        Severity::Error,
        "the validator failed on this script (a bug in metaexec); it was not checked".into(),
        None,
    );
    finish(options, Syntax::Invalid, backend::choose_empty(options.backend), vec![finding])
}

fn validate_here(source: &str, options: &Options<'_>) -> Report {
    let index = LineIndex::new(source);
    if source.len() > MAX_SOURCE_BYTES {
        let message =
            format!("the script is {} bytes; scripts over {MAX_SOURCE_BYTES} bytes are not checked", source.len());
        let finding = syntax_finding(&index, 0, Severity::Error, message, Some("split the work into smaller scripts"));
        return finish(options, Syntax::Invalid, backend::choose_empty(options.backend), vec![finding]);
    }
    let (module, syntax, mut findings) = match parse::parse(source) {
        Ok(module) => (module, Syntax::Ok, Vec::new()),
        Err(error) => match options.oracle.map(|o| o.compile(source, options.file_name)) {
            Some(Ok(Compiled::Ok)) => set_aside(source, &index, error),
            Some(Ok(Compiled::SyntaxError { line, column, message })) => {
                let offset = index.offset(line, column);
                let finding = syntax_finding(&index, offset, Severity::Error, message, None);
                return finish(options, Syntax::Invalid, backend::choose_empty(options.backend), vec![finding]);
            }
            Some(Err(_)) | None => {
                let finding = syntax_finding(&index, error.offset, Severity::Error, error.message, None);
                return finish(options, Syntax::Invalid, backend::choose_empty(options.backend), vec![finding]);
            }
        },
    };
    let statements = module.statements();
    let expressions = ast::expressions(&statements);
    let semantic = semantic::Semantic::new(&statements);
    let cx = Context::new(semantic, statements, expressions, options.tables, options.backend);
    for rule in RULES {
        let mut hits = Vec::new();
        (rule.check)(&cx, &mut hits);
        findings.extend(hits.into_iter().map(|hit| finding(rule, hit, &index)));
    }
    finish(options, syntax, cx.backend, findings)
}

/// The parser failed where CPython did not: set the unreadable lines aside (each replaced
/// by a same-length placeholder statement, so offsets stay true) until the rest parses.
fn set_aside(source: &str, index: &LineIndex<'_>, first: parse::SyntaxError) -> (ast::Module, Syntax, Vec<Finding>) {
    let mut text = source.to_string();
    let mut lines = Vec::new();
    let mut error = first;
    let module = loop {
        let line = index.position(error.offset).0;
        if lines.len() >= MAX_SET_ASIDE || lines.contains(&line) || !index.blank_line(&mut text, line) {
            break None;
        }
        lines.push(line);
        match parse::parse(&text) {
            Ok(module) => break Some(module),
            Err(next) => error = next,
        }
    };
    let listed = lines.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let (module, message) = match module {
        Some(module) => (
            module,
            format!(
                "CPython 3.14 accepts syntax the validator's parser does not know; line{} {listed} {} not checked",
                if lines.len() == 1 { "" } else { "s" },
                if lines.len() == 1 { "was" } else { "were" }
            ),
        ),
        None => (
            ast::Module::default(),
            "CPython 3.14 accepts syntax the validator's parser does not know; the script was not checked".to_string(),
        ),
    };
    let offset = index.offset(lines.first().copied().unwrap_or(1), 1);
    let hint = Some("older syntax (e.g. no nested same-quote f-strings) lets every rule check the script");
    let finding = syntax_finding(index, offset, Severity::Warning, message, hint);
    (module, Syntax::NewerThanParser, vec![finding])
}

fn syntax_finding(
    index: &LineIndex<'_>,
    offset: u32,
    severity: Severity,
    message: String,
    hint: Option<&str>,
) -> Finding {
    let span = ast::Span { start: offset, end: offset };
    let (line, column) = index.position(offset);
    Finding {
        code: SYNTAX_CODE.into(),
        name: SYNTAX_NAME.into(),
        severity,
        message,
        hint: hint.map(str::to_string),
        line,
        column,
        end_line: line,
        end_column: column + 1,
        source_line: index.line_text(line).to_string(),
    }
    .with_end(index, span)
}

fn finding(rule: &Rule, hit: Hit, index: &LineIndex<'_>) -> Finding {
    let (line, column) = index.position(hit.span.start);
    // A finding about the whole script points at no line in particular.
    let source_line = if hit.span == rules::FILE_SPAN { String::new() } else { index.line_text(line).to_string() };
    Finding {
        code: rule.code.into(),
        name: rule.name.into(),
        severity: rule.severity,
        message: hit.message,
        hint: hit.hint,
        line,
        column,
        end_line: line,
        end_column: column,
        source_line,
    }
    .with_end(index, hit.span)
}

impl Finding {
    fn with_end(mut self, index: &LineIndex<'_>, span: ast::Span) -> Self {
        let (line, column) = index.position(span.end.max(span.start));
        (self.end_line, self.end_column) =
            if span.end > span.start { (line, column) } else { (self.line, self.column + 1) };
        self
    }
}

/// Sorts and de-duplicates the findings, then scores them.
fn finish(options: &Options<'_>, syntax: Syntax, backend: BackendChoice, mut findings: Vec<Finding>) -> Report {
    findings.sort_by(|a, b| (a.line, a.column, &a.code, &a.message).cmp(&(b.line, b.column, &b.code, &b.message)));
    findings.dedup_by(|a, b| a.line == b.line && a.code == b.code && a.message == b.message);
    let penalty: f64 = findings.iter().map(penalty).sum();
    let score = ((1.0 - penalty).max(0.0) * 100.0).round() / 100.0;
    let verdict = if findings.iter().any(|f| f.severity == Severity::Error) || score < options.threshold {
        Verdict::Reject
    } else if findings.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Warn
    };
    Report {
        file: options.file_name.to_string(),
        verdict,
        score,
        threshold: options.threshold,
        syntax,
        backend,
        findings,
    }
}

fn penalty(finding: &Finding) -> f64 {
    match rules::rule(&finding.code) {
        Some(rule) => rule.penalty,
        None if finding.severity == Severity::Error => 1.0,
        None => 0.05,
    }
}
