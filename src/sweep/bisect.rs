//! Break-even points to 0.1 %, by bisection: each crossing the sweep found between two
//! scenarios is narrowed by running the script at the bracket's midpoint (every other
//! param at its base), round after round, until the bracket is narrower than the
//! reported precision. The midpoints of all crossings run together as one small sweep per
//! round, so a round costs about one instance start.

use serde_json::{Map, Value};

use super::analysis::{BreakEven, series_dscr};
use super::{SweepOptions, SweepReport};
use crate::job::Job;
use crate::sandbox::WasiSandbox;
use crate::scenario::{Scenario, ScenarioStatus};

/// Brackets narrower than this are done: break-even points are reported to 0.001.
const PRECISION: f64 = 0.001;

/// Rounds at most: a bracket halves each round, so this covers a range of 2^12 × 0.001.
const MAX_ROUNDS: usize = 12;

/// Narrows every crossing in `report` that the sweep's own scenarios bracket more
/// loosely than [`PRECISION`], and records what that cost in its metrics. A round whose
/// scenarios cannot run ends the search; the points found so far stay.
pub async fn refine(sandbox: &WasiSandbox, job: &Job, report: &mut SweepReport, options: SweepOptions) {
    let started = std::time::Instant::now();
    let base = report.summary.analysis.base_params.clone();
    let mut ran = 0;
    for round in 0..MAX_ROUNDS {
        let wanted: Vec<usize> = report
            .summary
            .analysis
            .break_even
            .iter()
            .enumerate()
            .filter(|(_, b)| needs_narrowing(b))
            .map(|(i, _)| i)
            .collect();
        if wanted.is_empty() {
            break;
        }
        // One scenario per distinct (param, midpoint): crossings of several properties
        // often share a bracket.
        let mut scenarios: Vec<Scenario> = Vec::new();
        let mut of_point: Vec<usize> = Vec::with_capacity(wanted.len());
        for &i in &wanted {
            let b = &report.summary.analysis.break_even[i];
            let mid = midpoint(b);
            let id = format!("bisect-{round}-{}={mid}", b.param);
            let at = match scenarios.iter().position(|s| s.id == id) {
                Some(at) => at,
                None => {
                    scenarios.push(Scenario { id, params: with_param(&base, &b.param, mid) });
                    scenarios.len() - 1
                }
            };
            of_point.push(at);
        }
        ran += scenarios.len();
        // The sweep returns its outcomes in the order the scenarios were given.
        let Ok(sweep) = super::run(sandbox, job, scenarios, options, |_| {}).await else { break };
        for (&i, &at) in wanted.iter().zip(&of_point) {
            let b = &mut report.summary.analysis.break_even[i];
            let outcome = sweep.scenarios.get(at);
            let dscr =
                outcome.filter(|o| o.status == ScenarioStatus::Ok).and_then(|o| series_dscr(o, &b.property_name));
            b.bisection_runs += 1;
            match (dscr, b.bracket) {
                (Some(d), Some([low, high])) => {
                    let mid = (midpoint(b), d);
                    // Keep the half in which the threshold still lies between the ends.
                    let next = if (low.1 - b.threshold) * (d - b.threshold) <= 0.0 { [low, mid] } else { [mid, high] };
                    b.narrow(next);
                }
                // The script failed there: keep the interpolated point and stop.
                _ => b.bracket = None,
            }
        }
    }
    report.metrics.bisection_runs = ran;
    report.metrics.bisection_ms = started.elapsed().as_secs_f64() * 1000.0;
}

fn needs_narrowing(b: &BreakEven) -> bool {
    b.status == "crosses" && b.bracket.is_some_and(|[low, high]| (high.0 - low.0).abs() > PRECISION)
}

fn midpoint(b: &BreakEven) -> f64 {
    b.bracket.map_or(0.0, |[low, high]| (low.0 + high.0) / 2.0)
}

fn with_param(base: &Map<String, Value>, param: &str, value: f64) -> Map<String, Value> {
    let mut params = base.clone();
    params.insert(param.to_owned(), Value::from(value));
    params
}
