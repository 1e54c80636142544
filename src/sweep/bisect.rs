//! The extra runs the analysis asks for. First the points its slices lack (see
//! [`super::analysis`]): the ends and the base of a parameter's range with every other
//! parameter at its base, when the sweep's own scenarios moved several at once; the
//! analysis is then read again with them.
//!
//! Then break-even points to 0.1 %, by bisection: each crossing the sweep found between two
//! scenarios is narrowed by running the script inside its bracket (every other param at
//! its base), round after round, until the bracket is narrower than the reported
//! precision. A round probes the bracket's midpoint, which at least halves it, and two
//! points just either side of the crossing interpolated in it, which close it at once
//! when DSCR is close to linear there (NOI shocks are exactly linear, rate shocks nearly
//! so): most crossings take one round. The probes of all crossings run together as one
//! small sweep per round, so a round costs about one instance start.

use serde_json::{Map, Value};

use super::analysis::{BreakEven, analyze, series_dscr};
use super::{SweepOptions, SweepReport};
use crate::job::Job;
use crate::sandbox::WasiSandbox;
use crate::scenario::{Scenario, ScenarioStatus};

/// Brackets narrower than this are done: break-even points are reported to 0.001.
const PRECISION: f64 = 0.001;

/// Rounds at most: a bracket at least halves each round, so this covers a range of
/// 2^12 × 0.001.
const MAX_ROUNDS: usize = 12;

/// Runs the points the analysis's slices lack and analyses again with them, then narrows
/// every crossing in `report` that the scenarios bracket more loosely than
/// [`PRECISION`], and records what that cost in its metrics. A round whose scenarios
/// cannot run ends the search; the points found so far stay. Nothing more runs once
/// `options.cancel` is set (an interrupted sweep is analysed as it stands), and a round
/// cut short by it is dropped: its outcomes no longer line up with its probes.
pub async fn refine(sandbox: &WasiSandbox, job: &Job, report: &mut SweepReport, options: &SweepOptions) {
    let started = std::time::Instant::now();
    if options.cancel.is_cancelled() {
        return;
    }
    let missing = std::mem::take(&mut report.summary.analysis.missing);
    let mut ran = missing.len();
    if !missing.is_empty()
        && let Ok(extra) = super::run(sandbox, job, missing, options.clone(), |_| {}).await
        && !options.cancel.is_cancelled()
    {
        let defaults = report.params_read.defaults();
        let analysing = std::time::Instant::now();
        report.summary.analysis = analyze(&report.scenarios, &extra.scenarios, &defaults);
        tracing::debug!(
            analysis_ms = analysing.elapsed().as_secs_f64() * 1000.0,
            "analysed again with the missing points"
        );
        // What is still missing failed to run: the analysis stands without it.
        report.summary.analysis.missing.clear();
    }
    let base = report.summary.analysis.base_params.clone();
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
        // One scenario per distinct (param, point): crossings of several properties
        // often share a bracket.
        let mut scenarios: Vec<Scenario> = Vec::new();
        let mut of_points: Vec<Vec<(f64, usize)>> = Vec::with_capacity(wanted.len());
        for &i in &wanted {
            let b = &report.summary.analysis.break_even[i];
            let mut points = Vec::with_capacity(3);
            for x in probes(b) {
                let id = format!("bisect-{round}-{}={x}", b.param);
                let at = match scenarios.iter().position(|s| s.id == id) {
                    Some(at) => at,
                    None => {
                        scenarios.push(Scenario { id, params: with_param(&base, &b.param, x) });
                        scenarios.len() - 1
                    }
                };
                points.push((x, at));
            }
            of_points.push(points);
        }
        ran += scenarios.len();
        // The sweep returns its outcomes in the order the scenarios were given.
        let Ok(sweep) = super::run(sandbox, job, scenarios, options.clone(), |_| {}).await else { break };
        if options.cancel.is_cancelled() {
            break;
        }
        for (&i, points) in wanted.iter().zip(&of_points) {
            let b = &mut report.summary.analysis.break_even[i];
            let Some([low, high]) = b.bracket else { continue };
            let mut known = vec![low, high];
            for &(x, at) in points {
                let outcome = sweep.scenarios.get(at).filter(|o| o.status == ScenarioStatus::Ok);
                if let Some(d) = outcome.and_then(|o| series_dscr(o, &b.property_name)) {
                    known.push((x, d));
                }
            }
            b.bisection_runs += points.len();
            if known.len() == 2 {
                // The script failed inside the bracket: keep the interpolated point.
                b.bracket = None;
                continue;
            }
            known.sort_by(|a, b| a.0.total_cmp(&b.0));
            // The narrowest neighbours that still have the threshold between them.
            let threshold = b.threshold;
            let straddles = |w: &[(f64, f64)]| (w[0].1 - threshold) * (w[1].1 - threshold) <= 0.0;
            match known
                .windows(2)
                .filter(|w| straddles(w))
                .min_by(|a, c| (a[1].0 - a[0].0).total_cmp(&(c[1].0 - c[0].0)))
            {
                Some(w) => b.narrow([w[0], w[1]]),
                None => b.bracket = None,
            }
        }
    }
    report.metrics.bisection_runs = ran;
    report.metrics.bisection_ms = started.elapsed().as_secs_f64() * 1000.0;
}

fn needs_narrowing(b: &BreakEven) -> bool {
    b.status == "crosses" && b.bracket.is_some_and(|[low, high]| (high.0 - low.0).abs() > PRECISION)
}

/// Where to run the script next inside `b`'s bracket: its midpoint, and either side of
/// the crossing interpolated in it, a little under the precision apart.
fn probes(b: &BreakEven) -> Vec<f64> {
    let Some([(x1, d1), (x2, d2)]) = b.bracket else { return Vec::new() };
    let (lo, hi) = (x1.min(x2), x1.max(x2));
    let mut out = vec![(x1 + x2) / 2.0];
    if d1 != d2 {
        let guess = x1 + (b.threshold - d1) * (x2 - x1) / (d2 - d1);
        for x in [guess - 0.45 * PRECISION, guess + 0.45 * PRECISION] {
            if x > lo && x < hi {
                out.push(x);
            }
        }
    }
    out
}

fn with_param(base: &Map<String, Value>, param: &str, value: f64) -> Map<String, Value> {
    let mut params = base.clone();
    params.insert(param.to_owned(), Value::from(value));
    params
}
