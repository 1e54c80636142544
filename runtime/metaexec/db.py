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
_copy = dict.copy


def _remember_reads(on):
    global _memo
    _memo = {} if on else None


def _error(error):
    """The library's exception for the host's refusal or failure `error`."""
    cls = _ERRORS.get(error.kind, QueryError)
    return cls(str(error) or "the database request failed", error.hint)


def _exact(value):
    global _decimal
    if type(value) is not dict or "$decimal" not in value:
        return value
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
    if type(sql) is not str or not sql or sql.isspace():
        raise TypeError("query(sql, params=None): sql must be a non-empty string")
    if params is None:
        params = []
    elif type(params) is not list:
        if isinstance(params, (str, bytes)) or not isinstance(params, (list, tuple)):
            raise TypeError("query(sql, params): params must be a list or tuple of values, one per `?`")
        params = list(params)
    key = None
    if _memo is not None:
        try:
            key = (sql, tuple(params), bool(exact_decimals))
            rows = _memo.get(key)
        except TypeError:  # unhashable params: no memo
            key = rows = None
        if rows is not None:
            # The rows are the script's to change: each call gets its own dicts.
            return list(map(_copy, rows))
    try:
        names, columns, count, read, decimals = _host.db_query(sql, params, bool(exact_decimals))
    except _host.HostError as error:
        raise _error(error) from None
    if exact_decimals and decimals:
        columns = [list(map(_exact, column)) for column in columns]
    rows = _host.records(names, columns, count)
    if _memo is not None:
        if read:
            if key is not None:
                _memo[key] = list(map(_copy, rows))
        else:
            _memo.clear()  # a write may change what any kept read would return
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
    try:
        return _host.db_schema()
    except _host.HostError as error:
        raise _error(error) from None
