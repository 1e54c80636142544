"""What-if shocks on property rows; functions return NEW rows and never change their input.

Shocks (0 = no change): noi_change, revenue_change, expense_change: relative (-0.10 = 10 %
lower); NOI moves by the revenue change minus the expense change, and noi_change applies
last. vacancy_change: absolute points (+0.05: occupancy 0.95 -> 0.90, revenue in proportion).
rate_change: absolute (+0.01 = +100 bp) or, with rate_mode="relative", a fraction of the
rate; debt service is recomputed from the loan terms. DSCR is recomputed; values keep the
row's own column names. Rows without revenue get revenue_change applied to NOI (noted in
"scenario_notes"); strict=True raises instead.
"""

import math

try:
    from . import finance, portfolio
except ImportError:  # imported as a plain module, outside the package
    import finance
    import portfolio

__all__ = [
    "SHOCKS",
    "apply_shocks",
    "shocked_metrics",
    "apply_scenario",
    "named_scenarios",
    "run_scenarios",
    "stress_test",
    "noi_stress_test",
    "scenario_summary",
    "breakeven_noi_change",
    "grid",
    "steps",
]

#: The shock keys a scenario may set.
SHOCKS = ("noi_change", "revenue_change", "expense_change", "vacancy_change", "rate_change")

_SHOCK_PREFIXES = ("noi", "revenue", "expense", "vacancy", "rate", "occupancy", "opex")

_NAMED = (
    ("base", "current figures", 0.0, 0.0),
    ("optimistic", "revenue +10 % (NOI +10 % where there is no revenue column)", 0.10, 0.0),
    ("pessimistic", "revenue -10 % (NOI -10 % where there is no revenue column)", -0.10, 0.0),
    ("stress", "revenue -20 % and operating expenses +5 %", -0.20, 0.05),
)


def _shock_value(fn, key, x, low, high):
    v = finance._num(fn, key, x)
    if v < low or v > high:
        raise ValueError("%s: %s must be between %r and %r, got %r" % (fn, key, low, high, x))
    return v


def _normalize(fn, noi_change, revenue_change, expense_change, vacancy_change, rate_change, rate_mode):
    if rate_mode not in ("absolute", "relative"):
        raise ValueError("%s: rate_mode must be 'absolute' or 'relative', got %r" % (fn, rate_mode))
    return {
        "noi_change": _shock_value(fn, "noi_change", noi_change, -1.0, 1e6),
        "revenue_change": _shock_value(fn, "revenue_change", revenue_change, -1.0, 1e6),
        "expense_change": _shock_value(fn, "expense_change", expense_change, -1.0, 1e6),
        "vacancy_change": _shock_value(fn, "vacancy_change", vacancy_change, -1.0, 1.0),
        "rate_change": _shock_value(
            fn, "rate_change", rate_change, -1.0, 1.0 if rate_mode == "absolute" else 1e6
        ),
        "rate_mode": rate_mode,
    }


def _clamp01(x):
    return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)


