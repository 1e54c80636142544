//! The sweep plan: one serde type for every way scenarios are asked for (the command
//! line's flags, a scenarios file, `--plan plan.json`, a request's plan), enumerated by
//! index.
//!
//! Scenario *k* is a pure function of the plan and *k*: a grid point is *k* read in the
//! mixed radix of the axes, and a Monte Carlo draw comes from a ChaCha stream keyed by the
//! seed with *k* as the stream number. So shard 3 of 8 computes its scenarios without
//! drawing the first shards' numbers, and every machine computes the same ones.

use std::ops::Range;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Triangular, Uniform};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::spec::{SpecError, round10, show, spec_error};
use crate::scenario::Scenario;

/// The most scenarios one plan may produce.
pub const MAX_SCENARIOS: usize = 10_000_000;

/// The format a `plan.json` declares, checked when it is read.
pub const PLAN_FORMAT: &str = "metaexec-sweep-plan/1";

/// A whole sweep: which scenarios, in which order, from which seed.
///
/// The parts combine: every named scenario × every grid point × every zip row. Monte
/// Carlo draws stand alone. `base` sits under every scenario's own parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// [`PLAN_FORMAT`]; a file of another format is refused rather than misread.
    #[serde(default = "plan_format")]
    pub format: String,
    /// Parameters every scenario gets, under its own (`--param`, `--params-file`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub base: Map<String, Value>,
    /// Named scenarios, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub named: Vec<Named>,
    /// Grids: their cartesian product, the first one outermost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<Axis>,
    /// Lists taken side by side (all the same length).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zips: Vec<Axis>,
    /// Random draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monte_carlo: Option<MonteCarlo>,
    /// The seed of the draws, and of Python's `random` in each scenario.
    pub seed: u64,
}

fn plan_format() -> String {
    PLAN_FORMAT.to_owned()
}

/// A named scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    /// Its name: the scenario's id.
    pub name: String,
    /// Its parameters.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// One parameter and the values it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    /// The parameter.
    pub param: String,
    /// Its values, in order.
    pub values: Vec<Value>,
}

/// Seeded random draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonteCarlo {
    /// How many scenarios.
    pub draws: usize,
    /// One distribution per drawn parameter, drawn in this order.
    pub dists: Vec<Drawn>,
}

/// A parameter drawn from a distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drawn {
    /// The parameter.
    pub param: String,
    /// Its distribution.
    pub dist: Dist,
}

/// A distribution to draw a parameter from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Dist {
    /// `normal(mean, sd)`.
    Normal {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        sd: f64,
    },
    /// `uniform(lo, hi)`.
    Uniform {
        /// The lowest value.
        lo: f64,
        /// The bound above every value.
        hi: f64,
    },
    /// `triangular(lo, mode, hi)`.
    Triangular {
        /// The lowest value.
        lo: f64,
        /// The most likely value.
        mode: f64,
        /// The highest value.
        hi: f64,
    },
    /// `lognormal(mu, sigma)`: the exponential of a normal draw.
    #[serde(rename = "lognormal")]
    LogNormal {
        /// The mean of the logarithm.
        mu: f64,
        /// The standard deviation of the logarithm.
        sigma: f64,
    },
}

impl Dist {
    /// Why the distribution cannot be drawn from, if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        let finite = |xs: &[f64]| xs.iter().all(|x| x.is_finite());
        match *self {
            Dist::Normal { mean, sd } if !finite(&[mean, sd]) => Some("its arguments must be finite numbers"),
            Dist::Normal { sd, .. } if sd < 0.0 => Some("the standard deviation must not be negative"),
            Dist::Uniform { lo, hi } if !finite(&[lo, hi]) => Some("its arguments must be finite numbers"),
            Dist::Uniform { lo, hi } if lo >= hi => Some("uniform needs lo < hi"),
            Dist::Triangular { lo, mode, hi } if !finite(&[lo, mode, hi]) => {
                Some("its arguments must be finite numbers")
            }
            Dist::Triangular { lo, mode, hi } if !(lo <= mode && mode <= hi && lo < hi) => {
                Some("triangular needs lo <= mode <= hi and lo < hi")
            }
            Dist::LogNormal { mu, sigma } if !finite(&[mu, sigma]) => Some("its arguments must be finite numbers"),
            Dist::LogNormal { sigma, .. } if sigma < 0.0 => Some("sigma must not be negative"),
            _ => None,
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        // Checked by `problem` before any draw, so the constructors cannot fail.
        match *self {
            Dist::Normal { mean, sd } => Normal::new(mean, sd).map_or(mean, |d| d.sample(rng)),
            Dist::Uniform { lo, hi } => Uniform::new(lo, hi).map_or(lo, |d| d.sample(rng)),
            Dist::Triangular { lo, mode, hi } => Triangular::new(lo, hi, mode).map_or(mode, |d| d.sample(rng)),
            Dist::LogNormal { mu, sigma } => LogNormal::new(mu, sigma).map_or(mu.exp(), |d| d.sample(rng)),
        }
    }
}

