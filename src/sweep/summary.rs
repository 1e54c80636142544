//! What a sweep adds up to: counts, verdicts, and per-property DSCR across scenarios
//! (worst case, percentiles, probability of falling below the thresholds).
//!
//! Rows are read from each scenario's main result (`metaexec.result(rows)`): a property
//! is named by `property_name` (or `property`, `name`), its coverage by `dscr`, its credit
//! verdict by `verdict`, as the guest library writes them. Scripts that emit something
//! else still get counts.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::analysis::Analysis;
use crate::result_table::Row;
use crate::scenario::{ScenarioOutcome, ScenarioStatus};

/// The summary of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Scenarios run.
    pub total: usize,
    /// Scenarios that finished.
    pub ok: usize,
    /// Scenarios that raised or hit a limit.
    pub failed: usize,
    /// Failed scenarios per error kind.
    pub failures: BTreeMap<String, usize>,
    /// Rows per verdict over every scenario (approve / review / reject), if rows carry one.
    pub verdicts: BTreeMap<String, usize>,
    /// Per property, across scenarios.
    pub properties: Vec<PropertySummary>,
    /// Break-even points and the tornado.
    #[serde(flatten)]
    pub analysis: Analysis,
    /// Set when the sweep was stopped early (Ctrl-C): every figure above covers the
    /// scenarios that finished, not the ones planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interrupted>,
}

/// How far an interrupted sweep got: `"interrupted": {"finished": 812, "planned": 10000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    /// Scenarios that finished (well or failing) and are in the results.
    pub finished: usize,
    /// Scenarios the sweep was asked to run.
    pub planned: usize,
}

/// One property's coverage across the scenarios.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertySummary {
    /// The property.
    pub property_name: String,
    /// Scenarios that reported it.
    pub scenarios: usize,
    /// The lowest DSCR seen.
    pub min_dscr: f64,
    /// The scenario where it was seen.
    pub worst_scenario: String,
    /// Mean DSCR.
    pub mean_dscr: f64,
    /// 5th, 50th and 95th percentiles.
    pub p05: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Share of scenarios with DSCR below 1.0.
    pub prob_below_1: f64,
    /// Share of scenarios with DSCR below 1.25.
    pub prob_below_1_25: f64,
}

/// One scenario in one line: what a table of scenarios shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioLine {
    /// The scenario's id.
    pub id: String,
    /// Its parameters.
    pub params: serde_json::Map<String, Value>,
    /// Finished or failed.
    pub status: ScenarioStatus,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Total NOI over total debt service (the mean DSCR when rows lack either).
    pub portfolio_dscr: Option<f64>,
    /// Properties per verdict.
    pub verdicts: BTreeMap<String, usize>,
    /// The property with the lowest DSCR.
    pub weakest: Option<PropertyDscr>,
}

/// Each outcome in one line, in the outcomes' order.
pub fn scenario_lines(outcomes: &[ScenarioOutcome]) -> Vec<ScenarioLine> {
    outcomes.iter().map(scenario_line).collect()
}

/// One outcome in one line.
pub fn scenario_line(outcome: &ScenarioOutcome) -> ScenarioLine {
    let mut verdicts = BTreeMap::new();
    let mut weakest: Option<PropertyDscr> = None;
    for row in rows(outcome) {
        if let Some(verdict) = row.get("verdict").and_then(Value::as_str) {
            *verdicts.entry(verdict.to_owned()).or_insert(0) += 1;
        }
        if let (Some(name), Some(dscr)) = (property_name(row), row.get("dscr").and_then(Value::as_f64))
            && weakest.as_ref().is_none_or(|low| dscr < low.dscr)
        {
            weakest = Some(PropertyDscr { property_name: name.to_owned(), dscr });
        }
    }
    ScenarioLine {
        id: outcome.id.clone(),
        params: outcome.params.clone(),
        status: outcome.status,
        error: outcome.error.as_ref().map(|e| format!("{}: {}", e.kind, e.message)),
        portfolio_dscr: super::analysis::portfolio_dscr(outcome),
        verdicts,
        weakest,
    }
}

