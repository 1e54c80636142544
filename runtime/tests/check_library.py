"""Tests of metaexec.scenarios, metaexec.portfolio and metaexec.report (and the docstring
examples of every module, finance included). Plain asserts, no pytest:

    cd runtime && python3 tests/check_library.py

Prints one line per failing test and a summary; exits 1 on any failure.
"""

import ast
import copy
import json
import math
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def _first_existing(paths, what):
    for p in paths:
        if os.path.exists(p):
            return os.path.abspath(p)
    raise SystemExit("check_library: cannot find %s (looked in %r)" % (what, paths))


# From runtime/ on the host, or from the working directory in the sandbox.
LIB = _first_existing([os.path.join(HERE, "..", "metaexec", "finance.py"), os.path.join("metaexec", "finance.py")]
                      + [os.path.join(p, "metaexec", "finance.py") for p in sys.path if p],
                      "metaexec/finance.py")
DEMO = _first_existing([os.path.join(HERE, "fixtures", "demo_portfolio.json"),
                        os.path.join("tests", "fixtures", "demo_portfolio.json")], "demo_portfolio.json")

# Plain modules: the `metaexec` package needs the runtime's host interface.
sys.path.insert(0, os.path.dirname(LIB))
import finance  # noqa: E402
import portfolio  # noqa: E402
import report  # noqa: E402
import scenarios  # noqa: E402

MODULES = (finance, scenarios, portfolio, report)

# The DSCR table of the original documents (04-technical-documentation.md).
DOC_TABLE = {
    "Orlando Fashion Square": 1.94,
    "1893 Rouse Lake Rd": 1.66,
    "Orlando Vineland Premium Outlets": 1.21,
    "Columbia Heights Shopping Mall": 1.50,
    "West Oaks Mall": 1.82,
    "Riverside Galleria": 0.89,
    "Lakeside Plaza": 1.18,
    "Sunset Commons": 1.21,
    "Valley View Center": 1.28,
    "Harbor Town Mall": 1.08,
}


def load_demo():
    with open(DEMO) as f:
        return json.load(f)


def demo_rows():
    """properties JOIN financial_metrics JOIN loans, as a SQL query would return them."""
    d = load_demo()
    fm = {m["property_id"]: m for m in d["financial_metrics"]}
    loans = {x["property_id"]: x for x in d["loans"]}
    rows = []
    for p in d["properties"]:
        row = dict(p)
        row.update(fm[p["property_id"]])
        row.update(loans[p["property_id"]])
        rows.append(row)
    return rows


def close(a, b, tol=1e-9):
    return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))


# --------------------------------------------------------------------------- library hygiene


ALLOWED_TOP_IMPORTS = {"math", "finance", "portfolio", "scenarios", "report"}


def test_top_level_imports_are_tiny():
    for mod in MODULES:
        path = mod.__file__
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            nodes = [node]
            if isinstance(node, ast.Try):
                nodes = node.body + [h for x in node.handlers for h in x.body]
            for n in nodes:
                if isinstance(n, ast.Import):
                    names = [a.name for a in n.names]
                elif isinstance(n, ast.ImportFrom):
                    names = [n.module] if n.module else [a.name for a in n.names]
                    if n.level == 1 and n.module is None:
                        names = [a.name for a in n.names]
                else:
                    continue
                for name in names:
                    assert name in ALLOWED_TOP_IMPORTS, "%s imports %r at top level" % (path, name)
                    assert name != "metaexec", path


def test_no_print_in_library():
    for mod in MODULES:
        with open(mod.__file__) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", "%s calls print()" % mod.__file__


def test_public_functions_have_docstrings():
    for mod in MODULES:
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj):
                doc = obj.__doc__ or ""
                assert doc.strip(), "%s.%s has no docstring" % (mod.__name__, name)
                for section in ("Args:", "Returns:", "Example:"):
                    assert section in doc, "%s.%s has no %s section" % (mod.__name__, name, section)


def _example_lines(doc):
    for line in doc.splitlines():
        line = line.strip()
        if line.startswith("Example:") and " -> " in line:
            expr, want = line[len("Example:"):].rsplit(" -> ", 1)
            yield expr.strip(), want.strip()


def _matches(got, want_text):
    want = ast.literal_eval(want_text)
    if isinstance(want, float) and isinstance(got, (int, float)):
        decimals = len(want_text.split(".")[1]) if "." in want_text else 0
        return abs(got - want) <= 0.5 * 10.0 ** -decimals + 1e-12 * abs(want)
    return got == want


def test_docstring_examples():
    """Every `Example: expr -> value` line in a docstring evaluates to value (to the shown
    decimals): the docstrings are the API reference put into prompts, so they must be exact."""
    ns = {"finance": finance, "scenarios": scenarios, "portfolio": portfolio, "report": report}
    checked = 0
    for mod in MODULES:
        env = dict(ns)
        env.update({k: getattr(mod, k) for k in mod.__all__})
        for name in mod.__all__:
            obj = getattr(mod, name)
            for expr, want in _example_lines(getattr(obj, "__doc__", "") or ""):
                got = eval(expr, env)  # noqa: S307 - our own docstrings
                assert _matches(got, want), "%s.%s: %s gave %r, docstring says %s" % (
                    mod.__name__, name, expr, got, want)
                checked += 1
    assert checked >= 35, checked


# --------------------------------------------------------------------------- demo data


