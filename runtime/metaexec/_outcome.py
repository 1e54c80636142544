"""What a run reports about its script, shared by the runtime's two entries: the WASI one
(`metaexec_app`) and the container's (`metaexec._container`). An uncaught exception becomes
the fields of a script error, and the parameters the script read become the names the host
checks a sweep against. Plain values only: each entry wraps them in its own records (WIT
records, or JSON on the host's socket), so this module imports nothing the WASI runtime's
snapshot does not already hold.
"""

import linecache
import sys
import traceback


def describe(exc, name, source, entry):
    """`exc`, raised by the script `name` whose text is `source`, as `(type_name, message,
    traceback, line, kind)`. `entry` is the globals of the entry module that ran the script:
    its frames at the top of the traceback are left out, as the user's code starts below
    them (told apart by module, not by `__name__`: the container's entry and the script are
    both `__main__`)."""
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals is entry:
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
    kind = getattr(type(exc), "_metaexec_kind", None)
    return (
        type(exc).__qualname__,
        message,
        text,
        line if line is not None and 0 <= line < 1 << 32 else None,
        kind if type(kind) is str else None,
    )


def show(text):
    """Writes a traceback to the process's stderr, as Python would for an uncaught
    exception."""
    try:
        sys.__stderr__.write(text)
        sys.__stderr__.flush()
    except BaseException:  # noqa: BLE001 - a broken stderr must not hide the exception
        pass


def flush():
    """What the script printed belongs to its run: flushed before the host is answered."""
    streams = (sys.stdout, sys.stderr)
    if streams != (sys.__stdout__, sys.__stderr__):
        streams += (sys.__stdout__, sys.__stderr__)
    for stream in streams:
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the host records a cap it stopped at
            pass


def params_read(given):
    """What the script read of `given` (a `metaexec.Params`): `(names, listed)`, `names` a
    list of `(name, fallback)` with the fallback a float or None."""
    names = []
    for name, default in given._read.items():
        if type(name) is str:
            if default is not None and type(default) is not float:
                try:
                    default = float(default)
                except OverflowError:  # an integer too large for a float: no fallback known
                    default = None
            names.append((name, default))
    return names, given._listed
