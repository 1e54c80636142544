//! SVG charts: bars with threshold lines, a histogram, a tornado. Plain SVG 1.1 with
//! fixed sizes and no fonts beyond the generic family.

use std::fmt::Write;

use super::escape;

const WIDTH: f64 = 760.0;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 40.0;
const ROW: f64 = 22.0;

/// One bar: a label, a value and its colour.
pub struct Bar {
    /// What the bar stands for.
    pub label: String,
    /// Its length.
    pub value: f64,
    /// Its fill.
    pub colour: &'static str,
}

fn open(height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         font-family=\"sans-serif\" font-size=\"12\" role=\"img\"><title>{}</title>",
        escape(title)
    )
}

/// Horizontal bars from zero, with vertical reference lines (e.g. DSCR 1.0 and 1.25).
pub fn bar_chart(title: &str, bars: &[Bar], reference_lines: &[f64]) -> String {
    let height = 30.0 + bars.len() as f64 * ROW + 20.0;
    let max = bars.iter().map(|b| b.value).chain(reference_lines.iter().copied()).fold(0.0_f64, f64::max).max(1e-9);
    let scale = (WIDTH - LEFT - RIGHT) / max;
    let mut out = open(height, title);
    for (i, bar) in bars.iter().enumerate() {
        let y = 20.0 + i as f64 * ROW;
        let w = (bar.value.max(0.0) * scale).max(0.5);
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\" />\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.2}</text>",
            LEFT - 6.0,
            y + 14.0,
            escape(&bar.label),
            y + 3.0,
            ROW - 6.0,
            bar.colour,
            LEFT + w + 4.0,
            y + 14.0,
            bar.value
        );
    }
    for line in reference_lines {
        let x = LEFT + line * scale;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"14\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#555\" stroke-dasharray=\"4 3\" />\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{line}</text>",
            height - 18.0,
            height - 4.0
        );
    }
    out.push_str("</svg>");
    out
}

/// A histogram of `values` in `bins` equal-width bins, bars coloured by `colour(bin
/// centre)`, with reference lines.
pub fn histogram(
    title: &str,
    values: &[f64],
    bins: usize,
    colour: fn(f64) -> &'static str,
    reference_lines: &[f64],
) -> String {
    let height = 260.0;
    let mut out = open(height, title);
    if values.is_empty() || bins == 0 {
        out.push_str("<text x=\"20\" y=\"30\">no values</text></svg>");
        return out;
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
    let mut counts = vec![0usize; bins];
    for v in values {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let top = *counts.iter().max().unwrap_or(&1) as f64;
    let (left, bottom, plot_w, plot_h) = (50.0, height - 40.0, WIDTH - 70.0, height - 70.0);
    let bar_w = plot_w / bins as f64;
    let x_of = |v: f64| left + (v - lo) / (width * bins as f64) * plot_w;
    for (i, count) in counts.iter().enumerate() {
        let h = *count as f64 / top * plot_h;
        let centre = lo + (i as f64 + 0.5) * width;
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{:.3}–{:.3}: {count}</title></rect>",
            left + i as f64 * bar_w,
            bottom - h,
            (bar_w - 1.0).max(0.5),
            colour(centre),
            lo + i as f64 * width,
            lo + (i + 1) as f64 * width
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\" stroke=\"#333\" />\
         <text x=\"{left}\" y=\"{:.1}\">{lo:.2}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{hi:.2}</text>\
         <text x=\"{:.1}\" y=\"16\">max {top} per bin</text>",
        left + plot_w,
        bottom + 16.0,
        left + plot_w,
        bottom + 16.0,
        left
    );
    for line in reference_lines.iter().filter(|l| **l >= lo && **l <= lo + width * bins as f64) {
        let x = x_of(*line);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"20\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#555\" stroke-dasharray=\"4 3\" />\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{line}</text>",
            bottom + 30.0
        );
    }
    out.push_str("</svg>");
    out
}

/// One bar of a tornado: the chart's measure at the two ends of one parameter's range.
pub struct TornadoBar {
    /// The parameter.
    pub label: String,
    /// At each end of the range: the parameter's value as shown, and the measure there.
    pub ends: [(String, f64); 2],
}

/// A tornado: per parameter, a bar between the measure at the two ends of its range,
/// each end labelled with its own value and the parameter value that gives it, around a
/// line at the base value.
pub fn tornado(title: &str, base: f64, bars: &[TornadoBar]) -> String {
    let height = 40.0 + bars.len() as f64 * ROW + 20.0;
    let mut out = open(height, title);
    let values = || bars.iter().flat_map(|b| b.ends.iter().map(|(_, v)| *v));
    let lo = values().fold(base, f64::min);
    let hi = values().fold(base, f64::max);
    let span = (hi - lo).max(1e-9);
    // Room either side of the bars for the ends' labels.
    let (left, right) = (LEFT + 60.0, WIDTH - RIGHT - 90.0);
    let x_of = |v: f64| left + (v - lo) / span * (right - left);
    for (i, bar) in bars.iter().enumerate() {
        let y = 24.0 + i as f64 * ROW;
        let [a, b] = &bar.ends;
        let (low, high) = if a.1 <= b.1 { (a, b) } else { (b, a) };
        let (x1, x2) = (x_of(low.1), x_of(high.1));
        let _ = write!(
            out,
            "<text x=\"8\" y=\"{:.1}\">{}</text>\
             <rect x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#1565c0\" />\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.2} at {}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.2} at {}</text>",
            y + 14.0,
            escape(&bar.label),
            y + 3.0,
            (x2 - x1).max(0.5),
            ROW - 6.0,
            x1 - 3.0,
            y + 14.0,
            low.1,
            escape(&low.0),
            x2 + 3.0,
            y + 14.0,
            high.1,
            escape(&high.0),
        );
    }
    let x = x_of(base);
    let _ = write!(
        out,
        "<line x1=\"{x:.1}\" y1=\"14\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\" />\
         <text x=\"{x:.1}\" y=\"12\" text-anchor=\"middle\">base {base:.2}</text>",
        height - 10.0
    );
    out.push_str("</svg>");
    out
}