def test_demo_file_is_consistent():
    d = load_demo()
    assert set(d) == {"properties", "financial_metrics", "loans"}
    assert len(d["properties"]) == len(d["financial_metrics"]) == len(d["loans"]) == 10
    for p in d["properties"]:
        assert list(p) == ["property_id", "property_name", "property_address", "property_type",
                           "total_gla_sqft", "city", "state", "year_built"], list(p)
    fm = {m["property_id"]: m for m in d["financial_metrics"]}
    for loan in d["loans"]:
        m = fm[loan["property_id"]]
        for k in ("noi", "annual_debt_service", "dscr", "gross_revenue", "operating_expenses",
                  "occupancy_rate", "fiscal_year"):
            assert k in m, k
        for k in ("principal", "interest_rate", "amortization_years", "maturity_date", "lender"):
            assert k in loan, k
        ads = round(12 * finance.payment(loan["principal"], loan["interest_rate"], loan["amortization_years"]), 2)
        assert m["annual_debt_service"] == ads, (loan, m["annual_debt_service"], ads)
        assert m["gross_revenue"] - m["operating_expenses"] == m["noi"], m
        assert m["dscr"] == round(m["noi"] / m["annual_debt_service"], 2), m
        assert 0.0 < m["occupancy_rate"] <= 1.0
        assert 0.0 < loan["interest_rate"] < 0.2
    names = {p["property_id"]: p["property_name"] for p in d["properties"]}
    got = {names[i]: round(m["noi"] / m["annual_debt_service"], 2) for i, m in fm.items()}
    assert got == DOC_TABLE, got


# --------------------------------------------------------------------------- portfolio


def test_demo_dscr_table_reproduced():
    rows = demo_rows()
    res = portfolio.analyze(rows)
    got = {m["property_name"]: round(m["dscr"], 2) for m in res["properties"]}
    assert got == DOC_TABLE, got
    assert [m["property_name"] for m in res["properties"]] == list(DOC_TABLE)
    r = res["resolution"]
    assert r["noi"] == "noi" and r["annual_debt_service"] == "annual_debt_service", r
    assert r["property_name"] == "property_name"
    assert r["stored_dscr"] == "dscr"
    assert res["skipped"] == [] and res["warnings"] == [], (res["skipped"], res["warnings"])
    s = res["summary"]
    assert s["count"] == 10
    assert s["verdicts"] == {"approve": 5, "review": 3, "reject": 2}, s["verdicts"]
    assert s["bands"] == {"green": 5, "yellow": 4, "red": 1}, s["bands"]
    total_noi = sum(m["noi"] for m in load_demo()["financial_metrics"])
    total_ads = sum(m["annual_debt_service"] for m in load_demo()["financial_metrics"])
    assert close(s["weighted_dscr"], total_noi / total_ads)
    assert close(s["average_dscr"], sum(m["dscr"] for m in res["properties"]) / 10)
    assert [w["property_name"] for w in s["worst"]] == ["Riverside Galleria", "Harbor Town Mall", "Lakeside Plaza"]
    assert round(s["min_dscr"], 2) == 0.89 and round(s["max_dscr"], 2) == 1.94
    # Verdicts follow classify_dscr, bands dscr_band.
    for m in res["properties"]:
        assert m["verdict"] == finance.classify_dscr(m["dscr"])
        assert m["band"] == finance.dscr_band(m["dscr"])
        assert close(m["debt_yield"], m["noi"] / m["loan_amount"])
    json.dumps(res, allow_nan=False)


def test_demo_derived_when_noi_and_debt_service_columns_missing():
    rows = demo_rows()
    for r in rows:
        del r["noi"], r["annual_debt_service"], r["dscr"]
    res = portfolio.analyze(rows)
    assert res["resolution"]["noi"] == "gross_revenue - operating_expenses", res["resolution"]
    assert res["resolution"]["annual_debt_service"] == \
        "annual_debt_service(principal, interest_rate, amortization_years)", res["resolution"]
    got = {m["property_name"]: round(m["dscr"], 2) for m in res["properties"]}
    assert got == DOC_TABLE, got


def other_schema_rows():
    """A schema unlike the demo: name, potential rent with vacancy in percent, opex, loan
    amount with the rate in percent and amortization in months; no NOI, no debt service."""
    return [
        {"id": 7, "name": "Alpha Center", "gross_potential_rent": 2_000_000, "vacancy_pct": 5.0,
         "opex": 700_000, "loan_amount": 10_000_000, "interest_rate": 6.0, "amortization_months": 360,
         "market_value": 16_000_000, "property_type": "Office"},
        {"id": 8, "name": "Beta Park", "gross_potential_rent": "1,500,000", "vacancy_pct": 10,
         "opex": 600_000, "loan_amount": 6_000_000, "interest_rate": 5.5, "amortization_months": 300,
         "market_value": 9_000_000, "property_type": "Office"},
        {"id": 9, "name": "Gamma Lofts", "gross_potential_rent": 900_000, "vacancy_pct": 3,
         "opex": 300_000, "loan_amount": 0, "interest_rate": 0, "amortization_months": 360,
         "market_value": 8_000_000, "property_type": "Multifamily"},
        {"id": 10, "name": "Delta Works", "gross_potential_rent": None, "vacancy_pct": 3,
         "opex": 300_000, "loan_amount": 1_000_000, "interest_rate": 7, "amortization_months": 240,
         "market_value": 2_000_000, "property_type": "Industrial"},
    ]


