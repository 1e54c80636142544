//! The scenario comparison of a run that swept scenarios, as its page shows it: the
//! per-property DSCR matrix, the per-property summary, a line per scenario, the charts
//! the sweep's own report draws, the break-even points and the failures.
//!
//! Everything is laid out from the [`SweepRecord`] alone (the run's record keeps no
//! scenario's full results), and a sweep of ten thousand scenarios shows the first
//! [`MAX_SCENARIO_LINES`] lines: the rest are in the sweep's own files.

use serde::{Deserialize, Serialize};

use super::cells::{Cell, Table};
use super::{Fact, line};
use crate::report::{self, Bar, dscr_colour, label};
use crate::scenario::ScenarioStatus;
use crate::sweep::SweepRecord;
use crate::sweep::html as sweep_html;

/// The most scenario lines the page lists.
pub const MAX_SCENARIO_LINES: usize = 50;
/// Up to this many scenarios, the chart has a bar per scenario; past it, per property
/// (as the sweep's own report does).
const MAX_SCENARIO_BARS: usize = 24;

/// The scenario comparison, ready to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Counts, time and queries in one line.
    pub summary: String,
    /// Why the figures cover fewer scenarios than planned, when the sweep was stopped.
    pub interrupted: Option<String>,
    /// Rows per verdict over every scenario.
    pub verdicts: Vec<Fact>,
    /// Each property's DSCR per scenario, for a small sweep.
    pub matrix: Option<Table>,
    /// Each property's DSCR across scenarios: worst, mean, percentiles, probabilities.
    pub properties: Option<Table>,
    /// The portfolio DSCR per scenario (or the median per property), as SVG.
    pub bars_chart: Option<String>,
    /// The portfolio DSCR distribution, as SVG with its caption.
    pub distribution_chart: Option<String>,
    /// The tornado, as SVG.
    pub tornado_chart: Option<String>,
    /// Where each property crosses the thresholds.
    pub break_even: Option<Table>,
    /// A line per scenario, the first [`MAX_SCENARIO_LINES`].
    pub scenarios: Option<Table>,
    /// Failed scenarios per error kind, and instances stopped between scenarios.
    pub failures: Option<Table>,
    /// The files the sweep wrote.
    pub files: Vec<String>,
}

impl Comparison {
    /// The comparison of `record`.
    pub fn build(record: &SweepRecord) -> Self {
        let s = &record.summary;
        let m = &record.metrics;
        let summary = format!(
            "{} scenarios ({} ok, {} failed) in {:.0} ms, {:.0} scenarios/s, {} database queries",
            s.total, s.ok, s.failed, m.wall_ms, m.scenarios_per_s, m.db_queries
        );
        let interrupted = s.interrupted.map(|i| {
            format!(
                "Interrupted: {} of {} planned scenarios finished, and every figure covers those only.",
                i.finished, i.planned
            )
        });
        let verdicts = s.verdicts.iter().map(|(v, n)| Fact { label: line(v), value: n.to_string() }).collect();
        Self {
            summary,
            interrupted,
            verdicts,
            matrix: matrix(record),
            properties: properties(record),
            bars_chart: bars_chart(record),
            distribution_chart: distribution_chart(record),
            tornado_chart: sweep_html::sensitivity(s),
            break_even: break_even(record),
            scenarios: scenario_lines(record),
            failures: failures(record),
            files: record
                .files
                .iter()
                .map(|f| line(&f.file_name().map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into())))
                .collect(),
        }
    }
}

fn matrix(record: &SweepRecord) -> Option<Table> {
    let matrix = record.matrix.as_ref().filter(|m| !m.properties.is_empty())?;
    let labels: Vec<String> = matrix.scenarios.iter().map(|id| label::scenario(id)).collect();
    let mut columns: Vec<(&str, &str)> = vec![("property_name", "property")];
    columns.extend(matrix.scenarios.iter().map(String::as_str).zip(labels.iter().map(String::as_str)));
    let rows = matrix
        .properties
        .iter()
        .map(|p| {
            let mut row = vec![Cell::text(&p.property_name)];
            row.extend(p.dscr.iter().map(|d| Cell::dscr(*d)));
            row
        })
        .collect();
    Some(Table::fixed(&columns, rows))
}

fn properties(record: &SweepRecord) -> Option<Table> {
    let properties = &record.summary.properties;
    if properties.is_empty() {
        return None;
    }
    let percent = |x: f64| Cell::number(format!("{:.1}%", x * 100.0));
    let rows = properties
        .iter()
        .map(|p| {
            vec![
                Cell::text(&p.property_name),
                Cell::number(p.scenarios.to_string()),
                Cell::dscr(Some(p.min_dscr)),
                Cell::text(&label::scenario(&p.worst_scenario)),
                Cell::dscr(Some(p.mean_dscr)),
                Cell::dscr(Some(p.p05)),
                Cell::dscr(Some(p.p50)),
                Cell::dscr(Some(p.p95)),
                percent(p.prob_below_1),
                percent(p.prob_below_1_25),
            ]
        })
        .collect();
    Some(Table::fixed(
        &[
            ("property_name", "property"),
            ("scenarios", "scenarios"),
            ("min_dscr", "min DSCR"),
            ("worst_scenario", "worst scenario"),
            ("mean_dscr", "mean"),
            ("p05", "p05"),
            ("p50", "median"),
            ("p95", "p95"),
            ("prob_below_1", "P(DSCR<1.0)"),
            ("prob_below_1_25", "P(DSCR<1.25)"),
        ],
        rows,
    ))
}

