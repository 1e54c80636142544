//! Scenario specs: named scenarios from a file, grids, zipped lists and seeded Monte
//! Carlo draws, turned into a list of [`Scenario`]s with stable ids.
//!
//! - `--scenarios FILE`: a JSON object `{"name": {"param": value, ...}, ...}` or a list of
//!   objects with a `name` (or `id`) and the params beside it; or the same in TOML;
//! - `--grid "k=a..b:step"` or `--grid "k=v1,v2,..."`: the cartesian product of all grids;
//! - `--zip "k=v1,v2,..."`: lists of equal length taken side by side;
//! - `--monte-carlo N --seed S --dist "k=normal(mean,sd)"` (also `uniform(lo,hi)`,
//!   `triangular(lo,mode,hi)`, `lognormal(mu,sigma)`): N draws, the same for the same seed.
//!
//! The parts combine: every named scenario × every grid point × every zip row. Monte Carlo
//! draws stand alone. Errors point at the part that is wrong.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Triangular, Uniform};
use serde_json::{Map, Value};

use crate::scenario::Scenario;

/// The most scenarios one spec may produce.
pub const MAX_SCENARIOS: usize = 1_000_000;

/// A spec that cannot be turned into scenarios.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} `{text}`: {reason}")]
pub struct SpecError {
    /// The flag (or file) the bad part came from.
    pub flag: String,
    /// The bad part as given.
    pub text: String,
    /// What is wrong, and what was expected.
    pub reason: String,
}

fn spec_error(flag: &str, text: &str, reason: impl Into<String>) -> SpecError {
    SpecError { flag: flag.to_owned(), text: text.to_owned(), reason: reason.into() }
}

/// A named scenario: its name and params.
pub type NamedScenario = (String, Map<String, Value>);

/// A whole sweep spec, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSpec {
    /// Named scenarios (from a file), in file order.
    pub named: Vec<NamedScenario>,
    /// `(param, values)` per `--grid`.
    pub grids: Vec<(String, Vec<Value>)>,
    /// `(param, values)` per `--zip`.
    pub zips: Vec<(String, Vec<Value>)>,
    /// Monte Carlo draws, if asked for.
    pub monte_carlo: Option<MonteCarlo>,
}

/// Seeded random draws.
#[derive(Debug, Clone, PartialEq)]
pub struct MonteCarlo {
    /// How many scenarios.
    pub draws: usize,
    /// The seed: the same seed gives the same draws, on any machine.
    pub seed: u64,
    /// `(param, distribution)` per `--dist`.
    pub dists: Vec<(String, Dist)>,
}

/// A distribution to draw a parameter from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// `normal(mean, sd)`.
    Normal(f64, f64),
    /// `uniform(lo, hi)`.
    Uniform(f64, f64),
    /// `triangular(lo, mode, hi)`.
    Triangular(f64, f64, f64),
    /// `lognormal(mu, sigma)`.
    LogNormal(f64, f64),
}

/// Parses `--grid "k=a..b:step"` or `"k=v1,v2"`.
pub fn parse_grid(text: &str) -> Result<(String, Vec<Value>), SpecError> {
    let (key, values) = key_value("--grid", text)?;
    if let Some((range, step)) = values.split_once(':')
        && let Some((start, stop)) = range.split_once("..")
    {
        let number = |s: &str, what: &str| {
            s.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
                spec_error(
                    "--grid",
                    text,
                    format!("the {what} `{}` is not a number (expected k=start..stop:step)", s.trim()),
                )
            })
        };
        let (start, stop, step) = (number(start, "start")?, number(stop, "stop")?, number(step, "step")?);
        if step <= 0.0 {
            return Err(spec_error("--grid", text, "the step must be positive"));
        }
        if stop < start {
            return Err(spec_error("--grid", text, "the stop is below the start"));
        }
        let count = ((stop - start) / step + 1e-9).floor() as usize + 1;
        if count > MAX_SCENARIOS {
            return Err(spec_error("--grid", text, format!("{count} values is more than {MAX_SCENARIOS}")));
        }
        // Rounded to 10 decimals, so -0.3 + 3 × 0.1 is 0.0 and not 5.55e-17.
        let values = (0..count).map(|i| Value::from(round10(start + i as f64 * step))).collect();
        return Ok((key, values));
    }
    Ok((key, list("--grid", text, &values)?))
}

/// Parses `--zip "k=v1,v2,..."`.
pub fn parse_zip(text: &str) -> Result<(String, Vec<Value>), SpecError> {
    let (key, values) = key_value("--zip", text)?;
    Ok((key, list("--zip", text, &values)?))
}

