# redteam: host memory: one giant value from PostgreSQL (repeat('x', 500000000)); refused on the server before it is sent
# command: exec
# db: postgres
# expect: db_denied
# rss-mib: 600
from metaexec import db

db.query("SELECT repeat('x', 500000000) AS s")
