"""The guest side of the host interface under plain CPython, for scripts run in a
container: the operations of the WASI component's imports (`emit`, `log`, `db_query`,
`db_schema`), plus the run's start and end (`hello`, `finish`), over the unix socket the
host serves at `METAEXEC_SOCKET`.

Protocol version 1. One connection, opened on first use. Each request is one line of JSON
(UTF-8, ending in `\\n`; JSON escapes any newline inside) and is answered by one line:
`{"ok": value}`; `{"err": {"kind", "message", "hint"}}` (the database's refusals and
failures); or `{"stop": message}`, the host has stopped the run (a cap, a misuse), which
ends the process at once with status 125, whatever the script catches. Structured values
(results, query parameters, the schema) travel as JSON text inside the line, written by
`_host.dumps` as on the WASI path; a table is plain JSON here.

A host that cannot be reached, or that goes away, is a failed query for the database
operations (the script may catch it) and the end of the run for the others.

Without `METAEXEC_SOCKET` (a packaged script run by plain `docker compose up` elsewhere)
this module stands in for the host: parameters and seed come from the environment, results
are kept for the entry to write to `results.json`, progress lines go to stderr, and the
database is read directly when `DATABASE_URL` names a SQLite file.
"""

import json
import os
import socket
import sys
import threading

from metaexec._host import HostError, dumps

VERSION = 1
#: The exit status of a run the host stopped, or whose host went away.
STOPPED = 125

# Read once, when the library is imported (before the script runs): a script that changes
# its environment does not change where its results go.
_PATH = os.environ.get("METAEXEC_SOCKET") or None
#: No host: the module stands in for it.
standalone = _PATH is None

# One request and its answer at a time: a web app's threads share the connection.
_lock = threading.Lock()
_conn = None
_reader = None
# Why the connection cannot be used, once it cannot: an answer left half read would be
# taken for the next request's.
_broken = None


# What an answer holds: exactly one of these (other fields are left for later versions).
_ANSWERS = {"ok", "err", "stop"}


class _Lost(Exception):
    """The connection to the host could not be made, broke, or carried no answer."""


def _stderr(text):
    """Writes `text` to the process's stderr without going through Python's buffers (the
    script may have replaced or closed `sys.stderr`)."""
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def _exit(message):
    """Ends the process at once: nothing the script catches may continue a run the host
    stopped, or one whose host went away."""
    _stderr("metaexec: %s\n" % message)
    os._exit(STOPPED)


def _connection():
    global _conn, _reader
    if _conn is None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(_PATH)
        except OSError:
            conn.close()
            raise
        _conn, _reader = conn, conn.makefile("rb")
    return _conn, _reader


