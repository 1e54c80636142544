//! Generated scenarios in a request: Monte Carlo draws ("10,000 simulations with NOI
//! normally distributed, sd 8%, and rates uniform between 0 and 2%") and parameter ranges
//! ("NOI from -30% to +10% in steps of 5%"), read into a `SweepPlan` in `metaexec sweep`'s
//! syntax.

use super::recognise::{DIRECTIONS, TARGETS, around, find_word, numbers, shock_fraction, shock_target};
use crate::task::SweepPlan;

/// Draws when a request asks for Monte Carlo without saying how many.
pub const DEFAULT_DRAWS: usize = 10_000;
/// Fewer simulations than this are named scenarios unless the request describes how to draw.
const MIN_UNDESCRIBED_DRAWS: usize = 50;
/// The most draws the offline planner plans; more is almost always a typo.
const MAX_DRAWS: usize = 1_000_000;
/// Words a draw count is followed by.
const COUNT_NOUNS: [&str; 8] = ["simulation", "draw", "scenario", "run", "trial", "iteration", "path", "sample"];
/// Words that mark a number as a standard deviation.
const SD_WORDS: [&str; 7] = ["sd", "standard deviation", "std", "stdev", "volatility", "sigma", "σ"];
/// Words that mark a number as a mean.
const MEAN_WORDS: [&str; 6] = ["mean", "average", "drift", "expected", "centred", "centered"];

/// What a request's generated scenarios are, and which numbers of its text they used (so
/// they are not read again as named shocks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Simulation {
    /// The plan.
    pub plan: SweepPlan,
    /// Byte offsets of the numbers read.
    pub used: Vec<usize>,
    /// What was assumed because the request did not say.
    pub assumptions: Vec<String>,
}

/// What a number says about its target's distribution or range.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Sd,
    Mean,
    Low,
    High,
    PlusMinus,
    UpTo,
    Step,
}

/// One target's numbers.
#[derive(Debug, Default)]
struct Reading {
    sd: Option<f64>,
    mean: Option<f64>,
    low: Option<f64>,
    high: Option<f64>,
    plus_minus: Option<f64>,
    up_to: Option<f64>,
    step: Option<f64>,
    sign: Option<f64>,
}

