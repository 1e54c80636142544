//! Reading a request without a model: which family it belongs to and its parameters
//! (property names, stress levels, thresholds, export formats), by words and numbers.

use crate::task::{DEFAULT_AT_RISK_THRESHOLD, ExportFormat, Metric, Scenario, TaskKind, TaskSpec};

/// Words that put a request in the guest library's domain at all.
const DOMAIN_WORDS: [&str; 27] = [
    "dscr",
    "debt service",
    "coverage",
    "noi",
    "net operating income",
    "portfolio",
    "property",
    "properties",
    "asset",
    "building",
    "loan",
    "mortgage",
    "cap rate",
    "debt yield",
    "ltv",
    "loan-to-value",
    "loan to value",
    "stress",
    "risk",
    "vacancy",
    "occupancy",
    "revenue",
    "rent",
    "operating expense",
    "interest rate",
    "irr",
    "what-if",
];
/// Endings a keyword may carry and still count (`decrease` matches `decreases`).
const SUFFIXES: [&str; 7] = ["s", "es", "ed", "d", "ing", "ion", "ions"];

/// What the offline planner understands, for the error an unrecognised request gets.
pub const UNDERSTOOD: &str = concat!(
    "  - a DSCR review of the whole portfolio (\"calculate DSCR for every property with a portfolio summary\")\n",
    "  - DSCR of named properties (\"DSCR for Orlando Fashion Square\")\n",
    "  - the properties at risk (\"which assets are at risk\", \"DSCR below 1.3\")\n",
    "  - stress tests and scenarios (\"10/20/30% NOI stress test\", \"base, optimistic and pessimistic\",\n",
    "    \"10% revenue decrease\", \"rates up 100 bp\", \"occupancy down 5 points\";\n",
    "    shocks joined by \"and\" or \"plus\" are one scenario: \"rates up 200 bp and NOI down 10%\")\n",
    "  - Monte Carlo simulations (\"10,000 simulations, NOI normal with sd 8%, rates uniform between 0 and 2%\")\n",
    "  - sensitivity grids (\"NOI from -30% to +10% in steps of 5%\")\n",
    "  - cap rate, debt yield and LTV summaries; rankings (\"rank properties by debt yield\", \"top 3 by NOI\")\n",
    "  - monthly trends (\"NOI trend by month for Lakeside Plaza\")\n",
    "  - loan sizing (\"what loan can West Oaks Mall support at 1.3x DSCR\")\n",
    "  - maturities (\"which loans mature before 2029\", \"loans maturing in 2028\")\n",
    "  - a holding period's IRR (\"IRR of Harbor Town Mall over 5 years, exit cap 7%\")\n",
    "  - exports to CSV or XLSX",
);

/// Reads `request`; `properties` are the names in the database, for matching entities.
/// `None` when the request is outside what the offline planner covers.
pub fn recognise(request: &str, properties: &[String]) -> Option<TaskSpec> {
    read(request, properties, &super::questions::today()).map(|reading| reading.spec)
}

