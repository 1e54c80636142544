//! Accounting for every word of a request. The offline planner reads requests by keywords,
//! so a part it has no keyword for would otherwise vanish and the request would be answered
//! as if it asked something else ("IRR of Harbor Town Mall" answered with a DSCR table).
//! Every word must be one the planner reads, a word of a property it matched, a number, or
//! one of the words any request is made of; the rest are quoted back with their clause.

use std::collections::HashSet;
use std::sync::LazyLock;

use super::questions::RANK_COLUMNS;
use super::recognise::{TARGETS, shock_target};
use crate::task::{ClauseReading, ExportFormat, TaskKind, TaskSpec};

/// Words any request is made of: function words, the verbs and nouns of asking, and the
/// words of results. They carry no meaning the planner could drop.
const COMMON: &str = "
    a an the this that these those it its it's itself i i'm i'd i'll we we're we'd our ours us
    my me you your they them their theirs there here what what's which who whom whose how when
    where why whether if then than so as at by for from in into of on onto to with within
    without per each every all any some both either neither no not only just also too very
    much many more most less few lot lots is are was were be been being am do does did done
    doing have has had having can could would should will shall may might must let lets
    please thanks thank kindly and or but nor via about across against along among around
    after during over under above below between through again further once same other
    others another own such etc ok okay hi hello hey quick quickly briefly currently
    need needs want wants like would give get got show shows display list lists print tell
    report reports calculate calculating calculated compute computing computed calculation
    calculations work figure figures determine find identify pull fetch extract read load
    run runs running make create generate produce prepare build provide return output write
    include including includes review reviews analyse analyze analysing analyzing analysis
    analyses assess assessment evaluate evaluation check checks look see know understand
    explain summarise summarize summarised summarized summary summaries overview breakdown
    table tables chart charts graph graphs plot plots visual visualise visualize view
    data database db numbers number values value result results key metric metrics measure
    measures information info detail details current latest today now entire whole full total
    totals overall complete level using use used given case cases happen happens happened
    happening effect effects impact impacts affect affects scenario scenarios name names
    address addresses ratio ratios figure enough cover covers covering covered able whose
    also along along new existing actual actually really well good bad okay can't cannot
    something anything everything nothing one two three four five six seven eight nine ten
    first second third going go goes want also based basis across both along
    respectively side compare compared comparison against versus vs";

/// The words the planner reads: domains, metrics, shocks, scenarios, simulations, exports.
const DOMAIN: &str = "
    dscr dscrs debt service services coverage noi net operating income incomes property
    properties asset assets building buildings site sites real estate commercial retail
    portfolio portfolios holding holdings loan loans mortgage
    mortgages lender lenders interest rate rates cap capitalization yield yields ltv
    loan-to-value stress stressed test tests testing tested shock shocks shocked risk risks
    risky at-risk weak weakest struggling watch watchlist covenant covenants minimum floor
    hurdle threshold thresholds fail fails failing breach breaches breaching pass passes meet meets approve approved review verdict verdicts lending revenue
    revenues rent rents rental income expense expenses opex cost costs vacancy vacancies
    occupancy occupied payment payments principal amortization amortisation service-coverage
    base baseline optimistic pessimistic downside upside monte carlo simulation simulations
    simulate simulated draw draws trial trials iteration iterations path paths sample samples
    normal normally distributed distribution distributions uniform uniformly random randomly
    stochastic triangular lognormal log-normal mean average averages sd standard deviation std
    stdev volatility sigma drift expected centred centered seed sensitivity sensitivities grid
    range ranges step steps increment increments csv xlsx excel spreadsheet spreadsheets
    workbook export exports exported file files dashboard website web app interface page
    webpage capabilities capability what-if whatif decrease decreases decline declines drop
    drops dropped down fall falls falling fell fallen shrank sink sank slump plunge tumble
    risen grew climb spike surge reduce reduced reduction lower cut cuts loss
    shrink increase increases rise rises rising rose up higher grow grows growth more hike
    hikes jump jumps together simultaneously combined combination same time plus separately
    individually apart percent percentage pct point points pts bp bps basis x times k thousand
    million year years annual annually yearly fiscal fy both";

static KNOWN: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON.split_whitespace().chain(DOMAIN.split_whitespace()).collect());

/// Endings a known word may carry.
const ENDINGS: [&str; 6] = ["s", "es", "ed", "d", "ing", "ly"];

/// A part of the request the planner did not read.
#[derive(Debug, Clone, PartialEq)]
pub struct Unread {
    /// The clause it is in, as written.
    pub clause: String,
    /// The words not read, as written.
    pub words: Vec<String>,
    /// Whether the words look like a name (capitalised, or like a property's words
    /// misspelt): then they are taken for a property the database does not have.
    pub name_like: bool,
    /// Property names close to the words, when they look like a name.
    pub closest: Vec<String>,
}

