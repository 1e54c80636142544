//! "Did you mean …?": the real name closest to a misspelt or invented one.
//!
//! Edit distance alone fails on the most common invention, a synonym: a model writes
//! `net_income` for `noi` or `debt_service` for `annual_debt_service`. So names are
//! compared as sets of words after expanding the finance abbreviations a schema uses, and
//! edit distance only breaks ties and catches typos.

/// Abbreviations and the words they stand for.
const EXPANSIONS: &[(&str, &[&str])] = &[
    ("noi", &["net", "operating", "income"]),
    ("dscr", &["debt", "service", "coverage", "ratio"]),
    ("ds", &["debt", "service"]),
    ("ltv", &["loan", "to", "value"]),
    ("opex", &["operating", "expenses"]),
    ("capex", &["capital", "expenditure"]),
    ("gla", &["gross", "leasable", "area"]),
    ("sqft", &["square", "feet"]),
    ("egi", &["effective", "gross", "income"]),
    ("pgi", &["potential", "gross", "income"]),
    ("irr", &["internal", "rate", "return"]),
    ("npv", &["net", "present", "value"]),
    ("id", &["identifier"]),
    ("qty", &["quantity"]),
    ("amt", &["amount"]),
    ("pct", &["percent"]),
    ("yr", &["year"]),
];

/// Words that mean the same for the purpose of matching column names.
const SYNONYMS: &[(&str, &str)] = &[
    ("name", "title"),
    ("revenue", "income"),
    ("expense", "expenses"),
    ("cost", "expenses"),
    ("costs", "expenses"),
    ("rate", "ratio"),
    ("amount", "principal"),
    ("balance", "principal"),
    ("debt", "loan"),
    ("occupancy", "occupied"),
    ("address", "location"),
    ("asset", "property"),
    ("class", "type"),
    ("kind", "type"),
    ("category", "type"),
    ("building", "property"),
];

fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in name.to_ascii_lowercase().split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        match EXPANSIONS.iter().find(|(abbr, _)| *abbr == word) {
            Some((_, expanded)) => out.extend(expanded.iter().map(|w| w.to_string())),
            None => out.push(word.to_string()),
        }
    }
    out
}

fn same_word(a: &str, b: &str) -> bool {
    a == b
        || SYNONYMS.iter().any(|(x, y)| (a == *x && b == *y) || (a == *y && b == *x))
        || (a.len() > 3 && b.len() > 3 && (a.starts_with(b) || b.starts_with(a)))
}

/// How alike two names are, from 0 to 1.
fn similarity(wrong: &str, real: &str) -> f64 {
    let (w, r) = (words(wrong), words(real));
    let shared = w.iter().filter(|a| r.iter().any(|b| same_word(a, b))).count();
    let overlap = if w.is_empty() || r.is_empty() { 0.0 } else { shared as f64 / w.len().max(r.len()) as f64 };
    let edit = strsim::normalized_damerau_levenshtein(&wrong.to_ascii_lowercase(), &real.to_ascii_lowercase());
    // Shared words dominate; spelling decides between equally related names.
    overlap.max(edit * 0.9) + edit * 0.05
}

/// The candidate most like `wrong`, if any is alike enough to be worth suggesting.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (similarity(wrong, c), c))
        .filter(|(score, _)| *score >= 0.45)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    const METRICS: &[&str] = &[
        "metric_id",
        "property_id",
        "noi",
        "annual_debt_service",
        "dscr",
        "gross_revenue",
        "operating_expenses",
        "occupancy_rate",
        "fiscal_year",
    ];

    #[test]
    fn synonyms_and_abbreviations_find_the_real_column() {
        assert_eq!(closest("net_income", METRICS.iter().copied()), Some("noi"));
        assert_eq!(closest("net_operating_income", METRICS.iter().copied()), Some("noi"));
        assert_eq!(closest("debt_service", METRICS.iter().copied()), Some("annual_debt_service"));
        assert_eq!(closest("revenue", METRICS.iter().copied()), Some("gross_revenue"));
        assert_eq!(closest("opex", METRICS.iter().copied()), Some("operating_expenses"));
        assert_eq!(closest("occupancy", METRICS.iter().copied()), Some("occupancy_rate"));
        assert_eq!(closest("year", METRICS.iter().copied()), Some("fiscal_year"));
        assert_eq!(closest("asset_class", ["property_name", "property_type", "city"]), Some("property_type"));
    }

    #[test]
    fn typos_find_the_real_column() {
        assert_eq!(closest("dcsr", METRICS.iter().copied()), Some("dscr"));
        assert_eq!(closest("fiscal_yr", METRICS.iter().copied()), Some("fiscal_year"));
        assert_eq!(closest("property", ["properties", "loans"].into_iter()), Some("properties"));
    }

    #[test]
    fn unrelated_names_get_no_suggestion() {
        assert_eq!(closest("zebra", METRICS.iter().copied()), None);
    }
}
