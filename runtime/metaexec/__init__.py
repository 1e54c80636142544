"""metaexec: the library every script run by metaexec imports.

Entry points (names are fixed; prompts, tests and users rely on them):

- `params`: the run's parameters, a read-only mapping (`params.get("noi_change", 0.0)`).
- `result(obj)`: the run's main result (a dict, or a list of row dicts).
- `emit(name, value)`: one named result.
- `log(msg)`: a progress line, shown to the person running the script.

Results travel to the host through the runtime's host interface, never through `print()`,
so scripts may print freely. Submodules (`metaexec.finance`, `metaexec.scenarios`,
`metaexec.portfolio`, `metaexec.report`, `metaexec.db`) are part of the runtime's snapshot:
importing them costs nothing.
"""

from metaexec import _host

__all__ = ["params", "result", "emit", "log", "runtime_info"]

_NUMBERS = (int, float)


class Params:
    """The run's parameters: a read-only mapping (`params.get("noi_change", 0.0)`,
    `params["noi_change"]`, `"noi_change" in params`, `dict(params)`).

    It notes which names the script reads, and the number it falls back to when one is
    absent, so that the host can tell a sweep over a name the script never reads (a typo)
    from a real one, and knows where a scenario without the name sits."""

    __slots__ = ("_values", "_read", "_listed")

    def __init__(self, values):
        self._values = values
        self._read = {}
        self._listed = False

    def _note(self, name, default):
        # The fallback is kept only while every read of the name gives the same number.
        if type(default) not in _NUMBERS or default != default:
            default = None
        read = self._read
        if name not in read:
            read[name] = default
        elif read[name] != default:
            read[name] = None

    def get(self, name, default=None):
        self._note(name, default)
        return self._values.get(name, default)

    def __getitem__(self, name):
        self._note(name, None)
        return self._values[name]

    def __contains__(self, name):
        self._note(name, None)
        return name in self._values

    def __iter__(self):
        self._listed = True
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def keys(self):
        self._listed = True
        return self._values.keys()

    def values(self):
        self._listed = True
        return self._values.values()

    def items(self):
        self._listed = True
        return self._values.items()

    def copy(self):
        """The parameters as a plain dict."""
        self._listed = True
        return dict(self._values)

    def __eq__(self, other):
        self._listed = True
        return self._values == (other._values if isinstance(other, Params) else other)

    __hash__ = None

    def __repr__(self):
        self._listed = True
        return "params(%r)" % (self._values,)


__import__("collections.abc").abc.Mapping.register(Params)

#: The run's parameters (read-only).
params = Params({})


def _set_params(values):
    # Each run (and each scenario of a sweep) sets its own before the script starts, so
    # `from metaexec import params` sees them. The runtime reads back what it noted. (It
    # hands over a dict it just parsed and keeps no other reference to: no copy needed.)
    global params
    params = Params(values if type(values) is dict else dict(values))
    return params


# Set by the runtime's entry module once the snapshot is taken: counts imports that had to
# look for a module, i.e. work a run did that the snapshot did not already hold.
_import_counter = None


def runtime_info():
    """What the runtime knows about itself: `{"python", "imports_since_snapshot"}`."""
    import sys

    return {
        "python": sys.version,
        "imports_since_snapshot": _import_counter.count if _import_counter is not None else None,
    }


def emit(name, value):
    """Records one named result, e.g. `emit("portfolio_dscr", 1.42)`.

    `value` may be any mix of dicts, lists, numbers, strings, booleans, None and dates.
    Emitting the same name twice keeps the last value.
    """
    if type(name) is not str or not name:
        raise TypeError("emit(name, value): name must be a non-empty string, got %r" % (name,))
    _host.emit(name, value)


def result(obj):
    """Records the run's main result: a dict, or a list of row dicts (shown as a table)."""
    _host.emit("result", obj)


def log(msg):
    """Sends a progress line to the person running the script."""
    _host.log(str(msg))


_SUBMODULES = ("db", "finance", "scenarios", "portfolio", "report")


def __getattr__(name):
    # In the runtime the submodules are imported already; elsewhere (the library's own
    # checks under native Python) they load on first use.
    if name in _SUBMODULES:
        __import__("metaexec." + name)
        return globals()[name]
    raise AttributeError("module 'metaexec' has no attribute %r" % (name,))
