//! The offline planner's script: a template filled with the plan's parameters and the
//! per-property query, written against the guest library like a model's script would be.

use minijinja::context;

use super::query::{PortfolioQuery, SideQuery};
use crate::llm::prompts;
use crate::task::{Metric, SHOCK_KEYS, TaskSpec};

/// The script for `spec`, reading with `query`.
pub fn script(request: &str, spec: &TaskSpec, query: &PortfolioQuery) -> String {
    let mut columns = vec!["property_name", "noi", "annual_debt_service", "dscr", "verdict"];
    if spec.rank.is_some() {
        columns.insert(0, "rank");
    }
    let mut missing = Vec::new();
    for metric in &spec.metrics {
        let key = match metric {
            Metric::Dscr => continue,
            Metric::CapRate => "cap_rate",
            Metric::DebtYield => "debt_yield",
            Metric::Ltv => "ltv",
        };
        columns.push(key);
        missing.push(key);
    }
    let ctx = context! {
        threshold => spec.threshold.map(py_float),
        sweep => spec.runs_scenarios(),
        // `scenarios.shocked_metrics` gives the DSCR columns only.
        fast_scenarios => spec.runs_scenarios() && missing.is_empty(),
        scenarios => spec.describe_scenarios(),
        shock_keys => format!("({})", SHOCK_KEYS.map(py_str).join(", ")),
        columns => format!("({},)", columns.iter().map(|c| py_str(c)).collect::<Vec<_>>().join(", ")),
        missing_metrics => (!missing.is_empty()).then(|| py_list(&missing)),
        rank_args => rank_context(spec),
        ..common_context(request, spec, query)
    };
    let mut text = prompts::render("offline_script", ctx);
    text.push('\n');
    text
}

/// What the per-property templates share: the docstring and the query.
fn common_context(request: &str, spec: &TaskSpec, query: &PortfolioQuery) -> minijinja::Value {
    context! {
        goal => docstring_safe(&spec.goal),
        request_lines => wrap(&docstring_safe(request), 88),
        base_table => query.base_table,
        joined => joined_tables(query),
        sql_pieces => sql_pieces(&query.sql),
        entities => (!spec.entities.is_empty()).then(|| py_list(&spec.entities)),
    }
}

/// The tables the per-property query joins to its base table, for the script's comment.
fn joined_tables(query: &PortfolioQuery) -> String {
    let joined: Vec<&str> = query
        .notes
        .iter()
        .filter_map(|n| n.strip_prefix('`').and_then(|n| n.split_once("` joined")).map(|(t, _)| t))
        .collect();
    joined.join(", ")
}

/// The web dashboard a request for one gets: a WSGI app over the same per-property query
/// (the DSCR table in colour bands and a what-if form posting to the app itself), served
/// by the Docker backend.
pub fn dashboard_script(request: &str, spec: &TaskSpec, query: &PortfolioQuery) -> String {
    let mut text = prompts::render("offline_dashboard", common_context(request, spec, query));
    text.push('\n');
    text
}

/// The ranking as the templates pass it to `portfolio.rank` after the rows: the column,
/// the order and the count, as Python.
fn rank_context(spec: &TaskSpec) -> Option<String> {
    spec.rank.as_ref().map(|r| {
        let limit = r.limit.map(|n| format!(", limit={n}")).unwrap_or_default();
        format!("{}, descending={}{limit}", py_str(&r.by), if r.descending { "True" } else { "False" })
    })
}

/// The script for an everyday question beyond DSCR (trend, loan sizing, maturities, IRR):
/// `side` is the history or loan query those read instead of the per-property one.
pub fn question_script(request: &str, spec: &TaskSpec, query: &PortfolioQuery, side: Option<&SideQuery>) -> String {
    let (sql, note) = match side {
        Some(side) => (side.sql.as_str(), format!("Rows of {}, each with its property's name.", side.table)),
        None => (query.sql.as_str(), format!("One row per property: {} with its finance tables.", query.base_table)),
    };
    let holding = spec.holding.as_ref();
    let window = spec.maturities.as_ref();
    let ctx = context! {
        kind => spec.task_kind.as_str(),
        goal => docstring_safe(&spec.goal),
        request_lines => wrap(&docstring_safe(request), 88),
        assumptions => spec.assumptions.iter().map(|a| docstring_safe(a)).collect::<Vec<_>>(),
        query_note => note,
        sql_pieces => sql_pieces(sql),
        entities => (!spec.entities.is_empty()).then(|| py_list(&spec.entities)),
        target_dscr => spec.target_dscr.map(py_float),
        after => window.map(|w| w.after.as_deref().map_or_else(|| "None".to_owned(), py_str)),
        before => window.map(|w| py_str(&w.before)),
        figure => spec.trend.as_deref().map(py_str),
        years => holding.map(|h| h.years),
        growth => holding.map(|h| py_float(h.noi_growth)),
        entry_cap => holding.map(|h| py_float(h.entry_cap_rate)),
        exit_cap => holding.map(|h| py_float(h.exit_cap_rate)),
        rank_args => rank_context(spec),
    };
    let mut text = prompts::render("offline_question", ctx);
    text.push('\n');
    text
}

/// Text that can sit inside the script's docstring: no closing triple quote, no escapes.
fn docstring_safe(text: &str) -> String {
    text.replace("\"\"\"", "'''").replace('\\', "/")
}

/// A Python string literal: JSON's escaping is valid Python.
fn py_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

fn py_list<S: AsRef<str>>(items: &[S]) -> String {
    format!("[{}]", items.iter().map(|s| py_str(s.as_ref())).collect::<Vec<_>>().join(", "))
}

/// A float as Python reads it back exactly, without binary noise (`-0.1`, not `-0.1000000001`).
fn py_float(x: f64) -> String {
    let rounded = (x * 1e10).round() / 1e10;
    let text = format!("{rounded}");
    if text.contains(['.', 'e', 'i', 'N']) { text } else { format!("{text}.0") }
}

/// The SQL as adjacent Python string literals, broken before its clauses so the script
/// reads like hand-written code.
fn sql_pieces(sql: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in sql.split(' ') {
        let clause = (matches!(word, "FROM" | "LEFT" | "WHERE" | "ORDER")
            || (word == "JOIN" && !current.ends_with("LEFT")))
            && !current.is_empty();
        if clause || current.len() + word.len() > 80 {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() || !pieces.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    pieces.push(current);
    pieces.iter().map(|p| py_str(p)).collect()
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_and_sql_are_python_literals() {
        assert_eq!(
            (py_float(-0.1), py_float(2.0), py_float(0.30000000000000004)),
            ("-0.1".into(), "2.0".into(), "0.3".into())
        );
        let pieces = sql_pieces("SELECT a, b FROM t x LEFT JOIN u y ON y.id = x.id ORDER BY x.id");
        assert_eq!(
            pieces,
            ["\"SELECT a, b\"", "\" FROM t x\"", "\" LEFT JOIN u y ON y.id = x.id\"", "\" ORDER BY x.id\""]
        );
    }
}
