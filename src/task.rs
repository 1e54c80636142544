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
    /// A figure's monthly history per property (NOI, revenue, expenses, occupancy).
    Trend,
    /// The largest loan each property's NOI carries at a target DSCR.
    LoanSizing,
    /// The loans that mature before a date.
    Maturities,
    /// The unlevered IRR of holding a property for some years and selling it.
    HoldIrr,
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
            Self::Trend => "trend",
            Self::LoanSizing => "loan_sizing",
            Self::Maturities => "maturities",
            Self::HoldIrr => "hold_irr",
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

/// Scenarios generated rather than named: parameter grids and Monte Carlo draws, written
/// as `metaexec sweep` takes them, so one parser (and its errors) serves both.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SweepPlan {
    /// `KEY=START..STOP:STEP` or `KEY=V1,V2,...`; several give their cartesian product.
    pub grid: Vec<String>,
    /// How many Monte Carlo draws; 0 for none.
    pub monte_carlo: usize,
    /// The draws' seed; `None` takes 1, and the record says so.
    pub seed: Option<u64>,
    /// `KEY=normal(MEAN,SD)`, `uniform(LO,HI)`, `triangular(LO,MODE,HI)` or
    /// `lognormal(MU,SIGMA)`, one per drawn parameter.
    pub dist: Vec<String>,
}

impl SweepPlan {
    /// Whether it asks for any scenario.
    pub fn is_empty(&self) -> bool {
        self.grid.is_empty() && self.monte_carlo == 0
    }
}

/// The seed of a plan's Monte Carlo draws when it names none.
pub const DEFAULT_SEED: u64 = 1;

/// The shock parameters a scenario script reads from `metaexec.params`, in the order
/// `Scenario` lists them.
pub const SHOCK_KEYS: [&str; 5] = ["noi_change", "revenue_change", "expense_change", "vacancy_change", "rate_change"];

impl Scenario {
    /// The shocks as `(param, value)` pairs, in `SHOCK_KEYS` order.
    pub fn shocks(&self) -> [(&'static str, f64); 5] {
        [
            (SHOCK_KEYS[0], self.noi_change),
            (SHOCK_KEYS[1], self.revenue_change),
            (SHOCK_KEYS[2], self.expense_change),
            (SHOCK_KEYS[3], self.vacancy_change),
            (SHOCK_KEYS[4], self.rate_change),
        ]
    }
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

/// How the result table is ordered: "rank properties by debt yield", "top 3 by NOI".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// The result column to order by (`dscr`, `debt_yield`, `noi`, ...).
    pub by: String,
    /// Highest first.
    pub descending: bool,
    /// Keep only the first rows.
    pub limit: Option<usize>,
}

/// The loans asked about: those maturing on or after `after` (when given) and before
/// `before`, both ISO dates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaturityWindow {
    /// The first day of the window.
    pub after: Option<String>,
    /// The day after the window.
    pub before: String,
}

/// A holding period's assumptions, for the IRR of buying, holding and selling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holding {
    /// Whole years held.
    pub years: u32,
    /// NOI growth a year, as a fraction.
    pub noi_growth: f64,
    /// The going-in cap rate that prices a property without a value column.
    pub entry_cap_rate: f64,
    /// The cap rate the property sells at.
    pub exit_cap_rate: f64,
}

/// One clause of the request and what the plan made of it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClauseReading {
    /// The clause, as written.
    pub text: String,
    /// What it became: `property: West Oaks Mall`, `scenario: NOI -10%`, `threshold 1.25`;
    /// empty when it only words the request.
    pub became: Vec<String>,
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
    /// Generated scenarios (grids, Monte Carlo draws), run like the named ones.
    pub sweep: SweepPlan,
    /// Whether a web interface was asked for.
    pub wants_web: bool,
    /// Whether simulations (what-if runs) were asked for.
    pub wants_simulations: bool,
    /// The file formats asked for.
    pub exports: Vec<ExportFormat>,
    /// The plan, one short step per entry.
    pub steps: Vec<String>,
    /// What the plan assumed where the request did not say (a seed, a step, a count).
    pub assumptions: Vec<String>,
    /// The order the result table is asked in.
    pub rank: Option<Ranking>,
    /// The DSCR a loan is sized at (`loan_sizing`).
    pub target_dscr: Option<f64>,
    /// The loans asked about (`maturities`).
    pub maturities: Option<MaturityWindow>,
    /// The figure whose monthly history is asked for (`trend`): `noi`, `revenue`,
    /// `expenses` or `occupancy`.
    pub trend: Option<String>,
    /// The holding period (`hold_irr`).
    pub holding: Option<Holding>,
    /// Each clause of the request and what it became.
    pub clauses: Vec<ClauseReading>,
}

impl TaskSpec {
    /// Whether the request asks for scenarios: then the script is written for one scenario
    /// (its shocks in `metaexec.params`) and run over all of them as a sweep.
    pub fn runs_scenarios(&self) -> bool {
        !self.scenarios.is_empty() || !self.sweep.is_empty()
    }

    /// The plan as reports list it: each step, then each assumption, as `(kind, text)`
    /// with kind `step` or `assumed`.
    pub fn plan_lines(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let steps = self.steps.iter().map(|s| ("step", s.as_str()));
        steps.chain(self.assumptions.iter().map(|a| ("assumed", a.as_str())))
    }