def test_other_schema_derives_noi_and_debt_service():
    rows = other_schema_rows()
    before = copy.deepcopy(rows)
    res = portfolio.analyze(rows)
    assert rows == before
    r = res["resolution"]
    assert r["property_name"] == "name" and r["property_id"] == "id", r
    assert r["noi"] == "gross_potential_rent * (1 - vacancy_pct / 100 (stored as percent)) - opex", r["noi"]
    assert r["annual_debt_service"] == \
        "annual_debt_service(loan_amount, interest_rate / 100 (stored as percent), amortization_months / 12)", r
    assert r["value"] == "market_value"
    by = {m["property_name"]: m for m in res["properties"]}
    a = by["Alpha Center"]
    assert close(a["noi"], 2_000_000 * 0.95 - 700_000)
    assert close(a["annual_debt_service"], finance.annual_debt_service(10_000_000, 0.06, 30))
    assert close(a["dscr"], 1_200_000 / finance.annual_debt_service(10_000_000, 0.06, 30))
    assert close(a["ltv"], 10_000_000 / 16_000_000) and close(a["cap_rate"], 1_200_000 / 16_000_000)
    assert close(a["interest_rate"], 0.06) and close(a["occupancy_rate"], 0.95)
    b = by["Beta Park"]
    assert close(b["noi"], 1_500_000 * 0.9 - 600_000)
    assert close(b["annual_debt_service"], finance.annual_debt_service(6_000_000, 0.055, 25))
    # No debt (Gamma) and no revenue (Delta) are skipped with a reason, not crashed on.
    skipped = {s["property_name"]: s["reason"] for s in res["skipped"]}
    assert set(skipped) == {"Gamma Lofts", "Delta Works"}, skipped
    assert "no debt" in skipped["Gamma Lofts"] and "no NOI" in skipped["Delta Works"], skipped
    assert res["summary"]["count"] == 2
    try:
        portfolio.property_metrics(rows, on_error="raise")
    except ValueError as exc:
        assert "Gamma Lofts" in str(exc)
    else:
        raise AssertionError("on_error='raise' did not raise")


def test_monthly_and_alias_columns():
    rows = [
        {"Property Name": "One", "Net Operating Income": 1_200_000, "monthly_debt_service": 80_000},
        {"Property Name": "Two", "Net Operating Income": 900_000, "monthly_debt_service": 75_000},
    ]
    r = portfolio.resolve_columns(rows)
    assert r["property_name"] == "Property Name", r
    assert r["noi"] == "Net Operating Income" and r["annual_debt_service"] == "monthly_debt_service * 12", r
    m = portfolio.property_metrics(rows)
    assert close(m[0]["dscr"], 1.25) and close(m[1]["dscr"], 1.0)
    assert [x["verdict"] for x in m] == ["approve", "reject"]
    # Table prefixes and upper case are ignored; "debt_service" is annual.
    r2 = portfolio.resolve_columns([{"p.NAME": "x", "fm.NOI": 1, "fm.DEBT_SERVICE": 1}])
    assert r2["noi"] == "fm.NOI" and r2["annual_debt_service"] == "fm.DEBT_SERVICE", r2
    # Interest-only loans.
    io = [{"name": "IO", "noi": 130_000, "loan_amount": 2_000_000, "rate": 0.05, "interest_only": "Y"}]
    m = portfolio.property_metrics(io)
    assert close(m[0]["annual_debt_service"], 100_000) and close(m[0]["dscr"], 1.3)


def test_warnings_for_duplicates_and_stale_stored_dscr():
    rows = demo_rows()
    rows[0]["dscr"] = 2.5
    rows.append(dict(rows[1]))
    res = portfolio.analyze(rows)
    text = " | ".join(res["warnings"])
    assert "several rows per property" in text and "stored dscr 2.5" in text, text


def test_outliers_and_peers():
    rows = [{"property_name": n, "dscr": v, "property_type": t} for n, v, t in (
        ("a", 1.30, "mall"), ("b", 1.35, "mall"), ("c", 1.25, "mall"), ("d", 1.32, "office"),
        ("e", 0.40, "office"), ("f", 3.50, "office"))]
    out = portfolio.outliers(rows)
    assert {(o["property_name"], o["direction"]) for o in out} == {("e", "low"), ("f", "high")}, out
    assert portfolio.outliers(rows[:3]) == []
    peers = portfolio.compare_to_peers(rows)
    med = (1.30 + 1.32) / 2
    assert all(close(p["peer_median"], med) for p in peers)
    assert [p["rank"] for p in peers] == [4, 2, 5, 3, 6, 1], peers
    grouped = portfolio.compare_to_peers(rows, group_by="property_type")
    assert close(grouped[0]["peer_median"], 1.30) and close(grouped[3]["peer_median"], 1.32)
    assert grouped[0]["group"] == "mall" and grouped[0]["peers"] == 3


