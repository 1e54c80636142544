"""Tests of the container backend's guest side: `metaexec._container` (the entry) and
`metaexec._socket` (the host protocol, version 1), run under plain CPython against a fake
host serving the protocol on a unix socket. Plain asserts, no pytest:

    python3 runtime/tests/check_container.py

Each test runs the entry as a subprocess (`python3 -m metaexec._container script.py` with
`PYTHONPATH=runtime`), as the container does. Prints one line per failing test and a
summary; exits 1 on any failure.
"""

import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME = os.path.normpath(os.path.join(HERE, ".."))
# Where the entry leaves the working directory: the results folder if this machine has one.
RESULTS = "/results" if os.path.isdir("/results") else None
TIMEOUT = 60

# The fake host closes the connection instead of answering.
CLOSE = object()


class FakeHost:
    """A host for one run: serves protocol version 1 on a unix socket in a temporary
    folder, records every request (decoded) in `requests`, and answers from `answers`
    (op -> an answer, or a function of the request returning one); hello, emit, log and
    finish are answered `ok` unless `answers` says otherwise."""

    def __init__(self, params=None, seed=None, answers=None):
        self.folder = tempfile.mkdtemp(prefix="metaexec-host-")
        self.path = os.path.join(self.folder, "host.sock")
        self.answers = {"hello": {"ok": {"params": params or {}, "seed": seed}}, "emit": {"ok": None},
                        "log": {"ok": None}, "finish": {"ok": None}}
        self.answers.update(answers or {})
        self.requests = []
        self.connections = 0
        self.lines = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn, conn.makefile("rb") as reader:
            for line in reader:
                self.lines.append(line)
                request = json.loads(line)
                self.requests.append(request)
                answer = self.answers.get(request.get("op"), {"err": {"kind": "db_error", "message": "no answer"}})
                if callable(answer):
                    answer = answer(request)
                if answer is CLOSE:
                    return
                conn.sendall((json.dumps(answer) + "\n").encode("utf-8"))

    def ops(self):
        return [r["op"] for r in self.requests]

    def emitted(self):
        """The values emitted, decoded: name -> value (the last one)."""
        return {r["name"]: json.loads(r["value"]) for r in self.requests if r["op"] == "emit"}

    def finish(self):
        finishes = [r for r in self.requests if r["op"] == "finish"]
        assert len(finishes) == 1, self.ops()
        return finishes[0]

    def close(self):
        self.server.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def script_file(source, name="script.py"):
    """`source` (dedented) written to a fresh folder, read-only as in the container."""
    folder = tempfile.mkdtemp(prefix="metaexec-app-")
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(source).lstrip("\n"))
    os.chmod(path, 0o444)
    return path


def environment(host=None, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("METAEXEC_") and k not in ("DATABASE_URL", "PYTHONPATH")}
    env["PYTHONPATH"] = RUNTIME
    if host is not None:
        env["METAEXEC_SOCKET"] = host.path
    env.update(extra)
    return env


def command(path):
    return [sys.executable, "-m", "metaexec._container", path]


def run(source, host=None, name="script.py", cwd=None, **extra):
    """Runs `source` through the entry; returns the finished process (text output)."""
    path = script_file(source, name)
    cwd = cwd or tempfile.mkdtemp(prefix="metaexec-results-")
    return subprocess.run(command(path), env=environment(host, **extra), cwd=cwd, capture_output=True,
                          text=True, timeout=TIMEOUT)


def hosted(source, name="script.py", **host_args):
    """Runs `source` against a fresh fake host; returns `(process, host)`."""
    host = FakeHost(**host_args)
    try:
        return run(source, host, name), host
    finally:
        host.close()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port, path="/", deadline=20.0):
    """The body of `GET path` on the local port, once something serves it."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as response:
                return response.read().decode("utf-8")
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def stopped(process):
    """SIGTERM, as `docker stop` sends; the process's status and output."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


# --------------------------------------------------------------------------- the library