def _shock_row(row, res, s, strict, fn, index, v=None):
    """One shocked copy of `row`, with its NOI and annual debt service (None if unknown);
    `v` is the row's `_extract()`, when the caller has it."""
    cols, scale = res["cols"], res["scale"]
    if v is None:
        v = portfolio._extract(row, res)
    new = dict(row)
    notes = []
    label = portfolio._label(row, res, index)

    def lacking(what):
        if strict:
            raise ValueError("%s: %s: %s" % (fn, label, what))
        notes.append(what)

    rc, ec, vc, nc = s["revenue_change"], s["expense_change"], s["vacancy_change"], s["noi_change"]
    noi = v["noi"]
    noi_delta = 0.0
    noi_factor = 1.0

    # Revenue and vacancy.
    if rc or vc:
        eff = v["effective_revenue"]
        if eff is None:
            if rc:
                lacking("revenue_change applied to NOI (no revenue column)")
                noi_factor *= 1.0 + rc
            if vc:
                lacking("vacancy_change ignored (no revenue column)")
        else:
            vac0 = v["vacancy"]
            # Potential revenue as _extract() reads it: its own column, else gross revenue
            # when a vacancy column applies to it.
            if v["potential_revenue"] is not None:
                rev_col, pot = cols["potential_revenue"], v["potential_revenue"]
            elif cols["vacancy"] is not None:
                rev_col, pot = cols["revenue"], v["revenue"]
            else:
                rev_col, pot = None, None
            if pot is not None:
                pot_new = pot * (1.0 + rc)
                vac_new = _clamp01((vac0 or 0.0) + vc)
                eff_new = pot_new * (1.0 - vac_new)
                new[rev_col] = pot_new
            else:
                rev_col = cols["revenue"]
                vac_new = vac0
                eff_new = eff * (1.0 + rc)
                if vc:
                    if vac0 is None:
                        lacking("vacancy_change applied to current revenue (no vacancy or occupancy column)")
                        vac_new = None
                        eff_new *= 1.0 - _clamp01(vc)
                    elif vac0 >= 1.0:
                        lacking("vacancy_change ignored (the property is fully vacant)")
                    else:
                        vac_new = _clamp01(vac0 + vc)
                        eff_new *= (1.0 - vac_new) / (1.0 - vac0)
                new[rev_col] = eff_new
            if vac_new is not None and vc:
                if cols["vacancy"] is not None:
                    new[cols["vacancy"]] = vac_new / scale["vacancy"]
                elif cols["occupancy"] is not None:
                    new[cols["occupancy"]] = (1.0 - vac_new) / scale["occupancy"]
            noi_delta += eff_new - eff

    # Expenses.
    if ec:
        exp_ = v["expenses"]
        if exp_ is None:
            lacking("expense_change ignored (no operating expenses column)")
        else:
            exp_new = exp_ * (1.0 + ec)
            new[cols["expenses"]] = exp_new
            noi_delta -= exp_new - exp_

    if noi is not None:
        noi = (noi + noi_delta) * noi_factor * (1.0 + nc)
        if cols["noi"] is not None:
            new[cols["noi"]] = noi
        elif cols["noi_monthly"] is not None and v["noi_source"] == "column":
            new[cols["noi_monthly"]] = noi / 12.0
        else:
            new["noi"] = noi
    elif rc or ec or vc or nc:
        if strict:
            raise ValueError("%s: %s: no NOI to shock (%s)" % (fn, label, "; ".join(v["issues"])))

    # Interest rate and debt service.
    ads = v["ads"]
    d = s["rate_change"]
    if d:
        rate, principal, years, io = v["rate"], v["principal"], v["years"], v["interest_only"]
        if rate is None or principal is None or (years is None and not io):
            raise ValueError(
                "%s: %s: rate_change needs the loan's principal, interest rate and amortization "
                "(columns found: principal=%r, interest_rate=%r, amortization=%r)"
                % (fn, label, cols["principal"], cols["rate"], cols["amort_years"] or cols["amort_months"]
                   or cols["term_years"] or cols["term_months"])
            )
        rate_new = rate + d if s["rate_mode"] == "absolute" else rate * (1.0 + d)
        if rate_new < 0.0:
            notes.append("interest rate floored at 0")
            rate_new = 0.0
        if rate_new > 1.0:
            raise ValueError("%s: %s: shocked interest rate %r is above 100 %%" % (fn, label, rate_new))
        # The unshocked payment is the same in every scenario: kept with the extraction.
        calc_old = v.get("calc_ads")
        if calc_old is None:
            calc_old = finance.annual_debt_service(principal, rate, years, interest_only=io)
            v["calc_ads"] = calc_old
        calc_new = finance.annual_debt_service(principal, rate_new, years, interest_only=io)
        # A stored debt service stays the base: it moves by the ratio of recomputed payments.
        if ads is not None and v["ads_source"] == "column" and calc_old > 0.0:
            ads = ads * calc_new / calc_old
        else:
            ads = calc_new
        new[cols["rate"]] = rate_new / scale["rate"]
        if cols["ads"] is not None:
            new[cols["ads"]] = ads
        elif cols["ads_monthly"] is not None and v["ads_source"] == "column":
            new[cols["ads_monthly"]] = ads / 12.0
        else:
            new["annual_debt_service"] = ads
    elif ads is not None and v["ads_source"] == "derived":
        new["annual_debt_service"] = ads

    dscr_col = cols["dscr"] or "dscr"
    new[dscr_col] = noi / ads if (noi is not None and ads is not None and ads > 0.0) else None
    if notes:
        new["scenario_notes"] = "; ".join(notes)
    return new, noi, ads


