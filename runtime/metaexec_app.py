# The runtime's entry module: componentize-py imports it when it builds the component, and
# the memory snapshot it takes afterwards holds the interpreter with everything imported
# here. A run then starts from that snapshot and calls the `runner` exports
# (`runtime/wit/metaexec.wit`): `load` once, `run` once per run or sweep scenario.
#
# Every exception a script raises comes back as a `script-error`, never as a trap: an
# uncaught Python exception in an export traps the instance.

# What the snapshot holds besides the guest library: the standard-library modules scripts
# commonly use. Any other module imports from the read-only standard library folder.
import collections  # noqa: F401
import csv  # noqa: F401
import datetime  # noqa: F401
import gc
import decimal  # noqa: F401
import functools  # noqa: F401
import itertools  # noqa: F401
import json
import math  # noqa: F401
import random
import re  # noqa: F401
import statistics  # noqa: F401
import sys
import traceback

import metaexec
from metaexec import _outcome, db, finance, portfolio, report, scenarios  # noqa: F401
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.runner import Mode, ParamsRead, ScriptError

_module = type(sys)
_builtins = __builtins__
# The C scanner alone: `json.loads` also runs a regular expression over the text.
_scan = json.decoder.JSONDecoder().scan_once
_set_params = metaexec._set_params
_chdir = __import__("os").chdir
_marshal = __import__("marshal").dumps
_unmarshal = __import__("marshal").loads
_CodeType = type(compile("", "", "exec"))

# The loaded script: (name, source, code).
_script = None

# `random`'s shared generator (`random._inst`, behind `random.random()`, `random.gauss()`
# ...) starts every run from the run's seed. Seeding rebuilds the generator's 624-word
# state, which costs as much as a small script, and most scripts draw no number at all;
# so the generator is seeded when a run first reaches for it. Between runs, the module's
# names for the generator and its methods are out of its namespace; the module's
# `__getattr__`, which Python calls for a name a module lacks (`random.gauss`, `from
# random import gauss` alike), seeds the generator and puts them back. The module is
# reset to that state when a script is loaded (componentize-py's start-up reads
# `random.seed`, which puts them back) and after each run that used it, so a run also
# finds none of the names an earlier one replaced.
_rng = random._inst
_random_names = vars(random)
_RANDOM = {
    name: value
    for name, value in _random_names.items()
    if value is _rng or getattr(value, "__self__", None) is _rng
}
# The rest of the namespace, taken once everything is in it (see the end of this module):
# clearing the module's dict and filling it from this copy costs a quarter of deleting
# the names one by one.
_HIDDEN = None
# The C method underneath `random.seed`: no hashing, no Python-level checks.
_seed = __import__("_random").Random.seed
_from_bytes = int.from_bytes
# The seed of the running run, until the generator is seeded from it: 8 bytes, made a
# 65-bit integer (a 1 byte above them) so that seeding takes the same steps, and the same
# fuel, whatever the value.
_run_seed = None


def _random_getattr(name):
    global _run_seed
    value = _RANDOM.get(name)
    if value is None:
        raise AttributeError("module 'random' has no attribute %r" % (name,))
    if _run_seed is not None:
        _seed(_rng, _from_bytes(_run_seed + b"\x01", "little"))
        _rng.gauss_next = None
        _run_seed = None
    if _random_names.keys().isdisjoint(_RANDOM):
        _random_names.update(_RANDOM)
    else:
        # The script put one of the names in first: it keeps its own.
        for other, function in _RANDOM.items():
            _random_names.setdefault(other, function)
    return _random_names[name]


def _hide_random():
    """Resets `random`'s namespace to what the snapshot holds, less the generator's names."""
    _random_names.clear()
    _random_names.update(_HIDDEN)


random.__getattr__ = _random_getattr
random.__dir__ = lambda: sorted({*_random_names, *_RANDOM})


