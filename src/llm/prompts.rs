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

/// Every template, the offline planner's script included: one environment parses them all.
const TEMPLATES: [(&str, &str); 7] = [
    ("system", include_str!("../../prompts/system.j2")),
    ("plan", include_str!("../../prompts/plan.j2")),
    ("generate", include_str!("../../prompts/generate.j2")),
    ("repair_validation", include_str!("../../prompts/repair_validation.j2")),
    ("repair_execution", include_str!("../../prompts/repair_execution.j2")),
    ("offline_script", include_str!("offline/script.py.j2")),
    ("offline_question", include_str!("offline/question.py.j2")),
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
pub fn generate(request: &str, spec: &TaskSpec, schema: SchemaText<'_>) -> Vec<Message> {
    let plan = serde_json::to_string_pretty(spec).expect("task specs serialise");
    let user = render(
        "generate",
        context! {
            request => request.trim(),
            plan => plan,
            dialect => schema.dialect,
            schema => schema.tables.trim_end(),
            api => API_REFERENCE.trim_end(),
            scenarios => spec.runs_scenarios().then(|| spec.describe_scenarios()),
            shocks => crate::task::SHOCK_KEYS,
        },
    );
    vec![system(), Message::user(user)]
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
        let text = transcript(&generate("Show DSCR with a 10% NOI stress test", &spec, schema(&[])));
        assert!(text.contains("## metaexec.scenarios"), "the API reference is in the prompt");
        // The API reference has its own test; the snapshot keeps the frame around it.
        insta::assert_snapshot!(text.replace(API_REFERENCE.trim_end(), "<runtime/API.md>"));
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