/// Parses `--dist "k=normal(0,0.08)"`.
pub fn parse_dist(text: &str) -> Result<(String, Dist), SpecError> {
    let (key, body) = key_value("--dist", text)?;
    let bad = |reason: &str| {
        spec_error(
            "--dist",
            text,
            format!(
                "{reason} (expected normal(mean,sd), uniform(lo,hi), triangular(lo,mode,hi) or lognormal(mu,sigma))"
            ),
        )
    };
    let (name, args) =
        body.trim().strip_suffix(')').and_then(|b| b.split_once('(')).ok_or_else(|| bad("not a distribution"))?;
    let args: Vec<f64> = args
        .split(',')
        .map(|a| a.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("its arguments must be numbers"))?;
    let dist = match (name.trim().to_ascii_lowercase().as_str(), args.as_slice()) {
        ("normal", &[mean, sd]) if sd >= 0.0 => Dist::Normal(mean, sd),
        ("normal", &[_, _]) => return Err(bad("the standard deviation must not be negative")),
        ("uniform", &[lo, hi]) if lo < hi => Dist::Uniform(lo, hi),
        ("uniform", &[_, _]) => return Err(bad("uniform needs lo < hi")),
        ("triangular", &[lo, mode, hi]) if lo <= mode && mode <= hi && lo < hi => Dist::Triangular(lo, mode, hi),
        ("triangular", &[_, _, _]) => return Err(bad("triangular needs lo <= mode <= hi and lo < hi")),
        ("lognormal", &[mu, sigma]) if sigma >= 0.0 => Dist::LogNormal(mu, sigma),
        _ => return Err(bad("unknown distribution or wrong number of arguments")),
    };
    Ok((key, dist))
}

/// Reads named scenarios from JSON text, YAML when `source` ends in `.yaml` or `.yml`
/// (a mapping of name → params, or a list of mappings with a `name`), or TOML when it
/// ends in `.toml` (`[stress]` tables of params, or `[[scenario]]` entries with a
/// `name`); `source` names the file in errors.
pub fn parse_named(source: &str, text: &str) -> Result<Vec<NamedScenario>, SpecError> {
    let lower = source.to_ascii_lowercase();
    let value: Value = if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        serde_norway::from_str(text).map_err(|e| spec_error("--scenarios", source, format!("not valid YAML: {e}")))?
    } else if lower.ends_with(".toml") {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| spec_error("--scenarios", source, format!("not valid TOML: {e}")))?;
        let value = serde_json::to_value(table).map_err(|e| spec_error("--scenarios", source, e.to_string()))?;
        // `[[scenario]]` arrays of tables read like a JSON list.
        match value {
            Value::Object(mut map) if map.len() == 1 && map.get("scenario").is_some_and(Value::is_array) => {
                map.remove("scenario").unwrap_or_default()
            }
            other => other,
        }
    } else {
        serde_json::from_str(text).map_err(|e| spec_error("--scenarios", source, format!("not valid JSON: {e}")))?
    };
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (name, params) in map {
                match params {
                    Value::Object(params) => out.push((name, params)),
                    _ => {
                        return Err(spec_error(
                            "--scenarios",
                            source,
                            format!("scenario `{name}` is not an object of params"),
                        ));
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let Value::Object(mut params) = item else {
                    return Err(spec_error("--scenarios", source, format!("item {} is not an object", i + 1)));
                };
                let name = match params.remove("name").or_else(|| params.remove("id")) {
                    Some(Value::String(name)) => name,
                    _ => format!("scenario-{}", i + 1),
                };
                // `{"name": .., "params": {..}}` and flat objects are both accepted.
                let params = match params.remove("params") {
                    Some(Value::Object(inner)) if params.is_empty() => inner,
                    Some(other) => {
                        params.insert("params".into(), other);
                        params
                    }
                    None => params,
                };
                out.push((name, params));
            }
        }
        _ => {
            return Err(spec_error("--scenarios", source, "expected an object of name → params, or a list of objects"));
        }
    }
    if out.is_empty() {
        return Err(spec_error("--scenarios", source, "it holds no scenarios"));
    }
    Ok(out)
}

