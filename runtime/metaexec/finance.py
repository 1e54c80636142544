"""Real-estate finance: NOI, loan payments, coverage ratios, NPV and IRR.

Rates are fractions (0.065 = 6.5 %); amounts are annual and loans pay monthly unless a name
or `periods_per_year` says otherwise; results are not rounded; bad inputs raise ValueError
(never inf or NaN).
"""

# Imports only `math`: the sandbox pays for every import at interpreter start-up.
import math

__all__ = [
    "noi",
    "payment",
    "annual_debt_service",
    "loan_constant",
    "amortization_schedule",
    "remaining_balance",
    "dscr",
    "cap_rate",
    "debt_yield",
    "ltv",
    "breakeven_occupancy",
    "cash_on_cash",
    "hold_irr",
    "npv",
    "irr",
    "max_loan_for_dscr",
    "classify_dscr",
    "dscr_band",
]

_OVERFLOW_EXP = 700.0  # exp(700) is near the top of the float range

# The fast paths below take plain ints and floats well inside the float range (so that
# converting them cannot overflow) and compute exactly what the checked paths compute;
# anything else takes the checked path. A sweep calls these functions tens of thousands
# of times, and in the sandbox's interpreter the checks cost more than the arithmetic.
_BIG = 1e300
_REAL = (float, int)
_log1p = math.log1p


# --------------------------------------------------------------------------- validation


def _num(fn, name, x):
    """Returns `x` as a finite float or raises ValueError naming the function and argument."""
    t = type(x)
    if t is float or t is int:
        try:
            v = float(x)
        except OverflowError:
            raise ValueError("%s: %s is too large: %r" % (fn, name, x)) from None
    elif x is None or t is bool or t is str or t is bytes:
        hint = " (convert it with float() first)" if t is str else ""
        raise ValueError("%s: %s must be a number, got %r%s" % (fn, name, x, hint))
    else:
        # Decimal (PostgreSQL numeric), numpy scalars, fractions ...
        try:
            v = float(x)
        except (TypeError, ValueError, OverflowError):
            raise ValueError("%s: %s must be a number, got %r" % (fn, name, x)) from None
    if v - v != 0.0:
        raise ValueError("%s: %s must be a finite number, got %r" % (fn, name, x))
    return v


def _nonneg(fn, name, x):
    v = _num(fn, name, x)
    if v < 0.0:
        raise ValueError("%s: %s must be >= 0, got %r" % (fn, name, x))
    return v


def _positive(fn, name, x):
    v = _num(fn, name, x)
    if v <= 0.0:
        raise ValueError("%s: %s must be > 0, got %r" % (fn, name, x))
    return v


def _annual_rate(fn, name, x):
    v = _num(fn, name, x)
    if v < 0.0 or v > 1.0:
        hint = ""
        if 1.0 < v <= 100.0:
            hint = "; rates are fractions: pass %r for %r %%" % (v / 100.0, v)
        raise ValueError("%s: %s must be between 0 and 1, got %r%s" % (fn, name, x, hint))
    return v


def _fraction(fn, name, x):
    v = _num(fn, name, x)
    if v < 0.0 or v > 1.0:
        hint = ""
        if 1.0 < v <= 100.0:
            hint = "; pass %r for %r %%" % (v / 100.0, v)
        raise ValueError("%s: %s must be between 0 and 1, got %r%s" % (fn, name, x, hint))
    return v


def _ppy(fn, x):
    v = _num(fn, "periods_per_year", x)
    if v < 1.0 or v != int(v):
        raise ValueError("%s: periods_per_year must be a whole number >= 1, got %r" % (fn, x))
    return int(v)


def _periods(fn, years, ppy, whole=False, name="years"):
    y = _positive(fn, name, years)
    n = y * ppy
    if whole:
        k = round(n)
        if abs(n - k) > 1e-9 * max(1.0, n) or k < 1:
            raise ValueError(
                "%s: years * periods_per_year must be a whole number of periods, got %r"
                % (fn, n)
            )
        return int(k)
    return n


