"""One what-if scenario of the portfolio: NOI and the loans' interest rates shocked by the
scenario's params, DSCR and a verdict per property. Run it over many scenarios:

    metaexec sweep examples/dscr_stress.py --grid "noi_change=-0.3..0.1:0.01" --grid "rate_change=0,0.005,0.01"
    metaexec sweep examples/dscr_stress.py --monte-carlo 10000 --seed 7 --dist "noi_change=normal(0,0.08)"

or once: `metaexec exec examples/dscr_stress.py --param noi_change=-0.2`.
"""

from metaexec import db, finance, log, params, result

noi_change = params.get("noi_change", 0.0)
rate_change = params.get("rate_change", 0.0)
try:
    properties = db.query(
        "SELECT p.property_name, f.noi, l.principal, l.interest_rate, l.amortization_years"
        " FROM properties p JOIN financial_metrics f ON f.property_id = p.property_id"
        " JOIN loans l ON l.property_id = p.property_id WHERE f.fiscal_year = ? ORDER BY p.property_id",
        [2024],
    )
except db.DbError as e:
    log(f"could not read the portfolio: {e}")
    raise
rows = []
for p in properties:
    noi = p["noi"] * (1 + noi_change)
    debt_service = finance.annual_debt_service(p["principal"], p["interest_rate"] + rate_change, p["amortization_years"])
    dscr = finance.dscr(noi, debt_service)
    rows.append({
        "property_name": p["property_name"],
        "noi": noi,
        "annual_debt_service": debt_service,
        "dscr": dscr,
        "verdict": finance.classify_dscr(dscr),
    })
result(rows)
