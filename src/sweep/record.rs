//! A sweep as a run's record keeps it: one line per scenario, the per-property matrix of
//! a small sweep, the summary and the metrics.

use std::path::PathBuf;

use serde::Serialize;

use super::summary::{self, DscrMatrix, ScenarioLine, Summary};
use super::{SweepMetrics, SweepReport};
use crate::outcome::OutcomeError;

/// The most scenarios a run's record shows side by side per property.
pub const MATRIX_SCENARIOS: usize = 25;

/// What a sweep did, in the form a run's record keeps: a line per scenario, the summary
/// and what it cost (each scenario's full results are in the sweep's own files).
#[derive(Debug, Clone, Serialize)]
pub struct SweepRecord {
    /// Every scenario in one line, in spec order; each one's full results are in
    /// `sweep/results.json` in the run folder.
    pub scenarios: Vec<ScenarioLine>,
    /// Each property's DSCR per scenario, for sweeps of at most `MATRIX_SCENARIOS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<DscrMatrix>,
    /// Counts, per-property distribution, break-even points and the tornado.
    pub summary: Summary,
    /// What it cost.
    pub metrics: SweepMetrics,
    /// The files written (`results.json`, `scenarios.csv`, `report.html`, `sweep.xlsx`).
    pub files: Vec<PathBuf>,
    /// What the host removed from the results folder after the sweep.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sanitized: Vec<crate::outcome::Sanitized>,
    /// Instances stopped between scenarios and replaced (protocol violations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_errors: Vec<OutcomeError>,
}

impl SweepRecord {
    /// The record of `report`, whose files were written to `files`.
    pub fn new(report: &SweepReport, files: Vec<PathBuf>) -> Self {
        let matrix = (report.scenarios.len() <= MATRIX_SCENARIOS).then(|| summary::dscr_matrix(&report.scenarios));
        Self {
            scenarios: summary::scenario_lines(&report.scenarios),
            matrix,
            summary: report.summary.clone(),
            metrics: report.metrics,
            files,
            sanitized: report.sanitized.clone(),
            instance_errors: report.instance_errors.clone(),
        }
    }
}
