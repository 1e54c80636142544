//! `TaskSpec`: what a request asks for, as the analyse+plan stage understood it. Both the
//! language model (through a JSON schema) and the offline planner produce it; the generate
//! stage and the report read it.

use serde::{Deserialize, Serialize};

/// The request families the guest library covers, and `other` for everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// DSCR for every property, with a portfolio summary.
    #[default]
    PortfolioReview,
    /// DSCR (and related figures) for one or a few named properties.
    PropertyReview,
    /// The properties whose DSCR is under a threshold.
    AtRisk,
    /// The portfolio under named shocks (NOI down 10/20/30 %, base/optimistic/pessimistic).
    StressTest,
    /// Cap rate, debt yield, LTV and the like per property.
    MetricsSummary,
    /// The portfolio's figures written out to CSV or XLSX.
    Export,
    /// Anything else: only a language model can write the script.
    Other,
}

impl TaskKind {
    /// The name used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PortfolioReview => "portfolio_review",
            Self::PropertyReview => "property_review",
            Self::AtRisk => "at_risk",
            Self::StressTest => "stress_test",
            Self::MetricsSummary => "metrics_summary",
            Self::Export => "export",
            Self::Other => "other",
        }
    }
}

/// A file format the user asked the results in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One CSV file per result table.
    Csv,
    /// One workbook, a sheet per result table.
    Xlsx,
}

/// One what-if scenario: shocks as the guest library's `scenarios.apply_shocks` takes them.
/// Relative changes are fractions (-0.1 = 10 % lower); `vacancy_change` and `rate_change`
/// are absolute (+0.01 = one point).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Scenario {
    /// A short label (`NOI -10%`, `optimistic`).
    pub name: String,
    /// Relative change of NOI.
    pub noi_change: f64,
    /// Relative change of revenue.
    pub revenue_change: f64,
    /// Relative change of operating expenses.
    pub expense_change: f64,
    /// Absolute change of the vacancy rate.
    pub vacancy_change: f64,
    /// Absolute change of the interest rate.
    pub rate_change: f64,
}

/// A figure the user asked for besides DSCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Debt service coverage ratio.
    Dscr,
    /// NOI / value.
    CapRate,
    /// NOI / loan amount.
    DebtYield,
    /// Loan / value.
    Ltv,
}

/// What the request asks for. Every field has a default, so a model that leaves one out
/// still produces a usable plan.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskSpec {
    /// The request restated as one sentence.
    pub goal: String,
    /// Which family the request belongs to.
    pub task_kind: TaskKind,
    /// Property names the request is about, as they are in the database (empty: all).
    pub entities: Vec<String>,
    /// The figures asked for (DSCR is always computed).
    pub metrics: Vec<Metric>,
    /// The DSCR under which a property counts as at risk.
    pub threshold: Option<f64>,
    /// The scenarios asked for; empty when none were.
    pub scenarios: Vec<Scenario>,
    /// Whether a web interface was asked for.
    pub wants_web: bool,
    /// Whether simulations (what-if runs) were asked for.
    pub wants_simulations: bool,
    /// The file formats asked for.
    pub exports: Vec<ExportFormat>,
    /// The plan, one short step per entry.
    pub steps: Vec<String>,
}

/// The DSCR under which a property is at risk when the request names no threshold: the
/// lending threshold the guest library approves at.
pub const DEFAULT_AT_RISK_THRESHOLD: f64 = 1.25;

/// The JSON schema of `TaskSpec`, sent as the analyse+plan call's `response_format` so that
/// servers with structured output return a valid plan.
pub fn json_schema() -> serde_json::Value {
    let shock = serde_json::json!({"type": "number"});
    serde_json::json!({
        "type": "object",
        "properties": {
            "goal": {"type": "string"},
            "task_kind": {"type": "string", "enum": [
                "portfolio_review", "property_review", "at_risk", "stress_test",
                "metrics_summary", "export", "other"
            ]},
            "entities": {"type": "array", "items": {"type": "string"}},
            "metrics": {"type": "array", "items": {"type": "string", "enum": ["dscr", "cap_rate", "debt_yield", "ltv"]}},
            "threshold": {"type": ["number", "null"]},
            "scenarios": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "noi_change": shock, "revenue_change": shock, "expense_change": shock,
                    "vacancy_change": shock, "rate_change": shock
                },
                "required": ["name"]
            }},
            "wants_web": {"type": "boolean"},
            "wants_simulations": {"type": "boolean"},
            "exports": {"type": "array", "items": {"type": "string", "enum": ["csv", "xlsx"]}},
            "steps": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["goal", "task_kind", "steps"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_plan_fills_in_defaults() {
        let spec: TaskSpec = serde_json::from_str(
            r#"{"goal": "g", "task_kind": "at_risk", "scenarios": [{"name": "s", "noi_change": -0.1}]}"#,
        )
        .unwrap();
        assert_eq!(spec.task_kind, TaskKind::AtRisk);
        assert_eq!(spec.scenarios[0].noi_change, -0.1);
        assert_eq!(spec.scenarios[0].rate_change, 0.0);
        assert!(spec.steps.is_empty() && spec.threshold.is_none());
    }

    #[test]
    fn the_schema_lists_every_task_kind() {
        let schema = json_schema();
        let kinds = schema["properties"]["task_kind"]["enum"].as_array().unwrap();
        for kind in [
            TaskKind::PortfolioReview,
            TaskKind::PropertyReview,
            TaskKind::AtRisk,
            TaskKind::StressTest,
            TaskKind::MetricsSummary,
            TaskKind::Export,
            TaskKind::Other,
        ] {
            assert!(kinds.contains(&serde_json::json!(kind.as_str())), "{kind:?}");
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
