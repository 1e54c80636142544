# redteam: host memory: one giant string built inside SQLite (printf('%.*c', 900000000, 'x'), and wide rows of large ones)
# command: exec
# db: demo
# expect: ok
# rss-mib: 600
from metaexec import db, result

# Three 30 MB values in one row: refused at the value that passes the 64 MiB byte cap.
try:
    db.query("SELECT printf('%.*c', 30000000, 'x') AS a, printf('%.*c', 30000000, 'y') AS b, printf('%.*c', 30000000, 'z') AS c")
    raise AssertionError("a 90 MB row was returned")
except db.DenyError:
    pass
# Past SQLite's length limit (set from the byte cap) printf() gives NULL: the 900 MB string
# is never built, in SQLite or in the host (the RSS bound checks it).
row = db.query_one("SELECT printf('%.*c', 900000000, 'x') AS s, length(printf('%.*c', 900000000, 'x')) AS n")
assert row["s"] is None and row["n"] is None, "the giant string was built"
result({"built": False})
