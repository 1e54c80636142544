# redteam: host memory: one giant value built inside SQLite (zeroblob(900000000)), before any cap on rows could see it
# command: exec
# db: demo
# expect: db_denied
# rss-mib: 600
from metaexec import db

db.query("SELECT zeroblob(900000000) AS b")
