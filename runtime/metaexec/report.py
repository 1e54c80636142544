"""Tables and charts as plain data for the host to render (terminal, HTML, xlsx): build
blocks here and send them with `metaexec.emit(name, block)`; nothing is drawn in the sandbox.
Column formats: "money", "ratio" (2 decimals, e.g. DSCR), "percent" (a fraction shown as %),
"integer", "number", "text" or None (guessed from the column name).
"""

# Block shapes (all JSON-compatible; the host's renderer relies on them):
#
#   table  {"kind": "table", "title", "columns": [{"key", "label", "format"}], "rows": [dict],
#           "note"?}
#   chart  {"kind": "chart", "type": "bar"|"line"|"histogram"|"tornado", "title",
#           "x": {"key", "label", "format"}, "y": {"key", "label", "format"},
#           "categories": [x values in order], "series": [{"name", "points": [{"x", "y",
#           "band"?}]}], "reference_lines": [{"value", "label"}], "bands"?: {"green", "yellow"}}
#          histogram adds "bins": [{"start", "end", "count"}] and "count";
#          tornado adds "base" and "items": [{"label", "low", "high", "swing", "low_label"?,
#          "high_label"?}] (series "low"/"high" hold the changes against base).
#   text   {"kind": "text", "title", "body"}
#   kpis   {"kind": "kpis", "title", "items": [{"label", "value", "format"}]}
#   report {"kind": "report", "title", "subtitle"?, "blocks": [table | chart | text | kpis]}
#
# Cells that are NaN or infinite become None (null).

__all__ = [
    "table",
    "bar_chart",
    "line_chart",
    "histogram",
    "tornado",
    "dscr_chart",
    "scenario_chart",
    "text",
    "kpis",
    "document",
]

FORMATS = ("money", "ratio", "percent", "integer", "number", "text", None)

_LABELS = {
    "dscr": "DSCR",
    "noi": "NOI",
    "ltv": "LTV",
    "property_name": "Property",
    "property_id": "ID",
    "annual_debt_service": "Annual debt service",
    "base_dscr": "Base DSCR",
    "dscr_change": "DSCR change",
    "weighted_dscr": "Weighted DSCR",
    "average_dscr": "Average DSCR",
    "min_dscr": "Min DSCR",
    "max_dscr": "Max DSCR",
    "median_dscr": "Median DSCR",
    "total_noi": "Total NOI",
    "irr": "IRR",
    "npv": "NPV",
    "total_gla_sqft": "GLA (sq ft)",
}


def label_for(key):
    """A readable column label for a key: "annual_debt_service" -> "Annual debt service".

    Args: key: column name.
    Returns: str.
    Example: label_for("dscr") -> 'DSCR'
    """
    key = str(key)
    if key in _LABELS:
        return _LABELS[key]
    words = key.replace(".", " ").replace("_", " ").split()
    fixed = {"noi": "NOI", "dscr": "DSCR", "ltv": "LTV", "id": "ID", "irr": "IRR", "npv": "NPV"}
    words = [fixed.get(w.lower(), w) for w in words]
    if not words:
        return key
    first = words[0]
    return " ".join([first[:1].upper() + first[1:]] + words[1:])


def guess_format(key):
    """The display format a column name suggests (see module doc), or None.

    Args: key: column name.
    Returns: one of FORMATS.
    Example: guess_format("annual_debt_service") -> 'money'
    """
    k = str(key).lower()
    if "dscr" in k or k.endswith("ratio") or "coverage" in k or k.endswith("_multiple"):
        return "ratio"
    for w in ("rate", "ltv", "occupancy", "vacancy", "yield", "pct", "percent", "change", "irr",
              "return", "margin", "share"):
        if w in k:
            return "percent"
    for w in ("noi", "revenue", "expense", "debt_service", "principal", "loan", "value", "price",
              "income", "payment", "balance", "cash", "amount", "npv", "cost", "equity", "rent"):
        if w in k:
            return "money"
    for w in ("sqft", "gla", "count", "year", "units", "number_of", "_id") :
        if w in k or k == "id":
            return "integer"
    return None


def _check_format(fn, fmt):
    if fmt not in FORMATS:
        raise ValueError("%s: format must be one of %r, got %r" % (fn, FORMATS, fmt))
    return fmt