def test_library_imports_under_plain_python():
    check = ("import sys, metaexec, metaexec.db, metaexec.finance, metaexec.scenarios, metaexec.portfolio,"
             " metaexec.report, metaexec._container\n"
             "from metaexec import _host, _socket\n"
             "assert _host._wit is None and _host.emit is _socket.emit and _host.db_query is _socket.db_query\n"
             "assert not {'wit_world', 'componentize_py_types', 'sqlite3'} & set(sys.modules), sys.modules\n"
             "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", check], env=environment(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0 and done.stdout == "ok\n", done


# --------------------------------------------------------------------------- a run


def test_params_seed_results_and_logs_reach_the_host():
    done, host = hosted("""
        import random, sys, os
        import metaexec
        from metaexec import params
        print("printed", sys.argv, __file__, __name__)
        metaexec.log("starting\\nsecond line é")
        metaexec.emit("read", {"noi_change": params.get("noi_change", 0.0), "name": params["name"],
                               "missing": params.get("missing", 2), "has": "other" in params})
        metaexec.emit("draw", random.random())
        metaexec.emit("odd", {"nan": float("nan"), "set": {1}, 1: "key"})
        metaexec.result([{"property": "A", "dscr": 1.5}, {"property": "B", "dscr": None}])
        metaexec.emit("cwd", os.getcwd())
    """, name="dscr.py", params={"noi_change": -0.1, "name": "x"}, seed=42)
    assert done.returncode == 0, done
    assert host.connections == 1
    assert host.requests[0] == {"op": "hello", "version": 1}, host.requests[0]
    assert host.ops() == ["hello", "log", "emit", "emit", "emit", "emit", "emit", "finish"], host.ops()
    assert host.requests[1]["message"] == "starting\nsecond line é"
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in host.lines)
    emitted = host.emitted()
    assert emitted["read"] == {"noi_change": -0.1, "name": "x", "missing": 2, "has": False}, emitted
    assert emitted["draw"] == random.Random(42).random(), emitted["draw"]
    assert emitted["odd"] == {"nan": None, "set": [1], "1": "key"}, emitted["odd"]
    assert emitted["result"] == [{"property": "A", "dscr": 1.5}, {"property": "B", "dscr": None}]
    assert [r["value"] for r in host.requests if r.get("name") == "result"] == [
        '[{"property":"A","dscr":1.5},{"property":"B","dscr":null}]']
    if RESULTS is None:
        assert emitted["cwd"] != RESULTS
    finish = host.finish()
    assert finish["error"] is None, finish
    assert finish["params_read"] == {"names": [["noi_change", 0.0], ["name", None], ["missing", 2.0],
                                               ["other", None]], "listed": False}, finish
    assert done.stdout == "printed ['dscr.py'] dscr.py __main__\n", done.stdout


