//! Self-contained HTML reports: tables and SVG charts drawn on the host, no scripts, no
//! CDN, so a report opens anywhere and can be mailed as one file.
//!
//! The markup is well-formed XML (every element closed, every text escaped), which the
//! tests check with an XML parser. [`terminal`] does the same job for text shown on a
//! terminal: guest text with its controls made visible.
//!
//! [`run_page`] is the page of one run (`report.html` in its folder), rendered from
//! templates; served by the dashboard it gains a what-if panel, the one place a script
//! runs in a report page.

pub mod label;
pub mod run_page;
mod svg;
mod table;
pub mod terminal;
pub mod xlsx;

use std::fmt::Write;

pub use svg::{Bar, TornadoBar, bar_chart, histogram, tornado};
pub use table::{Tabular, tabular};
pub use xlsx::DscrFormats;

/// The DSCR colour bands of the reports: green from 1.25, yellow from 1.0, red below.
pub fn dscr_colour(dscr: f64) -> &'static str {
    if dscr >= 1.25 {
        "#2e7d32"
    } else if dscr >= 1.0 {
        "#f9a825"
    } else {
        "#c62828"
    }
}

/// The name of `dscr`'s band in [`dscr_colour`]: `green`, `yellow` or `red`, for markup
/// that colours by class rather than by an inline colour.
pub fn dscr_band(dscr: f64) -> &'static str {
    if dscr >= 1.25 {
        "green"
    } else if dscr >= 1.0 {
        "yellow"
    } else {
        "red"
    }
}

/// Escapes text for HTML and XML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table: a header row and rows of already formatted cells; a cell may carry a
/// background colour.
pub struct HtmlTable {
    /// Column titles.
    pub header: Vec<String>,
    /// Rows of `(text, colour)`.
    pub rows: Vec<Vec<(String, Option<&'static str>)>>,
}

impl HtmlTable {
    /// The table's markup.
    pub fn render(&self) -> String {
        let mut out = String::from("<table><thead><tr>");
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            out.push_str("<tr>");
            for (text, colour) in row {
                match colour {
                    Some(c) => {
                        let _ = write!(out, "<td style=\"background:{c};color:#fff\">{}</td>", escape(text));
                    }
                    None => {
                        let _ = write!(out, "<td>{}</td>", escape(text));
                    }
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        out
    }
}

/// A whole page: a title, a subtitle and sections of `(heading, markup)`.
pub fn page(title: &str, subtitle: &str, sections: &[(String, String)]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\" />\
         <title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1><p class=\"sub\">{subtitle}</p>",
        title = escape(title),
        subtitle = escape(subtitle),
    );
    for (heading, body) in sections {
        let _ = write!(out, "<section><h2>{}</h2>{body}</section>", escape(heading));
    }
    out.push_str("</body></html>\n");
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}\
h1{margin-bottom:0}.sub{color:#666;margin-top:.2rem}section{margin:2rem 0}\
table{border-collapse:collapse;font-size:.9rem}th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}svg{max-width:100%;height:auto}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_bands() {
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
        assert_eq!(dscr_colour(1.25), "#2e7d32");
        assert_eq!(dscr_colour(1.0), "#f9a825");
        assert_eq!(dscr_colour(0.99), "#c62828");
    }
}