/// [`recognise`] on `today` (`YYYY-MM-DD`), with the words its readings of the everyday
/// questions used, for the accounting.
pub(super) fn read(request: &str, properties: &[String], today: &str) -> Option<Reading> {
    let text = normalise(request);
    let has = |w: &str| find_word(&text, w).is_some();
    let entities = match_properties(&text, properties);
    let question = super::questions::question(&text, today);
    if !DOMAIN_WORDS.iter().any(|w| has(w)) && entities.is_empty() && question.kind.is_none() {
        return None;
    }
    let mut spec = TaskSpec { goal: goal(request), entities, ..TaskSpec::default() };
    spec.metrics.push(Metric::Dscr);
    if has("cap rate") || has("capitalization rate") {
        spec.metrics.push(Metric::CapRate);
    }
    if has("debt yield") {
        spec.metrics.push(Metric::DebtYield);
    }
    if has("ltv") || has("loan-to-value") || has("loan to value") {
        spec.metrics.push(Metric::Ltv);
    }
    if let Some(rank) = &question.rank {
        let metric = match rank.by.as_str() {
            "cap_rate" => Some(Metric::CapRate),
            "debt_yield" => Some(Metric::DebtYield),
            "ltv" => Some(Metric::Ltv),
            _ => None,
        };
        if let Some(metric) = metric.filter(|m| !spec.metrics.contains(m)) {
            spec.metrics.push(metric);
        }
    }
    let simulation = super::simulation::simulation(&text);
    let mut used: Vec<usize> = simulation.used.iter().chain(&question.used).copied().collect();
    let (named_scenarios, shock_numbers) = scenarios(&text, &used);
    spec.scenarios = named_scenarios;
    used.extend(shock_numbers);
    spec.sweep = simulation.plan;
    spec.wants_simulations = !spec.scenarios.is_empty()
        || ["simulate", "simulation", "what-if", "what if", "monte carlo"].iter().any(|w| has(w));
    spec.wants_web = ["website", "web app", "web interface", "web page", "dashboard", "webpage"].iter().any(|w| has(w));
    if has("csv") {
        spec.exports.push(ExportFormat::Csv);
    }
    if has("xlsx") || has("excel") || has("spreadsheet") || has("workbook") {
        spec.exports.push(ExportFormat::Xlsx);
    }
    if spec.exports.is_empty() && has("export") {
        spec.exports.push(ExportFormat::Csv);
    }
    let at_risk =
        has("at risk") || has("at-risk") || has("risky") || has("weak") || has("struggling") || has("watch list");
    spec.threshold = threshold(&text).or(at_risk.then_some(DEFAULT_AT_RISK_THRESHOLD));
    spec.task_kind = if let Some(kind) = question.kind {
        kind
    } else if !spec.entities.is_empty() {
        TaskKind::PropertyReview
    } else if spec.runs_scenarios() {
        TaskKind::StressTest
    } else if spec.threshold.is_some() {
        TaskKind::AtRisk
    } else if spec.metrics.len() > 1 {
        TaskKind::MetricsSummary
    } else if !spec.exports.is_empty() && !has("dscr") && !has("coverage") {
        TaskKind::Export
    } else {
        TaskKind::PortfolioReview
    };
    spec.rank = question.rank;
    spec.target_dscr = question.target_dscr;
    spec.maturities = question.maturities;
    spec.trend = question.trend;
    spec.holding = question.holding;
    spec.steps = steps(&spec);
    spec.assumptions = simulation.assumptions;
    spec.assumptions.extend(question.assumptions);
    if spec.scenarios.iter().any(|s| s.name == "optimistic") {
        spec.assumptions.push("\"optimistic\" is revenue +10% and \"pessimistic\" revenue -10%".into());
    }
    // A percentage or a number of basis points no reading used is a shock, a range or a
    // rate the plan would silently leave out ("if NOI sinks 15%" without a known verb).
    let unused: Vec<String> = numbers(&text)
        .into_iter()
        .filter(|n| n.percent && n.value != 0.0 && !used.contains(&n.start))
        .map(|n| text[n.start..n.end].to_owned())
        .collect();
    Some(Reading { spec, words: question.words, unused_numbers: unused })
}

/// What [`read`] made of a request, with what the accounting needs.
pub(super) struct Reading {
    /// The plan.
    pub spec: TaskSpec,
    /// The words the everyday questions' readings used.
    pub words: Vec<&'static str>,
    /// Percentages and basis points no reading used, as written (digits only).
    pub unused_numbers: Vec<String>,
}

