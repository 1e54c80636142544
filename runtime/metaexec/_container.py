"""The container's entry: runs one script under plain CPython, as `metaexec_app` runs it in
the WASI runtime, and reports to the host over its socket (`metaexec._socket`):

    PYTHONPATH=/opt/metaexec python3 -m metaexec._container /app/script.py

`METAEXEC_SCRIPT_NAME` is the name the user knows the script by (its tracebacks show it;
default the file's own name). The run's parameters and seed come from the host (`hello`);
the script runs in a fresh `__main__` module with the results folder as its working
directory; its outcome (an uncaught exception as a script error, the parameters it read)
goes back in `finish`. The exit status is 0, 1 after an uncaught exception, or the status
a `SystemExit` asked for.

With `METAEXEC_WEB=1` the script is a web app: a Flask app's `run()` serves on
`0.0.0.0:$METAEXEC_PORT` (default 8000) without debugger or reloader, and a script that
only defines a WSGI `app` (or `application`) has it served there once its body has run.
The run ends when the server stops (SIGTERM stops it cleanly).

Without `METAEXEC_SOCKET` (a packaged script run on its own) the parameters come from
`METAEXEC_PARAMS` and `METAEXEC_SEED`, and the results are written to `results.json`.
"""

import os
import random
import signal
import sys

import metaexec
from metaexec import _outcome, _socket

# This module's globals: its frames are left out of a script's traceback. (Run with `-m`,
# this module is `__main__`, as the script's module is: the two are told apart by module.)
_ENTRY = globals()
_RESULTS = "/results"
_WEB_PORT = 8000
# The working directory at start: `python3 -m` puts it first on the path, where `python3
# script.py` puts the script's folder.
_START = os.getcwd()


def main(argv):
    """Runs the script `argv[0]`; returns the process's exit status."""
    if len(argv) != 1:
        sys.stderr.write("usage: python3 -m metaexec._container /app/script.py\n")
        return 2
    path = os.path.abspath(argv[0])  # read after the working directory changes
    name = os.environ.get("METAEXEC_SCRIPT_NAME") or os.path.basename(path)
    try:
        params, seed = _socket.hello()
    except ValueError as exc:  # standalone: a bad METAEXEC_PARAMS or METAEXEC_SEED
        sys.stderr.write("metaexec: %s\n" % exc)
        return 2
    given = metaexec._set_params(params)
    if seed is not None:
        random.seed(seed)
    _as_script(path, name)
    try:
        os.chdir(_RESULTS)
    except OSError:
        pass
    error, status = _run(path, name)
    _outcome.flush()
    _socket.finish(error, _params_read(given))
    _outcome.flush()
    return status


def _as_script(path, name):
    """What the script sees of how it was started is what `python3 script.py` shows it:
    its own name as `sys.argv`, its folder first on the path."""
    sys.argv = [name]
    if sys.path and sys.path[0] == _START:
        sys.path[0] = os.path.dirname(path)


def _run(path, name):
    """Runs the script; returns `(error, status)`: the fields of a script error (or None)
    and the exit status."""
    source = ""
    try:
        source = _read(path)
        code = compile(source, name, "exec")
        module = _fresh_main(name)
        web = _web()
        if web is not None:
            web.prepare()
        exec(code, module.__dict__)
        if web is not None and not web.served:
            web.serve(module.__dict__)
    except SystemExit as exc:
        if exc.code is None or exc.code == 0:
            return None, 0
        return _describe(exc, name, source), exc.code if type(exc.code) is int else 1
    except BaseException as exc:  # noqa: BLE001 - everything the script raises is reported
        return _describe(exc, name, source), 1
    return None, 0


def _web():
    """Web mode's server, if the run is a web app (a bad port is the run's error)."""
    if os.environ.get("METAEXEC_WEB") != "1":
        return None
    return _Web(int(os.environ.get("METAEXEC_PORT") or _WEB_PORT))


def _read(path):
    """The script's text, decoded as Python decodes a source file (a coding line, a BOM)."""
    import tokenize

    with tokenize.open(path) as f:
        return f.read()


def _fresh_main(name):
    """A new `__main__` module for the script, in place of this one."""
    module = type(sys)("__main__")
    module.__file__ = name
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    return module


def _describe(exc, name, source):
    """`exc` as the host's script error (a dict); the traceback also goes to stderr."""
    type_name, message, text, line, kind = _outcome.describe(exc, name, source, _ENTRY)
    _outcome.flush()
    _outcome.show(text)
    return {"type_name": _text(type_name), "message": _text(message), "traceback": _text(text), "line": line,
            "kind": kind if kind is None else _text(kind)}


def _text(value):
    """`value` as text the socket can carry: a lone surrogate (not Unicode) escaped."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _params_read(given):
    """What the script read of `given`, for `finish`: JSON has no infinite fallback."""
    names, listed = _outcome.params_read(given)
    names = [[_text(name), None if default is None or default - default != 0.0 else default]
             for name, default in names]
    return {"names": names, "listed": listed}


class _Web:
    """Web mode: the script's app is served on `0.0.0.0:port`, by Flask's own server when
    the script calls `app.run()`, else by `wsgiref` once the script's body has run."""

    def __init__(self, port):
        self.port = port
        self.served = False

    def prepare(self):
        """Before the script runs: SIGTERM (`docker stop`) ends the run as a success, and
        a Flask app's `run()` serves where the host listens."""
        signal.signal(signal.SIGTERM, _stopped)
        try:
            import flask
        except Exception:  # noqa: BLE001 - no Flask (or a broken one): nothing to hold
            return
        original = flask.Flask.run
        web = self

        def run(app, host=None, port=None, debug=None, load_dotenv=True, **options):
            """Flask's `run()`, held to the container's port: no debugger, no reloader."""
            web.served = True
            web.announce()
            options["use_reloader"] = False
            options["use_debugger"] = False
            return original(app, "0.0.0.0", web.port, False, load_dotenv, **options)

        flask.Flask.run = run

    def serve(self, namespace):
        """Serves the script's WSGI `app` (or `application`) until the process is stopped."""
        app = namespace.get("app")
        if not callable(app):
            app = namespace.get("application")
        if not callable(app):
            raise RuntimeError("a web app must define `app` (a WSGI app such as Flask): none was found "
                               "after the script ran")
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIServer, make_server

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        server = make_server("0.0.0.0", self.port, app, server_class=Server)
        self.served = True
        self.announce()
        server.serve_forever()

    def announce(self):
        metaexec.log("serving on port %d" % self.port)


def _stopped(signum, frame):
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
