//! What the scenarios say together: where each property (and the portfolio) crosses the
//! DSCR thresholds as one parameter moves, and which parameter moves the portfolio most.
//!
//! Both read one-dimensional slices of the sweep: for each parameter, the scenarios in
//! which every other parameter sits at its base (the value nearest zero, since parameters
//! are shocks), so that a change is credited to the one parameter that made it. A
//! scenario that leaves a parameter out stands where the script falls back to
//! (`params.get("rate_change", 0.0)`, as the runtime reports it); where that is not
//! known, leaving it out is a level of its own. When a slice lacks its ends or its base
//! (named scenarios that move several parameters at once, Monte Carlo draws of several),
//! the analysis names the points it needs ([`Analysis::missing`]), [`super::bisect`]
//! runs them, and the slices are read again with them.
//!
//! A break-even point is first interpolated linearly between the two points of a slice
//! that straddle the threshold (exact for NOI shocks, where DSCR is linear); bisection
//! then narrows that bracket by running the script at its midpoints, so that curved
//! responses (rate shocks) are found to 0.1 % whatever the grid's step.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::summary::{property_name, rows};
use crate::scenario::{Scenario, ScenarioOutcome, ScenarioStatus};

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

/// How much one parameter moves the portfolio's DSCR over its swept range, every other
/// parameter at its base.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    /// The parameter.
    pub param: String,
    /// Its lowest swept value.
    pub low_value: f64,
    /// Its base value (nearest zero), when it has one.
    pub base_value: Option<f64>,
    /// Its highest swept value.
    pub high_value: f64,
    /// Portfolio DSCR at the lowest value.
    pub dscr_at_low: f64,
    /// Portfolio DSCR at the base value.
    pub dscr_at_base: Option<f64>,
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
    /// The portfolio DSCR with every parameter at its base, when a scenario stands there.
    pub base_dscr: Option<f64>,
    /// The params of the slices' base scenario: every parameter at its base (one whose
    /// base is to be left out is left out).
    #[serde(skip)]
    pub base_params: serde_json::Map<String, Value>,
    /// Points the slices lack (an end of a parameter's range or its base, the others at
    /// base): run them and analyse again with their outcomes.
    #[serde(skip)]
    pub missing: Vec<Scenario>,
}

/// Where a scenario stands on one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Level<'a> {
    /// A number: given, or what the script falls back to without it.
    Number(f64),
    /// Something else given (text, a list).
    Other(&'a Value),
    /// Left out, and what the script falls back to is not known.
    Left,
}

impl Level<'_> {
    /// The number, if it is one.
    fn number(self) -> Option<f64> {
        if let Level::Number(x) = self { Some(x) } else { None }
    }
}

/// The parameters of a sweep as the analysis reads them.
struct Params<'a> {
    /// Every parameter name a finished scenario gave.
    names: BTreeSet<&'a str>,
    /// What the script falls back to, per name.
    defaults: &'a BTreeMap<String, f64>,
    /// Each parameter's base level.
    base: BTreeMap<&'a str, Level<'a>>,
}