impl SweepSpec {
    /// The spec of the `--grid`, `--zip`, `--monte-carlo`, `--seed` and `--dist` texts
    /// (named scenarios are added separately).
    pub fn from_flags(
        grid: &[String],
        zip: &[String],
        monte_carlo: Option<usize>,
        seed: u64,
        dist: &[String],
    ) -> Result<SweepSpec, SpecError> {
        let mut spec = SweepSpec {
            grids: grid.iter().map(|g| parse_grid(g)).collect::<Result<_, _>>()?,
            zips: zip.iter().map(|z| parse_zip(z)).collect::<Result<_, _>>()?,
            ..SweepSpec::default()
        };
        match monte_carlo {
            Some(draws) => {
                let dists = dist.iter().map(|d| parse_dist(d)).collect::<Result<_, _>>()?;
                spec.monte_carlo = Some(MonteCarlo { draws, seed, dists });
            }
            None if !dist.is_empty() => {
                return Err(spec_error("--dist", &dist[0], "needs --monte-carlo N (for example --monte-carlo 10000)"));
            }
            None => {}
        }
        Ok(spec)
    }

    /// True when the spec names no scenario at all.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.grids.is_empty() && self.zips.is_empty() && self.monte_carlo.is_none()
    }

    /// The scenarios, in a stable order with stable ids.
    pub fn scenarios(&self) -> Result<Vec<Scenario>, SpecError> {
        if let Some(mc) = &self.monte_carlo {
            if !(self.named.is_empty() && self.grids.is_empty() && self.zips.is_empty()) {
                return Err(spec_error(
                    "--monte-carlo",
                    &mc.draws.to_string(),
                    "cannot be combined with --scenarios, --grid or --zip",
                ));
            }
            return mc.scenarios();
        }
        let zip_len = match self.zips.first() {
            Some((key, values)) => {
                if let Some((other, _)) = self.zips.iter().find(|(_, v)| v.len() != values.len()) {
                    return Err(spec_error(
                        "--zip",
                        other,
                        format!("has a different length from `{key}` ({} values)", values.len()),
                    ));
                }
                Some(values.len())
            }
            None => None,
        };
        let mut total: usize = self.named.len().max(1);
        for (key, values) in &self.grids {
            total = total.checked_mul(values.len()).filter(|n| *n <= MAX_SCENARIOS).ok_or_else(|| {
                spec_error("--grid", key, format!("the grids make more than {MAX_SCENARIOS} scenarios"))
            })?;
        }
        total = total.saturating_mul(zip_len.unwrap_or(1));
        if total > MAX_SCENARIOS {
            return Err(spec_error("--zip", "", format!("the spec makes more than {MAX_SCENARIOS} scenarios")));
        }
        let base: Vec<(Option<&str>, Map<String, Value>)> = if self.named.is_empty() {
            vec![(None, Map::new())]
        } else {
            self.named.iter().map(|(name, params)| (Some(name.as_str()), params.clone())).collect()
        };
        let mut out = Vec::with_capacity(total);
        for (name, params) in base {
            let mut points = vec![(Vec::<String>::new(), params)];
            for (key, values) in &self.grids {
                points = points
                    .into_iter()
                    .flat_map(|(label, params)| {
                        values.iter().map(move |value| {
                            let mut label = label.clone();
                            let mut params = params.clone();
                            label.push(format!("{key}={}", show(value)));
                            params.insert(key.clone(), value.clone());
                            (label, params)
                        })
                    })
                    .collect();
            }
            for (label, params) in points {
                for row in 0..zip_len.unwrap_or(1) {
                    let mut label = label.clone();
                    let mut params = params.clone();
                    for (key, values) in &self.zips {
                        label.push(format!("{key}={}", show(&values[row])));
                        params.insert(key.clone(), values[row].clone());
                    }
                    let id = match (name, label.is_empty()) {
                        (Some(name), true) => name.to_owned(),
                        (Some(name), false) => format!("{name};{}", label.join(";")),
                        (None, false) => label.join(";"),
                        (None, true) => "base".to_owned(),
                    };
                    out.push(Scenario { id, params });
                }
            }
        }
        Ok(out)
    }
}

