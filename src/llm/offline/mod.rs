//! The offline planner: serves the request families the guest library covers without a
//! model. It reads the request's family and parameters, builds the per-property query from
//! the inspected schema, and fills a script template; the script then goes through the same
//! validate and execute stages as a model's.

mod query;
mod recognise;
mod script;
mod simulation;

pub use query::{PortfolioQuery, QueryError, portfolio_query};
pub use recognise::{UNDERSTOOD, recognise};

use crate::task::TaskSpec;

/// The plan and script for a request.
#[derive(Debug, Clone)]
pub struct OfflinePlan {
    /// What the request asks for.
    pub spec: TaskSpec,
    /// The query the script reads with.
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
    /// The database has no table of properties.
    #[error(transparent)]
    Schema(#[from] QueryError),
}

impl OfflineError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::Unrecognised => {
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
/// per database) and its property `names`.
pub fn plan(
    request: &str,
    query: Result<PortfolioQuery, QueryError>,
    names: &[String],
) -> Result<OfflinePlan, OfflineError> {
    let spec = recognise(request, names).ok_or(OfflineError::Unrecognised)?;
    let query = query?;
    let script = script::script(request, &spec, &query);
    Ok(OfflinePlan { spec, query, script })
}