def _rows(fn, rows):
    if isinstance(rows, dict):
        rows = [rows]
    if rows is None or isinstance(rows, (str, bytes)):
        raise ValueError("%s: rows must be a list of dicts, got %r" % (fn, rows))
    rows = list(rows)
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ValueError("%s: rows[%d] must be a dict, got %s" % (fn, i, type(r).__name__))
    return rows


def _clean(v):
    """JSON-safe cell: NaN and infinities become None."""
    if type(v) is float and v - v != 0.0:
        return None
    return v


def _num_or_none(fn, what, v):
    if v is None:
        return None
    if type(v) is bool or isinstance(v, (str, bytes)):
        raise ValueError("%s: %s must be a number, got %r" % (fn, what, v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError("%s: %s must be a number, got %r" % (fn, what, v)) from None
    return f if f - f == 0.0 else None


def _axis(key, label=None, fmt=None):
    return {"key": key, "label": label or label_for(key), "format": fmt if fmt is not None else guess_format(key)}


def table(title, rows, columns=None, formats=None, labels=None, note=None):
    """A table block.

    Args: title: str; rows: list of dicts; columns: keys to show, in order (default: keys of
        the rows in first-seen order); formats / labels: dicts key -> format / label
        overriding the guesses; note: optional footnote.
    Returns: {"kind": "table", "title", "columns": [{key, label, format}], "rows", "note"?}.
    Example: table("DSCR", [{"property_name": "A", "dscr": 1.3}])["columns"][1]["format"] -> 'ratio'
    """
    fn = "table()"
    rows = _rows(fn, rows)
    if columns is None:
        columns, seen = [], set()
        for r in rows:
            for k in r:
                if k not in seen:
                    seen.add(k)
                    columns.append(k)
    formats = formats or {}
    labels = labels or {}
    cols = []
    for k in columns:
        fmt = _check_format(fn, formats[k]) if k in formats else guess_format(k)
        cols.append({"key": k, "label": labels.get(k) or label_for(k), "format": fmt})
    keys = [c["key"] for c in cols]
    block = {
        "kind": "table",
        "title": str(title),
        "columns": cols,
        "rows": [{k: _clean(r.get(k)) for k in keys} for r in rows],
    }
    if note:
        block["note"] = str(note)
    return block


def _band(y, bands):
    if y is None or not bands:
        return None
    green, yellow = bands
    return "green" if y >= green else ("yellow" if y >= yellow else "red")


def _xy_chart(fn, kind, title, rows, x, y, series, y_format, bands, reference_lines):
    rows = _rows(fn, rows)
    categories, seen = [], set()
    groups, order = {}, []
    for r in rows:
        xv = _clean(r.get(x))
        if xv not in seen:
            seen.add(xv)
            categories.append(xv)
        name = r.get(series) if series else label_for(y)
        if name not in groups:
            groups[name] = []
            order.append(name)
        yv = _num_or_none(fn, "%s of %r" % (y, xv), r.get(y))
        point = {"x": xv, "y": yv}
        b = _band(yv, bands)
        if b:
            point["band"] = b
        groups[name].append(point)
    chart = {
        "kind": "chart",
        "type": kind,
        "title": str(title),
        "x": _axis(x),
        "y": _axis(y, fmt=_check_format(fn, y_format) if y_format else None),
        "categories": categories,
        "series": [{"name": str(n), "points": groups[n]} for n in order],
        "reference_lines": [],
    }
    for line in reference_lines or ():
        if isinstance(line, dict):
            chart["reference_lines"].append(
                {"value": _num_or_none(fn, "reference line", line.get("value")), "label": str(line.get("label", ""))}
            )
        else:
            v = _num_or_none(fn, "reference line", line)
            chart["reference_lines"].append({"value": v, "label": "%g" % v})
    if bands:
        chart["bands"] = {"green": bands[0], "yellow": bands[1]}
    return chart


def bar_chart(title, rows, x, y, series=None, y_format=None, bands=None, reference_lines=None):
    """Bar chart of rows[y] per rows[x]; one series per distinct rows[series] (grouped bars).

    Args: title; rows: list of dicts; x, y: keys; series: key to group by or None;
        y_format: override the guess; bands: (green, yellow) thresholds to tag each point
        "green"/"yellow"/"red"; reference_lines: values or {value, label} dicts.
    Returns: chart dict, type "bar".
    Example: bar_chart("NOI", [{"p": "A", "noi": 5.0}], "p", "noi")["series"][0]["points"] -> [{'x': 'A', 'y': 5.0}]
    """
    return _xy_chart("bar_chart()", "bar", title, rows, x, y, series, y_format, bands, reference_lines)


def line_chart(title, rows, x, y, series=None, y_format=None, reference_lines=None):
    """A line chart of rows[y] against rows[x]; one line per distinct rows[series].

    Args: as bar_chart() (without bands).
    Returns: chart dict, type "line".
    Example: line_chart("DSCR by NOI change", rows, "noi_change", "dscr", series="property_name")
    """
    return _xy_chart("line_chart()", "line", title, rows, x, y, series, y_format, None, reference_lines)


def histogram(title, values, bins=10, key=None, value_format=None, reference_lines=None):
    """A histogram: counts of values in equal-width bins (computed here).

    Args: title; values: list of numbers, or of dicts with `key`; bins: number of bins >= 1;
        key: the field when values are dicts; value_format: format of the values.
    Returns: chart dict, type "histogram", with "bins": [{start, end, count}].
    Example: [b["count"] for b in histogram("DSCR", [1.0, 1.1, 1.9, 2.0], bins=2)["bins"]] -> [2, 2]
    """
    fn = "histogram()"
    if isinstance(values, dict) or isinstance(values, (str, bytes)):
        raise ValueError("%s: values must be a list" % fn)
    nums = []
    for i, v in enumerate(values):
        if key is not None:
            if not isinstance(v, dict):
                raise ValueError("%s: values[%d] must be a dict when key is given" % (fn, i))
            v = v.get(key)
        f = _num_or_none(fn, "values[%d]" % i, v)
        if f is not None:
            nums.append(f)
    try:
        nb = int(bins)
    except (TypeError, ValueError):
        raise ValueError("%s: bins must be a whole number >= 1, got %r" % (fn, bins)) from None
    if nb < 1 or nb > 10_000:
        raise ValueError("%s: bins must be between 1 and 10000, got %r" % (fn, bins))
    out_bins = []
    if nums:
        lo, hi = min(nums), max(nums)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        width = (hi - lo) / nb
        counts = [0] * nb
        for v in nums:
            i = int((v - lo) / width)
            counts[min(max(i, 0), nb - 1)] += 1
        for i in range(nb):
            out_bins.append({"start": lo + i * width, "end": lo + (i + 1) * width if i < nb - 1 else hi, "count": counts[i]})
    name = label_for(key) if key else "values"
    fmt = _check_format(fn, value_format) if value_format else (guess_format(key) if key else None)
    chart = {
        "kind": "chart",
        "type": "histogram",
        "title": str(title),
        "x": {"key": key or "value", "label": name, "format": fmt},
        "y": {"key": "count", "label": "Count", "format": "integer"},
        "categories": [(b["start"] + b["end"]) / 2.0 for b in out_bins],
        "series": [{"name": name, "points": [{"x": (b["start"] + b["end"]) / 2.0, "y": b["count"]} for b in out_bins]}],
        "bins": out_bins,
        "reference_lines": [
            {"value": _num_or_none(fn, "reference line", r), "label": "%g" % r} if not isinstance(r, dict)
            else {"value": _num_or_none(fn, "reference line", r.get("value")), "label": str(r.get("label", ""))}
            for r in (reference_lines or ())
        ],
        "count": len(nums),
    }
    return chart


def tornado(title, base, items, value_label="DSCR", value_format="ratio"):
    """A tornado chart: the result at each input's low and high setting, widest swing first.

    Args: title; base: the base-case result; items: list of {"label", "low", "high"}
        (results, not changes), optionally "low_label"/"high_label" (e.g. "-10 %");
        value_label / value_format: what the numbers are.
    Returns: chart dict, type "tornado", with "base" and "items" [{label, low, high, swing}].
    Example: tornado("DSCR", 1.3, [{"label": "NOI", "low": 1.1, "high": 1.5}])["items"][0]["swing"] -> 0.4
    """
    fn = "tornado()"
    b = _num_or_none(fn, "base", base)
    if b is None:
        raise ValueError("%s: base must be a finite number, got %r" % (fn, base))
    rows = _rows(fn, items)
    out = []
    for i, it in enumerate(rows):
        lo = _num_or_none(fn, "items[%d].low" % i, it.get("low"))
        hi = _num_or_none(fn, "items[%d].high" % i, it.get("high"))
        if lo is None or hi is None:
            raise ValueError("%s: items[%d] needs numeric low and high, got %r" % (fn, i, it))
        entry = {"label": str(it.get("label", "item %d" % (i + 1))), "low": lo, "high": hi, "swing": abs(hi - lo)}
        for k in ("low_label", "high_label"):
            if it.get(k) is not None:
                entry[k] = str(it[k])
        out.append(entry)
    out.sort(key=lambda e: -e["swing"])
    return {
        "kind": "chart",
        "type": "tornado",
        "title": str(title),
        "x": {"key": "label", "label": "Input", "format": "text"},
        "y": {"key": "value", "label": str(value_label), "format": _check_format(fn, value_format)},
        "base": b,
        "items": out,
        "categories": [e["label"] for e in out],
        "series": [
            {"name": "low", "points": [{"x": e["label"], "y": e["low"] - b} for e in out]},
            {"name": "high", "points": [{"x": e["label"], "y": e["high"] - b} for e in out]},
        ],
        "reference_lines": [{"value": b, "label": "base %g" % b}],
    }


def dscr_chart(metrics, title="DSCR by property", green=1.25, yellow=1.0):
    """Bar chart of DSCR per property, points tagged green/yellow/red, with threshold lines.

    Args: metrics: rows with property_name and dscr (e.g. portfolio.property_metrics());
        green, yellow: band thresholds.
    Returns: chart dict, type "bar".
    Example: dscr_chart([{"property_name": "A", "dscr": 0.9}])["series"][0]["points"][0]["band"] -> 'red'
    """
    return _xy_chart(
        "dscr_chart()", "bar", title, metrics, "property_name", "dscr", None, "ratio",
        (green, yellow),
        [{"value": green, "label": "%.2fx" % green}, {"value": yellow, "label": "%.2fx" % yellow}],
    )


def scenario_chart(scenario_rows, title="DSCR by scenario", y="dscr", green=1.25, yellow=1.0):
    """Grouped bar chart of scenario rows (scenarios.stress_test()): one series per scenario,
    one group per property.

    Args: scenario_rows: rows with scenario, property_name and `y`; title; y: the value key;
        green, yellow: threshold lines (DSCR).
    Returns: chart dict, type "bar".
    Example: scenario_chart(scenarios.noi_stress_test(rows))
    """
    lines = [{"value": green, "label": "%.2fx" % green}, {"value": yellow, "label": "%.2fx" % yellow}] if y == "dscr" else []
    return _xy_chart(
        "scenario_chart()", "bar", title, scenario_rows, "property_name", y, "scenario", None,
        (green, yellow) if y == "dscr" else None, lines,
    )


def text(title, body):
    """A text block (plain text, blank lines between paragraphs).

    Args: title; body: str.
    Returns: {"kind": "text", "title", "body"}.
    Example: text("Note", "ok")["kind"] -> 'text'
    """
    return {"kind": "text", "title": str(title), "body": str(body)}


def kpis(title, items):
    """Key figures shown as tiles.

    Args: title; items: dict label -> value, or list of {"label", "value", "format"?}.
    Returns: {"kind": "kpis", "title", "items": [{label, value, format}]}.
    Example: kpis("Portfolio", {"Weighted DSCR": 1.42})["items"][0]["format"] -> 'ratio'
    """
    fn = "kpis()"
    if isinstance(items, dict):
        items = [{"label": k, "value": v} for k, v in items.items()]
    out = []
    for it in _rows(fn, items):
        label = str(it.get("label", ""))
        fmt = it.get("format")
        fmt = _check_format(fn, fmt) if fmt is not None else guess_format(label.lower().replace(" ", "_"))
        out.append({"label": label, "value": _clean(it.get("value")), "format": fmt})
    return {"kind": "kpis", "title": str(title), "items": out}


def document(title, blocks, subtitle=None):
    """A report: an ordered list of table, chart, text and kpis blocks.

    Args: title; blocks: list of dicts from this module; subtitle: optional.
    Returns: {"kind": "report", "title", "subtitle"?, "blocks"}.
    Example: document("DSCR review", [text("Note", "ok")])["blocks"][0]["kind"] -> 'text'
    """
    fn = "document()"
    blocks = list(blocks)
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or b.get("kind") not in ("table", "chart", "text", "kpis"):
            raise ValueError("%s: blocks[%d] must be a table, chart, text or kpis block, got %r"
                             % (fn, i, b if not isinstance(b, dict) else b.get("kind")))
    out = {"kind": "report", "title": str(title), "blocks": blocks}
    if subtitle:
        out["subtitle"] = str(subtitle)
    return out
