//! The sweep's comparison report: one self-contained HTML page with the per-property
//! table, the scenario comparison bars, the portfolio DSCR distribution, the tornado and
//! the break-even points. The distribution and the tornado are drawn by [`distribution`]
//! and [`sensitivity`], which a run's own page draws too.

use super::analysis::portfolio_dscr;
use super::summary::percentile;
use super::{Summary, SweepReport};
use crate::report::{self, Bar, HtmlTable, dscr_colour};
use crate::scenario::ScenarioStatus;

/// Up to this many scenarios, each gets its own bar; past it, properties do.
const MAX_SCENARIO_BARS: usize = 24;

/// The report page, headed by `title` (the script's name, or the request).
pub fn render(report: &SweepReport, title: &str) -> String {
    let s = &report.summary;
    let m = &report.metrics;
    let mut subtitle = format!(
        "{title}: {} scenarios ({} ok, {} failed) in {:.0} ms, {:.0} scenarios/s, {} database queries",
        s.total, s.ok, s.failed, m.wall_ms, m.scenarios_per_s, m.db_queries
    );
    // A reader of the page alone must not take a partial sweep's figures for the whole.
    if let Some(i) = &s.interrupted {
        subtitle.push_str(&format!(
            "; interrupted: {} of {} planned scenarios finished, and every figure covers those only",
            i.finished, i.planned
        ));
    }
    let mut sections = Vec::new();
    if !report.plan.is_empty() {
        let table = HtmlTable {
            header: vec!["".into(), "what".into()],
            rows: report.plan.iter().map(|(kind, text)| vec![(kind.clone(), None), (text.clone(), None)]).collect(),
        };
        sections.push(("Plan and assumptions".to_owned(), table.render()));
    }
    if !s.properties.is_empty() {
        let table = HtmlTable {
            header: ["property", "min DSCR", "worst scenario", "p05", "median", "p95", "P(DSCR<1.0)", "P(DSCR<1.25)"]
                .map(String::from)
                .to_vec(),
            rows: s
                .properties
                .iter()
                .map(|p| {
                    let ratio = |x: f64| (format!("{x:.2}"), Some(dscr_colour(x)));
                    vec![
                        (p.property_name.clone(), None),
                        ratio(p.min_dscr),
                        (report::label::scenario(&p.worst_scenario), None),
                        ratio(p.p05),
                        ratio(p.p50),
                        ratio(p.p95),
                        (format!("{:.1}%", p.prob_below_1 * 100.0), None),
                        (format!("{:.1}%", p.prob_below_1_25 * 100.0), None),
                    ]
                })
                .collect(),
        };
        sections.push(("DSCR by property across scenarios".to_owned(), table.render()));
    }
    let portfolio: Vec<(String, f64)> = report
        .scenarios
        .iter()
        .filter(|o| o.status == ScenarioStatus::Ok)
        .filter_map(|o| Some((o.id.clone(), portfolio_dscr(o)?)))
        .collect();
    if !portfolio.is_empty() && portfolio.len() <= MAX_SCENARIO_BARS {
        let bars: Vec<Bar> = portfolio
            .iter()
            .map(|(id, dscr)| Bar { label: id.clone(), value: *dscr, colour: dscr_colour(*dscr) })
            .collect();
        sections.push((
            "Portfolio DSCR by scenario".to_owned(),
            report::bar_chart("Portfolio DSCR by scenario", &bars, &[1.0, 1.25]),
        ));
    } else if !s.properties.is_empty() {
        let bars: Vec<Bar> = s
            .properties
            .iter()
            .map(|p| Bar { label: p.property_name.clone(), value: p.p50, colour: dscr_colour(p.p50) })
            .collect();
        sections.push((
            "Median DSCR by property".to_owned(),
            report::bar_chart("Median DSCR by property", &bars, &[1.0, 1.25]),
        ));
    }
    if portfolio.len() > 1 {
        let mut values: Vec<f64> = portfolio.iter().map(|(_, d)| *d).collect();
        sections.push(("Portfolio DSCR distribution".to_owned(), distribution(&mut values)));
    }
    if let Some(chart) = sensitivity(s) {
        sections.push(("Sensitivity (tornado)".to_owned(), chart));
    }
    if !s.analysis.break_even.is_empty() {
        let table = HtmlTable {
            header: ["property", "parameter", "DSCR threshold", "break-even value"].map(String::from).to_vec(),
            rows: s
                .analysis
                .break_even
                .iter()
                .map(|b| {
                    vec![
                        (b.property_name.clone(), None),
                        (b.param.clone(), None),
                        (format!("{:.2}", b.threshold), None),
                        (b.label(), None),
                    ]
                })
                .collect(),
        };
        sections.push(("Break-even points (other parameters at base)".to_owned(), table.render()));
    }
    if s.failed > 0 {
        let table = HtmlTable {
            header: ["scenario", "error"].map(String::from).to_vec(),
            rows: report
                .scenarios
                .iter()
                .filter(|o| o.status == ScenarioStatus::Error)
                .take(50)
                .map(|o| {
                    let error = o.error.as_ref().map(|e| format!("{}: {}", e.kind, e.message)).unwrap_or_default();
                    vec![(o.id.clone(), None), (error, None)]
                })
                .collect(),
        };
        sections.push((format!("Failed scenarios ({})", s.failed), table.render()));
    }
    report::page("Scenario sweep", &subtitle, &sections)
}

/// The portfolio DSCR distribution: a histogram of `values` (sorted in place) with its
/// percentiles and the share below 1.0 beneath it.
pub fn distribution(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let below = values.iter().filter(|d| **d < 1.0).count() as f64 / values.len().max(1) as f64;
    let caption = format!(
        "<p>p05 {:.2} · median {:.2} · p95 {:.2} · P(portfolio DSCR &lt; 1.0) {:.1}%</p>",
        percentile(values, 0.05),
        percentile(values, 0.5),
        percentile(values, 0.95),
        below * 100.0
    );
    let chart = report::histogram("Portfolio DSCR distribution", values, 30, dscr_colour, &[1.0, 1.25]);
    format!("{chart}{caption}")
}

/// The tornado of `summary`'s sensitivity analysis; `None` when it has none, or no base
/// to draw the bars around.
pub fn sensitivity(summary: &Summary) -> Option<String> {
    let analysis = &summary.analysis;
    if analysis.sensitivity.is_empty() {
        return None;
    }
    let bars: Vec<report::TornadoBar> = analysis
        .sensitivity
        .iter()
        .map(|t| report::TornadoBar {
            label: t.param.clone(),
            ends: [(format!("{}", t.low_value), t.dscr_at_low), (format!("{}", t.high_value), t.dscr_at_high)],
        })
        .collect();
    // The line is the portfolio with every parameter at its base: a scenario at the
    // base, or failing that the base of the widest bar's own slice.
    let base = analysis.base_dscr.or_else(|| analysis.sensitivity.iter().find_map(|t| t.dscr_at_base))?;
    Some(report::tornado("Portfolio DSCR swing per parameter, the others at base", base, &bars))
}
