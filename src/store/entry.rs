//! The line a run contributes to the list of runs: `entry.json` in its folder, written
//! when the run starts (status `running`) and again when it ends.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::report::label;
use crate::sweep::Summary;

/// What made the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `metaexec run`: a request, planned and answered.
    Run,
    /// `metaexec exec`: one script, one run.
    Exec,
    /// `metaexec sweep`: one script over many scenarios.
    Sweep,
}

impl RunKind {
    /// The kind's name, as lists show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Exec => "exec",
            Self::Sweep => "sweep",
        }
    }
}

/// How the run ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not ended (or its process was killed).
    Running,
    /// Finished with results.
    Ok,
    /// The script failed, was rejected, or the run could not start.
    Failed,
    /// Stopped early (Ctrl-C); what finished is kept.
    Interrupted,
}

impl RunStatus {
    /// The status's name, as lists show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// One run, in one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The run's id: its folder's name.
    pub id: String,
    /// When it started, RFC 3339 in UTC, to the millisecond.
    pub created: String,
    /// What made it.
    pub kind: RunKind,
    /// The request, or the script's file name.
    pub title: String,
    /// How it ended.
    pub status: RunStatus,
    /// The error's kind, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Its headline figure ("portfolio DSCR 1.42", "1,000 scenarios, worst DSCR 0.81").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// The run this one repeats (`metaexec runs rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
}

impl Entry {
    /// When it started as lists show it: `2026-12-02 16:40:01`, in UTC.
    pub fn when(&self) -> String {
        self.created.replace('T', " ").chars().take(19).collect()
    }

    /// A run starting now.
    pub fn started(id: &str, kind: RunKind, title: &str) -> Self {
        Self {
            id: id.to_owned(),
            // Milliseconds, so runs started within one second still list in order.
            created: super::utc_now_precise().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            kind,
            title: title.trim().to_owned(),
            status: RunStatus::Running,
            error_kind: None,
            headline: None,
            rerun_of: None,
        }
    }
}

/// The keys a headline prefers, most telling first.
const HEADLINE_KEYS: [&str; 6] = ["portfolio_dscr", "weighted_dscr", "min_dscr", "dscr", "irr", "average_dscr"];

/// A results object's headline figure: a portfolio DSCR (or the like) where the results
/// have one, else the lowest DSCR of a table of rows, else the first number, else how
/// many results there are.
pub fn headline(results: &Map<String, Value>) -> Option<String> {
    if results.is_empty() {
        return None;
    }
    // Top-level numbers first, then the numbers of objects one level down (a summary).
    let mut numbers: Vec<(&str, f64)> = results.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_f64()?))).collect();
    for value in results.values() {
        if let Value::Object(inner) = value {
            numbers.extend(inner.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_f64()?))));
        }
    }
    for key in HEADLINE_KEYS {
        if let Some((k, x)) = numbers.iter().find(|(k, _)| *k == key) {
            return Some(format!("{} {}", label::column(k), figure(k, *x)));
        }
    }
    for value in results.values() {
        if let Some(rows) = value.as_array() {
            let dscrs: Vec<f64> = rows.iter().filter_map(|r| r.get("dscr")?.as_f64()).collect();
            if let Some(min) = dscrs.iter().copied().reduce(f64::min) {
                return Some(format!("{} rows, lowest DSCR {}", rows.len(), figure("dscr", min)));
            }
        }
    }
    if let Some((k, x)) = numbers.first() {
        return Some(format!("{} {}", label::column(k), figure(k, *x)));
    }
    Some(format!("{} result{}", results.len(), if results.len() == 1 { "" } else { "s" }))
}

/// A number as a headline shows it: ratios like DSCR to two decimals.
fn figure(key: &str, x: f64) -> String {
    if key.contains("dscr") && x.is_finite() { format!("{x:.2}") } else { label::number(key, x) }
}

/// A sweep's headline: its scenarios, failures and the lowest DSCR seen.
pub fn sweep_headline(summary: &Summary) -> String {
    let mut text = format!("{} scenarios", summary.total);
    if summary.failed > 0 {
        text.push_str(&format!(", {} failed", summary.failed));
    }
    let worst = summary.properties.iter().min_by(|a, b| a.min_dscr.total_cmp(&b.min_dscr));
    if let Some(p) = worst {
        text.push_str(&format!(", lowest DSCR {} ({})", figure("dscr", p.min_dscr), p.property_name));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn headlines_prefer_the_portfolio_figure_then_the_lowest_dscr() {
        let review = map(
            json!({"result": [{"dscr": 1.5}, {"dscr": 0.9}], "summary": {"properties": 2, "portfolio_dscr": 1.234}}),
        );
        assert_eq!(headline(&review).unwrap(), format!("{} 1.23", label::column("portfolio_dscr")));
        let rows = map(json!({"result": [{"dscr": 1.5}, {"dscr": 0.9}]}));
        assert_eq!(headline(&rows).unwrap(), "2 rows, lowest DSCR 0.90");
        let other = map(json!({"result": ["a"], "count": 3}));
        assert_eq!(headline(&other).unwrap(), format!("{} 3", label::column("count")));
        assert_eq!(headline(&map(json!({"text": "x"}))).unwrap(), "1 result");
        assert_eq!(headline(&Map::new()), None);
    }

    #[test]
    fn entries_round_trip() {
        let entry = Entry::started("20261202-101010-x", RunKind::Sweep, " stress.py ");
        assert_eq!(entry.title, "stress.py");
        assert!(entry.created.ends_with('Z') && entry.created.len() == 24, "{}", entry.created);
        let text = serde_json::to_string(&entry).unwrap();
        assert!(text.contains("\"kind\":\"sweep\"") && text.contains("\"status\":\"running\""), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), entry);
    }
}
