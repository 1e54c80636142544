"""The 10-row DSCR loop both sides of the micro benchmark run (the demo portfolio's 2024
NOI and loans)."""

ROWS = [
    (7616500.0, 45000000.0, 0.0525, 25),
    (4220000.0, 28000000.0, 0.0575, 30),
    (3100000.0, 27500000.0, 0.0610, 25),
    (5600000.0, 36000000.0, 0.0540, 25),
    (6900000.0, 38000000.0, 0.0495, 30),
    (2300000.0, 26000000.0, 0.0650, 25),
    (3500000.0, 30000000.0, 0.0600, 25),
    (2800000.0, 22000000.0, 0.0585, 25),
    (4100000.0, 31000000.0, 0.0560, 25),
    (2600000.0, 24500000.0, 0.0625, 25),
]


def dscr_loop(finance, rows):
    out = []
    for noi, principal, rate, years in rows:
        debt_service = finance.annual_debt_service(principal, rate, years)
        ratio = finance.dscr(noi, debt_service)
        out.append((ratio, finance.classify_dscr(ratio)))
    return out
