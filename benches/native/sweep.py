"""The native comparison of a warm-instance sweep: `examples/dscr_stress.py` run once per
scenario in a fresh namespace by native CPython, with the same guest library (loaded as a
plain module) and the same database reads kept between scenarios, over Monte Carlo draws
of the same two parameters.

    python3 benches/native/sweep.py DEMO.db N
"""

import random
import sqlite3
import sys
import types

db_path, draws = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, "runtime/metaexec")
import finance  # noqa: E402

conn = sqlite3.connect(db_path)
kept = {}


def query(sql, params=None):
    key = (sql, tuple(params or ()))
    rows = kept.get(key)
    if rows is None:
        cursor = conn.execute(sql, params or ())
        names = [d[0] for d in cursor.description]
        rows = kept[key] = [dict(zip(names, row)) for row in cursor.fetchall()]
    return [dict(row) for row in rows]


results = []
metaexec = types.ModuleType("metaexec")
metaexec.finance = finance
metaexec.db = types.SimpleNamespace(query=query, DbError=sqlite3.Error)
metaexec.result = results.append
metaexec.log = lambda message: print(message, file=sys.stderr)
sys.modules["metaexec"] = metaexec

path = "examples/dscr_stress.py"
with open(path) as f:
    code = compile(f.read(), path, "exec")
rng = random.Random(7)
for _ in range(draws):
    metaexec.params = {"noi_change": rng.gauss(0, 0.08), "rate_change": rng.uniform(0, 0.02)}
    exec(code, {"__name__": "__main__"})
assert len(results) == draws