impl Unread {
    /// One line for the error: the clause, the words, and the closest property names.
    pub fn describe(&self) -> String {
        let words: Vec<String> = self.words.iter().map(|w| format!("\"{w}\"")).collect();
        let mut line = format!("\"{}\": {} not understood", self.clause, words.join(", "));
        if self.name_like {
            line.push_str("; no property of that name is in the database");
            if !self.closest.is_empty() {
                line.push_str(&format!(" (closest: {})", self.closest.join(", ")));
            }
        }
        line
    }
}

/// The parts of `request` that no reading used. `matched` are the property names the
/// planner matched (their words count as read), `properties` every name in the database
/// (for suggestions), `extra` the words of the families the planner read the request as.
/// `numbers` are percentages no reading used (digits as written): each is quoted with its
/// clause.
pub fn unread(
    request: &str,
    matched: &[String],
    properties: &[String],
    extra: &[&str],
    numbers: &[String],
) -> Vec<Unread> {
    let matched_words: HashSet<String> = matched.iter().flat_map(|p| words_of(p)).map(|(_, w)| w).collect();
    let is_read = |word: &str| {
        known(word, extra) || matched_words.contains(word) || word.split('-').all(|part| known(part, extra))
    };
    let mut out = Vec::new();
    for (sentence_start, clause) in clauses(request) {
        let all = words_of(clause);
        let mut unread: Vec<bool> = all.iter().map(|(_, w)| !is_read(w)).collect();
        let figures: Vec<String> =
            numbers.iter().filter(|n| contains_number(clause, n)).map(|n| format!("{n}%")).collect();
        if !unread.contains(&true) && figures.is_empty() {
            continue;
        }
        // A capitalised word is a name unless it only starts a sentence; an acronym
        // ("IRR") is a term, not a name.
        let title_case = |at: usize| {
            let mut chars = all[at].0.chars();
            chars.next().is_some_and(char::is_uppercase)
                && chars.any(char::is_lowercase)
                && !(sentence_start && at == 0)
        };
        // A name is quoted whole: "Empire State Building", though "building" is a word.
        for at in 0..all.len() {
            let next_to_name = |i: Option<usize>| i.is_some_and(|i| unread[i] && title_case(i));
            if title_case(at)
                && (next_to_name(at.checked_sub(1)) || next_to_name(Some(at + 1).filter(|&i| i < all.len())))
            {
                unread[at] = true;
            }
        }
        let mut words: Vec<String> =
            all.iter().zip(&unread).filter(|(_, u)| **u).map(|((original, _), _)| original.clone()).collect();
        let name_like = (0..all.len()).any(|at| unread[at] && title_case(at))
            || words.iter().any(|w| properties.iter().any(|p| resembles_a_word_of(w, p)));
        let closest = if name_like { closest_names(&words.join(" "), properties) } else { Vec::new() };
        words.extend(figures);
        out.push(Unread { clause: clause.trim().to_owned(), words, name_like, closest });
    }
    out
}