/// Each property's DSCR in each scenario: the table a handful of named scenarios is read
/// from ("the portfolio under NOI -10/20/30%").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DscrMatrix {
    /// The scenario ids: the columns.
    pub scenarios: Vec<String>,
    /// Per property, in first-seen order.
    pub properties: Vec<MatrixRow>,
}

/// One property's DSCR per scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixRow {
    /// The property.
    pub property_name: String,
    /// Its DSCR in each scenario, in the matrix's column order (`None` where the scenario
    /// failed or did not report it).
    pub dscr: Vec<Option<f64>>,
}

/// A property and its DSCR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertyDscr {
    /// The property.
    pub property_name: String,
    /// Its DSCR.
    pub dscr: f64,
}

/// The DSCR of every property in every scenario.
pub fn dscr_matrix(outcomes: &[ScenarioOutcome]) -> DscrMatrix {
    let mut properties: Vec<MatrixRow> = Vec::new();
    for (column, outcome) in outcomes.iter().enumerate() {
        for row in rows(outcome) {
            let (Some(name), Some(dscr)) = (property_name(row), row.get("dscr").and_then(Value::as_f64)) else {
                continue;
            };
            let index = match properties.iter().position(|p| p.property_name == name) {
                Some(index) => index,
                None => {
                    properties.push(MatrixRow { property_name: name.to_owned(), dscr: vec![None; outcomes.len()] });
                    properties.len() - 1
                }
            };
            properties[index].dscr[column] = Some(dscr);
        }
    }
    DscrMatrix { scenarios: outcomes.iter().map(|o| o.id.clone()).collect(), properties }
}

const NAME_KEYS: [&str; 3] = ["property_name", "property", "name"];

/// The rows of a scenario's main result.
pub fn rows(outcome: &ScenarioOutcome) -> impl Iterator<Item = Row<'_>> {
    outcome.results.main_rows()
}

/// A row's property name.
pub fn property_name(row: Row<'_>) -> Option<&str> {
    NAME_KEYS.iter().find_map(|k| row.get(k).and_then(Value::as_str))
}

/// The columns of a flat table of `outcomes` (CSV, spreadsheet): the parameter names,
/// then the result-row fields that are not parameters, each in first-seen order.
pub fn columns(outcomes: &[ScenarioOutcome]) -> (Vec<String>, Vec<String>) {
    let mut param_keys: Vec<String> = Vec::new();
    let mut row_keys: Vec<String> = Vec::new();
    // Tables kept by column share their names: each set is read once.
    let mut last_names: Option<&std::sync::Arc<[String]>> = None;
    for outcome in outcomes {
        for key in outcome.params.keys() {
            if !param_keys.contains(key) {
                param_keys.push(key.clone());
            }
        }
        if let Some(names) = outcome.results.table_names() {
            if last_names.is_some_and(|last| std::sync::Arc::ptr_eq(last, names)) {
                continue;
            }
            last_names = Some(names);
        }
        for row in rows(outcome) {
            for key in row.keys() {
                if !row_keys.iter().any(|k| k == key) && !param_keys.iter().any(|k| k == key) {
                    row_keys.push(key.to_owned());
                }
            }
        }
    }
    (param_keys, row_keys)
}

/// Adds up `outcomes`; `defaults` are what the script falls back to when a parameter is
/// left out (for the analysis).
pub fn summarize(outcomes: &[ScenarioOutcome], defaults: &BTreeMap<String, f64>) -> Summary {
    // The analysis reads the same outcomes on its own: beside the per-property figures,
    // on another core.
    std::thread::scope(|scope| {
        let analysis = scope.spawn(|| super::analysis::analyze(outcomes, &[], defaults));
        let mut summary = summarize_properties(outcomes);
        summary.analysis = analysis.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        summary
    })
}

