//! The conversations sent to the model, rendered from the templates in `prompts/` (embedded
//! at build time, so the binary needs no files beside it).

use std::sync::OnceLock;

use minijinja::{Environment, context};

use super::wire::Message;
use crate::outcome::OutcomeError;
use crate::task::TaskSpec;
use crate::validate::Finding;

/// The guest library's API reference, as the model is taught it.
pub const API_REFERENCE: &str = include_str!("../../runtime/API.md");
/// The same reference in signatures and a few words each, for a model whose context
/// cannot hold the whole one beside a script.
pub const API_COMPACT: &str = include_str!("../../runtime/API.compact.md");

/// Which API reference a generate prompt teaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiReference {
    /// `runtime/API.md`.
    Full,
    /// `runtime/API.compact.md`.
    Compact,
}

impl ApiReference {
    fn text(self) -> &'static str {
        match self {
            Self::Full => API_REFERENCE,
            Self::Compact => API_COMPACT,
        }
    }
}

/// Every template, the offline planner's script included: one environment parses them all.
const TEMPLATES: [(&str, &str); 8] = [
    ("system", include_str!("../../prompts/system.j2")),
    ("plan", include_str!("../../prompts/plan.j2")),
    ("generate", include_str!("../../prompts/generate.j2")),
    ("repair_validation", include_str!("../../prompts/repair_validation.j2")),
    ("repair_execution", include_str!("../../prompts/repair_execution.j2")),
    ("offline_script", include_str!("offline/script.py.j2")),
    ("offline_question", include_str!("offline/question.py.j2")),
    ("offline_dashboard", include_str!("offline/dashboard.py.j2")),
];

/// What the prompts say about the database.
#[derive(Debug, Clone, Copy)]
pub struct SchemaText<'a> {
    /// `sqlite` or `postgres`.
    pub dialect: &'a str,
    /// The compact schema text (one line per table).
    pub tables: &'a str,
    /// The property names, so that the plan can name them as the database does.
    pub properties: &'a [String],
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(false);
        for (name, source) in TEMPLATES {
            env.add_template(name, source).expect("the embedded templates parse");
        }
        env
    })
}

/// Renders the embedded template `name`.
pub(crate) fn render(name: &str, ctx: minijinja::Value) -> String {
    environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| panic!("the embedded template `{name}` renders: {e:#}"))
}

fn system() -> Message {
    Message::system(render("system", context! {}))
}

/// The analyse+plan conversation: the request to a `TaskSpec` JSON object.
pub fn plan(request: &str, schema: SchemaText<'_>) -> Vec<Message> {
    let user = render(
        "plan",
        context! {
            request => request.trim(),
            dialect => schema.dialect,
            schema => schema.tables.trim_end(),
            properties => schema.properties,
        },
    );
    vec![system(), Message::user(user)]
}

/// The generate conversation: the plan to a script.
pub fn generate(request: &str, spec: &TaskSpec, schema: SchemaText<'_>, api: ApiReference) -> Vec<Message> {
    let plan = serde_json::to_string_pretty(spec).expect("task specs serialise");
    let user = render(
        "generate",
        context! {
            request => request.trim(),
            plan => plan,
            dialect => schema.dialect,
            schema => schema.tables.trim_end(),
            api => api.text().trim_end(),
            scenarios => spec.runs_scenarios().then(|| spec.describe_scenarios()),
            shocks => crate::task::SHOCK_KEYS,
        },
    );
    vec![system(), Message::user(user)]
}

/// A repair conversation: the generate conversation, the latest script and what was wrong
/// with it. Earlier scripts are left out, so that every round costs the same context.
pub fn repair(generate: &[Message], script: &str, feedback: Message) -> Vec<Message> {
    let mut messages = generate.to_vec();
    messages.push(Message::assistant(format!("```python\n{}\n```", script.trim_end())));
    messages.push(feedback);
    messages
}

/// What the plan stage says after a plan that was cut at its token limit.
pub fn plan_too_long() -> Message {
    Message::user(
        "Your plan was cut off at the token limit. Reply again with a much shorter JSON object: a goal of \
         one sentence, at most 6 short steps, no explanations."
            .to_owned(),
    )
}

/// The feedback after the validator rejected a script: its errors, each with its line.
pub fn repair_validation(findings: &[Finding]) -> Message {
    Message::user(render("repair_validation", context! { findings => findings }))
}

