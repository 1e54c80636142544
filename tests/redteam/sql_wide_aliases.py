# redteam: host memory: a legal 20,000-row query with 50 long column aliases (the keys repeat in every record sent)
# command: exec
# db: demo
# expect: db_denied
# rss-mib: 700
from metaexec import db

# Each record repeats 50 keys of 200 characters: about 210 MB as sent, past the 64 MiB
# byte cap, which counts what is serialized (keys and escapes included).
columns = ", ".join(f"x AS {'k' * 196}{i:04d}" for i in range(50))
db.query(f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20000) SELECT {columns} FROM c")
