//! Results as files: each table a script reported (a list of row objects, or an object of
//! plain values) as a CSV file, or all of them as sheets of one workbook with DSCR cells
//! coloured with the report bands.

use std::path::{Path, PathBuf};

use rust_xlsxwriter::{Format, Workbook};
use serde_json::{Map, Value};

use crate::guest_dir::GuestDir;
use crate::report::xlsx::cell_at;
use crate::report::{DscrFormats, Tabular, label, tabular};
use crate::sweep::output::csv_text;

/// The tables among the results, by name, in order; other values (text, nested data)
/// are skipped.
fn sheets(results: &Map<String, Value>) -> Vec<(&str, Tabular)> {
    results.iter().filter_map(|(name, value)| tabular(value).map(|t| (name.as_str(), t))).collect()
}

fn text(value: &Value) -> String {
    csv_text(Some(value))
}

/// Writes one CSV file per table into `dir` (through [`GuestDir`]: names and cells come
/// from the script); returns their paths.
pub fn write_csv(results: &Map<String, Value>, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = GuestDir::open(dir)?;
    let mut paths = Vec::new();
    for (name, sheet) in sheets(results) {
        let path = dir.write_with(&format!("{}.csv", file_stem(name)), |out| {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(&sheet.columns)?;
            for row in &sheet.rows {
                csv.write_record(row.iter().map(text))?;
            }
            csv.flush()
        })?;
        paths.push(path);
    }
    Ok(paths)
}

/// Writes every table as a sheet of one workbook, `name` in `dir`, and `plan` (the steps
/// and assumptions, as `(kind, text)`) on a sheet of its own; returns its path.
pub fn write_xlsx(
    results: &Map<String, Value>,
    plan: &[(&str, &str)],
    dir: &Path,
    name: &str,
) -> std::io::Result<PathBuf> {
    let bytes = render_xlsx(results, plan).map_err(std::io::Error::other)?;
    GuestDir::open(dir)?.write(name, &bytes)
}

/// Every table as a sheet of one workbook, headers in words and frozen, money and rates
/// in their number formats; then the plan: the file's bytes.
fn render_xlsx(results: &Map<String, Value>, plan: &[(&str, &str)]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let bands = DscrFormats::new();
    let formats: Vec<(&str, Format)> =
        ["#,##0.00", "0.00%"].into_iter().map(|f| (f, Format::new().set_num_format(f))).collect();
    let format_of = |key: &str| {
        label::excel_format(key).and_then(|wanted| formats.iter().find(|(f, _)| *f == wanted).map(|(_, f)| f))
    };
    let sheets = sheets(results);
    for (name, sheet) in &sheets {
        let ws = workbook.add_worksheet();
        // Sheet names are at most 31 characters, without []:*?/\.
        let name: String = name.chars().filter(|c| !"[]:*?/\\".contains(*c)).take(31).collect();
        ws.set_name(if name.is_empty() { "results" } else { &name })?;
        for (col, title) in sheet.columns.iter().enumerate() {
            let (r, c) = cell_at(0, col)?;
            ws.write_string_with_format(r, c, label::column(title), &bold)?;
        }
        ws.set_freeze_panes(1, 0)?;
        for (i, row) in sheet.rows.iter().enumerate() {
            for (col, value) in row.iter().enumerate() {
                let (r, c) = cell_at(i + 1, col)?;
                match value {
                    Value::Number(n) => {
                        let x = n.as_f64().unwrap_or(f64::NAN);
                        // In a key/value sheet the row's key says what the value is.
                        let key = match (sheet.columns.as_slice(), row.first()) {
                            ([k, v], Some(Value::String(row_key))) if k == "key" && v == "value" => row_key.as_str(),
                            _ => sheet.columns.get(col).map_or("", String::as_str),
                        };
                        if key.contains("dscr") {
                            ws.write_number_with_format(r, c, x, bands.for_dscr(x))?;
                        } else if let Some(format) = format_of(key) {
                            ws.write_number_with_format(r, c, x, format)?;
                        } else {
                            ws.write_number(r, c, x)?;
                        }
                    }
                    Value::Bool(b) => {
                        ws.write_boolean(r, c, *b)?;
                    }
                    Value::Null => {}
                    other => {
                        ws.write_string(r, c, text(other))?;
                    }
                }
            }
        }
        ws.set_column_width(0, 32)?;
    }
    if sheets.is_empty() {
        workbook.add_worksheet().set_name("results")?.write_string(0, 0, "the script reported no table")?;
    }
    if !plan.is_empty() {
        let ws = workbook.add_worksheet();
        ws.set_name("plan and assumptions")?;
        ws.write_string_with_format(0, 0, "kind", &bold)?;
        ws.write_string_with_format(0, 1, "what", &bold)?;
        for (i, (kind, text)) in plan.iter().enumerate() {
            let (r, _) = cell_at(i + 1, 0)?;
            ws.write_string(r, 0, *kind)?;
            ws.write_string(r, 1, *text)?;
        }
        ws.set_column_width(0, 12)?;
        ws.set_column_width(1, 100)?;
    }
    workbook.save_to_buffer()
}

fn file_stem(name: &str) -> String {
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if stem.is_empty() { "results".into() } else { stem }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_become_csv_with_quoting() {
        let dir = tempfile::tempdir().unwrap();
        let results = json!({
            "result": [{"property_name": "Mall, \"A\"", "dscr": 1.5}, {"property_name": "B", "dscr": null, "note": "x"}],
            "summary": {"properties": 2, "portfolio_dscr": 1.3},
            "chart": {"kind": "bar", "points": [1, 2]},
        });
        let paths = write_csv(results.as_object().unwrap(), dir.path()).unwrap();
        assert_eq!(paths.len(), 2, "the nested chart is not a table");
        assert_eq!(
            std::fs::read_to_string(&paths[0]).unwrap(),
            "property_name,dscr,note\n\"Mall, \"\"A\"\"\",1.5,\nB,,x\n"
        );
        assert_eq!(std::fs::read_to_string(&paths[1]).unwrap(), "key,value\nproperties,2\nportfolio_dscr,1.3\n");
    }
}
