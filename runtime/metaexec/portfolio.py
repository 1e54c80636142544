"""Portfolio metrics from query rows (list of dicts), whatever the schema calls its columns.

Columns are matched ignoring case, `_`, spaces and table prefixes. NOI: a column (noi,
net_operating_income, monthly_noi * 12, ...) or revenue - operating_expenses, where revenue
is gross_revenue as collected, or potential revenue * (1 - vacancy) when there is a
vacancy_rate or gross_potential_revenue column. Debt service: annual_debt_service /
debt_service, monthly_debt_service * 12, or loan terms (principal or loan_amount,
interest_rate, amortization_years or _months, interest_only). Percent-valued rates and
occupancies (values > 1) are divided by 100. `resolution` reports the columns used.
"""

import math

try:
    from . import finance
except ImportError:  # imported as a plain module, outside the package
    import finance

__all__ = [
    "resolve_columns",
    "property_metrics",
    "summary",
    "analyze",
    "outliers",
    "compare_to_peers",
    "find_property",
    "similar_properties",
    "rank",
    "loan_capacity",
    "maturing_loans",
    "monthly_trend",
]

# Candidate column names per role, normalized (lower case, letters and digits only), best first.
_CANDIDATES = {
    "id": ("propertyid", "id", "assetid", "propid", "buildingid", "siteid"),
    "name": (
        "propertyname", "name", "property", "assetname", "buildingname", "propname",
        "sitename", "title",
    ),
    "type": ("propertytype", "type", "assettype", "usetype", "propertyclass"),
    "noi": (
        "noi", "netoperatingincome", "annualnoi", "noiannual", "netopincome",
        "annualnetoperatingincome", "noiusd",
    ),
    "noi_monthly": ("monthlynoi", "noimonthly", "monthlynetoperatingincome"),
    "potential_revenue": (
        "grosspotentialrevenue", "potentialgrossincome", "grosspotentialrent",
        "potentialgrossrevenue", "grosspotentialincome", "potentialrevenue",
        "potentialrent", "gpr", "pgi",
    ),
    "revenue": (
        "grossrevenue", "effectivegrossincome", "egi", "totalrevenue", "revenue",
        "grossincome", "totalincome", "rentalincome", "rentalrevenue", "annualrevenue",
        "operatingrevenue", "grossrent", "income", "rent",
    ),
    "expenses": (
        "operatingexpenses", "opex", "totaloperatingexpenses", "operatingexpense",
        "expenses", "totalexpenses", "annualexpenses", "operatingcosts", "annualopex",
    ),
    "vacancy": ("vacancyrate", "vacancy", "vacancypct", "vacancypercent", "vacancyratio"),
    "occupancy": (
        "occupancyrate", "occupancy", "occupancypct", "occupancypercent", "occupiedpct",
        "physicaloccupancy", "economicoccupancy", "leasedpct", "leasedrate", "percentleased",
    ),
    "ads": (
        "annualdebtservice", "debtserviceannual", "debtservice", "totaldebtservice",
        "annualds", "ads", "annualdebtpayment", "annualdebtpayments", "annualloanpayment",
        "annualloanpayments", "annualmortgagepayment",
    ),
    "ads_monthly": (
        "monthlydebtservice", "debtservicemonthly", "monthlypayment", "monthlyds",
        "monthlyloanpayment", "monthlymortgagepayment", "monthlydebtpayment",
    ),
    "principal": (
        "principal", "loanamount", "loanprincipal", "principalamount", "originalprincipal",
        "originalloanamount", "loanbalance", "outstandingbalance", "outstandingprincipal",
        "currentbalance", "mortgageamount", "debtamount", "loan", "balance", "debt",
    ),
    "rate": (
        "interestrate", "annualinterestrate", "rate", "annualrate", "noterate", "loanrate",
        "couponrate", "coupon",
    ),
    "amort_years": (
        "amortizationyears", "amortyears", "amortizationperiodyears", "amortizationtermyears",
        "amortization", "amortizationperiod", "amortizationterm",
    ),
    "amort_months": ("amortizationmonths", "amortmonths", "amortizationperiodmonths"),
    "term_years": ("loantermyears", "termyears", "loanterm", "term"),
    "term_months": ("loantermmonths", "termmonths"),
    "interest_only": ("interestonly", "isinterestonly", "io", "interestonlyflag"),
    "value": (
        "propertyvalue", "value", "marketvalue", "appraisedvalue", "valuation",
        "currentvalue", "assetvalue", "estimatedvalue", "purchaseprice", "price",
    ),
    "dscr": ("dscr", "debtservicecoverageratio", "debtcoverageratio", "dcr", "debtservicecoverage"),
    "gla": (
        "totalglasqft", "glasqft", "gla", "totalsqft", "sqft", "squarefeet",
        "totalsquarefeet", "rentablesqft", "netrentablearea", "nra",
    ),
    "maturity": (
        "maturitydate", "maturity", "maturesat", "maturityon", "loanmaturity", "loanmaturitydate",
        "duedate", "maturedate", "matures",
    ),
    "lender": ("lender", "lendername", "bank", "servicer"),
    "period": ("month", "period", "monthstart", "periodstart", "yearmonth", "reportmonth", "date", "asof"),
    "city": ("city", "town"),
    "state": ("state", "region", "province"),
}