/// [`summarize`] but the analysis.
fn summarize_properties(outcomes: &[ScenarioOutcome]) -> Summary {
    let mut failures = BTreeMap::new();
    let mut verdicts = BTreeMap::new();
    // In order of first appearance, so properties keep the script's order.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut dscrs: Vec<(&str, Vec<(f64, &str)>)> = Vec::new();
    for outcome in outcomes {
        if outcome.status == ScenarioStatus::Error {
            let kind = outcome.error.as_ref().map_or_else(|| "unknown".to_owned(), |e| e.kind.to_string());
            *failures.entry(kind).or_insert(0) += 1;
            continue;
        }
        for row in rows(outcome) {
            if let Some(verdict) = row.get("verdict").and_then(Value::as_str) {
                *verdicts.entry(verdict).or_insert(0) += 1;
            }
            if let (Some(name), Some(dscr)) = (property_name(row), row.get("dscr").and_then(Value::as_f64)) {
                let i = *index.entry(name).or_insert_with(|| {
                    dscrs.push((name, Vec::new()));
                    dscrs.len() - 1
                });
                dscrs[i].1.push((dscr, &outcome.id));
            }
        }
    }
    let properties = dscrs
        .into_iter()
        .map(|(name, mut values)| {
            let n = values.len() as f64;
            let (min_dscr, worst) =
                values.iter().fold((f64::INFINITY, ""), |acc, (d, id)| if *d < acc.0 { (*d, id) } else { acc });
            let worst_scenario = worst.to_owned();
            let mean_dscr = values.iter().map(|(d, _)| d).sum::<f64>() / n;
            let below = |limit: f64| values.iter().filter(|(d, _)| *d < limit).count() as f64 / n;
            let (prob_below_1, prob_below_1_25) = (below(1.0), below(1.25));
            values.sort_by(|a, b| a.0.total_cmp(&b.0));
            let sorted: Vec<f64> = values.iter().map(|(d, _)| *d).collect();
            PropertySummary {
                property_name: name.to_owned(),
                scenarios: sorted.len(),
                min_dscr,
                worst_scenario,
                mean_dscr,
                p05: percentile(&sorted, 0.05),
                p50: percentile(&sorted, 0.50),
                p95: percentile(&sorted, 0.95),
                prob_below_1,
                prob_below_1_25,
            }
        })
        .collect();
    let failed = failures.values().sum();
    Summary {
        total: outcomes.len(),
        ok: outcomes.len() - failed,
        failed,
        failures,
        verdicts: verdicts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        properties,
        analysis: Analysis::default(),
        interrupted: None,
    }
}

/// Linear interpolation between closest ranks, as numpy's default.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = q * (n - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{ErrorKind, OutcomeError};
    use serde_json::json;

    fn outcome(id: &str, rows: Value) -> ScenarioOutcome {
        ScenarioOutcome {
            id: id.into(),
            params: Default::default(),
            status: ScenarioStatus::Ok,
            error: None,
            results: json!({ "result": rows }).as_object().unwrap().clone().into(),
            stdout: String::new(),
            logs: Vec::new(),
            wall_ms: 0.0,
            params_read: None,
        }
    }

    #[test]
    fn percentiles_match_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.5);
        assert!((percentile(&v, 0.05) - 1.15).abs() < 1e-12);
        assert!((percentile(&v, 0.95) - 3.85).abs() < 1e-12);
    }

    #[test]
    fn sums_verdicts_and_finds_the_worst_case() {
        let mut failed = outcome("c", json!([]));
        failed.status = ScenarioStatus::Error;
        failed.error = Some(OutcomeError::new(ErrorKind::Timeout, "slow"));
        let outcomes = vec![
            outcome(
                "a",
                json!([{"property_name": "P", "dscr": 1.3, "verdict": "approve"}, {"property_name": "Q", "dscr": 0.9, "verdict": "reject"}]),
            ),
            outcome("b", json!([{"property_name": "P", "dscr": 1.1, "verdict": "reject"}])),
            failed,
        ];
        let s = summarize(&outcomes, &BTreeMap::new());
        assert_eq!((s.total, s.ok, s.failed), (3, 2, 1));
        assert_eq!(s.failures["timeout"], 1);
        assert_eq!(s.verdicts["reject"], 2);
        assert_eq!(s.properties[0].property_name, "P");
        assert_eq!((s.properties[0].min_dscr, s.properties[0].worst_scenario.as_str()), (1.1, "b"));
        assert_eq!(s.properties[0].prob_below_1_25, 0.5);
        assert_eq!(s.properties[1].prob_below_1, 1.0);
    }
}