def _flows(fn, cashflows):
    if isinstance(cashflows, (str, bytes)) or cashflows is None:
        raise ValueError("%s: cashflows must be a list of numbers, got %r" % (fn, cashflows))
    try:
        items = list(cashflows)
    except TypeError:
        raise ValueError(
            "%s: cashflows must be a list of numbers, got %r" % (fn, cashflows)
        ) from None
    if not items:
        raise ValueError("%s: cashflows must not be empty" % fn)
    return [_num(fn, "cashflows[%d]" % i, c) for i, c in enumerate(items)]


# --------------------------------------------------------------------------- loans


def _growth(r, n):
    """(1 + r) ** n, or None when it would overflow."""
    if r == 0.0:
        return 1.0
    if n * math.log1p(r) > _OVERFLOW_EXP:
        return None
    return (1.0 + r) ** n


def _pmt(p, r, n):
    if r == 0.0:
        return p / n
    t = _growth(r, n)
    if t is None:  # so many periods that the payment is just the interest
        return p * r
    return p * t * r / (t - 1.0)


def noi(gross_revenue, vacancy_rate=0.0, operating_expenses=0.0):
    """Net operating income: gross_revenue * (1 - vacancy_rate) - operating_expenses.

    Args: gross_revenue >= 0 (annual, potential); vacancy_rate in [0, 1];
        operating_expenses >= 0 (annual).
    Returns: float (may be negative).
    Example: noi(1_000_000, 0.05, 350_000) -> 600000.0
    """
    fn = "noi()"
    g = _nonneg(fn, "gross_revenue", gross_revenue)
    v = _fraction(fn, "vacancy_rate", vacancy_rate)
    e = _nonneg(fn, "operating_expenses", operating_expenses)
    return g * (1.0 - v) - e


def payment(principal, annual_rate, years, periods_per_year=12):
    """Level payment per period of a fully amortizing loan (positive, like -numpy_financial.pmt).

    Args: principal >= 0; annual_rate in [0, 1] (0 = straight line); years > 0;
        periods_per_year: whole number >= 1 (12 = monthly).
    Returns: float, the amount paid each period.
    Example: payment(200_000, 0.075, 15) -> 1854.02
    """
    fn = "payment()"
    p = _nonneg(fn, "principal", principal)
    rate = _annual_rate(fn, "annual_rate", annual_rate)
    ppy = _ppy(fn, periods_per_year)
    n = _periods(fn, years, ppy)
    return _pmt(p, rate / ppy, n)


def annual_debt_service(principal, annual_rate, amortization_years, interest_only=False):
    """Annual debt service: 12 monthly payments, or principal * annual_rate if interest_only.

    Args: principal >= 0; annual_rate in [0, 1]; amortization_years > 0 (ignored, may be
        None, when interest_only); interest_only: bool.
    Returns: float, annual principal + interest.
    Example: annual_debt_service(1_000_000, 0.06, 30) -> 71946.06
    """
    if (
        interest_only is False
        and type(principal) in _REAL
        and type(annual_rate) is float
        and type(amortization_years) in _REAL
        and 0.0 <= principal < _BIG
        and 0.0 < annual_rate <= 1.0
        and 0.0 < amortization_years < _BIG
    ):
        r = annual_rate / 12.0
        n = amortization_years * 12.0
        if r != 0.0 and n * _log1p(r) <= _OVERFLOW_EXP:
            t = (1.0 + r) ** n
            return 12.0 * (principal * t * r / (t - 1.0))
    fn = "annual_debt_service()"
    p = _nonneg(fn, "principal", principal)
    rate = _annual_rate(fn, "annual_rate", annual_rate)
    if interest_only:
        return p * rate
    n = _periods(fn, amortization_years, 12, name="amortization_years")
    return 12.0 * _pmt(p, rate / 12.0, n)


def loan_constant(annual_rate, amortization_years):
    """Annual debt service per 1 of loan (monthly payments): annual_debt_service(1, ...).

    Args: annual_rate in [0, 1]; amortization_years > 0.
    Returns: float.
    Example: loan_constant(0.06, 30) -> 0.07195
    """
    fn = "loan_constant()"
    rate = _annual_rate(fn, "annual_rate", annual_rate)
    n = _periods(fn, amortization_years, 12, name="amortization_years")
    return 12.0 * _pmt(1.0, rate / 12.0, n)


