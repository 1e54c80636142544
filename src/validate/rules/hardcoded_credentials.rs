//! MX006 hardcoded-credentials: secrets written into the script.
//!
//! What: a non-empty string literal assigned to a variable, attribute, keyword argument or
//! dict key whose name says secret (`password`, `passwd`, `pwd`, `secret`, `token`,
//! `api_key`, `access_key`, `private_key`, `auth_key`), and any string holding a URL
//! with a password (`postgres://user:pass@host/db`).
//!
//! Why: generated scripts are stored with each run and shown to people; a secret in
//! them leaks. Scripts need none anyway: the host holds the connection and the proxy
//! answers queries.
//!
//! Example: `DB_PASSWORD = "hunter2"` is reported; `DB_PASSWORD = os.getenv("X")` is not.

use super::{Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::ast::{Expr, ExprKind, StmtKind};

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX006",
    name: "hardcoded-credentials",
    severity: Severity::Error,
    penalty: 0.3,
    summary: "passwords, tokens and connection strings with passwords written into the script",
    check,
};

const SECRET_WORDS: &[&str] =
    &["password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_key", "private_key", "auth_key"];
const HINT: Option<&str> =
    Some("remove the secret; scripts read data through `metaexec.db`, which needs no credentials");

/// Whether a name says it holds a secret.
fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// The literal, when an expression is a non-empty string literal.
fn literal(expr: &Expr) -> Option<&str> {
    expr.as_str().filter(|s| !s.is_empty())
}

/// The name an assignment target stands for: a variable, an attribute, or a literal key.
fn target_name(target: &Expr) -> Option<&str> {
    match &target.kind {
        ExprKind::Name(name) => Some(name),
        ExprKind::Attribute { attr, .. } => Some(attr),
        ExprKind::Subscript { index, .. } => index.as_str(),
        _ => None,
    }
}

/// Whether a string holds a URL with a password in its user info.
pub fn url_with_password(s: &str) -> bool {
    let Some((_, rest)) = s.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((userinfo, _host)) = authority.rsplit_once('@') else { return false };
    userinfo.split_once(':').is_some_and(|(_, password)| !password.is_empty())
}

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.statements {
        if let StmtKind::Assign { targets, value } = &stmt.kind
            && literal(value).is_some()
            && let Some(name) = targets.iter().filter_map(target_name).find(|n| is_secret_name(n))
        {
            out.push(Hit::new(stmt.span, format!("`{name}` is assigned a secret written into the script"), HINT));
        }
    }
    for call in &cx.calls {
        for keyword in call.keywords {
            if let Some(name) = keyword.name.as_deref().filter(|n| is_secret_name(n))
                && literal(&keyword.value).is_some()
            {
                out.push(Hit::new(
                    keyword.value.span,
                    format!("`{name}=` is passed a secret written into the script"),
                    HINT,
                ));
            }
        }
    }
    for expr in &cx.expressions {
        match &expr.kind {
            ExprKind::Dict { keys, values } => {
                for (key, value) in keys.iter().zip(values) {
                    if let Some(name) = key.as_ref().and_then(|k| k.as_str()).filter(|k| is_secret_name(k))
                        && literal(value).is_some()
                    {
                        out.push(Hit::new(
                            value.span,
                            format!("`{name}` holds a secret written into the script"),
                            HINT,
                        ));
                    }
                }
            }
            ExprKind::Str(s) if url_with_password(s) => {
                out.push(Hit::new(expr.span, "a connection string with a password is written into the script", HINT));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_with_password;

    #[test]
    fn urls_with_passwords() {
        assert!(url_with_password("postgres://admin:s3cret@db.internal:5432/prod"));
        assert!(url_with_password("mysql://u:p@h/d?x=1"));
        assert!(!url_with_password("postgres://admin@db.internal/prod"));
        assert!(!url_with_password("https://example.com/a:b@c"));
        assert!(!url_with_password("user:pass@host"));
    }
}