/// Reads the generated scenarios of `text` (normalised: lower case, plain dashes).
pub fn simulation(text: &str) -> Simulation {
    let has = |w: &str| find_word(text, w).is_some();
    let count = draw_count(text);
    let mut readings: Vec<(&'static str, Reading)> = Vec::new();
    let mut used = Vec::new();
    let nums = numbers(text);
    for (i, n) in nums.iter().enumerate() {
        // "between 0 and 2%": the percent sign belongs to the last number of a pair.
        let percent = n.percent
            || nums.get(i + 1).is_some_and(|m| {
                let between = text[n.end..m.start].trim().trim_end_matches(['-', '+']).trim_end();
                m.percent && (between == "and" || between == "to")
            });
        if !percent || n.value > 100.0 {
            continue;
        }
        let (before, after) = (&text[..n.start], &text[n.end..]);
        let Some((target, factor)) = around(before, after, &TARGETS).map(shock_target) else { continue };
        let near = before.trim_end().trim_end_matches(['-', '+', '±']).trim_end();
        let after_unit = after.trim_start().trim_start_matches('%').trim_start();
        let signed = match before.trim_end().chars().next_back() {
            Some('-') => -1.0,
            _ => 1.0,
        };
        let ends = |words: &[&str]| words.iter().any(|w| ends_with_word(near, w));
        let role = if before.trim_end().ends_with('±') || near.ends_with("+/") || ends(&["plus or minus"]) {
            Role::PlusMinus
        } else if ends(&["between", "from"]) {
            Role::Low
        } else if ends(&["up to", "at most", "as much as"]) {
            Role::UpTo
        } else if ends(&["and", "to"]) {
            Role::High
        } else if ends(&["steps of", "step of", "step", "every", "increments of", "by", "in"])
            || after_unit.starts_with("step")
            || after_unit.starts_with("increment")
        {
            Role::Step
        } else if let Some(role) = described(near, after_unit) {
            role
        } else {
            continue;
        };
        // Occupancy moves vacancy the other way.
        let value = shock_fraction(target, n, after, signed * factor);
        let index = match readings.iter().position(|(t, _)| *t == target) {
            Some(index) => index,
            None => {
                readings.push((target, Reading::default()));
                readings.len() - 1
            }
        };
        let reading = &mut readings[index].1;
        let slot = match role {
            Role::Sd => &mut reading.sd,
            Role::Mean => &mut reading.mean,
            Role::Low => &mut reading.low,
            Role::High if reading.low.is_some() => &mut reading.high,
            Role::High => continue,
            Role::PlusMinus => &mut reading.plus_minus,
            Role::UpTo => &mut reading.up_to,
            Role::Step => &mut reading.step,
        };
        if slot.is_none() {
            *slot = Some(value);
            used.push(n.start);
            if role == Role::UpTo {
                // The direction of "fall by up to 20%", without the "up" of "up to".
                let words = near.strip_suffix("up to").unwrap_or(near);
                reading.sign = around(words, after, &DIRECTIONS).map(|sign| sign * factor);
            }
        }
    }
    let distribution_words = has("normal") || has("normally") || has("uniform") || has("random") || has("stochastic");
    // "simulate 3 scenarios: base, optimistic and pessimistic" names its scenarios: a
    // count is a number of draws only when it is large or the draws are described.
    let drawn = distribution_words || readings.iter().any(|(_, r)| r.sd.is_some() || r.plus_minus.is_some());
    let monte_carlo = has("monte carlo")
        || has("stochastic")
        || count.is_some_and(|n| drawn || ((has("simulate") || has("simulation")) && n >= MIN_UNDESCRIBED_DRAWS));
    let mut out = Simulation { used, ..Simulation::default() };
    if monte_carlo {
        out.plan.monte_carlo = match count {
            Some(n) if n > MAX_DRAWS => {
                out.assumptions
                    .push(format!("{MAX_DRAWS} draws, the most the planner runs (the request asked for {n})"));
                MAX_DRAWS
            }
            Some(n) => n,
            None => {
                out.assumptions.push(format!("{DEFAULT_DRAWS} draws (the request named no count)"));
                DEFAULT_DRAWS
            }
        };
        out.plan.seed = seed(text);
        if out.plan.seed.is_none() {
            out.assumptions.push(format!("seed {} (the request named none)", crate::task::DEFAULT_SEED));
        }
        for (target, r) in &readings {
            let dist = if let (Some(lo), Some(hi)) = (r.low, r.high) {
                uniform(lo, hi)
            } else if let Some(x) = r.plus_minus {
                uniform(-x.abs(), x.abs())
            } else if let Some(x) = r.up_to {
                match r.sign.unwrap_or(1.0) {
                    s if s < 0.0 => uniform(-x.abs(), 0.0),
                    _ => uniform(0.0, x.abs()),
                }
            } else {
                r.sd.map(|sd| format!("normal({},{})", r.mean.unwrap_or(0.0), sd.abs()))
            };
            if let Some(dist) = dist {
                out.plan.dist.push(format!("{target}={dist}"));
            }
        }
        if out.plan.dist.is_empty() {
            out.plan.dist.push("noi_change=normal(0,0.1)".into());
            out.assumptions.push("NOI drawn from normal(0, 10%) (the request named no distribution)".into());
        }
    } else {
        for (target, r) in &readings {
            let (Some(lo), Some(hi)) = (r.low, r.high) else { continue };
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            let step = match r.step.map(f64::abs).filter(|s| *s > 0.0) {
                Some(step) => step,
                None => {
                    let step = if *target == "rate_change" { 0.0025 } else { 0.01 };
                    out.assumptions.push(format!("{target} in steps of {step} (the request named no step)"));
                    step
                }
            };
            out.plan.grid.push(format!("{target}={lo}..{hi}:{step}"));
        }
    }
    if out.plan.is_empty() {
        out.used.clear();
    }
    out
}

fn uniform(lo: f64, hi: f64) -> Option<String> {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    (lo < hi).then(|| format!("uniform({lo},{hi})"))
}

/// A standard deviation or a mean, by the nearest such word before the number (`sd 8%`,
/// `a standard deviation of 8%`, `mean -2% and sd 6%`), else right after it (`8% volatility`).
fn described(before: &str, after: &str) -> Option<Role> {
    let tail = before.char_indices().rev().nth(24).map_or(before, |(at, _)| &before[at..]);
    let last = |words: &[&str]| {
        words
            .iter()
            .filter_map(|w| {
                tail.match_indices(w).map(|(at, _)| at).filter(|&at| find_word(&tail[at..], w) == Some(0)).last()
            })
            .max()
    };
    match (last(&SD_WORDS), last(&MEAN_WORDS)) {
        (Some(sd), Some(mean)) => return Some(if sd > mean { Role::Sd } else { Role::Mean }),
        (Some(_), None) => return Some(Role::Sd),
        (None, Some(_)) => return Some(Role::Mean),
        (None, None) => {}
    }
    let head = after.char_indices().nth(24).map_or(after, |(at, _)| &after[..at]);
    let first = |words: &[&str]| words.iter().any(|w| find_word(head, w).is_some_and(|at| at < 6));
    if first(&SD_WORDS) {
        Some(Role::Sd)
    } else if first(&MEAN_WORDS) {
        Some(Role::Mean)
    } else {
        None
    }
}

/// The number of draws: `10,000 simulations`, `10k monte carlo runs`, `5 thousand draws`.
fn draw_count(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts =
            bytes[i].is_ascii_digit() && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b',') {
            i += 1;
        }
        let digits: String = text[start..i].trim_end_matches(',').chars().filter(char::is_ascii_digit).collect();
        let Ok(mut count) = digits.parse::<usize>() else { continue };
        let mut rest = &text[start + text[start..i].trim_end_matches(',').len()..];
        for (suffix, factor) in [("k", 1_000), (" thousand", 1_000), (" million", 1_000_000), ("m", 1_000_000)] {
            if let Some(tail) = rest.strip_prefix(suffix)
                && !tail.chars().next().is_some_and(char::is_alphanumeric)
            {
                count = count.saturating_mul(factor);
                rest = tail;
                break;
            }
        }
        let rest = rest.trim_start().strip_prefix("monte carlo").unwrap_or(rest).trim_start();
        let rest = rest.strip_prefix("random").unwrap_or(rest).trim_start();
        if count >= 2 && COUNT_NOUNS.iter().any(|w| find_word(rest, w) == Some(0)) {
            return Some(count);
        }
    }
    None
}