def amortization_schedule(principal, annual_rate, years, periods_per_year=12):
    """Period-by-period amortization table of a level-payment loan (final balance exactly 0).

    Args: as payment(); years * periods_per_year must be a whole number.
    Returns: list of dicts {period, payment, interest, principal, balance}; period starts at 1.
    Example: amortization_schedule(1200, 0, 1)[0] -> {'period': 1, 'payment': 100.0, 'interest': 0.0, 'principal': 100.0, 'balance': 1100.0}
    """
    fn = "amortization_schedule()"
    p = _nonneg(fn, "principal", principal)
    rate = _annual_rate(fn, "annual_rate", annual_rate)
    ppy = _ppy(fn, periods_per_year)
    n = _periods(fn, years, ppy, whole=True)
    if n > 100_000:
        raise ValueError("%s: %d periods is too many for a schedule" % (fn, n))
    r = rate / ppy
    pay = _pmt(p, r, n)
    balance = p
    rows = []
    for k in range(1, n + 1):
        interest = balance * r
        if k == n:
            princ = balance
            pay_k = interest + princ
            balance = 0.0
        else:
            pay_k = pay
            princ = pay - interest
            balance = balance - princ
        rows.append(
            {
                "period": k,
                "payment": pay_k,
                "interest": interest,
                "principal": princ,
                "balance": balance,
            }
        )
    return rows


def remaining_balance(principal, annual_rate, years, periods_elapsed, periods_per_year=12):
    """Loan balance after `periods_elapsed` level payments (e.g. the balloon at maturity).

    Args: as payment(); periods_elapsed: 0 <= k <= years * periods_per_year.
    Returns: float.
    Example: remaining_balance(1_000_000, 0.06, 30, 120) -> 836857.25
    """
    fn = "remaining_balance()"
    p = _nonneg(fn, "principal", principal)
    rate = _annual_rate(fn, "annual_rate", annual_rate)
    ppy = _ppy(fn, periods_per_year)
    n = _periods(fn, years, ppy)
    k = _nonneg(fn, "periods_elapsed", periods_elapsed)
    if k > n + 1e-9:
        raise ValueError(
            "%s: periods_elapsed (%r) exceeds the loan's %r periods" % (fn, periods_elapsed, n)
        )
    r = rate / ppy
    if r == 0.0:
        return max(0.0, p * (1.0 - k / n))
    t_n = _growth(r, n)
    t_k = _growth(r, k)
    if t_n is None or t_k is None:
        raise ValueError("%s: too many periods (%r) at this rate" % (fn, n))
    # B_k = P * ((1+r)^n - (1+r)^k) / ((1+r)^n - 1)
    return max(0.0, p * (t_n - t_k) / (t_n - 1.0))


# --------------------------------------------------------------------------- ratios


def dscr(noi, annual_debt_service):
    """Debt service coverage ratio: annual NOI / annual debt service.

    Args: noi: annual net operating income (may be negative); annual_debt_service > 0.
    Returns: float.
    Example: dscr(1_940_000, 1_000_000) -> 1.94
    """
    if (
        type(noi) in _REAL
        # A float divisor: int / int rounds differently from float(int) / float(int).
        and type(annual_debt_service) is float
        and -_BIG < noi < _BIG
        and 0.0 < annual_debt_service < _BIG
    ):
        return noi / annual_debt_service
    fn = "dscr()"
    n = _num(fn, "noi", noi)
    d = _num(fn, "annual_debt_service", annual_debt_service)
    if d <= 0.0:
        raise ValueError(
            "dscr(): annual_debt_service must be > 0, got %r (a property without debt "
            "has no DSCR)" % (annual_debt_service,)
        )
    return n / d


def cap_rate(noi, value):
    """Capitalization rate: annual NOI / property value.

    Args: noi (annual); value > 0.
    Returns: float fraction.
    Example: cap_rate(1_000_000, 12_500_000) -> 0.08
    """
    fn = "cap_rate()"
    return _num(fn, "noi", noi) / _positive(fn, "value", value)


def debt_yield(noi, loan):
    """Debt yield: annual NOI / loan amount.

    Args: noi (annual); loan > 0.
    Returns: float fraction.
    Example: debt_yield(1_000_000, 10_000_000) -> 0.1
    """
    fn = "debt_yield()"
    return _num(fn, "noi", noi) / _positive(fn, "loan", loan)