def apply_shocks(rows, noi_change=0.0, revenue_change=0.0, expense_change=0.0, vacancy_change=0.0,
                 rate_change=0.0, rate_mode="absolute", strict=False):
    """Shocked copies of the rows, with NOI, debt service and DSCR recomputed.

    Args: rows: list of dicts (one per property); the shocks as in the module doc;
        rate_mode: "absolute" or "relative"; strict: raise instead of approximating.
    Returns: new list of new dicts.
    Example: apply_shocks([{"noi": 100.0, "annual_debt_service": 80.0}], noi_change=-0.2)[0]["dscr"] -> 1.0
    """
    fn = "apply_shocks()"
    rows = portfolio._rows_list(rows, fn)
    s = _normalize(fn, noi_change, revenue_change, expense_change, vacancy_change, rate_change, rate_mode)
    res = portfolio._resolve(rows)
    return [_shock_row(r, res, s, strict, fn, i)[0] for i, r in enumerate(rows)]


# Rows already resolved and extracted, most recent first, each with a copy of the rows it
# was made from: a sweep runs the same script on equal rows once per scenario, and reading
# the columns costs more than shocking them. Comparing rows for equality is cheaper than
# hashing their content.
_PREPARED = []


def _prepared(rows):
    """The resolution of `rows` and each row's `_extract()`, kept for rows of equal content."""
    for kept, res, extracted in _PREPARED:
        try:
            if len(kept) == len(rows) and kept == rows:
                return res, extracted
        except Exception:  # noqa: BLE001 - a cell that cannot be compared: compute afresh
            break
    res = portfolio._resolve(rows)
    extracted = [portfolio._extract(r, res) for r in rows]
    _PREPARED.insert(0, ([dict(r) for r in rows], res, extracted))
    del _PREPARED[4:]
    return res, extracted


def shocked_metrics(rows, noi_change=0.0, revenue_change=0.0, expense_change=0.0, vacancy_change=0.0,
                    rate_change=0.0, rate_mode="absolute", approve=1.25, review=1.15, strict=False):
    """Per-property DSCR under shocks: the columns property_metrics(apply_shocks(...)) gives
    for them, computed without re-reading the shocked rows (fast when called per scenario).

    Args: rows: list of dicts; the shocks as in apply_shocks(); approve/review:
        classify_dscr thresholds; strict: as apply_shocks(). Rows without NOI or debt
        service are left out, as property_metrics() skips them.
    Returns: list of dicts {property_id?, property_name, property_type?, noi,
        annual_debt_service, dscr, verdict, band}.
    Example: shocked_metrics([{"name": "A", "noi": 100.0, "annual_debt_service": 80.0}], noi_change=-0.2)[0]["dscr"] -> 1.0
    """
    fn = "shocked_metrics()"
    rows = portfolio._rows_list(rows, fn)
    s = _normalize(fn, noi_change, revenue_change, expense_change, vacancy_change, rate_change, rate_mode)
    res, extracted = _prepared(rows)
    cols = res["cols"]
    monthly_noi = cols["noi"] is None and cols["noi_monthly"] is not None
    monthly_ads = cols["ads"] is None and cols["ads_monthly"] is not None
    out = []
    for i, row in enumerate(rows):
        v = extracted[i]
        _, noi, ads = _shock_row(row, res, s, strict, fn, i, v)
        if noi is None or ads is None or ads <= 0.0:
            continue
        # What property_metrics() reads back from a monthly column is 12 x (x / 12).
        if monthly_noi and v["noi_source"] == "column":
            noi = 12.0 * (noi / 12.0)
        if monthly_ads and v["ads_source"] == "column" and s["rate_change"]:
            ads = 12.0 * (ads / 12.0)
        out.append(portfolio._dscr_row(row, cols, portfolio._label(row, res, i), noi, ads, approve, review))
    return out