impl MonteCarlo {
    fn scenarios(&self) -> Result<Vec<Scenario>, SpecError> {
        if self.draws == 0 || self.draws > MAX_SCENARIOS {
            return Err(spec_error(
                "--monte-carlo",
                &self.draws.to_string(),
                format!("expected 1 to {MAX_SCENARIOS} draws"),
            ));
        }
        if self.dists.is_empty() {
            return Err(spec_error("--monte-carlo", &self.draws.to_string(), "needs at least one --dist"));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let width = self.draws.to_string().len();
        let mut out = Vec::with_capacity(self.draws);
        for i in 0..self.draws {
            let mut params = Map::new();
            for (key, dist) in &self.dists {
                params.insert(key.clone(), Value::from(round10(dist.sample(&mut rng))));
            }
            out.push(Scenario { id: format!("mc-{:0width$}", i + 1), params });
        }
        Ok(out)
    }
}

impl Dist {
    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        // Parameters were validated when parsed, so the constructors cannot fail.
        match *self {
            Dist::Normal(mean, sd) => Normal::new(mean, sd).map_or(mean, |d| d.sample(rng)),
            Dist::Uniform(lo, hi) => Uniform::new(lo, hi).map_or(lo, |d| d.sample(rng)),
            Dist::Triangular(lo, mode, hi) => Triangular::new(lo, hi, mode).map_or(mode, |d| d.sample(rng)),
            Dist::LogNormal(mu, sigma) => LogNormal::new(mu, sigma).map_or(mu.exp(), |d| d.sample(rng)),
        }
    }
}