def ltv(loan, value):
    """Loan-to-value ratio: loan amount / property value.

    Args: loan >= 0; value > 0.
    Returns: float fraction.
    Example: ltv(7_500_000, 10_000_000) -> 0.75
    """
    fn = "ltv()"
    return _nonneg(fn, "loan", loan) / _positive(fn, "value", value)


def breakeven_occupancy(operating_expenses, annual_debt_service, gross_potential_revenue):
    """Occupancy at which revenue just covers expenses and debt service.

    Args: operating_expenses >= 0; annual_debt_service >= 0; gross_potential_revenue > 0
        (revenue at 100 % occupancy); all annual.
    Returns: float fraction (above 1 means it cannot break even even fully let).
    Example: breakeven_occupancy(400_000, 500_000, 1_200_000) -> 0.75
    """
    fn = "breakeven_occupancy()"
    e = _nonneg(fn, "operating_expenses", operating_expenses)
    d = _nonneg(fn, "annual_debt_service", annual_debt_service)
    g = _positive(fn, "gross_potential_revenue", gross_potential_revenue)
    return (e + d) / g


def cash_on_cash(annual_pre_tax_cash_flow, equity_invested):
    """Cash-on-cash return: annual pre-tax cash flow (NOI - debt service) / equity invested.

    Args: annual_pre_tax_cash_flow (may be negative); equity_invested > 0.
    Returns: float fraction.
    Example: cash_on_cash(50_000, 500_000) -> 0.1
    """
    fn = "cash_on_cash()"
    cf = _num(fn, "annual_pre_tax_cash_flow", annual_pre_tax_cash_flow)
    return cf / _positive(fn, "equity_invested", equity_invested)


# --------------------------------------------------------------------------- NPV and IRR


def npv(rate, cashflows):
    """Net present value; the first cash flow is at t=0 (undiscounted), as numpy_financial.npv.

    Args: rate > -1 (per period); cashflows: non-empty list of numbers, one per period.
    Returns: float.
    Example: npv(0.08, [-40_000, 5_000, 8_000, 12_000, 30_000]) -> 3065.22
    """
    fn = "npv()"
    r = _num(fn, "rate", rate)
    if r <= -1.0:
        raise ValueError("npv(): rate must be > -1, got %r" % (rate,))
    flows = _flows(fn, cashflows)
    base = 1.0 + r
    terms = []
    for t, c in enumerate(flows):
        if c == 0.0:
            continue
        try:
            d = base**t
        except OverflowError:
            d = math.inf
        if d == 0.0:
            raise ValueError("npv(): rate %r discounts beyond the float range" % (rate,))
        terms.append(c / d)
    total = math.fsum(terms)
    if total - total != 0.0:
        raise ValueError("npv(): the result is not finite (rate %r)" % (rate,))
    return total


def _sign(v):
    return 1 if v > 0.0 else (-1 if v < 0.0 else 0)


def _f_pos(c, r):
    """sum c_t / (1+r)^t for r >= 0 (Horner in x = 1/(1+r), no overflow)."""
    x = 1.0 / (1.0 + r)
    acc = 0.0
    for v in reversed(c):
        acc = acc * x + v
    return acc


def _f_neg(c, r):
    """sum c_t * (1+r)^(n-t) for -1 < r <= 0: same sign and roots as NPV, no overflow."""
    y = 1.0 + r
    acc = 0.0
    for v in c:
        acc = acc * y + v
    return acc


def _brent(f, a, b, fa, fb):
    """Brent's method on a bracket [a, b] with fa * fb < 0 (as scipy.optimize.brentq)."""
    xtol = 1e-16
    rtol = 4.0 * 2.220446049250313e-16
    xpre, xcur = a, b
    fpre, fcur = fa, fb
    xblk = fblk = spre = scur = 0.0
    for _ in range(200):
        if fpre != 0.0 and fcur != 0.0 and (fpre < 0.0) != (fcur < 0.0):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2.0
        sbis = (xblk - xcur) / 2.0
        if fcur == 0.0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2.0 * abs(stry) < min(abs(spre), 3.0 * abs(sbis) - delta):
                spre, scur = scur, stry
            else:
                spre, scur = sbis, sbis
        else:
            spre, scur = sbis, sbis
        xpre, fpre = xcur, fcur
        if abs(scur) > delta:
            xcur += scur
        else:
            xcur += delta if sbis > 0 else -delta
        fcur = f(xcur)
    return xcur


