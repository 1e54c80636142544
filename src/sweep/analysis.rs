//! What the scenarios say together: where each property (and the portfolio) crosses the
//! DSCR thresholds as one parameter moves, and which parameter moves the portfolio most.
//!
//! Both read one-dimensional slices of the sweep: the scenarios in which every other
//! numeric parameter sits at its base value (the value nearest zero, since parameters are
//! shocks). A break-even point is first interpolated linearly between the two scenarios
//! that straddle the threshold (exact for NOI shocks, where DSCR is linear); [`super::bisect`]
//! then narrows that bracket by running the script at its midpoints, so that curved
//! responses (rate shocks) are found to 0.1 % whatever the grid's step.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::summary::{property_name, rows};
use crate::scenario::{ScenarioOutcome, ScenarioStatus};

/// The thresholds break-even points are reported for: the documents' "DSCR 1.0" (cash
/// flow covers debt service) and "1.25" (the approval line).
pub const THRESHOLDS: [f64; 2] = [1.0, 1.25];

/// Where one series crosses one threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakEven {
    /// The property, or `portfolio`.
    pub property_name: String,
    /// The parameter moved.
    pub param: String,
    /// The DSCR threshold.
    pub threshold: f64,
    /// The parameter value at the crossing, rounded to 0.001 (0.1 %), if it is in range.
    pub value: Option<f64>,
    /// `crosses`, `always_above` or `always_below` over the swept range.
    pub status: &'static str,
    /// The swept range of the parameter.
    pub range: [f64; 2],
    /// Whether DSCR rises with the parameter over that range (NOI shocks) or falls
    /// (rate shocks): it says on which side of the range a crossing outside it lies.
    #[serde(skip)]
    pub rising: bool,
    /// The two points, `(param value, DSCR)`, that straddle the threshold.
    #[serde(skip)]
    pub bracket: Option<[(f64, f64); 2]>,
    /// Scenarios run to narrow the bracket by bisection (0: interpolated on the grid).
    pub bisection_runs: usize,
}

impl BreakEven {
    /// Takes a narrower bracket and interpolates the crossing in it.
    pub fn narrow(&mut self, bracket: [(f64, f64); 2]) {
        let [(x1, d1), (x2, d2)] = bracket;
        let x = if d1 == d2 { x1 } else { x1 + (self.threshold - d1) * (x2 - x1) / (d2 - d1) };
        self.value = Some((x * 1000.0).round() / 1000.0);
        self.bracket = Some(bracket);
    }

    /// The point as people read it: `-17.4%`, or on which side of the swept range it
    /// lies (`below -30%`, `above +10%`).
    pub fn label(&self) -> String {
        let above_range = (self.status == "always_above") != self.rising;
        match self.value {
            Some(v) => format!("{:+.1}%", v * 100.0),
            None if above_range => format!("above {:+.0}%", self.range[1] * 100.0),
            None => format!("below {:+.0}%", self.range[0] * 100.0),
        }
    }
}

/// How much one parameter moves the portfolio's DSCR over its swept range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    /// The parameter.
    pub param: String,
    /// Its lowest and highest swept values.
    pub low_value: f64,
    /// Highest swept value.
    pub high_value: f64,
    /// Portfolio DSCR at the lowest value.
    pub dscr_at_low: f64,
    /// Portfolio DSCR at the highest value.
    pub dscr_at_high: f64,
    /// `|dscr_at_high - dscr_at_low|`; the tornado is sorted by it.
    pub swing: f64,
}

/// Break-even points and sensitivities of a sweep.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Analysis {
    /// Per varied parameter, property (and the portfolio) and threshold.
    pub break_even: Vec<BreakEven>,
    /// Widest swing first.
    pub sensitivity: Vec<Sensitivity>,
    /// The params of the slices' base scenario: every numeric param at its base.
    #[serde(skip)]
    pub base_params: serde_json::Map<String, Value>,
}

