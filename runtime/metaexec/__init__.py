"""metaexec: the library every script run by metaexec imports.

Entry points (names are fixed; prompts, tests and users rely on them):

- `params`: the run's parameters, a read-only mapping (`params.get("noi_change", 0.0)`).
- `result(obj)`: the run's main result (a dict, or a list of row dicts).
- `emit(name, value)`: one named result.
- `log(msg)`: a progress line, shown to the person running the script.

Results travel to the host over a dedicated channel, never through `print()`, so scripts
may print freely. Submodules (`metaexec.finance`, `metaexec.scenarios`,
`metaexec.portfolio`, `metaexec.report`, `metaexec.db`) are imported on first use.
"""

from metaexec import _channel

__all__ = ["params", "result", "emit", "log"]

_mappingproxy = type(type.__dict__)

_hello = _channel.request({"op": "hello", "v": _channel.PROTOCOL_VERSION})

#: The run's parameters (read-only).
params = _mappingproxy(dict(_hello.get("params") or {}))


def _set_params(values):
    # Sweeps run one scenario after another in one interpreter; each scenario's
    # `from metaexec import params` must see its own.
    global params
    params = _mappingproxy(dict(values))


def emit(name, value):
    """Records one named result, e.g. `emit("portfolio_dscr", 1.42)`.

    `value` may be any mix of dicts, lists, numbers, strings, booleans, None and dates.
    Emitting the same name twice keeps the last value.
    """
    if type(name) is not str or not name:
        raise TypeError("emit(name, value): name must be a non-empty string, got %r" % (name,))
    _channel.send({"op": "emit", "name": name, "value": value})


def result(obj):
    """Records the run's main result: a dict, or a list of row dicts (shown as a table)."""
    _channel.send({"op": "result", "value": obj})


def log(msg):
    """Sends a progress line to the person running the script."""
    _channel.send({"op": "log", "message": str(msg)})


_SUBMODULES = ("db", "finance", "scenarios", "portfolio", "report")


def __getattr__(name):
    # `import metaexec` stays cheap; `metaexec.db` & co. load on first use.
    if name in _SUBMODULES:
        __import__("metaexec." + name)
        return globals()[name]
    raise AttributeError("module 'metaexec' has no attribute %r" % (name,))
