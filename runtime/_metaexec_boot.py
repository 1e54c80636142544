# The sandbox's entry point. The host runs `python -S -c "import _metaexec_boot" NAME SOURCE`
# with the guest library on PYTHONPATH.
#
# It is a module rather than the `-c` text itself because this interpreter compiles source
# slowly: compiling this file on every start cost a third of a fresh run; its `.pyc`,
# compiled once into the cache, loads in a fraction of that.
#
# It compiles SOURCE under the user's file NAME (so tracebacks carry the user's line
# numbers), runs it as `__main__`, and reports an uncaught exception to the host as a
# structured frame. It imports nothing beyond built-in modules on the success path, because
# interpreter start-up is the largest part of a fresh run: the guest library is imported
# only when the script asks for it.
import sys


def _metaexec_boot():
    name = sys.argv[1]
    source = sys.argv[2]
    sys.argv = [name] + sys.argv[3:]
    import posix
    # `-c` puts the working directory first on the path; scripts import from the guest
    # library and the standard library only. The results folder is the working
    # directory so that `open("out.csv", "w")` lands where the host collects files.
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    try:
        posix.chdir("/results")
    except OSError:
        pass
    if posix.environ.get(b"METAEXEC_MODE") == b"sweep":
        return _metaexec_sweep(name, source)
    main = type(sys)("__main__")
    main.__file__ = name
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    try:
        code = compile(source, name, "exec")
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - everything the script raises is reported
        return _metaexec_report(exc, name, source)
    return 0


def _metaexec_describe(exc, name, source):
    """The exception as the host's `exception` frame wants it; the traceback also goes
    to stderr."""
    import linecache
    import traceback

    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    tb = exc.__traceback__
    # Skip the frames of this module: the user's code starts one level down.
    while tb is not None and tb.tb_frame.f_globals.get("__name__") == __name__:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == name:
        line = exc.lineno
    walk = tb
    while walk is not None:
        if walk.tb_frame.f_code.co_filename == name:
            line = walk.tb_lineno
        walk = walk.tb_next
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a broken stdout must not hide the exception
        pass
    sys.stderr.write(text)
    sys.stderr.flush()
    return {
        "type": type(exc).__qualname__,
        "message": str(exc),
        "traceback": text,
        "line": line,
        "kind": getattr(type(exc), "_metaexec_kind", None),
    }


def _metaexec_report(exc, name, source):
    report = _metaexec_describe(exc, name, source)
    try:
        from metaexec import _channel

        report["op"] = "exception"
        _channel.send(report)
    except BaseException:  # noqa: BLE001 - the stderr copy above still tells the story
        pass
    return 1


def _metaexec_sweep(name, source):
    """Sweep mode: compile once, then run the script once per scenario the host hands
    out, each time in a fresh `__main__` namespace with that scenario's params. Modules the
    script imports stay loaded between scenarios; that is what makes a scenario cheap.

    Scenarios come in batches (one round trip each) and each end is one small one-way
    frame, so the loop costs little next to the script itself."""
    import metaexec
    from metaexec import _channel

    try:
        code = compile(source, name, "exec")
    except BaseException as exc:  # noqa: BLE001 - a syntax error ends the whole sweep
        return _metaexec_report(exc, name, source)
    set_params = metaexec._set_params
    scenario_end = _channel.scenario_end
    new_module = type(sys)
    builtins = __builtins__
    while True:
        batch = _channel.request({"op": "sweep.next"})
        if not batch:
            return 0
        for params in batch:
            set_params(params)
            main = new_module("__main__")
            main.__file__ = name
            main.__builtins__ = builtins
            sys.modules["__main__"] = main
            error = None
            try:
                exec(code, main.__dict__)
            except SystemExit as exc:
                if exc.code is not None and exc.code != 0:
                    error = {"type": "SystemExit", "message": str(exc.code), "traceback": "", "line": None}
            except BaseException as exc:  # noqa: BLE001 - a failing scenario does not stop the sweep
                error = _metaexec_describe(exc, name, source)
            # What the scenario printed belongs to it: flush before telling the host it
            # ended.
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:  # noqa: BLE001 - the host records a cap it stopped at
                pass
            scenario_end(error)


raise SystemExit(_metaexec_boot())
