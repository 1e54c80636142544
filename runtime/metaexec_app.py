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
import decimal  # noqa: F401
import functools  # noqa: F401
import itertools  # noqa: F401
import json
import linecache
import math  # noqa: F401
import random
import re  # noqa: F401
import statistics  # noqa: F401
import sys
import traceback

import metaexec
from metaexec import db, finance, portfolio, report, scenarios  # noqa: F401
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.runner import Mode, ParamsRead, ScriptError

_module = type(sys)
_builtins = __builtins__
# The C scanner alone: `json.loads` also runs a regular expression over the text.
_scan = json.decoder.JSONDecoder().scan_once
_set_params = metaexec._set_params
_seed = random.seed
_chdir = __import__("os").chdir
_marshal = __import__("marshal").dumps
_unmarshal = __import__("marshal").loads
_CodeType = type(compile("", "", "exec"))

# The loaded script: (name, source, code).
_script = None


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
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    tb = exc.__traceback__
    # Skip this module's frames: the user's code starts one level down.
    while tb is not None and tb.tb_frame.f_globals.get("__name__") == __name__:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # noqa: BLE001 - an exception whose str() raises still ends here
        text = "%s (its traceback could not be formatted)\n" % type(exc).__qualname__
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == name and isinstance(exc.lineno, int):
        line = exc.lineno
    walk = tb
    while walk is not None:
        if walk.tb_frame.f_code.co_filename == name:
            line = walk.tb_lineno
        walk = walk.tb_next
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001
        message = "(the exception's message could not be read)"
    _flush()
    try:
        sys.__stderr__.write(text)
        sys.__stderr__.flush()
    except BaseException:  # noqa: BLE001 - a broken stderr must not hide the exception
        pass
    kind = getattr(type(exc), "_metaexec_kind", None)
    return ScriptError(
        type_name=type(exc).__qualname__,
        message=message,
        traceback=text,
        line=line if line is not None and 0 <= line < 1 << 32 else None,
        kind=kind if type(kind) is str else None,
    )


def _flush():
    """What the script printed belongs to its run: flushed before the host is answered."""
    streams = (sys.stdout, sys.stderr)
    if streams != (sys.__stdout__, sys.__stderr__):
        streams += (sys.__stdout__, sys.__stderr__)
    for stream in streams:
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the host records a cap it stopped at
            pass


class Runner(exports.Runner):
    def load(self, name, source, mode, compiled):
        global _script
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
        name, source, code = _script
        given = _set_params(_scan(params, 0)[0])
        # The snapshot froze `random`'s state: every run starts from its own seed. As
        # bytes, the seed is hashed to a fixed length: seeding costs the same whatever the
        # value, so a run's fuel does not depend on it.
        _seed(seed.to_bytes(8, "little"))
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
        _flush()
        if error is not None:
            raise Err(error)
        return _params_read(given)


def _params_read(given):
    """What the script read of `given` (a `metaexec.Params`), for the host."""
    names = []
    for name, default in given._read.items():
        if type(name) is str:
            try:
                names.append((name, None if default is None else float(default)))
            except OverflowError:  # an integer too large for a float: no fallback known
                names.append((name, None))
    return ParamsRead(names=names, listed=given._listed)


def _warm():
    """Takes, once, the paths every run takes, so that what they import lazily (`random`
    seeding from bytes, traceback formatting) is in the snapshot too, not imported by
    every run."""
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
sys.meta_path.insert(0, _ImportCounter)
metaexec._import_counter = _ImportCounter
