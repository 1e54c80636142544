"""Checks metaexec.finance against numpy-financial reference values and worked examples.

    cd runtime && python3 tests/check_finance.py tests/fixtures/finance_reference.json

Runs under plain host python3 and inside the sandbox (CPython 3.14 on WASI); it only reads
the fixture, so the fixture may sit in a read-only directory. Prints one summary line and
exits 1 on any mismatch (details of the first mismatches go to stderr).

Tolerance: |got - want| <= 1e-9 * max(|want|, floor), i.e. relative error 1e-9, and absolute
near zero: floor is 1.0 for money amounts (pmt, npv) and 1e-6 for rates (irr).
"""

import json
import os
import sys

FIXTURE = "tests/fixtures/finance_reference.json"
TOLERANCE = 1e-9
MONEY_FLOOR = 1.0
RATE_FLOOR = 1e-6


def _load_finance():
    """Imports finance.py as a plain module (the `metaexec` package needs the runtime's host
    interface, which exists only inside the sandbox)."""
    here = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else "."
    candidates = [os.path.join(here, "..", "metaexec"), os.path.join("metaexec")]
    candidates += [os.path.join(p or ".", "metaexec") for p in sys.path]
    for d in candidates:
        if os.path.isfile(os.path.join(d, "finance.py")):
            sys.path.insert(0, os.path.abspath(d))
            import finance

            return finance
    raise SystemExit("check_finance: cannot find metaexec/finance.py (looked in %r)" % candidates)


finance = _load_finance()

failures = []
worst = {}
counts = {}


def _err(got, want, floor):
    return abs(got - want) / max(abs(want), floor)


def close(group, label, got, want, floor=MONEY_FLOOR, tol=TOLERANCE):
    counts[group] = counts.get(group, 0) + 1
    if type(got) not in (float, int):
        failures.append("%s %s: got %r, want %r" % (group, label, got, want))
        return
    e = _err(got, want, floor)
    if e > worst.get(group, (-1.0,))[0]:
        worst[group] = (e, label)
    if not e <= tol:
        failures.append("%s %s: got %r, want %r (rel err %.3g)" % (group, label, got, want, e))


def equal(group, label, got, want):
    counts[group] = counts.get(group, 0) + 1
    if got != want:
        failures.append("%s %s: got %r, want %r" % (group, label, got, want))


def raises(group, label, fn, *args, **kwargs):
    counts[group] = counts.get(group, 0) + 1
    try:
        got = fn(*args, **kwargs)
    except ValueError:
        return
    except Exception as exc:  # noqa: BLE001 - any other exception type is a failure
        failures.append("%s %s: raised %s instead of ValueError" % (group, label, type(exc).__name__))
        return
    failures.append("%s %s: returned %r instead of raising ValueError" % (group, label, got))


def check_fixture(path):
    with open(path) as f:
        data = json.load(f)
    for i, (principal, annual_rate, years, ppy, want) in enumerate(data["pmt"]):
        got = finance.payment(principal, annual_rate, years, ppy)
        close("pmt", "#%d payment(%r, %r, %r, %r)" % (i, principal, annual_rate, years, ppy), got, want)
    for i, (rate, flows, want) in enumerate(data["npv"]):
        close("npv", "#%d npv(%r, %r)" % (i, rate, flows), finance.npv(rate, flows), want)
    for i, (flows, want) in enumerate(data["irr"]):
        try:
            got = finance.irr(flows)
        except ValueError as exc:
            got = "ValueError: %s" % exc
        close("irr", "#%d irr(%r)" % (i, flows), got, want, floor=RATE_FLOOR)
    return data