_PERCENT_ROLES = ("rate", "vacancy", "occupancy")
_UNITLESS_TERMS = ("amortization", "amortizationperiod", "amortizationterm", "loanterm", "term")
_COLUMN_CACHE = {}


def _norm(key):
    key = str(key)
    dot = key.rfind(".")
    if dot >= 0:
        key = key[dot + 1 :]
    return "".join(ch for ch in key.lower() if ch.isalnum())


def _to_float(x):
    """A number from a cell: int/float/Decimal, or a string like "1,234.50", "$3,200", "95%".
    None for NULL, empty, unparseable or non-finite values."""
    if x is None:
        return None
    t = type(x)
    if t is float:
        return x if x - x == 0.0 else None
    if t is int or t is bool:
        return float(x)
    if t is str:
        s = x.strip().replace(",", "").replace("$", "").replace("_", "").replace(" ", "")
        pct = s.endswith("%")
        if pct:
            s = s[:-1]
        if not s:
            return None
        try:
            v = float(s)
        except ValueError:
            return None
        if v - v != 0.0:
            return None
        return v / 100.0 if pct else v
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if v - v == 0.0 else None


def _truthy(x):
    if x is None:
        return False
    if type(x) is str:
        return x.strip().lower() in ("1", "y", "yes", "true", "t", "io", "interest only")
    return bool(x)


def _rows_list(rows, fn):
    if isinstance(rows, dict):
        return [rows]
    if rows is None or isinstance(rows, (str, bytes)):
        raise ValueError("%s: rows must be a list of dicts, got %r" % (fn, rows))
    rows = list(rows)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError("%s: rows[%d] must be a dict, got %r" % (fn, i, type(row).__name__))
    return rows


def _columns(keys):
    """Role -> column for a tuple of column names (cached: every row of a query has the same)."""
    cached = _COLUMN_CACHE.get(keys)
    if cached is not None:
        return cached
    by_norm = {}
    for k in keys:
        by_norm.setdefault(_norm(k), k)
    cols = {}
    for role, candidates in _CANDIDATES.items():
        cols[role] = None
        for c in candidates:
            if c in by_norm:
                cols[role] = by_norm[c]
                break
    # One column must not play two roles (e.g. "name" as both name and type).
    if cols["name"] is not None and cols["name"] == cols["id"]:
        cols["name"] = None
    if len(_COLUMN_CACHE) > 64:
        _COLUMN_CACHE.clear()
    _COLUMN_CACHE[keys] = cols
    return cols


def _resolve(rows):
    """Internal resolution: the column per role and the unit scale of percent-like columns."""
    keys = []
    seen = set()
    for row in rows[:20]:
        for k in row:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    cols = _columns(tuple(keys))
    scale = {}
    for role in _PERCENT_ROLES:
        c = cols[role]
        scale[role] = 1.0
        if c is not None:
            for row in rows:
                v = _to_float(row.get(c))
                if v is not None and abs(v) > 1.0:
                    scale[role] = 0.01
                    break
    # Unit-less amortization/term columns holding values > 50 are months.
    for role in ("amort_years", "term_years"):
        c = cols[role]
        scale[role] = 1.0
        if c is not None and _norm(c) in _UNITLESS_TERMS:
            vals = [_to_float(row.get(c)) for row in rows]
            vals = [v for v in vals if v is not None]
            if vals and min(vals) > 50.0:
                scale[role] = 1.0 / 12.0
    return {"cols": cols, "scale": scale}


