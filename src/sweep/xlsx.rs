//! The sweep as a workbook: one sheet per table (per-property summary, every scenario's
//! rows, break-even points, sensitivity), DSCR cells coloured with the report bands.

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
use serde_json::Value;

use super::SweepReport;
use super::summary::{columns, rows};
use crate::report::DscrFormats;
use crate::report::xlsx::cell_at;
use crate::scenario::ScenarioStatus;

/// The workbook's bytes (the caller writes them: see `output::write_xlsx`).
pub fn render(report: &SweepReport) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let bands = DscrFormats::new();
    let dscr_format = |x: f64| bands.for_dscr(x);

    let s = &report.summary;
    let sheet = workbook.add_worksheet().set_name("Properties")?;
    header(
        sheet,
        &[
            "property",
            "scenarios",
            "min DSCR",
            "worst scenario",
            "mean",
            "p05",
            "median",
            "p95",
            "P(DSCR<1.0)",
            "P(DSCR<1.25)",
        ],
        &bold,
    )?;
    for (i, p) in s.properties.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, &p.property_name)?;
        sheet.write_number(row, 1, p.scenarios as f64)?;
        sheet.write_number_with_format(row, 2, p.min_dscr, dscr_format(p.min_dscr))?;
        sheet.write_string(row, 3, &p.worst_scenario)?;
        for (col, x) in [(4, p.mean_dscr), (5, p.p05), (6, p.p50), (7, p.p95)] {
            sheet.write_number_with_format(row, col, x, dscr_format(x))?;
        }
        sheet.write_number(row, 8, p.prob_below_1)?;
        sheet.write_number(row, 9, p.prob_below_1_25)?;
    }
    sheet.set_column_width(0, 34)?;
    sheet.set_column_width(3, 34)?;

    let sheet = workbook.add_worksheet().set_name("Scenarios")?;
    let (param_keys, row_keys) = columns(&report.scenarios);
    let titles: Vec<&str> = ["scenario", "status", "error"]
        .into_iter()
        .chain(param_keys.iter().map(String::as_str))
        .chain(row_keys.iter().map(String::as_str))
        .collect();
    header(sheet, &titles, &bold)?;
    let mut line = 1u32;
    for scenario in &report.scenarios {
        let results: Vec<_> = rows(scenario).collect();
        for result_row in results.iter().map(Some).chain(results.is_empty().then_some(None)) {
            sheet.write_string(line, 0, &scenario.id)?;
            sheet.write_string(line, 1, if scenario.status == ScenarioStatus::Ok { "ok" } else { "error" })?;
            if let Some(error) = &scenario.error {
                sheet.write_string(line, 2, &error.message)?;
            }
            for (i, key) in param_keys.iter().enumerate() {
                let (line, col) = cell_at(line as usize, 3 + i)?;
                cell(sheet, line, col, scenario.params.get(key), None)?;
            }
            if let Some(result_row) = result_row {
                for (i, key) in row_keys.iter().enumerate() {
                    let value = result_row.get(key);
                    let format = (key == "dscr").then(|| value.and_then(Value::as_f64).map(dscr_format)).flatten();
                    let (line, col) = cell_at(line as usize, 3 + param_keys.len() + i)?;
                    cell(sheet, line, col, value, format)?;
                }
            }
            line += 1;
        }
    }
    sheet.set_column_width(0, 30)?;

    let sheet = workbook.add_worksheet().set_name("Break-even")?;
    header(
        sheet,
        &["property", "parameter", "DSCR threshold", "break-even value", "status", "range from", "range to"],
        &bold,
    )?;
    for (i, b) in s.analysis.break_even.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, &b.property_name)?;
        sheet.write_string(row, 1, &b.param)?;
        sheet.write_number(row, 2, b.threshold)?;
        if let Some(value) = b.value {
            sheet.write_number(row, 3, value)?;
        }
        sheet.write_string(row, 4, b.status)?;
        sheet.write_number(row, 5, b.range[0])?;
        sheet.write_number(row, 6, b.range[1])?;
    }
    sheet.set_column_width(0, 34)?;

    let sheet = workbook.add_worksheet().set_name("Sensitivity")?;
    header(sheet, &["parameter", "low", "high", "portfolio DSCR at low", "portfolio DSCR at high", "swing"], &bold)?;
    for (i, t) in s.analysis.sensitivity.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, &t.param)?;
        sheet.write_number(row, 1, t.low_value)?;
        sheet.write_number(row, 2, t.high_value)?;
        sheet.write_number_with_format(row, 3, t.dscr_at_low, dscr_format(t.dscr_at_low))?;
        sheet.write_number_with_format(row, 4, t.dscr_at_high, dscr_format(t.dscr_at_high))?;
        sheet.write_number(row, 5, t.swing)?;
    }
    workbook.save_to_buffer()
}

fn header(sheet: &mut Worksheet, titles: &[&str], bold: &Format) -> Result<(), XlsxError> {
    for (i, title) in titles.iter().enumerate() {
        sheet.write_string_with_format(0, i as u16, *title, bold)?;
    }
    Ok(())
}

fn cell(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    value: Option<&Value>,
    format: Option<&Format>,
) -> Result<(), XlsxError> {
    match (value, format) {
        (Some(Value::Number(n)), Some(format)) => {
            sheet.write_number_with_format(row, col, n.as_f64().unwrap_or(f64::NAN), format).map(|_| ())
        }
        (Some(Value::Number(n)), None) => sheet.write_number(row, col, n.as_f64().unwrap_or(f64::NAN)).map(|_| ()),
        (Some(Value::Bool(b)), _) => sheet.write_boolean(row, col, *b).map(|_| ()),
        (Some(Value::String(s)), _) => sheet.write_string(row, col, s).map(|_| ()),
        (Some(Value::Null) | None, _) => Ok(()),
        (Some(other), _) => sheet.write_string(row, col, other.to_string()).map(|_| ()),
    }
}
