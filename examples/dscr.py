"""DSCR review of the demo portfolio: NOI / annual debt service for each property,
a verdict against the lending thresholds, and a portfolio summary.

Run it with `metaexec exec examples/dscr.py` (add `--json` for machines). The figures
are the demo portfolio's; `--param noi_change=-0.2` applies a 20% NOI stress.
"""

from metaexec import emit, finance, log, params, result

# (property, NOI, annual debt service), fiscal year 2024
PORTFOLIO = [
    ('Orlando Fashion Square', 7616500.0, 3926027.2),
    ('1893 Rouse Lake Rd', 1152600.0, 694346.94),
    ('Orlando Vineland Premium Outlets', 20722500.0, 17126023.13),
    ('Columbia Heights Shopping Mall', 2734500.0, 1823016.76),
    ('West Oaks Mall', 5627600.0, 3092092.55),
    ('Riverside Galleria', 4086300.0, 4591298.87),
    ('Lakeside Plaza', 1934100.0, 1639078.59),
    ('Sunset Commons', 1482900.0, 1225503.0),
    ('Valley View Center', 6210100.0, 4851626.04),
    ('Harbor Town Mall', 3256600.0, 3015330.56),
]

noi_change = float(params.get("noi_change", 0.0))
log(f"computing DSCR for {len(PORTFOLIO)} properties (NOI change {noi_change:+.0%})")

rows = []
for name, noi, debt_service in PORTFOLIO:
    stressed = noi * (1 + noi_change)
    try:
        ratio = finance.dscr(stressed, debt_service)
    except ValueError as e:
        log(f"{name} skipped: {e}")
        continue
    rows.append(
        {
            "property": name,
            "noi": round(stressed, 2),
            "annual_debt_service": debt_service,
            "dscr": round(ratio, 2),
            "verdict": finance.classify_dscr(ratio),
        }
    )

result(rows)
total_noi = sum(r["noi"] for r in rows)
total_debt_service = sum(r["annual_debt_service"] for r in rows)
verdicts = [r["verdict"] for r in rows]
emit(
    "summary",
    {
        "properties": len(rows),
        "portfolio_dscr": round(total_noi / total_debt_service, 2),
        "approve": verdicts.count("approve"),
        "review": verdicts.count("review"),
        "reject": verdicts.count("reject"),
    },
)