def _scenario_args(fn, scenario):
    if not isinstance(scenario, dict):
        raise ValueError("%s: a scenario must be a dict like {'name': 'stress', 'noi_change': -0.2}, got %r"
                         % (fn, scenario))
    for k in scenario:
        low = str(k).lower()
        looks_like_shock = "change" in low or "shock" in low or low.startswith(_SHOCK_PREFIXES)
        if looks_like_shock and k not in SHOCKS and k != "rate_mode":
            raise ValueError("%s: unknown shock %r; known: %s" % (fn, k, ", ".join(SHOCKS)))
    args = {k: scenario.get(k) or 0.0 for k in SHOCKS}
    args["rate_mode"] = scenario.get("rate_mode") or "absolute"
    return args


def apply_scenario(rows, scenario, strict=False):
    """apply_shocks() with the shocks taken from a dict; adds "scenario" (its name) to each row.

    Args: rows: list of dicts; scenario: dict with optional name and shock keys (SHOCKS,
        rate_mode); other keys (description ...) are ignored; misspelt shocks raise.
    Returns: new list of new dicts.
    Example: apply_scenario([{"noi": 100.0, "debt_service": 80.0}], {"name": "s", "noi_change": -0.2})[0]["scenario"] -> 's'
    """
    fn = "apply_scenario()"
    args = _scenario_args(fn, scenario)
    out = apply_shocks(rows, strict=strict, **args)
    name = scenario.get("name")
    if name is not None:
        for r in out:
            r["scenario"] = name
    return out


def named_scenarios():
    """The standard scenario set: base, optimistic (+10 % revenue), pessimistic (-10 %
    revenue), stress (-20 % revenue, +5 % expenses).

    Args: none.
    Returns: list of dicts {name, description, <each shock>} (a fresh copy each call).
    Example: [s["name"] for s in named_scenarios()] -> ['base', 'optimistic', 'pessimistic', 'stress']
    """
    return [
        {
            "name": name,
            "description": desc,
            "noi_change": 0.0,
            "revenue_change": rev,
            "expense_change": exp_,
            "vacancy_change": 0.0,
            "rate_change": 0.0,
        }
        for name, desc, rev, exp_ in _NAMED
    ]


def _default_name(scenario, i):
    name = scenario.get("name")
    if name is not None:
        return name
    parts = ["%s=%+g" % (k, scenario[k]) for k in SHOCKS if scenario.get(k)]
    return ", ".join(parts) if parts else "scenario %d" % (i + 1)


def run_scenarios(rows, scenarios=None, approve=1.25, review=1.15, strict=False):
    """Every row under every scenario: the shocked rows, each with "scenario" and "verdict".

    Args: rows: list of dicts; scenarios: list of scenario dicts (default named_scenarios());
        approve/review: classify_dscr thresholds; strict: as apply_shocks().
    Returns: flat list of new dicts, scenario by scenario.
    Example: len(run_scenarios([{"noi": 100.0, "annual_debt_service": 80.0}])) -> 4
    """
    fn = "run_scenarios()"
    rows = portfolio._rows_list(rows, fn)
    if scenarios is None:
        scenarios = named_scenarios()
    res = portfolio._resolve(rows)
    dscr_col = res["cols"]["dscr"] or "dscr"
    out = []
    for i, sc in enumerate(scenarios):
        args = _scenario_args(fn, sc)
        s = _normalize(fn, **args)
        name = _default_name(sc, i)
        for j, r in enumerate(rows):
            new = _shock_row(r, res, s, strict, fn, j)[0]
            new["scenario"] = name
            d = new.get(dscr_col)
            new["verdict"] = finance.classify_dscr(d, approve, review) if d is not None else None
            out.append(new)
    return out