def test_find_and_similar():
    rows = demo_rows()
    assert portfolio.find_property(rows, "riverside")["property_name"] == "Riverside Galleria"
    assert portfolio.find_property(rows, "WEST OAKS MALL")["property_id"] == 5
    for bad in ("Nowhere", "Orlando"):  # no match; several matches
        try:
            portfolio.find_property(rows, bad)
        except ValueError as exc:
            assert "Orlando Fashion Square" in str(exc)
        else:
            raise AssertionError("find_property(%r) did not raise" % bad)
    sim = portfolio.similar_properties(rows, "Orlando Fashion Square", 3)
    assert [r["property_name"] for r in sim] == ["West Oaks Mall", "Valley View Center", "Riverside Galleria"], \
        [r["property_name"] for r in sim]


# --------------------------------------------------------------------------- scenarios


def test_scenarios_do_not_mutate_input():
    rows = demo_rows()
    before = copy.deepcopy(rows)
    scenarios.apply_shocks(rows, noi_change=-0.2, revenue_change=0.1, expense_change=0.05,
                           vacancy_change=0.05, rate_change=0.01)
    scenarios.run_scenarios(rows)
    scenarios.stress_test(rows)
    scenarios.noi_stress_test(rows)
    scenarios.scenario_summary(scenarios.run_scenarios(rows))
    scenarios.breakeven_noi_change(rows)
    other = other_schema_rows()[:2]
    other_before = copy.deepcopy(other)
    scenarios.apply_shocks(other, revenue_change=-0.1, vacancy_change=0.05, rate_change=0.01)
    assert rows == before and other == other_before


def test_noi_shock_scales_dscr():
    rows = demo_rows()
    out = scenarios.apply_shocks(rows, noi_change=-0.2)
    for r, o in zip(rows, out):
        assert o is not r
        assert close(o["noi"], r["noi"] * 0.8)
        assert close(o["dscr"], r["noi"] * 0.8 / r["annual_debt_service"])
        assert o["annual_debt_service"] == r["annual_debt_service"]
        assert o["gross_revenue"] == r["gross_revenue"]  # NOI shock leaves components alone


def test_revenue_expense_vacancy_shocks_move_components():
    rows = demo_rows()
    out = scenarios.apply_shocks(rows, revenue_change=-0.2, expense_change=0.05)
    for r, o in zip(rows, out):
        assert close(o["gross_revenue"], r["gross_revenue"] * 0.8)
        assert close(o["operating_expenses"], r["operating_expenses"] * 1.05)
        assert close(o["noi"], o["gross_revenue"] - o["operating_expenses"])
        assert close(o["dscr"], o["noi"] / r["annual_debt_service"])
    vac = scenarios.apply_shocks(rows, vacancy_change=0.05)
    for r, o in zip(rows, vac):
        occ = r["occupancy_rate"]
        assert close(o["occupancy_rate"], occ - 0.05)
        assert close(o["gross_revenue"], r["gross_revenue"] * (occ - 0.05) / occ)
        assert close(o["noi"], o["gross_revenue"] - o["operating_expenses"])
    # Potential revenue with a vacancy column (percent): vacancy 5 % -> 10 %.
    other = other_schema_rows()[:1]
    o = scenarios.apply_shocks(other, vacancy_change=0.05)[0]
    assert close(o["vacancy_pct"], 10.0) and o["gross_potential_rent"] == 2_000_000
    assert close(o["noi"], 2_000_000 * 0.9 - 700_000)


def test_rate_shock_recomputes_debt_service():
    rows = demo_rows()
    out = scenarios.apply_shocks(rows, rate_change=0.01)
    for r, o in zip(rows, out):
        assert close(o["interest_rate"], r["interest_rate"] + 0.01)
        new_ads = finance.annual_debt_service(r["principal"], r["interest_rate"] + 0.01, r["amortization_years"])
        old_ads = finance.annual_debt_service(r["principal"], r["interest_rate"], r["amortization_years"])
        assert close(o["annual_debt_service"], r["annual_debt_service"] * new_ads / old_ads)
        assert abs(o["annual_debt_service"] - new_ads) < 0.01  # demo terms are consistent
        assert close(o["dscr"], r["noi"] / o["annual_debt_service"])
        assert o["dscr"] < r["noi"] / r["annual_debt_service"]
    rel = scenarios.apply_shocks(rows, rate_change=0.10, rate_mode="relative")
    assert close(rel[0]["interest_rate"], rows[0]["interest_rate"] * 1.1)
    # Derived debt service in a percent-rate schema: written back in percent.
    o = scenarios.apply_shocks(other_schema_rows()[:1], rate_change=0.01)[0]
    assert close(o["interest_rate"], 7.0)
    assert close(o["annual_debt_service"], finance.annual_debt_service(10_000_000, 0.07, 30))
    # No loan terms: a rate shock cannot be applied.
    try:
        scenarios.apply_shocks([{"noi": 1.0, "annual_debt_service": 1.0}], rate_change=0.01)
    except ValueError as exc:
        assert "rate_change needs" in str(exc)
    else:
        raise AssertionError("rate shock without loan terms did not raise")