    /// The scenarios in a few words, for prompts and scripts: `10000 Monte Carlo draws`,
    /// `a grid: noi_change=-0.3..0.1:0.05`, `4: base, NOI -10%, NOI -20%, NOI -30%`.
    pub fn describe_scenarios(&self) -> String {
        let sweep = &self.sweep;
        let named: Vec<&str> = self.scenarios.iter().map(|s| s.name.as_str()).collect();
        let named = format!("{}: {}", named.len(), named.join(", "));
        let grid = format!("a grid: {}", sweep.grid.join(" x "));
        match (sweep.monte_carlo, self.scenarios.is_empty(), sweep.grid.is_empty()) {
            (draws, _, _) if draws > 0 => format!("{draws} Monte Carlo draws"),
            (_, false, false) => format!("{named}, each over {grid}"),
            (_, true, false) => grid,
            _ => named,
        }
    }
}

/// The DSCR under which a property is at risk when the request names no threshold: the
/// lending threshold the guest library approves at.
pub const DEFAULT_AT_RISK_THRESHOLD: f64 = 1.25;

/// The JSON schema of `TaskSpec`, sent as the analyse+plan call's `response_format` so that
/// servers with structured output return a valid plan.
pub fn json_schema() -> serde_json::Value {
    let shock = serde_json::json!({"type": "number"});
    // Every string and list is bounded, so a server that enforces the schema (llama.cpp's
    // grammars) stops a small model that loops, in `goal` or by repeating a list's item,
    // before its token limit cuts the plan: the largest plan fits `AnswerBudget::PLAN`
    // (checked by a test).
    let text = |max: u32| serde_json::json!({"type": "string", "maxLength": max});
    let list = |max_items: u32, max_len: u32| serde_json::json!({"type": "array", "items": text(max_len), "maxItems": max_items});
    let choices = |names: &[&str]| serde_json::json!({"type": "array", "items": {"type": "string", "enum": names}, "maxItems": names.len()});
    serde_json::json!({
        "type": "object",
        "properties": {
            "goal": text(200),
            "task_kind": {"type": "string", "enum": [
                "portfolio_review", "property_review", "at_risk", "stress_test",
                "metrics_summary", "export", "trend", "loan_sizing", "maturities", "hold_irr", "other"
            ]},
            "entities": list(8, 60),
            "metrics": choices(&["dscr", "cap_rate", "debt_yield", "ltv"]),
            "threshold": {"type": ["number", "null"]},
            "scenarios": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "name": text(40),
                    "noi_change": shock, "revenue_change": shock, "expense_change": shock,
                    "vacancy_change": shock, "rate_change": shock
                },
                "required": ["name"]
            }, "maxItems": 8},
            "sweep": {
                "type": "object",
                "properties": {
                    "grid": list(3, 60),
                    "monte_carlo": {"type": "integer", "minimum": 0},
                    "seed": {"type": ["integer", "null"]},
                    "dist": list(3, 60)
                }
            },
            "wants_web": {"type": "boolean"},
            "wants_simulations": {"type": "boolean"},
            "exports": choices(&["csv", "xlsx"]),
            "steps": list(6, 100),
            "assumptions": list(4, 120)
        },
        "required": ["goal", "task_kind", "steps"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest JSON text a value of `schema` can be, as a server that enforces the
    /// schema lets a model write it: every property present, every list full, every string
    /// at its limit, one line break and indentation before each item.
    fn longest_json(schema: &serde_json::Value) -> usize {
        const INDENT: usize = 8;
        let kinds: Vec<&str> = match &schema["type"] {
            serde_json::Value::String(kind) => vec![kind.as_str()],
            serde_json::Value::Array(kinds) => kinds.iter().filter_map(|k| k.as_str()).collect(),
            other => panic!("a schema without a type: {other}"),
        };
        kinds
            .into_iter()
            .map(|kind| match kind {
                "object" => {
                    let properties = schema["properties"].as_object().expect("an object's properties");
                    2 + properties
                        .iter()
                        .map(|(key, value)| INDENT + key.len() + 4 + longest_json(value))
                        .sum::<usize>()
                }
                "array" => {
                    let items = schema["maxItems"].as_u64().unwrap_or_else(|| panic!("an unbounded list: {schema}"));
                    2 + items as usize * (INDENT + 1 + longest_json(&schema["items"]))
                }
                "string" => match schema["enum"].as_array() {
                    Some(names) => 2 + names.iter().map(|n| n.as_str().unwrap().len()).max().unwrap(),
                    None => {
                        2 + schema["maxLength"].as_u64().unwrap_or_else(|| panic!("an unbounded string: {schema}"))
                            as usize
                    }
                },
                // llama.cpp's grammars allow at most 16 digits either side of the point.
                "number" => 1 + 16 + 1 + 16,
                "integer" => 1 + 16,
                "boolean" => 5,
                "null" => 4,
                other => panic!("an unexpected type {other}"),
            })
            .max()
            .unwrap()
    }

    #[test]
    fn the_longest_plan_the_schema_allows_fits_the_plan_budget() {
        use crate::llm::fit::AnswerBudget;
        let chars = longest_json(&json_schema());
        // Counted as cautiously as a prompt is before the server's ratio is known.
        let tokens = chars as f64 / 3.0;
        assert!(
            tokens <= f64::from(AnswerBudget::PLAN.want),
            "the largest plan is {chars} characters, about {tokens:.0} tokens, over the plan's {} tokens",
            AnswerBudget::PLAN.want
        );
    }

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
            TaskKind::Trend,
            TaskKind::LoanSizing,
            TaskKind::Maturities,
            TaskKind::HoldIrr,
            TaskKind::Other,
        ] {
            assert!(kinds.contains(&serde_json::json!(kind.as_str())), "{kind:?}");
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
