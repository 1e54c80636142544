"""Reading the database through the host, the only way a script reaches data: no
credentials, no connections. Placeholders are `?` whatever the database; values are bound.
The host checks each query against the job's rights (reads only unless granted writes, one
statement, allowed tables, row/byte caps, a timeout): a refused query raises `DenyError`, a
failed one `QueryError` (both `DbError`, catchable).

    rows = db.query("SELECT p.property_name, f.noi FROM properties p JOIN financial_metrics f"
                    " ON f.property_id = p.property_id WHERE f.fiscal_year = ?", [2024])
"""

from metaexec import _host

__all__ = ["query", "query_one", "schema", "DbError", "DenyError", "QueryError"]


class DbError(Exception):
    """A database request was refused or failed; `.hint` says what to do instead."""

    _metaexec_kind = "db_error"

    def __init__(self, message, hint=None):
        Exception.__init__(self, message)
        self.kind = self._metaexec_kind
        self.hint = hint

    def __str__(self):
        text = Exception.__str__(self)
        return text + " (hint: %s)" % self.hint if self.hint else text


class DenyError(DbError):
    """Refused: a write, several statements, a table not allowed, a forbidden function, a
    row/byte/time cap."""

    _metaexec_kind = "db_denied"


class QueryError(DbError):
    """Failed: bad SQL, unknown table or column, no database, connection lost."""

    _metaexec_kind = "db_error"


_ERRORS = {"db_denied": DenyError, "db_error": QueryError}

# In a sweep, one interpreter runs scenario after scenario against the same snapshot: the
# answers to reads are kept here (and copied out) rather than asked for again. The runtime
# turns it on (`_remember_reads`) when it loads a script for a sweep.
_memo = None
_decimal = None


def _remember_reads(on):
    global _memo
    _memo = {} if on else None


def _call(request, *args):
    try:
        return request(*args)
    except _host.HostError as error:
        cls = _ERRORS.get(error.kind, QueryError)
        raise cls(str(error) or "the database request failed", error.hint) from None


def _exact(value):
    global _decimal
    if _decimal is None:
        import decimal

        _decimal = decimal.Decimal
    return _decimal(value["$decimal"])


def query(sql, params=None, exact_decimals=False):
    """Runs one SQL statement; returns its rows as a list of dicts (column -> value).

    `params`: a list (or tuple) of values for the `?` placeholders, in order.
    Values come back as int, float, str, bool or None; dates and times as ISO strings;
    NUMERIC/DECIMAL as float, or as `decimal.Decimal` with `exact_decimals=True`.
    Raises DenyError when the job may not run it, QueryError when it fails.
    """
    if type(sql) is not str or not sql.strip():
        raise TypeError("query(sql, params=None): sql must be a non-empty string")
    if params is None:
        params = []
    elif isinstance(params, (str, bytes)) or not isinstance(params, (list, tuple)):
        raise TypeError("query(sql, params): params must be a list or tuple of values, one per `?`")
    key = None
    if _memo is not None:
        try:
            key = (sql, tuple(params), bool(exact_decimals))
            rows = _memo.get(key)
        except TypeError:  # unhashable params: no memo
            key = rows = None
        if rows is not None:
            return [dict(row) for row in rows]
    answer = _call(_host.db_query, sql, list(params), bool(exact_decimals))
    rows = answer["records"]
    if _memo is not None:
        if answer.get("read"):
            if key is not None:
                _memo[key] = [dict(row) for row in rows]
        else:
            _memo.clear()  # a write may change what any kept read would return
    if exact_decimals and answer.get("decimals"):
        for row in rows:
            for key, value in row.items():
                if type(value) is dict and "$decimal" in value:
                    row[key] = _exact(value)
    return rows


def query_one(sql, params=None, exact_decimals=False):
    """Like `query`, for a statement that returns at most one row: the row, or None."""
    rows = query(sql, params, exact_decimals)
    if len(rows) > 1:
        raise QueryError("query_one: the query returned %d rows, expected at most one" % len(rows))
    return rows[0] if rows else None


def schema():
    """The tables this job may use: `{"dialect", "tables": [{"name", "columns": [{"name",
    "data_type", "nullable", "primary_key"}], "foreign_keys", "row_count"}], "joins", "text"}`
    ("text": one line per table)."""
    return _call(_host.db_schema)