class _ImportCounter:
    """Counts imports that had to look for a module (the first import of a module not in
    the snapshot); a run that imports only what the snapshot holds leaves it at zero."""

    count = 0

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        cls.count += 1
        return None


def _describe(exc, name, source):
    """`exc` as a `script-error`; the traceback also goes to stderr, as it would natively."""
    type_name, message, text, line, kind = _outcome.describe(exc, name, source, _ENTRY)
    _flush()
    _outcome.show(text)
    return ScriptError(type_name=type_name, message=message, traceback=text, line=line, kind=kind)


# What the script printed belongs to its run: flushed before the host is answered. (A
# name of this module, so that every path here finds what it is set to.)
_flush = _outcome.flush
# This module's globals: its frames are left out of a script's traceback.
_ENTRY = globals()


class Runner(exports.Runner):
    def load(self, name, source, mode, compiled):
        global _script
        _hide_random()
        # The results folder is the working directory, so that `open("out.csv", "w")`
        # lands where the host collects files. (Not at import: the snapshot is taken
        # where there is no results folder.)
        try:
            _chdir("/results")
        except OSError:
            pass
        code = None
        if compiled is not None:
            try:
                code = _unmarshal(compiled)
            except Exception:  # noqa: BLE001 - then it is compiled afresh
                code = None
            if type(code) is not _CodeType or code.co_filename != name:
                code = None
        fresh = code is None
        if fresh:
            try:
                code = compile(source, name, "exec")
            except BaseException as exc:  # noqa: BLE001 - a syntax error is the script's
                raise Err(_describe(exc, name, source))
        db._remember_reads(mode == Mode.SWEEP)
        _script = (name, source, code)
        # Serialized here, before any of the script's own code has run in this instance.
        return _marshal(code) if fresh else None

    def run(self, params, seed):
        global _run_seed
        name, source, code = _script
        given = _set_params(_scan(params, 0)[0])
        # The snapshot froze `random`'s state: a run that uses it starts from its own seed
        # (and no `gauss()` value left over from the run before).
        _run_seed = seed
        main = _module("__main__")
        main.__file__ = name
        main.__builtins__ = _builtins
        sys.modules["__main__"] = main
        error = None
        try:
            exec(code, main.__dict__)
        except SystemExit as exc:
            if exc.code is not None and exc.code != 0:
                error = _describe(exc, name, source)
        except BaseException as exc:  # noqa: BLE001 - everything the script raises is reported
            error = _describe(exc, name, source)
        if _run_seed is None:
            # The run seeded the generator: the next run seeds it again.
            _hide_random()
        _flush()
        if error is not None:
            raise Err(error)
        return _params_read(given)


def _params_read(given):
    """What the script read of `given` (a `metaexec.Params`), for the host."""
    names, listed = _outcome.params_read(given)
    # Positional: keyword arguments cost this interpreter twice as much.
    return ParamsRead(names, listed)


def _warm():
    """Takes, once, the paths runs take, so that what they import lazily (`random`
    seeding from bytes or text, traceback formatting) is in the snapshot too, not imported
    by every run that takes them."""
    random.seed(b"\0" * 8)
    try:
        compile("1 +", "<warm>", "exec")
    except SyntaxError as exc:
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        raise ValueError("warm")
    except ValueError as exc:
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    json.dumps({"a": [1.5, None]})
    _scan('{"a": [1.5, null]}', 0)


_warm()
_HIDDEN = {name: value for name, value in _random_names.items() if name not in _RANDOM}
sys.meta_path.insert(0, _ImportCounter)
metaexec._import_counter = _ImportCounter

# Everything above lives as long as the instance, and every run starts from the snapshot
# of it: the collector is told to leave it out of every collection (`gc.freeze`, made for
# memory shared copy-on-write after `fork`). A collection that walked it would write to
# every object's header, so a run would dirty pages all over the snapshot (each a page the
# instance's reset must copy back) and spend its time on objects that are never garbage.
gc.collect()
gc.freeze()