/// What each clause of `request` became in `spec`, by the words it holds: the record of
/// how the request was read, kept in the plan.
pub fn readings(request: &str, spec: &TaskSpec) -> Vec<ClauseReading> {
    // The words the planner read shocks and metrics by, named as the spec names them.
    let figure_words = TARGETS.iter().map(|(label, words)| (shock_target(label).0, *words));
    let mut out = Vec::new();
    for (_, clause) in clauses(request) {
        let lower = clause.to_lowercase();
        let has = |w: &str| super::recognise::find_word(&lower, w).is_some();
        let mut became = Vec::new();
        for entity in &spec.entities {
            let words: Vec<String> = words_of(entity).into_iter().map(|(_, w)| w).take(2).collect();
            if lower.contains(&words.join(" ")) {
                became.push(format!("property: {entity}"));
            }
        }
        for metric in &spec.metrics {
            let key = serde_json::to_value(metric).unwrap_or_default().as_str().unwrap_or("").to_owned();
            let named = RANK_COLUMNS.iter().any(|(column, words)| *column == key && words.iter().any(|w| has(w)));
            if named {
                became.push(format!("metric: {key}"));
            }
        }
        let has_number = lower.chars().any(|c| c.is_ascii_digit());
        for scenario in spec.scenarios.iter().filter(|s| s.name != "base") {
            let moved = scenario.shocks().iter().any(|(key, change)| {
                *change != 0.0 && figure_words.clone().any(|(k, words)| k == *key && words.iter().any(|w| has(w)))
            });
            if moved && has_number {
                became.push(format!("scenario: {}", scenario.name));
            }
        }
        if let Some(t) = spec.threshold
            && lower.contains(&t.to_string())
        {
            became.push(format!("threshold: DSCR under {t}"));
        }
        if spec.sweep.monte_carlo > 0
            && ["simulation", "monte carlo", "draw", "normal", "uniform"].iter().any(|w| has(w))
        {
            became.push(format!("Monte Carlo: {} draws", spec.sweep.monte_carlo));
        }
        if !spec.sweep.grid.is_empty() && ["from", "between", "step", "range"].iter().any(|w| has(w)) {
            became.push(format!("grid: {}", spec.sweep.grid.join(" x ")));
        }
        for format in &spec.exports {
            let words: &[&str] = match format {
                ExportFormat::Csv => &["csv", "export"],
                ExportFormat::Xlsx => &["xlsx", "excel", "spreadsheet", "workbook"],
            };
            if words.iter().any(|w| has(w)) {
                became.push(format!(
                    "export: {}",
                    serde_json::to_value(format).unwrap_or_default().as_str().unwrap_or("")
                ));
            }
        }
        if let Some(rank) = &spec.rank
            && ["rank", "sort", "order", "top", "bottom"].iter().any(|w| has(w))
        {
            became.push(format!("ranking by {}", rank.by));
        }
        let question = match spec.task_kind {
            TaskKind::Trend if ["trend", "month", "history", "time"].iter().any(|w| has(w)) => {
                Some(format!("monthly trend of {}", spec.trend.as_deref().unwrap_or("noi")))
            }
            TaskKind::LoanSizing if ["loan", "borrow", "debt", "dscr"].iter().any(|w| has(w)) => {
                spec.target_dscr.map(|t| format!("largest loan at DSCR {t}"))
            }
            TaskKind::Maturities if ["matur", "due"].iter().any(|w| lower.contains(w)) => {
                spec.maturities.as_ref().map(|m| format!("loans maturing before {}", m.before))
            }
            TaskKind::HoldIrr if ["irr", "return", "hold", "year"].iter().any(|w| has(w)) => {
                spec.holding.as_ref().map(|h| format!("unlevered IRR over {} years", h.years))
            }
            _ => None,
        };
        became.extend(question);
        out.push(ClauseReading { text: clause.trim().to_owned(), became });
    }
    out
}

/// Whether `clause` holds the number `digits` on its own (not inside a longer one).
fn contains_number(clause: &str, digits: &str) -> bool {
    clause.match_indices(digits).any(|(at, _)| {
        let before = clause[..at].chars().next_back();
        let after = clause[at + digits.len()..].chars().next();
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
        !digit(before) && !digit(after)
    })
}

fn known(word: &str, extra: &[&str]) -> bool {
    let hit = |w: &str| KNOWN.contains(w) || extra.contains(&w);
    hit(word)
        || ENDINGS.iter().any(|e| word.strip_suffix(e).is_some_and(|stem| stem.len() > 2 && hit(stem)))
        || word.strip_suffix("ies").is_some_and(|stem| hit(&format!("{stem}y")))
}

/// The request's clauses, split at punctuation so a clause is short enough to quote, each
/// with whether it starts a sentence.
fn clauses(request: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut sentence_start = true;
    let mut rest = request;
    while !rest.is_empty() {
        let end = clause_end(rest);
        let (clause, tail) = rest.split_at(end);
        if !clause.trim().is_empty() {
            out.push((sentence_start, clause));
            sentence_start = false;
        }
        let Some(mark) = tail.chars().next() else { break };
        // "1.25x" and "10,000" are numbers, not clause breaks; they end no sentence.
        sentence_start |= matches!(mark, '.' | '?' | '!' | '\n' | ':') && tail[1..].starts_with([' ', '\n']);
        rest = &tail[mark.len_utf8()..];
    }
    out
}

/// The words of `text` as written and in lower case; numbers and words with digits
/// ("200bp", "1.25x", "2029") are read by the number readers, so they are left out.
fn words_of(text: &str) -> Vec<(String, String)> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(['-', '\'', '’']))
        .map(|w| w.strip_suffix("'s").or_else(|| w.strip_suffix("’s")).unwrap_or(w))
        .filter(|w| !w.is_empty() && !w.chars().any(|c| c.is_ascii_digit()))
        .map(|w| (w.to_owned(), w.to_lowercase()))
        .collect()
}

/// Whether `word` looks like a word of the name `property` misspelt or abbreviated:
/// `Plz` for `Plaza`, `Lakesde` for `Lakeside`.
fn resembles_a_word_of(word: &str, property: &str) -> bool {
    let word = word.to_lowercase();
    words_of(property).iter().any(|(_, p)| {
        p == &word
            || (word.len() >= 3 && p.starts_with(&word))
            || (word.len() >= 4 && strsim::levenshtein(&word, p) <= 1)
            || (is_abbreviation(&word) && word.chars().next() == p.chars().next() && is_subsequence(&word, p))
    })
}