/// The feedback after a script failed in the sandbox; `source_line` is the failing line
/// of the script, where known.
pub fn repair_execution(error: &OutcomeError, source_line: Option<&str>) -> Message {
    Message::user(render(
        "repair_execution",
        context! {
            kind => error.kind.as_str(),
            message => error.message,
            line => error.line,
            source_line => source_line,
            traceback => error.traceback.as_deref().map(str::trim_end),
            hint => error.hint,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ErrorKind;
    use crate::task::{Scenario, TaskKind};
    use crate::validate::Severity;

    const SCHEMA: &str = "loans(loan_id integer PK, property_id integer FK→properties, principal real) 10 rows\n\
                          properties(property_id integer PK, property_name text) 10 rows\n\
                          joins: loans.property_id = properties.property_id\n";

    fn schema<'a>(properties: &'a [String]) -> SchemaText<'a> {
        SchemaText { dialect: "sqlite", tables: SCHEMA, properties }
    }

    fn transcript(messages: &[Message]) -> String {
        messages.iter().map(|m| format!("=== {:?} ===\n{}\n", m.role, m.content)).collect()
    }

    #[test]
    fn plan_prompt() {
        let names = vec!["Orlando Fashion Square".to_owned(), "West Oaks Mall".to_owned()];
        insta::assert_snapshot!(transcript(&plan("Show DSCR with a 10/20/30% NOI stress test", schema(&names))));
    }

    #[test]
    fn generate_prompt() {
        let spec = TaskSpec {
            goal: "DSCR under NOI stress".into(),
            task_kind: TaskKind::StressTest,
            scenarios: vec![Scenario { name: "NOI -10%".into(), noi_change: -0.1, ..Scenario::default() }],
            steps: vec!["read NOI and debt service".into(), "apply the shocks".into()],
            ..TaskSpec::default()
        };
        let text =
            transcript(&generate("Show DSCR with a 10% NOI stress test", &spec, schema(&[]), ApiReference::Full));
        assert!(text.contains("## metaexec.scenarios"), "the API reference is in the prompt");
        // The API reference has its own test; the snapshot keeps the frame around it.
        insta::assert_snapshot!(text.replace(API_REFERENCE.trim_end(), "<runtime/API.md>"));
    }

    #[test]
    fn the_compact_prompt_is_the_same_frame_with_the_compact_reference() {
        let spec = TaskSpec { goal: "DSCR".into(), ..TaskSpec::default() };
        let full = transcript(&generate("DSCR", &spec, schema(&[]), ApiReference::Full));
        let compact = transcript(&generate("DSCR", &spec, schema(&[]), ApiReference::Compact));
        assert!(compact.contains(API_COMPACT.trim_end()) && !compact.contains(API_REFERENCE.trim_end()));
        assert_eq!(full.replace(API_REFERENCE.trim_end(), "API"), compact.replace(API_COMPACT.trim_end(), "API"));
        assert!(compact.len() * 2 < full.len(), "the compact prompt is much shorter");
    }

    #[test]
    fn repairs_keep_the_latest_script_only() {
        let base = vec![system(), Message::user("write it")];
        let first = repair(&base, "print(1)", Message::user("no results"));
        let second = repair(&base, "result([])", Message::user("still nothing"));
        assert_eq!(first.len(), second.len());
        assert!(second[2].content.contains("result([])") && !second[2].content.contains("print(1)"));
    }

    #[test]
    fn repair_prompts() {
        let finding = Finding {
            code: "MX013".into(),
            name: "unknown-column".into(),
            severity: Severity::Error,
            message: "`net_income` does not exist in `financial_metrics`; did you mean `noi`?".into(),
            hint: Some("use a column of the schema".into()),
            line: 4,
            column: 12,
            end_line: 4,
            end_column: 22,
            source_line: "    rows = db.query(\"SELECT net_income FROM financial_metrics\")".into(),
        };
        let mut error = OutcomeError::new(ErrorKind::GuestException, "NameError: name 'rowz' is not defined");
        error.line = Some(7);
        error.traceback = Some("Traceback (most recent call last):\n  File \"script.py\", line 7\nNameError\n".into());
        let text = format!(
            "{}\n{}",
            repair_validation(&[finding]).content,
            repair_execution(&error, Some("result(rowz)")).content
        );
        insta::assert_snapshot!(text);
    }
}
