"""Writes tests/fixtures/finance_reference.json: reference values from numpy-financial.

Runs on the HOST python3 (the sandbox has no numpy):

    python3 -m pip install numpy-financial
    cd runtime && python3 tests/gen_finance_fixture.py

The cases are random but seeded, so regenerating gives the same file for the same
numpy-financial version. Inputs are kept short (whole amounts, rates with few digits) so the
file stays small; outputs are stored with full precision (repr of a float round-trips).

Layout (compact JSON):
    {"generator": ..., "numpy_financial": "1.0.0", "seed": 20251123,
     "pmt": [[principal, annual_rate, years, periods_per_year, payment], ...],
     "npv": [[rate, [cashflow, ...], npv], ...],
     "irr": [[[cashflow, ...], irr], ...]}
where payment = -numpy_financial.pmt(annual_rate / periods_per_year,
years * periods_per_year, principal), i.e. the positive amount metaexec.finance.payment returns.
"""

import json
import math
import os
import random
import sys

import numpy_financial as npf

SEED = 20251123
CASES = 1200
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "finance_reference.json")


def pmt_cases(rng):
    cases = []
    while len(cases) < CASES:
        principal = rng.choice(
            [rng.randint(1_000, 500_000), rng.randint(100_000, 50_000_000), rng.randint(1, 200_000_000)]
        )
        if rng.random() < 0.3:
            principal = round(principal + rng.random(), 2)
        if rng.random() < 0.08:
            annual_rate = 0
        else:
            annual_rate = round(rng.uniform(0.0005, 0.25), rng.choice([3, 4, 5]))
        ppy = rng.choice([12, 12, 12, 12, 4, 2, 1, 52])
        years = rng.randint(1, 40)
        if rng.random() < 0.1 and ppy % 2 == 0:
            years = years + 0.5
        expected = -float(npf.pmt(annual_rate / ppy, years * ppy, principal))
        if not math.isfinite(expected):
            continue
        cases.append([principal, annual_rate, years, ppy, expected])
    return cases


def random_flows(rng, conventional):
    n = rng.randint(1, 24)
    scale = rng.choice([100, 10_000, 1_000_000])
    first = -rng.randint(scale // 10 + 1, scale * 10)
    flows = [first]
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            flows.append(0)
        elif not conventional and r < 0.3:
            flows.append(-rng.randint(1, scale))
        else:
            flows.append(rng.randint(1, scale * 2))
    if not conventional and rng.random() < 0.3:
        flows = [-v for v in flows]
    return flows


def npv_cases(rng):
    cases = []
    while len(cases) < CASES:
        flows = random_flows(rng, conventional=rng.random() < 0.6)
        if rng.random() < 0.05:
            rate = 0
        else:
            rate = round(rng.uniform(-0.5, 0.6), rng.choice([2, 3, 4]))
        expected = float(npf.npv(rate, flows))
        if not math.isfinite(expected):
            continue
        cases.append([rate, flows, expected])
    return cases


def well_conditioned(flows, r):
    """True when NPV changes sign across r, i.e. a real, simple root numpy found cleanly."""
    h = 1e-7 * max(1.0, abs(r))
    lo, hi = float(npf.npv(r - h, flows)), float(npf.npv(r + h, flows))
    return lo * hi < 0.0


def irr_cases(rng):
    cases = []
    while len(cases) < CASES:
        flows = random_flows(rng, conventional=rng.random() < 0.8)
        expected = float(npf.irr(flows))
        if not math.isfinite(expected) or not well_conditioned(flows, expected):
            continue
        cases.append([flows, expected])
    return cases


def main():
    rng = random.Random(SEED)
    data = {
        "generator": "runtime/tests/gen_finance_fixture.py",
        "numpy_financial": npf.__version__,
        "seed": SEED,
        "pmt": pmt_cases(rng),
        "npv": npv_cases(rng),
        "irr": irr_cases(rng),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(data, separators=(",", ":"))
    with open(OUT, "w") as f:
        f.write(text)
        f.write("\n")
    sys.stdout.write(
        "wrote %s: %d pmt, %d npv, %d irr cases, %d bytes\n"
        % (OUT, len(data["pmt"]), len(data["npv"]), len(data["irr"]), len(text) + 1)
    )


if __name__ == "__main__":
    main()