def test_script_starts_as_python_would_start_it():
    # A relative path, and a module of the script's own beside it.
    path = script_file("""
        import sys
        import helper
        print(helper.VALUE, sys.argv)
    """, "main.py")
    with open(os.path.join(os.path.dirname(path), "helper.py"), "w") as f:
        f.write("VALUE = 41 + 1\n")
    host = FakeHost()
    try:
        done = subprocess.run(command("main.py"), env=environment(host, METAEXEC_SCRIPT_NAME="report.py"),
                              cwd=os.path.dirname(path), capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        host.close()
    assert done.returncode == 0 and done.stdout == "42 ['report.py']\n", done


def test_listing_params_is_reported():
    done, host = hosted("""
        from metaexec import params
        dict(params)
    """, params={"a": 1})
    assert done.returncode == 0, done
    assert host.finish()["params_read"] == {"names": [["a", None]], "listed": True}, host.finish()


def test_database_answers_and_refusals():
    wide = list(range(200000))

    def db_query(request):
        sql = request["sql"]
        if "denied" in sql:
            return {"err": {"kind": "db_denied", "message": "writes are not allowed", "hint": "read only"}}
        if "broken" in sql:
            return {"err": {"kind": "db_error", "message": "no such table: broken", "hint": None}}
        if "wide" in sql:
            return {"ok": {"names": ["n"], "columns": [wide], "count": len(wide), "read": True, "decimals": False}}
        if "exact" in sql:
            return {"ok": {"names": ["v"], "columns": [[{"$decimal": "1.10"}, None]], "count": 2, "read": True,
                           "decimals": True}}
        if "id = ?" in sql:
            return {"ok": {"names": ["id"], "columns": [[7]], "count": 1, "read": True, "decimals": False}}
        return {"ok": {"names": ["id", "name"], "columns": [[1, 2], ["A", None]], "count": 2, "read": True,
                       "decimals": False}}

    schema = {"dialect": "sqlite", "tables": [], "joins": [], "text": "joins: none\n"}
    done, host = hosted("""
        import datetime
        from metaexec import db, emit
        emit("rows", db.query("SELECT id, name FROM t WHERE x = ? AND d = ?", [1, datetime.date(2024, 1, 31)]))
        emit("one", db.query_one("SELECT id FROM t WHERE id = ?", (7,)) is not None)
        emit("wide", len(db.query("SELECT n FROM wide")))
        exact = db.query("SELECT v FROM exact", exact_decimals=True)
        emit("exact", [type(r["v"]).__name__ + ":" + str(r["v"]) for r in exact])
        for sql, cls in (("DELETE FROM denied", db.DenyError), ("SELECT * FROM broken", db.QueryError)):
            try:
                db.query(sql)
            except cls as e:
                emit(cls.__name__, [e.kind, e.hint, str(e), isinstance(e, db.DbError)])
        emit("schema", db.schema())
    """, answers={"db_query": db_query, "db_schema": {"ok": json.dumps(schema)}})
    assert done.returncode == 0, done
    queries = [r for r in host.requests if r["op"] == "db_query"]
    assert queries[0] == {"op": "db_query", "sql": "SELECT id, name FROM t WHERE x = ? AND d = ?",
                          "params": '[1,"2024-01-31"]', "exact_decimals": False}, queries[0]
    assert queries[1]["params"] == "[7]" and queries[3]["exact_decimals"] is True
    emitted = host.emitted()
    assert emitted["rows"] == [{"id": 1, "name": "A"}, {"id": 2, "name": None}], emitted["rows"]
    assert emitted["wide"] == 200000
    assert emitted["exact"] == ["Decimal:1.10", "NoneType:None"], emitted["exact"]
    assert emitted["DenyError"] == ["db_denied", "read only", "writes are not allowed (hint: read only)", True]
    assert emitted["QueryError"] == ["db_error", None, "no such table: broken", True]
    assert emitted["schema"] == schema
    assert host.finish()["error"] is None


def test_uncaught_exception_is_reported_with_the_scripts_frames():
    done, host = hosted("""
        from metaexec import emit
        emit('partial', 'kept')

        def ratio(noi, debt_service):
            return noi / debt_service

        ratio(100.0, 0)
    """, name="dscr_check.py")
    assert done.returncode == 1, done
    assert host.ops() == ["hello", "emit", "finish"], host.ops()
    error = host.finish()["error"]
    assert error["type_name"] == "ZeroDivisionError" and "division by zero" in error["message"], error
    assert error["line"] == 5 and error["kind"] is None, error
    tb = error["traceback"]
    assert 'File "dscr_check.py", line 7, in <module>' in tb and 'File "dscr_check.py", line 5, in ratio' in tb, tb
    assert "return noi / debt_service" in tb, "source lines shown: " + tb
    assert tb.count('File "') == 2 and "_container" not in tb, "only the script's frames: " + tb
    assert "ZeroDivisionError" in done.stderr and 'File "dscr_check.py", line 5' in done.stderr, done.stderr


def test_database_refusal_uncaught_carries_its_kind():
    done, host = hosted("""
        from metaexec import db
        db.query("DELETE FROM loans")
    """, answers={"db_query": {"err": {"kind": "db_denied", "message": "writes are not allowed", "hint": None}}})
    assert done.returncode == 1, done
    error = host.finish()["error"]
    assert error["type_name"] == "DenyError" and error["kind"] == "db_denied" and error["line"] == 2, error


def test_syntax_error_is_reported_with_its_line():
    done, host = hosted("x = 1\ny = (2,\nprint(x\n", name="broken.py")
    assert done.returncode == 1, done
    error = host.finish()["error"]
    assert error["type_name"] == "SyntaxError" and error["line"] is not None and error["line"] >= 2, error
    assert "broken.py" in error["traceback"] and "_container" not in error["traceback"], error


def test_system_exit_sets_the_status():
    for source, status, message in (("import sys\nsys.exit(3)\n", 3, "3"), ("import sys\nsys.exit(0)\n", 0, None),
                                    ("raise SystemExit\n", 0, None), ("import sys\nsys.exit('bad input')\n", 1,
                                                                      "bad input")):
        done, host = hosted(source)
        assert done.returncode == status, (source, done)
        error = host.finish()["error"]
        if message is None:
            assert error is None, (source, error)
        else:
            assert error["type_name"] == "SystemExit" and error["message"] == message, (source, error)
            assert error["line"] == 2, (source, error)


def test_stop_ends_the_process_whatever_the_script_catches():
    for op, call in (("emit", "metaexec.emit('a', 1)"), ("log", "metaexec.log('x')"),
                     ("db_query", "metaexec.db.query('SELECT 1')")):
        done, host = hosted("""
            import metaexec, metaexec.db
            for attempt in range(3):
                try:
                    %s
                except BaseException:
                    pass
            print("continued")
        """ % call, answers={op: {"stop": "the run went past its output cap"}})
        assert done.returncode == 125, (op, done)
        assert "continued" not in done.stdout, (op, done.stdout)
        assert "the run went past its output cap" in done.stderr, (op, done.stderr)
        assert host.ops() == ["hello", op], (op, host.ops())


def test_a_lost_host_fails_queries_and_ends_the_run():
    done, host = hosted("""
        from metaexec import db, emit
        for attempt in range(2):
            try:
                db.query("SELECT 1")
            except db.QueryError as e:
                print("caught", e.kind)
        emit("after", 1)
        print("continued")
    """, answers={"db_query": CLOSE})
    assert done.returncode == 125, done
    assert done.stdout == "caught db_error\ncaught db_error\n", done.stdout
    assert "continued" not in done.stdout and "metaexec:" in done.stderr, done
    assert host.ops() == ["hello", "db_query"], host.ops()


def test_an_unreachable_host_ends_the_run():
    path = script_file("print('ran')\n")
    env = environment(METAEXEC_SOCKET=os.path.join(tempfile.mkdtemp(), "absent.sock"))
    done = subprocess.run(command(path), env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 125 and done.stdout == "" and "absent.sock" in done.stderr, done


# --------------------------------------------------------------------------- standalone


def _sqlite_file():
    path = os.path.join(tempfile.mkdtemp(prefix="metaexec-db-"), "demo db.sqlite")
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE properties (property_id INTEGER PRIMARY KEY, property_name TEXT NOT NULL);
        CREATE TABLE loans (loan_id INTEGER PRIMARY KEY, property_id INTEGER REFERENCES properties,
                            rate REAL, doc BLOB);
        INSERT INTO properties VALUES (1, 'Orlando Fashion Square'), (2, 'Lakeside Plaza');
        INSERT INTO loans VALUES (10, 1, 0.055, x'0102'), (11, 2, NULL, NULL);
    """)
    conn.commit()
    conn.close()
    return path


def _results_file(cwd):
    with open(os.path.join(RESULTS or cwd, "results.json"), encoding="utf-8") as f:
        text = f.read()
    return text, json.loads(text)


def test_standalone_writes_results_and_reads_sqlite():
    db_path = _sqlite_file()
    cwd = tempfile.mkdtemp(prefix="metaexec-results-")
    done = run("""
        import random
        import metaexec
        from metaexec import db, params
        print("hello from the script")
        metaexec.log("working")
        rows = db.query("SELECT p.property_name, l.rate, l.doc FROM properties p JOIN loans l"
                        " ON l.property_id = p.property_id WHERE l.loan_id >= ? ORDER BY l.loan_id",
                        [params.get("from", 0)])
        metaexec.result(rows)
        metaexec.emit("draw", random.random())
        metaexec.emit("text", "é ✓")
        metaexec.emit("empty", len(db.query("SELECT * FROM loans WHERE 0")))
        schema = db.schema()
        metaexec.emit("schema", [schema["dialect"], [t["name"] for t in schema["tables"]], schema["text"]])
        try:
            db.query("DELETE FROM loans")
        except db.DenyError as e:
            metaexec.emit("write", e.kind)
        try:
            db.query("SELECT * FROM nowhere")
        except db.QueryError as e:
            metaexec.emit("missing", e.kind)
    """, cwd=cwd, METAEXEC_PARAMS='{"from": 10}', METAEXEC_SEED="7", DATABASE_URL="sqlite://" + db_path)
    assert done.returncode == 0, done
    assert done.stdout == "hello from the script\n", done.stdout
    assert "[metaexec] working" in done.stderr, done.stderr
    text, results = _results_file(cwd)
    assert "\n  " in text and "é ✓" in text, "pretty UTF-8: " + text
    assert results["result"] == [{"property_name": "Orlando Fashion Square", "rate": 0.055, "doc": "AQI="},
                                 {"property_name": "Lakeside Plaza", "rate": None, "doc": None}], results
    assert results["draw"] == random.Random(7).random()
    assert results["empty"] == 0
    dialect, tables, schema_text = results["schema"]
    assert dialect == "sqlite" and tables == ["loans", "properties"], results["schema"]
    assert "loans(loan_id integer PK, property_id integer FK→properties, rate real, doc blob) 2 rows" in schema_text
    assert "joins: loans.property_id = properties.property_id" in schema_text, schema_text
    assert results["write"] == "db_denied" and results["missing"] == "db_error", results


def test_standalone_error_still_writes_results():
    cwd = tempfile.mkdtemp(prefix="metaexec-results-")
    done = run("""
        import metaexec
        from metaexec import db
        metaexec.emit("before", [1, 2])
        try:
            db.query("SELECT 1")
        except db.QueryError as e:
            metaexec.emit("no database", [str(e), e.hint])
        raise ValueError("stop here")
    """, cwd=cwd, name="fails.py")
    assert done.returncode == 1, done
    assert done.stdout == "" and 'File "fails.py", line 8' in done.stderr, done
    _, results = _results_file(cwd)
    assert results["before"] == [1, 2], results
    message, hint = results["no database"]
    assert message.startswith("no database proxy in this container") and "DATABASE_URL=sqlite:///" in hint, results


def test_standalone_rejects_bad_params():
    done = run("print('ran')\n", METAEXEC_PARAMS="[1, 2]")
    assert done.returncode == 2 and done.stdout == "" and "METAEXEC_PARAMS" in done.stderr, done


# --------------------------------------------------------------------------- web mode


def _web(source, host, port):
    path = script_file(source, "web.py")
    env = environment(host, METAEXEC_WEB="1", METAEXEC_PORT=str(port))
    return subprocess.Popen(command(path), env=env, cwd=tempfile.mkdtemp(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_web_mode_serves_a_wsgi_app():
    host = FakeHost(params={"greeting": "hi"})
    port = free_port()
    process = _web("""
        from metaexec import params, db

        def app(environ, start_response):
            rows = db.query("SELECT 1 AS one")
            body = "%s %s %s" % (params["greeting"], environ["PATH_INFO"], rows[0]["one"])
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [body.encode()]
    """, host, port)
    host.answers["db_query"] = {"ok": {"names": ["one"], "columns": [[1]], "count": 1, "read": True,
                                       "decimals": False}}
    try:
        assert fetch(port, "/dscr") == "hi /dscr 1"
        assert fetch(port, "/again") == "hi /again 1"
        assert {"op": "log", "message": "serving on port %d" % port} in host.requests, host.requests
        assert "finish" not in host.ops(), "no finish while serving"
        status, _, err = stopped(process)
        assert status == 0, (status, err)
        assert host.finish()["error"] is None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        host.close()


def test_web_mode_without_an_app_fails():
    host = FakeHost()
    process = _web("x = 1\n", host, free_port())
    try:
        out, err = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 1, (out, err)
        error = host.finish()["error"]
        assert "must define `app`" in error["message"] and error["type_name"] == "RuntimeError", error
        assert error["traceback"] == "RuntimeError: " + error["message"] + "\n", error
    finally:
        host.close()


def test_web_mode_holds_flask_to_the_port():
    try:
        import flask  # noqa: F401
    except ImportError:
        sys.stdout.write("check_container: flask is not installed: its web mode is not checked\n")
        return
    host = FakeHost()
    port = free_port()
    process = _web("""
        from flask import Flask
        app = Flask(__name__)

        @app.route("/")
        def index():
            return "flask ok"

        app.run(host="127.0.0.2", port=1, debug=True)
    """, host, port)
    try:
        assert fetch(port) == "flask ok"
        status, _, err = stopped(process)
        assert status == 0, (status, err)
        assert host.ops().count("log") == 1 and host.finish()["error"] is None, host.requests
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        host.close()


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            sys.stderr.write("FAIL %s\n%s\n" % (name, traceback.format_exc()))
    status = "ok" if not failed else "FAILED"
    sys.stdout.write("check_container: %s: %d tests, %d failed\n" % (status, len(tests), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