/// Lower case, one space between words, typographic dashes and quotes made plain.
fn normalise(request: &str) -> String {
    let mapped: String = request
        .chars()
        .map(|c| match c {
            '–' | '—' | '−' => '-',
            '’' | '‘' => '\'',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn goal(request: &str) -> String {
    let one_line = request.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Property names the request mentions: whole names first; else a name's distinctive
/// leading words (two or more) when no other property starts with them.
fn match_properties(text: &str, properties: &[String]) -> Vec<String> {
    let mut found: Vec<String> = properties.iter().filter(|p| contains_words(text, &normalise(p))).cloned().collect();
    if found.is_empty() {
        for p in properties {
            let words: Vec<String> = normalise(p).split(' ').map(str::to_owned).collect();
            for len in (2..words.len()).rev() {
                let prefix = words[..len].join(" ");
                let unique = properties.iter().filter(|o| normalise(o).starts_with(&prefix)).count() == 1;
                if unique && contains_words(text, &prefix) {
                    found.push(p.clone());
                    break;
                }
            }
        }
    }
    found
}

/// Where `word` first occurs in `text` as a word of its own, or with one of `SUFFIXES`.
pub(super) fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().next_back();
        let rest = &text[at + word.len()..];
        let ends = |tail: &str| !tail.chars().next().is_some_and(char::is_alphanumeric);
        !before.is_some_and(char::is_alphanumeric)
            && (ends(rest) || SUFFIXES.iter().any(|s| rest.strip_prefix(s).is_some_and(ends)))
    })
}

/// Whether `needle` occurs in `text` on word boundaries.
fn contains_words(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    text.match_indices(needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// A number in the text and where it ends.
pub(super) struct Number {
    pub(super) value: f64,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) percent: bool,
    /// Written with a decimal point or an `x` (`1.25`, `1.2x`): how ratios are written.
    ratio_like: bool,
}

pub(super) fn numbers(text: &str) -> Vec<Number> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts =
            bytes[i].is_ascii_digit() || (bytes[i] == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit));
        if !starts || (i > 0 && (bytes[i - 1].is_ascii_alphabetic() || bytes[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let literal = text[start..i].trim_end_matches('.');
        let Ok(value) = literal.parse::<f64>() else { continue };
        let rest = text[i..].trim_start();
        // "5 points" of occupancy or vacancy: percentage points, written as percent.
        let percent = ["%", "percent", "pct", "point", "pts"].iter().any(|unit| rest.starts_with(unit));
        let basis_points = rest.starts_with("bp") || rest.starts_with("basis point");
        let value = if basis_points { value / 100.0 } else { value };
        let ratio_like = literal.contains('.') || rest.starts_with('x');
        out.push(Number { value, start, end: i, percent: percent || basis_points, ratio_like });
    }
    out
}

/// Words that name the figure a shock applies to. `occupancy` is vacancy seen from the
/// other side (see [`shock_target`]).
pub(super) const TARGETS: [(&str, &[&str]); 6] = [
    ("noi_change", &["noi", "net operating income"]),
    ("revenue_change", &["revenue", "income", "rent", "rental income"]),
    ("expense_change", &["expense", "opex", "cost", "operating expense"]),
    ("vacancy_change", &["vacancy", "vacancies"]),
    ("occupancy", &["occupancy", "occupied"]),
    ("rate_change", &["interest rate", "rate", "bp", "basis point"]),
];

/// The parameter a target of [`TARGETS`] moves, and the factor its direction takes:
/// occupancy down is vacancy up.
pub(super) fn shock_target(label: &'static str) -> (&'static str, f64) {
    if label == "occupancy" { ("vacancy_change", -1.0) } else { (label, 1.0) }
}
/// Words that say which way a shock goes.
pub(super) const DIRECTIONS: [(f64, &[&str]); 2] = [
    (
        -1.0,
        &[
            "decrease",
            "decline",
            "drop",
            "dropped",
            "down",
            "fall",
            "fell",
            "fallen",
            "reduce",
            "reduction",
            "lower",
            "cut",
            "loss",
            "shrink",
            "shrank",
            "sink",
            "sank",
            "slump",
            "plunge",
            "tumble",
        ],
    ),
    (
        1.0,
        &[
            "increase", "rise", "rose", "risen", "up", "higher", "grow", "grew", "growth", "more", "hike", "jump",
            "climb", "spike", "surge",
        ],
    ),
];
/// What separates one shock's words from the next one's ("NOI down 10% and rates up 1%").
const CLAUSE_BREAKS: [&str; 8] = [",", ";", ". ", " and ", " or ", " with ", " then ", " plus "];

/// The label of the group with a word nearest the number: the earliest in the text after
/// it, or (`before`) the latest in the text before it.
fn nearest<T: Copy>(context: &str, groups: &[(T, &[&str])], before: bool) -> Option<T> {
    let position = |words: &[&str]| {
        let hits = words.iter().filter_map(|w| {
            if before {
                context.match_indices(w).map(|(at, _)| at).filter(|&at| find_word(&context[at..], w) == Some(0)).last()
            } else {
                find_word(context, w)
            }
        });
        if before { hits.max() } else { hits.min() }
    };
    let found = groups.iter().filter_map(|(label, words)| position(words).map(|at| (*label, at)));
    if before { found.max_by_key(|(_, at)| *at) } else { found.min_by_key(|(_, at)| *at) }.map(|(label, _)| label)
}

/// Looks for a word of `groups` in the number's own clause (after it, then before it),
/// then in the 80 characters before it (`NOI down 10, 20 and 30%`).
pub(super) fn around<T: Copy>(before: &str, after: &str, groups: &[(T, &[&str])]) -> Option<T> {
    let after_clause = CLAUSE_BREAKS.iter().filter_map(|b| after.find(b)).min().map_or(after, |at| &after[..at]);
    let before_clause = CLAUSE_BREAKS
        .iter()
        .filter_map(|b| before.rfind(b).map(|at| at + b.len()))
        .max()
        .map_or(before, |at| &before[at..]);
    let wide = before.char_indices().rev().nth(80).map_or(before, |(at, _)| &before[at..]);
    nearest(after_clause, groups, false)
        .or_else(|| nearest(before_clause, groups, true))
        .or_else(|| nearest(wide, groups, true))
}

/// The shock a number of the text stands for, as a fraction signed by `sign`: percent
/// (and basis points) over 100, except that a bare rate change of 10 or more is basis
/// points ("rates up 100"); rounded to 10 decimals so that 10% is exactly 0.1.
pub(super) fn shock_fraction(target: &str, n: &Number, after: &str, sign: f64) -> f64 {
    let mut change = sign * n.value / 100.0;
    if target == "rate_change" && !after.trim_start().starts_with('%') && n.value >= 10.0 && !n.percent {
        change = sign * n.value / 10_000.0;
    }
    (change * 1e10).round() / 1e10
}

/// The scenarios a request asks for: the named set (base/optimistic/pessimistic), and
/// percentage shocks ("10/20/30% NOI stress", "10% revenue decrease", "rates up 100 bp").
fn scenarios(text: &str, used: &[usize]) -> (Vec<Scenario>, Vec<usize>) {
    let mut out: Vec<Scenario> = Vec::new();
    let mut consumed = Vec::new();
    let named = find_word(text, "optimistic").is_some() || find_word(text, "pessimistic").is_some();
    let mut shocks: Vec<(&'static str, f64)> = Vec::new();
    let nums = numbers(text);
    for (i, n) in nums.iter().enumerate() {
        // "10/20/30%" and "10, 20 and 30%": the percent sign belongs to the last number of
        // a list, so a number is a percentage when a later listed one is.
        let listed_percent = n.percent
            || nums[i + 1..]
                .iter()
                .take_while(|m| text[n.end..m.end].chars().all(|c| c.is_ascii_digit() || " /,.-andor".contains(c)))
                .any(|m| m.percent);
        if !listed_percent || n.value == 0.0 || n.value > 100.0 || used.contains(&n.start) {
            continue;
        }
        let (before, after) = (&text[..n.start], &text[n.end..]);
        let Some((target, factor)) = around(before, after, &TARGETS).map(shock_target) else { continue };
        let stress = find_word(text, "stress").is_some();
        // A stress with no direction worsens the figure: vacancy up, everything else down.
        let worse = if target == "vacancy_change" { 1.0 } else { -1.0 };
        let sign = match around(before, after, &DIRECTIONS) {
            Some(sign) => sign * factor,
            None if stress => worse,
            None => continue,
        };
        let change = shock_fraction(target, n, after, sign);
        consumed.push(n.start);
        if !shocks.contains(&(target, change)) {
            shocks.push((target, change));
        }
    }
    let wants_base = named || !shocks.is_empty();
    if wants_base {
        out.push(Scenario { name: "base".into(), ..Scenario::default() });
    }
    if named {
        out.push(Scenario { name: "optimistic".into(), revenue_change: 0.1, ..Scenario::default() });
        out.push(Scenario { name: "pessimistic".into(), revenue_change: -0.1, ..Scenario::default() });
        shocks.retain(|&(target, change)| !(target == "revenue_change" && change.abs() == 0.1));
    }
    for together in combined(text, shocks) {
        let names: Vec<String> = together.iter().map(|(target, change)| scenario_name(target, *change)).collect();
        let mut s = Scenario { name: names.join(" & "), ..Scenario::default() };
        for (target, change) in together {
            match target {
                "noi_change" => s.noi_change = change,
                "revenue_change" => s.revenue_change = change,
                "expense_change" => s.expense_change = change,
                "vacancy_change" => s.vacancy_change = change,
                _ => s.rate_change = change,
            }
        }
        out.push(s);
    }
    (if out.len() == 1 { Vec::new() } else { out }, consumed)
}

/// Words that keep shocks to different figures apart, each a scenario of its own.
const APART: [&str; 7] = ["separately", "individually", "one at a time", "each on its own", "versus", "vs", "or"];

/// The scenarios `shocks` make: shocks to different figures happen together ("rates up
/// 200 bp and NOI down 10%", "at the same time", "plus") unless the request keeps them
/// apart ("separately", "or"); several sizes of one figure ("NOI down 10/20/30%") are
/// scenarios of their own, each with the other figures' shocks.
fn combined(text: &str, shocks: Vec<(&'static str, f64)>) -> Vec<Vec<(&'static str, f64)>> {
    let mut by_target: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for (target, change) in &shocks {
        match by_target.iter_mut().find(|(t, _)| t == target) {
            Some((_, changes)) => changes.push(*change),
            None => by_target.push((target, vec![*change])),
        }
    }
    let apart = APART.iter().any(|w| find_word(text, w).is_some());
    if by_target.len() < 2 || apart {
        return shocks.into_iter().map(|shock| vec![shock]).collect();
    }
    let mut out: Vec<Vec<(&'static str, f64)>> = vec![Vec::new()];
    for (target, changes) in by_target {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                changes.iter().map(move |change| {
                    let mut next = prefix.clone();
                    next.push((target, *change));
                    next
                })
            })
            .collect();
    }
    out
}

fn scenario_name(target: &str, change: f64) -> String {
    let label = match target {
        "noi_change" => "NOI",
        "revenue_change" => "revenue",
        "expense_change" => "expenses",
        "vacancy_change" => "vacancy",
        _ => "rate",
    };
    if target == "rate_change" {
        format!("{label} {:+} bp", (change * 10_000.0).round())
    } else {
        let pct = change * 100.0;
        let pct = if (pct - pct.round()).abs() < 1e-9 { format!("{:+}", pct.round()) } else { format!("{pct:+.1}") };
        format!("{label} {pct}%")
    }
}

/// A DSCR threshold: "below 1.3", "under 1.2x", "dscr < 1.1", "less than 1.25", or a
/// covenant or minimum ("fail a 1.25x covenant", "a DSCR covenant of 1.2", "minimum DSCR
/// of 1.3").
fn threshold(text: &str) -> Option<f64> {
    for n in numbers(text) {
        if n.percent || !n.ratio_like || !(0.5..=3.0).contains(&n.value) {
            continue;
        }
        let before: String =
            text[..n.end].chars().rev().skip_while(|c| c.is_ascii_digit() || *c == '.').take(30).collect();
        let before: String = before.chars().rev().collect();
        let before = before.trim_end();
        if ["below", "under", "<", "less than", "lower than", "beneath", "<="].iter().any(|w| before.ends_with(w)) {
            return Some(n.value);
        }
        let after = text[n.end..].trim_start();
        let after = after.strip_prefix('x').unwrap_or(after).trim_start();
        let names_a_floor = ["covenant", "dscr covenant", "minimum", "coverage covenant", "floor", "hurdle"]
            .iter()
            .any(|w| after.starts_with(w))
            || ["covenant of", "covenant at", "covenant", "minimum dscr of", "minimum of", "minimum", "floor of"]
                .iter()
                .any(|w| before.ends_with(w));
        if names_a_floor {
            return Some(n.value);
        }
    }
    None
}

fn steps(spec: &TaskSpec) -> Vec<String> {
    if let Some(steps) = question_steps(spec) {
        return steps;
    }
    let mut steps = vec!["read each property's NOI, debt service and loan terms from the database".to_owned()];
    if !spec.entities.is_empty() {
        steps.push(format!("keep {}", spec.entities.join(", ")));
    }
    steps.push(
        "compute DSCR = NOI / annual debt service and the lending verdict per property \
         (approve at 1.25 and above, review from 1.15, reject below 1.15)"
            .into(),
    );
    if spec.metrics.len() > 1 {
        steps.push("compute cap rate, debt yield and LTV where the data allows".into());
    }
    if let Some(t) = spec.threshold {
        steps.push(format!("list the properties with DSCR under {t}"));
    }
    if !spec.scenarios.is_empty() {
        let names: Vec<&str> = spec.scenarios.iter().map(|s| s.name.as_str()).collect();
        steps.push(format!("recompute DSCR under each scenario: {}", names.join(", ")));
    }
    let sweep = &spec.sweep;
    if sweep.monte_carlo > 0 {
        steps.push(format!(
            "draw {} scenarios ({}), seed {}",
            sweep.monte_carlo,
            sweep.dist.join(", "),
            sweep.seed.unwrap_or(crate::task::DEFAULT_SEED)
        ));
    } else if !sweep.grid.is_empty() {
        steps.push(format!("run every point of the grid {}", sweep.grid.join(" x ")));
    }
    if spec.runs_scenarios() {
        steps.push("report each property's DSCR across the scenarios, break-even points and sensitivity".into());
    }
    if let Some(rank) = &spec.rank {
        steps.push(rank_step(rank));
    }
    steps.push("summarise the portfolio".into());
    if !spec.exports.is_empty() {
        steps.push("export the tables".into());
    }
    steps
}

fn rank_step(rank: &crate::task::Ranking) -> String {
    let order = if rank.descending { "highest first" } else { "lowest first" };
    let limit = rank.limit.map(|n| format!(", keep the first {n}")).unwrap_or_default();
    format!("rank the properties by {} ({order}){limit}", rank.by)
}

/// The steps of the everyday questions beyond DSCR.
fn question_steps(spec: &TaskSpec) -> Option<Vec<String>> {
    let who = if spec.entities.is_empty() { "every property".to_owned() } else { spec.entities.join(", ") };
    let mut steps = match spec.task_kind {
        TaskKind::Trend => vec![
            format!("read the monthly history of {who} from the database"),
            format!(
                "list {} month by month and its change: first and last month, low, high, average and the \
                 least-squares trend per month",
                spec.trend.as_deref().unwrap_or("noi")
            ),
        ],
        TaskKind::LoanSizing => vec![
            format!("read the NOI and loan terms of {who} from the database"),
            format!(
                "size the largest loan at a DSCR of {}: NOI / {} a year of debt service, discounted at the \
                 loan's rate over its amortization, monthly; compare it with the current loan",
                spec.target_dscr.unwrap_or(super::questions::DEFAULT_TARGET_DSCR),
                spec.target_dscr.unwrap_or(super::questions::DEFAULT_TARGET_DSCR)
            ),
        ],
        TaskKind::Maturities => {
            let window = spec.maturities.as_ref()?;
            let when = match &window.after {
                Some(after) => format!("on or after {after} and before {}", window.before),
                None => format!("before {}", window.before),
            };
            vec![
                "read the loans and their maturity dates from the database".into(),
                format!("list the loans maturing {when}, soonest first"),
            ]
        }
        TaskKind::HoldIrr => {
            let h = spec.holding.as_ref()?;
            vec![
                format!("read the NOI (and value, where the database has one) of {who}"),
                format!(
                    "cash flows: buy at the value (or NOI / {}), collect NOI for {} years growing {}% a year, \
                     sell at the next year's NOI / {}",
                    h.entry_cap_rate,
                    h.years,
                    h.noi_growth * 100.0,
                    h.exit_cap_rate
                ),
                "compute the unlevered IRR of those cash flows".into(),
            ]
        }
        _ => return None,
    };
    if let Some(rank) = &spec.rank {
        steps.push(rank_step(rank));
    }
    Some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["Orlando Fashion Square", "Orlando Vineland Premium Outlets", "West Oaks Mall", "Riverside Galleria"]
            .map(String::from)
            .to_vec()
    }

    fn changes(spec: &TaskSpec) -> Vec<(String, f64, f64, f64)> {
        spec.scenarios.iter().map(|s| (s.name.clone(), s.noi_change, s.revenue_change, s.rate_change)).collect()
    }

    #[test]
    fn the_documents_portfolio_request() {
        let spec = recognise(
            "I need to review the debt service coverage for our entire property portfolio. Pull all properties from \
             the database, calculate their DSCR, show name, NOI, debt service and the ratio for each, plus a \
             portfolio summary.",
            &names(),
        )
        .unwrap();
        assert_eq!(spec.task_kind, TaskKind::PortfolioReview);
        assert!(spec.entities.is_empty() && spec.scenarios.is_empty() && spec.threshold.is_none());
    }

    #[test]
    fn stress_levels_in_every_spelling() {
        for request in [
            "calculate DSCR for every property and show a 10/20/30% NOI stress test",
            "DSCR with NOI decreases of 10%, 20% and 30%",
            "stress test: NOI down 10, 20 and 30 percent",
        ] {
            let spec = recognise(request, &names()).unwrap();
            assert_eq!(spec.task_kind, TaskKind::StressTest, "{request}");
            let got: Vec<(String, f64)> = spec.scenarios.iter().map(|s| (s.name.clone(), s.noi_change)).collect();
            assert_eq!(
                got,
                [("base", 0.0), ("NOI -10%", -0.1), ("NOI -20%", -0.2), ("NOI -30%", -0.3)]
                    .map(|(n, c)| (n.to_owned(), c))
                    .to_vec(),
                "{request}"
            );
        }
    }

    #[test]
    fn the_documents_three_scenarios_for_one_property() {
        let spec = recognise(
            "Calculate DSCR for Orlando Fashion Square under 3 scenarios: base case, 10% revenue increase, and 10% revenue decrease.",
            &names(),
        )
        .unwrap();
        assert_eq!(spec.task_kind, TaskKind::PropertyReview);
        assert_eq!(spec.entities, ["Orlando Fashion Square"]);
        assert!(spec.threshold.is_none(), "\"under 3 scenarios\" is no DSCR threshold");
        assert_eq!(
            changes(&spec),
            [("base", 0.0, 0.0, 0.0), ("revenue +10%", 0.0, 0.1, 0.0), ("revenue -10%", 0.0, -0.1, 0.0)]
                .map(|(n, a, b, c)| (n.to_owned(), a, b, c))
                .to_vec()
        );
        let named = recognise("base, optimistic and pessimistic scenarios for West Oaks", &names()).unwrap();
        assert_eq!(named.entities, ["West Oaks Mall"]);
        assert_eq!(
            named.scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["base", "optimistic", "pessimistic"]
        );
    }

    #[test]
    fn rates_thresholds_metrics_and_exports() {
        let spec = recognise("What happens to DSCR if interest rates rise 100 bp?", &names()).unwrap();
        assert_eq!(changes(&spec)[1], ("rate +100 bp".to_owned(), 0.0, 0.0, 0.01));
        let spec = recognise("NOI down 10% or rates up 1%: what happens to DSCR?", &names()).unwrap();
        assert_eq!(
            changes(&spec)[1..],
            [("NOI -10%".to_owned(), -0.1, 0.0, 0.0), ("rate +100 bp".to_owned(), 0.0, 0.0, 0.01)]
        );
        let spec = recognise("rates up 100 bp and vacancy up 5%: DSCR?", &names()).unwrap();
        assert_eq!(spec.scenarios.len(), 2, "one shock, both at once: {:?}", spec.scenarios);
        let both = &spec.scenarios[1];
        assert_eq!(
            (both.name.as_str(), both.rate_change, both.vacancy_change),
            ("rate +100 bp & vacancy +5%", 0.01, 0.05)
        );
        let spec = recognise("Which assets are at risk, with DSCR below 1.3?", &names()).unwrap();
        assert_eq!((spec.task_kind, spec.threshold), (TaskKind::AtRisk, Some(1.3)));
        for request in [
            "which properties fail a 1.25x covenant if rates rise 200bp",
            "stress test rates up 200 bp against a DSCR covenant of 1.25",
            "with a minimum DSCR of 1.25, what if NOI falls 10%",
        ] {
            let spec = recognise(request, &names()).unwrap();
            assert_eq!((spec.task_kind, spec.threshold), (TaskKind::StressTest, Some(1.25)), "{request}");
            assert!(spec.steps.iter().any(|s| s.contains("1.25")), "{request}: the plan states it: {:?}", spec.steps);
        }
        let spec = recognise("which properties are at risk?", &names()).unwrap();
        assert_eq!(spec.threshold, Some(DEFAULT_AT_RISK_THRESHOLD));
        let spec = recognise("Summarise cap rate, debt yield and LTV for the portfolio", &names()).unwrap();
        assert_eq!(spec.task_kind, TaskKind::MetricsSummary);
        assert_eq!(spec.metrics, [Metric::Dscr, Metric::CapRate, Metric::DebtYield, Metric::Ltv]);
        let spec = recognise("Export all property financial data to an Excel spreadsheet", &names()).unwrap();
        assert_eq!((spec.task_kind, spec.exports.as_slice()), (TaskKind::Export, [ExportFormat::Xlsx].as_slice()));
        let spec = recognise("DSCR table as CSV and xlsx, and a dashboard", &names()).unwrap();
        assert_eq!(spec.exports, [ExportFormat::Csv, ExportFormat::Xlsx]);
        assert!(spec.wants_web);
    }

    /// Each request of the table becomes exactly these scenarios after the base:
    /// `(name, noi, revenue, expenses, vacancy, rate)`.
    #[test]
    fn shocks_read_as_asked() {
        type Row = (&'static str, f64, f64, f64, f64, f64);
        let table: [(&str, &[Row]); 9] = [
            (
                "which properties would breach a 1.2x covenant if NOI dropped 15%",
                &[("NOI -15%", -0.15, 0.0, 0.0, 0.0, 0.0)],
            ),
            ("DSCR with occupancy down 5%", &[("vacancy +5%", 0.0, 0.0, 0.0, 0.05, 0.0)]),
            ("DSCR after a 5% occupancy decline", &[("vacancy +5%", 0.0, 0.0, 0.0, 0.05, 0.0)]),
            ("DSCR with vacancy up 5%", &[("vacancy +5%", 0.0, 0.0, 0.0, 0.05, 0.0)]),
            ("stress test with vacancy up 5 points", &[("vacancy +5%", 0.0, 0.0, 0.0, 0.05, 0.0)]),
            (
                "what happens if rates rise 200bp and NOI falls 10% at the same time",
                &[("rate +200 bp & NOI -10%", -0.1, 0.0, 0.0, 0.0, 0.02)],
            ),
            (
                "DSCR if occupancy drops 5 points and expenses rise 3%",
                &[("vacancy +5% & expenses +3%", 0.0, 0.0, 0.03, 0.05, 0.0)],
            ),
            (
                "10/20/30% NOI stress plus rates up 100 bp",
                &[
                    ("NOI -10% & rate +100 bp", -0.1, 0.0, 0.0, 0.0, 0.01),
                    ("NOI -20% & rate +100 bp", -0.2, 0.0, 0.0, 0.0, 0.01),
                    ("NOI -30% & rate +100 bp", -0.3, 0.0, 0.0, 0.0, 0.01),
                ],
            ),
            (
                "DSCR with NOI down 10% and, separately, rates up 50 bp",
                &[("NOI -10%", -0.1, 0.0, 0.0, 0.0, 0.0), ("rate +50 bp", 0.0, 0.0, 0.0, 0.0, 0.005)],
            ),
        ];
        for (request, expected) in table {
            let spec = recognise(request, &names()).unwrap_or_else(|| panic!("{request}: not recognised"));
            let got: Vec<(String, [f64; 5])> = spec.scenarios[1..]
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        [s.noi_change, s.revenue_change, s.expense_change, s.vacancy_change, s.rate_change],
                    )
                })
                .collect();
            let want: Vec<(String, [f64; 5])> =
                expected.iter().map(|r| (r.0.to_owned(), [r.1, r.2, r.3, r.4, r.5])).collect();
            assert_eq!(got, want, "{request}");
            assert_eq!(spec.scenarios[0].name, "base", "{request}");
        }
    }

    #[test]
    fn names_match_on_word_boundaries_and_unique_prefixes() {
        assert_eq!(match_properties("dscr for orlando fashion square please", &names()), ["Orlando Fashion Square"]);
        // "Orlando" alone is two properties: no match.
        assert!(match_properties("dscr for orlando", &names()).is_empty());
        assert_eq!(match_properties("how is riverside galleria doing", &names()), ["Riverside Galleria"]);
        assert!(match_properties("the western oaks mall", &names()).is_empty());
    }

    #[test]
    fn other_requests_are_not_guessed() {
        assert!(recognise("Write a haiku about spring", &names()).is_none());
        assert!(recognise("Sort these numbers: 3, 1, 2", &names()).is_none());
    }
}
