//! The validator's entry point (parser, lowering, every rule, the SQL check against the
//! demo tables) on arbitrary input: it must return a report, never panic, hang or
//! overflow the stack.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use metaexec::validate::{self, Options, TableColumns, Tables};

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let table = |name: &str, columns: &str| TableColumns {
            name: name.into(),
            columns: columns.split_whitespace().map(String::from).collect(),
        };
        Tables {
            tables: vec![
                table("financial_metrics", "metric_id property_id noi annual_debt_service dscr fiscal_year"),
                table("loans", "loan_id property_id principal interest_rate amortization_years lender"),
                table("properties", "property_id property_name property_type city state"),
            ],
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let options = Options { tables: Some(tables()), ..Options::default() };
    let report = validate::validate(source, &options);
    assert!((0.0..=1.0).contains(&report.score));
});
