//! A request's scenarios as a sweep: the plan's named scenarios and generated ones (grids,
//! Monte Carlo draws) turned into the sweep stage's [`Plan`], and the base scenario the
//! script is tried on first.

use serde_json::{Map, Value};

use crate::sweep::plan::{Named, Plan, Source};
use crate::sweep::spec::{PlanTexts, SpecError};
use crate::task::{DEFAULT_SEED, TaskSpec};

/// The sweep a plan asks for, with a note when part of the plan was left out. Errors
/// speak of the request's plan, not of flags the user never typed.
pub fn sweep_plan(task: &TaskSpec) -> Result<(Plan, Option<String>), SpecError> {
    let plan = &task.sweep;
    let texts = PlanTexts {
        grid: &plan.grid,
        zip: &[],
        monte_carlo: (plan.monte_carlo > 0).then_some(plan.monte_carlo),
        seed: plan.seed.unwrap_or(DEFAULT_SEED),
        dist: &plan.dist,
    };
    let mut spec = texts.plan(Source::Request)?;
    let mut note = None;
    if spec.monte_carlo.is_some() {
        // Draws stand alone: a named scenario beside them would be one point among
        // thousands, and the spec refuses the mix.
        if !task.scenarios.is_empty() {
            note = Some(format!(
                "the named scenarios ({}) were left out: Monte Carlo draws run on their own",
                task.scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !spec.grids.is_empty() {
            spec.grids.clear();
            let left_out = "the grid was left out: Monte Carlo draws run on their own";
            note = Some(note.map_or_else(|| left_out.to_owned(), |n| format!("{n}; {left_out}")));
        }
    } else {
        // Each named scenario carries every shock the set uses, so a scenario that leaves
        // one out still sits on that parameter's axis (at 0) for the break-even analysis.
        let used: Vec<&str> = crate::task::SHOCK_KEYS
            .into_iter()
            .filter(|key| task.scenarios.iter().any(|s| s.shocks().iter().any(|(k, v)| k == key && *v != 0.0)))
            .collect();
        spec.named = task
            .scenarios
            .iter()
            .map(|s| {
                let params = s
                    .shocks()
                    .into_iter()
                    .filter(|(key, _)| used.contains(key))
                    .map(|(key, value)| (key.to_owned(), Value::from(value)))
                    .collect();
                Named { name: s.name.clone(), params }
            })
            .collect();
    }
    spec.enumerate(Source::Request)?;
    Ok((spec, note))
}

/// The base scenario: every parameter the sweep sets, at 0 (no shock). The script is run
/// on it first, alone, so that a script that cannot run is repaired before thousands of
/// scenarios fail the same way, and its tables are the answer's unshocked figures.
pub fn base_params(plan: &Plan) -> Map<String, Value> {
    plan.swept_params().into_iter().map(|key| (key.to_owned(), Value::from(0.0))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Scenario, SweepPlan};

    fn stress() -> Vec<Scenario> {
        vec![
            Scenario { name: "base".into(), ..Scenario::default() },
            Scenario { name: "NOI -10%".into(), noi_change: -0.1, ..Scenario::default() },
            Scenario { name: "rate +100 bp".into(), rate_change: 0.01, ..Scenario::default() },
        ]
    }

    #[test]
    fn named_scenarios_carry_every_shock_the_set_uses() {
        let task = TaskSpec { scenarios: stress(), ..TaskSpec::default() };
        let (spec, note) = sweep_plan(&task).unwrap();
        assert!(note.is_none());
        let scenarios = spec.enumerate(Source::Request).unwrap().all();
        let ids: Vec<&str> = scenarios.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["base", "NOI -10%", "rate +100 bp"]);
        assert_eq!(
            Value::Object(scenarios[1].params.clone()),
            serde_json::json!({"noi_change": -0.1, "rate_change": 0.0})
        );
        assert_eq!(Value::Object(base_params(&spec)), serde_json::json!({"noi_change": 0.0, "rate_change": 0.0}));
    }

    #[test]
    fn monte_carlo_stands_alone_and_says_what_it_left_out() {
        let task = TaskSpec {
            scenarios: stress(),
            sweep: SweepPlan {
                grid: vec!["rate_change=0,0.01".into()],
                monte_carlo: 50,
                seed: None,
                dist: vec!["noi_change=normal(0,0.08)".into()],
            },
            ..TaskSpec::default()
        };
        let (spec, note) = sweep_plan(&task).unwrap();
        let note = note.unwrap();
        assert!(note.contains("base, NOI -10%, rate +100 bp") && note.contains("grid"), "{note}");
        let scenarios = spec.enumerate(Source::Request).unwrap().all();
        assert_eq!(scenarios.len(), 50);
        assert_eq!(spec.seed, DEFAULT_SEED);
        assert_eq!(Value::Object(base_params(&spec)), serde_json::json!({"noi_change": 0.0}));
    }

    #[test]
    fn a_bad_generated_spec_points_at_its_part() {
        let task = TaskSpec {
            sweep: SweepPlan { grid: vec!["noi_change=-0.3..0.1:0".into()], ..SweepPlan::default() },
            ..TaskSpec::default()
        };
        let error = sweep_plan(&task).unwrap_err().to_string();
        assert_eq!(error, "the request's grid `noi_change=-0.3..0.1:0`: the step must be positive");
    }
}