fn key_value(flag: &str, text: &str) -> Result<(String, String), SpecError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| spec_error(flag, text, "expected KEY=VALUES, e.g. noi_change=-0.3..0.1:0.05"))?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(spec_error(flag, text, format!("`{key}` is not a parameter name (letters, digits and _)")));
    }
    if value.trim().is_empty() {
        return Err(spec_error(flag, text, "no values after `=`"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// `v1,v2,...`: numbers as numbers, anything else as text.
fn list(flag: &str, text: &str, values: &str) -> Result<Vec<Value>, SpecError> {
    let items: Vec<Value> = values
        .split(',')
        .map(str::trim)
        .map(|v| {
            serde_json::from_str::<Value>(v)
                .ok()
                .filter(|j| !j.is_object() && !j.is_array())
                .unwrap_or_else(|| Value::String(v.to_owned()))
        })
        .collect();
    if items.iter().any(|v| v.as_str() == Some("")) {
        return Err(spec_error(flag, text, "an empty value in the list"));
    }
    // Text is a value of its own (`scenario=base,stress`), but text that looks like a
    // range, or among numbers, is a mistyped number: the script would get the text.
    if let Some(range) = items.iter().filter_map(Value::as_str).find(|v| v.contains("..")) {
        return Err(spec_error(
            flag,
            text,
            format!("`{range}` is not a range: write START..STOP:STEP with numbers, e.g. -0.3..0.1:0.05"),
        ));
    }
    if let (Some(number), Some(word)) =
        (items.iter().find(|v| v.is_number()), items.iter().filter_map(Value::as_str).next())
    {
        return Err(spec_error(
            flag,
            text,
            format!("`{word}` is not a number, while `{number}` is: give numbers only, or text only"),
        ));
    }
    Ok(items)
}

fn round10(x: f64) -> f64 {
    let rounded = (x * 1e10).round() / 1e10;
    if rounded == 0.0 { 0.0 } else { rounded }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grids_ranges_and_lists() {
        let (k, v) = parse_grid("noi_change=-0.3..0.1:0.1").unwrap();
        assert_eq!(k, "noi_change");
        assert_eq!(v, vec![json!(-0.3), json!(-0.2), json!(-0.1), json!(0.0), json!(0.1)]);
        assert_eq!(parse_grid("noi_change=-0.3..0.1:0.01").unwrap().1.len(), 41);
        // Text among numbers is a mistyped number, not a value of its own.
        assert!(parse_grid("r=0,0.01,high").unwrap_err().to_string().contains("`high` is not a number"));
        for bad in [
            "noi",
            "=1",
            "x=",
            "x=1..2:0",
            "x=2..1:0.1",
            "x=a..1:0.1",
            "x-y=1",
            "x=1,,2",
            "x=-0.3..0.1;0.1",
            "x=-0.3..0.1",
            "x=0.1,O.2",
        ] {
            assert!(parse_grid(bad).is_err(), "{bad}");
        }
        let e = parse_grid("noi_change=-0.3..0.1;0.1").unwrap_err().to_string();
        assert!(e.contains("`-0.3..0.1;0.1` is not a range"), "{e}");
        let e = parse_zip("x=0.1,O.2").unwrap_err().to_string();
        assert!(e.contains("`O.2` is not a number"), "{e}");
        assert_eq!(parse_grid("case=base,stress").unwrap().1, [json!("base"), json!("stress")]);
        let e = parse_grid("x=1..2:-1").unwrap_err().to_string();
        assert!(e.contains("--grid `x=1..2:-1`") && e.contains("positive"), "{e}");
    }

    #[test]
    fn the_product_has_stable_ids() {
        let spec = SweepSpec {
            grids: vec![parse_grid("a=1,2").unwrap(), parse_grid("b=0..0.2:0.1").unwrap()],
            ..Default::default()
        };
        let scenarios = spec.scenarios().unwrap();
        assert_eq!(scenarios.len(), 6);
        assert_eq!(scenarios[0].id, "a=1;b=0.0");
        assert_eq!(scenarios[5].id, "a=2;b=0.2");
        assert_eq!(scenarios[5].params, json!({"a": 2, "b": 0.2}).as_object().unwrap().clone());
        assert_eq!(spec.scenarios().unwrap(), scenarios);
    }

    #[test]
    fn named_zipped_and_combined() {
        let named = parse_named("s.json", r#"{"base": {}, "stress": {"noi_change": -0.2}}"#).unwrap();
        let spec = SweepSpec {
            named,
            zips: vec![parse_zip("x=1,2").unwrap(), parse_zip("y=a,b").unwrap()],
            ..Default::default()
        };
        let ids: Vec<String> = spec.scenarios().unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["base;x=1;y=a", "base;x=2;y=b", "stress;x=1;y=a", "stress;x=2;y=b"]);
        let list = parse_named("l.json", r#"[{"name": "n", "params": {"k": 1}}, {"k": 2}]"#).unwrap();
        assert_eq!(list[0], ("n".into(), json!({"k": 1}).as_object().unwrap().clone()));
        assert_eq!(list[1].0, "scenario-2");
        assert!(parse_named("e.json", "[]").is_err());
        let toml = parse_named("s.toml", "[base]\n[stress]\nnoi_change = -0.2\n").unwrap();
        assert_eq!(toml[1], ("stress".into(), json!({"noi_change": -0.2}).as_object().unwrap().clone()));
        let toml =
            parse_named("s.TOML", "[[scenario]]\nname = \"a\"\nx = 1\n[[scenario]]\nname = \"b\"\nx = 2\n").unwrap();
        assert_eq!(toml.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(parse_named("bad.toml", "x = ").unwrap_err().to_string().contains("not valid TOML"));
        let yaml = "# what-if set\nbase: {}\nstress:\n  noi_change: -0.2\n  rate_change: 0.01\n";
        let yaml = parse_named("s.yaml", yaml).unwrap();
        assert_eq!(
            yaml[1],
            ("stress".into(), json!({"noi_change": -0.2, "rate_change": 0.01}).as_object().unwrap().clone())
        );
        let list = parse_named("s.YML", "- name: a\n  x: 1\n- name: b\n  params: {x: 2}\n").unwrap();
        assert_eq!(list[1], ("b".into(), json!({"x": 2}).as_object().unwrap().clone()));
        let bad = parse_named("bad.yaml", "base: {noi_change: [}\n").unwrap_err().to_string();
        assert!(bad.contains("bad.yaml") && bad.contains("not valid YAML") && bad.contains("line 1"), "{bad}");
        assert!(parse_named("e.json", "{\"a\": 1}").unwrap_err().to_string().contains("`a`"));
        let uneven =
            SweepSpec { zips: vec![parse_zip("x=1,2").unwrap(), parse_zip("y=1").unwrap()], ..Default::default() };
        assert!(uneven.scenarios().unwrap_err().to_string().contains("different length"));
    }

    #[test]
    fn monte_carlo_is_reproducible_and_plausible() {
        let mc = |seed| SweepSpec {
            monte_carlo: Some(MonteCarlo {
                draws: 10_000,
                seed,
                dists: vec![parse_dist("n=normal(0,0.08)").unwrap(), parse_dist("u=uniform(0,0.02)").unwrap()],
            }),
            ..Default::default()
        };
        let a = mc(7).scenarios().unwrap();
        assert_eq!(a, mc(7).scenarios().unwrap());
        assert_ne!(a, mc(8).scenarios().unwrap());
        assert_eq!(a[0].id, "mc-00001");
        let n: Vec<f64> = a.iter().map(|s| s.params["n"].as_f64().unwrap()).collect();
        let mean = n.iter().sum::<f64>() / n.len() as f64;
        let sd = (n.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n.len() as f64).sqrt();
        assert!(mean.abs() < 0.005 && (sd - 0.08).abs() < 0.005, "mean {mean} sd {sd}");
        assert!(a.iter().all(|s| (0.0..0.02).contains(&s.params["u"].as_f64().unwrap())));
        for bad in ["x=normal(0)", "x=normal(0,-1)", "x=uniform(1,0)", "x=beta(1,2)", "x=normal(a,b)", "x=normal"] {
            assert!(parse_dist(bad).is_err(), "{bad}");
        }
    }
}