def _extract(row, res):
    """Numbers of one row by role (None where unknown), with NOI and debt service derived
    when no column holds them. Adds "noi_source"/"ads_source" and "issues"."""
    cols, scale = res["cols"], res["scale"]

    def num(role):
        c = cols[role]
        return None if c is None else _to_float(row.get(c))

    out = {"issues": []}
    vac = num("vacancy")
    if vac is not None:
        vac *= scale["vacancy"]
    else:
        occ = num("occupancy")
        if occ is not None:
            occ *= scale["occupancy"]
            vac = 1.0 - occ
    out["vacancy"] = vac
    pot = num("potential_revenue")
    rev = num("revenue")
    exp_ = num("expenses")
    out["potential_revenue"] = pot
    out["revenue"] = rev
    out["expenses"] = exp_
    eff = None
    if pot is not None:
        eff = pot * (1.0 - (vac or 0.0))
    elif rev is not None:
        eff = rev * (1.0 - (vac or 0.0)) if cols["vacancy"] is not None else rev
    out["effective_revenue"] = eff

    noi = num("noi")
    out["noi_source"] = "column"
    if noi is None and cols["noi_monthly"] is not None:
        m = num("noi_monthly")
        noi = None if m is None else 12.0 * m
    if noi is None:
        if eff is not None and exp_ is not None:
            noi = eff - exp_
            out["noi_source"] = "derived"
        else:
            out["noi_source"] = None
            out["issues"].append("no NOI: no NOI column value and no revenue and expenses")
    out["noi"] = noi

    principal = num("principal")
    rate = num("rate")
    if rate is not None:
        rate *= scale["rate"]
    years = num("amort_years")
    if years is not None:
        years *= scale["amort_years"]
    else:
        m = num("amort_months")
        if m is not None:
            years = m / 12.0
        else:
            years = num("term_years")
            if years is not None:
                years *= scale["term_years"]
            else:
                m = num("term_months")
                years = None if m is None else m / 12.0
    io = cols["interest_only"] is not None and _truthy(row.get(cols["interest_only"]))
    out["principal"] = principal
    out["rate"] = rate
    out["years"] = years
    out["interest_only"] = io

    ads = num("ads")
    out["ads_source"] = "column"
    if ads is None and cols["ads_monthly"] is not None:
        m = num("ads_monthly")
        ads = None if m is None else 12.0 * m
    if ads is None:
        ads = _loan_ads(principal, rate, years, io, out["issues"])
        out["ads_source"] = "derived" if ads is not None else None
    out["ads"] = ads
    out["value"] = num("value")
    out["dscr_stored"] = num("dscr")
    return out


def _loan_ads(principal, rate, years, io, issues):
    if principal is None or rate is None or (years is None and not io):
        missing = [n for n, v in (("principal", principal), ("interest rate", rate)) if v is None]
        if years is None and not io:
            missing.append("amortization")
        issues.append("no debt service: no debt service column value and no loan %s" % ", ".join(missing))
        return None
    try:
        return finance.annual_debt_service(principal, rate, years, interest_only=io)
    except ValueError as exc:
        issues.append("no debt service: %s" % exc)
        return None


def _label(row, res, index):
    cols = res["cols"]
    for role in ("name", "id"):
        c = cols[role]
        if c is not None and row.get(c) is not None:
            return row.get(c)
    return "row %d" % (index + 1)


def _describe(res):
    """The public, readable form of a resolution."""
    cols, scale = res["cols"], res["scale"]
    d = {}

    def pct(role):
        c = cols[role]
        return c if scale.get(role, 1.0) == 1.0 else "%s / 100 (stored as percent)" % c

    d["property_name"] = cols["name"] or cols["id"]
    d["property_id"] = cols["id"]
    if cols["vacancy"] is not None:
        vac = pct("vacancy")
    elif cols["occupancy"] is not None:
        vac = "1 - %s" % pct("occupancy")
    else:
        vac = None
    if cols["potential_revenue"] is not None:
        rev = "%s * (1 - %s)" % (cols["potential_revenue"], vac) if vac else cols["potential_revenue"]
    elif cols["revenue"] is not None:
        rev = "%s * (1 - %s)" % (cols["revenue"], vac) if cols["vacancy"] is not None else cols["revenue"]
    else:
        rev = None
    derived = "%s - %s" % (rev, cols["expenses"]) if rev and cols["expenses"] else None
    if cols["noi"] is not None:
        d["noi"] = cols["noi"]
    elif cols["noi_monthly"] is not None:
        d["noi"] = "%s * 12" % cols["noi_monthly"]
    else:
        d["noi"] = derived
    if d["noi"] is not None and derived is not None and d["noi"] != derived:
        d["noi_when_empty"] = derived
    if cols["amort_years"] is not None:
        amort = cols["amort_years"] if res["scale"]["amort_years"] == 1.0 else "%s / 12 (months)" % cols["amort_years"]
    elif cols["amort_months"] is not None:
        amort = "%s / 12" % cols["amort_months"]
    elif cols["term_years"] is not None:
        amort = "%s (loan term used as amortization)" % (
            cols["term_years"] if res["scale"]["term_years"] == 1.0 else "%s / 12" % cols["term_years"]
        )
    elif cols["term_months"] is not None:
        amort = "%s / 12 (loan term used as amortization)" % cols["term_months"]
    else:
        amort = None
    loan = None
    if cols["principal"] is not None and cols["rate"] is not None and (amort or cols["interest_only"]):
        loan = "annual_debt_service(%s, %s, %s%s)" % (
            cols["principal"],
            pct("rate"),
            amort,
            ", interest_only=%s" % cols["interest_only"] if cols["interest_only"] else "",
        )
    if cols["ads"] is not None:
        d["annual_debt_service"] = cols["ads"]
    elif cols["ads_monthly"] is not None:
        d["annual_debt_service"] = "%s * 12" % cols["ads_monthly"]
    else:
        d["annual_debt_service"] = loan
    if d["annual_debt_service"] is not None and loan is not None and d["annual_debt_service"] != loan:
        d["annual_debt_service_when_empty"] = loan
    d["loan_amount"] = cols["principal"]
    d["interest_rate"] = pct("rate") if cols["rate"] else None
    d["amortization_years"] = amort
    d["value"] = cols["value"]
    d["stored_dscr"] = cols["dscr"]
    return d


