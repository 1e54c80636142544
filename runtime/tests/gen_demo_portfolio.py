"""Writes tests/fixtures/demo_portfolio.json, the demo portfolio that seeds the demo database.

    cd runtime && python3 tests/gen_demo_portfolio.py

The ten properties and their DSCRs come from the original system's documents (the DSCR table
of 04-technical-documentation.md); the documents give no NOI, debt service or loan figures,
so those are chosen here to be realistic and consistent:

- each loan (principal, rate, 25- or 30-year amortization, monthly payments) fixes the
  annual debt service: annual_debt_service = round(12 * payment(principal, rate, years), 2);
- NOI = the documented DSCR * annual_debt_service, rounded to whole hundreds of dollars, so
  round(noi / annual_debt_service, 2) reproduces the documented DSCR exactly;
- operating expenses are a per-property share of revenue (rounded to hundreds) and
  gross_revenue = noi + operating_expenses, i.e. gross_revenue is collected revenue and
  gross_revenue - operating_expenses == noi;
- financial_metrics.dscr stores round(noi / annual_debt_service, 2).

Addresses are illustrative demo data. Interest rates are fractions (0.0485 = 4.85 %).
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "metaexec"))

import finance  # noqa: E402

OUT = os.path.join(HERE, "fixtures", "demo_portfolio.json")

# name, address, type, GLA sq ft, city, state, year built
PROPERTIES = [
    ("Orlando Fashion Square", "3201 E Colonial Dr", "Regional Mall", 1_082_000, "Orlando", "FL", 1973),
    ("1893 Rouse Lake Rd", "1893 Rouse Lake Rd", "Neighborhood Center", 96_400, "Orlando", "FL", 1999),
    ("Orlando Vineland Premium Outlets", "8200 Vineland Ave", "Outlet Center", 657_000, "Orlando", "FL", 2000),
    ("Columbia Heights Shopping Mall", "4001 Central Ave NE", "Community Mall", 318_500, "Columbia Heights", "MN", 1986),
    ("West Oaks Mall", "9401 W Colonial Dr", "Regional Mall", 1_050_000, "Ocoee", "FL", 1996),
    ("Riverside Galleria", "4450 Riverside Pkwy", "Regional Mall", 612_000, "Riverside", "CA", 1991),
    ("Lakeside Plaza", "1200 Lakeside Dr", "Community Center", 204_000, "Lakeland", "FL", 2004),
    ("Sunset Commons", "2150 Sunset Point Rd", "Power Center", 168_000, "Clearwater", "FL", 2008),
    ("Valley View Center", "13331 Preston Rd", "Regional Mall", 1_574_000, "Dallas", "TX", 1973),
    ("Harbor Town Mall", "500 Harbor Blvd", "Regional Mall", 468_000, "Norfolk", "VA", 1989),
]

# documented DSCR, expense ratio, occupancy, principal, rate, amortization years, maturity, lender
TERMS = [
    (1.94, 0.42, 0.91, 62_000_000, 0.0485, 30, "2031-06-01", "Wells Fargo Bank"),
    (1.66, 0.31, 0.95, 9_800_000, 0.0510, 25, "2029-09-01", "Truist Bank"),
    (1.21, 0.36, 0.97, 285_000_000, 0.0440, 30, "2030-12-01", "JPMorgan Chase Bank"),
    (1.50, 0.38, 0.93, 24_500_000, 0.0560, 25, "2028-03-01", "U.S. Bank"),
    (1.82, 0.40, 0.94, 48_000_000, 0.0500, 30, "2032-04-01", "MetLife Investment Management"),
    (0.89, 0.47, 0.78, 58_000_000, 0.0625, 25, "2027-08-01", "KeyBank Real Estate Capital"),
    (1.18, 0.35, 0.86, 21_000_000, 0.0610, 25, "2029-05-01", "Regions Bank"),
    (1.21, 0.30, 0.92, 17_500_000, 0.0575, 30, "2033-10-01", "PNC Bank"),
    (1.28, 0.45, 0.88, 72_000_000, 0.0540, 30, "2030-02-01", "Bank of America"),
    (1.08, 0.43, 0.84, 39_000_000, 0.0600, 25, "2028-11-01", "Prudential Mortgage Capital"),
]


def build():
    properties, metrics, loans = [], [], []
    for i, (prop, terms) in enumerate(zip(PROPERTIES, TERMS), start=1):
        name, address, kind, gla, city, state, built = prop
        target, expense_ratio, occupancy, principal, rate, years, maturity, lender = terms
        ads = round(12 * finance.payment(principal, rate, years), 2)
        noi = round(target * ads, -2)
        assert round(noi / ads, 2) == target, (name, noi, ads)
        gross = round(noi / (1.0 - expense_ratio), -2)
        opex = gross - noi
        assert gross - opex == noi
        properties.append(
            {
                "property_id": i,
                "property_name": name,
                "property_address": address,
                "property_type": kind,
                "total_gla_sqft": gla,
                "city": city,
                "state": state,
                "year_built": built,
            }
        )
        metrics.append(
            {
                "metric_id": i,
                "property_id": i,
                "noi": noi,
                "annual_debt_service": ads,
                "dscr": round(noi / ads, 2),
                "gross_revenue": gross,
                "operating_expenses": opex,
                "occupancy_rate": occupancy,
                "fiscal_year": 2024,
            }
        )
        loans.append(
            {
                "loan_id": i,
                "property_id": i,
                "principal": float(principal),
                "interest_rate": rate,
                "amortization_years": years,
                "maturity_date": maturity,
                "lender": lender,
            }
        )
    return {"properties": properties, "financial_metrics": metrics, "loans": loans}


def main():
    data = build()
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    for p, m in zip(data["properties"], data["financial_metrics"]):
        sys.stdout.write(
            "%-34s NOI %14.2f  ADS %14.2f  DSCR %.2f\n"
            % (p["property_name"], m["noi"], m["annual_debt_service"], m["dscr"])
        )


if __name__ == "__main__":
    main()