def test_noi_only_rows_fallback_and_strict():
    rows = [{"name": "N", "noi": 1_000_000.0, "debt_service": 800_000.0}]
    o = scenarios.apply_shocks(rows, revenue_change=-0.2, expense_change=0.05)[0]
    assert close(o["noi"], 800_000) and close(o["dscr"], 1.0)
    assert "revenue_change applied to NOI" in o["scenario_notes"] and "expense_change ignored" in o["scenario_notes"]
    try:
        scenarios.apply_shocks(rows, expense_change=0.05, strict=True)
    except ValueError as exc:
        assert "expense_change" in str(exc)
    else:
        raise AssertionError("strict did not raise")
    for bad in ({"noi_change": float("nan")}, {"noi_change": -1.5}, {"vacancy_change": 2}):
        try:
            scenarios.apply_shocks(rows, **bad)
        except ValueError:
            pass
        else:
            raise AssertionError("apply_shocks(%r) did not raise" % bad)
    try:
        scenarios.apply_scenario(rows, {"name": "x", "noi_chnage": -0.1})
    except ValueError as exc:
        assert "unknown shock" in str(exc)
    else:
        raise AssertionError("typo in shock key did not raise")


def test_shocked_metrics_match_property_metrics_of_shocked_rows():
    import random

    rng = random.Random(5)
    derived = demo_rows()
    for r in derived:
        del r["noi"], r["annual_debt_service"], r["dscr"]
    monthly = [
        {"Property Name": "One", "Net Operating Income": 1_200_000, "monthly_debt_service": 80_000,
         "principal": 9_000_000, "rate": 0.061, "amortization_years": 25},
        {"Property Name": "Two", "noi_monthly": 75_000.33, "monthly_debt_service": 61_000.7,
         "principal": 7_500_000, "rate": 0.055, "amortization_years": 30},
    ]
    only_monthly = [
        {"name": "M%d" % i, "noi_monthly": 70_000.33 + 917.1 * i, "monthly_debt_service": 61_000.7 - 311.9 * i,
         "principal": 7_500_000, "rate": 0.055, "amortization_years": 30}
        for i in range(5)
    ]
    io = [{"name": "IO", "noi": 130_000, "loan_amount": 2_000_000, "rate": 0.05, "interest_only": "Y"}]
    keys = ("property_id", "property_name", "property_type", "noi", "annual_debt_service", "dscr", "verdict", "band")
    checked = 0
    for rows in (demo_rows(), derived, other_schema_rows(), monthly, only_monthly, io):
        before = copy.deepcopy(rows)
        for i in range(40):
            shocks = {
                "noi_change": rng.uniform(-0.4, 0.2) if i % 2 else 0.0,
                "revenue_change": rng.uniform(-0.2, 0.2) if i % 3 == 0 else 0.0,
                "expense_change": rng.uniform(-0.1, 0.2) if i % 5 == 0 else 0.0,
                "vacancy_change": rng.uniform(0.0, 0.1) if i % 7 == 0 else 0.0,
                "rate_change": rng.uniform(-0.01, 0.03) if i % 4 else 0.0,
            }
            try:
                want = portfolio.property_metrics(scenarios.apply_shocks(rows, **shocks))
            except ValueError as exc:  # e.g. a rate shock on rows without loan terms
                try:
                    scenarios.shocked_metrics(rows, **shocks)
                except ValueError as same:
                    assert str(same).split(": ", 1)[1] == str(exc).split(": ", 1)[1], (same, exc)
                    continue
                raise AssertionError("shocked_metrics() did not raise %r" % exc)
            got = scenarios.shocked_metrics(rows, **shocks)
            assert [{k: m[k] for k in keys if k in m} for m in want] == got, (shocks, want, got)
            checked += 1
        assert rows == before, "shocked_metrics() changed its input"
    assert checked > 150, checked
    # Kept results follow the rows' content, not their identity.
    rows = demo_rows()
    first = scenarios.shocked_metrics(rows, noi_change=-0.1)
    rows[0]["noi"] = rows[0]["noi"] * 2
    again = scenarios.shocked_metrics(rows, noi_change=-0.1)
    assert close(again[0]["noi"], 2 * first[0]["noi"]) and again[1:] == first[1:]


def test_named_scenarios_and_stress_tests():
    named = scenarios.named_scenarios()
    assert [s["name"] for s in named] == ["base", "optimistic", "pessimistic", "stress"]
    by = {s["name"]: s for s in named}
    assert by["optimistic"]["revenue_change"] == 0.10 and by["pessimistic"]["revenue_change"] == -0.10
    assert by["stress"]["revenue_change"] == -0.20 and by["stress"]["expense_change"] == 0.05
    named[0]["noi_change"] = 5
    assert scenarios.named_scenarios()[0]["noi_change"] == 0.0  # fresh copies
    rows = demo_rows()
    st = scenarios.noi_stress_test(rows)
    assert len(st) == 40
    assert [r["scenario"] for r in st[::10]] == ["base", "NOI -10%", "NOI -20%", "NOI -30%"]
    base = {r["property_name"]: r["dscr"] for r in st if r["scenario"] == "base"}
    assert {k: round(v, 2) for k, v in base.items()} == DOC_TABLE
    for r in st:
        f = {"base": 1.0, "NOI -10%": 0.9, "NOI -20%": 0.8, "NOI -30%": 0.7}[r["scenario"]]
        assert close(r["dscr"], base[r["property_name"]] * f)
        assert r["verdict"] == finance.classify_dscr(r["dscr"])
        assert close(r["dscr_change"], r["dscr"] - r["base_dscr"])
    summ = scenarios.scenario_summary(st)
    assert [s["scenario"] for s in summ] == ["base", "NOI -10%", "NOI -20%", "NOI -30%"]
    assert (summ[0]["approve"], summ[0]["review"], summ[0]["reject"]) == (5, 3, 2)
    assert summ[3]["reject"] == 7 and summ[3]["worst"] == ["Riverside Galleria"], summ[3]
    full = scenarios.run_scenarios(rows)
    assert len(full) == 40 and full[-1]["scenario"] == "stress"
    stress = [r for r in full if r["scenario"] == "stress"]
    for r, o in zip(rows, stress):
        want = r["noi"] - 0.2 * r["gross_revenue"] - 0.05 * r["operating_expenses"]
        assert close(o["noi"], want) and close(o["dscr"], want / r["annual_debt_service"])
    summ_full = scenarios.scenario_summary(full)
    summ_st = scenarios.scenario_summary(scenarios.stress_test(rows))
    for a, b in zip(summ_full, summ_st):
        assert a["scenario"] == b["scenario"] and close(a["weighted_dscr"], b["weighted_dscr"]), (a, b)
        assert a["reject"] == b["reject"]


