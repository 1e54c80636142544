//! The SQL policy (`metaexec::db::policy::Policy::check`) on arbitrary text, for both
//! dialects, with and without a table allowlist and extra allowed functions: it must
//! return a verdict, never panic, hang or overflow the stack. What it accepts must be
//! accepted again from its own rendering (what the proxy runs).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use metaexec::db::policy::Policy;
use metaexec::db::{Capability, Dialect};

fn policies() -> &'static [Policy] {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let existing = ["properties", "financial_metrics", "loans", "monthly_performance"].map(String::from);
        let allowlist = Capability {
            tables: Some(vec!["properties".into(), "loans".into(), "sqlite_master".into()]),
            allowed_functions: vec!["version".into()],
            ..Capability::default()
        };
        let mut out = Vec::new();
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            out.push(Policy::new(dialect, Capability::default(), &[]));
            out.push(Policy::new(dialect, allowlist.clone(), &existing));
            out.push(Policy::new(dialect, Capability { write: true, ..Capability::default() }, &[]));
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    for policy in policies() {
        for params in [0, 1, 2] {
            let Ok(checked) = policy.check(sql, params) else { continue };
            if checked.sql.contains('$') {
                // PostgreSQL's `$n`: not something a guest may write.
                continue;
            }
            if let Err(e) = policy.check(&checked.sql, checked.placeholders) {
                panic!("`{sql}` was accepted as `{}`, which is refused: {e}", checked.sql);
            }
        }
    }
});