/// `seed 7`, `seed=7`, `random seed of 42`.
fn seed(text: &str) -> Option<u64> {
    let at = find_word(text, "seed")?;
    let rest = text[at + 4..].trim_start_matches([' ', '=', ':']);
    let rest = rest.strip_prefix("of ").unwrap_or(rest);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether `text` ends with `word` as a word of its own.
fn ends_with_word(text: &str, word: &str) -> bool {
    text.strip_suffix(word).is_some_and(|rest| !rest.chars().next_back().is_some_and(char::is_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(request: &str) -> Simulation {
        let text = request.to_lowercase().replace('−', "-");
        simulation(&text)
    }

    #[test]
    fn monte_carlo_draws_and_their_distributions() {
        let s = read(
            "Run 10,000 Monte Carlo simulations where NOI is normally distributed with a standard deviation of 8% \
             and interest rates are uniform between 0 and 2%, seed 7",
        );
        assert_eq!(s.plan.monte_carlo, 10_000);
        assert_eq!(s.plan.seed, Some(7));
        assert_eq!(s.plan.dist, ["noi_change=normal(0,0.08)", "rate_change=uniform(0,0.02)"]);
        assert!(s.plan.grid.is_empty() && s.assumptions.is_empty(), "{s:?}");
    }

    #[test]
    fn draw_counts_in_several_spellings() {
        for (request, draws) in [
            ("simulate 5k scenarios with NOI ±10%", 5_000),
            ("monte carlo of NOI, 2,500 draws, volatility 5%", 2_500),
            ("a monte carlo stress test of NOI with 8% sd", DEFAULT_DRAWS),
            ("run 3 thousand random trials of NOI, mean -2% and sd 6%", 3_000),
        ] {
            let s = read(request);
            assert_eq!(s.plan.monte_carlo, draws, "{request}: {s:?}");
        }
        assert_eq!(read("simulate 5k scenarios with NOI ±10%").plan.dist, ["noi_change=uniform(-0.1,0.1)"]);
        let capped = read("monte carlo: 50 million draws of NOI with sd 5%");
        assert_eq!(capped.plan.monte_carlo, MAX_DRAWS);
        assert!(capped.assumptions.iter().any(|a| a.contains("asked for 50000000")), "{capped:?}");
        assert_eq!(
            read("run 3 thousand random trials of NOI, mean -2% and sd 6%").plan.dist,
            ["noi_change=normal(-0.02,0.06)"]
        );
    }

    #[test]
    fn up_to_takes_its_direction() {
        let s = read("1000 simulations: NOI could fall by up to 20% and rates rise up to 150 bp");
        assert_eq!(s.plan.dist, ["noi_change=uniform(-0.2,0)", "rate_change=uniform(0,0.015)"]);
    }

    #[test]
    fn ranges_become_grids() {
        let s = read("DSCR sensitivity: NOI from -30% to +10% in steps of 5% and rates between 0 and 2%");
        assert_eq!(s.plan.monte_carlo, 0);
        assert_eq!(s.plan.grid, ["noi_change=-0.3..0.1:0.05", "rate_change=0..0.02:0.0025"]);
        assert_eq!(s.assumptions.len(), 1, "the rate step was assumed: {s:?}");
        assert_eq!(s.used.len(), 5);
    }

    #[test]
    fn named_stress_levels_are_not_simulations() {
        for request in [
            "calculate DSCR for every property and show a 10/20/30% NOI stress test",
            "simulate a 10% NOI decline and rates up 100 bp",
            "simulate 3 scenarios: base, optimistic and pessimistic",
            "which properties are at risk below 1.3",
        ] {
            let s = read(request);
            assert!(s.plan.is_empty() && s.used.is_empty(), "{request}: {s:?}");
        }
    }
}