def stress_test(rows, scenarios=None, approve=1.25, review=1.15, strict=False):
    """Compact per-scenario, per-property table: DSCR and verdict under each scenario.

    Args: as run_scenarios().
    Returns: list of dicts {scenario, property_id?, property_name, noi, annual_debt_service,
        dscr, verdict, base_dscr, dscr_change}; base_dscr is the unshocked DSCR.
    Example: stress_test([{"name": "A", "noi": 100.0, "annual_debt_service": 80.0}])[3]["dscr"] -> 1.0
    """
    fn = "stress_test()"
    rows = portfolio._rows_list(rows, fn)
    if scenarios is None:
        scenarios = named_scenarios()
    res = portfolio._resolve(rows)
    cols = res["cols"]
    base = []
    for j, r in enumerate(rows):
        v = portfolio._extract(r, res)
        ok = v["noi"] is not None and v["ads"] is not None and v["ads"] > 0.0
        base.append(v["noi"] / v["ads"] if ok else None)
    out = []
    for i, sc in enumerate(scenarios):
        args = _scenario_args(fn, sc)
        s = _normalize(fn, **args)
        name = _default_name(sc, i)
        for j, r in enumerate(rows):
            new, noi, ads = _shock_row(r, res, s, strict, fn, j)
            d = new.get(cols["dscr"] or "dscr")
            row = {"scenario": name}
            if cols["id"] is not None:
                row["property_id"] = r.get(cols["id"])
            row["property_name"] = portfolio._label(r, res, j)
            row["noi"] = noi
            row["annual_debt_service"] = ads
            row["dscr"] = d
            row["verdict"] = finance.classify_dscr(d, approve, review) if d is not None else None
            row["base_dscr"] = base[j]
            row["dscr_change"] = d - base[j] if (d is not None and base[j] is not None) else None
            if "scenario_notes" in new:
                row["scenario_notes"] = new["scenario_notes"]
            out.append(row)
    return out


def _pct_label(x):
    s = ("%.2f" % (x * 100.0)).rstrip("0").rstrip(".")
    return s


def noi_stress_test(rows, declines=(0.10, 0.20, 0.30), include_base=True, approve=1.25, review=1.15):
    """The common "NOI down 10 / 20 / 30 %" test: stress_test() with one scenario per decline.

    Args: rows: list of dicts; declines: positive fractions (0.1 = NOI 10 % lower);
        include_base: add the unshocked "base" scenario first; approve/review: thresholds.
    Returns: stress_test() rows; scenarios are named "base", "NOI -10%", "NOI -20%", ...
    Example: [r["scenario"] for r in noi_stress_test([{"noi": 1.0, "debt_service": 1.0}])] -> ['base', 'NOI -10%', 'NOI -20%', 'NOI -30%']
    """
    fn = "noi_stress_test()"
    scenarios = [{"name": "base"}] if include_base else []
    for d in declines:
        x = _shock_value(fn, "decline", d, -1e6, 1.0)
        scenarios.append({"name": "NOI %s%%" % (("-" if x >= 0 else "+") + _pct_label(abs(x))), "noi_change": -x})
    return stress_test(rows, scenarios, approve, review)