def resolve_columns(rows):
    """Which columns hold the name, NOI, debt service, loan terms, value ... of these rows.

    Args: rows: list of dicts (or one dict) as returned by db.query().
    Returns: dict role -> column or formula (None if not found), e.g. {"property_name":
        "name", "noi": "gross_revenue - operating_expenses", ...}.
    Example: resolve_columns([{"name": "A", "net_operating_income": 1, "debt_service": 1}])["noi"] -> 'net_operating_income'
    """
    rows = _rows_list(rows, "resolve_columns()")
    return _describe(_resolve(rows))


def _dscr_row(row, cols, label, noi, ads, approve, review):
    """The DSCR columns of one property's metrics: id, name, type, NOI, debt service, DSCR,
    verdict and band."""
    d = finance.dscr(noi, ads)
    m = {}
    if cols["id"] is not None:
        m["property_id"] = row.get(cols["id"])
    m["property_name"] = label
    if cols["type"] is not None:
        m["property_type"] = row.get(cols["type"])
    m["noi"] = noi
    m["annual_debt_service"] = ads
    m["dscr"] = d
    m["verdict"] = finance.classify_dscr(d, approve, review)
    m["band"] = finance.dscr_band(d)
    return m


def _metrics(rows, approve, review, keep, on_error, fn):
    rows = _rows_list(rows, fn)
    if on_error not in ("skip", "raise"):
        raise ValueError("%s: on_error must be 'skip' or 'raise', got %r" % (fn, on_error))
    res = _resolve(rows)
    cols = res["cols"]
    out, skipped = [], []
    for i, row in enumerate(rows):
        v = _extract(row, res)
        label = _label(row, res, i)
        noi, ads = v["noi"], v["ads"]
        problem = None
        if noi is None or ads is None:
            problem = "; ".join(v["issues"])
        elif ads <= 0.0:
            problem = "debt service is %r: no debt, so no DSCR" % ads
        if problem:
            if on_error == "raise":
                raise ValueError("%s: %s: %s" % (fn, label, problem))
            skipped.append({"property_name": label, "reason": problem})
            continue
        m = _dscr_row(row, cols, label, noi, ads, approve, review)
        if v["principal"] is not None:
            m["loan_amount"] = v["principal"]
            if v["principal"] > 0.0:
                m["debt_yield"] = noi / v["principal"]
        if v["rate"] is not None:
            m["interest_rate"] = v["rate"]
        if v["value"] is not None and v["value"] > 0.0:
            m["value"] = v["value"]
            m["cap_rate"] = noi / v["value"]
            if v["principal"] is not None:
                m["ltv"] = v["principal"] / v["value"]
        if v["vacancy"] is not None:
            m["occupancy_rate"] = 1.0 - v["vacancy"]
        if keep:
            for k in keep:
                m[k] = row.get(k)
        out.append(m)
        m["_stored_dscr"] = v["dscr_stored"]
    return out, skipped, res


def _pop_stored(metrics):
    return [m.pop("_stored_dscr", None) for m in metrics]