/// Analyses `outcomes` (in any order).
pub fn analyze(outcomes: &[ScenarioOutcome]) -> Analysis {
    let ok: Vec<&ScenarioOutcome> = outcomes.iter().filter(|o| o.status == ScenarioStatus::Ok).collect();
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for outcome in &ok {
        for (key, value) in &outcome.params {
            if let Some(x) = value.as_f64() {
                values.entry(key.clone()).or_default().push(x);
            }
        }
    }
    let bases: BTreeMap<&str, f64> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().copied().fold(f64::INFINITY, |b, x| if x.abs() < b.abs() { x } else { b })))
        .collect();
    let mut analysis = Analysis::default();
    if let Some(first) = ok.first() {
        analysis.base_params = first.params.clone();
        for (key, base) in &bases {
            analysis.base_params.insert((*key).to_owned(), Value::from(*base));
        }
    }
    for (param, swept) in &values {
        let mut distinct = swept.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        if distinct.len() < 2 {
            continue;
        }
        // The slice: every other parameter at its base.
        let mut slice: Vec<(f64, &ScenarioOutcome)> = ok
            .iter()
            .filter(|o| {
                o.params.iter().all(|(k, v)| k == param || v.as_f64().is_none_or(|x| bases.get(k.as_str()) == Some(&x)))
            })
            .filter_map(|o| Some((o.params.get(param)?.as_f64()?, *o)))
            .collect();
        slice.sort_by(|a, b| a.0.total_cmp(&b.0));
        slice.dedup_by(|a, b| a.0 == b.0);
        if slice.len() < 2 {
            continue;
        }
        for (name, series) in series(&slice) {
            for threshold in THRESHOLDS {
                analysis.break_even.push(crossing(&name, param, threshold, &series));
            }
        }
        if let (Some(low), Some(high)) = (slice.first(), slice.last())
            && let (Some(dscr_at_low), Some(dscr_at_high)) = (portfolio_dscr(low.1), portfolio_dscr(high.1))
        {
            analysis.sensitivity.push(Sensitivity {
                param: param.clone(),
                low_value: low.0,
                high_value: high.0,
                dscr_at_low,
                dscr_at_high,
                swing: (dscr_at_high - dscr_at_low).abs(),
            });
        }
    }
    analysis.sensitivity.sort_by(|a, b| b.swing.total_cmp(&a.swing));
    analysis
}

/// Per property (in first-seen order), then `portfolio`: `(param value, DSCR)` points.
fn series(slice: &[(f64, &ScenarioOutcome)]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut portfolio = Vec::new();
    for (x, outcome) in slice {
        for row in rows(outcome) {
            let (Some(name), Some(dscr)) = (property_name(row), row.get("dscr").and_then(Value::as_f64)) else {
                continue;
            };
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, points)) => points.push((*x, dscr)),
                None => out.push((name.to_owned(), vec![(*x, dscr)])),
            }
        }
        if let Some(dscr) = portfolio_dscr(outcome) {
            portfolio.push((*x, dscr));
        }
    }
    if !portfolio.is_empty() {
        out.push(("portfolio".to_owned(), portfolio));
    }
    out
}

/// The DSCR of `series` (a property's name, or `portfolio`) in one scenario.
pub fn series_dscr(outcome: &ScenarioOutcome, series: &str) -> Option<f64> {
    if series == "portfolio" {
        return portfolio_dscr(outcome);
    }
    rows(outcome).find(|row| property_name(row) == Some(series)).and_then(|row| row.get("dscr")?.as_f64())
}

/// Total NOI over total debt service when rows carry both; else the mean DSCR.
pub fn portfolio_dscr(outcome: &ScenarioOutcome) -> Option<f64> {
    let (mut noi, mut debt, mut sum, mut n, mut weighted) = (0.0, 0.0, 0.0, 0usize, true);
    for row in rows(outcome) {
        let Some(dscr) = row.get("dscr").and_then(Value::as_f64) else { continue };
        sum += dscr;
        n += 1;
        match (row.get("noi").and_then(Value::as_f64), row.get("annual_debt_service").and_then(Value::as_f64)) {
            (Some(a), Some(b)) => {
                noi += a;
                debt += b;
            }
            _ => weighted = false,
        }
    }
    match n {
        0 => None,
        _ if weighted && debt > 0.0 => Some(noi / debt),
        _ => Some(sum / n as f64),
    }
}