def scenario_summary(scenario_rows, worst=1):
    """Per-scenario portfolio summary of run_scenarios() or stress_test() rows.

    Args: scenario_rows: rows with scenario, dscr, verdict, noi, annual_debt_service;
        worst: weakest assets to name per scenario.
    Returns: list of dicts {scenario, count, approve, review, reject, weighted_dscr,
        average_dscr, min_dscr, worst} in scenario order.
    Example: scenario_summary(stress_test(rows))
    """
    rows = portfolio._rows_list(scenario_rows, "scenario_summary()")
    res = portfolio._resolve(rows)
    dscr_col = res["cols"]["dscr"] or "dscr"
    order, groups = [], {}
    for i, r in enumerate(rows):
        name = r.get("scenario")
        if name not in groups:
            groups[name] = []
            order.append(name)
        d = portfolio._to_float(r.get(dscr_col))
        if d is None:
            continue
        v = portfolio._extract(r, res)
        groups[name].append(
            {
                "property_name": portfolio._label(r, res, i),
                "noi": v["noi"],
                "annual_debt_service": v["ads"],
                "dscr": d,
                "verdict": r.get("verdict"),
            }
        )
    out = []
    for name in order:
        s = portfolio.summary(groups[name], worst)
        out.append(
            {
                "scenario": name,
                "count": s["count"],
                "approve": s["verdicts"].get("approve", 0),
                "review": s["verdicts"].get("review", 0),
                "reject": s["verdicts"].get("reject", 0),
                "weighted_dscr": s["weighted_dscr"],
                "average_dscr": s["average_dscr"],
                "min_dscr": s["min_dscr"],
                "worst": [w["property_name"] for w in s["worst"]],
            }
        )
    return out


def breakeven_noi_change(rows, threshold=1.0):
    """Per property, the NOI change at which DSCR falls to `threshold`: threshold / dscr - 1.

    Args: rows: list of dicts (one per property); threshold: DSCR level (1.0 = break-even).
    Returns: list of {property_name, dscr, threshold, breakeven_noi_change} (-0.25: NOI can
        fall 25 %; None when DSCR <= 0).
    Example: breakeven_noi_change([{"name": "A", "noi": 125.0, "debt_service": 100.0}])[0]["breakeven_noi_change"] -> -0.2
    """
    fn = "breakeven_noi_change()"
    t = finance._positive(fn, "threshold", threshold)
    out = []
    for m in portfolio.property_metrics(rows):
        d = m["dscr"]
        out.append(
            {
                "property_name": m["property_name"],
                "dscr": d,
                "threshold": t,
                "breakeven_noi_change": t / d - 1.0 if d > 0.0 else None,
            }
        )
    return out


def steps(start, stop, step):
    """Inclusive range of floats, rounded to 10 decimals to hide binary noise.

    Args: start, stop, step (step != 0, pointing from start to stop).
    Returns: list of floats.
    Example: steps(-0.3, 0.1, 0.1) -> [-0.3, -0.2, -0.1, 0.0, 0.1]
    """
    fn = "steps()"
    a = finance._num(fn, "start", start)
    b = finance._num(fn, "stop", stop)
    h = finance._num(fn, "step", step)
    if h == 0.0 or (b - a) * h < 0.0:
        raise ValueError("%s: step %r does not lead from %r to %r" % (fn, step, start, stop))
    n = int(math.floor((b - a) / h + 1e-9))
    if n > 1_000_000:
        raise ValueError("%s: %d steps is too many" % (fn, n + 1))
    return [round(a + k * h, 10) + 0.0 for k in range(n + 1)]


def grid(**axes):
    """All combinations of shock values, as named scenario dicts.

    Args: keyword per shock (SHOCKS) -> list of values, e.g. noi_change=steps(-0.3, 0, 0.1).
    Returns: list of scenario dicts.
    Example: len(grid(noi_change=[0, -0.1, -0.2], rate_change=[0, 0.01])) -> 6
    """
    fn = "grid()"
    for k in axes:
        if k not in SHOCKS and k != "rate_mode":
            raise ValueError("%s: unknown shock %r; known: %s" % (fn, k, ", ".join(SHOCKS)))
    combos = [{}]
    for k, values in axes.items():
        if k == "rate_mode":
            continue
        if isinstance(values, (int, float)):
            values = [values]
        combos = [dict(c, **{k: finance._num(fn, k, v)}) for c in combos for v in values]
    out = []
    for c in combos:
        if "rate_mode" in axes:
            c["rate_mode"] = axes["rate_mode"]
        c["name"] = ", ".join("%s=%+g" % (k, c[k]) for k in SHOCKS if k in c) or "base"
        out.append(c)
    return out