def property_metrics(rows, approve=1.25, review=1.15, keep=None, on_error="skip"):
    """Per-property NOI, debt service, DSCR (recomputed, never a stored dscr), verdict, band.

    Args: rows: list of dicts, one per property; approve/review: classify_dscr thresholds;
        keep: extra column names to copy; on_error: "skip" rows without NOI or debt service
        (see analyze() for the list) or "raise" ValueError.
    Returns: list of dicts {property_id?, property_name, property_type?, noi,
        annual_debt_service, dscr, verdict, band, loan_amount?, interest_rate?, debt_yield?,
        value?, cap_rate?, ltv?, occupancy_rate?}.
    Example: property_metrics([{"name": "A", "noi": 125, "debt_service": 100}])[0]["verdict"] -> 'approve'
    """
    out, _, _ = _metrics(rows, approve, review, keep, on_error, "property_metrics()")
    _pop_stored(out)
    return out


def _quantile(sorted_vals, q):
    """Linear interpolation between order statistics (numpy's default)."""
    n = len(sorted_vals)
    if n == 0:
        return None
    pos = (n - 1) * q
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def summary(metrics, worst=3):
    """Portfolio summary of property_metrics() rows.

    Args: metrics: rows with noi, annual_debt_service, dscr, verdict, band; worst: how many
        weakest assets to list.
    Returns: dict {count, verdicts {approve, review, reject}, bands {green, yellow, red},
        total_noi, total_debt_service, weighted_dscr (= total NOI / total debt service),
        average_dscr, median_dscr, min_dscr, max_dscr, worst [{property_name, dscr, verdict}]}.
    Example: summary(property_metrics(rows))["weighted_dscr"]
    """
    metrics = _rows_list(metrics, "summary()")
    verdicts = {"approve": 0, "review": 0, "reject": 0}
    bands = {"green": 0, "yellow": 0, "red": 0}
    total_noi = total_ads = 0.0
    vals = []
    for m in metrics:
        d = m.get("dscr")
        if d is None:
            continue
        vals.append(d)
        v = m.get("verdict")
        if v is not None:
            verdicts[v] = verdicts.get(v, 0) + 1
        b = m.get("band")
        if b is not None:
            bands[b] = bands.get(b, 0) + 1
        total_noi += m.get("noi") or 0.0
        total_ads += m.get("annual_debt_service") or 0.0
    s = sorted(vals)
    ranked = sorted((m for m in metrics if m.get("dscr") is not None), key=lambda m: m["dscr"])
    return {
        "count": len(vals),
        "verdicts": verdicts,
        "bands": bands,
        "total_noi": total_noi,
        "total_debt_service": total_ads,
        "weighted_dscr": total_noi / total_ads if total_ads > 0.0 else None,
        "average_dscr": sum(vals) / len(vals) if vals else None,
        "median_dscr": _quantile(s, 0.5),
        "min_dscr": s[0] if s else None,
        "max_dscr": s[-1] if s else None,
        "worst": [
            {"property_name": m.get("property_name"), "dscr": m["dscr"], "verdict": m.get("verdict")}
            for m in ranked[: max(0, int(worst))]
        ],
    }


def outliers(metrics, field="dscr", k=1.5):
    """Rows whose `field` lies outside Tukey's fences [Q1 - k*IQR, Q3 + k*IQR].

    Args: metrics: list of dicts; field: numeric key; k: fence width (1.5 usual, 3 extreme).
    Returns: list of {property_name, field, value, direction "low"/"high", low_fence,
        high_fence}; [] with fewer than 4 values.
    Example: outliers([{"property_name": c, "dscr": v} for c, v in zip("abcde", [1.2, 1.3, 1.25, 1.28, 0.2])])[0]["property_name"] -> 'e'
    """
    metrics = _rows_list(metrics, "outliers()")
    vals = sorted(v for v in (_to_float(m.get(field)) for m in metrics) if v is not None)
    if len(vals) < 4:
        return []
    q1, q3 = _quantile(vals, 0.25), _quantile(vals, 0.75)
    iqr = q3 - q1
    lo, hi = q1 - k * iqr, q3 + k * iqr
    out = []
    for m in metrics:
        v = _to_float(m.get(field))
        if v is None or lo <= v <= hi:
            continue
        out.append(
            {
                "property_name": m.get("property_name"),
                "field": field,
                "value": v,
                "direction": "low" if v < lo else "high",
                "low_fence": lo,
                "high_fence": hi,
            }
        )
    return out


