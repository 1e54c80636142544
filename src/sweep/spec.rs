//! The texts a sweep plan is written in: named scenarios from a file, grids, zipped lists
//! and seeded Monte Carlo draws, parsed into a [`Plan`].
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

use serde_json::{Map, Value};

use super::plan::{Axis, Dist, Drawn, MonteCarlo, Named, Plan, Source};

/// The most values one grid may hold.
const MAX_GRID_VALUES: usize = super::plan::MAX_SCENARIOS;

/// A spec that cannot be turned into scenarios.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} `{text}`: {reason}")]
pub struct SpecError {
    /// Where the bad part came from: a flag, a file's field, the request's plan.
    pub flag: String,
    /// The bad part as given.
    pub text: String,
    /// What is wrong, and what was expected.
    pub reason: String,
}

pub(super) fn spec_error(flag: &str, text: &str, reason: impl Into<String>) -> SpecError {
    SpecError { flag: flag.to_owned(), text: text.to_owned(), reason: reason.into() }
}

/// A named scenario: its name and params.
pub type NamedScenario = (String, Map<String, Value>);

/// Parses `--grid "k=a..b:step"` or `"k=v1,v2"`.
pub fn parse_grid(text: &str) -> Result<(String, Vec<Value>), SpecError> {
    grid(Source::Flags, text)
}

/// A grid in the words of `source`.
fn grid(source: Source<'_>, text: &str) -> Result<(String, Vec<Value>), SpecError> {
    let flag = &source.part("--grid");
    let (key, values) = key_value(flag, text)?;
    if let Some((range, step)) = values.split_once(':')
        && let Some((start, stop)) = range.split_once("..")
    {
        let number = |s: &str, what: &str| {
            s.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
                spec_error(
                    flag,
                    text,
                    format!("the {what} `{}` is not a number (expected k=start..stop:step)", s.trim()),
                )
            })
        };
        let (start, stop, step) = (number(start, "start")?, number(stop, "stop")?, number(step, "step")?);
        if step <= 0.0 {
            return Err(spec_error(flag, text, "the step must be positive"));
        }
        if stop < start {
            return Err(spec_error(flag, text, "the stop is below the start"));
        }
        let count = ((stop - start) / step + 1e-9).floor() as usize + 1;
        if count > MAX_GRID_VALUES {
            return Err(spec_error(flag, text, format!("{count} values is more than {MAX_GRID_VALUES}")));
        }
        // Rounded to 10 decimals, so -0.3 + 3 × 0.1 is 0.0 and not 5.55e-17.
        let values = (0..count).map(|i| Value::from(round10(start + i as f64 * step))).collect();
        return Ok((key, values));
    }
    Ok((key, list(flag, text, &values)?))
}

/// Parses `--zip "k=v1,v2,..."`.
pub fn parse_zip(text: &str) -> Result<(String, Vec<Value>), SpecError> {
    zip(Source::Flags, text)
}

fn zip(source: Source<'_>, text: &str) -> Result<(String, Vec<Value>), SpecError> {
    let flag = &source.part("--zip");
    let (key, values) = key_value(flag, text)?;
    Ok((key, list(flag, text, &values)?))
}

/// Parses `--dist "k=normal(0,0.08)"`.
pub fn parse_dist(text: &str) -> Result<(String, Dist), SpecError> {
    dist(Source::Flags, text)
}

