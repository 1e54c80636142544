//! The everyday questions beyond a DSCR table, read from a request: a ranking, the largest
//! loan at a target DSCR, the loans maturing in a window, a monthly trend and the IRR of a
//! holding period. Each states what it assumed where the request did not say.

use super::recognise::{Number, find_word, numbers};
use crate::task::{Holding, MaturityWindow, Ranking, TaskKind};

/// The DSCR a loan is sized at when the request names none: the lending threshold.
pub const DEFAULT_TARGET_DSCR: f64 = 1.25;
/// The holding period when the request names none.
const DEFAULT_HOLD_YEARS: u32 = 5;
/// NOI growth a year when the request names none.
const DEFAULT_GROWTH: f64 = 0.02;
/// The going-in cap rate that prices a property the database gives no value for.
const DEFAULT_ENTRY_CAP: f64 = 0.07;
/// How much higher than the going-in cap rate a property sells at when the request names
/// no exit cap rate: half a point, the usual conservative spread.
const EXIT_CAP_SPREAD: f64 = 0.005;

/// What a request asks beyond DSCR, and the numbers of its text read for it.
#[derive(Debug, Default)]
pub struct Question {
    /// The family, when the request is one of these questions.
    pub kind: Option<TaskKind>,
    /// The order asked for the result table.
    pub rank: Option<Ranking>,
    /// The DSCR loans are sized at.
    pub target_dscr: Option<f64>,
    /// The loans asked about.
    pub maturities: Option<MaturityWindow>,
    /// The figure whose monthly history is asked for.
    pub trend: Option<String>,
    /// The holding period.
    pub holding: Option<Holding>,
    /// Byte offsets of the numbers read, so they are not read again as shocks.
    pub used: Vec<usize>,
    /// What was assumed.
    pub assumptions: Vec<String>,
    /// The words these readings used, so that the accounting counts them as read.
    pub words: Vec<&'static str>,
}

/// Result columns a ranking can order by, and the words that name them.
pub(super) const RANK_COLUMNS: [(&str, &[&str]); 8] = [
    ("debt_yield", &["debt yield"]),
    ("cap_rate", &["cap rate", "capitalization rate"]),
    ("ltv", &["ltv", "loan-to-value", "loan to value"]),
    ("annual_debt_service", &["debt service"]),
    ("noi", &["noi", "net operating income"]),
    ("occupancy_rate", &["occupancy"]),
    ("loan_amount", &["loan size", "loan amount", "principal", "loan"]),
    ("dscr", &["dscr", "coverage"]),
];

/// Figures a trend can follow, and the words that name them.
const TREND_FIGURES: [(&str, &[&str]); 4] = [
    ("noi", &["noi", "net operating income"]),
    ("revenue", &["revenue", "income", "rent"]),
    ("expenses", &["expense", "opex", "cost"]),
    ("occupancy", &["occupancy", "vacancy"]),
];

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today() -> String {
    crate::store::utc_now().date_naive().to_string()
}

/// Reads `text` (normalised) on `today` (`YYYY-MM-DD`, for "within 2 years").
pub fn question(text: &str, today: &str) -> Question {
    let has = |w: &str| find_word(text, w).is_some();
    let nums = numbers(text);
    let mut q = Question::default();
    if let Some(rank) = ranking(text, &nums, &mut q) {
        q.rank = Some(rank);
    }
    if has("irr") || has("internal rate of return") {
        holding(text, &nums, &mut q);
    } else if ["mature", "maturing", "maturity", "maturities", "come due", "coming due"].iter().any(|w| has(w)) {
        maturities(text, &nums, today, &mut q);
    } else if ["trend", "monthly", "by month", "per month", "month by month", "month-by-month", "over time", "history"]
        .iter()
        .any(|w| has(w))
    {
        let figure = first_of(text, &TREND_FIGURES).unwrap_or_else(|| {
            q.assumptions.push("the trend of NOI (the request named no figure)".into());
            "noi"
        });
        q.trend = Some(figure.to_owned());
        q.kind = Some(TaskKind::Trend);
        q.words.extend(["trend", "trends", "monthly", "month", "months", "time", "history", "historical", "series"]);
    } else if [
        "max loan",
        "maximum loan",
        "loan amount",
        "loan size",
        "size the loan",
        "loan sizing",
        "borrow",
        "how much debt",
    ]
    .iter()
    .any(|w| has(w))
    {
        loan_sizing(text, &nums, &mut q);
    }
    q
}

