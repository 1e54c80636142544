"""DSCR review and NOI stress test of the portfolio in the database (the embedded demo
unless `--db URL` or DATABASE_URL says otherwise).

    metaexec exec examples/portfolio.py
    metaexec exec examples/portfolio.py --db postgres://me@localhost/portfolio --json
"""

from metaexec import db, emit, log, portfolio, result, scenarios

try:
    rows = db.query(
        "SELECT p.property_id, p.property_name, p.property_type, f.noi, f.annual_debt_service"
        " FROM properties p JOIN financial_metrics f ON f.property_id = p.property_id"
        " WHERE f.fiscal_year = ? ORDER BY p.property_id",
        [2024],
    )
except db.DbError as e:
    log(f"could not read the portfolio: {e}")
    raise
log(f"reviewing {len(rows)} properties")
review = portfolio.analyze(rows)
result([{k: m[k] for k in ("property_name", "noi", "annual_debt_service", "dscr", "verdict")} for m in review["properties"]])
emit("summary", review["summary"])
emit("stress_test", scenarios.scenario_summary(scenarios.noi_stress_test(rows, declines=(0.1, 0.2, 0.3))))