def _exchange(request):
    """The host's answer to `request` (a dict), decoded: a dict with one of `ok`, `err`.
    A `stop` ends the process. Raises `_Lost`."""
    global _broken
    # Encoded before anything is sent: a string that is not valid Unicode (a lone
    # surrogate) raises UnicodeEncodeError to the caller, and the connection stays usable.
    data = (json.dumps(request, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    with _lock:
        if _broken is not None:
            raise _Lost(_broken)
        try:
            conn, reader = _connection()
            conn.sendall(data)
            line = reader.readline()
        except OSError as exc:
            _broken = "the connection to the host at %s failed: %s" % (_PATH, exc)
            raise _Lost(_broken) from None
        except BaseException:
            _broken = "a request to the host was interrupted"
            raise
        if not line.endswith(b"\n"):
            _broken = "the host closed the connection"
            raise _Lost(_broken)
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if type(answer) is not dict or len(answer.keys() & _ANSWERS) != 1:
            _broken = "the host's answer is not a protocol %d answer: %.200r" % (VERSION, line)
            raise _Lost(_broken)
        if "stop" in answer:
            _exit(str(answer["stop"]))
        return answer


def _call(request):
    """The `ok` of the host's answer to `request`; an `err` raises HostError."""
    answer = _exchange(request)
    if "ok" in answer:
        return answer["ok"]
    raise _refusal(answer["err"])


def _refusal(err):
    """The HostError for an `err` answer."""
    if type(err) is not dict:
        err = {"message": err}
    kind, message, hint = err.get("kind"), err.get("message"), err.get("hint")
    return HostError(
        kind if type(kind) is str else "db_error",
        message if type(message) is str and message else "the host refused the request",
        hint if type(hint) is str else None,
    )


def _required(request):
    """`_call`, for the requests a run cannot go on without."""
    try:
        return _call(request)
    except _Lost as exc:
        _exit("%s; the run cannot go on" % exc)


def _bracket(request):
    """`_required`, for the run's start and end, which the host does not refuse."""
    try:
        return _required(request)
    except HostError as exc:
        _exit("the host refused %s: %s" % (request["op"], exc))


def _database(request):
    """`_call`, for the database: a host that cannot be reached is a failed query."""
    try:
        return _call(request)
    except _Lost as exc:
        raise HostError("db_error", "the database is out of reach: %s" % exc,
                        "the run's connection to metaexec was lost; run the script again") from None


# --------------------------------------------------------------------------- the operations


def hello():
    """The run's parameters (a dict) and seed (an int, or None). Standalone, from the
    environment (`METAEXEC_PARAMS`, a JSON object; `METAEXEC_SEED`), where a bad value
    raises ValueError."""
    if standalone:
        return _environment()
    answer = _bracket({"op": "hello", "version": VERSION})
    params = answer.get("params") if type(answer) is dict else None
    seed = answer.get("seed") if type(answer) is dict else None
    if type(params) is not dict or (seed is not None and type(seed) is not int):
        _exit("the host's answer to hello is malformed: %.200r" % (answer,))
    return params, seed


def emit(name, value):
    """Sends one named result to the host (kept for `results.json` standalone)."""
    text = dumps(value)
    if standalone:
        _results[name] = text
    else:
        _required({"op": "emit", "name": name, "value": text})


def log(message):
    """Sends one progress line to the host (to stderr standalone)."""
    if standalone:
        stream = sys.__stderr__ or sys.stderr
        stream.write("[metaexec] %s\n" % message)
        stream.flush()
    else:
        _required({"op": "log", "message": message})


def db_query(sql, params, exact_decimals):
    """The host's answer to one SQL statement: `(names, columns, count, read, decimals)`,
    each column a list of values (exact decimals still as `{"$decimal": ...}`)."""
    if standalone:
        return _sqlite_query(sql, params)
    answer = _database({"op": "db_query", "sql": sql, "params": dumps(params), "exact_decimals": exact_decimals})
    try:
        names, columns, count = answer["names"], answer["columns"], answer["count"]
        return names, columns, count, answer["read"], answer["decimals"]
    except (TypeError, KeyError):
        raise HostError("db_error", "the host's answer to a query is malformed") from None


def db_schema():
    """The tables the job may use."""
    if standalone:
        return _sqlite_schema()
    text = _database({"op": "db_schema"})
    if type(text) is not str:
        raise HostError("db_error", "the host's answer to a schema request is malformed")
    return json.loads(text)


def finish(error, params_read):
    """Ends the run: `error` the fields of a script error (a dict) or None, `params_read`
    `{"names": [[name, fallback], ...], "listed": bool}`. Standalone, writes the results
    to `results.json` in the working directory."""
    if standalone:
        _write_results()
    else:
        _bracket({"op": "finish", "error": error, "params_read": params_read})


# --------------------------------------------------------------------------- standalone

# The results emitted so far, name -> JSON text (encoded when emitted, as the host would
# receive them: a value the script changes afterwards is not changed here).
_results = {}
RESULTS_FILE = "results.json"


def _environment():
    text = os.environ.get("METAEXEC_PARAMS") or "{}"
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise ValueError("METAEXEC_PARAMS is not JSON (%s): %.200r" % (exc, text)) from None
    if type(params) is not dict:
        raise ValueError("METAEXEC_PARAMS must be a JSON object, e.g. {\"noi_change\": -0.1}")
    seed = (os.environ.get("METAEXEC_SEED") or "").strip()
    if not seed:
        return params, None
    try:
        return params, int(seed)
    except ValueError:
        raise ValueError("METAEXEC_SEED must be an integer, got %.200r" % seed) from None


def _write_results():
    results = {name: json.loads(text) for name, text in _results.items()}
    try:
        with open(RESULTS_FILE, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, ensure_ascii=False)
            f.write("\n")
    except OSError as exc:
        _stderr("metaexec: could not write %s: %s\n" % (os.path.abspath(RESULTS_FILE), exc))


_NO_DATABASE = HostError(
    "db_error",
    "no database proxy in this container",
    "set DATABASE_URL=sqlite:///path to a SQLite file, or run the script through metaexec",
)
_sqlite = None


def _sqlite_path(url):
    """The file a `sqlite:` URL names, read as metaexec reads it: `sqlite:///abs/path.db`,
    `sqlite://relative.db`, `sqlite:relative.db`; None for any other URL."""
    url = url.strip()
    if not url.startswith("sqlite:"):
        return None
    path = url[len("sqlite:"):]
    if path.startswith("//"):
        path = path[2:]
    if not path or path == ":memory:" or "?" in path:
        return None
    return path


def _sqlite_connection():
    """The SQLite file of `DATABASE_URL`, opened read-only once."""
    global _sqlite
    if _sqlite is None:
        path = _sqlite_path(os.environ.get("DATABASE_URL") or "")
        if path is None:
            raise _NO_DATABASE
        import sqlite3
        from urllib.parse import quote

        try:
            _sqlite = sqlite3.connect("file:%s?mode=ro" % quote(path), uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise HostError("db_error", "cannot open the SQLite file %s: %s" % (path, exc),
                            "check DATABASE_URL (sqlite:///absolute/path.db)") from None
    return _sqlite


def _sqlite_failure(exc):
    kind = "db_denied" if "readonly" in str(exc) else "db_error"
    return HostError(kind, "the database refused the query: %s" % exc,
                     "check table and column names with metaexec.db.schema()")


def _sqlite_query(sql, params):
    import sqlite3

    conn = _sqlite_connection()
    # Bound as the host binds them: the values as JSON has them (dates as text).
    values = json.loads(dumps(params))
    with _lock:
        try:
            cursor = conn.execute(sql, values)
            rows = cursor.fetchall()
        except (sqlite3.Error, OverflowError) as exc:
            raise _sqlite_failure(exc) from None
    names = [d[0] for d in cursor.description or ()]
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in names]
    for column in columns:
        if bytes in set(map(type, column)):
            _blobs_as_text(column)
    read = sql.lstrip().upper().startswith(("SELECT", "WITH"))
    return names, columns, len(rows), read, False


def _blobs_as_text(column):
    """Blobs as base64 text, as the host sends them."""
    import base64

    for i, value in enumerate(column):
        if type(value) is bytes:
            column[i] = base64.b64encode(value).decode("ascii")


def _sqlite_schema():
    """The schema as the host describes a SQLite database (its `text` without the host's
    length budget)."""
    import sqlite3

    conn = _sqlite_connection()
    with _lock:
        try:
            names = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                " ORDER BY name")]
            tables = [_sqlite_table(conn, name) for name in names]
        except sqlite3.Error as exc:
            raise _sqlite_failure(exc) from None
    keys = {table["name"].lower(): table["primary_key"] for table in tables}
    for table in tables:
        for fk in table["foreign_keys"]:
            if not fk["references_columns"]:
                fk["references_columns"] = list(keys.get(fk["references_table"].lower(), []))
    joins = [{"left_table": table["name"], "left_columns": fk["columns"], "right_table": fk["references_table"],
              "right_columns": fk["references_columns"]} for table in tables for fk in table["foreign_keys"]]
    lines = [_table_line(table) for table in tables]
    lines.append("joins: " + ("; ".join(map(_join_text, joins)) or "none"))
    return {"dialect": "sqlite", "tables": tables, "joins": joins, "text": "\n".join(lines) + "\n"}