/// Where the first clause of `text` ends: at punctuation, except a point or comma between
/// digits ("1.25x", "10,000").
fn clause_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let digit = |at: Option<&u8>| at.is_some_and(u8::is_ascii_digit);
    text.char_indices()
        .find(|&(at, c)| {
            let inside_number =
                matches!(c, '.' | ',') && at > 0 && digit(bytes.get(at - 1)) && digit(bytes.get(at + 1));
            ",;:.?!()\n".contains(c) && !inside_number
        })
        .map_or(text.len(), |(at, _)| at)
}

/// A short word with no vowel after its first letter: `plz`, `blvd`, `ctr`.
fn is_abbreviation(word: &str) -> bool {
    (2..=5).contains(&word.len()) && !word.chars().skip(1).any(|c| "aeiou".contains(c))
}

fn is_subsequence(short: &str, long: &str) -> bool {
    let mut rest = long.chars();
    short.chars().all(|c| rest.by_ref().any(|l| l == c))
}

/// Up to three property names most like `text` (Sørensen-Dice on letter pairs), best first;
/// none when nothing is alike.
fn closest_names(text: &str, properties: &[String]) -> Vec<String> {
    let wanted = text.to_lowercase();
    let mut scored: Vec<(f64, &String)> = properties
        .iter()
        .map(|p| (strsim::sorensen_dice(&wanted, &p.to_lowercase()), p))
        .filter(|(score, _)| *score > 0.2)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Only the names nearly as close as the closest: one clear match is named alone.
    let best = scored.first().map_or(0.0, |s| s.0);
    scored.into_iter().take_while(|(score, _)| *score >= 0.75 * best).take(3).map(|(_, p)| p.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["Orlando Fashion Square", "Lakeside Plaza", "Harbor Town Mall", "West Oaks Mall", "Sunset Commons"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn ordinary_requests_are_fully_read() {
        for request in [
            "I need to review the debt service coverage for our entire property portfolio. Pull all properties \
             from the database, calculate their DSCR, show name, NOI, debt service and the ratio for each, plus \
             a portfolio summary.",
            "Calculate DSCR for all properties and identify at-risk assets",
            "Run DSCR scenarios with 10%, 20%, 30% NOI decrease for all properties",
            "Extract all property data from the database, calculate key metrics for each property, and generate \
             a summary report.",
            "what happens if rates rise 200bp and NOI falls 10% at the same time",
            "Run 10,000 Monte Carlo simulations where NOI is normally distributed with a standard deviation of \
             8% and interest rates are uniform between 0 and 2%, seed 7",
            "Export all property financial data to an Excel spreadsheet",
        ] {
            let left = unread(request, &[], &names(), &["financial"], &[]);
            assert!(left.is_empty(), "{request}: {left:?}");
        }
        let matched = ["Orlando Fashion Square".to_owned()];
        assert!(unread("Calculate DSCR for Orlando Fashion Square", &matched, &names(), &[], &[]).is_empty());
    }

    #[test]
    fn unread_parts_are_quoted_with_their_clause() {
        let left =
            unread("DSCR for every property, and the IRR of Harbor Town Mall over 5 years", &[], &names(), &[], &[]);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].clause, "and the IRR of Harbor Town Mall over 5 years");
        assert_eq!(left[0].words, ["IRR", "Harbor", "Town", "Mall"]);
        assert_eq!(left[0].closest.first().map(String::as_str), Some("Harbor Town Mall"));
    }

    #[test]
    fn unknown_properties_get_the_closest_names() {
        let left = unread("DSCR for Lakeside Plz", &[], &names(), &[], &[]);
        assert_eq!(left[0].words, ["Lakeside", "Plz"]);
        assert_eq!(left[0].closest.first().map(String::as_str), Some("Lakeside Plaza"));
        let left = unread("DSCR for the Empire State Building", &[], &names(), &[], &[]);
        assert_eq!(left[0].words, ["Empire", "State", "Building"]);
        assert!(left[0].describe().contains("no property of that name"), "{}", left[0].describe());
        for request in ["Rank properties by debt yield", "DSCR, and the IRR over 5 years"] {
            let left = unread(request, &[], &names(), &[], &[]);
            assert_eq!(left.len(), 1, "{request}: {left:?}");
            assert!(!left[0].name_like, "{request}: a term, not a name: {left:?}");
        }
        let left = unread("which properties fail a 1.25x covenant in Florida", &[], &names(), &[], &[]);
        assert_eq!(
            (left[0].clause.as_str(), left[0].name_like),
            ("which properties fail a 1.25x covenant in Florida", true)
        );
    }
}