def check_examples():
    g = "example"
    f = finance

    # payment: $200,000 over 15 years at 7.5 %: r = 0.075 / 12 = 0.00625, n = 180,
    # (1.00625)^180 = 3.0694..., pmt = 200000 * 0.00625 * 3.0694 / 2.0694 = 1854.0247
    # (numpy-financial's documented value is 1854.0247200054619).
    close(g, "payment 200k", f.payment(200_000, 0.075, 15), 1854.0247200054619)
    # Zero rate is straight line: 120,000 / 120 months = 1,000.
    equal(g, "payment zero rate", f.payment(120_000, 0, 10), 1000.0)
    # Quarterly: 100,000 at 8 % over 5 years: r = 0.02, n = 20, 1.02^20 = 1.485947,
    # pmt = 100000 * 0.02 * 1.485947 / 0.485947 = 6115.67.
    close(g, "payment quarterly", round(f.payment(100_000, 0.08, 5, 4), 2), 6115.67)
    equal(g, "payment zero principal", f.payment(0, 0.05, 10), 0.0)

    # annual_debt_service: $1,000,000 at 6 % over 30 years: r = 0.005, n = 360,
    # 1.005^360 = 6.022575, pmt = 5000 * 6.022575 / 5.022575 = 5995.5053 a month,
    # times 12 = 71,946.06 a year.
    close(g, "ADS 1M 6% 30y", round(f.annual_debt_service(1_000_000, 0.06, 30), 2), 71946.06)
    # Interest only: 1,000,000 * 6 % = 60,000, amortization ignored.
    equal(g, "ADS interest only", f.annual_debt_service(1_000_000, 0.06, None, interest_only=True), 60000.0)
    # Zero rate, 25 years: 2,500,000 / 25 = 100,000 a year.
    close(g, "ADS zero rate", f.annual_debt_service(2_500_000, 0, 25), 100_000.0)
    close(g, "loan constant", f.loan_constant(0.06, 30), 0.0719460630183308)

    # noi: 1,000,000 * (1 - 0.05) - 350,000 = 600,000.
    equal(g, "noi", f.noi(1_000_000, 0.05, 350_000), 600_000.0)
    equal(g, "noi default", f.noi(500_000), 500_000.0)

    # dscr: the original plan's cases, debt service 750,000:
    # 1,000,000 / 750,000 = 1.3333; 800,000 / 750,000 = 1.0667; 1,200,000 / 750,000 = 1.6.
    close(g, "dscr base", f.dscr(1_000_000, 750_000), 4.0 / 3.0)
    close(g, "dscr pessimistic", f.dscr(800_000, 750_000), 16.0 / 15.0)
    close(g, "dscr optimistic", f.dscr(1_200_000, 750_000), 1.6)
    close(g, "dscr negative noi", f.dscr(-100_000, 500_000), -0.2)

    # Ratios: 1,000,000 / 12,500,000 = 0.08; 1,000,000 / 10,000,000 = 0.10;
    # 7,500,000 / 10,000,000 = 0.75; (400,000 + 500,000) / 1,200,000 = 0.75;
    # 50,000 / 500,000 = 0.10.
    close(g, "cap rate", f.cap_rate(1_000_000, 12_500_000), 0.08)
    close(g, "debt yield", f.debt_yield(1_000_000, 10_000_000), 0.1)
    close(g, "ltv", f.ltv(7_500_000, 10_000_000), 0.75)
    close(g, "breakeven occupancy", f.breakeven_occupancy(400_000, 500_000, 1_200_000), 0.75)
    close(g, "cash on cash", f.cash_on_cash(50_000, 500_000), 0.1)

    # npv at 8 %: 5000/1.08 + 8000/1.08^2 + 12000/1.08^3 + 30000/1.08^4
    # = 4629.63 + 6858.71 + 9525.98 + 22050.90 = 43065.22; minus 40,000 = 3065.22
    # (numpy-financial documents 3065.22267).
    close(g, "npv doc", f.npv(0.08, [-40_000, 5_000, 8_000, 12_000, 30_000]), 3065.222668179529)
    equal(g, "npv t0 undiscounted", f.npv(0.5, [123.0]), 123.0)
    # At rate 0 the NPV is the plain sum.
    close(g, "npv zero rate", f.npv(0, [-100, 30, 30, 50]), 10.0)

    # irr: -1000 then 1100 a period later: 1100 / 1000 - 1 = 10 %.
    close(g, "irr one period", f.irr([-1000, 1100]), 0.1, floor=RATE_FLOOR)
    # -100 then 74 after three periods: (0.74)^(1/3) - 1 = -0.0954958.
    close(g, "irr negative", f.irr([-100, 0, 0, 74]), 0.74 ** (1.0 / 3.0) - 1.0, floor=RATE_FLOOR)
    # numpy-financial's documented examples, rounded to 5 places as they are documented.
    equal(g, "irr doc 1", round(f.irr([-100, 39, 59, 55, 20]), 5), 0.28095)
    equal(g, "irr doc 3", round(f.irr([-100, 100, 0, -7]), 5), -0.0833)
    equal(g, "irr doc 4", round(f.irr([-100, 100, 0, 7]), 5), 0.06206)
    # Several roots: the one closest to zero, as numpy-financial picks.
    equal(g, "irr doc 5", round(f.irr([-5, 10.5, 1, -8, 1]), 5), 0.0886)
    # NPV at the IRR is zero.
    r = f.irr([-250_000, 60_000, 70_000, 80_000, 90_000])
    close(g, "npv at irr", f.npv(r, [-250_000, 60_000, 70_000, 80_000, 90_000]), 0.0, tol=1e-9)
    equal(g, "irr exact zero", f.irr([-100, 50, 50]), 0.0)
    close(g, "irr leading zeros", f.irr([0, 0, -1000, 1100]), 0.1, floor=RATE_FLOOR)
    # Extremes: 1 grows to 1,000,000 in one period: r = 999,999; 1,000,000 shrinks to 1:
    # r = 1e-6 - 1; 100 grows to 1e30 in 20 periods: r = (1e28)^(1/20) - 1 = 10^1.4 - 1.
    close(g, "irr huge", f.irr([-1, 1e6]), 999_999.0, floor=RATE_FLOOR)
    close(g, "irr near -1", f.irr([-1e6, 1]), 1e-6 - 1.0, floor=RATE_FLOOR)
    close(g, "irr 20 periods", f.irr([-100] + [0] * 19 + [1e30]), 10.0 ** 1.4 - 1.0, floor=RATE_FLOOR)
    # A 30-year monthly loan seen from the lender: 1,000,000 out, 360 payments of
    # payment(1e6, 0.06, 30) back: the monthly IRR is the note rate, 0.06 / 12 = 0.005.
    pay = f.payment(1_000_000, 0.06, 30)
    close(g, "irr of a loan", f.irr([-1_000_000] + [pay] * 360), 0.005, floor=RATE_FLOOR)

    # max_loan_for_dscr: NOI 1,250,000 at DSCR 1.25 supports 1,000,000 of debt service,
    # 83,333.33 a month; at 6 %/30 years that is 83,333.33 * (1 - 1.005^-360) / 0.005
    # = 83,333.33 * 166.79161 = 13,899,301.20. The round trip gives DSCR 1.25 again.
    loan = f.max_loan_for_dscr(1_250_000, 1.25, 0.06, 30)
    close(g, "max loan", round(loan, 2), 13_899_301.2)
    close(g, "max loan round trip", f.dscr(1_250_000, f.annual_debt_service(loan, 0.06, 30)), 1.25)
    # Zero rate: 1,000,000 / 1.25 = 800,000 a year over 10 years = 8,000,000.
    close(g, "max loan zero rate", f.max_loan_for_dscr(1_000_000, 1.25, 0, 10), 8_000_000.0)
    # Interest only: 800,000 / 0.05 = 16,000,000.
    close(g, "max loan IO", f.max_loan_for_dscr(1_000_000, 1.25, 0.05, None, interest_only=True), 16_000_000.0)
    equal(g, "max loan negative noi", f.max_loan_for_dscr(-5, 1.25, 0.05, 30), 0.0)

    # Amortization schedule: payments sum to principal + interest, last balance is 0,
    # first interest is principal * r = 1,000,000 * 0.005 = 5,000.
    rows = f.amortization_schedule(1_000_000, 0.06, 30)
    equal(g, "schedule length", len(rows), 360)
    close(g, "schedule first interest", rows[0]["interest"], 5000.0)
    close(g, "schedule principal sum", sum(x["principal"] for x in rows), 1_000_000.0)
    equal(g, "schedule final balance", rows[-1]["balance"], 0.0)
    close(g, "schedule vs remaining_balance", rows[119]["balance"], f.remaining_balance(1_000_000, 0.06, 30, 120))
    straight = f.amortization_schedule(1200, 0, 1)
    equal(g, "schedule zero rate", [x["principal"] for x in straight], [100.0] * 12)

    # Verdicts: approve >= 1.25 > review >= 1.15 > reject; bands >= 1.25 green, >= 1.0 yellow.
    equal(g, "classify 1.25", f.classify_dscr(1.25), "approve")
    equal(g, "classify 1.2499", f.classify_dscr(1.2499), "review")
    equal(g, "classify 1.15", f.classify_dscr(1.15), "review")
    equal(g, "classify 1.1499", f.classify_dscr(1.1499), "reject")
    equal(g, "band 1.25", f.dscr_band(1.25), "green")
    equal(g, "band 1.0", f.dscr_band(1.0), "yellow")
    equal(g, "band 0.99", f.dscr_band(0.99), "red")

    # Bad inputs raise ValueError instead of returning inf or NaN.
    nan = float("nan")
    raises(g, "dscr zero debt service", f.dscr, 1_000_000, 0)
    raises(g, "dscr negative debt service", f.dscr, 1_000_000, -5)
    raises(g, "dscr None", f.dscr, None, 5)
    raises(g, "dscr nan", f.dscr, nan, 5)
    raises(g, "dscr string", f.dscr, "100", 5)
    raises(g, "payment negative principal", f.payment, -1, 0.05, 30)
    raises(g, "payment percent rate", f.payment, 100_000, 6.5, 30)
    raises(g, "payment negative rate", f.payment, 100_000, -0.01, 30)
    raises(g, "payment zero years", f.payment, 100_000, 0.05, 0)
    raises(g, "payment infinite", f.payment, float("inf"), 0.05, 30)
    raises(g, "payment fractional ppy", f.payment, 100_000, 0.05, 30, 12.5)
    raises(g, "ADS no amortization", f.annual_debt_service, 100_000, 0.05, None)
    raises(g, "noi vacancy > 1", f.noi, 100, 1.5, 0)
    raises(g, "noi negative expenses", f.noi, 100, 0, -1)
    raises(g, "cap rate zero value", f.cap_rate, 100, 0)
    raises(g, "npv rate -1", f.npv, -1, [1, 2])
    raises(g, "npv empty", f.npv, 0.1, [])
    raises(g, "npv string", f.npv, 0.1, "123")
    raises(g, "irr no sign change", f.irr, [100, 200, 300])
    raises(g, "irr all zero", f.irr, [0, 0])
    raises(g, "irr nan", f.irr, [-100, nan, 120])
    raises(g, "irr too short", f.irr, [-100])
    raises(g, "classify thresholds swapped", f.classify_dscr, 1.2, 1.1, 1.3)
    raises(g, "schedule fractional periods", f.amortization_schedule, 1000, 0.05, 1.01)
    raises(g, "max loan IO zero rate", f.max_loan_for_dscr, 1_000, 1.25, 0, None, True)
    raises(g, "remaining beyond term", f.remaining_balance, 1000, 0.05, 1, 13)


