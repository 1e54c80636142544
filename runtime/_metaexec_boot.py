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
    # `-c` puts the working directory first on the path; scripts import from the guest
    # library and the standard library only. The results folder is the working
    # directory so that `open("out.csv", "w")` lands where the host collects files.
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    try:
        import posix

        posix.chdir("/results")
    except OSError:
        pass
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


def _metaexec_report(exc, name, source):
    import linecache
    import traceback

    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    tb = exc.__traceback__
    # Skip the frames of this module: the user's code starts one level down.
    while tb is not None and tb.tb_frame.f_globals.get("__name__") == __name__:
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    text = "".join(lines)
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
    try:
        from metaexec import _channel

        _channel.send(
            {
                "op": "exception",
                "type": type(exc).__qualname__,
                "message": str(exc),
                "traceback": text,
                "line": line,
                "kind": getattr(type(exc), "_metaexec_kind", None),
            }
        )
    except BaseException:  # noqa: BLE001 - the stderr copy above still tells the story
        pass
    return 1


raise SystemExit(_metaexec_boot())
