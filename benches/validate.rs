//! The validator's cost per script: parse, lower, every rule and the SQL check, on the
//! shipped example and on a long generated script.

use criterion::{Criterion, criterion_group, criterion_main};
use metaexec::validate::{self, Options, TableColumns, Tables};

fn tables() -> Tables {
    let table = |name: &str, columns: &str| TableColumns {
        name: name.into(),
        columns: columns.split_whitespace().map(String::from).collect(),
    };
    Tables {
        tables: vec![
            table(
                "financial_metrics",
                "metric_id property_id noi annual_debt_service dscr gross_revenue operating_expenses occupancy_rate fiscal_year",
            ),
            table("loans", "loan_id property_id principal interest_rate amortization_years maturity_date lender"),
            table(
                "properties",
                "property_id property_name property_address property_type total_gla_sqft city state year_built",
            ),
        ],
    }
}

/// A 600-line script of the kind a model writes: functions, queries, loops, f-strings.
fn long_script() -> String {
    let mut out = String::from("import logging\nimport statistics\nfrom metaexec import db, emit, finance\n\n");
    for i in 0..50 {
        out.push_str(&format!(
            "def step_{i}(year):\n    try:\n        rows = db.query(\"SELECT p.property_name, f.noi, f.annual_debt_service FROM properties p \"\n                        \"JOIN financial_metrics f ON f.property_id = p.property_id WHERE f.fiscal_year = ?\", [year])\n    except db.DbError as e:\n        logging.error(f\"step {i}: {{e}}\")\n        return []\n    out = []\n    for row in rows:\n        dscr = row[\"noi\"] / row[\"annual_debt_service\"]\n        out.append({{\"name\": row[\"property_name\"], \"dscr\": round(dscr, 2)}})\n    emit(\"step_{i}\", out)\n    return out\n\n"
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let tables = tables();
    let options = Options { tables: Some(&tables), ..Options::default() };
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/portfolio.py")).unwrap();
    let long = long_script();
    assert!(long.lines().count() > 500);
    c.bench_function("validate/portfolio_example", |b| b.iter(|| validate::validate(&example, &options)));
    c.bench_function("validate/long_script_600_lines", |b| b.iter(|| validate::validate(&long, &options)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