impl<'a> Params<'a> {
    fn new(ok: &[&'a ScenarioOutcome], defaults: &'a BTreeMap<String, f64>) -> Self {
        let names: BTreeSet<&str> = ok.iter().flat_map(|o| o.params.keys().map(String::as_str)).collect();
        let mut params = Self { names, defaults, base: BTreeMap::new() };
        let base = params.names.iter().map(|&name| (name, params.base_of(ok, name))).collect();
        params.base = base;
        params
    }

    fn level(&self, outcome: &'a ScenarioOutcome, name: &str) -> Level<'a> {
        match outcome.params.get(name) {
            Some(value) => value.as_f64().map_or(Level::Other(value), Level::Number),
            None => self.defaults.get(name).map_or(Level::Left, |d| Level::Number(*d)),
        }
    }

    /// Left out if any scenario leaves it out with no known fallback; otherwise the
    /// number nearest zero if all are numbers; otherwise the first scenario's.
    fn base_of(&self, ok: &[&'a ScenarioOutcome], name: &str) -> Level<'a> {
        let levels: Vec<Level> = ok.iter().map(|o| self.level(o, name)).collect();
        if levels.contains(&Level::Left) {
            return Level::Left;
        }
        let numbers: Option<Vec<f64>> = levels.iter().map(|l| l.number()).collect();
        match numbers {
            Some(numbers) => {
                Level::Number(numbers.into_iter().fold(f64::INFINITY, |b, x| if x.abs() < b.abs() { x } else { b }))
            }
            None => levels.first().copied().unwrap_or(Level::Left),
        }
    }

    /// Whether every parameter but `except` is at its base in `outcome`.
    fn at_base_except(&self, outcome: &'a ScenarioOutcome, except: Option<&str>) -> bool {
        self.names.iter().all(|&name| Some(name) == except || self.level(outcome, name) == self.base[name])
    }

    /// The params of the base scenario, with `name` set to `value` if given.
    fn base_params(&self, moved: Option<(&str, f64)>) -> serde_json::Map<String, Value> {
        let mut params = serde_json::Map::new();
        for (&name, level) in &self.base {
            match level {
                Level::Number(x) => params.insert(name.to_owned(), Value::from(*x)),
                Level::Other(value) => params.insert(name.to_owned(), (*value).clone()),
                Level::Left => None,
            };
        }
        if let Some((name, value)) = moved {
            params.insert(name.to_owned(), Value::from(value));
        }
        params
    }
}

/// Analyses `outcomes` (in any order), with `extra`: the outcomes of points an earlier
/// analysis found missing. `defaults` are what the script falls back to when a parameter
/// is left out (see [`crate::outcome::ParamsRead::defaults`]).
pub fn analyze(outcomes: &[ScenarioOutcome], extra: &[ScenarioOutcome], defaults: &BTreeMap<String, f64>) -> Analysis {
    let finished = |o: &&ScenarioOutcome| o.status == ScenarioStatus::Ok;
    let ok: Vec<&ScenarioOutcome> = outcomes.iter().filter(finished).collect();
    let params = Params::new(&ok, defaults);
    // The sweep's own scenarios first: where an extra point repeats one, the sweep's wins.
    let points: Vec<&ScenarioOutcome> = ok.iter().copied().chain(extra.iter().filter(finished)).collect();
    let mut analysis = Analysis { base_params: params.base_params(None), ..Analysis::default() };
    analysis.base_dscr = points.iter().find(|o| params.at_base_except(o, None)).and_then(|o| portfolio_dscr(o));
    let mut wanted: Vec<(String, f64)> = Vec::new();
    for &param in &params.names {
        let mut values: Vec<f64> = ok.iter().filter_map(|o| params.level(o, param).number()).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let (Some(&low), Some(&high)) = (values.first(), values.last()) else { continue };
        if values.len() < 2 {
            continue;
        }
        let base = params.base[param].number();
        // The slice: every other parameter at its base.
        let mut slice: Vec<(f64, &ScenarioOutcome)> = points
            .iter()
            .filter(|o| params.at_base_except(o, Some(param)))
            .filter_map(|o| Some((params.level(o, param).number()?, *o)))
            .collect();
        slice.sort_by(|a, b| a.0.total_cmp(&b.0));
        slice.dedup_by(|a, b| a.0 == b.0);
        for x in [Some(low), base, Some(high)].into_iter().flatten() {
            if !slice.iter().any(|(at, _)| *at == x) && !wanted.iter().any(|(p, at)| p == param && *at == x) {
                wanted.push((param.to_owned(), x));
            }
        }
        if slice.len() < 2 {
            continue;
        }
        for (name, series) in series(&slice) {
            for threshold in THRESHOLDS {
                analysis.break_even.push(crossing(&name, param, threshold, &series));
            }
        }
        let dscr_at = |x: f64| slice.iter().find(|(at, _)| *at == x).and_then(|(_, o)| portfolio_dscr(o));
        if let (Some(first), Some(last)) = (slice.first(), slice.last())
            && let (Some(dscr_at_low), Some(dscr_at_high)) = (portfolio_dscr(first.1), portfolio_dscr(last.1))
        {
            analysis.sensitivity.push(Sensitivity {
                param: param.to_owned(),
                low_value: first.0,
                base_value: base,
                high_value: last.0,
                dscr_at_low,
                dscr_at_base: base.and_then(dscr_at),
                dscr_at_high,
                swing: (dscr_at_high - dscr_at_low).abs(),
            });
        }
    }
    analysis.sensitivity.sort_by(|a, b| b.swing.total_cmp(&a.swing));
    // One scenario per distinct point: the base point is every parameter's base.
    for (param, x) in wanted {
        let point = params.base_params(Some((&param, x)));
        if !analysis.missing.iter().any(|s| s.params == point) {
            analysis.missing.push(Scenario { id: format!("slice-{param}={x}"), params: point });
        }
    }
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
    rows(outcome).find(|row| property_name(*row) == Some(series)).and_then(|row| row.get("dscr")?.as_f64())
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

    /// One property with DSCR 1.5 at base; NOI shocks scale it, rate shocks cut it.
    fn dscr(noi_change: f64, rate_change: f64) -> f64 {
        1.5 * (1.0 + noi_change) / (1.0 + 10.0 * rate_change)
    }

    fn outcome(id: &str, params: Value, dscr: f64) -> ScenarioOutcome {
        ScenarioOutcome {
            id: id.to_owned(),
            params: params.as_object().unwrap().clone(),
            status: ScenarioStatus::Ok,
            error: None,
            results: json!({"result": [{"property_name": "P", "dscr": dscr}]}).as_object().unwrap().clone().into(),
            stdout: String::new(),
            logs: Vec::new(),
            wall_ms: 0.0,
            params_read: None,
        }
    }

    fn scenario(noi_change: f64, rate_change: f64) -> ScenarioOutcome {
        let params = json!({"noi_change": noi_change, "rate_change": rate_change});
        outcome(&format!("{noi_change};{rate_change}"), params, dscr(noi_change, rate_change))
    }

    /// Runs the points `analysis` asks for through the model `dscr`, with the script's
    /// fallbacks `defaults` for parameters left out.
    fn run_missing(analysis: &Analysis, defaults: &BTreeMap<String, f64>) -> Vec<ScenarioOutcome> {
        let value = |s: &Scenario, name: &str| {
            s.params.get(name).and_then(Value::as_f64).or_else(|| defaults.get(name).copied()).unwrap()
        };
        analysis
            .missing
            .iter()
            .map(|s| {
                let d = dscr(value(s, "noi_change"), value(s, "rate_change"));
                outcome(&s.id, Value::Object(s.params.clone()), d)
            })
            .collect()
    }

    #[test]
    fn named_scenarios_moving_several_params_are_not_read_as_one_slice() {
        // `stress` leaves the rate out (the script falls back to 0.0); `severe` moves both.
        let outcomes = vec![
            outcome("stress", json!({"noi_change": -0.1}), dscr(-0.1, 0.0)),
            outcome("severe", json!({"noi_change": -0.4, "rate_change": 0.02}), dscr(-0.4, 0.02)),
        ];
        let defaults: BTreeMap<String, f64> = [("rate_change".to_owned(), 0.0)].into();
        let first = analyze(&outcomes, &[], &defaults);
        // NOI from -0.4 to -0.1 at rate 0, and the rate from 0 to 0.02 at NOI -0.1.
        let mut wanted: Vec<String> =
            first.missing.iter().map(|s| Value::Object(s.params.clone()).to_string()).collect();
        wanted.sort();
        assert_eq!(
            wanted,
            [r#"{"noi_change":-0.1,"rate_change":0.02}"#, r#"{"noi_change":-0.4,"rate_change":0.0}"#],
            "{first:?}"
        );
        let analysis = analyze(&outcomes, &run_missing(&first, &defaults), &defaults);
        assert!(analysis.missing.is_empty(), "{:?}", analysis.missing);
        let noi = analysis.break_even.iter().find(|b| b.param == "noi_change" && b.threshold == 1.25).unwrap();
        // Along rate 0: 1.5 (1 + x) = 1.25  =>  x = -1/6; the rate shock of `severe` must
        // not leak in (with it, the bracket gave about -0.29).
        assert_eq!(noi.value, Some(-0.167), "{noi:?}");
        let tornado = &analysis.sensitivity;
        let noi = tornado.iter().find(|t| t.param == "noi_change").unwrap();
        assert_eq!((noi.low_value, noi.high_value, noi.base_value), (-0.4, -0.1, Some(-0.1)));
        assert!((noi.swing - 1.5 * 0.3).abs() < 1e-9, "{noi:?}");
        let rate = tornado.iter().find(|t| t.param == "rate_change").unwrap();
        assert_eq!((rate.low_value, rate.high_value, rate.base_value), (0.0, 0.02, Some(0.0)));
        assert!((rate.dscr_at_low - dscr(-0.1, 0.0)).abs() < 1e-12);
        assert!((rate.dscr_at_high - dscr(-0.1, 0.02)).abs() < 1e-12);
        assert_eq!(analysis.base_dscr, Some(dscr(-0.1, 0.0)));
    }

    #[test]
    fn a_param_left_out_without_a_known_fallback_is_a_level_of_its_own() {
        let outcomes = vec![
            outcome("a", json!({"noi_change": -0.1}), dscr(-0.1, 0.0)),
            outcome("b", json!({"noi_change": -0.3}), dscr(-0.3, 0.0)),
            outcome("c", json!({"noi_change": -0.3, "rate_change": 0.01}), dscr(-0.3, 0.01)),
        ];
        let analysis = analyze(&outcomes, &[], &BTreeMap::new());
        // The NOI slice is the scenarios that leave the rate out: `c` is not on it.
        let noi = analysis.sensitivity.iter().find(|t| t.param == "noi_change").unwrap();
        assert!((noi.dscr_at_low - dscr(-0.3, 0.0)).abs() < 1e-12, "{noi:?}");
        assert!(!analysis.base_params.contains_key("rate_change"), "{:?}", analysis.base_params);
    }

    #[test]
    fn break_even_matches_the_closed_form() {
        let mut outcomes = Vec::new();
        for i in 0..=40 {
            for rate in [0.0, 0.01, 0.02] {
                outcomes.push(scenario(-0.4 + i as f64 * 0.01, rate));
            }
        }
        let analysis = analyze(&outcomes, &[], &BTreeMap::new());
        assert!(analysis.missing.is_empty(), "a full grid has every slice");
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
