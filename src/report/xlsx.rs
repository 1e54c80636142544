//! Workbook cell formats shared by every XLSX output.

use rust_xlsxwriter::{Color, Format};

use super::dscr_colour;

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
