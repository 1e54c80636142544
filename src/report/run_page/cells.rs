//! The run page's tables: column keys and already formatted cells, so that a page stored
//! as `page.json` renders again without the records it was built from.
//!
//! A result's cells follow the terminal's rules (`metaexec run` prints the same tables):
//! numbers as [`label::number`] shows them, scenario ids in words, an object of plain
//! values as `key`/`value` rows each formatted by its own key; a DSCR cell carries its
//! band. The what-if panel rebuilds a result table in the browser from a new value, so
//! `templates/whatif.js` holds the same rules; the parent module's tests keep the two in
//! step on the cases that matter (bands, money, percent).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::line;
use crate::report::{self, label, tabular};

/// The most rows a table shows; `MAX_ROWS` in `whatif.js` cuts at the same count.
pub const MAX_ROWS: usize = 500;

/// How a table was laid out, which says how to rebuild it from a new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A list of row objects: a row per object, a column per key.
    Rows,
    /// An object of plain values: a row per key, in the columns `key` and `value`.
    Pairs,
    /// Laid out by the host from a record (the sweep's figures, the audit): never rebuilt.
    Fixed,
}

/// A table ready to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The result it shows (`data-result-key`), for a result's table.
    pub result_key: Option<String>,
    /// How it was laid out.
    pub shape: Shape,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows, one cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// A line under the table (rows left out).
    pub note: Option<String>,
}

/// A column: its key (`data-column`) and its title. A key is guest text too: it is kept
/// as it is unless it holds a control, which is shown as an escape (and a what-if answer
/// then leaves that column empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The key as the data names it.
    pub key: String,
    /// The title people read.
    pub label: String,
}

/// One cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The text shown, on one line, its controls made visible.
    pub text: String,
    /// The DSCR band (`green`, `yellow`, `red`), for a DSCR.
    pub band: Option<String>,
    /// Whether it holds a number (aligned right).
    pub numeric: bool,
}

impl Cell {
    /// A cell of text.
    pub fn text(text: &str) -> Self {
        Self { text: line(text), band: None, numeric: false }
    }

    /// A number already formatted.
    pub fn number(text: String) -> Self {
        Self { text: line(&text), band: None, numeric: true }
    }

    /// A DSCR to two decimals in its band; empty where there is none.
    pub fn dscr(dscr: Option<f64>) -> Self {
        match dscr {
            Some(x) if x.is_finite() => {
                Self { text: format!("{x:.2}"), band: Some(report::dscr_band(x).to_owned()), numeric: true }
            }
            Some(x) => Self::number(x.to_string()),
            None => Self::text(""),
        }
    }

    /// `value` in the column `column` of a result.
    pub fn value(column: &str, value: &Value) -> Self {
        let text = match value {
            Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |x| label::number(column, x)),
            Value::String(s) if is_scenario_column(column) => label::scenario(s),
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        let band = match value {
            Value::Number(n) if is_dscr_column(column) => {
                n.as_f64().filter(|x| x.is_finite()).map(|x| report::dscr_band(x).to_owned())
            }
            _ => None,
        };
        Self { text: line(&text), band, numeric: value.is_number() }
    }
}

/// Whether a column holds DSCRs: its key names one (`dscr`, `portfolio_dscr`, `dscr_base`).
pub fn is_dscr_column(key: &str) -> bool {
    key.to_ascii_lowercase().contains("dscr")
}

/// Whether a column holds scenario ids, shown in words.
fn is_scenario_column(key: &str) -> bool {
    key == "scenario" || key.ends_with("_scenario")
}

impl Table {
    /// A table laid out by the host: `columns` as `(key, title)`.
    pub fn fixed(columns: &[(&str, &str)], rows: Vec<Vec<Cell>>) -> Self {
        Self {
            result_key: None,
            shape: Shape::Fixed,
            columns: columns.iter().map(|(key, label)| Column { key: line(key), label: line(label) }).collect(),
            rows,
            note: None,
        }
    }

    /// The table of the result `key`, when its value is one (see [`tabular`]); at most
    /// [`MAX_ROWS`] rows, with a note saying how many were left out.
    pub fn of_result(key: &str, value: &Value) -> Option<Self> {
        let table = tabular(value)?;
        let total = table.rows.len();
        let (shape, columns, rows) = match value {
            Value::Object(_) => {
                let rows = table
                    .rows
                    .iter()
                    .take(MAX_ROWS)
                    .map(|row| match row.as_slice() {
                        // Each value is shown as its own key says, as the terminal does.
                        [Value::String(key), value] => vec![Cell::text(&label::column(key)), Cell::value(key, value)],
                        other => other.iter().map(|v| Cell::value("value", v)).collect(),
                    })
                    .collect();
                (Shape::Pairs, table.columns, rows)
            }
            _ => {
                let rows = table
                    .rows
                    .iter()
                    .take(MAX_ROWS)
                    .map(|row| table.columns.iter().zip(row).map(|(column, v)| Cell::value(column, v)).collect())
                    .collect();
                (Shape::Rows, table.columns, rows)
            }
        };
        Some(Self {
            result_key: Some(line(key)),
            shape,
            columns: columns.iter().map(|key| Column { key: line(key), label: line(&label::column(key)) }).collect(),
            rows,
            note: (total > MAX_ROWS).then(|| format!("The first {MAX_ROWS} of {total} rows.")),
        })
    }

    /// Whether any cell holds a number.
    pub fn has_numbers(&self) -> bool {
        self.rows.iter().flatten().any(|cell| cell.numeric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_follow_the_terminal_rules() {
        assert_eq!(Cell::value("noi", &json!(1234.5)).text, "1,234.50");
        assert_eq!(Cell::value("interest_rate", &json!(0.0625)).text, "6.25%");
        assert_eq!(Cell::value("worst_scenario", &json!("noi_change=-0.2")).text, "NOI −20%");
        let dscr = Cell::value("portfolio_dscr", &json!(1.1));
        assert_eq!((dscr.text.as_str(), dscr.band.as_deref(), dscr.numeric), ("1.1", Some("yellow"), true));
        assert_eq!(Cell::value("dscr_note", &json!("low")).band, None);
        assert_eq!(Cell::value("name", &json!("a\u{1b}[2Jb")).text, "a\\x1b[2Jb");
        assert_eq!(Cell::value("x", &Value::Null).text, "");
    }

    #[test]
    fn objects_of_plain_values_become_key_value_rows() {
        let table = Table::of_result("summary", &json!({"portfolio_dscr": 0.95, "total_noi": 1000})).unwrap();
        assert_eq!(table.shape, Shape::Pairs);
        assert_eq!(table.columns[0].key, "key");
        assert_eq!(table.rows[0][0].text, "portfolio DSCR");
        assert_eq!(table.rows[0][1].band.as_deref(), Some("red"));
        assert_eq!(table.rows[1][1].text, "1,000.00");
        assert!(Table::of_result("n", &json!(3)).is_none());
    }

    #[test]
    fn long_results_are_cut_with_a_note() {
        let rows: Vec<Value> = (0..MAX_ROWS + 2).map(|i| json!({"i": i})).collect();
        let table = Table::of_result("result", &Value::Array(rows)).unwrap();
        assert_eq!(table.rows.len(), MAX_ROWS);
        assert_eq!(table.note.as_deref(), Some("The first 500 of 502 rows."));
    }
}
