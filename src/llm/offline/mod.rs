//! The offline planner: serves the request families the guest library covers without a
//! model. It reads the request's family and parameters, builds the per-property query from
//! the inspected schema, and fills a script template; the script then goes through the same
//! validate and execute stages as a model's.

mod account;
mod query;
mod questions;
mod recognise;
mod script;
mod simulation;

pub use account::Unread;
pub use query::{PortfolioQuery, QueryError, SideQuery, portfolio_query};
pub use recognise::{UNDERSTOOD, recognise};

use crate::db::inspect::Schema;
use crate::task::{TaskKind, TaskSpec};

/// The plan and script for a request.
#[derive(Debug, Clone)]
pub struct OfflinePlan {
    /// What the request asks for.
    pub spec: TaskSpec,
    /// The per-property query.
    pub query: PortfolioQuery,
    /// The script.
    pub script: String,
}

/// Why the offline planner cannot serve a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OfflineError {
    /// The request is outside the families it knows.
    #[error(
        "without a model, metaexec understands requests about a real-estate portfolio's debt coverage, and this one is not:\n{UNDERSTOOD}"
    )]
    Unrecognised,
    /// Parts of the request no reading used: answering without them would answer another
    /// question.
    #[error("without a model, metaexec did not understand part of the request:\n{}\nIt understands:\n{UNDERSTOOD}", parts.iter().map(|p| format!("  - {}", p.describe())).collect::<Vec<_>>().join("\n"))]
    NotUnderstood {
        /// The parts.
        parts: Vec<Unread>,
    },
    /// A combination the offline planner has no script for.
    #[error("without a model, metaexec cannot answer this combination: {0}")]
    Unsupported(String),
    /// The database has no table of properties.
    #[error(transparent)]
    Schema(#[from] QueryError),
}

impl OfflineError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::NotUnderstood { parts } if parts.iter().any(|p| p.name_like) => {
                "name the property as the database does (`metaexec db inspect` lists them), reword the request, \
                 or configure an OpenAI-compatible model: --llm-url http://localhost:1234/v1 --model <id>"
            }
            Self::Unrecognised | Self::NotUnderstood { .. } | Self::Unsupported(_) => {
                "for any other request, configure an OpenAI-compatible model: --llm-url http://localhost:1234/v1 \
                 --model <id> (or METAEXEC_LLM_URL and METAEXEC_MODEL, or an [llm] table in config.toml)"
            }
            Self::Schema(_) => "point --db at the portfolio database, or configure a model to write the query",
        }
    }
}

/// The per-property query's name list: the names to match a request's entities against.
pub fn names_sql(query: &PortfolioQuery) -> Option<String> {
    let column = query.name_column.as_deref()?;
    Some(format!("SELECT {} FROM {} ORDER BY 1", query::ident(column), query::ident(&query.base_table)))
}

/// Plans `request` with the database's per-property query (`portfolio_query`, built once
/// per database), its property `names` and its `schema` (for the history and loan tables).
pub fn plan(
    request: &str,
    query: Result<PortfolioQuery, QueryError>,
    names: &[String],
    schema: &Schema,
) -> Result<OfflinePlan, OfflineError> {
    plan_for(request, query, names, schema, true)
}

/// [`plan`], where a request for a web dashboard gets one only when `web` (a backend that
/// can serve it is allowed); otherwise it gets the answer a terminal shows.
pub fn plan_for(
    request: &str,
    query: Result<PortfolioQuery, QueryError>,
    names: &[String],
    schema: &Schema,
    web: bool,
) -> Result<OfflinePlan, OfflineError> {
    let reading = recognise::read(request, names, &questions::today()).ok_or(OfflineError::Unrecognised)?;
    let mut spec = reading.spec;
    let parts = account::unread(request, &spec.entities, names, &reading.words, &reading.unused_numbers);
    if !parts.is_empty() {
        return Err(OfflineError::NotUnderstood { parts });
    }
    spec.clauses = account::readings(request, &spec);
    let query = query?;
    let script = match spec.task_kind {
        TaskKind::Trend | TaskKind::LoanSizing | TaskKind::Maturities | TaskKind::HoldIrr if web && spec.wants_web => {
            return Err(OfflineError::Unsupported(format!(
                "a web dashboard of a {} question; the offline dashboard shows DSCR with a what-if form",
                spec.task_kind.as_str()
            )));
        }
        _ if web && spec.wants_web => {
            if spec.runs_scenarios() {
                return Err(OfflineError::Unsupported(format!(
                    "scenarios ({}) in a web dashboard: its what-if form sets them; ask for the dashboard alone",
                    spec.describe_scenarios()
                )));
            }
            script::dashboard_script(request, &spec, &query)
        }
        TaskKind::Trend | TaskKind::LoanSizing | TaskKind::Maturities | TaskKind::HoldIrr => {
            if spec.runs_scenarios() {
                return Err(OfflineError::Unsupported(format!(
                    "scenarios ({}) on a {} question; ask for them separately",
                    spec.describe_scenarios(),
                    spec.task_kind.as_str()
                )));
            }
            let side = match spec.task_kind {
                TaskKind::Trend => Some(query::history_query(schema, &query).ok_or_else(|| {
                    QueryError(format!(
                        "no table in the database holds a monthly history of the properties (tables: {})",
                        schema.table_names().join(", ")
                    ))
                })?),
                TaskKind::Maturities => Some(query::loans_query(schema, &query).ok_or_else(|| {
                    QueryError(format!(
                        "no table in the database has a loan maturity column (tables: {})",
                        schema.table_names().join(", ")
                    ))
                })?),
                _ => None,
            };
            script::question_script(request, &spec, &query, side.as_ref())
        }
        _ => script::script(request, &spec, &query),
    };
    Ok(OfflinePlan { spec, query, script })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests made of the planner's own words, numbers, units, punctuation and
    /// multi-byte text in every order: reading and accounting never panic (the host must
    /// survive any request).
    #[test]
    fn no_request_panics_the_planner() {
        const TOKENS: [&str; 40] = [
            "top",
            "5",
            "weakest",
            "rank",
            "by",
            "dscr",
            "noi",
            "down",
            "10%",
            "rates",
            "up",
            "200bp",
            "before",
            "2029",
            "in",
            "2028-06-30",
            "irr",
            "over",
            "7-year",
            "exit",
            "cap",
            "6.5%",
            "growth",
            "3%",
            "loan",
            "at",
            "1.3x",
            "trend",
            "monthly",
            "Lakeside",
            "Plz",
            "é",
            "—",
            "−",
            "1,000",
            ",",
            ".",
            "within",
            "years",
            "bottom",
        ];
        let names: Vec<String> = ["Lakeside Plaza", "West Oaks Mall"].map(String::from).to_vec();
        let mut state: u64 = 7;
        for _ in 0..20_000 {
            let mut request = String::new();
            for _ in 0..(state % 9 + 1) {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                request.push_str(TOKENS[(state >> 33) as usize % TOKENS.len()]);
                request.push(if state & 1 == 0 { ' ' } else { '\u{a0}' });
            }
            if let Some(reading) = recognise::read(&request, &names, "2026-12-02") {
                let _ =
                    account::unread(&request, &reading.spec.entities, &names, &reading.words, &reading.unused_numbers);
                let _ = account::readings(&request, &reading.spec);
            }
        }
    }
}