def compare_to_peers(metrics, field="dscr", group_by=None):
    """Each property's `field` against its peers' median (portfolio, or same `group_by` value).

    Args: metrics: list of dicts; field: numeric key; group_by: key or None.
    Returns: list of {property_name, group?, value, peer_median, difference, ratio_to_median,
        rank (1 = highest), peers (group size)}.
    Example: compare_to_peers([{"property_name": "a", "dscr": 1.0}, {"property_name": "b", "dscr": 2.0}])[1]["difference"] -> 0.5
    """
    metrics = _rows_list(metrics, "compare_to_peers()")
    groups = {}
    for m in metrics:
        v = _to_float(m.get(field))
        if v is not None:
            groups.setdefault(m.get(group_by) if group_by else None, []).append(v)
    stats = {g: sorted(vs) for g, vs in groups.items()}
    out = []
    for m in metrics:
        v = _to_float(m.get(field))
        if v is None:
            continue
        g = m.get(group_by) if group_by else None
        s = stats[g]
        med = _quantile(s, 0.5)
        row = {"property_name": m.get("property_name")}
        if group_by:
            row["group"] = g
        row["value"] = v
        row["peer_median"] = med
        row["difference"] = v - med
        row["ratio_to_median"] = v / med if med else None
        row["rank"] = 1 + sum(1 for x in s if x > v)
        row["peers"] = len(s)
        out.append(row)
    return out


def find_property(rows, name):
    """The row whose property name matches `name` (case-insensitive; exact, else a unique
    substring match).

    Args: rows: list of dicts; name: str.
    Returns: the matching row.
    Raises: ValueError when nothing or several rows match (the message lists candidates).
    Example: find_property([{"property_name": "West Oaks Mall"}], "west oaks")["property_name"] -> 'West Oaks Mall'
    """
    rows = _rows_list(rows, "find_property()")
    res = _resolve(rows)
    want = str(name).strip().lower()
    labels = [str(_label(r, res, i)) for i, r in enumerate(rows)]
    exact = [r for r, lab in zip(rows, labels) if lab.strip().lower() == want]
    if len(exact) == 1:
        return exact[0]
    part = exact or [r for r, lab in zip(rows, labels) if want in lab.lower()]
    if len(part) == 1:
        return part[0]
    if not part:
        raise ValueError(
            "find_property(): no property matches %r; known: %s"
            % (name, ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else ""))
        )
    raise ValueError(
        "find_property(): %d properties match %r: %s"
        % (len(part), name, ", ".join(str(_label(r, res, 0)) for r in part[:20]))
    )


def similar_properties(rows, name, n=5):
    """The n properties most like the named one: same type first, then closest GLA (or NOI).

    Args: rows: list of dicts (one per property); name: as find_property(); n: how many.
    Returns: other rows, most similar first.
    Example: similar_properties(rows, "Orlando Fashion Square", 5)
    """
    rows = _rows_list(rows, "similar_properties()")
    target = find_property(rows, name)
    res = _resolve(rows)
    cols = res["cols"]
    t = _extract(target, res)
    t_type = target.get(cols["type"]) if cols["type"] else None
    t_size = _to_float(target.get(cols["gla"])) if cols["gla"] else None
    t_noi = t["noi"]

    def distance(row):
        same = 0 if (cols["type"] and row.get(cols["type"]) == t_type) else 1
        size = _to_float(row.get(cols["gla"])) if cols["gla"] else None
        if t_size and size and t_size > 0 and size > 0:
            return (same, abs(math.log(size / t_size)))
        noi = _extract(row, res)["noi"]
        if t_noi and noi and t_noi > 0 and noi > 0:
            return (same, abs(math.log(noi / t_noi)))
        return (same, math.inf)

    others = [r for r in rows if r is not target]
    others.sort(key=distance)
    return others[: max(0, int(n))]


