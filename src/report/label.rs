//! Words for what people read: column keys, scenario parameters and scenario ids as a
//! report shows them (`annual_debt_service` → "debt service", `noi_change=-0.3` →
//! "NOI −30%", `rate_change=0.02` → "rate +200 bp"), and money with thousands separators.
//! The JSON keeps the keys; only what is shown changes.

/// Words that are written in capitals in a label.
const ACRONYMS: [&str; 8] = ["noi", "dscr", "ltv", "irr", "yoy", "p05", "p95", "id"];

/// A column key in words: `annual_debt_service` → "debt service", `portfolio_dscr` →
/// "portfolio DSCR", `max_loan` → "max loan".
pub fn column(key: &str) -> String {
    let known = match key {
        "property_name" => Some("property"),
        "annual_debt_service" => Some("debt service"),
        "max_annual_debt_service" => Some("max debt service"),
        "change_pct" | "yoy_change_pct" => Some(if key == "change_pct" { "change %" } else { "YoY change %" }),
        _ => None,
    };
    if let Some(label) = known {
        return label.to_owned();
    }
    key.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| if ACRONYMS.contains(&w) { w.to_uppercase() } else { w.to_owned() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A scenario parameter's name in words: `noi_change` → "NOI", `rate_change` → "rate".
pub fn param_name(key: &str) -> String {
    match key {
        "noi_change" => "NOI".into(),
        "revenue_change" => "revenue".into(),
        "expense_change" => "expenses".into(),
        "vacancy_change" => "vacancy".into(),
        "rate_change" => "rate".into(),
        other => column(other),
    }
}

/// A parameter and its value in words: relative changes in percent, vacancy in points,
/// rates in basis points; other parameters as `key value`.
pub fn param(key: &str, value: f64) -> String {
    let signed = |x: f64, decimals: usize| {
        let text = format!("{:.*}", decimals, x.abs());
        let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text };
        let sign = if text.chars().all(|c| c == '0' || c == '.') {
            "±"
        } else if x < 0.0 {
            "−"
        } else {
            "+"
        };
        format!("{sign}{text}")
    };
    match key {
        "noi_change" | "revenue_change" | "expense_change" => {
            format!("{} {}%", param_name(key), signed(value * 100.0, 2))
        }
        "vacancy_change" => format!("vacancy {} pts", signed(value * 100.0, 2)),
        "rate_change" => format!("rate {} bp", signed(value * 10_000.0, 1)),
        other => format!("{} {}", column(other), trim(value)),
    }
}

/// A scenario id in words: grid points (`noi_change=-0.2;rate_change=0.01`) become
/// "NOI −20%, rate +100 bp"; named scenarios and draws (`mc-00042`) stay as they are.
pub fn scenario(id: &str) -> String {
    let parts: Option<Vec<String>> = id
        .split([';', ','])
        .map(|part| {
            let (key, value) = part.split_once('=')?;
            let value: f64 = value.trim().parse().ok()?;
            Some(param(key.trim(), value))
        })
        .collect();
    match parts {
        Some(parts) if !parts.is_empty() => parts.join(", "),
        _ => id.to_owned(),
    }
}

/// How a number in a column is shown: money with thousands separators and cents, rates
/// and shares in percent, anything else to at most four decimals.
pub fn number(key: &str, x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    match kind(key) {
        Kind::Money => thousands(x, 2),
        Kind::Percent => format!("{}%", trim_to(x * 100.0, 2)),
        Kind::Plain => trim(x),
    }
}

/// The spreadsheet number format of a column, from its key: money with thousands
/// separators, rates as percent; `None` for plain numbers.
pub fn excel_format(key: &str) -> Option<&'static str> {
    match kind(key) {
        Kind::Money => Some("#,##0.00"),
        Kind::Percent => Some("0.00%"),
        Kind::Plain => None,
    }
}

enum Kind {
    Money,
    Percent,
    Plain,
}

/// What a column holds, from its key.
fn kind(key: &str) -> Kind {
    let key = key.to_ascii_lowercase();
    let has = |w: &str| key.split('_').any(|part| part == w);
    if key.contains("dscr") || key.ends_with("_count") || has("months") || has("years") || has("rank") {
        return Kind::Plain;
    }
    if key.ends_with("_change")
        || has("rate")
        || has("yield")
        || has("ltv")
        || has("irr")
        || has("pct")
        || has("growth")
        || has("occupancy")
    {
        return Kind::Percent;
    }
    let money = [
        "noi",
        "revenue",
        "expenses",
        "expense",
        "service",
        "loan",
        "principal",
        "price",
        "value",
        "headroom",
        "amount",
        "income",
        "rent",
        "balance",
        "cost",
        "costs",
        "proceeds",
    ];
    if money.iter().any(|w| has(w)) { Kind::Money } else { Kind::Plain }
}

/// A float to at most four decimals, trailing zeros dropped.
pub fn trim(x: f64) -> String {
    trim_to(x, 4)
}

fn trim_to(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    if text == "-0" { "0".into() } else { text.to_owned() }
}

/// `1234567.891` → "1,234,567.89".
fn thousands(x: f64, decimals: usize) -> String {
    let text = format!("{:.decimals$}", x.abs());
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), ""), |(w, f)| (w, f));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') { "-" } else { "" };
    if fraction.is_empty() { format!("{sign}{grouped}") } else { format!("{sign}{grouped}.{fraction}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_scenarios_read_as_words() {
        assert_eq!(column("annual_debt_service"), "debt service");
        assert_eq!(column("portfolio_dscr"), "portfolio DSCR");
        assert_eq!(column("trend_per_month"), "trend per month");
        assert_eq!(scenario("noi_change=-0.3"), "NOI −30%");
        assert_eq!(scenario("noi_change=-0.2;rate_change=0.01"), "NOI −20%, rate +100 bp");
        assert_eq!(scenario("vacancy_change=0.05"), "vacancy +5 pts");
        assert_eq!(scenario("rate_change=0"), "rate ±0 bp");
        assert_eq!(scenario("severe"), "severe");
        assert_eq!(scenario("mc-00042"), "mc-00042");
        assert_eq!(param("noi_change", -0.125), "NOI −12.5%");
    }

    #[test]
    fn money_rates_and_plain_numbers() {
        assert_eq!(number("max_loan", 67_199_899.236_4), "67,199,899.24");
        assert_eq!(number("noi", -1234.5), "-1,234.50");
        assert_eq!(number("noi", 999.0), "999.00");
        assert_eq!(number("interest_rate", 0.0625), "6.25%");
        assert_eq!(number("irr", 0.077_912), "7.79%");
        assert_eq!(number("dscr", 1.940_000_1), "1.94");
        assert_eq!(number("target_dscr", 1.3), "1.3");
        assert_eq!(number("hold_years", 5.0), "5");
        assert_eq!(number("properties", 10.0), "10");
    }
}