_GRIDS = None


def _grids():
    """Trial rates for bracketing, built once: fine grids (roots may be close together when
    the cash flows change sign several times) and coarse ones (enough when the root is unique)."""
    global _GRIDS
    if _GRIDS is None:
        pos = [0.005 * k for k in range(1, 41)]  # fine steps up to 20 %
        r = 0.2
        while r < 1e10:
            r *= 1.1
            pos.append(r)
        neg = [-0.005 * k for k in range(1, 41)]  # fine steps down to -20 %
        y = 0.8
        while y > 1e-12:
            y *= 0.9
            neg.append(y - 1.0)
        coarse_pos = [0.01 * 2.0**k for k in range(41)]  # 1 % doubling to ~1e10
        coarse_neg = [-0.01 * 2.0**k for k in range(6)]  # -1 % doubling to -32 %
        y = 0.68
        while y > 1e-12:
            y *= 0.5
            coarse_neg.append(y - 1.0)
        _GRIDS = (pos, neg, coarse_pos, coarse_neg)
    return _GRIDS


def _scan(c, f, grid, f0, limit):
    """First sign change of f along grid starting from r=0; returns the root or None."""
    a, fa = 0.0, f0
    for b in grid:
        if abs(a) > limit:  # the last cell may straddle the limit: it was still searched
            return None
        fb = f(c, b)
        if fb == 0.0:
            return b
        if (fa < 0.0) != (fb < 0.0):
            return _brent(lambda r: f(c, r), a, b, fa, fb)
        a, fa = b, fb
    return None


def irr(cashflows):
    """Internal rate of return per period: the rate where npv(rate, cashflows) == 0.

    Finds the root closest to 0 (as numpy_financial.irr) by bracketing and Brent's method.
    Args: cashflows: list of numbers, first at t=0; needs a negative and a positive value.
    Returns: float rate per period (> -1).
    Raises: ValueError when there is no sign change or no root.
    Example: irr([-100, 39, 59, 55, 20]) -> 0.28095
    """
    fn = "irr()"
    flows = _flows(fn, cashflows)
    i, j = 0, len(flows)
    while i < j and flows[i] == 0.0:
        i += 1
    while j > i and flows[j - 1] == 0.0:
        j -= 1
    c = flows[i:j]
    if not any(v > 0.0 for v in c) or not any(v < 0.0 for v in c):
        raise ValueError(
            "irr(): cash flows need at least one negative and one positive value "
            "(no sign change), got %r" % (flows if len(flows) <= 12 else flows[:12] + ["..."],)
        )
    changes = 0
    prev = 0
    for v in c:
        s = _sign(v)
        if s and prev and s != prev:
            changes += 1
        if s:
            prev = s
    f0 = math.fsum(c)
    if f0 == 0.0:
        return 0.0
    pos, neg, coarse_pos, coarse_neg = _grids()
    if changes == 1:
        # Exactly one root (Descartes), so a coarse bracket is safe. NPV tends to c[0] as
        # r -> inf, so the root lies above 0 when NPV(0) has the opposite sign of c[0].
        if (f0 > 0.0) != (c[0] > 0.0):
            root = _scan(c, _f_pos, coarse_pos, f0, math.inf)
        else:
            root = _scan(c, _f_neg, coarse_neg, f0, math.inf)
    else:
        above = _scan(c, _f_pos, pos, f0, math.inf)
        below = _scan(c, _f_neg, neg, f0, abs(above) if above is not None else math.inf)
        if above is None:
            root = below
        elif below is None or abs(above) <= abs(below):
            root = above
        else:
            root = below
    if root is None:
        raise ValueError(
            "irr(): no rate between -100 %% and 1e10 makes the NPV zero for %r"
            % (flows if len(flows) <= 12 else flows[:12] + ["..."],)
        )
    return root


# --------------------------------------------------------------------------- sizing and verdicts