/// The first label of `groups` whose word comes earliest in `text`.
fn first_of(text: &str, groups: &[(&'static str, &[&str])]) -> Option<&'static str> {
    groups
        .iter()
        .filter_map(|(label, words)| words.iter().filter_map(|w| find_word(text, w)).min().map(|at| (at, *label)))
        .min()
        .map(|(_, label)| label)
}

/// Words that order a table, and superlatives that do so with a count beside them ("the 5
/// weakest", "top 3"), each with whether it puts the highest first.
const RANK_VERBS: [&str; 7] = ["rank", "ranked", "ranking", "sort", "sorted", "order by", "ordered by"];
const SUPERLATIVES: [(&str, bool); 12] = [
    ("top", true),
    ("bottom", false),
    ("weakest", false),
    ("lowest", false),
    ("worst", false),
    ("smallest", false),
    ("least", false),
    ("strongest", true),
    ("highest", true),
    ("best", true),
    ("largest", true),
    ("biggest", true),
];

fn ranking(text: &str, nums: &[Number], q: &mut Question) -> Option<Ranking> {
    // A count right before or after a superlative: "the 5 weakest", "top 3", "bottom 2".
    let counted = SUPERLATIVES.iter().find_map(|(word, descending)| {
        let at = find_word(text, word)?;
        let end = at + word.len();
        let n = nums.iter().find(|n| {
            let whole = n.value >= 1.0 && n.value.fract() == 0.0 && !n.percent;
            let just_before = n.end <= at && text[n.end..at].trim().is_empty();
            let just_after = n.start >= end && text[end..n.start].trim().is_empty();
            whole && (just_before || just_after)
        })?;
        Some((at, *descending, n))
    });
    let verb = RANK_VERBS.iter().filter_map(|w| find_word(text, w)).min();
    let start = match (verb, &counted) {
        (None, None) => return None,
        (Some(at), None) => at,
        (None, Some((at, ..))) => *at,
        (Some(a), Some((b, ..))) => a.min(*b),
    };
    let from = text[..start].rfind(['.', ';', '?', '!']).map_or(0, |at| at + 1);
    let by = first_of(&text[from..], &RANK_COLUMNS).unwrap_or_else(|| {
        q.assumptions.push("ranked by DSCR (the request named no figure)".into());
        "dscr"
    });
    let said = |words: &[&str]| words.iter().any(|w| find_word(text, w).is_some());
    let descending = if said(&["lowest first", "ascending", "worst first", "smallest first"]) {
        false
    } else if said(&["highest first", "descending", "best first", "largest first"]) {
        true
    } else {
        counted.as_ref().is_none_or(|(_, descending, _)| *descending)
    };
    let limit = counted.map(|(_, _, n)| {
        q.used.push(n.start);
        n.value as usize
    });
    q.words.extend([
        "rank",
        "ranked",
        "ranking",
        "sort",
        "sorted",
        "order",
        "ordered",
        "top",
        "bottom",
        "highest",
        "lowest",
        "ascending",
        "descending",
        "smallest",
        "largest",
        "biggest",
        "best",
        "worst",
        "weakest",
        "strongest",
        "least",
        "first",
    ]);
    Some(Ranking { by: by.to_owned(), descending, limit })
}

fn loan_sizing(text: &str, nums: &[Number], q: &mut Question) {
    // "at 1.3x DSCR", "at a DSCR of 1.3", "1.30x coverage".
    let target = nums.iter().find(|n| {
        let after = text[n.end..].trim_start();
        !n.percent
            && (0.5..=3.0).contains(&n.value)
            && (after.starts_with('x') || after.starts_with("dscr") || {
                let before = text[..n.start].trim_end();
                before.ends_with("dscr of") || before.ends_with("dscr") || before.ends_with("coverage of")
            })
    });
    let target = match target {
        Some(n) => {
            q.used.push(n.start);
            n.value
        }
        None => {
            q.assumptions.push(format!("a target DSCR of {DEFAULT_TARGET_DSCR} (the request named none)"));
            DEFAULT_TARGET_DSCR
        }
    };
    q.target_dscr = Some(target);
    q.kind = Some(TaskKind::LoanSizing);
    q.assumptions.push("each loan keeps its interest rate and amortization, with monthly payments".into());
    q.words.extend([
        "max",
        "maximum",
        "amount",
        "size",
        "sizing",
        "sized",
        "support",
        "supports",
        "carry",
        "afford",
        "borrow",
        "borrowing",
        "capacity",
        "proceeds",
        "largest",
        "biggest",
        "much",
        "target",
    ]);
}

fn maturities(text: &str, nums: &[Number], today: &str, q: &mut Question) {
    q.kind = Some(TaskKind::Maturities);
    q.words.extend([
        "mature",
        "matures",
        "matured",
        "maturing",
        "maturity",
        "maturities",
        "due",
        "come",
        "coming",
        "before",
        "until",
        "till",
        "through",
        "end",
        "within",
        "next",
    ]);
    let year_after = |word: &str| {
        let at = find_word(text, word)?;
        let rest = text[at + word.len()..].trim_start();
        let rest = rest.strip_prefix("the end of ").or_else(|| rest.strip_prefix("end of ")).unwrap_or(rest);
        let offset = text.len() - rest.len();
        nums.iter().find(|n| n.start == offset && (1900.0..=2200.0).contains(&n.value))
    };
    let iso = |n: &Number| {
        // "2029-06-30" reads as the number 2029 followed by "-06-30".
        let tail = &text[n.end..];
        let date = format!("{}{}", n.value, tail.get(..6).unwrap_or(""));
        chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok().map(|d| d.to_string())
    };
    let window = if let Some(n) = year_after("before") {
        q.used.push(n.start);
        MaturityWindow { after: None, before: iso(n).unwrap_or(format!("{}-01-01", n.value)) }
    } else if let Some(n) = ["by", "until", "till", "through", "by the end of"].iter().find_map(|w| year_after(w)) {
        q.used.push(n.start);
        match iso(n) {
            Some(day) => MaturityWindow { after: None, before: next_day(&day) },
            None => MaturityWindow { after: None, before: format!("{}-01-01", n.value as i64 + 1) },
        }
    } else if let Some(n) = year_after("in") {
        q.used.push(n.start);
        MaturityWindow { after: Some(format!("{}-01-01", n.value)), before: format!("{}-01-01", n.value as i64 + 1) }
    } else if let Some((n, years)) = within(text, nums) {
        q.used.push(n.start);
        let before = add_years(today, years);
        q.assumptions.push(format!("\"within {years} years\" counted from today, {today}: before {before}"));
        MaturityWindow { after: Some(today.to_owned()), before }
    } else {
        q.assumptions.push("every loan, soonest maturity first (the request named no date)".into());
        MaturityWindow { after: None, before: "9999-12-31".into() }
    };
    q.maturities = Some(window);
}

/// "within 2 years", "in the next 3 years".
fn within<'a>(text: &str, nums: &'a [Number]) -> Option<(&'a Number, i32)> {
    nums.iter().find_map(|n| {
        let before = text[..n.start].trim_end();
        let after = text[n.end..].trim_start();
        let counted = before.ends_with("within") || before.ends_with("next");
        (counted && after.starts_with("year") && n.value.fract() == 0.0 && n.value < 100.0)
            .then_some((n, n.value as i32))
    })
}

fn next_day(day: &str) -> String {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.succ_opt())
        .map_or_else(|| day.to_owned(), |d| d.to_string())
}

fn add_years(day: &str, years: i32) -> String {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_months(chrono::Months::new(12 * years.max(0) as u32)))
        .map_or_else(|| day.to_owned(), |d| d.to_string())
}