fn crossing(name: &str, param: &str, threshold: f64, points: &[(f64, f64)]) -> BreakEven {
    let mut result = BreakEven {
        property_name: name.to_owned(),
        param: param.to_owned(),
        threshold,
        value: None,
        status: if points.iter().all(|(_, d)| *d >= threshold) { "always_above" } else { "always_below" },
        range: [points.first().map_or(0.0, |p| p.0), points.last().map_or(0.0, |p| p.0)],
        rising: points.last().map_or(0.0, |p| p.1) >= points.first().map_or(0.0, |p| p.1),
        bracket: None,
        bisection_runs: 0,
    };
    for pair in points.windows(2) {
        let ((_, d1), (_, d2)) = (pair[0], pair[1]);
        if (d1 - threshold) * (d2 - threshold) <= 0.0 && d1 != d2 {
            result.status = "crosses";
            result.narrow([pair[0], pair[1]]);
            return result;
        }
    }
    if points.iter().any(|(_, d)| *d >= threshold) && points.iter().any(|(_, d)| *d < threshold) {
        // Touches without a clean straddle (a repeated value): report the first point at it.
        result.status = "crosses";
        result.value = points.iter().find(|(_, d)| *d == threshold).map(|(x, _)| *x);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scenario(noi_change: f64, rate_change: f64) -> ScenarioOutcome {
        // One property with DSCR 1.5 at base; NOI shocks scale it, rate shocks cut it.
        let dscr = 1.5 * (1.0 + noi_change) / (1.0 + 10.0 * rate_change);
        ScenarioOutcome {
            id: format!("{noi_change};{rate_change}"),
            params: json!({"noi_change": noi_change, "rate_change": rate_change}).as_object().unwrap().clone(),
            status: ScenarioStatus::Ok,
            error: None,
            results: json!({"result": [{"property_name": "P", "dscr": dscr}]}).as_object().unwrap().clone(),
            stdout: String::new(),
            logs: Vec::new(),
            wall_ms: 0.0,
        }
    }

    #[test]
    fn break_even_matches_the_closed_form() {
        let mut outcomes = Vec::new();
        for i in 0..=40 {
            for rate in [0.0, 0.01, 0.02] {
                outcomes.push(scenario(-0.4 + i as f64 * 0.01, rate));
            }
        }
        let analysis = analyze(&outcomes);
        let find = |param: &str, threshold: f64| {
            analysis
                .break_even
                .iter()
                .find(|b| b.param == param && b.threshold == threshold && b.property_name == "P")
                .unwrap()
        };
        // 1.5 (1 + x) = T  =>  x = T / 1.5 - 1
        assert_eq!(find("noi_change", 1.0).value, Some(-0.333));
        assert_eq!(find("noi_change", 1.25).value, Some(-0.167));
        assert_eq!(find("rate_change", 1.0).status, "always_above");
        assert_eq!(find("rate_change", 1.0).range, [0.0, 0.02]);
        assert_eq!(find("rate_change", 1.0).label(), "above +2%", "DSCR falls as rates rise");
        assert_eq!(find("noi_change", 1.0).label(), "-33.3%");
        assert_eq!(find("rate_change", 1.25).value, Some(0.02), "1.5 / 1.2 touches 1.25 at the end of the range");
        let tornado = &analysis.sensitivity;
        assert_eq!(tornado[0].param, "noi_change");
        assert!((tornado[0].swing - 1.5 * 0.4).abs() < 1e-9);
        assert!((tornado[1].swing - (1.5 - 1.5 / 1.2)).abs() < 1e-9);
    }
}