class _Plain(float):
    """A float the fast paths do not take: calls with it run the checked paths."""


class _PlainInt(int):
    """The same for ints."""


def _outcome(fn, *args):
    try:
        value = fn(*args)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return ("raises", type(exc).__name__, str(exc))
    return ("value", type(value).__name__, repr(value))


def check_fast_paths():
    """Every fast path gives bit for bit what its checked path gives, values and errors."""
    import random

    g = "fast path"
    rng = random.Random(7)
    nan, inf = float("nan"), float("inf")
    specials = [0.0, -0.0, 1e-320, 1e-12, 1.0, 1.15, 1.25, 1e300, 1.7e308, nan, inf, -inf, -1.0]

    def sample(kind):
        if rng.random() < 0.15:
            return rng.choice(specials)
        if kind == "rate":
            return rng.choice([rng.uniform(0.0, 0.2), rng.uniform(-0.1, 1.5), 0.0])
        if kind == "years":
            return rng.choice([rng.randint(1, 40), rng.uniform(0.1, 50.0), 5000, 0])
        if kind == "money":
            return rng.choice([rng.uniform(-1e6, 5e7), rng.randint(0, 10**8), 2**60 + 1])
        return rng.uniform(-1.0, 3.0)

    def plain(x):
        if type(x) is int:
            return _PlainInt(x)
        return _Plain(x) if type(x) is float else x

    cases = []
    for _ in range(4000):
        p, r, y = sample("money"), sample("rate"), sample("years")
        cases.append((finance.annual_debt_service, (p, r, y), (plain(p), plain(r), plain(y))))
        n, d = sample("money"), sample("money")
        cases.append((finance.dscr, (n, d), (plain(n), plain(d))))
        x = sample("ratio")
        cases.append((finance.classify_dscr, (x,), (plain(x), _Plain(1.25), _Plain(1.15))))
        cases.append((finance.dscr_band, (x,), (plain(x), _Plain(1.25), _Plain(1.0))))
    for fn, fast, checked in cases:
        counts[g] = counts.get(g, 0) + 1
        got, want = _outcome(fn, *fast), _outcome(fn, *checked)
        if got != want:
            failures.append("%s %s%r: fast %r, checked %r" % (g, fn.__name__, fast, got, want))


def main(argv):
    path = argv[1] if len(argv) > 1 else FIXTURE
    if not os.path.isfile(path) and os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "finance_reference.json")):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "finance_reference.json")
    check_fixture(path)
    check_examples()
    check_fast_paths()
    for line in failures[:20]:
        sys.stderr.write("MISMATCH " + line + "\n")
    parts = ", ".join(
        "%s %d (max rel err %.2g)" % (k, counts[k], worst[k][0]) if k in worst else "%s %d" % (k, counts[k])
        for k in ("pmt", "npv", "irr", "example", "fast path")
        if k in counts
    )
    status = "ok" if not failures else "FAILED (%d mismatches)" % len(failures)
    sys.stdout.write("check_finance: %s: %s\n" % (status, parts))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