def test_breakeven_grid_steps():
    be = scenarios.breakeven_noi_change(demo_rows())
    by = {b["property_name"]: b for b in be}
    assert close(by["Orlando Fashion Square"]["breakeven_noi_change"], 1 / by["Orlando Fashion Square"]["dscr"] - 1)
    assert by["Riverside Galleria"]["breakeven_noi_change"] > 0
    g = scenarios.grid(noi_change=scenarios.steps(-0.3, 0.1, 0.05), rate_change=[0, 0.01])
    assert len(g) == 18 and g[0]["name"] == "noi_change=-0.3, rate_change=+0", g[0]
    assert scenarios.steps(0, 1, 0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    out = scenarios.run_scenarios(demo_rows()[:1], g)
    assert len(out) == 18


# --------------------------------------------------------------------------- report


def test_report_blocks():
    metrics = portfolio.property_metrics(demo_rows())
    t = report.table("DSCR by property", metrics, columns=["property_name", "noi", "annual_debt_service", "dscr", "verdict"])
    assert [c["label"] for c in t["columns"]] == ["Property", "NOI", "Annual debt service", "DSCR", "Verdict"]
    assert [c["format"] for c in t["columns"]] == [None, "money", "money", "ratio", None]
    assert len(t["rows"]) == 10 and set(t["rows"][0]) == {"property_name", "noi", "annual_debt_service", "dscr", "verdict"}
    t2 = report.table("x", [{"a": float("nan"), "b": 1}, {"c": 2}])
    assert [c["key"] for c in t2["columns"]] == ["a", "b", "c"] and t2["rows"][0]["a"] is None
    c = report.dscr_chart(metrics)
    assert c["kind"] == "chart" and c["type"] == "bar" and len(c["series"]) == 1
    bands = {p["x"]: p["band"] for p in c["series"][0]["points"]}
    assert bands["Riverside Galleria"] == "red" and bands["Harbor Town Mall"] == "yellow"
    assert bands["Orlando Fashion Square"] == "green"
    assert [r["value"] for r in c["reference_lines"]] == [1.25, 1.0]
    sc = report.scenario_chart(scenarios.noi_stress_test(demo_rows()))
    assert [s["name"] for s in sc["series"]] == ["base", "NOI -10%", "NOI -20%", "NOI -30%"]
    assert len(sc["categories"]) == 10 and all(len(s["points"]) == 10 for s in sc["series"])
    h = report.histogram("DSCR distribution", metrics, bins=4, key="dscr")
    assert sum(b["count"] for b in h["bins"]) == 10 and h["type"] == "histogram"
    assert h["bins"][0]["start"] == min(m["dscr"] for m in metrics)
    assert h["bins"][-1]["end"] == max(m["dscr"] for m in metrics)
    tor = report.tornado("DSCR sensitivity", 1.3, [
        {"label": "rate +/-1pt", "low": 1.2, "high": 1.42},
        {"label": "NOI +/-10 %", "low": 1.17, "high": 1.43, "low_label": "-10 %", "high_label": "+10 %"},
    ])
    assert [i["label"] for i in tor["items"]] == ["NOI +/-10 %", "rate +/-1pt"]
    assert close(tor["series"][0]["points"][0]["y"], 1.17 - 1.3)
    line = report.line_chart("DSCR vs NOI change", scenarios.stress_test(demo_rows()[:2], scenarios.grid(noi_change=[0, -0.1, -0.2])),
                             "scenario", "dscr", series="property_name")
    assert len(line["series"]) == 2 and len(line["series"][0]["points"]) == 3
    k = report.kpis("Portfolio", {"Weighted DSCR": 1.31, "Total NOI": 5.0, "Properties": 10})
    assert [i["format"] for i in k["items"]] == ["ratio", "money", None]
    doc = report.document("DSCR review", [t, c, sc, h, tor, line, k, report.text("Notes", "ok")])
    assert doc["kind"] == "report" and len(doc["blocks"]) == 8
    json.dumps(doc, allow_nan=False)
    for bad in (lambda: report.document("x", [{"kind": "image"}]),
                lambda: report.bar_chart("x", [{"a": 1, "b": "high"}], "a", "b"),
                lambda: report.table("x", "not rows"),
                lambda: report.histogram("x", [1, 2], bins=0),
                lambda: report.table("x", [{"a": 1}], formats={"a": "currency"})):
        try:
            bad()
        except ValueError:
            pass
        else:
            raise AssertionError("bad report input accepted")


def test_everyday_questions():
    rows = [
        {"property_name": "A", "noi": 1_250_000, "interest_rate": 6.0, "amortization_years": 30,
         "principal": 10_000_000, "lender": "L1", "maturity_date": "2028-12-31"},
        {"property_name": "B", "noi": 900_000, "interest_rate": 0.05, "amortization_years": 25,
         "principal": 8_000_000, "lender": "L2", "maturity_date": "2029-01-01"},
        {"property_name": "C", "noi": 500_000, "principal": 1, "maturity_date": "2026-03-01"},
    ]
    # Closed form: the present value of 360 monthly payments of NOI / 1.25 / 12 at 0.5%.
    cap = portfolio.loan_capacity(rows, 1.25)
    a = cap["properties"][0]
    pmt = 1_250_000 / 1.25 / 12
    assert close(a["max_loan"], pmt * (1 - 1.005 ** -360) / 0.005), a
    assert close(a["headroom"], a["max_loan"] - 10_000_000) and a["interest_rate"] == 0.06
    assert [s["property_name"] for s in cap["skipped"]] == ["C"], cap["skipped"]
    due = portfolio.maturing_loans(rows, "2029-01-01")
    assert [(m["property_name"], m["days_before_cutoff"]) for m in due] == [("C", 1037), ("A", 1)], due
    ranked = portfolio.rank(rows, "noi", limit=2)
    assert [(r["property_name"], r["rank"]) for r in ranked] == [("A", 1), ("B", 2)], ranked
    assert [r["property_name"] for r in portfolio.rank(rows, "noi", descending=False)] == ["C", "B", "A"]
    months = [{"property_name": "A", "month": "2024-%02d" % m, "noi": 100.0 + 3 * m} for m in (3, 1, 2)]
    s = portfolio.monthly_trend(months, "noi")["summary"][0]
    assert (s["first_month"], s["last"], s["trend_per_month"], s["high_month"]) == ("2024-01", 109.0, 3.0, "2024-03"), s
    # Entry and exit at the same cap rate: the IRR is the cap rate plus the growth.
    held = finance.hold_irr(2_000_000, 130_000, 7, 0.025)
    assert close(held["irr"], 0.065 + 0.025) and len(held["cash_flows"]) == 8, held


# --------------------------------------------------------------------------- the host module


def _host_module():
    """The guest library's `_host`, loaded as a plain module: in the runtime over its real
    bindings, elsewhere over stand-ins of the same shapes (nothing is sent anywhere)."""
    try:
        import wit_world.imports.host  # noqa: F401
    except ImportError:
        import types
        from dataclasses import make_dataclass

        host = types.ModuleType("wit_world.imports.host")
        for kind in ("Floats", "Integers", "Texts", "MaybeFloats", "MaybeIntegers", "MaybeTexts", "Values"):
            setattr(host, "Column_" + kind, make_dataclass("Column_" + kind, ["value"]))
        host.Table = make_dataclass("Table", ["names", "columns"])
        types_module = types.ModuleType("componentize_py_types")
        types_module.Err = type("Err", (Exception,), {})
        package = types.ModuleType("wit_world")
        package.imports = types.ModuleType("wit_world.imports")
        package.imports.host = host
        sys.modules.update({"wit_world": package, "wit_world.imports": package.imports,
                            "wit_world.imports.host": host, "componentize_py_types": types_module})
    import _host

    return _host


def _reference_dumps(h):
    """What `_host.dumps` wrote before it kept its encoder: the standard encoder, then the
    lenient fallback."""
    strict = json.JSONEncoder(allow_nan=False, default=h._default, separators=(",", ":"), check_circular=True).encode

    def dumps(obj):
        try:
            return strict(obj)
        except (ValueError, TypeError, RecursionError):
            return json.dumps(h._finite(obj), separators=(",", ":"))

    return dumps


def _reference_table(h, rows):
    """How `_host._table` chose columns before: the definition of what the host must keep
    receiving."""
    dumps = _reference_dumps(h)

    def column(values):
        kinds = set(map(type, values))
        if len(kinds) == 1:
            kind = kinds.pop()
            if kind is float:
                return h._Floats(values)
            if kind is str:
                return h._Texts(values)
            if kind is int and h._S64[0] <= min(values) and max(values) <= h._S64[1]:
                return h._Integers(values)
        return h._Values(dumps(values))

    if type(rows) is not list or len(rows) < 2:
        return None
    first = rows[0]
    if type(first) is not dict or not first:
        return None
    names = list(first)
    for row in rows:
        if type(row) is not dict or list(row) != names:
            return None
    if set(map(type, names)) != {str}:
        return None
    return h._Table(names, [column([row[name] for row in rows]) for name in names])


def _received(h, column):
    """The values of a table column as the host holds them: JSON decoded, non-finite
    floats as None (JSON null), written with `repr` so that 1, 1.0, True and -0.0 differ."""
    if type(column) is h._Values:
        values = json.loads(column.value)
    else:
        values = [None if type(v) is float and v - v != 0.0 else v for v in column.value]
    return repr(values)


class _Num(float):
    pass


class _Text(str):
    pass


class _Int(int):
    pass


class _Row(dict):
    pass


def _table_cases():
    import datetime
    import decimal
    import random

    rng = random.Random(20240)
    pool = [0.0, -0.0, 1.5, 1e300, 5e-324, float("nan"), float("inf"), -float("inf"), 0, 1, -7, 2**63 - 1,
            -(2**63), 2**63, -(2**63) - 1, 10**30, True, False, None, "", "a", "é ✓", "x" * 40, _Num(2.5),
            _Num("nan"), _Text("t"), _Int(3), [1, 2], {"k": 1}, (1, 2), decimal.Decimal("1.10"),
            datetime.date(2024, 1, 31)]
    plain = [1.5, 2.25, 7, 9, "s", "t", None]
    cases = [None, [], [{}], [{"a": 1}], [{"a": 1}, {"a": 2}], ({"a": 1}, {"a": 2}), [{}, {}],
             [{"a": 1}, {"b": 1}], [{"a": 1, "b": 2}, {"b": 1, "a": 2}], [{"a": 1}, {"a": 1, "b": 2}],
             [{"a": 1, "b": 2}, {"a": 1}], [{"a": 1}, _Row(a=2)], [_Row(a=1), {"a": 2}], [{"a": 1}, [1]],
             [{1: "x"}, {1: "y"}], [{True: 1}, {True: 2}], [{None: 1}, {None: 2}], [{"a": 1}, {1: 2}],
             [{"a": 1, 2: 3}, {"a": 1, 2: 3}], [{_Text("k"): 1}, {_Text("k"): 2}], [{"a": 1}, None],
             [{"a": [1]}, {"a": [2]}]]
    for _ in range(400):
        width = rng.randint(1, 4)
        names = rng.sample(["n", "noi", "dscr", "name", "v", "é"], width)
        kinds = [rng.choice([pool, plain, [1.5, None], [3, None], ["s", None], [None]]) for _ in names]
        cases.append([{name: rng.choice(kind) for name, kind in zip(names, kinds)}
                      for _ in range(rng.randint(2, 6))])
    # Every value of one column the same type, or that type and None.
    for values in ([0.1, -0.0, float("nan")], [1, 2**63 - 1, -(2**63)], [1, 2**63], ["a", "b"],
                   [None, None], [1.5, None, float("inf")], [None, 2, -(2**63)], [None, 2**63],
                   [None, "x", ""], [True, None], [1, 1.0], [_Num(1.5), 1.5], [_Text("a"), "b"],
                   [_Int(1), 2], [True, False]):
        cases.append([{"c": v, "d": i} for i, v in enumerate(values)])
    return cases


def test_host_tables_reach_the_host_as_before():
    h = _host_module()
    for case in _table_cases():
        want = _reference_table(h, case)
        got = h._table(case)
        assert (want is None) == (got is None), (case, want, got)
        if got is None:
            continue
        assert got.names == want.names, case
        assert len(got.columns) == len(want.columns), case
        for old, new in zip(want.columns, got.columns):
            if type(old) is type(new) and type(old) is not h._Values:
                assert repr(old.value) == repr(new.value), (case, old, new)
            elif type(old) is type(new):
                assert old.value == new.value, (case, old, new)
            else:
                # A column with None in it is typed now instead of JSON.
                assert type(old) is h._Values and type(new) in (h._MaybeFloats, h._MaybeIntegers,
                                                                h._MaybeTexts), (case, old, new)
            assert _received(h, old) == _received(h, new), (case, old, new)
            if type(new) is not h._Values:
                assert type(new.value) is list, (case, new)


def test_host_dumps_writes_what_the_standard_encoder_writes():
    h = _host_module()
    reference = _reference_dumps(h)
    shared = [1, 2]
    circular = []
    circular.append(circular)

    class Reentrant:
        def to_dict(self):
            return {"inner": h.dumps({"shared": shared})}

    values = [None, 1, 1.5, "é\n", [shared, shared], {"k": shared, 1: 2}, float("nan"), [float("inf")],
              {(1, 2): "tuple key"}, {1, 2}, Reentrant(), [Reentrant(), shared], 2**70, -0.0, (1, (2,))]
    for value in values * 2:
        assert h.dumps(value) == reference(value), value
    try:
        h.dumps(circular)
    except (ValueError, RecursionError):
        pass
    else:
        raise AssertionError("a circular value was encoded")
    # A failed encoding leaves nothing behind that refuses the next value.
    assert h.dumps([shared, shared]) == "[[1,2],[1,2]]"
    assert h.dumps(circular[:0] + [shared]) == "[[1,2]]"


def test_host_records_build_each_row_as_its_own_dict():
    h = _host_module()
    for width in (1, 2, 3, 5, 31, 32, 33, 40):
        names = ["c%d" % i for i in range(width)]
        columns = [[(i, r) for r in range(3)] for i in range(width)]
        rows = h.records(names, columns, 3)
        assert rows == [dict(zip(names, values)) for values in zip(*columns)], width
        assert len({id(row) for row in rows}) == 3
    # Repeated names keep the last value, as a JSON object with repeated keys does.
    assert h.records(["a", "b", "a"], [[1], [2], [3]], 1) == [json.loads('{"a": 1, "b": 2, "a": 3}')]
    rows = h.records([], [], 2)
    assert rows == [{}, {}] and rows[0] is not rows[1]
    assert h.records(["a"], [[]], 0) == []

def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            sys.stderr.write("FAIL %s\n%s\n" % (name, traceback.format_exc()))
    status = "ok" if not failed else "FAILED"
    sys.stdout.write("check_library: %s: %d tests, %d failed\n" % (status, len(tests), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
