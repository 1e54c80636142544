//! MX008 file-write-outside-results: writing, moving or deleting files outside the
//! results folder.
//!
//! What: `open()` in a writing mode (`w`, `a`, `x`, `+`), `pathlib.Path(...)` writers
//! (`write_text`, `write_bytes`, `mkdir`, `touch`, `unlink`, …), and the `os`/`shutil`
//! functions that create, move or delete files, when a path is a literal that is
//! absolute outside `/results` or climbs out with `..`. Paths computed at run time are
//! left to the sandbox, which only mounts the results folder.
//!
//! Why: the results folder is the one place a run may write; anything else is either a
//! mistake (the file would be lost) or tampering.
//!
//! Example: `open("/etc/cron.d/job", "w")` is reported; `open("summary.csv", "w")` is not.

use super::{Call, Context, Hit, Rule};
use crate::validate::Severity;
use crate::validate::ast::{Expr, ExprKind};

/// The rule.
pub const RULE: Rule = Rule {
    code: "MX008",
    name: "file-write-outside-results",
    severity: Severity::Error,
    penalty: 0.3,
    summary: "writing, moving or deleting files outside the results folder",
    check,
};

/// The folder runs may write to; relative paths land in it.
pub const RESULTS_DIR: &str = "/results";

const PATH_WRITERS: &[&str] = &[
    "write_text",
    "write_bytes",
    "mkdir",
    "touch",
    "unlink",
    "rmdir",
    "rename",
    "replace",
    "symlink_to",
    "hardlink_to",
    "chmod",
];
const FILE_FUNCTIONS: &[&str] = &[
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.removedirs",
    "os.rename",
    "os.renames",
    "os.replace",
    "os.makedirs",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.symlink",
    "os.link",
    "os.truncate",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copy",
    "shutil.copy2",
    "shutil.copyfile",
    "shutil.copytree",
];
const PATH_TYPES: &[&str] = &["pathlib.Path", "pathlib.PosixPath", "pathlib.PurePath", "pathlib.PurePosixPath"];

/// Whether a literal path leads outside the results folder.
pub fn outside_results(path: &str) -> bool {
    let climbs = path.split('/').any(|part| part == "..");
    let absolute_elsewhere = path.starts_with('/')
        && path != RESULTS_DIR
        && !path.strip_prefix(RESULTS_DIR).is_some_and(|rest| rest.starts_with('/'));
    climbs || absolute_elsewhere || path.starts_with('~')
}

fn is_write_mode(mode: &str) -> bool {
    mode.contains(['w', 'a', 'x', '+'])
}

fn report(out: &mut Vec<Hit>, call: &Call<'_>, what: &str, path: &str) {
    out.push(Hit::new(
        call.expr.span,
        format!("{what} `{path}`, outside the results folder"),
        Some("write to a relative path such as `report.csv`: it lands in the results folder"),
    ));
}

/// The literal path a `Path(...)` expression was built from.
fn path_literal(cx: &Context<'_>, expr: &Expr) -> Option<String> {
    let ExprKind::Call { func, args, .. } = &expr.kind else { return None };
    let callee = cx.semantic.qualified_name(func)?;
    if !PATH_TYPES.contains(&callee.as_str()) {
        return None;
    }
    cx.semantic.static_string(args.first()?)
}

fn check(cx: &Context<'_>, out: &mut Vec<Hit>) {
    for call in &cx.calls {
        let callee = call.callee.as_deref().unwrap_or_default();
        if matches!(callee, "open" | "io.open") {
            let mode = call.arg(1, "mode").and_then(|m| cx.semantic.static_string(m)).unwrap_or_default();
            let path = call.arg(0, "file").and_then(|p| cx.semantic.static_string(p));
            if let Some(path) = path.filter(|p| is_write_mode(&mode) && outside_results(p)) {
                report(out, call, "opens for writing", &path);
            }
        } else if FILE_FUNCTIONS.contains(&callee) {
            let paths = call.args.iter().take(2).filter_map(|a| cx.semantic.static_string(a));
            if let Some(path) = paths.into_iter().find(|p| outside_results(p)) {
                report(out, call, &format!("`{callee}` touches"), &path);
            }
        } else if let ExprKind::Attribute { value, attr } = &call.func.kind {
            let writes = PATH_WRITERS.contains(&attr.as_str())
                || (attr == "open"
                    && call
                        .arg(0, "mode")
                        .and_then(|m| cx.semantic.static_string(m))
                        .is_some_and(|m| is_write_mode(&m)));
            if let Some(path) = path_literal(cx, value).filter(|p| writes && outside_results(p)) {
                report(out, call, &format!("`Path.{attr}` writes"), &path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::outside_results;

    #[test]
    fn paths() {
        assert!(outside_results("/etc/passwd") && outside_results("../x") && outside_results("/results/../etc"));
        assert!(outside_results("/resultsx/a") && outside_results("~/.bashrc"));
        assert!(!outside_results("out.csv") && !outside_results("/results/a.csv") && !outside_results("sub/a.csv"));
    }
}