fn holding(text: &str, nums: &[Number], q: &mut Question) {
    q.kind = Some(TaskKind::HoldIrr);
    q.words.extend([
        "irr", "internal", "return", "returns", "hold", "holding", "held", "period", "exit", "sale", "sell", "sold",
        "going-in", "entry", "purchase", "bought", "buy", "growth", "grows", "growing",
    ]);
    let mut years = None;
    let mut growth = None;
    let mut entry = None;
    let mut exit = None;
    for n in nums {
        let after = text[n.end..].trim_start();
        // The words around the number: "a 6.5% exit cap", "exit cap of 6.5%", "3% NOI growth".
        // Within the number's clause: "exit cap of 6.5%, growth of 2.5%".
        let before = text[..n.start].rsplit([',', ';']).next().unwrap_or_default();
        let before: Vec<&str> = before.split_whitespace().rev().take(4).collect();
        let next = after.trim_start_matches('%').split([',', ';']).next().unwrap_or_default();
        let next: Vec<&str> = next.split_whitespace().take(3).collect();
        // How many words away the nearest word of a group is, on either side.
        let distance = |stems: &[&str]| {
            let at = |words: &[&str]| words.iter().position(|w| stems.iter().any(|s| w.starts_with(s)));
            at(&before).into_iter().chain(at(&next)).min()
        };
        let nearest = [
            ("exit", &["exit", "sell", "sale"][..]),
            ("entry", &["going-in", "entry", "purchase", "bought", "buy"]),
            ("growth", &["grow"]),
        ]
        .iter()
        .filter_map(|(label, stems)| distance(stems).map(|d| (d, *label)))
        .min()
        .map(|(_, label)| label)
        // A cap rate named neither exit nor going-in prices the purchase.
        .or_else(|| distance(&["cap"]).map(|_| "entry"));
        if !n.percent && (after.starts_with("year") || after.starts_with("-year")) && n.value.fract() == 0.0 {
            years.get_or_insert(n.value as u32);
        } else if !n.percent {
            continue;
        } else if nearest == Some("exit") {
            exit.get_or_insert(n.value / 100.0);
        } else if nearest == Some("entry") {
            entry.get_or_insert(n.value / 100.0);
        } else if nearest == Some("growth") {
            growth.get_or_insert(n.value / 100.0);
        } else {
            continue;
        }
        q.used.push(n.start);
    }
    let years = years.unwrap_or_else(|| {
        q.assumptions.push(format!("a {DEFAULT_HOLD_YEARS}-year hold (the request named none)"));
        DEFAULT_HOLD_YEARS
    });
    let noi_growth = growth.unwrap_or_else(|| {
        q.assumptions.push(format!("NOI grows {}% a year (the request named no growth)", DEFAULT_GROWTH * 100.0));
        DEFAULT_GROWTH
    });
    let entry_cap_rate = entry.unwrap_or(DEFAULT_ENTRY_CAP);
    q.assumptions.push(format!(
        "a property without a value in the database is priced at a {}% going-in cap rate (NOI / price)",
        round4(entry_cap_rate * 100.0)
    ));
    let exit_cap_rate = exit.unwrap_or_else(|| {
        let exit = entry_cap_rate + EXIT_CAP_SPREAD;
        q.assumptions.push(format!(
            "it sells at a {}% exit cap rate (going-in plus half a point), with no sale costs and no debt (unlevered)",
            round4(exit * 100.0)
        ));
        exit
    });
    q.holding = Some(Holding { years, noi_growth, entry_cap_rate, exit_cap_rate });
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(request: &str) -> Question {
        question(&request.to_lowercase(), "2026-12-02")
    }

    #[test]
    fn holding_periods_take_each_number_for_what_it_is_next_to() {
        for (request, years, growth, entry, exit) in [
            ("What's the 10-year IRR with 3% NOI growth and a 6.5% exit cap?", 10, 0.03, 0.07, 0.065),
            ("IRR over 7 years, exit cap of 6.5%, growth of 2.5%", 7, 0.025, 0.07, 0.065),
            ("IRR with NOI growing 1% a year, bought at a 6% cap rate", 5, 0.01, 0.06, 0.065),
        ] {
            let h = read(request).holding.unwrap_or_else(|| panic!("{request}"));
            let got = (h.years, h.noi_growth, h.entry_cap_rate, (h.exit_cap_rate * 1e6).round() / 1e6);
            assert_eq!(got, (years, growth, entry, exit), "{request}");
        }
    }

    #[test]
    fn maturity_windows() {
        let window = |r: &str| read(r).maturities.map(|w| (w.after, w.before));
        assert_eq!(window("which loans mature before 2029"), Some((None, "2029-01-01".into())));
        assert_eq!(window("loans maturing by the end of 2028"), Some((None, "2029-01-01".into())));
        assert_eq!(window("loans maturing in 2028"), Some((Some("2028-01-01".into()), "2029-01-01".into())));
        assert_eq!(window("loans maturing before 2028-06-30"), Some((None, "2028-06-30".into())));
        assert_eq!(
            window("loans that come due within 2 years"),
            Some((Some("2026-12-02".into()), "2028-12-02".into()))
        );
    }

    #[test]
    fn rankings_and_loan_targets() {
        let r = read("top 3 properties by debt yield").rank.unwrap();
        assert_eq!((r.by.as_str(), r.descending, r.limit), ("debt_yield", true, Some(3)));
        let r = read("list all properties sorted by dscr, lowest first").rank.unwrap();
        assert_eq!((r.by.as_str(), r.descending), ("dscr", false));
        let r = read("show me the 5 weakest properties by dscr").rank.unwrap();
        assert_eq!((r.by.as_str(), r.descending, r.limit), ("dscr", false, Some(5)));
        assert!(read("dscr in the worst case").rank.is_none(), "a superlative without a count is no ranking");
        assert_eq!(read("max loan for Sunset Commons at a DSCR of 1.35").target_dscr, Some(1.35));
        assert_eq!(read("what loan amount can it support at 1.3x").target_dscr, Some(1.3));
        assert_eq!(read("maximum loan size for every property").target_dscr, Some(DEFAULT_TARGET_DSCR));
    }
}