def max_loan_for_dscr(noi, target_dscr, annual_rate, amortization_years, interest_only=False):
    """Largest loan whose annual debt service keeps DSCR at target_dscr (monthly payments).

    Args: noi (annual; <= 0 gives 0.0); target_dscr > 0; annual_rate in [0, 1]
        (> 0 when interest_only); amortization_years > 0 (ignored when interest_only).
    Returns: float loan amount.
    Example: max_loan_for_dscr(1_250_000, 1.25, 0.06, 30) -> 13899301.2
    """
    fn = "max_loan_for_dscr()"
    n_oi = _num(fn, "noi", noi)
    target = _positive(fn, "target_dscr", target_dscr)
    rate = _annual_rate(fn, "annual_rate", annual_rate)
    if interest_only:
        if rate == 0.0:
            raise ValueError("%s: an interest-only loan at a 0 rate has no size limit" % fn)
        return max(0.0, n_oi) / target / rate
    n = _periods(fn, amortization_years, 12, name="amortization_years")
    if n_oi <= 0.0:
        return 0.0
    monthly = n_oi / target / 12.0
    r = rate / 12.0
    if r == 0.0:
        return monthly * n
    if n * math.log1p(r) > _OVERFLOW_EXP:
        return monthly / r
    # present value of n payments: pmt * (1 - (1+r)^-n) / r
    return monthly * -math.expm1(-n * math.log1p(r)) / r


def classify_dscr(x, approve=1.25, review=1.15):
    """Credit verdict for a DSCR: "approve" (>= approve), "review" (>= review), else "reject".

    Args: x: DSCR; approve >= review: thresholds.
    Returns: str.
    Example: classify_dscr(1.18) -> 'review'
    """
    if approve == 1.25 and review == 1.15 and type(x) in _REAL and -_BIG < x < _BIG:
        return "approve" if x >= 1.25 else "review" if x >= 1.15 else "reject"
    fn = "classify_dscr()"
    v = _num(fn, "x", x)
    a = _num(fn, "approve", approve)
    r = _num(fn, "review", review)
    if r > a:
        raise ValueError("%s: review (%r) must not exceed approve (%r)" % (fn, review, approve))
    if v >= a:
        return "approve"
    if v >= r:
        return "review"
    return "reject"


def dscr_band(x, green=1.25, yellow=1.0):
    """Traffic-light band for a DSCR: "green" (>= green), "yellow" (>= yellow), else "red".

    Args: x: DSCR; green >= yellow: thresholds.
    Returns: str.
    Example: dscr_band(0.89) -> 'red'
    """
    if green == 1.25 and yellow == 1.0 and type(x) in _REAL and -_BIG < x < _BIG:
        return "green" if x >= 1.25 else "yellow" if x >= 1.0 else "red"
    fn = "dscr_band()"
    v = _num(fn, "x", x)
    g = _num(fn, "green", green)
    y = _num(fn, "yellow", yellow)
    if y > g:
        raise ValueError("%s: yellow (%r) must not exceed green (%r)" % (fn, yellow, green))
    if v >= g:
        return "green"
    if v >= y:
        return "yellow"
    return "red"


def hold_irr(price, noi, years, noi_growth=0.0, exit_cap_rate=None, sale_costs=0.0):
    """Unlevered IRR of buying at price, collecting NOI for `years` years (year 1 = noi,
    growing by noi_growth a year) and selling at the next year's NOI / exit_cap_rate less
    sale_costs (a fraction of the sale price).

    Args: price > 0; noi: year-1 NOI; years: whole years >= 1; exit_cap_rate > 0 (default:
        the going-in cap rate noi / price); sale_costs in [0, 1].
    Returns: dict {cash_flows: [-price, ...], exit_value, irr}.
    Example: round(hold_irr(1_000_000, 70_000, 5, 0.02, 0.07)["irr"], 6) -> 0.09
    """
    fn = "hold_irr()"
    p = _positive(fn, "price", price)
    first = _num(fn, "noi", noi)
    n = _periods(fn, years, 1, whole=True)
    g = _num(fn, "noi_growth", noi_growth)
    cap = first / p if exit_cap_rate is None else _positive(fn, "exit_cap_rate", exit_cap_rate)
    if cap <= 0.0:
        raise ValueError("%s: the going-in cap rate noi / price is not positive; give exit_cap_rate" % fn)
    costs = _fraction(fn, "sale_costs", sale_costs)
    flows = [-p] + [first * (1.0 + g) ** t for t in range(n)]
    exit_value = first * (1.0 + g) ** n / cap * (1.0 - costs)
    flows[-1] += exit_value
    return {"cash_flows": flows, "exit_value": exit_value, "irr": irr(flows)}
