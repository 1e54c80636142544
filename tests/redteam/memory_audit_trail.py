# redteam: 3 host memory: a warm instance's database audit trail, grown by every scenario's queries
# command: sweep --grid x=0..29:1 --host-memory 64 --workers 1
# db: demo
# expect: host_memory
# rss-mib: 600
from metaexec import db, params, result

blob = "x" * 50_000
for i in range(200):
    db.query("SELECT ? AS v, ? AS i", [blob, params["x"] * 1000 + i])
result({"x": params["x"]})