/// Where a plan came from, for its error messages: a user who wrote flags reads about
/// flags, one who wrote a file reads about the file, one who asked in words reads about
/// the plan made from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Command-line flags.
    Flags,
    /// A plan file.
    File(&'a str),
    /// The plan made from a request.
    Request,
}

impl Source<'_> {
    /// How a part of the plan is named in an error: `--grid` or `plan.json: grid`.
    pub fn part(&self, flag: &str) -> String {
        let field = flag.trim_start_matches('-').replace('-', "_");
        match self {
            Source::Flags => flag.to_owned(),
            Source::File(name) => format!("{name}: {field}"),
            Source::Request => format!("the request's {}", field.replace('_', " ")),
        }
    }
}

impl Plan {
    /// An empty plan of the current format with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { format: PLAN_FORMAT.to_owned(), seed, ..Self::default() }
    }

    /// Reads a plan file's text; `name` names it in errors.
    pub fn from_json(name: &str, text: &str) -> Result<Plan, SpecError> {
        let plan: Plan = serde_json::from_str(text)
            .map_err(|e| spec_error(name, "", format!("not a sweep plan: {e} (see `metaexec sweep --help`)")))?;
        if plan.format != PLAN_FORMAT {
            return Err(spec_error(
                name,
                &plan.format,
                format!("is a plan of another format; this metaexec reads `{PLAN_FORMAT}`"),
            ));
        }
        plan.enumerate(Source::File(name))?;
        Ok(plan)
    }

    /// The plan as the JSON text `plan.json` holds (pretty, with a final newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The SHA-256 of [`Plan::to_json`]: what ties a shard's part to its plan.
    pub fn sha256(&self) -> String {
        crate::cache::sha256_hex(self.to_json().as_bytes())
    }

    /// True when the plan names no scenario at all.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.grids.is_empty() && self.zips.is_empty() && self.monte_carlo.is_none()
    }

    /// Every parameter the scenarios set (not the base ones), in plan order.
    pub fn swept_params(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let names = self
            .named
            .iter()
            .flat_map(|n| n.params.keys())
            .chain(self.grids.iter().map(|a| &a.param))
            .chain(self.zips.iter().map(|a| &a.param))
            .chain(self.monte_carlo.iter().flat_map(|mc| mc.dists.iter().map(|d| &d.param)));
        for name in names {
            if !out.contains(&name.as_str()) {
                out.push(name);
            }
        }
        out
    }

    /// Checks the plan and returns its scenarios, computed on demand by index. `source`
    /// names the plan's parts in errors.
    pub fn enumerate(&self, source: Source<'_>) -> Result<Scenarios<'_>, SpecError> {
        let part = |flag: &str| source.part(flag);
        if let Some(mc) = &self.monte_carlo {
            if !(self.named.is_empty() && self.grids.is_empty() && self.zips.is_empty()) {
                return Err(spec_error(
                    &part("--monte-carlo"),
                    &mc.draws.to_string(),
                    "cannot be combined with named scenarios, grids or zips",
                ));
            }
            if mc.draws == 0 || mc.draws > MAX_SCENARIOS {
                return Err(spec_error(
                    &part("--monte-carlo"),
                    &mc.draws.to_string(),
                    format!("expected 1 to {MAX_SCENARIOS} draws"),
                ));
            }
            if mc.dists.is_empty() {
                return Err(spec_error(&part("--monte-carlo"), &mc.draws.to_string(), "needs at least one --dist"));
            }
            for drawn in &mc.dists {
                check_name(&part("--dist"), &drawn.param)?;
                if let Some(problem) = drawn.dist.problem() {
                    return Err(spec_error(&part("--dist"), &drawn.param, problem));
                }
            }
            return Ok(Scenarios { plan: self, total: mc.draws, zip_len: 1, width: mc.draws.to_string().len() });
        }
        let mut names: Vec<&str> = Vec::with_capacity(self.named.len());
        for named in &self.named {
            if named.name.is_empty() {
                return Err(spec_error(&part("--scenarios"), "", "a scenario without a name"));
            }
            if names.contains(&named.name.as_str()) {
                return Err(spec_error(
                    &part("--scenarios"),
                    &named.name,
                    "two scenarios have this name: give each its own",
                ));
            }
            names.push(&named.name);
        }
        for (flag, axes) in [("--grid", &self.grids), ("--zip", &self.zips)] {
            for axis in axes {
                check_name(&part(flag), &axis.param)?;
                if axis.values.is_empty() {
                    return Err(spec_error(&part(flag), &axis.param, "has no values"));
                }
            }
        }
        let zip_len = match self.zips.first() {
            Some(first) => {
                if let Some(other) = self.zips.iter().find(|a| a.values.len() != first.values.len()) {
                    return Err(spec_error(
                        &part("--zip"),
                        &other.param,
                        format!("has a different length from `{}` ({} values)", first.param, first.values.len()),
                    ));
                }
                first.values.len()
            }
            None => 1,
        };
        let mut total: usize = self.named.len().max(1);
        for axis in self.grids.iter().chain(self.zips.first()) {
            total = total.checked_mul(axis.values.len()).filter(|n| *n <= MAX_SCENARIOS).ok_or_else(|| {
                spec_error(&part("--grid"), &axis.param, format!("the plan makes more than {MAX_SCENARIOS} scenarios"))
            })?;
        }
        Ok(Scenarios { plan: self, total, zip_len, width: 0 })
    }
}

