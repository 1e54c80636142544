"""The guest side of the host interface (`runtime/wit/metaexec.wit`, version 1.1.0).

Every request is a call into the host through the component's imports: no framing, no
shared file descriptors, nothing a script's `print()` could be mistaken for. Structured
values cross as one JSON text per call, encoded here and decoded by the host under the
job's memory budget.
"""

import json

from componentize_py_types import Err
from wit_world.imports import host as _wit

_Floats = _wit.Column_Floats
_Integers = _wit.Column_Integers
_Texts = _wit.Column_Texts
_Values = _wit.Column_Values
_Table = _wit.Table
_S64 = (-(1 << 63), (1 << 63) - 1)


class HostError(Exception):
    """The host refused a request or could not answer it (`.kind`, `.hint`)."""

    def __init__(self, kind, message, hint=None):
        Exception.__init__(self, message)
        self.kind = kind
        self.hint = hint


def _default(obj):
    """What the JSON encoder cannot encode itself: sets as lists, dates as ISO text,
    Decimals as floats, mappings and plain objects as objects, anything else as text."""
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if type(obj).__name__ == "Decimal":
        return float(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "keys") and hasattr(obj, "__getitem__"):
        return {key: obj[key] for key in obj.keys()}
    if hasattr(obj, "__dict__") and not callable(obj):
        return vars(obj)
    return str(obj)


def _finite(obj):
    """`obj` with NaN and infinities as None (JSON has no such numbers) and keys as
    text: the slow path, for values the strict encoder refused."""
    t = type(obj)
    if t is float:
        return obj if obj - obj == 0.0 else None
    if t is dict or isinstance(obj, dict):
        return {(k if type(k) is str else ("null" if k is None else str(k))): _finite(v) for k, v in obj.items()}
    if t in (list, tuple) or isinstance(obj, (list, tuple, set, frozenset)):
        return [_finite(v) for v in obj]
    if t in (str, int, bool) or obj is None:
        return obj
    return _finite(_default(obj))


_strict = json.JSONEncoder(allow_nan=False, default=_default, separators=(",", ":"), check_circular=True).encode


def dumps(obj):
    """`obj` as JSON text (dicts, lists, numbers, strings, None, dates, Decimals)."""
    try:
        return _strict(obj)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(_finite(obj), separators=(",", ":"))


_loads = json.loads


def _column(values):
    """One column of a table, typed where every value has the same plain type."""
    kinds = set(map(type, values))
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind is float:
            return _Floats(values)
        if kind is str:
            return _Texts(values)
        if kind is int and _S64[0] <= min(values) and max(values) <= _S64[1]:
            return _Integers(values)
    return _Values(dumps(values))


def _table(rows):
    """`rows` by column, if it is a list of two or more dicts with the same string keys
    in the same order; None otherwise."""
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
    return _Table(names, [_column([row[name] for row in rows]) for name in names])


def emit(name, value):
    """Sends one named result to the host: a table by column, anything else as JSON."""
    table = _table(value)
    if table is not None:
        _wit.emit_table(name, table)
    else:
        _wit.emit(name, dumps(value))


def log(message):
    """Sends one progress line to the host."""
    _wit.log(message)


def _failure(err):
    value = err.value
    return HostError(value.kind, value.message, value.hint)


def db_query(sql, params, exact_decimals):
    """The host's answer to one SQL statement (`{"records", "read", "decimals"}`)."""
    try:
        return _loads(_wit.db_query(sql, dumps(params), exact_decimals))
    except Err as err:
        raise _failure(err) from None


def db_schema():
    """The tables the job may use."""
    try:
        return _loads(_wit.db_schema())
    except Err as err:
        raise _failure(err) from None