fn dist(source: Source<'_>, text: &str) -> Result<(String, Dist), SpecError> {
    let flag = &source.part("--dist");
    let (key, body) = key_value(flag, text)?;
    let bad = |reason: &str| {
        spec_error(
            flag,
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
        ("normal", &[mean, sd]) => Dist::Normal { mean, sd },
        ("uniform", &[lo, hi]) => Dist::Uniform { lo, hi },
        ("triangular", &[lo, mode, hi]) => Dist::Triangular { lo, mode, hi },
        ("lognormal", &[mu, sigma]) => Dist::LogNormal { mu, sigma },
        _ => return Err(bad("unknown distribution or wrong number of arguments")),
    };
    if let Some(problem) = dist.problem() {
        return Err(bad(problem));
    }
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

/// The texts a plan is made of: what `metaexec sweep` takes as flags, and what a
/// request's plan holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanTexts<'a> {
    /// `--grid` texts.
    pub grid: &'a [String],
    /// `--zip` texts.
    pub zip: &'a [String],
    /// `--monte-carlo` draws.
    pub monte_carlo: Option<usize>,
    /// `--seed`.
    pub seed: u64,
    /// `--dist` texts.
    pub dist: &'a [String],
}

impl PlanTexts<'_> {
    /// The plan these texts describe (named scenarios are added separately); errors
    /// speak in the words of `source`.
    pub fn plan(&self, source: Source<'_>) -> Result<Plan, SpecError> {
        let mut plan = Plan::new(self.seed);
        for text in self.grid {
            let (param, values) = grid(source, text)?;
            plan.grids.push(Axis { param, values });
        }
        for text in self.zip {
            let (param, values) = zip(source, text)?;
            plan.zips.push(Axis { param, values });
        }
        match self.monte_carlo {
            Some(draws) => {
                let dists = self
                    .dist
                    .iter()
                    .map(|text| dist(source, text).map(|(param, dist)| Drawn { param, dist }))
                    .collect::<Result<_, _>>()?;
                plan.monte_carlo = Some(MonteCarlo { draws, dists });
            }
            None if !self.dist.is_empty() => {
                return Err(spec_error(
                    &source.part("--dist"),
                    &self.dist[0],
                    format!("needs {} N (for example 10000 draws)", source.part("--monte-carlo")),
                ));
            }
            None => {}
        }
        Ok(plan)
    }
}

impl PlanTexts<'_> {
    /// Every scenario of the plan these flags describe, in order.
    pub fn scenarios(&self) -> Result<Vec<crate::scenario::Scenario>, SpecError> {
        let plan = self.plan(Source::Flags)?;
        Ok(plan.enumerate(Source::Flags)?.all())
    }
}

/// Named scenarios as the plan holds them.
pub fn named(scenarios: Vec<NamedScenario>) -> Vec<Named> {
    scenarios.into_iter().map(|(name, params)| Named { name, params }).collect()
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

pub(super) fn round10(x: f64) -> f64 {
    let rounded = (x * 1e10).round() / 1e10;
    if rounded == 0.0 { 0.0 } else { rounded }
}

pub(super) fn show(value: &Value) -> String {
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
    fn named_zipped_and_combined() {
        let named = parse_named("s.json", r#"{"base": {}, "stress": {"noi_change": -0.2}}"#).unwrap();
        assert_eq!(named.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["base", "stress"]);
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
    }

    #[test]
    fn distributions_and_plans_from_texts() {
        for bad in ["x=normal(0)", "x=normal(0,-1)", "x=uniform(1,0)", "x=beta(1,2)", "x=normal(a,b)", "x=normal"] {
            assert!(parse_dist(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_dist("x=triangular(0,1,2)").unwrap().1, Dist::Triangular { lo: 0.0, mode: 1.0, hi: 2.0 });
        let texts = PlanTexts { grid: &[], zip: &[], monte_carlo: None, seed: 1, dist: &["n=normal(0,1)".into()] };
        let e = texts.plan(Source::Flags).unwrap_err().to_string();
        assert!(e.contains("needs --monte-carlo N"), "{e}");
        let e = texts.plan(Source::Request).unwrap_err().to_string();
        assert!(e.starts_with("the request's dist") && !e.contains("--"), "{e}");
        let grid = ["noi_change=-0.3..0.1:0".to_owned()];
        let texts = PlanTexts { grid: &grid, zip: &[], monte_carlo: None, seed: 1, dist: &[] };
        let e = texts.plan(Source::Request).unwrap_err().to_string();
        assert_eq!(e, "the request's grid `noi_change=-0.3..0.1:0`: the step must be positive");
    }
}