def analyze(rows, approve=1.25, review=1.15, worst=3, keep=None):
    """A whole DSCR portfolio review in one call (rows without NOI or debt are skipped).

    Args: rows: list of dicts, one per property (e.g. properties JOIN financial_metrics
        JOIN loans); approve/review: classify_dscr thresholds; worst: weakest assets to list;
        keep: extra columns to copy into each property row.
    Returns: dict {properties: property_metrics() rows, summary: summary(), outliers,
        resolution: resolve_columns(), skipped: [{property_name, reason}], warnings: [str]}.
    Example: res = analyze(db.query(sql)); result(res["properties"])
    """
    rows = _rows_list(rows, "analyze()")
    metrics, skipped, res = _metrics(rows, approve, review, keep, "skip", "analyze()")
    stored = _pop_stored(metrics)
    warnings = []
    seen = {}
    for m in metrics:
        key = m.get("property_id", m.get("property_name"))
        seen[key] = seen.get(key, 0) + 1
    dups = [k for k, c in seen.items() if c > 1]
    if dups:
        warnings.append(
            "several rows per property (%s): aggregate or filter (e.g. one fiscal year) first"
            % ", ".join(str(k) for k in dups[:10])
        )
    for m, s in zip(metrics, stored):
        if s is not None and abs(s - m["dscr"]) > 0.0051:
            warnings.append(
                "%s: stored dscr %r differs from NOI / debt service %.4f"
                % (m["property_name"], s, m["dscr"])
            )
    described = _describe(res)
    if not rows:
        warnings.append("no rows: the query returned nothing")
    else:
        columns = ", ".join(str(k) for k in rows[0])
        for role in ("noi", "annual_debt_service"):
            if described[role] is None:
                warnings.append("no column or formula for %s among the columns: %s" % (role, columns))
    for s in skipped:
        warnings.append("%s skipped: %s" % (s["property_name"], s["reason"]))
    return {
        "properties": metrics,
        "summary": summary(metrics, worst),
        "outliers": outliers(metrics, "dscr"),
        "resolution": described,
        "skipped": skipped,
        "warnings": warnings,
    }


# --------------------------------------------------------------------------- everyday questions


def rank(metrics, by, descending=True, limit=None):
    """Rows sorted by one field (rows without a number there last), each with its "rank".

    Args: metrics: list of dicts; by: the field; descending: highest first; limit: keep n.
    Returns: new list of new dicts, "rank" 1, 2, ... (ties share the better rank).
    Example: rank([{"dscr": 1.1}, {"dscr": 1.5}], "dscr")[0]["dscr"] -> 1.5
    """
    rows = _rows_list(metrics, "rank()")
    valued = [(r, _to_float(r.get(by))) for r in rows]
    if rows and all(v is None for _, v in valued):
        raise ValueError("rank(): no row has a number in %r; fields: %s" % (by, ", ".join(map(str, rows[0]))))
    known = sorted((p for p in valued if p[1] is not None), key=lambda p: p[1], reverse=bool(descending))
    out = []
    for i, (r, v) in enumerate(known):
        row = dict(r)
        row["rank"] = i + 1 if i == 0 or v != known[i - 1][1] else out[-1]["rank"]
        out.append(row)
    out += [dict(r, rank=None) for r, v in valued if v is None]
    return out if limit is None else out[: max(0, int(limit))]


def loan_capacity(rows, target_dscr, annual_rate=None, amortization_years=None):
    """The largest loan each property's NOI carries at target_dscr, on its loan's rate and
    amortization (or the ones given), beside the loan it has.

    Args: rows: one dict per property; target_dscr > 0; annual_rate, amortization_years:
        override the loan's terms.
    Returns: dict {properties: [{property_name, noi, interest_rate, amortization_years,
        target_dscr, max_annual_debt_service, max_loan, loan_amount, headroom}], skipped}.
    Example: loan_capacity(rows, 1.3)["properties"][0]["max_loan"]
    """
    rows = _rows_list(rows, "loan_capacity()")
    res = _resolve(rows)
    out, skipped = [], []
    for i, row in enumerate(rows):
        v = _extract(row, res)
        label = _label(row, res, i)
        rate = v["rate"] if annual_rate is None else annual_rate
        years = v["years"] if amortization_years is None else amortization_years
        missing = [n for n, x in (("NOI", v["noi"]), ("interest rate", rate), ("amortization", years)) if x is None]
        if missing and not (v["interest_only"] and years is None and len(missing) == 1):
            skipped.append({"property_name": label, "reason": "no %s" % ", ".join(missing)})
            continue
        size = finance.max_loan_for_dscr(v["noi"], target_dscr, rate, years or 1, v["interest_only"])
        out.append({
            "property_name": label,
            "noi": v["noi"],
            "interest_rate": rate,
            "amortization_years": None if v["interest_only"] else years,
            "target_dscr": float(target_dscr),
            "max_annual_debt_service": max(0.0, v["noi"]) / float(target_dscr),
            "max_loan": size,
            "loan_amount": v["principal"],
            "headroom": None if v["principal"] is None else size - v["principal"],
        })
    return {"properties": out, "skipped": skipped}


def _date_text(value):
    """ISO text of a date-like value: "2029-01-01" for a date, a datetime or ISO text."""
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    text = iso() if callable(iso) else str(value)
    return text.strip()[:10] or None


