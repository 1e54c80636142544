"""The guest side of the host interface (`runtime/wit/metaexec.wit`, version 1.2.0).

Every request is a call into the host through the component's imports: no framing, no
shared file descriptors, nothing a script's `print()` could be mistaken for. Tables (a
query's rows, a result that is a list of rows) cross by typed column; other structured
values cross as one JSON text per call, encoded here and decoded by the host under the
job's memory budget.

This interpreter pays for every Python-level step (a function call, an allocation) far
more than native CPython does, so the per-value work here is left to C loops (`map`,
`zip`, `set`) wherever a Python loop would do the same.

Under plain CPython (the container backend), where there are no component imports, the
same four operations (`emit`, `log`, `db_query`, `db_schema`) come from `metaexec._socket`,
which carries them over the host's unix socket; `HostError`, `dumps` and `records` serve
both. `_table` and `_column` are the WIT path's alone: on the socket a table is plain JSON.
"""

import json
from functools import partial
from itertools import repeat
from operator import is_not

try:
    from componentize_py_types import Err
    from wit_world.imports import host as _wit
except ImportError:
    # Not the WASI runtime: the operations below are replaced by the socket's (at the
    # end of this module, once what they share is defined).
    _wit = None

if _wit is not None:
    _Floats = _wit.Column_Floats
    _Integers = _wit.Column_Integers
    _Texts = _wit.Column_Texts
    _MaybeFloats = _wit.Column_MaybeFloats
    _MaybeIntegers = _wit.Column_MaybeIntegers
    _MaybeTexts = _wit.Column_MaybeTexts
    _Values = _wit.Column_Values
    _Table = _wit.Table
_S64 = (-(1 << 63), (1 << 63) - 1)
_NONE = type(None)
_DICT = {dict}
_STR = {str}
_some = partial(is_not, None)


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


def _strict_encoder():
    """The C encoder `json.JSONEncoder(allow_nan=False, default=_default, separators=(",",
    ":")).encode` builds afresh on every call (with a closure and a dict), built once:
    making it costs more than encoding a short list of query parameters."""
    make = json.encoder.c_make_encoder
    if make is None:
        encode = json.JSONEncoder(allow_nan=False, default=_default, separators=(",", ":")).encode
        return lambda obj, _indent: (encode(obj),)
    return make({}, _default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)


_strict = _strict_encoder()
_join = "".join


def dumps(obj):
    """`obj` as JSON text (dicts, lists, numbers, strings, None, dates, Decimals)."""
    global _strict
    try:
        return _join(_strict(obj, 0))
    except (ValueError, TypeError, RecursionError):
        # A failed encoding can leave containers in the encoder's circular-reference
        # markers: the next call gets a fresh encoder.
        _strict = _strict_encoder()
        return json.dumps(_finite(obj), separators=(",", ":"))
    except BaseException:
        _strict = _strict_encoder()
        raise


_loads = json.loads


def _column(values):
    """One column of a table (a list), typed where every value has the same plain type,
    or that type and None."""
    kinds = set(map(type, values))
    count = len(kinds)
    if count == 1:
        kind = kinds.pop()
        if kind is float:
            return _Floats(values)
        if kind is str:
            return _Texts(values)
        if kind is int and _S64[0] <= min(values) and max(values) <= _S64[1]:
            return _Integers(values)
    elif count == 2 and _NONE in kinds:
        kinds.discard(_NONE)
        kind = kinds.pop()
        if kind is float:
            return _MaybeFloats(values)
        if kind is str:
            # A string that is not valid Unicode (a lone surrogate) goes as JSON, which the
            # host refuses, as it did before this column had a type.
            try:
                _join(filter(_some, values)).encode()
            except UnicodeEncodeError:
                return _Values(dumps(values))
            return _MaybeTexts(values)
        if kind is int and _S64[0] <= min(filter(_some, values)) and max(filter(_some, values)) <= _S64[1]:
            return _MaybeIntegers(values)
    return _Values(dumps(values))


def _table(rows):
    """`rows` by column, if it is a list of two or more dicts (not subclasses) with the
    same string keys in the same order; None otherwise."""
    if type(rows) is not list or len(rows) < 2:
        return None
    first = rows[0]
    if type(first) is not dict or not first or set(map(type, rows)) != _DICT:
        return None
    names = list(first)
    if list(map(list, rows)).count(names) != len(rows) or set(map(type, names)) != _STR:
        return None
    # Every row has the keys in the same order, so its values line up: transposed by
    # `zip`, one column per key.
    return _Table(names, list(map(_column, map(list, zip(*map(dict.values, rows))))))


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


def _row_builders(widest):
    """For each width n up to `widest`, a function of n keys and n columns returning the
    rows as dicts, written out for that width: `[{k0: v0, k1: v1} for v0, v1 in zip(c0,
    c1)]`. A dict display in a comprehension is about twice as fast here as
    `dict(zip(keys, values))`, which makes a `zip` and a tuple per row. Written once, when
    the module is imported into the runtime's snapshot."""
    builders = [None]
    for n in range(1, widest + 1):
        keys = ", ".join("k%d" % i for i in range(n))
        columns = ", ".join("c%d" % i for i in range(n))
        values = ", ".join("v%d" % i for i in range(n))
        pairs = ", ".join("k%d: v%d" % (i, i) for i in range(n))
        scope = {}
        source = "def rows(%s, %s):\n    return [{%s} for %s, in zip(%s)]\n" % (keys, columns, pairs, values, columns)
        exec(source, scope)
        builders.append(scope["rows"])
    return builders


_ROWS = _row_builders(32)


def records(names, columns, count):
    """The rows of a table as dicts: `names` the keys, `columns` lists of values, one per
    key, each `count` long. Repeated names keep the last column's value, as a JSON
    object with repeated keys does."""
    width = len(names)
    if not width:
        return [{} for _ in repeat(None, count)]
    if width < len(_ROWS):
        return _ROWS[width](*names, *columns)
    return [dict(zip(names, values)) for values in zip(*columns)]


def db_query(sql, params, exact_decimals):
    """The host's answer to one SQL statement: `(names, columns, count, read,
    decimals)`, each column a list of values (exact decimals still as `{"$decimal":
    ...}`)."""
    try:
        answer = _wit.db_query(sql, dumps(params), exact_decimals)
    except Err as err:
        raise _failure(err) from None
    table = answer.table
    columns = [_loads(c.value) if type(c) is _Values else c.value for c in table.columns]
    return table.names, columns, answer.count, answer.read, answer.decimals


def db_schema():
    """The tables the job may use."""
    try:
        return _loads(_wit.db_schema())
    except Err as err:
        raise _failure(err) from None


if _wit is None:
    # Plain CPython: the host is at the other end of a unix socket (or absent, when a
    # packaged script runs on its own). `_socket` takes `HostError` and `dumps` from here.
    from metaexec._socket import db_query, db_schema, emit, log  # noqa: E402, F811
