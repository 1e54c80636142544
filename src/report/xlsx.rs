//! Workbook cell formats shared by every XLSX output.

use rust_xlsxwriter::{ColNum, Color, Format, RowNum, XlsxError};

use super::dscr_colour;

/// A cell's position as the workbook numbers it. Past a sheet's rows or columns it is an
/// error, never a position that wraps around onto another cell (a script decides how many
/// columns its results have).
pub fn cell_at(row: usize, col: usize) -> Result<(RowNum, ColNum), XlsxError> {
    match (RowNum::try_from(row), ColNum::try_from(col)) {
        (Ok(row), Ok(col)) => Ok((row, col)),
        _ => Err(XlsxError::RowColumnLimitError),
    }
}

/// DSCR cells in the report bands: white on the band's colour, two decimals. Built once
/// per workbook, not per cell.
pub struct DscrFormats {
    bands: Vec<(&'static str, Format)>,
}

impl DscrFormats {
    /// The three band formats.
    pub fn new() -> Self {
        let bands = [dscr_colour(2.0), dscr_colour(1.1), dscr_colour(0.5)]
            .into_iter()
            .map(|hex| {
                let rgb = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
                let format = Format::new()
                    .set_background_color(Color::RGB(rgb))
                    .set_font_color(Color::White)
                    .set_num_format("0.00");
                (hex, format)
            })
            .collect();
        Self { bands }
    }

    /// The format for a cell holding `dscr`.
    pub fn for_dscr(&self, dscr: f64) -> &Format {
        let hex = dscr_colour(dscr);
        &self.bands.iter().find(|(h, _)| *h == hex).expect("dscr_colour gives one of the three bands").1
    }
}

impl Default for DscrFormats {
    fn default() -> Self {
        Self::new()
    }
}