fn check_name(part: &str, name: &str) -> Result<(), SpecError> {
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(spec_error(part, name, format!("`{name}` is not a parameter name (letters, digits and _)")));
    }
    Ok(())
}

/// A checked plan's scenarios, each computed when asked for.
#[derive(Debug, Clone, Copy)]
pub struct Scenarios<'a> {
    plan: &'a Plan,
    total: usize,
    /// Rows of the zips (1 without any).
    zip_len: usize,
    /// Digits of a Monte Carlo id.
    width: usize,
}

impl Scenarios<'_> {
    /// How many scenarios.
    pub fn len(&self) -> usize {
        self.total
    }

    /// True when there are none (never, for a checked plan).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Scenario `index` (below [`Scenarios::len`]).
    pub fn get(&self, index: usize) -> Scenario {
        let plan = self.plan;
        let mut params = plan.base.clone();
        let id = if let Some(mc) = &plan.monte_carlo {
            // A stream per scenario: its draws do not depend on any other scenario's.
            let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
            rng.set_stream(index as u64);
            for drawn in &mc.dists {
                params.insert(drawn.param.clone(), Value::from(round10(drawn.dist.sample(&mut rng))));
            }
            format!("mc-{:0width$}", index + 1, width = self.width)
        } else {
            // Innermost first: the zip row, then the grids from the last one out, then
            // the named scenario.
            let mut rest = index;
            let row = rest % self.zip_len;
            rest /= self.zip_len;
            let mut points = vec![0; plan.grids.len()];
            for (i, axis) in plan.grids.iter().enumerate().rev() {
                points[i] = rest % axis.values.len();
                rest /= axis.values.len();
            }
            let named = plan.named.get(rest);
            if let Some(named) = named {
                params.extend(named.params.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let mut label = Vec::with_capacity(plan.grids.len() + plan.zips.len());
            let axes = plan.grids.iter().zip(points).chain(plan.zips.iter().map(|axis| (axis, row)));
            for (axis, point) in axes {
                let value = &axis.values[point];
                label.push(format!("{}={}", axis.param, show(value)));
                params.insert(axis.param.clone(), value.clone());
            }
            match (named, label.is_empty()) {
                (Some(named), true) => named.name.clone(),
                (Some(named), false) => format!("{};{}", named.name, label.join(";")),
                (None, false) => label.join(";"),
                (None, true) => "base".to_owned(),
            }
        };
        Scenario { id, params }
    }

    /// The scenarios with indices in `range`, in order.
    pub fn range(&self, range: Range<usize>) -> impl Iterator<Item = Scenario> + '_ {
        range.filter(|i| *i < self.total).map(|i| self.get(i))
    }

    /// Every scenario, in order.
    pub fn all(&self) -> Vec<Scenario> {
        self.range(0..self.total).collect()
    }
}

