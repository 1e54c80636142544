//! The ends of a run's record: what is written when it starts (its entry, marked
//! running, and its job) and when it ends (its page and HTML report, its final entry,
//! and last the manifest of every file).

use super::manifest;
use super::{Entry, JobRecord, RunDir};
use crate::report::run_page::{self, Mode, PageInputs, RunPage};

/// The page's record in a run folder, rendered again by `metaexec serve`.
pub const PAGE_FILE: &str = "page.json";
/// The self-contained report.
pub const REPORT_FILE: &str = "report.html";
/// The run's line in the list of runs.
pub const ENTRY_FILE: &str = "entry.json";

/// Records a run starting: `entry.json` (status running) and `job.json`.
pub fn start(dir: &RunDir, entry: &Entry, job: &JobRecord) -> std::io::Result<()> {
    dir.write_json("job.json", job)?;
    dir.write_json(ENTRY_FILE, entry)?;
    Ok(())
}

/// Records a run's end: `page.json`, `report.html`, `manifest.json` over every file,
/// and last `entry.json`, which says the run finished. Each write is atomic and the
/// entry comes after everything it vouches for, so a run killed in between still lists
/// as running, never as finished with a missing report or manifest.
pub fn finish(dir: &RunDir, entry: &Entry, inputs: &PageInputs<'_>) -> std::io::Result<()> {
    let page = RunPage::build(inputs);
    dir.write_json(PAGE_FILE, &page)?;
    let html = run_page::render(&page, &Mode::Standalone).map_err(std::io::Error::other)?;
    dir.write_text(REPORT_FILE, &html)?;
    let entry_text = serde_json::to_string_pretty(entry).map_err(std::io::Error::other)? + "\n";
    manifest::write_with(&dir.path, &[(ENTRY_FILE, entry_text.as_bytes())])?;
    dir.write_text(ENTRY_FILE, &entry_text)?;
    Ok(())
}

/// Runs [`finish`], reporting a failure on the log: the run itself already happened,
/// and its other records stand.
pub fn finish_or_warn(dir: &RunDir, entry: &Entry, inputs: &PageInputs<'_>) {
    if let Err(e) = finish(dir, entry, inputs) {
        tracing::warn!("the run record in {} is incomplete: {e}", dir.path.display());
    }
}