def _sqlite_table(conn, name):
    columns, key = [], []
    for column, data_type, not_null, pk in conn.execute(
            'SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid', [name]):
        columns.append({"name": column, "data_type": (data_type or "").lower(), "nullable": not not_null,
                        "primary_key": pk > 0})
        if pk > 0:
            key.append((pk, column))
    primary_key = [column for _, column in sorted(key)]
    if len(primary_key) == 1:
        for column in columns:
            if column["name"] == primary_key[0] and column["data_type"] == "integer":
                column["nullable"] = False  # the rowid
    by_id = {}
    for fk_id, target, source, to in conn.execute(
            'SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq', [name]):
        fk = by_id.setdefault(fk_id, {"columns": [], "references_table": target, "references_columns": []})
        fk["columns"].append(source)
        if to is not None:
            fk["references_columns"].append(to)
    count = conn.execute('SELECT count(*) FROM "%s"' % name.replace('"', '""')).fetchone()[0]
    return {"name": name, "columns": columns, "primary_key": primary_key,
            "foreign_keys": list(by_id.values())[::-1], "row_count": max(count, 0)}


def _table_line(table):
    def column(c):
        text = c["name"] + (" " + c["data_type"] if c["data_type"] else "") + (" PK" if c["primary_key"] else "")
        for fk in table["foreign_keys"]:
            if c["name"] in fk["columns"]:
                return text + " FK\u2192" + fk["references_table"]
        return text

    rows = "1 row" if table["row_count"] == 1 else "%d rows" % table["row_count"]
    return "%s(%s) %s" % (table["name"], ", ".join(map(column, table["columns"])), rows)


def _join_text(join):
    return " AND ".join("%s.%s = %s.%s" % (join["left_table"], left, join["right_table"], right)
                        for left, right in zip(join["left_columns"], join["right_columns"]))