/// Shard `index` (from 0) of `count`: a contiguous range of scenario indices, the
/// first `total % count` shards one longer than the rest, so every scenario is in
/// exactly one shard.
pub fn shard_range(total: usize, index: usize, count: usize) -> Range<usize> {
    let count = count.max(1);
    let (size, extra) = (total / count, total % count);
    let start = index * size + index.min(extra);
    let end = start + size + usize::from(index < extra);
    start.min(total)..end.min(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::spec::{parse_dist, parse_grid, parse_zip};
    use serde_json::json;

    fn axis((param, values): (String, Vec<Value>)) -> Axis {
        Axis { param, values }
    }

    #[test]
    fn the_product_has_stable_ids_and_any_index_is_computed_alone() {
        let plan = Plan {
            grids: vec![axis(parse_grid("a=1,2").unwrap()), axis(parse_grid("b=0..0.2:0.1").unwrap())],
            ..Plan::new(1)
        };
        let scenarios = plan.enumerate(Source::Flags).unwrap();
        assert_eq!(scenarios.len(), 6);
        let all = scenarios.all();
        assert_eq!(all[0].id, "a=1;b=0.0");
        assert_eq!(all[5].id, "a=2;b=0.2");
        assert_eq!(all[5].params, json!({"a": 2, "b": 0.2}).as_object().unwrap().clone());
        for (i, s) in all.iter().enumerate() {
            assert_eq!(&scenarios.get(i), s);
        }
    }

    #[test]
    fn named_zipped_combined_and_base_params() {
        let mut plan = Plan {
            named: vec![
                Named { name: "base".into(), params: Map::new() },
                Named { name: "stress".into(), params: json!({"noi_change": -0.2}).as_object().unwrap().clone() },
            ],
            zips: vec![axis(parse_zip("x=1,2").unwrap()), axis(parse_zip("y=a,b").unwrap())],
            ..Plan::new(1)
        };
        plan.base.insert("noi_change".into(), json!(0.0));
        plan.base.insert("loan".into(), json!(7));
        let all = plan.enumerate(Source::Flags).unwrap().all();
        let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["base;x=1;y=a", "base;x=2;y=b", "stress;x=1;y=a", "stress;x=2;y=b"]);
        // The scenario's own value wins over the base one.
        assert_eq!(Value::Object(all[3].params.clone()), json!({"noi_change": -0.2, "loan": 7, "x": 2, "y": "b"}));
        assert_eq!(Value::Object(all[0].params.clone()), json!({"noi_change": 0.0, "loan": 7, "x": 1, "y": "a"}));
        plan.named.push(Named { name: "base".into(), params: Map::new() });
        let e = plan.enumerate(Source::File("plan.json")).unwrap_err().to_string();
        assert!(e.starts_with("plan.json: scenarios `base`") && e.contains("two scenarios"), "{e}");
    }

    #[test]
    fn errors_name_the_part_in_the_words_of_its_source() {
        let plan =
            Plan { zips: vec![axis(parse_zip("x=1,2").unwrap()), axis(parse_zip("y=1").unwrap())], ..Plan::new(1) };
        let flags = plan.enumerate(Source::Flags).unwrap_err().to_string();
        assert!(flags.starts_with("--zip `y`: has a different length"), "{flags}");
        let file = plan.enumerate(Source::File("p.json")).unwrap_err().to_string();
        assert!(file.starts_with("p.json: zip `y`"), "{file}");
        let request = plan.enumerate(Source::Request).unwrap_err().to_string();
        assert!(request.starts_with("the request's zip `y`") && !request.contains("--"), "{request}");
    }

    #[test]
    fn a_plan_file_round_trips_and_is_checked() {
        let plan = Plan {
            monte_carlo: Some(MonteCarlo {
                draws: 3,
                dists: vec![Drawn { param: "n".into(), dist: parse_dist("n=normal(0,0.08)").unwrap().1 }],
            }),
            ..Plan::new(9)
        };
        let text = plan.to_json();
        assert!(text.contains("\"kind\": \"normal\""), "{text}");
        assert_eq!(Plan::from_json("p.json", &text).unwrap(), plan);
        assert_eq!(plan.sha256(), Plan::from_json("p.json", &text).unwrap().sha256());
        let bad = text.replace("0.08", "-1");
        let e = Plan::from_json("p.json", &bad).unwrap_err().to_string();
        assert!(e.contains("p.json: dist `n`") && e.contains("must not be negative"), "{e}");
        let e = Plan::from_json("p.json", "{\"seed\": 1, \"grid\": []}").unwrap_err().to_string();
        assert!(e.contains("unknown field `grid`"), "{e}");
        let e = Plan::from_json("p.json", "{\"format\": \"other/2\", \"seed\": 1}").unwrap_err().to_string();
        assert!(e.contains("another format"), "{e}");
    }

    /// The same seed gives the same draws on any machine: these values are pinned, and
    /// a change of the generator, its seeding or the distributions' algorithms fails here.
    #[test]
    fn monte_carlo_draws_are_pinned_and_independent_of_the_split() {
        let plan = Plan {
            monte_carlo: Some(MonteCarlo {
                draws: 100_000,
                dists: vec![
                    Drawn { param: "n".into(), dist: Dist::Normal { mean: 0.0, sd: 0.08 } },
                    Drawn { param: "u".into(), dist: Dist::Uniform { lo: 0.0, hi: 0.02 } },
                ],
            }),
            ..Plan::new(7)
        };
        let scenarios = plan.enumerate(Source::Flags).unwrap();
        let draw = |i: usize| {
            let s = scenarios.get(i);
            (s.id, s.params["n"].as_f64().unwrap(), s.params["u"].as_f64().unwrap())
        };
        let golden = [
            (0, "mc-000001", GOLDEN[0].0, GOLDEN[0].1),
            (1, "mc-000002", GOLDEN[1].0, GOLDEN[1].1),
            (54_321, "mc-054322", GOLDEN[2].0, GOLDEN[2].1),
            (99_999, "mc-100000", GOLDEN[3].0, GOLDEN[3].1),
        ];
        for (index, id, n, u) in golden {
            assert_eq!(draw(index), (id.to_owned(), n, u), "draw {index}");
        }
        // A shard computes its draws without the ones before it: the same values.
        let tail: Vec<Scenario> = scenarios.range(99_990..100_000).collect();
        assert_eq!(tail[9], scenarios.get(99_999));
        let n: Vec<f64> = scenarios.range(0..20_000).map(|s| s.params["n"].as_f64().unwrap()).collect();
        let mean = n.iter().sum::<f64>() / n.len() as f64;
        let sd = (n.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n.len() as f64).sqrt();
        assert!(mean.abs() < 0.005 && (sd - 0.08).abs() < 0.005, "mean {mean} sd {sd}");
        let other = Plan { seed: 8, ..plan.clone() };
        assert_ne!(other.enumerate(Source::Flags).unwrap().get(0), scenarios.get(0));
    }

    /// Draws 1, 2, 54,322 and 100,000 of seed 7: `n` from normal(0, 0.08), `u` from
    /// uniform(0, 0.02), ChaCha8 keyed by the seed, one stream per scenario.
    const GOLDEN: [(f64, f64); 4] = [
        (-0.0620297547, 0.0033597873),
        (0.082110854, 0.0001810282),
        (-0.1400362276, 0.0005671998),
        (0.0461667283, 0.0125276067),
    ];

    #[test]
    fn shards_cover_every_scenario_once() {
        for total in [0, 1, 5, 7, 20_000, 20_001] {
            for count in [1, 2, 3, 7, 8] {
                let mut next = 0;
                for index in 0..count {
                    let range = shard_range(total, index, count);
                    assert_eq!(range.start, next, "{total} {index}/{count}");
                    assert!(range.len() <= total / count + 1);
                    next = range.end;
                }
                assert_eq!(next, total);
            }
        }
    }
}