def maturing_loans(rows, before):
    """The loans that mature before a date, soonest first.

    Args: rows: dicts with a maturity column (maturity_date, maturity, due_date, ...);
        before: a date, or ISO text "2029-01-01" (that day not included).
    Returns: list of dicts {property_name, lender?, loan_amount, interest_rate,
        maturity_date, days_before_cutoff}.
    Example: maturing_loans(rows, "2029-01-01")
    """
    rows = _rows_list(rows, "maturing_loans()")
    cutoff = _date_text(before)
    if cutoff is None or len(cutoff) != 10 or cutoff[4] != "-" or cutoff[7] != "-":
        raise ValueError("maturing_loans(): before must be a date or 'YYYY-MM-DD', got %r" % (before,))
    res = _resolve(rows)
    cols = res["cols"]
    if rows and cols["maturity"] is None:
        raise ValueError("maturing_loans(): no maturity column among: %s" % ", ".join(map(str, rows[0])))
    out = []
    for i, row in enumerate(rows):
        due = _date_text(row.get(cols["maturity"]))
        if due is None or due >= cutoff:
            continue
        v = _extract(row, res)
        m = {"property_name": _label(row, res, i)}
        if cols["lender"] is not None:
            m["lender"] = row.get(cols["lender"])
        m["loan_amount"] = v["principal"]
        m["interest_rate"] = v["rate"]
        m["maturity_date"] = due
        m["days_before_cutoff"] = _days(due, cutoff)
        out.append(m)
    out.sort(key=lambda m: m["maturity_date"])
    return out


def _days(a, b):
    """Days from ISO date a to ISO date b (proleptic Gregorian, no datetime needed)."""

    def ordinal(text):
        y, m, d = int(text[:4]), int(text[5:7]), int(text[8:10])
        if m < 3:
            y, m = y - 1, m + 12
        return 365 * y + y // 4 - y // 100 + y // 400 + (153 * (m - 3) + 2) // 5 + d

    return ordinal(b) - ordinal(a)


def monthly_trend(rows, field="noi"):
    """Per property, the monthly series of one figure in period order, and how it moved.

    Args: rows: dicts with a property name, a period (month, period, date, ...) and the
        figure; field: "noi", "revenue", "expenses", "occupancy" or a column name.
    Returns: dict {series: [{property_name, month, <field>}], summary: [{property_name,
        months, first_month, last_month, first, last, change, change_pct, average, low,
        low_month, high, high_month, trend_per_month, last_12, prior_12, yoy_change_pct}]}
        (trend: least-squares slope; the 12-month sums need 24 months).
    Example: monthly_trend(db.query(sql), "noi")["summary"][0]["change_pct"]
    """
    rows = _rows_list(rows, "monthly_trend()")
    res = _resolve(rows)
    cols = res["cols"]
    column = cols.get(field) if field in _CANDIDATES else None
    if column is None and rows and field in rows[0]:
        column = field
    if rows and (column is None or cols["period"] is None):
        raise ValueError(
            "monthly_trend(): need a period column and %r among: %s" % (field, ", ".join(map(str, rows[0])))
        )
    scale = res["scale"].get(field, 1.0)
    by_property = {}
    for i, row in enumerate(rows):
        value = _to_float(row.get(column))
        period = _date_text(row.get(cols["period"]))
        if value is None or period is None:
            continue
        by_property.setdefault(_label(row, res, i), []).append((period[:7], value * scale))
    series, summary_rows = [], []
    for label, points in by_property.items():
        points.sort()
        for month, value in points:
            series.append({"property_name": label, "month": month, field: value})
        values = [v for _, v in points]
        n = len(values)
        mean_x, mean_y = (n - 1) / 2.0, sum(values) / n
        sxx = sum((i - mean_x) ** 2 for i in range(n))
        slope = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / sxx if sxx else 0.0
        low = min(points, key=lambda p: p[1])
        high = max(points, key=lambda p: p[1])
        first, last = values[0], values[-1]
        summary_rows.append({
            "property_name": label,
            "months": n,
            "first_month": points[0][0],
            "last_month": points[-1][0],
            "first": first,
            "last": last,
            "change": last - first,
            "change_pct": (last - first) / abs(first) if first else None,
            "average": mean_y,
            "low": low[1],
            "low_month": low[0],
            "high": high[1],
            "high_month": high[0],
            "trend_per_month": slope,
            "last_12": sum(values[-12:]) if n >= 24 else None,
            "prior_12": sum(values[-24:-12]) if n >= 24 else None,
            "yoy_change_pct": (sum(values[-12:]) - sum(values[-24:-12])) / abs(sum(values[-24:-12]))
            if n >= 24 and sum(values[-24:-12]) else None,
        })
    return {"series": series, "summary": summary_rows}