/// The portfolio DSCR of each scenario that finished.
fn portfolio(record: &SweepRecord) -> Vec<(&str, f64)> {
    record
        .scenarios
        .iter()
        .filter(|l| l.status == ScenarioStatus::Ok)
        .filter_map(|l| Some((l.id.as_str(), l.portfolio_dscr?)))
        .collect()
}

fn bars_chart(record: &SweepRecord) -> Option<String> {
    let portfolio = portfolio(record);
    let properties = &record.summary.properties;
    if !portfolio.is_empty() && portfolio.len() <= MAX_SCENARIO_BARS {
        let bars: Vec<Bar> = portfolio
            .iter()
            .map(|(id, dscr)| Bar { label: line(&label::scenario(id)), value: *dscr, colour: dscr_colour(*dscr) })
            .collect();
        Some(report::bar_chart("Portfolio DSCR by scenario", &bars, &[1.0, 1.25]))
    } else if !properties.is_empty() {
        let bars: Vec<Bar> = properties
            .iter()
            .map(|p| Bar { label: line(&p.property_name), value: p.p50, colour: dscr_colour(p.p50) })
            .collect();
        Some(report::bar_chart("Median DSCR by property", &bars, &[1.0, 1.25]))
    } else {
        None
    }
}

fn distribution_chart(record: &SweepRecord) -> Option<String> {
    let mut values: Vec<f64> = portfolio(record).into_iter().map(|(_, d)| d).collect();
    (values.len() > 1).then(|| sweep_html::distribution(&mut values))
}

fn break_even(record: &SweepRecord) -> Option<Table> {
    let points = &record.summary.analysis.break_even;
    if points.is_empty() {
        return None;
    }
    let rows = points
        .iter()
        .map(|b| {
            vec![
                Cell::text(&b.property_name),
                Cell::text(&label::param_name(&b.param)),
                Cell::number(format!("{:.2}", b.threshold)),
                Cell::number(b.label()),
            ]
        })
        .collect();
    Some(Table::fixed(
        &[
            ("property_name", "property"),
            ("param", "parameter"),
            ("threshold", "DSCR threshold"),
            ("value", "break-even value"),
        ],
        rows,
    ))
}

fn scenario_lines(record: &SweepRecord) -> Option<Table> {
    let lines = &record.scenarios;
    if lines.is_empty() {
        return None;
    }
    let rows = lines
        .iter()
        .take(MAX_SCENARIO_LINES)
        .map(|l| {
            let status = match l.status {
                ScenarioStatus::Ok => "ok",
                ScenarioStatus::Error => "error",
            };
            let verdicts: Vec<String> = l.verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
            let weakest =
                l.weakest.as_ref().map(|w| format!("{} ({:.2})", w.property_name, w.dscr)).unwrap_or_default();
            vec![
                Cell::text(&label::scenario(&l.id)),
                Cell::text(status),
                Cell::dscr(l.portfolio_dscr),
                Cell::text(&weakest),
                Cell::text(&verdicts.join(", ")),
                Cell::text(l.error.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    let mut table = Table::fixed(
        &[
            ("id", "scenario"),
            ("status", "status"),
            ("portfolio_dscr", "portfolio DSCR"),
            ("weakest", "weakest property"),
            ("verdicts", "verdicts"),
            ("error", "error"),
        ],
        rows,
    );
    if lines.len() > MAX_SCENARIO_LINES {
        table.note = Some(format!(
            "The first {MAX_SCENARIO_LINES} of {} scenarios; every one is in the sweep's results file.",
            lines.len()
        ));
    }
    Some(table)
}

fn failures(record: &SweepRecord) -> Option<Table> {
    let s = &record.summary;
    let mut rows: Vec<Vec<Cell>> = s
        .failures
        .iter()
        .map(|(kind, n)| vec![Cell::text(kind), Cell::number(n.to_string()), Cell::text("")])
        .collect();
    // An instance stopped between scenarios failed no scenario, but the script misbehaved.
    rows.extend(
        record
            .instance_errors
            .iter()
            .map(|e| vec![Cell::text(e.kind.as_str()), Cell::text("between scenarios"), Cell::text(&e.message)]),
    );
    (!rows.is_empty())
        .then(|| Table::fixed(&[("kind", "error kind"), ("scenarios", "scenarios"), ("message", "message")], rows))
}
